"""The one exception type the CLI turns into a clean message (no traceback)."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: its message names the thing that is wrong and the fix."""


class ConfigError(HarnessError):
    """An experiment file or ``--set`` override is wrong."""


class PluginError(HarnessError):
    """A plugin failed to load, or a name is unknown or registered twice."""
