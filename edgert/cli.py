"""The ``edgert`` command: a thin argparse front, one subcommand = one library call.

Contract (../shared/GUIDE.md): ``--json`` prints exactly one JSON object on
stdout; logs and progress go to stderr. Exit 0 = success, 1 = a check failed,
2 = the user's input is wrong (one line, no traceback unless ``--verbose``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from edgert.errors import EdgertError

__all__ = ["main", "build_parser"]

log = logging.getLogger("edgert")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def _add_common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--verbose", "-v", action="store_true", help="more logging; tracebacks on errors")


#: Modules that register subcommands (``register(sub, add_common)``), one per area, in help order.
#: firmware_tools is imported only here: the edgert core never imports it.
_COMMAND_MODULES = (
    "edgert.commands.model",  # inspect / predict / bench
    "edgert.commands.targets",  # targets / fit
    "edgert.commands.convert",  # convert
    "edgert.commands.optimize",  # optimize / demo
    "edgert.commands.loop",  # run
    "firmware_tools.cli",  # flash / device / export-c
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit 2 (no usage block).

    Subparsers inherit the class, so every subcommand keeps the contract.
    """

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (each area registers its own subcommands)."""
    from edgert import __version__

    parser = _Parser(prog="edgert", description="Take a trained model onto small devices and run it offline.")
    parser.add_argument("--version", action="version", version=f"edgert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub, _add_common)
    return parser


#: Top-level module of an optional dependency -> the extra that installs it.
_EXTRA_FOR_MODULE = {
    "tensorflow": "convert", "keras": "convert", "sklearn": "convert", "tflite_micro": "convert",
    "matplotlib": "convert", "cv2": "camera", "smp": "device", "smpclient": "device", "cbor2": "device",
    "imgtool": "device",
}


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line fix for a missing optional dependency, or None when it is not one of ours."""
    top = (error.name or "").split(".")[0]
    extra = _EXTRA_FOR_MODULE.get(top)
    if extra is None:
        return None
    return f"this command needs the '{top}' module, which is not installed (pip install \"edgert[{extra}]\")"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edgert`` console script. Returns the exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command line is still being read (imports)
        sys.stderr.write("edgert: interrupted\n")
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed a one-line usage error
        return int(e.code or 0) and EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "handler", None):
        sys.stderr.write("edgert: error: no command given (see: edgert --help)\n")
        return EXIT_USAGE
    try:
        code = args.handler(args)
        return EXIT_OK if code is None else int(code)
    except EdgertError as e:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        sys.stderr.write(f"edgert {args.command}: error: {e}\n")
        return e.exit_code
    except ModuleNotFoundError as e:
        message = _missing_extra(e)
        if message is None:
            raise
        if getattr(args, "verbose", False):
            traceback.print_exc()
        sys.stderr.write(f"edgert {args.command}: error: {message}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"edgert {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
