"""The exception type the CLI turns into a clean message (no traceback), and the warning type it
prints as one ``warning: ...`` line."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: its message names the thing that is wrong and the fix."""


class ConfigError(HarnessError):
    """An experiment file or ``--set`` override is wrong."""


class PluginError(HarnessError):
    """A plugin failed to load, or a name is unknown or registered twice."""


class HarnessWarning(UserWarning):
    """Something was skipped or changed for the user; the message says what and why."""
