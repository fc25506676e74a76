"""Model references -> loaded generators and upscalers.

A reference to a trained model may be any of (see :data:`ACCEPTED`):

- a run directory (``generator.keras`` if present, else the latest checkpoint, EMA weights
  preferred, rebuilt from the run's ``experiment.toml`` through the plugin registry);
- a kept generator of a run: ``runs/x@best_lpips`` (:func:`kept_model_path`);
- a run's ``checkpoints/`` directory, or one checkpoint prefix (``.../checkpoints/ckpt-12``);
- a ``.keras`` file;
- a SavedModel directory written by ``harness export`` (an upscaler, not a generator);
- an MLflow model: ``runs:/<run_id>/generator``, ``models:/<name>/<version>``,
  ``models:/<name>@<alias>`` (a registered model's alias, ``[tracking] register``),
  ``models:/<model_id>``, a local MLflow model folder (with ``MLmodel``), or a bare run id.

The plugin registry is passed in explicitly (``registry=``): Keras deserializes a plugin's
layers only once the plugin is imported, which building the registry does, and a checkpoint is
restored into a generator the registry builds. Nothing here builds a registry of its own.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import config
from harness import references as refs
from harness.deploy.precision import FLOAT32, with_precision
from harness.deploy.upscaler import Upscaler
from harness.errors import HarnessWarning
from harness.references import ACCEPTED, ModelRef, ModelReferenceError, parse_reference
from harness.rundir import (
    GENERATOR_FILE,
    MODEL_SUFFIX,
    RunDir,
    checkpoint_readable,
    intact_checkpoint,
)

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry

MLFLOW_MODEL_NAME = refs.MLFLOW_MODEL


def _bad_ref(ref: object, why: str) -> ModelReferenceError:
    return refs.bad_reference(ref, why)


# --------------------------------------------------------------------------- files


def load_keras_file(path: Path, *, registry: Registry) -> Any:
    """The model in the ``.keras`` file ``path`` (not compiled).

    ``registry`` is the one whose plugins were imported to build it: their layers are
    registered with Keras then, so models using them deserialize. Raises
    :class:`ModelReferenceError` for a file that is not a ``.keras`` archive or does not load.
    """
    import keras  # heavy: the deploy wing imports without TensorFlow

    del registry  # its being built is what registered the plugins' layers
    path = Path(path)
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


def kept_model_path(ref: str | Path | ModelRef) -> Path | None:
    """``runs/x@best_lpips`` -> ``runs/x/best_lpips.keras``: a generator a run kept besides its
    last one (``best_<metric>`` by validation, ``generator`` = the final one).

    ``None`` when ``ref`` is not of that form (no ``@``, an MLflow URI, or no such run
    directory); :class:`ModelReferenceError` naming what the run holds when the run kept no
    generator of that name.
    """
    if not isinstance(ref, ModelRef) and refs.is_uri(str(ref)):
        return None
    parsed = parse_reference(ref)
    if parsed.kind != refs.KEPT or parsed.path is None or not parsed.path.is_dir():
        return None
    run = RunDir(parsed.path)
    path = run.kept(parsed.name)
    if not path.is_file():
        kept = sorted(p.stem for p in run.path.glob(f"*{MODEL_SUFFIX}"))
        raise _bad_ref(
            parsed,
            f"{run.path} kept no generator named {parsed.name} (it holds: "
            f"{', '.join(kept) or 'none'}; best_<metric> files are written at validations)",
        )
    return path


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_prefix(path: Path, ref: str) -> Path | None:
    """The checkpoint prefix ``path`` names: a prefix itself, or a checkpoint folder's newest
    readable one (an unreadable newer one is skipped with a warning, as a resumed run does;
    none readable is an error)."""
    if Path(str(path) + ".index").is_file():
        if not checkpoint_readable(path):
            raise _bad_ref(
                ref,
                f"checkpoint {path} cannot be read (truncated or corrupt); give the run "
                "directory or its checkpoints/ folder to load the newest intact one",
            )
        return path
    if not path.is_dir():
        return None
    prefix, skipped = intact_checkpoint(path)
    if prefix is None and skipped:
        raise _bad_ref(
            ref,
            f"no checkpoint in {path} can be read ({', '.join(skipped)}: truncated or corrupt) "
            "and the run has no generator.keras; retrain (`harness run --fresh` moves the "
            "files aside)",
        )
    if prefix is not None and skipped:
        warnings.warn(
            f"could not read {', '.join(skipped)} in {path} (truncated or corrupt); loaded the "
            f"older {Path(prefix).name}",
            HarnessWarning,
            stacklevel=3,
        )
    return None if prefix is None else Path(prefix)


def _restore_checkpoint(prefix: Path, experiment: Path, ref: str, registry: Registry) -> Any:
    """Rebuild the run's generator from ``experiment.toml`` and restore ``prefix`` into it."""
    import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

    if not experiment.is_file():
        raise _bad_ref(
            ref, f"a checkpoint needs its run's experiment.toml, not found at {experiment}"
        )
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


