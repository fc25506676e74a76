"""Trained generators from any reference -> upscalers, with bounded-memory tiling.

An *upscaler* is what evaluation, ``harness upscale`` and ``harness serve`` call: float32 NHWC
LR in ``[0, 1]`` -> float32 NHWC SR in ``[0, 1]``, ``scale`` times larger. A reference to a
trained model may be any of (see :data:`ACCEPTED`):

- a run directory (``generator.keras`` if present, else the latest checkpoint, EMA weights
  preferred, rebuilt from the run's ``experiment.toml`` through the plugin registry);
- a run's ``checkpoints/`` directory, or one checkpoint prefix (``.../checkpoints/ckpt-12``);
- a ``.keras`` file;
- a SavedModel directory written by ``harness export``;
- an MLflow model: ``runs:/<run_id>/generator``, ``models:/<name>/<version>``,
  ``models:/<model_id>``, a local MLflow model folder (with ``MLmodel``), or a bare run id.

Tiling: a large image is cut into ``tile`` x ``tile`` LR tiles, each grown by ``overlap`` LR
pixels on every side (clipped at the image border), upscaled alone, and only its core is kept.
With BN in inference mode every generator here is a stack of local operations, so once the
overlap covers the receptive field the tiled output equals the whole-image output; by default
the overlap *is* the receptive field, measured once by perturbing one input pixel.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.images import to_uint8
from harness.errors import HarnessError

ACCEPTED = (
    "a run directory (holding generator.keras, or experiment.toml and checkpoints/); "
    "a checkpoints/ directory or a checkpoint prefix such as runs/x/checkpoints/ckpt-12; "
    "a run directory with @best_psnr_y (or another kept generator: @best_lpips, @generator); "
    "a .keras file; a SavedModel directory from `harness export`; "
    "an MLflow model URI (runs:/<run_id>/generator, models:/<name>/<version>, models:/<id>), "
    "a local MLflow model folder (holding MLmodel), or a bare MLflow run id"
)
"""Every form of model reference, for error messages and help texts."""

MLFLOW_MODEL_NAME = "generator"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_PROBE_RADIUS = 96  # LR pixels: the largest receptive field the automatic overlap measures


class ModelReferenceError(HarnessError):
    """A model reference cannot be resolved or loaded."""


def _bad_ref(ref: str, why: str) -> ModelReferenceError:
    return ModelReferenceError(f'cannot load a model from "{ref}": {why}. Accepted: {ACCEPTED}.')


# --------------------------------------------------------------------------- loading


def _registry() -> None:
    """Build the plugin registry first, so plugin layers are registered before Keras loads."""
    from harness.plugin_api.registry import build_registry

    build_registry()


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


def _reason(exc: BaseException) -> str:
    """The line of a TF/Keras error message that says what is wrong, not where."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(_TRACE_NOISE)]
    return (useful[-1] if useful else type(exc).__name__)[:300]


def _load_keras_file(path: Path) -> Any:
    import zipfile

    import keras

    if path.is_file() and not zipfile.is_zipfile(path):
        raise _bad_ref(
            str(path),
            "the file is not a .keras model (a .keras file is a zip archive; this one is not: "
            "truncated, or another format renamed)",
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise _bad_ref(
            str(path),
            f"Keras could not load it ({type(exc).__name__}: {exc}); if it uses layers of a "
            "plugin, install that plugin (`harness plugins` lists what is installed)",
        ) from exc


def _checkpoint_prefix(path: Path) -> Path | None:
    """The checkpoint prefix ``path`` names: a prefix itself or a directory's latest one."""
    import tensorflow as tf

    if Path(str(path) + ".index").is_file():
        return path
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest:
            return Path(latest)
    return None


def _restore_checkpoint(prefix: Path, experiment: Path, ref: str) -> Any:
    """Rebuild the run's generator from ``experiment.toml`` and restore ``prefix`` into it."""
    import tensorflow as tf

    from harness.config import experiment as config
    from harness.plugin_api.registry import build_registry

    if not experiment.is_file():
        raise _bad_ref(
            ref, f"a checkpoint needs its run's experiment.toml, not found at {experiment}"
        )
    registry = build_registry()
    exp = config.load(experiment, registry=registry)
    factory = registry.factory("generator", exp.generator.name, f"[generator] ({experiment})")
    # Variables are keyed by the first path TF finds to them (often through the optimizer:
    # g_optimizer/_trainable_variables/N), so try each attribute through the object graph.
    attributes = ("ema_generator", "generator")
    errors = []
    for attribute in attributes:
        model = factory(scale=exp.data.scale, **exp.generator.params)
        checkpoint = tf.train.Checkpoint(**{attribute: model})
        try:
            checkpoint.read(str(prefix)).expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError) as exc:  # missing variables, or other shapes
            errors.append(f"{attribute}: {str(exc).splitlines()[0]}")
            continue
        return model
    raise _bad_ref(
        ref,
        f"checkpoint {prefix} does not fit the generator described by {experiment} "
        f"({'; '.join(errors)}); was experiment.toml edited after training?",
    )


