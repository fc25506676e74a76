"""Every hook a harness plugin can implement.

Each ``harness_register_*`` hook is called once, when the registry is first built, on every
plugin that implements it. It returns a mapping ``name -> factory``; the registry merges the
mappings of all plugins, remembers which distribution provided each name and refuses a name
registered twice. Names are lowercase ``snake_case``.

A factory is a callable taking keyword arguments only. Its keyword parameters (with type
annotations and defaults) *are* the plugin's configuration: the TOML table that names the plugin
is checked against the signature (unknown keys and wrong types are errors) and the defaults
appear in ``harness show`` and in MLflow. Value conventions, shared by every kind:

- Images are NHWC tensors. LR input is in ``[0, 1]``; HR targets and SR outputs are in
  ``[-1, 1]``. Under mixed precision the tensors a loss receives may be ``bfloat16`` or
  ``float16``; losses should compute in float32 (``tf.cast``) and return a float32 scalar.
- A loss computes a value; the host multiplies it by the term's weight, which may follow a
  schedule. Never store a weight inside a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness import hookspec

Factory = Callable[..., Any]


@hookspec
def harness_register_content_losses() -> Mapping[str, Factory]:
    """Register content (reconstruction) losses, computed on SR versus HR.

    Called once when the registry is built. Each factory returns a callable
    ``loss(sr, hr) -> scalar`` taking two NHWC tensors in ``[-1, 1]`` of equal shape and
    returning a float32 scalar tensor that is differentiable with respect to ``sr``.

    The host applies the weight of each ``[losses.<key>]`` table; a recipe of several weighted
    terms (the seed's Per-Pix) is several tables.
    """


@hookspec
def harness_register_adversarial_losses() -> Mapping[str, Factory]:
    """Register adversarial (GAN) losses.

    Called once when the registry is built. Each factory returns an object with

    - ``generator_loss(fake_logits) -> scalar``, or
      ``generator_loss(fake_logits, real_logits=None) -> scalar``: when the method declares a
      ``real_logits`` parameter the trainer passes the discriminator's logits on the HR batch
      (gradient stopped), as relativistic losses need;
    - ``discriminator_loss(real_logits, fake_logits) -> scalar``;
    - optionally ``penalty(discriminator, hr, sr) -> scalar``, added to the discriminator loss
      (for example a gradient penalty).

    Logits are float32 tensors of shape ``(batch, ...)``: the discriminator's raw output, no
    sigmoid applied, a logit per image ``(batch, 1)`` or a map per patch or per pixel
    ``(batch, h, w, 1)``. Losses reduce over all of them (a mean over batch and map).
    """


@hookspec
def harness_register_generators() -> Mapping[str, Factory]:
    """Register generator architectures.

    Called once when the registry is built. Each factory is called as
    ``factory(scale=..., **params)`` and returns a ``keras.Model`` mapping an NHWC LR batch in
    ``[0, 1]`` of any spatial size to an NHWC SR batch in ``[-1, 1]`` exactly ``scale`` times
    larger. Custom layers must be registered Keras serializables (no ``Lambda``), so the model
    can be saved, exported and served.
    """


@hookspec
def harness_register_discriminators() -> Mapping[str, Factory]:
    """Register discriminator architectures.

    Called once when the registry is built. Each factory is called as
    ``factory(patch=..., **params)`` and returns a ``keras.Model`` mapping an NHWC batch in
    ``[-1, 1]`` of ``patch`` x ``patch`` pixels to float32 logits of shape ``(batch, ...)``:
    one per image ``(batch, 1)``, or a map per patch or per pixel ``(batch, h, w, 1)``.
    """


@hookspec
def harness_register_schedules() -> Mapping[str, Factory]:
    """Register schedules: values that follow the training step.

    Called once when the registry is built. Each factory returns a pure function
    ``schedule(step: int) -> float``, finite for every step ``>= 0``. Any loss weight and any
    learning rate accepts ``{schedule = "<name>", ...factory params}`` in place of a number.
    """


@hookspec
def harness_register_metrics() -> Mapping[str, Factory]:
    """Register image-quality metrics reported by validation and ``harness evaluate``.

    Called once when the registry is built. Each factory returns a callable
    ``metric(sr, hr) -> float`` on one SR image and its HR. What the two arrays are is the
    metric's own declaration: the factory carries ``protocol =
    harness.plugin_api.metrics.MetricProtocol(
    crop_border=..., color=..., higher_is_better=..., decimals=..., in_validation=...)``. By
    default (no ``protocol``) a metric gets the PSNR protocol's images, ``uint8`` RGB
    ``(H, W, 3)`` with ``scale`` pixels cropped from each border; ``crop_border=False`` gives the
    whole image (LPIPS and DISTS as the perceptual-SR papers report them), ``color="y"`` the
    BT.601 luma as float64 ``(H, W)``. ``harness evaluate``, validation, sweeps (the default
    direction), the kept best generators and ``harness report`` all follow it. A costly metric
    (a network per image) sets ``in_validation=False`` and is measured at validations only when
    ``[validation] metrics`` lists it. The older ``higher_is_better`` attribute is still read
    when there is no ``protocol``.
    """


@hookspec
def harness_register_degradations() -> Mapping[str, Factory]:
    """Register degradations: how a training LR image is made from its HR image.

    Called once when the registry is built. Each factory is called as
    ``factory(scale=..., **params)`` (``scale`` from ``[data] scale``, the other keywords from
    ``[data.degradation]``) and returns ``degrade(hr, seed) -> lr``:

    - ``hr``: float32 tensor ``(H, W, 3)`` in ``[0, 1]`` on 8-bit levels, H and W multiples of
      ``scale`` and not necessarily square or of static size (``harness data degrade`` passes
      whole images);
    - ``seed``: int64 tensor of shape ``[2]``, a stateless-RNG key; every random draw derives
      from it (``tf.random.stateless_*``, ``tf.random.experimental.stateless_split``), so the
      same seed gives the same LR;
    - returns float32 ``(H // scale, W // scale, 3)``. The host clips it to ``[0, 1]`` and rounds
      it to 8-bit levels.

    ``degrade`` is pure TensorFlow (no ``numpy_function``, no Python randomness): the training
    pipeline calls it per crop inside a ``tf.data`` map, in graph mode.
    """
