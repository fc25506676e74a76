"""``harness`` subcommands, one module each.

Every module in this package that defines a ``click`` command or group named ``command`` is added
to the ``harness`` CLI (see :mod:`harness.cli`). Modules are imported lazily, when the CLI starts.
"""
