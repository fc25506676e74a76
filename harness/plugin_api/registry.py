"""Plugin manager: entry points in group ``harness`` -> a registry of named factories.

Every plugin, first-party included, is found through the ``harness`` entry-point group, loaded,
registered with pluggy and asked for its names through the ``harness_register_*`` hooks
(:mod:`harness.plugin_api.hookspecs`). The registry remembers which distribution provided each name.

Environment switches (as pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``):

- ``HARNESS_DISABLE_PLUGINS=name1,name2``: skip these entry points (by entry-point name or by
  distribution name). A name matching no installed plugin is warned about once (a typo would
  otherwise leave the plugin enabled without a word).
- ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point at all (hermetic tests register
  plugin objects explicitly with :func:`build_registry`).
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from harness import PROJECT
from harness.errors import HarnessWarning, PluginError
from harness.plugin_api import hookspecs

DISABLE_ENV = "HARNESS_DISABLE_PLUGINS"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
"""A valid plugin name: lowercase snake_case, starting with a letter (``charbonnier``, ``l1_v2``).
Names become TOML keys and dotted ``--set`` keys; the scaffold derives package names from them."""
NO_AUTOLOAD_ENV = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"
_WARNED_UNKNOWN: set[str] = set()  # names of HARNESS_DISABLE_PLUGINS already warned about


class PluginWarning(HarnessWarning):
    """A plugin switch names something that is not installed."""


def name_problem(name: str) -> str:
    """Why ``name`` is not a valid plugin name (:data:`NAME_PATTERN`), or ``""`` when it is.

    The one rule for plugin names: the registry refuses a registered name that breaks it and
    ``harness plugin new`` refuses to scaffold one.
    """
    if not name:
        return "it is empty"
    if not name[0].isalpha():
        return "it must start with a letter"
    if not NAME_PATTERN.fullmatch(name):
        return "it must be lowercase snake_case (letters, digits, single underscores)"
    return ""


KINDS: dict[str, str] = {
    "content_loss": "harness_register_content_losses",
    "adversarial_loss": "harness_register_adversarial_losses",
    "generator": "harness_register_generators",
    "discriminator": "harness_register_discriminators",
    "schedule": "harness_register_schedules",
    "metric": "harness_register_metrics",
    "degradation": "harness_register_degradations",
}
"""Registry kind -> the hook that fills it."""


@dataclass(frozen=True)
class Entry:
    """One registered name and where it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str
    version: str

    @property
    def provenance(self) -> str:
        return f"{self.distribution} {self.version}".strip()


