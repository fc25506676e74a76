"""``harness plugin new``: a ready-to-install plugin package from a template.

A plugin package is an ordinary Python distribution ``harness-<name>`` whose import package
``harness_<name>`` implements one ``harness_register_*`` hook (:mod:`harness.plugin_api.hookspecs`)
and is
named in the ``harness`` entry-point group of its ``pyproject.toml``. After
``pip install -e harness-<name>`` the registry finds it like any first-party plugin.

The templates are small working implementations (a Huber loss, a least-squares GAN loss, a
resize-convolution generator, an exponential decay) so that the package passes the project's
contract checks before its author has changed a line.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from harness.errors import HarnessError

SCAFFOLD_KINDS: dict[str, str] = {
    "loss": "content_loss",
    "adversarial": "adversarial_loss",
    "generator": "generator",
    "schedule": "schedule",
}
"""``--kind`` choices -> the registry kind the package fills."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_ALLOWED_RAW = re.compile(r"^[A-Za-z0-9 _.\-]+$")
MAX_NAME_LENGTH = 40


class ScaffoldError(HarnessError):
    """A plugin package cannot be created: bad name or occupied destination."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin package needs, derived from one user-given name."""

    name: str
    """The registered name, lowercase snake_case (``my_loss``); also the entry-point name."""

    @property
    def distribution(self) -> str:
        """The distribution (pip) name and folder: ``harness-my-loss``."""
        return "harness-" + self.name.replace("_", "-")

    @property
    def module(self) -> str:
        """The import package: ``harness_my_loss``."""
        return "harness_" + self.name

    @property
    def class_name(self) -> str:
        """CamelCase, for templates whose factory is a class: ``MyLoss``."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def normalise_name(raw: str) -> str:
    """``"MyLoss"``, ``"my-loss"``, ``"harness-my-loss"`` -> ``"my_loss"``; refuse the rest.

    Registered names are lowercase snake_case (the registry and the dotted config keys rely on
    it), so the one name a user types is turned into that form, or refused with the reason.
    """
    text = raw.strip()
    if not text or not _ALLOWED_RAW.match(text):
        raise ScaffoldError(
            f'invalid plugin name "{raw}": use letters, digits, "_" or "-" only '
            '(for example "charbonnier" or "edge-loss").'
        )
    text = re.sub(r"^harness[-_ .]", "", text, flags=re.IGNORECASE)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)  # CamelCase -> Camel_Case
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)  # HTTPLoss -> HTTP_Loss
    name = re.sub(r"[-_ .]+", "_", text).strip("_").lower()
    problem = ""
    if not name:
        problem = "it is empty once normalised"
    elif not name[0].isalpha():
        problem = "it must start with a letter"
    elif not _NAME_RE.match(name):
        problem = "it must be lowercase snake_case"
    elif keyword.iskeyword(name) or name == "harness":
        problem = f'"{name}" is reserved in Python or by the harness'
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"it is longer than {MAX_NAME_LENGTH} characters"
    if problem:
        raise ScaffoldError(
            f'invalid plugin name "{raw}": {problem}. Pick a short snake_case name such as '
            '"charbonnier" (the package becomes harness-charbonnier, import harness_charbonnier).'
        )
    return name


# --------------------------------------------------------------------------- templates

_PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "$title: a $label plugin for srgan-harness"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["srgan-harness>=0.1"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The harness finds plugins through the "harness" entry-point group: <name> = "<module>".
[project.entry-points.harness]
$name = "$module"
""")

_LOSS = Template('''\
"""$title: a content loss for srgan-harness.

Edit the factory below. Its keyword parameters (typed, with defaults) are the configuration:
an experiment sets them in its ``[losses.<key>]`` table, ``--set losses.<key>.delta=0.02``
overrides them and a sweep searches them under the same dotted key. The host applies the term's
weight: never store a weight here.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
from harness import hookimpl


def $name(delta: float = 0.01) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Huber loss (Huber 1964): quadratic for errors below ``delta``, linear above.

    The returned ``loss(sr, hr)`` receives two NHWC tensors of equal shape in ``[-1, 1]``
    (``bfloat16`` or ``float16`` under mixed precision) and returns a float32 scalar that is
    differentiable with respect to ``sr``.

    Args:
        delta: where the loss turns from quadratic to linear, in the ``[-1, 1]`` pixel units.
    """
    if delta <= 0:
        raise ValueError(f"$name: delta must be > 0, not {delta}.")

    def loss(sr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        error = tf.abs(tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32))
        small = tf.minimum(error, delta)
        return tf.reduce_mean(0.5 * tf.square(small) + delta * (error - small))

    return loss


@hookimpl
def harness_register_content_losses():
    """Called once when the registry is built: registered name -> factory."""
    return {"$name": $name}
''')

