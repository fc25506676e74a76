"""srgan-harness: a plugin-based experimentation harness for GAN super-resolution.

Plugin authors need one import::

    from harness import hookimpl

    @hookimpl
    def harness_register_content_losses():
        return {"charbonnier": Charbonnier}
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT = "harness"
"""The pluggy project name and the entry-point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["PROJECT", "__version__", "hookimpl", "hookspec"]
