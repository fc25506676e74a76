"""``harness`` subcommands, one module each.

Each module defines a ``click`` command or group named ``command``; :data:`harness.cli.COMMANDS`
lists the modules the ``harness`` CLI adds.
"""
