"""The GAN trainer: phases, scheduled weights, compiled steps, checkpoints, validation, MLflow.

Everything the trainer builds comes from the plugin registry and the :class:`Experiment`: the
generator and discriminator factories, the content losses (a
:class:`~harness.plugin_api.losses.Composite`
is expanded into its sub-terms), the adversarial loss and every weight's schedule. No plugin is
named here.

Steps. ``step`` counts generator steps done. Step ``n`` (1-based, as reported in logs, MLflow and
errors) evaluates schedules at ``n - 1``, so a ``piecewise`` boundary at 15000 takes effect on
the 15001st step. Steps ``1 .. train.pretrain_steps`` train the generator alone on the content
losses (the "pretrain" phase, SRResNet-MSE initialisation); later steps are the "gan" phase
when there is an ``[adversarial]`` table (``train.d_steps`` discriminator updates, then one
generator update against the updated discriminator), else the "content" phase.

Weights and learning rates are ``tf.Variable`` s assigned from their schedules before each
step, so a changing weight never retraces the compiled step.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from harness import diskwrite
from harness.config.experiment import Experiment
from harness.errors import ConfigError, HarnessError
from harness.evaluation import protocol as metrics_mod
from harness.plugin_api.losses import Composite, wants_real_logits
from harness.plugin_api.registry import Registry, build_registry
from harness.signals import signals_to_flag
from harness.training import precision, schedules
from harness.training.kept import KeptGenerators

PHASES = ("pretrain", "gan", "content")
RUN_ID_FILE = "mlflow_run_id"
MODEL_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
CHECKPOINTS = "checkpoints"
VAL_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "lpips")


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, named as in Keras
    """Raised by a callback to stop the run cleanly (checkpoint saved, MLflow run KILLED)."""


class NonFiniteLoss(HarnessError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class NonFiniteWeights(HarnessError):
    """A network's weights became NaN or infinite (training diverged); nothing is written from
    them and the last good checkpoint is kept."""


class TrainingInterrupted(HarnessError):
    """SIGINT or SIGTERM: the checkpoint was saved and ``harness run`` resumes the run."""


class Callback(Protocol):
    """What :func:`train` calls back (a sweep prunes a trial by raising :class:`StopTraining`)."""

    def on_validation(self, step: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    """What a finished run returns.

    ``final_metrics`` and ``best_metrics`` hold validation metrics under their MLflow names
    (``val/psnr_y``, ``val/ssim_y``, ``val/psnr_rgb``); ``best`` is by ``val/psnr_y``.
    ``history`` holds one dict per validation with its ``step``.
    """

    run_id: str
    run_dir: Path
    steps: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    bicubic_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model_path: Path | None = None
    model_uri: str | None = None
    kept: dict[str, dict[str, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- building blocks


@dataclass
class _Term:
    """One weighted loss term, its schedule and the variable the compiled step reads."""

    name: str
    loss: Callable[[Any, Any], Any]
    weight: Callable[[int], float]
    variable: tf.Variable
    scheduled: bool = True  # its [losses.*] weight is a schedule: skipped while it is 0
    last: float = float("nan")

    def assign(self, step: int) -> float:
        value = float(self.weight(step))
        if value != self.last:
            self.variable.assign(value)
            self.last = value
        return value


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``train.strategy`` -> a ``tf.distribute`` strategy.

    ``auto``: mirrored over the GPUs when there are several, else the default (one device).
    ``mirrored`` uses every GPU, or every logical CPU device when there is no GPU.
    ``multi_worker`` reads the cluster from ``TF_CONFIG``.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(
        f'train.strategy "{name}" is not known: use auto, default, mirrored or multi_worker.'
    )


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def config_text(params: Mapping[str, Any]) -> str:
    """``blocks=16, filters=64``: a plugin table's parameters for messages."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def _float32(x: Any) -> tf.Tensor:
    return tf.cast(x, tf.float32)