class Registry:
    """Names -> factories, per kind, with provenance."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, entry: Entry) -> None:
        if name_problem(entry.name):
            raise PluginError(
                f'plugin "{entry.plugin}" (from {entry.provenance}) registered '
                f'{entry.kind.replace("_", " ")} "{entry.name}": names must be lowercase '
                "snake_case (letters, digits, single underscores; starting with a letter), "
                "because they become TOML keys and dotted --set keys."
            )
        table = self._entries[entry.kind]
        if entry.name in table:
            other = table[entry.name]
            raise PluginError(
                f'{entry.kind.replace("_", " ")} "{entry.name}" is registered twice: by plugin '
                f'"{other.plugin}" (from {other.provenance}) and by plugin "{entry.plugin}" '
                f"(from {entry.provenance}). Uninstall one of them, or disable one with "
                f"{DISABLE_ENV}={entry.plugin}."
            )
        table[entry.name] = entry

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self) -> list[Entry]:
        return [e for kind in KINDS for _, e in sorted(self._entries[kind].items())]

    def get(self, kind: str, name: str, where: str = "") -> Entry:
        """The entry ``name`` of ``kind``; an unknown name is an error listing the known ones."""
        table = self._entries[kind]
        if name in table:
            return table[name]
        label = kind.replace("_", " ")
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ""
        known = ", ".join(f"{n} (from {e.provenance})" for n, e in sorted(table.items()))
        where = f" in {where}" if where else ""
        raise PluginError(
            f'unknown {label} "{name}"{where}.{hint} Known: {known or "none"}. '
            "`harness plugins` lists everything installed; a plugin package adds more."
        )

    def factory(self, kind: str, name: str, where: str = "") -> Callable[..., Any]:
        return self.get(kind, name, where).factory


def _disabled() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _warn_unknown_disabled(disabled: set[str], known: set[str]) -> None:
    """Warn once per process about each disabled name that matches no plugin."""
    unknown = sorted(disabled - known - _WARNED_UNKNOWN)
    if not unknown:
        return
    _WARNED_UNKNOWN.update(unknown)
    listed = ", ".join(f'"{n}"' for n in unknown)
    warnings.warn(
        f"{DISABLE_ENV} names {listed}, which matches no installed plugin, so nothing was "
        f"disabled by it. Known plugin names (entry points and distributions): "
        f"{', '.join(sorted(known)) or 'none'}. `harness plugins` lists them.",
        PluginWarning,
        stacklevel=3,
    )


def _autoload_off() -> bool:
    return os.environ.get(NO_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _entry_points() -> Iterable[md.EntryPoint]:
    return md.entry_points(group=PROJECT)


def plugin_manager(
    extra: Iterable[tuple[object, str, str]] = (), *, autoload: bool | None = None
) -> tuple[pluggy.PluginManager, dict[str, tuple[str, str]]]:
    """A pluggy manager with every enabled entry point (and ``extra``) registered.

    ``extra`` holds ``(plugin_object, plugin_name, distribution_label)`` triples, for tests and
    for embedding. Returns the manager and ``plugin_name -> (distribution, version)``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    origin: dict[str, tuple[str, str]] = {}
    disabled = _disabled()
    if autoload is None:
        autoload = not _autoload_off()
    known = {name for _, name, _ in extra}
    if disabled:
        for ep in _entry_points():
            known.add(ep.name)
            if ep.dist:
                known.add(ep.dist.name)
        _warn_unknown_disabled(disabled, known)
    if autoload:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist else "unknown distribution"
            version = ep.dist.version if ep.dist else ""
            if ep.name in disabled or dist in disabled:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # any import failure becomes one clear message
                raise PluginError(
                    f'plugin entry point "{ep.name} = {ep.value}" (group "{PROJECT}") from '
                    f"distribution {dist} {version} failed to import: "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall {dist}, or skip it with "
                    f"{DISABLE_ENV}={ep.name}."
                ) from exc
            if pm.is_registered(module):
                continue
            pm.register(module, name=ep.name)
            origin[ep.name] = (dist, version)
    for obj, name, dist in extra:
        if name in disabled:
            continue
        pm.register(obj, name=name)
        origin[name] = (dist, "")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"{exc}. Hook names must be one of: {', '.join(KINDS.values())}."
        ) from exc
    return pm, origin


def build_registry(
    extra: Iterable[tuple[object, str, str]] = (), *, autoload: bool | None = None
) -> Registry:
    """Load plugins and collect every ``harness_register_*`` mapping into a :class:`Registry`."""
    pm, origin = plugin_manager(extra, autoload=autoload)
    registry = Registry()
    for kind, hook_name in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            mapping = impl.function()
            if mapping is None:
                continue
            if not isinstance(mapping, Mapping):
                raise PluginError(
                    f'plugin "{impl.plugin_name}" hook {hook_name} returned '
                    f"{type(mapping).__name__}; it must return a mapping name -> factory."
                )
            dist, version = origin.get(impl.plugin_name, ("unknown distribution", ""))
            for name, factory in mapping.items():
                if not callable(factory):
                    raise PluginError(
                        f'plugin "{impl.plugin_name}" registered {kind} "{name}" with a '
                        f"{type(factory).__name__}, which is not callable; register a factory."
                    )
                registry.add(Entry(kind, name, factory, impl.plugin_name, dist, version))
    return registry
