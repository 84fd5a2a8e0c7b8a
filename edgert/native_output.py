"""Native libraries' log lines kept off the user's terminal, without losing a real error.

TensorFlow's converter and the TFLite interpreter log from C++ straight to file
descriptor 2: absl's "All log messages before absl::InitializeLog() …", the
oneDNN banner, the quantizer's "fully_quantize: 0, inference_type: 6 …",
"Ignored output_format.", XNNPACK's "Created TensorFlow Lite XNNPACK delegate
for CPU." Python's logging cannot filter them, so :func:`native_chatter_to_debug`
points the descriptors at a temporary file for the duration of a native call and
sorts what was written afterwards:

* known chatter goes to the ``edgert.native`` logger at DEBUG (``--verbose`` shows it);
* anything else (an absl ERROR, a Python warning) is copied to stderr;
* when the block raised, everything is copied to stderr, so a failed conversion
  shows the converter's own explanation.

Python-level writes to ``sys.stderr`` (progress bars) go on reaching the
terminal live during the block.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["native_chatter_to_debug", "is_native_chatter"]

log = logging.getLogger("edgert.native")

_CHATTER = re.compile(
    "|".join(
        (
            r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
            # absl INFO and WARNING lines ("I0000 00:00:1796314195.265086   17117 port.cc:153] ..."); E and F stay visible.
            r"^[IW]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\] ",
            r"^fully_quantize: \d+, inference_type: \d+",
            r"^Ignored (output_format|drop_control_dependency)\.$",
            r"^Estimated count of arithmetic ops: ",
            # TFLite's own INFO lines: delegate created, runtime initialised.
            r"^INFO: ",
        )
    )
)


def is_native_chatter(line: str) -> bool:
    """True for a native log line that tells a user nothing (see the module docstring)."""
    return bool(_CHATTER.match(line))


@contextmanager
def native_chatter_to_debug(*, stdout: bool = False) -> Iterator[None]:
    """Capture what native code writes to fd 2 (and fd 1 with ``stdout``) and sort it afterwards.

    Args:
        stdout: Also capture fd 1 (the converter's C++ side prints there; ``--json``
            promises stdout holds exactly one JSON object).
    """
    fds = (1, 2) if stdout else (2,)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = {fd: os.dup(fd) for fd in fds}
    except OSError:  # no such descriptor (an embedded interpreter): nothing to capture
        yield
        return
    capture = tempfile.TemporaryFile()
    terminal = sys.stderr
    live = open(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    for fd in fds:
        os.dup2(capture.fileno(), fd)
    sys.stderr = live
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        live.flush()
        sys.stderr = terminal
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        live.close()
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
        capture.close()
        _sort(text, show_all=failed, terminal=terminal)


def _sort(text: str, *, show_all: bool, terminal) -> None:
    shown = []
    for line in text.splitlines():
        if not show_all and is_native_chatter(line):
            log.debug("%s", line)
        elif line.strip():
            shown.append(line)
    if shown:
        terminal.write("\n".join(shown) + "\n")
        terminal.flush()