class Trainer:
    """The models, optimizers, weights and compiled steps of one experiment.

    :func:`train` drives it; benchmarks and tests call :meth:`train_step` directly.
    """

    def __init__(
        self,
        exp: Experiment,
        registry: Registry | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.exp = exp
        self.registry = registry = registry or build_registry()
        t = exp.train
        self.policy = precision.resolve(t.precision)
        self.loss_scaling = precision.needs_loss_scaling(self.policy)
        self.strategy = strategy or make_strategy(t.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if t.xla and self.replicas > 1:
            raise ConfigError(
                f"train.xla = true needs one device; train.strategy gives {self.replicas}. "
                'Set train.xla = false or train.strategy = "default".'
            )
        self.chief = _is_chief(self.strategy)
        self.adversarial_enabled = exp.adversarial is not None and t.pretrain_steps < t.steps
        keras.utils.set_random_seed(exp.experiment.seed)

        with precision.policy_scope(self.policy), self.strategy.scope():
            g_factory = registry.factory("generator", exp.generator.name)
            self.generator = g_factory(scale=exp.data.scale, **exp.generator.params)
            self.ema_generator = None
            if t.ema > 0:
                self.ema_generator = g_factory(scale=exp.data.scale, **exp.generator.params)
                self.ema_generator.set_weights(self.generator.get_weights())
            self.discriminator = None
            self.adversarial = None
            if self.adversarial_enabled:
                assert exp.adversarial is not None
                d_factory = registry.factory("discriminator", exp.discriminator.name)
                self.discriminator = d_factory(patch=exp.data.patch, **exp.discriminator.params)
                self.adversarial = registry.factory("adversarial_loss", exp.adversarial.name)(
                    **exp.adversarial.params
                )
            self.terms = self._content_terms()
            self.adv_wants_real = self.adversarial is not None and wants_real_logits(
                self.adversarial
            )
            self.adv_term = None
            if self.adversarial is not None:
                assert exp.adversarial is not None
                self.adv_term = _Term(
                    "adversarial",
                    self.adversarial.generator_loss,
                    schedules.build(exp.adversarial.weight, registry),
                    tf.Variable(0.0, trainable=False, name="weight_adversarial"),
                )
            self.g_learning_rate = schedules.build(t.learning_rate, registry)
            self.d_learning_rate = schedules.build(t.d_learning_rate, registry)
            self.g_optimizer = self._optimizer(self.g_learning_rate(0), "g_optimizer")
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer = None
            if self.discriminator is not None:
                self.d_optimizer = self._optimizer(self.d_learning_rate(0), "d_optimizer")
                self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.phase_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")
            self.rng = tf.random.Generator.from_seed(exp.experiment.seed)
            if self.ema_generator is not None:
                self.ema_decay = tf.constant(t.ema, tf.float32)

        objects: dict[str, Any] = {
            "generator": self.generator,
            "g_optimizer": self.g_optimizer,
            "step": self.step_var,
            "phase": self.phase_var,
            "rng": self.rng,
        }
        if self.discriminator is not None:
            objects["discriminator"] = self.discriminator
            objects["d_optimizer"] = self.d_optimizer
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
        self.objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects)

        self._content_step = self._compile(self._content_replica)
        self._gan_step = self._compile(self._gan_replica) if self.discriminator else None
        self._d_step = self._compile(self._d_only_replica) if self.discriminator else None
        self._dataset: Any = None
        self._iterator: Iterator[Any] | None = None
        self._upscalers: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
        self.step = 0
        self.restore_note = ""
        self._lr_last = (float("nan"), float("nan"))

    # ------------------------------------------------------------------ construction

    def _optimizer(self, learning_rate: float, name: str) -> keras.optimizers.Optimizer:
        t = self.exp.train
        opt = keras.optimizers.Adam(
            learning_rate=learning_rate, beta_1=t.beta1, beta_2=t.beta2, name=name
        )
        if self.loss_scaling:
            opt = keras.mixed_precision.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
        return opt

    def _content_terms(self) -> list[_Term]:
        terms = []
        for cfg in self.exp.losses:
            if isinstance(cfg.weight, int | float) and cfg.weight == 0:
                continue  # switched off (e.g. an inherited [losses.mse] in a fine-tune)
            built = self.registry.factory("content_loss", cfg.plugin)(**cfg.params)
            outer = schedules.build(cfg.weight, self.registry)
            # Only a term whose configured weight is a schedule is wrapped in a tf.cond that
            # skips it at weight 0: the cond costs a few percent of a step.
            scheduled = not isinstance(cfg.weight, int | float)
            if isinstance(built, Composite):
                for sub in built.terms:

                    def weight(step: int, outer=outer, inner=sub.weight) -> float:
                        return outer(step) * inner(step)

                    name = f"{cfg.key}/{sub.name}"
                    var = self._weight_var(name)
                    terms.append(_Term(name, sub.loss, weight, var, scheduled))
            else:
                var = self._weight_var(cfg.key)
                terms.append(_Term(cfg.key, built, outer, var, scheduled))
        return terms

    @staticmethod
    def _weight_var(name: str) -> tf.Variable:
        return tf.Variable(0.0, trainable=False, name="weight_" + name.replace("/", "_"))

    def _compile(self, replica_fn: Callable[..., dict[str, tf.Tensor]]) -> Any:
        strategy = self.strategy

        def step(lr: tf.Tensor, hr: tf.Tensor) -> dict[str, tf.Tensor]:
            out = strategy.run(replica_fn, args=(lr, hr))
            out = {
                k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in out.items()
            }
            if self.ema_generator is not None and replica_fn is not self._d_only_replica:
                self._ema_update()
            return out

        return tf.function(step, jit_compile=bool(self.exp.train.xla))

    def warm_start(self) -> list[Any]:
        """Copy ``[generator] init`` / ``[discriminator] init`` weights into the fresh networks
        (a new run only). Returns the :class:`harness.training.warmstart.Source` s used."""
        from harness.training import warmstart

        exp, sources = self.exp, []
        if exp.generator.init:
            source = warmstart.load_generator(exp.generator.init)
            desc = f"[generator] {exp.generator.name} ({config_text(exp.generator.params)})"
            warmstart.copy_weights(self.generator, source, "generator", exp.generator.init, desc)
            if self.ema_generator is not None:
                self.ema_generator.set_weights(self.generator.get_weights())
            sources.append(
                warmstart.Source(
                    "generator", exp.generator.init, warmstart.lineage(exp.generator.init)
                )
            )
        if exp.discriminator.init and self.discriminator is not None:
            d_factory = self.registry.factory("discriminator", exp.discriminator.name)

            def build() -> Any:
                with precision.policy_scope(self.policy):
                    return d_factory(patch=exp.data.patch, **exp.discriminator.params)

            source = warmstart.load_discriminator(exp.discriminator.init, build)
            params = config_text(exp.discriminator.params)
            desc = f"[discriminator] {exp.discriminator.name} ({params})"
            warmstart.copy_weights(
                self.discriminator, source, "discriminator", exp.discriminator.init, desc
            )
            sources.append(
                warmstart.Source(
                    "discriminator",
                    exp.discriminator.init,
                    warmstart.lineage(exp.discriminator.init),
                )
            )
        return sources

    # ------------------------------------------------------------------ per-replica maths

    def _scaled(self, loss: tf.Tensor, optimizer: Any) -> tf.Tensor:
        loss = loss / self.replicas  # the optimizer sums gradients over replicas
        return optimizer.scale_loss(loss) if self.loss_scaling else loss

    def _apply(self, optimizer: Any, tape: tf.GradientTape, loss: tf.Tensor, model: Any) -> None:
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    def _content(self, sr: tf.Tensor, hr: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Unweighted content losses and their weighted sum. A scheduled term whose weight is
        0 now (VGG54 during MSE pre-training, say) is not computed: it reads as 0."""
        losses = {}
        for t in self.terms:
            if t.scheduled:
                losses[t.name] = tf.cond(
                    tf.not_equal(t.variable, 0.0),
                    lambda t=t: _float32(t.loss(sr, hr)),
                    lambda: tf.constant(0.0, tf.float32),
                )
            else:
                losses[t.name] = _float32(t.loss(sr, hr))
        if not self.terms:
            return losses, tf.constant(0.0, tf.float32)
        total = tf.add_n([t.variable * losses[t.name] for t in self.terms])
        return losses, total

    def _content_replica(self, lr: tf.Tensor, hr: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            losses, total = self._content(sr, hr)
            scaled = self._scaled(total, self.g_optimizer)
        self._apply(self.g_optimizer, tape, scaled, self.generator)
        return {**losses, "g_total": total}

    def _d_loss(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        assert self.discriminator is not None and self.adversarial is not None
        real = _float32(self.discriminator(hr, training=True))
        fake = _float32(self.discriminator(sr, training=True))
        d_loss = _float32(self.adversarial.discriminator_loss(real, fake))
        penalty = getattr(self.adversarial, "penalty", None)
        if penalty is not None:
            d_loss = d_loss + _float32(penalty(self.discriminator, hr, sr))
        return d_loss

    def _d_update(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            d_loss = self._d_loss(hr, sr)
            scaled = self._scaled(d_loss, self.d_optimizer)
        self._apply(self.d_optimizer, tape, scaled, self.discriminator)
        return d_loss

    def _d_only_replica(self, lr: tf.Tensor, hr: tf.Tensor) -> dict[str, tf.Tensor]:
        sr = tf.stop_gradient(self.generator(lr, training=False))
        return {"d": self._d_update(hr, sr)}

    def _gan_replica(self, lr: tf.Tensor, hr: tf.Tensor) -> dict[str, tf.Tensor]:
        """One discriminator update, then one generator update against the updated D.

        The generator's forward pass is shared: its output is fixed for the D update (no
        gradient to G) and differentiated for the G update.
        """
        assert self.adv_term is not None and self.discriminator is not None
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            with tape.stop_recording():
                d_loss = self._d_update(hr, tf.stop_gradient(sr))
            losses, content_total = self._content(sr, hr)
            fake = _float32(self.discriminator(sr, training=True))
            if self.adv_wants_real:  # relativistic losses compare fake with real logits
                real = tf.stop_gradient(_float32(self.discriminator(hr, training=True)))
                adv = _float32(self.adv_term.loss(fake, real_logits=real))
            else:
                adv = _float32(self.adv_term.loss(fake))
            total = content_total + self.adv_term.variable * adv
            scaled = self._scaled(total, self.g_optimizer)
        self._apply(self.g_optimizer, tape, scaled, self.generator)
        return {**losses, "adversarial": adv, "d": d_loss, "g_total": total}

    def _ema_update(self) -> None:
        assert self.ema_generator is not None
        decay = self.ema_decay
        for ema, w in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            value = tf.cast(w, ema.dtype)
            ema.assign(decay * ema + (1.0 - decay) * value)

    # ------------------------------------------------------------------ driving

    def phase(self, step: int | None = None) -> str:
        """The phase of the step after ``step`` generator steps."""
        step = self.step if step is None else step
        if step < self.exp.train.pretrain_steps or self.discriminator is None:
            return "pretrain" if self.discriminator is not None else "content"
        return "gan"

    def start_data(self, dataset: tf.data.Dataset | None = None) -> None:
        """Open the training data; its seed comes from the checkpointed RNG, so a resumed run
        draws a fresh, reproducible order."""
        if dataset is None:
            from harness.data import pipeline as data

            seed = int(self.rng.uniform_full_int([], tf.int64).numpy() % (2**31 - 1))
            dataset = data.training_dataset(self.exp.data, self.exp.train.batch_size, seed)
        if self.replicas > 1:
            dataset = self.strategy.experimental_distribute_dataset(dataset)
        self._dataset = dataset
        self._iterator = iter(dataset)

    def weights_at(self, step: int) -> dict[str, float]:
        """Assign every weight and learning rate for the step after ``step`` steps."""
        phase = self.phase(step)
        out = {t.name: t.assign(step) for t in self.terms}
        if self.adv_term is not None and phase == "gan":
            out[self.adv_term.name] = self.adv_term.assign(step)
        g_lr = float(self.g_learning_rate(step))
        d_lr = float(self.d_learning_rate(step)) if self.d_optimizer is not None else 0.0
        if (g_lr, d_lr) != self._lr_last:
            self.g_optimizer.learning_rate = g_lr
            if self.d_optimizer is not None:
                self.d_optimizer.learning_rate = d_lr
            self._lr_last = (g_lr, d_lr)
        return out

    def train_step(self) -> dict[str, float]:
        """One generator step (after ``d_steps - 1`` extra discriminator steps in the GAN
        phase). Returns the unweighted losses as Python floats; advances :attr:`step`."""
        if self._iterator is None:
            self.start_data()
        assert self._iterator is not None
        phase = self.phase()
        self.weights_at(self.step)
        if phase == "gan":
            assert self._d_step is not None and self._gan_step is not None
            for _ in range(self.exp.train.d_steps - 1):
                self._d_step(*self._next_batch())
            out = self._gan_step(*self._next_batch())
        else:
            out = self._content_step(*self._next_batch())
        self.step += 1
        return {k: float(v) for k, v in out.items()}

    def _next_batch(self) -> Any:
        assert self._iterator is not None
        try:
            return next(self._iterator)
        except StopIteration:
            # The training dataset repeats forever once one image decodes, so an end means that
            # every file passed its header check and then failed to decode (truncated JPEGs).
            from harness.data.pipeline import DataError

            raise DataError(
                "none of the training images in "
                f"{', '.join(self.exp.data.train)} could be decoded (truncated or damaged "
                "files; the warnings above name them). List them with `harness data check "
                "FOLDER` and replace or remove them."
            ) from None

    def non_finite_weight(self) -> str | None:
        """The path of the first NaN or infinite weight of any network, or ``None``."""
        for model in (self.generator, self.ema_generator, self.discriminator):
            if model is None:
                continue
            for variable in model.weights:
                if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                    return f"{model.name}: {variable.path}"
        return None

    @property
    def final_generator(self) -> keras.Model:
        """The model validation and export use: the EMA generator when ``train.ema > 0``."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def upscaler(self) -> Callable[[np.ndarray], np.ndarray]:
        """The final generator as an upscaler: LR ``[0, 1]`` -> SR ``[0, 1]`` (float32)."""
        model = self.final_generator
        key = id(model)
        if key not in self._upscalers:
            infer = tf.function(
                lambda lr: model(lr, training=False),
                input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            )

            def upscale(lr: np.ndarray) -> np.ndarray:
                sr = infer(tf.convert_to_tensor(np.asarray(lr, np.float32))).numpy()
                return np.clip((sr + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)

            self._upscalers[key] = upscale
        return self._upscalers[key]

    # ------------------------------------------------------------------ checkpoints

    def manager(self, directory: Path) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=2)

    def save(self, manager: tf.train.CheckpointManager) -> str:
        """Write a checkpoint (TF writes the data first and then swaps the index atomically)."""
        self.step_var.assign(self.step)
        self.phase_var.assign(PHASES.index(self.phase()))
        return manager.save(checkpoint_number=self.step)

    def restore(self, manager: tf.train.CheckpointManager, previous: str = "") -> bool:
        """Restore the latest checkpoint, if any; ``True`` when one was restored.

        ``previous`` is the run's earlier ``experiment.toml`` (its text), used to say which
        settings changed when the checkpoint does not fit this experiment.
        """
        self.restore_note = ""
        candidates = list(reversed(manager.checkpoints))  # newest first
        if not candidates:
            return False
        unreadable: list[str] = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as exc:  # TF raises OpError, IndexError, ValueError, ...
                if _readable(path) and isinstance(exc, AssertionError | ValueError):
                    raise HarnessError(self._mismatch(path, previous)) from None
                # a truncated or corrupt file: fall back to the next older checkpoint
                unreadable.append(f"{Path(path).name} ({type(exc).__name__})")
                continue
            self.step = int(self.step_var.numpy())
            if unreadable:
                self.restore_note = (
                    f"could not read {', '.join(unreadable)}; resumed from the older "
                    f"{Path(path).name} (the unreadable files are left in place)"
                )
            return True
        raise HarnessError(
            f"no checkpoint in {Path(candidates[0]).parent} can be read ({', '.join(unreadable)}). "
            "The files are left as they are; `harness run --fresh` starts over and moves them "
            "aside."
        )

    def _mismatch(self, path: str, previous: str) -> str:
        """Why checkpoint ``path`` does not fit: the objects that differ, not their values."""
        saved = checkpoint_objects(path)
        missing = [n for n in self.objects if saved and n not in saved]
        extra = [n for n in saved if n not in self.objects]
        differ = []
        for name, obj in self.objects.items():
            if name in missing:
                continue
            try:
                status = tf.train.Checkpoint(**{name: obj}).read(path).expect_partial()
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError):
                differ.append(name)
        parts = []
        if extra:
            parts.append(f"in the checkpoint, not in this experiment: {', '.join(extra)}")
        if missing:
            parts.append(f"in this experiment, not in the checkpoint: {', '.join(missing)}")
        if differ:
            parts.append(f"of another shape or structure: {', '.join(differ)}")
        changed = changed_settings(previous, self.exp) if previous else []
        if changed:
            shown = ", ".join(changed[:8]) + (
                f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            )
            parts.append(f"settings changed since the run was started: {shown}")
        run_dir = self.exp.run_dir
        return (
            f"checkpoint {path} was written by a different experiment "
            f"({'; '.join(parts) or 'its objects do not match'}). To start a new run from this "
            f"one's weights, give the experiment another [experiment] name and set [generator] "
            f'init = "{run_dir}"; to start this run over, run with --fresh (it moves the old '
            "checkpoints aside)."
        )


