"""Plugin contract checks: what every registered factory must do, checked cheaply.

Plugin authors call these from their own tests::

    from harness.plugin_api.contracts import check_distribution
    from harness.plugin_api.registry import build_registry

    def test_my_plugins_keep_the_contracts():
        check_distribution("harness-charbonnier", build_registry())

(:func:`harness.plugin_api.testing.assert_plugin_contracts` does the same in one call.)

Each check builds the factory with small parameters and runs it on tiny random inputs. The
parameters come from, in order of precedence: the ``params`` argument, the factory's
``contract_params`` attribute (a dict a plugin may set to make its checks cheap, e.g.
``srresnet.contract_params = {"blocks": 1, "filters": 8}``), then the factory's defaults.
A broken contract raises :class:`ContractError` naming the plugin and what failed.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness.errors import HarnessError
from harness.plugin_api.losses import wants_ema_sr, wants_real_logits
from harness.plugin_api.metrics import metric_protocol, rgb_to_y
from harness.plugin_api.registry import Entry, Registry
from harness.rundir import GENERATOR_FILE

STEPS = (0, 1, 2, 10, 100, 999, 1000, 1001, 15000, 20000, 35000, 100_000, 1_000_000)
"""Steps at which schedules (and composite loss weights) must be finite."""


class ContractError(HarnessError):
    """A plugin does not do what its hook promises."""


def _fail(what: str, message: str) -> ContractError:
    return ContractError(f"{what}: {message}")


def _params(factory: Callable[..., Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**dict(getattr(factory, "contract_params", {}) or {}), **dict(params or {})}


def _build(what: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except HarnessError:
        raise
    except Exception as exc:
        raise _fail(
            what, f"factory(**{dict(kwargs)!r}) raised {type(exc).__name__}: {exc}"
        ) from exc


def _scalar(what: str, value: Any) -> float:
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0:
        raise _fail(what, f"returned shape {value.shape.as_list()}, expected a scalar.")
    if value.dtype != tf.float32:
        raise _fail(what, f"returned {value.dtype.name}, expected float32.")
    number = float(value.numpy())
    if not math.isfinite(number):
        raise _fail(what, f"returned {number}, expected a finite value.")
    return number


def _finite_grads(what: str, grads: Iterable[Any], names: Iterable[str]) -> None:
    grads, names = list(grads), list(names)
    if all(g is None for g in grads):
        raise _fail(what, "has no gradient with respect to its inputs.")
    for g, name in zip(grads, names, strict=True):
        if g is not None and not bool(tf.reduce_all(tf.math.is_finite(tf.cast(g, tf.float32)))):
            raise _fail(what, f"has a non-finite gradient with respect to {name}.")


# --------------------------------------------------------------------------- per kind


def check_schedule(
    factory: Callable[..., Any], params: Mapping[str, Any] | None = None, name: str = "schedule"
) -> None:
    """The factory returns ``step -> float``, finite at every step of :data:`STEPS`."""
    what = f'schedule "{name}"'
    schedule = _build(what, factory, _params(factory, params))
    _check_schedule_fn(what, schedule)


def _check_schedule_fn(what: str, schedule: Callable[[int], float]) -> None:
    if not callable(schedule):
        raise _fail(what, f"factory returned {type(schedule).__name__}, not a function of step.")
    for step in STEPS:
        value = schedule(step)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(what, f"at step {step} gave {value!r}, expected a finite float.")


def _check_loss_fn(what: str, loss: Callable[..., Any], shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    sr = tf.Variable(rng.uniform(-1, 1, shape).astype(np.float32))
    hr = tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))
    extra: dict[str, Any] = {}
    if wants_ema_sr(loss):  # called as the trainer calls it
        extra["ema_sr"] = tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))
    with tf.GradientTape() as tape:
        value = loss(sr, hr, **extra)
    _scalar(what, value)
    _finite_grads(what, [tape.gradient(value, sr)], ["sr"])
    # Under mixed precision the inputs may be bfloat16: the loss must still give float32.
    bf16 = {k: tf.cast(v, tf.bfloat16) for k, v in extra.items()}
    _scalar(
        f"{what} on bfloat16 inputs",
        loss(tf.cast(sr, tf.bfloat16), tf.cast(hr, tf.bfloat16), **bf16),
    )
    traced = tf.function(lambda a, b: loss(a, b, **extra))
    _scalar(f"{what} inside tf.function", traced(sr, hr))


def check_content_loss(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    name: str = "loss",
    shape: tuple[int, int, int, int] = (2, 16, 16, 3),
) -> None:
    """``loss(sr, hr)`` gives a finite float32 scalar with a finite gradient for ``sr`` (also
    for bfloat16 inputs and inside ``tf.function``); a loss declaring ``ema_sr`` gets a third
    batch, as from the trainer."""
    what = f'content loss "{name}"'
    loss = _build(what, factory, _params(factory, params))
    if not callable(loss):
        raise _fail(what, f"factory returned {type(loss).__name__}; expected loss(sr, hr).")
    _check_loss_fn(what, loss, shape)


def _tiny_discriminator(patch: int):
    image = keras.Input((patch, patch, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="softplus")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(1)(x))


def check_adversarial_loss(
    factory: Callable[..., Any], params: Mapping[str, Any] | None = None, name: str = "loss"
) -> None:
    """``generator_loss`` and ``discriminator_loss`` give finite float32 scalars with finite
    gradients for ``(batch, 1)`` logits and for per-patch logit maps ``(batch, h, w, 1)``,
    eagerly and in ``tf.function``; ``penalty``, where present, gives a finite scalar with
    gradients for a small discriminator's weights."""
    what = f'adversarial loss "{name}"'
    adv = _build(what, factory, _params(factory, params))
    for method in ("generator_loss", "discriminator_loss"):
        if not callable(getattr(adv, method, None)):
            raise _fail(what, f"has no method {method}.")
    rng = np.random.default_rng(0)
    for shape in ((4, 1), (4, 3, 3, 1)):
        _check_adversarial_logits(f"{what} on logits {shape}", adv, rng, shape)
    penalty = getattr(adv, "penalty", None)
    if penalty is None:
        return
    disc = _tiny_discriminator(8)
    hr = tf.constant(rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32))
    sr = tf.constant(rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32))

    def run(hr, sr):
        with tf.GradientTape() as tape:
            value = penalty(disc, hr, sr)
        return value, tape.gradient(value, disc.trainable_variables)

    for label, fn in (("eagerly", run), ("inside tf.function", tf.function(run))):
        value, grads = fn(hr, sr)
        _scalar(f"{what} penalty {label}", value)
        if float(value) != 0.0:
            _finite_grads(
                f"{what} penalty {label}", grads, [v.path for v in disc.trainable_variables]
            )