_ADVERSARIAL = Template('''\
"""$title: an adversarial (GAN) loss for srgan-harness.

Edit the class below. Its keyword parameters (typed, with defaults) are the configuration:
the ``[adversarial]`` table that names this loss sets them, ``--set adversarial.real_label=0.9``
overrides them. The host applies ``[adversarial].weight``: never store a weight here.
"""

from __future__ import annotations

import tensorflow as tf
from harness import hookimpl


class $class_name:
    """Least-squares GAN loss (Mao et al. 2017, "Least Squares Generative Adversarial Networks").

    Logits are the discriminator's raw float32 output, shape ``(batch, 1)``.

    Args:
        real_label: the target the discriminator should give real images (``b`` in the paper).
        fake_label: the target for generated images (``a`` in the paper).
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        if real_label == fake_label:
            raise ValueError(f"real_label and fake_label must differ, not both {real_label}.")
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def generator_loss(self, fake_logits: tf.Tensor) -> tf.Tensor:
        fake = tf.cast(fake_logits, tf.float32)
        return 0.5 * tf.reduce_mean(tf.square(fake - self.real_label))

    def discriminator_loss(self, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
        real = tf.cast(real_logits, tf.float32)
        fake = tf.cast(fake_logits, tf.float32)
        return 0.5 * (
            tf.reduce_mean(tf.square(real - self.real_label))
            + tf.reduce_mean(tf.square(fake - self.fake_label))
        )


@hookimpl
def harness_register_adversarial_losses():
    """Called once when the registry is built: registered name -> factory."""
    return {"$name": $class_name}
''')

_GENERATOR = Template('''\
"""$title: a generator architecture for srgan-harness.

Edit the factory below. The host passes ``scale`` (from ``[data].scale``); every other
keyword parameter (typed, with a default) is set in the ``[generator]`` table that names this
generator and overridden with ``--set generator.filters=64``.
"""

from __future__ import annotations

import keras
from harness import hookimpl


def $name(
    scale: int = 4, filters: int = 32, blocks: int = 2
) -> keras.Model:
    """Residual blocks, then nearest-neighbour upsampling followed by a convolution.

    Resize-convolution (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts") avoids
    the checkerboard pattern of transposed convolutions. Input: NHWC LR in ``[0, 1]``, any size;
    output: NHWC SR in ``[-1, 1]``, ``scale`` times larger, float32 under any precision policy.

    Args:
        scale: the upscaling factor (supplied by the host).
        filters: feature maps in every convolution.
        blocks: residual blocks before upsampling.
    """
    if scale < 1 or filters < 1 or blocks < 0:
        raise ValueError(
            "$name: need scale >= 1, filters >= 1, blocks >= 0; "
            f"got {scale}, {filters}, {blocks}."
        )
    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(lr)
    for _ in range(blocks):
        y = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same")(y)
        x = keras.layers.Add()([x, y])
    if scale > 1:
        x = keras.layers.UpSampling2D(size=scale, interpolation="nearest")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(3, 3, padding="same")(x)
    sr = keras.layers.Activation("tanh", dtype="float32", name="sr")(x)
    return keras.Model(lr, sr, name="$name")


@hookimpl
def harness_register_generators():
    """Called once when the registry is built: registered name -> factory."""
    return {"$name": $name}
''')

_SCHEDULE = Template('''\
"""$title: a schedule for srgan-harness.

Edit the factory below. Any loss weight or learning rate can follow it, e.g.
``weight = {schedule = "<name>", start = 1.0, rate = 0.5, every = 10000}``; each key is then a
``--set`` key and a sweep parameter such as ``losses.mse.weight.rate``.
"""

from __future__ import annotations

from collections.abc import Callable

from harness import hookimpl


def $name(
    start: float = 1.0, rate: float = 0.5, every: int = 10000
) -> Callable[[int], float]:
    """Exponential decay: ``start * rate ** (step / every)``.

    Returns a pure function of the step, finite for every step ``>= 0``.

    Args:
        start: the value at step 0.
        rate: the factor applied every ``every`` steps (``0 < rate``).
        every: steps per factor of ``rate``.
    """
    if every <= 0 or rate <= 0:
        raise ValueError(
            f"$name: need every > 0 and rate > 0, not {every=}, {rate=}."
        )

    def schedule(step: int) -> float:
        return float(start * rate ** (int(step) / every))

    return schedule


@hookimpl
def harness_register_schedules():
    """Called once when the registry is built: registered name -> factory."""
    return {"$name": $name}
''')

_TEST_HEAD = Template('''\
"""Tests for $distribution.

First the project's own plugin contract checks, then the plugin's behaviour.

Run them with ``pytest`` after ``pip install -e .`` (the contract checks look the plugin up
through its installed entry point, as the harness does).
"""

from __future__ import annotations

from harness.plugin_api.testing import assert_plugin_contracts

from $module import $factory


def test_contracts() -> None:
    """Everything the package registers passes the checks srgan-harness runs on plugins."""
    assert_plugin_contracts("$distribution")

''')

