"""Subcommand registrations for :mod:`edgert.cli`, one module per area.

Each module has ``register(subparsers, add_common)`` that adds its subcommands
and sets ``handler`` to a function ``(args) -> exit code``. Handlers parse
options, make one library call, and print through :func:`edgert.cli.emit`.
"""
