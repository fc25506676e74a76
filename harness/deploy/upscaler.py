"""The upscaler: a generator (or any ``[0, 1] -> [0, 1]`` network) as a bounded-memory function.

An *upscaler* is what evaluation, ``harness upscale`` and ``harness serve`` call: float32 NHWC
LR in ``[0, 1]`` -> float32 NHWC SR in ``[0, 1]``, ``scale`` times larger. This module owns the
one mapping of a generator's ``[-1, 1]`` output to ``[0, 1]`` (:func:`generator_sr`, also what
:mod:`harness.deploy.export` writes into a SavedModel), tiling and the receptive-field probe.

Tiling: a large image is cut into ``tile`` x ``tile`` LR tiles, each grown by ``overlap`` LR
pixels on every side (clipped at the image border), upscaled alone, and only its core is kept.
With BN in inference mode every generator here is a stack of local operations, so once the
overlap covers the receptive field the tiled output equals the whole-image output; by default
the overlap *is* the receptive field, measured once by perturbing one input pixel.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.data.images import to_uint8
from harness.errors import HarnessError
from harness.rundir import DISCRIMINATOR_FILE, GENERATOR_FILE

MAX_PROBE_RADIUS = 96  # LR pixels: the largest receptive field the automatic overlap measures

_TRACE_NOISE = (
    "File ",
    "[[",
    "in user code",
    "Graph execution error",
    "Detected at node",
    "Arguments received",
    "\u2022",
    "Traceback",
    "return ",
    "raise ",
)


def error_reason(exc: BaseException) -> str:
    """The line of a TF/Keras error message that says what is wrong, not where."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(_TRACE_NOISE)]
    return (useful[-1] if useful else type(exc).__name__)[:300]