def _readable(path: str) -> bool:
    """Whether every variable of checkpoint ``path`` can be read (not truncated or corrupt)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # DataLossError, NotFoundError, OutOfRangeError, ...
        return False
    return True


def checkpoint_objects(path: str) -> list[str]:
    """The top-level object names saved in checkpoint ``path`` (``generator``, ...)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(path)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception:  # an unreadable checkpoint: the caller says what does not match
        return []
    return [
        child.local_name for child in graph.nodes[0].children if child.local_name != "save_counter"
    ]


def changed_settings(previous_toml: str, exp: Experiment) -> list[str]:
    """Dotted keys whose values differ between a run's saved experiment and ``exp``."""
    import tomllib

    from harness.config.experiment import flatten

    try:
        before = flatten(tomllib.loads(previous_toml))
    except tomllib.TOMLDecodeError:
        return []
    now = exp.flat_params()
    keys = sorted(set(before) | set(now))
    out = []
    for key in keys:
        if key.startswith(("experiment.description", "train.quiet")):
            continue
        a, b = before.get(key), now.get(key)
        if a != b:
            out.append(
                f"{key} ({a if a is not None else 'unset'} -> {b if b is not None else 'unset'})"
            )
    return out


# --------------------------------------------------------------------------- validation


def _mean_metrics(result: Any, prefix: str = "val/") -> dict[str, float]:
    """An ``EvalResult`` -> its finite means under MLflow names (``val/psnr_y``, ...)."""
    return {prefix + k: float(v) for k, v in result.means().items() if math.isfinite(v)}