KEPT_SUFFIX = ".keras"


def _kept_model(ref: str) -> Path | None:
    """``runs/x@best_lpips`` -> ``runs/x/best_lpips.keras`` (a generator a run kept besides its
    last one: ``best_<metric>`` by validation, ``generator`` = the final one)."""
    if "@" not in ref or ref.startswith(("runs:/", "models:/")):
        return None
    run, _, name = ref.rpartition("@")
    folder = Path(run).expanduser()
    if not folder.is_dir():
        return None
    path = folder / f"{name}{KEPT_SUFFIX}"
    if not path.is_file():
        kept = sorted(p.stem for p in folder.glob(f"*{KEPT_SUFFIX}"))
        raise _bad_ref(
            ref,
            f"{folder} kept no generator named {name} (it holds: {', '.join(kept) or 'none'}; "
            "best_<metric> files are written at validations)",
        )
    return path


def _load_mlflow(uri: str, ref: str) -> Any:
    import mlflow.tensorflow

    try:
        return mlflow.tensorflow.load_model(uri)
    except Exception as exc:
        raise _bad_ref(
            ref,
            f"MLflow could not load {uri} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "check MLFLOW_TRACKING_URI (it must point at the store the run was logged to)",
        ) from exc


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def load_generator(ref: str | Path) -> Any:
    """The trained generator (``keras.Model``: LR ``[0, 1]`` -> SR ``[-1, 1]``) ``ref`` names.

    Raises :class:`ModelReferenceError` listing the accepted forms when ``ref`` names nothing
    loadable. An exported SavedModel holds an upscaler, not a generator: use
    :func:`load_upscaler` for it.
    """
    _registry()
    text = str(ref)
    kept = _kept_model(text)
    if kept is not None:
        return _load_keras_file(kept)
    path = Path(text).expanduser()
    if path.exists() or Path(text + ".index").is_file():
        if path.is_file():
            if path.suffix == ".keras":
                return _load_keras_file(path)
            raise _bad_ref(text, "a file that is not a .keras model")
        if _is_saved_model(path):
            raise _bad_ref(
                text,
                "it is an exported SavedModel (an upscaler, [0, 1] -> [0, 1]); load it with "
                "load_upscaler, or give the run it was exported from",
            )
        if (path / "MLmodel").is_file():
            return _load_mlflow(str(path), text)
        if (path / "generator.keras").is_file():
            return _load_keras_file(path / "generator.keras")
        if (path / "checkpoints").is_dir():
            prefix = _checkpoint_prefix(path / "checkpoints")
            if prefix is None:
                raise _bad_ref(text, "its checkpoints/ directory holds no checkpoint yet")
            return _restore_checkpoint(prefix, path / "experiment.toml", text)
        prefix = _checkpoint_prefix(path)
        if prefix is not None:
            return _restore_checkpoint(prefix, prefix.parent.parent / "experiment.toml", text)
        raise _bad_ref(text, "the path holds neither a model, a run nor a checkpoint")
    if re.match(r"^[a-z][a-z0-9+.-]*:/", text) and not re.match(r"^[a-zA-Z]:[\\/]", text):
        return _load_mlflow(text, text)
    if RUN_ID.match(text):
        return _load_mlflow(f"runs:/{text}/{MLFLOW_MODEL_NAME}", text)
    raise _bad_ref(text, "no such file or directory, and not an MLflow URI or run id")


def load_upscaler(ref: str | Path, *, tile: int = 0, overlap: int | None = None) -> Upscaler:
    """An :class:`Upscaler` for ``ref`` (any form :func:`load_generator` takes, or an exported
    SavedModel). ``tile`` > 0 bounds memory (LR tile side in pixels); ``overlap`` ``None`` uses
    the measured receptive field."""
    path = Path(str(ref)).expanduser()
    if _is_saved_model(path):
        return Upscaler.from_saved_model(path, tile=tile, overlap=overlap)
    return Upscaler.from_generator(load_generator(ref), tile=tile, overlap=overlap)