# --------------------------------------------------------------------------- MLflow, SavedModel


def _mlflow_folder(uri: str, ref: str, tracking_uri: str | None = None) -> Path:
    """The local folder of the MLflow model ``uri``, downloaded from the tracking store
    ``tracking_uri`` (else ``$MLFLOW_TRACKING_URI``, else the default store)."""
    from harness import tracking  # MLflow: only a model reference of MLflow needs it
    from harness.deploy import mlflow_model  # MLflow, as above

    if Path(uri).is_dir():
        return Path(uri)
    store = tracking.resolve_uri(tracking_uri)
    try:
        return mlflow_model.download(tracking.client(store), uri)
    except Exception as exc:
        raise _bad_ref(
            ref,
            f"MLflow could not load {uri} from {store} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); check MLFLOW_TRACKING_URI (it must point at the "
            "store the run was logged to)",
        ) from exc


def _load_mlflow(
    uri: str,
    ref: str,
    registry: Registry,
    folder: Path | None = None,
    tracking_uri: str | None = None,
) -> Any:
    """The generator of the MLflow model ``uri`` (in ``folder`` when already downloaded): the
    ``generator.keras`` artifact that :func:`harness.deploy.mlflow_model.log_generator` logs."""
    folder = _mlflow_folder(uri, ref, tracking_uri) if folder is None else folder
    keras_file = folder / "artifacts" / GENERATOR_FILE
    if not keras_file.is_file():
        raise _bad_ref(
            ref,
            f"the MLflow model {uri} has no {GENERATOR_FILE} artifact; it is not a generator "
            "logged by harness (a run logs one with [tracking] log_model = true)",
        )
    return load_keras_file(keras_file, registry=registry)


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def _saved_model_upscaler(path: Path, *, tile: int, overlap: int | None) -> Upscaler:
    """An exported SavedModel whose ``serving_default`` maps ``[0, 1]`` LR to ``[0, 1]`` SR."""
    import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

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
    upscaler = Upscaler(fn, scale, tile=tile, overlap=overlap, source=str(path))
    upscaler.saved_model = loaded  # keeps the loaded object (and its variables) alive
    return upscaler


# --------------------------------------------------------------------------- references


def load_generator(
    ref: str | Path | ModelRef,
    *,
    registry: Registry,
    tracking_uri: str | None = None,
    precision: str = FLOAT32,
) -> Any:
    """The trained generator (``keras.Model``: LR ``[0, 1]`` -> SR ``[-1, 1]``) ``ref`` names,
    computing in ``precision`` (float32 unless asked: a model trained under mixed_bfloat16 is
    rebuilt with float32 layers, :func:`harness.deploy.precision.with_precision`).

    ``registry`` provides the plugins (their Keras layers, and the generator a checkpoint is
    restored into). Raises :class:`ModelReferenceError` listing the accepted forms when ``ref``
    names nothing loadable. An exported SavedModel holds an upscaler, not a generator: use
    :func:`load_upscaler` for it. An MLflow model is read from the store ``tracking_uri`` (else
    ``$MLFLOW_TRACKING_URI``, else the default).
    """
    return with_precision(_generator(ref, registry, tracking_uri), precision)


