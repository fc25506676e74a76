"""``harness plugin new``: a ready-to-install plugin package from the templates.

A plugin package is an ordinary Python distribution ``harness-<name>`` whose import package
``harness_<name>`` implements one ``harness_register_*`` hook (:mod:`harness.plugin_api.hookspecs`)
and is named in the ``harness`` entry-point group of its ``pyproject.toml``. After
``pip install -e harness-<name>`` the registry finds it like any first-party plugin.

This module owns the names (one user-given name -> registered name, distribution, import package)
and the writing; the files themselves are :class:`string.Template` files under
``harness/plugin_api/templates/`` (shared ``pyproject.toml.tmpl``, ``README.md.tmpl`` and
``test_head.py.tmpl``; per kind ``<kind>/module.py.tmpl``, ``test.py.tmpl`` and
``usage.md.tmpl``). They are small working implementations (a Huber loss, a least-squares GAN
loss, a resize-convolution generator, an exponential decay), so the package passes the project's
contract checks before its author has changed a line.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

from harness import diskwrite
from harness.errors import HarnessError
from harness.plugin_api.registry import name_problem

SCAFFOLD_KINDS: dict[str, str] = {
    "loss": "content_loss",
    "adversarial": "adversarial_loss",
    "generator": "generator",
    "schedule": "schedule",
}
"""``--kind`` choices -> the registry kind the package fills."""

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

    Registered names follow the registry's rule (:func:`harness.plugin_api.registry.name_problem`),
    so the one name a user types is turned into that form, or refused with the reason. The
    scaffold adds two limits of its own: the name becomes a Python identifier in the generated
    module (no keywords) and part of a folder and distribution name (at most
    :data:`MAX_NAME_LENGTH` characters).
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
    problem = name_problem(name) if name else "it is empty once normalised"
    if not problem and (keyword.iskeyword(name) or name == "harness"):
        problem = f'"{name}" is reserved in Python or by the harness'
    elif not problem and len(name) > MAX_NAME_LENGTH:
        problem = f"it is longer than {MAX_NAME_LENGTH} characters"
    if problem:
        raise ScaffoldError(
            f'invalid plugin name "{raw}": {problem}. Pick a short snake_case name such as '
            '"charbonnier" (the package becomes harness-charbonnier, import harness_charbonnier).'
        )
    return name


# --------------------------------------------------------------------------- templates

_LABELS = {
    "loss": "content loss",
    "adversarial": "adversarial loss",
    "generator": "generator",
    "schedule": "schedule",
}


@cache
def template(relative: str) -> Template:
    """The template file ``harness/plugin_api/templates/<relative>`` (package data)."""
    folder = resources.files("harness.plugin_api") / "templates"
    return Template((folder / relative).read_text(encoding="utf-8"))


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
    values["usage"] = template(f"{kind}/usage.md.tmpl").substitute(values).rstrip("\n")
    test = (
        template("test_head.py.tmpl").substitute(values)
        + "\n"
        + template(f"{kind}/test.py.tmpl").substitute(values)
    )
    return {
        "pyproject.toml": template("pyproject.toml.tmpl").substitute(values),
        "README.md": template("README.md.tmpl").substitute(values),
        f"{names.module}/__init__.py": template(f"{kind}/module.py.tmpl").substitute(values),
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
        diskwrite.write_text(path, text)
    return target