def validation_extras(exp: Experiment, registry: Registry) -> dict[str, Callable[..., float]]:
    """Metrics measured beside PSNR/SSIM: every registered ``metric`` plugin whose protocol is
    ``in_validation`` (cheap ones), plus those ``[validation] metrics`` lists (``lpips = true``
    lists LPIPS). Each is measured on the protocol it declares (:class:`MetricProtocol`)."""
    listed = list(exp.validation.metrics)
    if exp.validation.lpips and "lpips" not in listed:
        listed.append("lpips")
    extras = {}
    for name in registry.names("metric"):
        factory = registry.factory("metric", name)
        if name in listed or metrics_mod.metric_protocol(factory).in_validation:
            extras[name] = metrics_mod.build_metric(factory)
    for name in listed:
        if name not in extras:
            if name == "lpips":  # the first-party plugins may be disabled; LPIPS is in the host
                from harness_metrics.lpips import lpips_metric

                extras["lpips"] = lpips_metric()
            else:
                extras[name] = metrics_mod.build_metric(
                    registry.factory("metric", name, where="[validation] metrics")
                )
    return extras


def sample_grid(
    upscale: Callable[[np.ndarray], np.ndarray],
    images: Sequence[tuple[str, np.ndarray]],
    scale: int,
) -> bytes:
    """A PNG: one row per image, columns LR (nearest) | bicubic | SR | HR."""
    from harness.data.images import encode_png
    from harness.evaluation import protocol as metrics

    rows = []
    for _, hr in images:
        h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
        lr = metrics.bicubic_downsample(hr[:h, :w], scale)[None]
        nearest = np.repeat(np.repeat(lr[0], scale, axis=0), scale, axis=1)
        bicubic = metrics.bicubic_upsample(lr, scale)[0]
        sr = upscale(lr)[0]
        tiles = [nearest, bicubic, sr, hr[:h, :w].astype(np.float32) / 255.0]
        tiles = [metrics.to_uint8(t) for t in tiles]
        gap = np.full((h, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2], gap, tiles[3]], 1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([r, pad], 1), np.full((4, width, 3), 255, np.uint8)]
    return encode_png(np.concatenate(padded[:-1], 0))


