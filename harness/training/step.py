"""The GAN step: one experiment's models, optimizers, weighted loss terms and compiled steps.

Everything the :class:`Trainer` builds comes from the registry it is given and the
:class:`~harness.config.Experiment`: the generator and discriminator factories, the
content losses (one ``[losses.<key>]`` table, one term) and the adversarial loss; every weight
and learning rate is a function of the step that the config built when the experiment was read
(:func:`harness.config.schedules.functions`). No plugin is named here. The loop around the
step (validation, checkpoints, tracking, progress) is :mod:`harness.training.loop`; it calls
:meth:`Trainer.train_step` once per step.

Steps. ``step`` counts generator steps done. Step ``n`` (1-based, as reported in logs, MLflow and
errors) evaluates schedules at ``n - 1``, so a ``piecewise`` boundary at 15000 takes effect on
the 15001st step. A step whose adversarial weight is non-zero makes ``train.d_steps``
discriminator updates, then one generator update against the updated discriminator; a step
whose adversarial weight is 0 (there is no ``[adversarial]`` table, or the weight's schedule is 0
then: steps ``1 .. train.pretrain_steps``, SRResNet-MSE initialisation) updates the generator on
the content losses alone.

Weights and learning rates are ``tf.Variable`` s assigned from their schedules once per step
(:meth:`Trainer.weights_at`), so a changing weight never retraces the compiled step. A term
whose weight is 0 at every step of the run, however the TOML spells it (``0``, ``0.0``, a
``constant`` or ``piecewise`` schedule that stays 0, ``pretrain_steps = steps`` for the
adversarial weight), is never built (nor, for the adversarial term, the discriminator); a term
whose schedule is 0 at some steps only is skipped while it is 0; a term never weighted 0 is
never tested. A content term is skipped inside the compiled step (``tf.cond``); the adversarial
term is skipped with the discriminator update it needs, which is a whole optimizer step: the
step compiled without it runs instead (:meth:`Trainer.train_step`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from harness.config import Experiment, schedules
from harness.data import pipeline as data
from harness.data.folders import DataError
from harness.errors import ConfigError
from harness.plugin_api.losses import wants_ema_sr, wants_real_logits
from harness.plugin_api.registry import Registry
from harness.training import precision


@dataclass
class _Term:
    """One weighted loss term, its schedule and the variable the compiled step reads."""

    name: str
    loss: Callable[..., Any]
    weight: Callable[[int], float]
    variable: tf.Variable
    scheduled: bool = True  # its weight is 0 at some steps: skipped while it is 0
    last: float = float("nan")
    ema: bool = False  # the loss declares ema_sr: it gets the EMA generator's output

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
    if name == "multi_worker":
        # before anything lists devices: collective ops must be configured before TensorFlow's
        # context is initialised ("Collective ops must be configured at program startup")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ConfigError(
        f'train.strategy "{name}" is not known: use auto, default, mirrored or multi_worker.'
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes files and logs (the chief, or the only worker)."""
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

    :func:`harness.training.loop.train` drives it; benchmarks and tests call
    :meth:`train_step` directly.
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        registry: Registry,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.exp = exp
        self.registry = registry
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
        self.chief = is_chief(self.strategy)
        self.schedules = schedules.functions(exp, registry)
        adversarial_zero = "always"
        if exp.adversarial is not None:
            weight = self.schedules[schedules.ADVERSARIAL]
            adversarial_zero = schedules.zero_steps(exp.adversarial.weight, weight, t.steps)
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
            if adversarial_zero != "always":  # 0 for the whole run: no discriminator
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
                self.adv_term = _Term(
                    "adversarial",
                    self.adversarial.generator_loss,
                    self.schedules[schedules.ADVERSARIAL],
                    tf.Variable(0.0, trainable=False, name="weight_adversarial"),
                    adversarial_zero == "sometimes",
                )
            self.g_learning_rate = self.schedules["train.learning_rate"]
            self.d_learning_rate = self.schedules["train.d_learning_rate"]
            self.g_optimizer = self._optimizer(self.g_learning_rate(0), "g_optimizer")
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer = None
            if self.discriminator is not None:
                self.d_optimizer = self._optimizer(self.d_learning_rate(0), "d_optimizer")
                self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.rng = tf.random.Generator.from_seed(exp.experiment.seed)
            if self.ema_generator is not None:
                self.ema_decay = tf.constant(t.ema, tf.float32)

        objects: dict[str, Any] = {
            "generator": self.generator,
            "g_optimizer": self.g_optimizer,
            "step": self.step_var,
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
        self._iterator: Iterator[Any] | None = None
        self.step = 0
        self.weights: dict[str, float] = {}  # the weights of the last step, as assigned
        self.learning_rates = (float("nan"), float("nan"))  # (G, D) of the last step

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
            weight = self.schedules[f"losses.{cfg.key}.weight"]
            zero = schedules.zero_steps(cfg.weight, weight, self.exp.train.steps)
            if zero == "always":
                continue  # switched off for the whole run: the loss is never built
            loss = self.registry.factory("content_loss", cfg.plugin)(**cfg.params)
            ema = wants_ema_sr(loss)
            if ema and self.ema_generator is None:
                raise ConfigError(
                    f'[losses.{cfg.key}] ("{cfg.plugin}") compares with the EMA generator\'s '
                    "output, and [train] ema is 0. Set [train] ema = 0.999 (say)."
                )
            # Only a term whose weight is 0 at some step is wrapped in a tf.cond that skips it
            # then: the cond costs a few percent of a step.
            scheduled = zero == "sometimes"
            var = tf.Variable(0.0, trainable=False, name="weight_" + cfg.key)
            terms.append(_Term(cfg.key, loss, weight, var, scheduled, ema=ema))
        if not terms and self.adversarial is None:
            raise ConfigError(
                f"every [losses.*] weight is 0 for all {self.exp.train.steps} steps of "
                f"{self.exp.source or 'the experiment'} and nothing else trains the generator. "
                "Give one loss a non-zero weight."
            )
        return terms

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

    # ------------------------------------------------------------------ per-replica maths

    def _scaled(self, loss: tf.Tensor, optimizer: Any) -> tf.Tensor:
        loss = loss / self.replicas  # the optimizer sums gradients over replicas
        return optimizer.scale_loss(loss) if self.loss_scaling else loss

    def _apply(self, optimizer: Any, tape: tf.GradientTape, loss: tf.Tensor, model: Any) -> None:
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    def _content(self, sr: Any, hr: Any, lr: Any) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Unweighted content losses and their weighted sum. A scheduled term whose weight is
        0 now (VGG54 during MSE pre-training, say) is not computed: it reads as 0. The EMA
        generator runs once, for the terms that declare ``ema_sr``."""
        losses = {}
        ema_sr = None
        if any(t.ema for t in self.terms):  # the trainer refused these without an EMA
            ema_sr = tf.stop_gradient(self.ema_generator(lr, training=False))  # type: ignore

        def value(t: _Term) -> tf.Tensor:
            return _float32(t.loss(sr, hr, ema_sr=ema_sr) if t.ema else t.loss(sr, hr))

        for t in self.terms:
            if t.scheduled:
                losses[t.name] = tf.cond(
                    tf.not_equal(t.variable, 0.0),
                    lambda t=t: value(t),
                    lambda: tf.constant(0.0, tf.float32),
                )
            else:
                losses[t.name] = value(t)
        if not self.terms:
            return losses, tf.constant(0.0, tf.float32)
        total = tf.add_n([t.variable * losses[t.name] for t in self.terms])
        return losses, total

    def _content_replica(self, lr: tf.Tensor, hr: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            losses, total = self._content(sr, hr, lr)
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
            losses, content_total = self._content(sr, hr, lr)
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

    def start_data(self, dataset: tf.data.Dataset | None = None) -> None:
        """Open the training data; its seed comes from the checkpointed RNG, so a resumed run
        draws a fresh, reproducible order."""
        if dataset is None:
            seed = int(self.rng.uniform_full_int([], tf.int64).numpy() % (2**31 - 1))
            dataset = data.training_dataset(
                self.exp.data, self.exp.train.batch_size, seed, self.registry
            )
        if self.replicas > 1:
            # DATA sharding: every worker builds the same global batches (same seed) and takes
            # its slice of each, so the workers together train on exactly the batches of a
            # one-process run with the same train.batch_size (the global batch). The default
            # (AUTO) would try FILE sharding and give the workers different images.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.DATA
            )
            dataset = self.strategy.experimental_distribute_dataset(dataset.with_options(options))
        self._iterator = iter(dataset)

    def weights_at(self, step: int) -> dict[str, float]:
        """Assign every weight and learning rate for the step after ``step`` steps (each
        variable is written only when its value changes); kept in :attr:`weights` and
        :attr:`learning_rates`. :meth:`train_step` calls it once per step."""
        out = {t.name: t.assign(step) for t in self.terms}
        if self.adv_term is not None:
            out[self.adv_term.name] = self.adv_term.assign(step)
        g_lr = float(self.g_learning_rate(step))
        d_lr = float(self.d_learning_rate(step)) if self.d_optimizer is not None else 0.0
        if (g_lr, d_lr) != self.learning_rates:
            self.g_optimizer.learning_rate = g_lr
            if self.d_optimizer is not None:
                self.d_optimizer.learning_rate = d_lr
            self.learning_rates = (g_lr, d_lr)
        self.weights = out
        return out

    def adversarial_now(self) -> bool:
        """Whether the adversarial term (and the discriminator update) is on at the last
        assigned step: its weight is not 0."""
        return self.adv_term is not None and self.weights.get(self.adv_term.name, 0.0) != 0.0

    def train_step(self) -> dict[str, float]:
        """One generator step (after ``d_steps - 1`` extra discriminator steps when the
        adversarial weight is not 0). Returns the unweighted losses as Python floats; advances
        :attr:`step`."""
        if self._iterator is None:
            self.start_data()
        self.weights_at(self.step)
        if self.adversarial_now():
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
            raise DataError(
                "none of the training images in "
                f"{', '.join(map(str, self.exp.data.train))} could be decoded (truncated or "
                "damaged files; the warnings above name them). List them with `harness data check "
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


__all__ = ["Trainer", "config_text", "is_chief", "make_strategy"]