def _check_adversarial_logits(
    what: str, adv: Any, rng: np.random.Generator, shape: tuple[int, ...]
) -> None:
    real = tf.Variable(rng.normal(0, 2, shape).astype(np.float32))
    fake = tf.Variable(rng.normal(0, 2, shape).astype(np.float32))
    wants_real = wants_real_logits(adv)

    def generator_loss(f: Any, r: Any) -> Any:  # called as the trainer calls it
        return adv.generator_loss(f, real_logits=r) if wants_real else adv.generator_loss(f)

    with tf.GradientTape(persistent=True) as tape:
        g = generator_loss(fake, real)
        d = adv.discriminator_loss(real, fake)
    _scalar(f"{what} generator_loss", g)
    _scalar(f"{what} discriminator_loss", d)
    _finite_grads(f"{what} generator_loss", [tape.gradient(g, fake)], ["fake_logits"])
    _finite_grads(
        f"{what} discriminator_loss", tape.gradient(d, [real, fake]), ["real_logits", "fake_logits"]
    )
    traced_g = tf.function(lambda f: generator_loss(f, real))
    traced_d = tf.function(lambda r, f: adv.discriminator_loss(r, f))
    if abs(float(traced_g(fake)) - float(g)) > 1e-5 * max(1.0, abs(float(g))):
        raise _fail(what, "generator_loss differs inside tf.function.")
    if abs(float(traced_d(real, fake)) - float(d)) > 1e-5 * max(1.0, abs(float(d))):
        raise _fail(what, "discriminator_loss differs inside tf.function.")


