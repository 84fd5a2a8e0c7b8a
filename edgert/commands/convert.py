"""Subcommands of this area (filled in by its issue)."""


def register(sub, add_common) -> None:
    """Add this area's subcommands to the ``edgert`` parser."""