# --------------------------------------------------------------------------- the run


class _NullTracker:
    """What a non-chief worker of a multi-worker run logs with: nothing."""

    run_id = ""
    resumed = False

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


class _Progress:
    """A tqdm bar with step, phase, losses, img/s and ETA; when quiet (for logs), no bar but one
    plain line every ``log_every`` steps with the same fields."""

    def __init__(self, total: int, initial: int, quiet: bool, log_every: int = 100) -> None:
        from tqdm.auto import tqdm

        self.quiet = quiet
        self.total, self.step, self.first = total, initial, initial
        self.log_every = max(1, log_every)
        self.started = time.monotonic()
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=quiet,
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )

    def update(self, phase: str, losses: Mapping[str, float], img_per_s: float) -> None:
        shown = {"phase": phase}
        for key in ("g_total", "d"):
            if key in losses:
                shown[key] = f"{losses[key]:.4g}"
        if img_per_s:
            shown["img/s"] = f"{img_per_s:.1f}"
        self.step += 1
        if not self.quiet:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif self.step % self.log_every == 0 or self.step == self.total:
            per_step = (time.monotonic() - self.started) / max(1, self.step - self.first)
            eta = int(per_step * (self.total - self.step))
            fields = " ".join(f"{k}={v}" for k, v in shown.items())
            self.write(
                f"step {self.step}/{self.total} {fields} "
                f"eta {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
            )

    def write(self, text: str) -> None:
        if self.quiet:
            print(text, flush=True)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def _move_aside(run_dir: Path) -> Path | None:
    """``--fresh``: move checkpoints, kept generators and the final model into
    ``<run_dir>/previous-<time>/`` (never deleted); ``None`` when there was nothing."""
    names = [CHECKPOINTS, MODEL_FILE, DISCRIMINATOR_FILE, "kept.json"]
    found = [run_dir / n for n in names if (run_dir / n).exists()]
    found += sorted(run_dir.glob("best_*.keras"))
    if not found:
        return None
    target = run_dir / time.strftime("previous-%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for path in found:
        os.replace(path, target / path.name)
    return target


def train(
    exp: Experiment,
    *,
    callbacks: Sequence[Callback] = (),
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    fresh: bool = False,
    registry: Registry | None = None,
) -> TrainResult:
    """Train ``exp`` to ``train.steps``, resuming its run directory's checkpoint if there is one.

    Args:
        exp: the experiment (:func:`harness.config.experiment.load`).
        callbacks: objects with ``on_validation(step, metrics)``; raising :class:`StopTraining`
            there stops the run cleanly (checkpoint saved, MLflow run KILLED) and re-raises.
        parent_run_id: make the MLflow run a child of this run (sweeps).
        run_name, tags: the MLflow run's name (default: the experiment's name) and extra tags.
        fresh: move an existing checkpoint (and kept models) aside into
            ``<run_dir>/previous-<time>/`` and start a new MLflow run.
        registry: the plugin registry (default: the process-wide one).

    Raises:
        NonFiniteLoss: a loss became NaN/inf (the MLflow run is FAILED).
        TrainingInterrupted: SIGINT/SIGTERM (checkpoint saved, MLflow run KILLED).
        StopTraining: re-raised from a callback.
    """
    from harness.tracking import Tracker

    registry = registry or build_registry()
    run_dir = exp.run_dir
    ckpt_dir = run_dir / CHECKPOINTS
    run_id_file = run_dir / RUN_ID_FILE
    if fresh:
        moved = _move_aside(run_dir)
        if moved is not None:
            print(f"--fresh: the previous run's checkpoints and kept models are in {moved}")
        run_id_file.unlink(missing_ok=True)
    resuming = tf.train.latest_checkpoint(str(ckpt_dir)) is not None
    previous_run = run_id_file.read_text().strip() if resuming and run_id_file.exists() else None

    strategy = make_strategy(exp.train.strategy)
    chief = _is_chief(strategy)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        tracker: Any = Tracker(
            exp, run_id=previous_run, parent_run_id=parent_run_id, run_name=run_name, tags=tags
        )
        _atomic_write(run_id_file, tracker.run_id + "\n")
    else:
        tracker = _NullTracker()
    try:
        result = _run(exp, registry, strategy, tracker, callbacks, chief, ckpt_dir)
    except StopTraining:
        tracker.end("KILLED")
        raise
    except TrainingInterrupted as exc:
        tracker.end("KILLED", error=str(exc))
        raise
    except KeyboardInterrupt:
        tracker.end("KILLED", error="KeyboardInterrupt")
        raise
    except BaseException as exc:
        tracker.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    tracker.end("FINISHED")
    return result


def _run(
    exp: Experiment,
    registry: Registry,
    strategy: tf.distribute.Strategy,
    tracker: Any,
    callbacks: Sequence[Callback],
    chief: bool,
    ckpt_dir: Path,
) -> TrainResult:
    from harness.data import pipeline as data
    from harness.evaluation import protocol as metrics

    t, v = exp.train, exp.validation
    run_dir = exp.run_dir
    toml_path = run_dir / "experiment.toml"
    previous = toml_path.read_text(encoding="utf-8") if toml_path.is_file() else ""

    trainer = Trainer(exp, registry, strategy)
    if not chief:  # every worker must save (collectively); only the chief's copy is kept
        ckpt_dir = Path(tempfile.mkdtemp(prefix="harness-worker-ckpt-"))
    manager = trainer.manager(ckpt_dir)
    resumed = trainer.restore(manager, previous)
    sources = [] if resumed else trainer.warm_start()
    if chief:
        _atomic_write(toml_path, exp.to_toml())
        tracker.log_params(exp.flat_params())
        tracker.log_artifact(toml_path)
        tracker.set_tags({"precision": trainer.policy, "replicas": trainer.replicas})
        for source in sources:
            tracker.log_lineage(source)
    kept = KeptGenerators(run_dir, exp, registry, enabled=chief, resumed=resumed)
    last_saved = trainer.step if resumed else -1
    result = TrainResult(run_id=tracker.run_id, run_dir=run_dir, steps=trainer.step)
    quiet = t.quiet
    progress = _Progress(t.steps, trainer.step, quiet, t.log_every)
    say = progress.write
    if resumed:
        say(f"resuming {exp.experiment.name} at step {trainer.step} ({trainer.phase()} phase)")
        if trainer.restore_note:
            say(trainer.restore_note)
    say(f"precision {trainer.policy}, {trainer.replicas} replica(s); run dir {run_dir}")

    images = data.validation_images(exp.data)
    samples = images[: v.samples]
    extras = validation_extras(exp, registry)
    if images and not resumed:
        bicubic = metrics.evaluate(metrics.bicubic_upscaler(exp.data.scale), images, exp.data.scale)
        result.bicubic_metrics = _mean_metrics(bicubic, "val/bicubic_")
        tracker.log_metrics(result.bicubic_metrics, step=0)
        say(
            "bicubic on the validation set: "
            + ", ".join(f"{k.split('_', 1)[1]} {x:.4g}" for k, x in result.bicubic_metrics.items())
        )

    def validate(step: int) -> dict[str, float]:
        check_weights("at a validation")
        upscale = trainer.upscaler()
        scores = _mean_metrics(metrics.evaluate(upscale, images, exp.data.scale, extra=extras))
        tracker.log_metrics(scores, step=step)
        if samples and chief:
            tracker.log_bytes(
                sample_grid(upscale, samples, exp.data.scale), f"samples/step_{step}.png"
            )
        result.history.append({"step": float(step), **scores})
        result.final_metrics = scores
        for name in kept.update(trainer.final_generator, step, scores):
            say(f"step {step}: best {name.removeprefix('best_')} so far, kept as {name}.keras")
        best = result.best_metrics.get("val/psnr_y", -math.inf)
        if scores.get("val/psnr_y", -math.inf) > best:
            result.best_metrics, result.best_step = dict(scores), step
        base = result.bicubic_metrics.get("val/bicubic_psnr_y")
        vs = f" (bicubic {base:.2f})" if base is not None else ""
        psnr = scores.get("val/psnr_y", float("nan"))
        ssim = scores.get("val/ssim_y", float("nan"))
        say(f"step {step}: validation PSNR-Y {psnr:.2f} dB{vs}, SSIM-Y {ssim:.4f}")
        for callback in callbacks:
            callback.on_validation(step, dict(scores))
        return scores

    def check_weights(when: str) -> None:
        """Refuse to go on (or to write anything) from non-finite weights."""
        bad = trainer.non_finite_weight()
        if bad is None:
            return
        kept = f"step {last_saved}" if last_saved >= 0 else "none was written yet"
        raise NonFiniteWeights(
            f"the weights became NaN or infinite by step {trainer.step} ({trainer.phase()} "
            f"phase; first: {bad}), found {when}: training diverged. Nothing was written from "
            f"them; the last good checkpoint ({kept}) is kept in {ckpt_dir}. Lower "
            "train.learning_rate (or its schedule's peak) and resume, or start over with --fresh."
        )

    def save() -> None:
        nonlocal last_saved
        if trainer.step != last_saved:
            check_weights("before saving a checkpoint")
            kept_ckpt = f"the checkpoint of step {last_saved} is intact" if last_saved >= 0 else ""
            with diskwrite.writing(
                f"the checkpoint of step {trainer.step}", ckpt_dir, ["*_temp"], kept_ckpt
            ):
                trainer.save(manager)
            last_saved = trainer.step

    flag: dict[str, int] = {}
    sums: dict[str, float] = {}
    count, tick, validated = 0, time.perf_counter(), -1
    img_per_s = 0.0
    try:
        with signals_to_flag(flag):
            trainer.start_data()
            while trainer.step < t.steps:
                step0 = trainer.step
                weights = trainer.weights_at(step0)
                phase = trainer.phase(step0)
                losses = trainer.train_step()
                step = trainer.step
                # a term weighted 0 was not computed: nothing to log for it
                losses = {k: x for k, x in losses.items() if weights.get(k, 1.0) != 0.0}
                for name, value in losses.items():
                    if not math.isfinite(value):
                        kept = f"step {last_saved}" if last_saved >= 0 else "none written yet"
                        raise NonFiniteLoss(
                            f'loss term "{name}" is {value} at step {step} ({phase} phase). '
                            f"The run stopped; the last good checkpoint ({kept}) is kept in "
                            f"{ckpt_dir}. Lower train.learning_rate or this term's weight, or "
                            'set train.precision = "float32".'
                        )
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                if step % t.log_every == 0 or step == t.steps:
                    check_weights("at a log interval")
                    now = time.perf_counter()
                    img_per_s = count * t.batch_size / max(now - tick, 1e-9)
                    logged = {f"loss/{k}": s / count for k, s in sums.items()}
                    logged.update({f"weight/{k}": w for k, w in weights.items()})
                    logged["train/img_per_s"] = img_per_s
                    logged["train/learning_rate"] = float(trainer.g_learning_rate(step0))
                    if trainer.d_optimizer is not None and phase == "gan":
                        logged["train/d_learning_rate"] = float(trainer.d_learning_rate(step0))
                    logged["train/phase"] = float(PHASES.index(phase))
                    tracker.log_metrics(logged, step=step)
                    sums, count, tick = {}, 0, time.perf_counter()
                progress.update(phase, losses, img_per_s)
                if step % t.checkpoint_every == 0:
                    save()
                if flag.get("signal"):
                    save()
                    name = signal.Signals(flag["signal"]).name
                    raise TrainingInterrupted(
                        f"{name} at step {step}: checkpoint saved in {ckpt_dir}. "
                        f"`harness run {exp.source}` resumes this run."
                    )
                if images and v.every and step % v.every == 0:
                    validate(step)
                    validated = step
            if images and validated != trainer.step:
                validate(trainer.step)
            save()
    except StopTraining:
        save()
        raise
    except KeyboardInterrupt:
        save()
        raise
    finally:
        progress.close()

    result.steps = trainer.step
    check_weights("before writing the final model")
    if chief:
        model = trainer.final_generator
        path = run_dir / MODEL_FILE
        tmp = path.with_name("generator.tmp.keras")
        final_kept = f"the checkpoint of step {trainer.step} is intact"
        with diskwrite.writing("the final generator", path, [tmp], final_kept):
            model.save(tmp)
        os.replace(tmp, path)
        result.model_path = path
        if trainer.discriminator is not None:
            d_path = run_dir / DISCRIMINATOR_FILE
            d_tmp = d_path.with_name("discriminator.tmp.keras")
            with diskwrite.writing("the discriminator", d_path, [d_tmp], final_kept):
                trainer.discriminator.save(d_tmp)
            os.replace(d_tmp, d_path)
        result.kept = kept.summary()
        if exp.tracking.log_model:
            result.model_uri = tracker.log_generator(model, step=trainer.step)
            tracker.set_tag("generator_model_uri", result.model_uri)
            for name, info in kept.load_all():
                if info.step == trainer.step:  # the final generator itself: not logged twice
                    uri = result.model_uri
                else:
                    uri = tracker.log_generator(info.model, step=info.step, name=name)
                tracker.set_tag(f"{name}_model_uri", uri)
    return result


__all__ = [
    "Callback",
    "NonFiniteLoss",
    "NonFiniteWeights",
    "StopTraining",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "make_strategy",
    "sample_grid",
    "train",
]