def check_generator(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    name: str = "generator",
    scale: int = 4,
    sizes: Iterable[tuple[int, int]] = ((6, 6), (5, 9)),
    round_trip: bool = True,
) -> None:
    """``factory(scale=...)`` maps LR in ``[0, 1]`` of each size in ``sizes`` to float32 SR
    exactly ``scale`` times larger, in ``[-1, 1]``; with ``round_trip`` the model also saves
    to ``.keras`` and loads back in Keras' safe mode with the same outputs."""
    what = f'generator "{name}"'
    model = _build(what, factory, {**_params(factory, params), "scale": scale})
    if not isinstance(model, keras.Model):
        raise _fail(what, f"factory returned {type(model).__name__}, not a keras.Model.")
    rng = np.random.default_rng(0)
    inputs = []
    for h, w in sizes:
        lr = rng.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
        sr = model(lr, training=False)
        shape = tuple(sr.shape)
        if shape != (2, h * scale, w * scale, 3):
            raise _fail(
                what, f"maps LR {(2, h, w, 3)} to {shape}, expected {(2, h * scale, w * scale, 3)}."
            )
        if sr.dtype != "float32":
            raise _fail(what, f"outputs {sr.dtype}, expected float32 (last layer dtype float32).")
        sr = np.asarray(sr)
        if not np.all(np.isfinite(sr)) or sr.min() < -1.0 - 1e-6 or sr.max() > 1.0 + 1e-6:
            raise _fail(what, f"outputs values in [{sr.min()}, {sr.max()}], expected [-1, 1].")
        inputs.append((lr, sr))
    if round_trip:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / GENERATOR_FILE
            try:
                model.save(path)
                loaded = keras.models.load_model(path, safe_mode=True)
            except Exception as exc:
                raise _fail(
                    what,
                    f"does not save and load in safe mode ({type(exc).__name__}: {exc}). "
                    "Custom layers must be registered Keras serializables, never Lambda.",
                ) from exc
        lr, sr = inputs[0]
        if not np.allclose(np.asarray(loaded(lr, training=False)), sr, atol=1e-5):
            raise _fail(what, "gives different outputs after saving and loading.")


def check_discriminator(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    name: str = "discriminator",
    patch: int = 32,
) -> None:
    """``factory(patch=...)`` maps ``(batch, patch, patch, 3)`` in ``[-1, 1]`` to finite float32
    logits of shape ``(batch, ...)`` (a logit per image, per patch or per pixel), with finite
    gradients for its input. 32 px: the smallest patch every first-party discriminator takes
    (``vgg_style`` halves it five times)."""
    what = f'discriminator "{name}"'
    model = _build(what, factory, {**_params(factory, params), "patch": patch})
    if not isinstance(model, keras.Model):
        raise _fail(what, f"factory returned {type(model).__name__}, not a keras.Model.")
    images = tf.Variable(
        np.random.default_rng(0).uniform(-1, 1, (3, patch, patch, 3)).astype(np.float32)
    )
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        total = tf.reduce_sum(logits)
    if logits.shape.rank is None or logits.shape.rank < 2 or logits.shape[0] != 3:
        raise _fail(
            what,
            f"gives logits of shape {tuple(logits.shape)} for 3 images, expected (3, ...): "
            "(3, 1) for a logit per image, (3, h, w, 1) for a map.",
        )
    if logits.dtype != tf.float32:
        raise _fail(what, f"gives {logits.dtype.name} logits, expected float32.")
    if not bool(tf.reduce_all(tf.math.is_finite(logits))):
        raise _fail(what, "gives non-finite logits.")
    _finite_grads(what, [tape.gradient(total, images)], ["its input"])


