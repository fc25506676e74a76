"""The pytest plugin for plugin authors: run the project's own contract checks in your CI.

Installed with srgan-harness as the ``pytest11`` entry point ``harness.plugin_api.testing``, so
pytest loads it in any environment where the harness is installed (``-p
no:harness.plugin_api.testing`` turns it off). It gives the fixtures ``harness_registry`` (the
installed plugins, built afresh) and ``hermetic_registry`` (an empty-autoload registry factory,
for tests that register plugin objects directly), and the helper::

    from harness.plugin_api.testing import assert_plugin_contracts

    def test_contracts():
        assert_plugin_contracts("harness-myloss")

The checks are :mod:`harness.plugin_api.contracts`, the same ones the project runs over its whole
registry: each loss gives a finite float32 scalar with gradients (also on ``bfloat16`` inputs and
inside ``tf.function``), each generator upscales by ``scale`` and survives a ``.keras`` round
trip, each schedule is finite at every step, and so on. :class:`OverlayEnv` (a throwaway
environment to ``pip install`` a plugin into) lives in :mod:`harness.plugin_api.overlay`.

This module imports pytest; nothing in the runtime package imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from harness.plugin_api.overlay import OverlayEnv
from harness.plugin_api.registry import Entry, Registry, build_registry

__all__ = [
    "OverlayEnv",
    "assert_plugin_contracts",
    "distribution_entries",
    "harness_registry",
    "hermetic_registry",
]


def distribution_entries(distribution: str, registry: Registry | None = None) -> list[Entry]:
    """Every registry entry that ``distribution`` provides (names compared as pip does); the
    registry is built afresh from the installed entry points unless ``registry`` is given."""
    # heavy: a pytest plugin of every session; contracts load TensorFlow
    from harness.plugin_api import contracts

    return contracts.distribution_entries(distribution, registry or build_registry())


def assert_plugin_contracts(
    distribution: str,
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Entry]:
    """Check every plugin ``distribution`` registers; return the entries checked.

    The registry is built afresh from the installed entry points (so a package installed during
    the test session is seen), unless ``registry`` is given. ``params`` maps ``"<kind>:<name>"``
    or ``"<name>"`` to factory parameters that make a check cheap (a factory may instead carry a
    ``contract_params`` dict). A distribution that registers nothing fails, with the list of
    distributions that do: the usual cause is a package not installed or a missing
    ``[project.entry-points.harness]`` table.
    """
    from harness.plugin_api import contracts  # heavy, as above

    registry = registry or build_registry()
    try:
        return contracts.check_distribution(distribution, registry, params=params)
    except contracts.ContractError as exc:
        raise AssertionError(str(exc)) from exc


@pytest.fixture
def harness_registry() -> Registry:
    """The registry of every installed, enabled plugin, built for this test."""
    return build_registry()


@pytest.fixture
def hermetic_registry() -> Callable[[Iterable[tuple[object, str, str]]], Registry]:
    """``make(plugins)`` -> a registry of only ``(module_or_object, plugin_name, dist)`` triples.

    No entry point is loaded, so the test sees exactly the plugins it names.
    """

    def make(plugins: Iterable[tuple[object, str, str]]) -> Registry:
        return build_registry(extra=list(plugins), autoload=False)

    return make