def generator_sr(generator: Any, lr: Any) -> Any:
    """A generator's SR (``[-1, 1]``) for the float32 batch ``lr`` as float32 ``[0, 1]``:
    ``clip((g(lr) + 1) / 2, 0, 1)``, BN in inference mode. The one such mapping, so what is
    exported, served and evaluated is the same network output."""
    import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

    sr = tf.cast(generator(lr, training=False), tf.float32)
    # NaN stays NaN through the clip (tf.clip_by_value passes NaN on), so a diverged
    # generator is caught by the probe in Upscaler.__init__
    return tf.clip_by_value((sr + 1.0) / 2.0, 0.0, 1.0)


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Core tiles ``(y0, y1, x0, x1)`` covering an ``height`` x ``width`` image, row by row."""
    if tile <= 0:
        return [(0, height, 0, width)]
    return [
        (y0, min(y0 + tile, height), x0, min(x0 + tile, width))
        for y0 in range(0, height, tile)
        for x0 in range(0, width, tile)
    ]


class Upscaler:
    """``upscaler(lr) -> sr``: float32 NHWC ``[0, 1]`` -> ``[0, 1]``, ``scale`` times larger.

    Args:
        fn: the network as a function of one float32 NHWC batch in ``[0, 1]`` returning SR in
            ``[0, 1]`` (a tensor or array).
        scale: the upscaling factor; measured from ``fn`` when ``None``.
        tile: LR tile side; 0 processes whole images.
        overlap: LR pixels of context around each tile; ``None`` measures the receptive field.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        scale: int | None = None,
        *,
        tile: int = 0,
        overlap: int | None = None,
        source: str = "",
    ) -> None:
        if tile < 0 or (overlap is not None and overlap < 0):
            raise HarnessError(f"tile ({tile}) and overlap ({overlap}) must not be negative.")
        self._fn = fn
        self.tile = int(tile)
        self._overlap = overlap
        self.source = source
        try:
            probe = self._run(np.full((1, 8, 8, 3), 0.5, np.float32))
        except Exception as exc:  # Keras, TF and plugin code raise many types here
            raise HarnessError(
                f"the model {source or ''} cannot upscale an 8x8 RGB image "
                f"({type(exc).__name__}: {error_reason(exc)}). An upscaler maps (N, h, w, 3) "
                f"images to (N, s*h, s*w, 3); a {DISCRIMINATOR_FILE}, a classifier or a "
                f"one-channel model is not one. Pass a run directory or its {GENERATOR_FILE}."
            ) from None
        if not np.all(np.isfinite(probe)):
            raise HarnessError(
                f"the model {source or ''} outputs non-finite values (NaN or infinity) for a grey "
                "8x8 input: its weights are not usable (a training run that diverged?). Use an "
                "earlier checkpoint of the run or retrain with a lower train.learning_rate."
            )
        self.scale = int(scale) if scale else self._measure_scale(probe)

    @classmethod
    def from_generator(
        cls, generator: Any, *, tile: int = 0, overlap: int | None = None
    ) -> Upscaler:
        """Wrap a generator (SR in ``[-1, 1]``) as :func:`generator_sr`, traced once."""
        import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            reduce_retracing=True,
        )
        def fn(lr):
            return generator_sr(generator, lr)

        upscaler = cls(fn, None, tile=tile, overlap=overlap, source=getattr(generator, "name", ""))
        upscaler.generator = generator
        return upscaler

    # ------------------------------------------------------------------ geometry

    def _run(self, lr: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(lr), np.float32)

    def _measure_scale(self, out: np.ndarray) -> int:
        if out.ndim != 4 or out.shape[1] % 8 or out.shape[1] != out.shape[2] or out.shape[3] != 3:
            raise HarnessError(
                f"the model {self.source} maps an 8x8 RGB input to shape {out.shape}; an "
                "upscaler must return an NHWC RGB image a whole number of times larger."
            )
        return out.shape[1] // 8

    @property
    def overlap(self) -> int:
        """LR pixels of context per tile side: as given, else the measured receptive field."""
        if self._overlap is None:
            self._overlap = self.receptive_radius()
        return self._overlap

    def receptive_radius(self) -> int:
        """How many LR pixels away an input pixel still changes the output, measured by
        flipping one pixel in the middle of a random image (growing the probe as needed)."""
        rng = np.random.default_rng(0)
        limit = 24
        while True:
            size = 2 * limit + 1
            base = rng.uniform(0.2, 0.8, (1, size, size, 3)).astype(np.float32)
            flipped = base.copy()
            flipped[0, limit, limit] = 1.0 - flipped[0, limit, limit]
            # two passes of one image each, not one batch of two: a batched convolution may
            # compute the same pixel of two images with different kernels (float noise
            # everywhere), while one image of one shape is computed identically every time
            out = [self._run(base)[0], self._run(flipped)[0]]
            changed = np.abs(out[1] - out[0]).max(axis=-1) > 0
            ys, xs = np.nonzero(changed)
            if ys.size == 0:
                return 0
            radius = int(
                max(np.abs(ys // self.scale - limit).max(), np.abs(xs // self.scale - limit).max())
            )
            if radius < limit:
                return radius
            if limit >= MAX_PROBE_RADIUS:
                warnings.warn(
                    f"the model's receptive field reaches past {limit} LR pixels (it may be "
                    f"global); tiles use {limit} pixels of overlap and can differ slightly "
                    "from whole-image output.",
                    stacklevel=2,
                )
                return limit
            limit *= 2

    def tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The core tiles an ``height`` x ``width`` LR image is processed in."""
        if not self.tile or (height <= self.tile and width <= self.tile):
            return [(0, height, 0, width)]
        return tile_boxes(height, width, self.tile)

    # ------------------------------------------------------------------ calling

    def __call__(self, lr: np.ndarray, progress: Callable[[int], Any] | None = None) -> np.ndarray:
        """Upscale ``lr`` (float32 ``(N, h, w, 3)`` or ``(h, w, 3)`` in ``[0, 1]``).

        ``progress(n)`` is called after each tile (a ``tqdm.update``, say).
        """
        return self._assemble(lr, np.float32, lambda out: out, progress)

    def upscale_uint8(
        self, images: np.ndarray, progress: Callable[[int], Any] | None = None
    ) -> np.ndarray:
        """uint8 RGB ``(h, w, 3)`` or ``(N, h, w, 3)`` -> uint8, ``scale`` times larger, rounded
        by :func:`harness.data.images.to_uint8` (the rule evaluation scores with). Tiles are
        rounded as they come, so the float32 output (four times the uint8 one) is never held
        whole."""
        lr = np.asarray(images, np.float32) / np.float32(255.0)
        return self._assemble(lr, np.uint8, to_uint8, progress)

    def _assemble(
        self,
        lr: np.ndarray,
        dtype: Any,
        convert: Callable[[np.ndarray], np.ndarray],
        progress: Callable[[int], Any] | None,
    ) -> np.ndarray:
        lr = np.asarray(lr, np.float32)
        single = lr.ndim == 3
        if single:
            lr = lr[None]
        if lr.ndim != 4 or lr.shape[-1] != 3:
            raise HarnessError(
                f"an upscaler takes NHWC RGB images (N, h, w, 3); got shape {lr.shape}."
            )
        n, h, w, _ = lr.shape
        boxes = self.tiles(h, w)
        if len(boxes) == 1:
            sr = convert(self._run(lr))
            if progress:
                progress(1)
            return sr[0] if single else sr
        s, r = self.scale, self.overlap
        sr = np.empty((n, h * s, w * s, 3), dtype)
        for y0, y1, x0, x1 in boxes:
            ya, yb, xa, xb = max(0, y0 - r), min(h, y1 + r), max(0, x0 - r), min(w, x1 + r)
            out = self._run(lr[:, ya:yb, xa:xb])
            dy, dx = (y0 - ya) * s, (x0 - xa) * s
            sr[:, y0 * s : y1 * s, x0 * s : x1 * s] = convert(
                out[:, dy : dy + (y1 - y0) * s, dx : dx + (x1 - x0) * s]
            )
            if progress:
                progress(1)
        return sr[0] if single else sr
