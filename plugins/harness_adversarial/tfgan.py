"""TF-GAN's loss functions on current TensorFlow.

``import tensorflow_gan`` fails on TensorFlow >= 2.16: the package ``__init__`` imports
``tensorflow_gan/python/train.py``, which subclasses the removed ``tf.estimator.SessionRunHook``.
The loss module ``tensorflow_gan.python.losses.losses_impl`` itself only needs TensorFlow. This
loader registers bare package modules for ``tensorflow_gan`` and ``tensorflow_gan.python`` (their
``__path__`` pointing at the installed folders, their ``__init__`` never run) and then imports the
real ``losses_impl`` from the installed distribution. Nothing is copied: the functions returned
are the installed package's own.

If ``tensorflow_gan`` imports normally (a future release), that import is used as is.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from functools import cache
from pathlib import Path

from harness.errors import HarnessError

_PACKAGE = "tensorflow_gan"
_LOSSES = "tensorflow_gan.python.losses.losses_impl"


@cache
def losses_impl() -> types.ModuleType:
    """The installed ``tensorflow_gan.python.losses.losses_impl`` module."""
    if _LOSSES in sys.modules:
        return sys.modules[_LOSSES]
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            "tensorflow-gan is not installed; the adversarial losses come from it. "
            "Install it with: pip install tensorflow-gan"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in ((_PACKAGE, root), (f"{_PACKAGE}.python", root / "python")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(folder)]  # a package, but its __init__ is never executed
            module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            module.__spec__.submodule_search_locations = [str(folder)]
            module.__file__ = str(folder / "__init__.py")
            module.__package__ = name
            sys.modules[name] = module
    return importlib.import_module(_LOSSES)
