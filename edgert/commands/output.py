"""How every subcommand prints: one JSON object with ``--json``, else readable text; progress on stderr.

Command modules (and ``firmware_tools.cli``) import these from here, not from
:mod:`edgert.cli`, which imports the command modules to register them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from edgert.jsonutil import json_default

__all__ = ["emit", "progress_bar"]


def emit(args: argparse.Namespace, result: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
    """Print ``result`` as one JSON object with ``--json``, else as ``human(result)``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result, default=json_default) + "\n")
    else:
        text = human(result)
        if text:
            sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def progress_bar():
    """The progress callback the CLI hands to long-running library calls."""
    from edgert.progress import TerminalProgress

    return TerminalProgress()
