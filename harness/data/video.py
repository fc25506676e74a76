"""Video files <-> uint8 RGB frames with PyAV (FFmpeg), keeping the frame rate.

Reading takes whatever FFmpeg decodes (mp4, mkv, mov, avi, webm, ...). Writing picks an encoder
from the output's container: H.264 (``libx264``, CRF 17, yuv420p) for mp4/mov/mkv/m4v, VP9 for
webm, MPEG-4 Part 2 for avi. Audio is not carried over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from harness import diskwrite
from harness.data.images import check_pixels, max_pixels
from harness.errors import HarnessError

VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".avi",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".gif",
)
"""File types treated as video (case-insensitive)."""

ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    ".mp4": ("libx264", {"crf": "17", "preset": "medium"}),
    ".m4v": ("libx264", {"crf": "17", "preset": "medium"}),
    ".mov": ("libx264", {"crf": "17", "preset": "medium"}),
    ".mkv": ("libx264", {"crf": "17", "preset": "medium"}),
    ".webm": ("libvpx-vp9", {"crf": "20", "b": "0"}),
    ".avi": ("mpeg4", {"q:v": "2"}),
}
"""Output container suffix -> (encoder, options)."""


class VideoError(HarnessError):
    """A video cannot be read or written."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream says about itself."""

    width: int
    height: int
    fps: Fraction
    frames: int  # as the container says, else estimated from its duration; 0: unknown
    codec: str
    estimated: bool = False  # frames is duration x fps (may be one off), not a stated count


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` has one of :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _open(path: Path):
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise VideoError(f"video {path} does not exist.") from None
    except Exception as exc:  # av.error.*: not a media file, unknown container, ...
        raise VideoError(f"cannot read video {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream.")
    return container


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate, frame count (if known) and codec of ``path``'s first video stream."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoError(f"{path} does not state a frame rate.")
        frames = int(stream.frames or 0)
        estimated = not frames and bool(container.duration)
        if estimated:  # Matroska/WebM state a duration, not a count
            frames = round(container.duration / av.time_base * Fraction(rate))
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(rate),
            frames=frames,
            codec=stream.codec_context.name,
            estimated=estimated,
        )
    finally:
        container.close()


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The frames of ``path`` in order, each a uint8 RGB ``(H, W, 3)`` array.

    Frame sizes are held to the image pixel limit (:func:`harness.data.images.max_pixels`): the
    stream's announced size before anything is decoded, and each frame's own size before it is
    converted (a stream may change size mid-way); over it, :class:`ImageTooLargeError`.
    """

    path = Path(path)
    limit = max_pixels()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        check_pixels(width, height, f"{path} (its video frames)", limit)
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.width * frame.height > limit:
                    check_pixels(frame.width, frame.height, f"{path} (frame {index})", limit)
                yield frame.to_ndarray(format="rgb24")
        except Exception as exc:
            if isinstance(exc, GeneratorExit | HarnessError):
                raise
            raise VideoError(f"decoding {path} failed: {exc}") from None
    finally:
        container.close()


class VideoWriter:
    """Write uint8 RGB frames to a video file at a fixed frame rate (odd sides are padded by
    one edge pixel: 4:2:0 chroma needs even ones)::

        with VideoWriter("out.mp4", fps=Fraction(24000, 1001)) as out:
            out.write(frame)

    The frames go to a temporary file beside ``path``, renamed into place when the block ends
    without error; an error (a full disk: :class:`~harness.diskwrite.DiskFullError`) removes
    it and leaves an old ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike[str], fps: Fraction | float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in ENCODERS:
            raise VideoError(
                f"cannot write video {self.path}: unknown container {suffix or '(none)'}; use one "
                f"of {', '.join(sorted(ENCODERS))}."
            )
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.codec, self.options = ENCODERS[suffix]
        self._container = None
        self._stream = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB ``(H, W, 3)`` frame (all frames must share one size)."""

        frame = np.ascontiguousarray(frame, np.uint8)
        if frame.shape[0] % 2 or frame.shape[1] % 2:  # 4:2:0 chroma needs even sides
            frame = np.pad(
                frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), "edge"
            )
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._tmp), mode="w")
            stream = self._container.add_stream(self.codec, rate=self.fps)
            stream.width, stream.height = frame.shape[1], frame.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.options = dict(self.options)
            self._stream = stream
        if (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise VideoError(
                f"frame {self.frames} of {self.path} is {frame.shape[1]}x{frame.shape[0]}, "
                f"the video is {self._stream.width}x{self._stream.height}."
            )
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        with diskwrite.writing(f"frame {self.frames} of a video", self.path):
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        self.frames += 1

    @property
    def _tmp(self) -> Path:
        return diskwrite.temporary(self.path)

    def close(self) -> None:
        """Flush the encoder, finish the file and put it in place."""
        if self._container is None:
            return
        try:
            with diskwrite.writing("the end of a video", self.path):
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
        except BaseException:
            self.abort()
            raise
        self._container = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop what was written: the temporary file goes, an old ``path`` stays."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
