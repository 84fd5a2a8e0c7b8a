"""``python -m firmware_tools.sim``: the simulator without the rest of the ``edgert`` command.

Same options and the same announcement as ``edgert device simulate``
(:func:`firmware_tools.cli.add_simulator_arguments`, :func:`firmware_tools.cli.run_simulator`):
this is a command-line module, so it may import the CLI; the library modules of
the package never do.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from edgert.commands.output import emit
from edgert.errors import EdgertError
from firmware_tools.cli import add_simulator_arguments, run_simulator, simulator_banner

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m firmware_tools.sim``: serve until SIGINT/SIGTERM, then exit 0."""
    p = argparse.ArgumentParser(prog="python -m firmware_tools.sim", description="An emulated SMP board on a pseudo-terminal.")
    add_simulator_arguments(p)
    p.add_argument("--json", action="store_true", help="announce the port as one JSON object on stdout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)

    def announce(info: dict[str, Any]) -> None:
        emit(args, info, lambda i: i["port"])
        if not args.json:
            sys.stderr.write(simulator_banner(info))

    try:
        return run_simulator(args, announce)
    except EdgertError as e:
        sys.stderr.write(f"simulate: error: {e}\n")
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