def check_metric(
    factory: Callable[..., Any], params: Mapping[str, Any] | None = None, name: str = "metric"
) -> None:
    """The declared protocol is a :class:`~harness.plugin_api.metrics.MetricProtocol`, and
    ``metric(sr,
    hr)`` on two images of that protocol gives a finite float."""
    what = f'metric "{name}"'
    try:
        protocol = metric_protocol(factory)
    except HarnessError as exc:
        raise _fail(what, str(exc)) from None
    metric = _build(what, factory, _params(factory, params))
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, hr.shape)
    sr = np.clip(hr.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    if protocol.color == "y":
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    value = metric(sr, hr)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(what, f"returned {type(value).__name__}, expected a float.") from None
    if not math.isfinite(number):
        raise _fail(what, f"returned {number}, expected a finite value.")


def check_degradation(
    factory: Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    name: str = "degradation",
    scales: Iterable[int] = (2, 3, 4),
) -> None:
    """``factory(scale=...)`` for each of ``scales`` gives ``degrade(hr, seed)`` mapping a float32
    ``(H, W, 3)`` HR in ``[0, 1]`` (not square) to finite float32 ``(H/s, W/s, 3)`` near
    ``[0, 1]`` (within ``[-0.5, 1.5]``: the host clips, but a 0..255 output is a bug), in a
    ``tf.function`` traced for any image size (as a ``tf.data`` map runs it; eagerly too, for
    the shape); the same seed gives the same LR."""
    what = f'degradation "{name}"'
    rng = np.random.default_rng(0)
    for scale in scales:
        degrade = _build(what, factory, {**_params(factory, params), "scale": scale})
        if not callable(degrade):
            raise _fail(
                what, f"factory returned {type(degrade).__name__}; expected degrade(hr, seed)."
            )
        h, w = 12 * scale, 10 * scale
        hr = tf.constant(rng.integers(0, 256, (h, w, 3)).astype(np.float32) / 255.0)
        seed = tf.constant([7, 11], tf.int64)
        at = f"{what} at scale {scale}"
        spec = [tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)]
        try:
            eager, eager_again = degrade(hr, seed), degrade(hr, seed)
            traced = tf.function(degrade, input_signature=spec)
            lr, again = traced(hr, seed), traced(hr, seed)
        except Exception as exc:
            raise _fail(at, f"raised {type(exc).__name__}: {exc}") from exc
        expected = (h // scale, w // scale, 3)
        for label, out in (("", lr), (" eagerly", eager)):
            if tuple(out.shape) != expected:
                raise _fail(
                    at, f"maps HR {(h, w, 3)} to {tuple(out.shape)}{label}, expected {expected}."
                )
            if out.dtype != tf.float32:
                raise _fail(at, f"returns {out.dtype.name}{label}, expected float32.")
        value = lr.numpy()
        if not np.all(np.isfinite(value)) or value.min() < -0.5 or value.max() > 1.5:
            raise _fail(
                at, f"returns values in [{value.min()}, {value.max()}], expected about [0, 1]."
            )
        if not (
            np.array_equal(value, again.numpy())
            and np.array_equal(eager.numpy(), eager_again.numpy())
        ):
            raise _fail(at, "gives different LR for the same seed; derive randomness from seed.")


CHECKS: dict[str, Callable[..., None]] = {
    "content_loss": check_content_loss,
    "adversarial_loss": check_adversarial_loss,
    "generator": check_generator,
    "discriminator": check_discriminator,
    "schedule": check_schedule,
    "metric": check_metric,
    "degradation": check_degradation,
}
"""Registry kind -> its check."""


# --------------------------------------------------------------------------- dispatch


def check_entry(entry: Entry, params: Mapping[str, Any] | None = None) -> None:
    """Run the check for ``entry.kind`` on ``entry.factory``; errors name the distribution."""
    check = CHECKS.get(entry.kind)
    if check is None:
        raise ContractError(f'no contract check for kind "{entry.kind}" ({entry.name}).')
    try:
        check(entry.factory, params, name=entry.name)
    except HarnessError as exc:
        raise ContractError(f"{exc} (plugin {entry.plugin!r} from {entry.provenance})") from exc


def _normalise(dist: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def distribution_entries(dist_name: str, registry: Registry) -> list[Entry]:
    """Every entry of ``registry`` that distribution ``dist_name`` provides (names compared as
    pip compares them: ``SRGAN_harness`` is ``srgan-harness``)."""
    wanted = _normalise(dist_name)
    return [e for e in registry.entries() if _normalise(e.distribution) == wanted]


def check_distribution(
    dist_name: str,
    registry: Registry,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Entry]:
    """Check every entry of ``registry`` provided by distribution ``dist_name``.

    ``params`` maps ``"<kind>:<name>"`` (or just ``"<name>"``) to parameter overrides. Returns
    the entries checked; a distribution that provides nothing is an error.
    """
    params = params or {}
    entries = distribution_entries(dist_name, registry)
    if not entries:
        known = sorted({e.distribution for e in registry.entries()})
        raise ContractError(
            f'distribution "{dist_name}" provides no registered plugin. Is it installed (pip '
            f'install -e .) with an entry point in group "harness"? Distributions with '
            f"plugins: {', '.join(known) or 'none'}."
        )
    for entry in entries:
        check_entry(entry, params.get(f"{entry.kind}:{entry.name}", params.get(entry.name)))
    return entries