def _generator(ref: str | Path | ModelRef, registry: Registry, tracking_uri: str | None) -> Any:
    """:func:`load_generator` in the precision the model was saved in."""
    ref = parse_reference(ref)
    kind, path = ref.kind, ref.path
    if kind == refs.KEPT:
        kept = kept_model_path(ref)
        if kept is not None:
            return load_keras_file(kept, registry=registry)
        raise _bad_ref(ref, "no such file or directory, and not an MLflow URI or run id")
    if kind == refs.KERAS:
        return load_keras_file(path, registry=registry)
    if kind == refs.FILE:
        raise _bad_ref(ref, "a file that is not a .keras model")
    if kind == refs.SAVED_MODEL:
        raise _bad_ref(
            ref,
            "it is an exported SavedModel (an upscaler, [0, 1] -> [0, 1]); load it with "
            "load_upscaler, or give the run it was exported from",
        )
    if kind == refs.RUN:
        run = RunDir(path)
        if run.generator.is_file():
            return load_keras_file(run.generator, registry=registry)
        if not run.checkpoints.is_dir():
            raise _bad_ref(ref, "the path holds neither a model, a run nor a checkpoint")
        prefix = _checkpoint_prefix(run.checkpoints, str(ref))
        if prefix is None:
            raise _bad_ref(ref, "its checkpoints/ directory holds no checkpoint yet")
        return _restore_checkpoint(prefix, run.experiment_toml, str(ref), registry)
    if kind == refs.CHECKPOINT:
        prefix = _checkpoint_prefix(path, str(ref))
        if prefix is not None:
            experiment = RunDir(prefix.parent.parent).experiment_toml
            return _restore_checkpoint(prefix, experiment, str(ref), registry)
        raise _bad_ref(ref, "the path holds neither a model, a run nor a checkpoint")
    if kind == refs.FOLDER:
        raise _bad_ref(ref, "the path holds neither a model, a run nor a checkpoint")
    if ref.is_mlflow:
        return _load_mlflow(ref.uri, str(ref), registry, tracking_uri=tracking_uri)
    raise _bad_ref(ref, "no such file or directory, and not an MLflow URI or run id")


def load_upscaler(
    ref: str | Path | ModelRef,
    *,
    registry: Registry,
    tile: int = 0,
    overlap: int | None = None,
    tracking_uri: str | None = None,
    precision: str = FLOAT32,
) -> Upscaler:
    """An :class:`~harness.deploy.upscaler.Upscaler` for ``ref`` (any form
    :func:`load_generator` takes, or an exported SavedModel). ``tile`` > 0 bounds memory (LR
    tile side in pixels); ``overlap`` ``None`` uses the measured receptive field; an MLflow
    model is read from the store ``tracking_uri`` (else ``$MLFLOW_TRACKING_URI``). A generator
    computes in ``precision`` (float32 by default, whatever it was trained in: evaluation
    scores the network's own output, not bf16 rounding); an exported SavedModel runs as it was
    exported."""
    ref = parse_reference(ref)
    if ref.kind == refs.SAVED_MODEL:
        return _saved_model_upscaler(ref.path, tile=tile, overlap=overlap)
    if ref.is_mlflow:
        folder = _mlflow_folder(ref.uri, str(ref), tracking_uri)  # downloaded once, for either form
        saved = folder / "artifacts" / "saved_model"
        if _is_saved_model(saved):
            return _saved_model_upscaler(saved, tile=tile, overlap=overlap)
        generator = with_precision(_load_mlflow(ref.uri, str(ref), registry, folder), precision)
    else:
        generator = load_generator(ref, registry=registry, precision=precision)
    return Upscaler.from_generator(generator, tile=tile, overlap=overlap)


__all__ = [
    "ACCEPTED",
    "MLFLOW_MODEL_NAME",
    "ModelRef",
    "ModelReferenceError",
    "kept_model_path",
    "load_generator",
    "load_keras_file",
    "load_upscaler",
]
