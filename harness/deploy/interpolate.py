"""Network interpolation (Wang et al., ESRGAN, ECCV 2018 Workshops, Sec. 3.4): generators whose
weights are ``(1 - alpha) * A + alpha * B`` for two generators of one architecture, typically a
PSNR-oriented base (A) and its GAN fine-tune (B). Every alpha gives a usable model at no
training cost, and together they trace the run's perception-distortion trade-off.

Each interpolated generator is written as a ``.keras`` file, a model reference like any other
(``harness evaluate --model DIR/alpha_0.4.keras``); ``interpolation.json`` beside them names A,
B and the file of each alpha. Alpha 0 and 1 copy A's and B's weights exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.deploy.models import load_generator
from harness.errors import HarnessError
from harness.references import ModelRef

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry

MANIFEST = "interpolation.json"


def parse_alphas(text: str) -> list[float]:
    """``"0,0.25,1"``, or an evenly spaced run written ``"0,0.2,...,1"`` (the step from the first
    two numbers up to the last), as floats in [0, 1]."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if "..." in parts:
            if parts.index("...") != 2 or len(parts) != 4:
                raise ValueError
            first, second, last = float(parts[0]), float(parts[1]), float(parts[3])
            step = second - first
            if step <= 0 or last < second:
                raise ValueError
            count = int(round((last - first) / step)) + 1
            alphas = [round(first + i * step, 10) for i in range(count)]
            if not np.isclose(alphas[-1], last):
                raise ValueError
            alphas[-1] = last
        else:
            alphas = [float(p) for p in parts]
    except ValueError:
        raise HarnessError(
            f'--alpha "{text}" is not a list of numbers: give e.g. 0,0.5,1 or 0,0.2,...,1.'
        ) from None
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise HarnessError(f'--alpha "{text}": every alpha must be between 0 and 1.')
    return list(dict.fromkeys(alphas))


def _architecture(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.path.split("/", 1)[-1], tuple(w.shape)) for w in model.weights]


def check_same_architecture(a: Any, b: Any, a_ref: str, b_ref: str) -> None:
    """Raise one clear error unless ``a`` and ``b`` hold the same weights (names and shapes)."""
    shapes_a, shapes_b = _architecture(a), _architecture(b)
    if [s for _, s in shapes_a] == [s for _, s in shapes_b]:
        return
    first = next(
        (i for i, (x, y) in enumerate(zip(shapes_a, shapes_b, strict=False)) if x[1] != y[1]),
        min(len(shapes_a), len(shapes_b)),
    )
    where = (
        f"weight {first}: {shapes_a[first] if first < len(shapes_a) else 'none'} against "
        f"{shapes_b[first] if first < len(shapes_b) else 'none'}"
    )
    raise HarnessError(
        f"{a_ref} and {b_ref} are not the same architecture ({len(shapes_a)} against "
        f"{len(shapes_b)} weights; {where}); interpolate two generators of one [generator] "
        "table, such as a base and its fine-tune."
    )


def blend(a: Sequence[np.ndarray], b: Sequence[np.ndarray], alpha: float) -> list[np.ndarray]:
    """``(1 - alpha) a + alpha b`` per weight, in float64 cast back to each weight's dtype;
    alpha 0 and 1 are the exact weights of a and b (integer weights follow the nearer end)."""
    out = []
    for wa, wb in zip(a, b, strict=True):
        wa, wb = np.asarray(wa), np.asarray(wb)
        if alpha == 0.0 or (alpha < 0.5 and not np.issubdtype(wa.dtype, np.floating)):
            out.append(wa.copy())
        elif alpha == 1.0 or not np.issubdtype(wa.dtype, np.floating):
            out.append(wb.copy())
        else:
            mixed = (1.0 - alpha) * wa.astype(np.float64) + alpha * wb.astype(np.float64)
            out.append(mixed.astype(wa.dtype))
    return out


def file_name(alpha: float) -> str:
    """``alpha_0.4.keras``."""
    return f"alpha_{re.sub(r'[^0-9.]', '_', f'{alpha:g}')}.keras"


def interpolate(
    a_ref: str | ModelRef,
    b_ref: str | ModelRef,
    alphas: Sequence[float],
    out: str | Path,
    *,
    registry: Registry,
    tracking_uri: str | None = None,
) -> dict[float, Path]:
    """Write the generator of each alpha to ``out`` (and ``interpolation.json``); alpha ->
    its ``.keras`` file."""
    a = load_generator(a_ref, registry=registry, tracking_uri=tracking_uri)
    b = load_generator(b_ref, registry=registry, tracking_uri=tracking_uri)
    check_same_architecture(a, b, str(a_ref), str(b_ref))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    weights_a, weights_b = a.get_weights(), b.get_weights()
    written: dict[float, Path] = {}
    for alpha in alphas:
        a.set_weights(blend(weights_a, weights_b, alpha))
        written[alpha] = folder / file_name(alpha)
        a.save(written[alpha])
    a.set_weights(weights_a)
    manifest = {
        "a": str(a_ref),
        "b": str(b_ref),
        "formula": "(1 - alpha) * a + alpha * b",
        "models": {f"{alpha:g}": path.name for alpha, path in written.items()},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written


__all__ = ["MANIFEST", "blend", "check_same_architecture", "interpolate", "parse_alphas"]
