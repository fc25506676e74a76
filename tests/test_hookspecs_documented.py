"""Meta-tests: every hook is documented in the plugin guide and implemented by some plugin.

A hook added to ``harness/hookspecs.py`` without a section in ``docs/plugins.md`` (with its exact
signature), or without any plugin implementing it (first-party or the example package), fails
here.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

from harness.plugin_api import hookspecs
from harness.plugin_api.registry import KINDS, plugin_manager

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
EXAMPLE = REPO / "examples" / "harness-charbonnier"


def _hooks() -> dict[str, object]:
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "harness_spec")
    }


def _signature(fn: object) -> str:
    """``def name(params) -> Return``, annotations as written in the source."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in sig.parameters.values()
    )
    return f"def {fn.__name__}({params}) -> {sig.return_annotation}"  # type: ignore[attr-defined]


def test_hookspecs_are_found() -> None:
    assert len(_hooks()) >= 6
    assert set(_hooks()) == set(KINDS.values()), "every hook fills one registry kind"


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_every_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    assert re.search(rf"^#+ `{hook}`$", guide, re.MULTILINE), f"no section for {hook}"
    signature = _signature(_hooks()[hook])
    assert signature in guide, f"{GUIDE.name} lacks the exact signature: {signature}"


def test_every_kind_is_in_the_guide_table() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for kind, hook in KINDS.items():
        assert f"| `{hook}` | `{kind}` |" in guide


@pytest.fixture
def example_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    module = importlib.import_module("harness_charbonnier")
    yield module
    for name in [m for m in sys.modules if m.startswith("harness_charbonnier")]:
        sys.modules.pop(name)


def test_every_hook_is_implemented_by_a_registered_plugin(example_module) -> None:
    pm, origin = plugin_manager(extra=[(example_module, "charbonnier", "harness-charbonnier")])
    missing = []
    for hook in _hooks():
        impls = getattr(pm.hook, hook).get_hookimpls()
        if not impls:
            missing.append(hook)
            continue
        for impl in impls:  # each implementation returns a non-empty name -> factory mapping
            mapping = impl.function()
            assert mapping and all(callable(f) for f in mapping.values()), impl.plugin_name
    assert not missing, f"hooks no plugin implements: {missing}"
    assert origin["charbonnier"] == ("harness-charbonnier", "")


def test_the_example_shows_every_hook_a_loss_author_needs(example_module) -> None:
    loss_hooks = {
        "harness_register_content_losses",
        "harness_register_adversarial_losses",
        "harness_register_schedules",
        "harness_register_metrics",
    }
    assert loss_hooks <= set(_hooks())
    for hook in loss_hooks:
        assert callable(getattr(example_module, hook, None)), hook