# --------------------------------------------------------------------------- the upscaler


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
                f"({type(exc).__name__}: {_reason(exc)}). An upscaler maps (N, h, w, 3) images "
                "to (N, s*h, s*w, 3); a discriminator.keras, a classifier or a one-channel "
                "model is not one. Pass a run directory or its generator.keras."
            ) from None
        if not np.all(np.isfinite(probe)):
            raise HarnessError(
                f"the model {source or ''} outputs non-finite values (NaN or infinity) for a grey "
                "8x8 input: its weights are not usable (a training run that diverged?). Use an "
                "earlier checkpoint of the run or retrain with a lower train.learning_rate."
            )
        self.scale = int(scale) if scale else self._measure_scale(probe)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_generator(
        cls, generator: Any, *, tile: int = 0, overlap: int | None = None
    ) -> Upscaler:
        """Wrap a generator (SR in ``[-1, 1]``) as ``clip((g(lr) + 1) / 2, 0, 1)``."""
        import tensorflow as tf

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            reduce_retracing=True,
        )
        def fn(lr):
            sr = tf.cast(generator(lr, training=False), tf.float32)
            # NaN stays NaN through the clip (tf.clip_by_value passes NaN on), so a diverged
            # generator is caught by the probe in Upscaler.__init__
            return tf.clip_by_value((sr + 1.0) / 2.0, 0.0, 1.0)

        upscaler = cls(fn, None, tile=tile, overlap=overlap, source=getattr(generator, "name", ""))
        upscaler.generator = generator
        return upscaler

    @classmethod
    def from_saved_model(
        cls, path: str | Path, *, tile: int = 0, overlap: int | None = None
    ) -> Upscaler:
        """Load a SavedModel whose ``serving_default`` maps ``[0, 1]`` LR to ``[0, 1]`` SR."""
        import tensorflow as tf

        _registry()
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise _bad_ref(str(path), f"TensorFlow could not load the SavedModel ({exc})") from exc
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise _bad_ref(str(path), "the SavedModel has no serving_default signature")
        (input_name,) = signature.structured_input_signature[1].keys()

        def fn(lr):
            out = signature(**{input_name: tf.convert_to_tensor(lr, tf.float32)})
            return next(iter(out.values()))

        scale = int(loaded.scale.numpy()) if hasattr(loaded, "scale") else None
        upscaler = cls(fn, scale, tile=tile, overlap=overlap, source=str(path))
        upscaler.saved_model = loaded  # keeps the loaded object (and its variables) alive
        return upscaler

    # ------------------------------------------------------------------ geometry

    def _run(self, lr: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(lr), np.float32)

    def _measure_scale(self, out: np.ndarray) -> int:
        if out.ndim != 4 or out.shape[1] % 8 or out.shape[1] != out.shape[2]:
            raise HarnessError(
                f"the model {self.source} maps an 8x8 input to shape {out.shape}; an upscaler "
                "must return an NHWC image a whole number of times larger."
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
            out = self._run(np.concatenate([base, flipped]))
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
            sr = self._run(lr)
            if progress:
                progress(1)
            return sr[0] if single else sr
        s, r = self.scale, self.overlap
        sr = np.empty((n, h * s, w * s, 3), np.float32)
        for y0, y1, x0, x1 in boxes:
            ya, yb, xa, xb = max(0, y0 - r), min(h, y1 + r), max(0, x0 - r), min(w, x1 + r)
            out = self._run(lr[:, ya:yb, xa:xb])
            dy, dx = (y0 - ya) * s, (x0 - xa) * s
            sr[:, y0 * s : y1 * s, x0 * s : x1 * s] = out[
                :, dy : dy + (y1 - y0) * s, dx : dx + (x1 - x0) * s
            ]
            if progress:
                progress(1)
        return sr[0] if single else sr

    def upscale_uint8(self, image: np.ndarray) -> np.ndarray:
        """One uint8 RGB ``(h, w, 3)`` image -> uint8 ``(h*s, w*s, 3)``, rounded."""
        sr = self(np.asarray(image, np.float32)[None] / 255.0)[0]
        return to_uint8(sr)


# --------------------------------------------------------------------------- export


def export_saved_model(generator: Any, out_dir: str | Path) -> Path:
    """Write ``generator`` as a TensorFlow SavedModel TF Serving loads as is.

    ``serving_default`` takes ``lr``: float32 ``(None, None, None, 3)`` in ``[0, 1]`` (any batch
    and size) and returns ``sr``: the upscaled batch in ``[0, 1]``. The object also carries
    ``scale`` (an int32 variable) so :func:`load_upscaler` needs no probe.
    """
    import tensorflow as tf

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise HarnessError(
            f"export folder {out_dir} is not empty; give a new folder (TF Serving expects "
            "<model_base_path>/<version>/, e.g. models/srgan/1)."
        )
    scale = Upscaler.from_generator(generator).scale
    module = tf.Module()
    module.generator = generator
    module.scale = tf.Variable(scale, trainable=False, dtype=tf.int32, name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="lr")])
    def serve(lr):
        sr = tf.cast(module.generator(lr, training=False), tf.float32)
        return {"sr": tf.clip_by_value((sr + 1.0) / 2.0, 0.0, 1.0)}

    module.serve = serve
    try:
        tf.saved_model.save(module, str(out_dir), signatures={"serving_default": serve})
    except Exception as exc:
        raise HarnessError(f"writing the SavedModel to {out_dir} failed: {exc}") from exc
    return out_dir
