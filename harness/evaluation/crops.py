"""Side-by-side crops of a report: for each image, the same window of the LR input, of every
row's output and of the HR, each captioned with its scores.

The window is the one of highest gradient energy (:func:`crop_window`), on whole LR pixels; the
figure is composed with PIL and labelled with its default font (no display, nothing to install).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from harness import diskwrite
from harness.data.images import to_uint8
from harness.evaluation.tables import measure_name
from harness.measures.bicubic import bicubic_downsample

CROP = 96
"""HR side of the crop windows (smaller images use their whole shorter side)."""


def crop_window(hr: np.ndarray, scale: int, size: int = CROP) -> tuple[int, int, int]:
    """``(y, x, side)``: the ``side`` x ``side`` HR window (``side`` = ``size`` or the image's
    shorter side, a multiple of ``scale``) with the highest gradient energy of the luma, on a grid
    of ``scale`` pixels so the window is whole LR pixels; the first such window on ties."""
    h, w = hr.shape[:2]
    side = max(scale, min(size, h, w) // scale * scale)
    luma = hr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, h - side + 1, scale)
    xs = np.arange(0, w - side + 1, scale)
    sums = (
        integral[ys[:, None] + side, xs[None, :] + side]
        - integral[ys[:, None], xs[None, :] + side]
        - integral[ys[:, None] + side, xs[None, :]]
        + integral[ys[:, None], xs[None, :]]
    )
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[iy]), int(xs[ix]), int(side)


@dataclass(frozen=True)
class Tile:
    """One column of a crop figure: a uint8 RGB crop and its caption lines."""

    title: str
    image: np.ndarray
    lines: tuple[str, ...] = ()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def crop_figure(tiles: Sequence[Tile], path: Path, heading: str = "", zoom: int = 0) -> Path:
    """Tiles side by side (nearest-zoomed to at least 160 px), each captioned below."""
    font = ImageFont.load_default()
    side = max(t.image.shape[0] for t in tiles)
    zoom = zoom or max(1, math.ceil(160 / side))
    cell, pad, line = side * zoom, 6, 13
    caption = line * (1 + max(len(t.lines) for t in tiles)) + pad
    top = line + 2 * pad if heading else pad
    canvas = Image.new(
        "RGB", (len(tiles) * (cell + pad) + pad, top + cell + caption + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    if heading:
        draw.text(
            (pad, pad), _fit(draw, heading, font, canvas.width - 2 * pad), fill="black", font=font
        )
    for i, tile in enumerate(tiles):
        x = pad + i * (cell + pad)
        img = Image.fromarray(np.ascontiguousarray(tile.image[..., :3]), "RGB")
        canvas.paste(img.resize((cell, cell), Image.Resampling.NEAREST), (x, top))
        for j, text in enumerate((tile.title, *tile.lines)):
            draw.text(
                (x, top + cell + pad // 2 + j * line),
                _fit(draw, text, font, cell),
                fill="black",
                font=font,
            )
    with diskwrite.atomic(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def nearest_up(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour ``scale`` x enlargement (how an LR input looks at HR size)."""
    return np.repeat(np.repeat(lr_uint8, scale, axis=0), scale, axis=1)


def report_crops(
    folder: Path,
    images: Mapping[str, Any],
    results: Mapping[str, Any],
    outputs: Mapping[str, Any],
    scale: int,
    perceptual: str,
) -> list[Path]:
    """A crop figure ``crops_<set>_<image>.png`` in ``folder`` for each image of each set whose
    outputs were kept (``outputs``: set -> row -> 8-bit SR images, in image order), captioned
    with PSNR-Y and the ``perceptual`` measure of ``results``."""
    paths = []
    for set_label, hrs in images.items():
        for i, (name, hr, *given) in enumerate(hrs):
            if any(len(o) <= i for o in outputs[set_label].values()):
                break
            y, x, side = crop_window(hr, scale)
            lr = given[0] if given else to_uint8(bicubic_downsample(hr, scale))
            s = scale
            lr_crop = lr[y // s : (y + side) // s, x // s : (x + side) // s]
            tiles = [Tile(f"LR x{s} (nearest)", nearest_up(lr_crop, s))]
            for row, res in results[set_label].items():
                score = res.images[i].as_dict()
                lines = [f"PSNR-Y {score['psnr_y']:.2f} dB"]
                if perceptual in score and perceptual != "psnr_y":
                    lines.append(f"{measure_name(perceptual)} {score[perceptual]:.4f}")
                sr = outputs[set_label][row][i]
                tiles.append(Tile(row, sr[y : y + side, x : x + side], tuple(lines)))
            tiles.append(Tile("HR", hr[y : y + side, x : x + side], ("ground truth",)))
            safe = re.sub(r"[^0-9A-Za-z_.-]+", "_", f"{set_label}_{name}")
            heading = (
                f"{set_label}/{name}: {side}x{side} HR window at x={x}, y={y} (highest "
                "gradient energy); scores of the whole image"
            )
            paths.append(crop_figure(tiles, folder / f"crops_{safe}.png", heading))
    return paths


__all__ = ["CROP", "Tile", "crop_figure", "crop_window", "nearest_up", "report_crops"]