_TESTS: dict[str, Template] = {
    "loss": Template("""\

def test_zero_on_equal_images_and_positive_otherwise() -> None:
    import tensorflow as tf

    hr = tf.random.uniform((2, 8, 8, 3), -1.0, 1.0, seed=1)
    loss = $factory()
    assert float(loss(hr, hr)) == 0.0
    assert float(loss(hr + 0.5, hr)) > 0.0
"""),
    "adversarial": Template("""\

def test_discriminator_prefers_confident_logits() -> None:
    import tensorflow as tf

    loss = $factory()
    good = loss.discriminator_loss(tf.ones((4, 1)), tf.zeros((4, 1)))
    bad = loss.discriminator_loss(tf.zeros((4, 1)), tf.ones((4, 1)))
    assert float(good) < float(bad)
    assert float(loss.generator_loss(tf.ones((4, 1)))) == 0.0
"""),
    "generator": Template("""\

def test_upscales_by_scale() -> None:
    import numpy as np

    model = $factory(scale=2, filters=8, blocks=1)
    sr = model(np.zeros((1, 5, 7, 3), np.float32))
    assert tuple(sr.shape) == (1, 10, 14, 3)
"""),
    "schedule": Template("""\

def test_halves_every_period() -> None:
    schedule = $factory(start=2.0, rate=0.5, every=10)
    assert schedule(0) == 2.0
    assert abs(schedule(10) - 1.0) < 1e-12
    assert schedule(20) < schedule(10)
"""),
}

_USAGE: dict[str, Template] = {
    "loss": Template("""\
```toml
[losses.$name]
weight = 1.0     # or {schedule = "linear", start = 0, end = 1, steps = 5000}
delta = 0.01
```

Override or sweep a parameter by its dotted key: `--set losses.$name.delta=0.02`."""),
    "adversarial": Template("""\
```toml
[adversarial]
name = "$name"
weight = 1e-3
real_label = 1.0
```

Override or sweep a parameter by its dotted key: `--set adversarial.real_label=0.9`."""),
    "generator": Template("""\
```toml
[generator]
name = "$name"
filters = 32
blocks = 2
```

Override or sweep a parameter by its dotted key: `--set generator.filters=64`."""),
    "schedule": Template("""\
```toml
[losses.mse]
weight = { schedule = "$name", start = 1.0, rate = 0.5, every = 10000 }
```

Override or sweep a parameter by its dotted key: `--set losses.mse.weight.rate=0.7`."""),
}

_README = Template("""\
# $distribution

$title: a $label plugin for [srgan-harness](https://pypi.org/project/srgan-harness/), registered
as `$name` (import package `$module`).

## Install

```bash
pip install -e .
harness plugins --kind $registry_kind    # lists "$name" with distribution $distribution
```

## Use it in an experiment

$usage

`harness show my_experiment.toml` prints the experiment with every default filled in.

## Test

```bash
pytest
```

`tests/` runs the project's plugin contract checks
(`harness.plugin_api.testing.assert_plugin_contracts`)
and a behaviour test; add your own next to them.

## Publish

```bash
pip install build twine
python -m build
twine upload dist/*
```

The package only needs its `[project.entry-points.harness]` entry: once installed, the harness
finds it. See the srgan-harness plugin guide (`docs/plugins.md`) for every hook.
""")

_MODULES = {
    "loss": _LOSS,
    "adversarial": _ADVERSARIAL,
    "generator": _GENERATOR,
    "schedule": _SCHEDULE,
}
_LABELS = {
    "loss": "content loss",
    "adversarial": "adversarial loss",
    "generator": "generator",
    "schedule": "schedule",
}


def render(name: str, kind: str = "loss") -> dict[str, str]:
    """The package's files (relative path -> text) for a registered ``name`` and ``kind``."""
    if kind not in SCAFFOLD_KINDS:
        raise ScaffoldError(
            f'unknown plugin kind "{kind}"; choose one of {", ".join(SCAFFOLD_KINDS)}.'
        )
    names = PluginNames(normalise_name(name))
    factory = names.class_name if kind == "adversarial" else names.name
    values = {
        "name": names.name,
        "module": names.module,
        "distribution": names.distribution,
        "class_name": names.class_name,
        "factory": factory,
        "title": names.class_name,
        "label": _LABELS[kind],
        "registry_kind": SCAFFOLD_KINDS[kind],
    }
    values["usage"] = _USAGE[kind].substitute(values)
    test = _TEST_HEAD.substitute(values) + _TESTS[kind].substitute(values)
    return {
        "pyproject.toml": _PYPROJECT.substitute(values),
        "README.md": _README.substitute(values),
        f"{names.module}/__init__.py": _MODULES[kind].substitute(values),
        f"tests/test_{names.name}.py": test,
    }


def package_dir(name: str, dest: str | Path = ".") -> Path:
    """Where :func:`write_package` puts the package: ``<dest>/harness-<name>``."""
    return Path(dest) / PluginNames(normalise_name(name)).distribution


def write_package(name: str, kind: str = "loss", dest: str | Path = ".") -> Path:
    """Write the package ``harness-<name>`` into folder ``dest``; return its folder.

    Refuses an existing, non-empty target folder rather than mixing generated files with
    someone's work.
    """
    files = render(name, kind)
    target = package_dir(name, dest)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder; pick another --dest or name.")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(
            f"{target} already exists and is not empty; remove it, or pick another --dest or name."
        )
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
