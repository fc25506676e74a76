"""``harness data degrade``: a seeded LR copy of an image folder made by a degradation plugin.

Each image is cropped to a multiple of the scale (bottom and right edges, as the evaluation
protocol crops HR), degraded whole with the seed ``[seed, crc32(file name)]`` (so an image's LR
does not depend on which other files are in the folder), clipped and rounded to 8 bits and
written as ``<stem>.png``. The same command gives the same files, so a degraded test set is
reproducible from its source folder and the command line.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from harness import diskwrite
from harness.config.checking import ParamError, check_params
from harness.data import images as imageio
from harness.data.folders import resolve
from harness.data.pipeline import to_8bit_levels
from harness.errors import ConfigError, HarnessError
from harness.plugin_api.registry import Registry


def image_seed(seed: int, name: str) -> tuple[int, int]:
    """The stateless-RNG key of one file: the run's seed and a checksum of the file name."""
    return seed, zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def build(registry: Registry, name: str, params: Mapping[str, Any], scale: int) -> Callable:
    """The degradation ``name`` with ``params`` checked against its factory, for ``scale``."""
    factory = registry.factory("degradation", name, where="--degradation")
    try:
        checked = check_params(factory, params, host_supplied=("scale",))
    except ParamError as exc:
        raise ConfigError(f'--set {exc.key}: degradation "{name}": {exc}') from None
    return factory(scale=scale, **checked)


def degrade_folder(
    src: str,
    dst: str,
    registry: Registry,
    *,
    name: str = "bicubic",
    params: Mapping[str, Any] | None = None,
    scale: int = 4,
    seed: int = 0,
    log: Callable[[str], Any] = print,
) -> list[Path]:
    """Write the LR of every image of ``src`` to ``dst`` (same stems, PNG); the paths written."""
    if scale < 1:
        raise HarnessError(f"--scale must be at least 1, not {scale}.")
    files = resolve(src)
    if not files:
        raise HarnessError(f"{src} holds no images ({', '.join(imageio.IMAGE_SUFFIXES)}).")
    out = Path(dst).expanduser()
    if out.resolve() == Path(src).expanduser().resolve():
        raise HarnessError(f"-o {dst} is the source folder; write the LR copy elsewhere.")
    stems: dict[str, str] = {}
    for path in files:
        if path.stem in stems:
            raise HarnessError(
                f"{src} holds {stems[path.stem]} and {path.name}, which would both be written "
                f"as {path.stem}.png; keep one."
            )
        stems[path.stem] = path.name
    degrade = build(registry, name, params or {}, scale)
    traced = tf.function(
        lambda hr, key: to_8bit_levels(tf.cast(degrade(hr, key), tf.float32)),
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)],
    )
    diskwrite.writable_folder(out, "-o")
    written = []
    for path in files:
        hr = imageio.modcrop(imageio.read_image(path), scale)
        if min(hr.shape[:2]) < scale:
            raise HarnessError(f"{path} is smaller than the scale ({scale} px); remove it.")
        key = tf.constant(image_seed(seed, path.name), tf.int64)
        lr = traced(tf.constant(hr, tf.float32) / 255.0, key).numpy()
        expected = (hr.shape[0] // scale, hr.shape[1] // scale, 3)
        if lr.shape != expected:
            raise HarnessError(
                f'degradation "{name}" made {lr.shape} from {path.name} ({hr.shape}); expected '
                f"{expected}."
            )
        target = out / f"{path.stem}.png"
        imageio.write_png(target, np.round(lr * 255.0).astype(np.uint8))
        written.append(target)
        log(f"{path.name} {hr.shape[1]}x{hr.shape[0]} -> {target} {lr.shape[1]}x{lr.shape[0]}")
    return written
