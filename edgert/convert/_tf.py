"""Lazy TensorFlow import and the guards conversion needs around it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator

from edgert.native_output import native_chatter_to_debug

__all__ = ["import_tf", "import_keras", "stdout_to_stderr"]


def import_tf():
    """Import TensorFlow on first use (it takes seconds and hundreds of MB).

    Its C++ INFO chatter is silenced unless the user configured TF_CPP_MIN_LOG_LEVEL.
    Kernels are made deterministic: seeds alone are not enough on CPU, where some
    kernels add float sums in whatever order their threads finish, so two runs of
    one seeded training diverge and a pruned candidate passes its accuracy budget
    in one run and loses it in the next. On models of this size it costs little.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgert.errors import ConversionError

    try:
        with native_chatter_to_debug():  # absl's and oneDNN's start-up lines
            import tensorflow as tf
    except ImportError as e:
        raise ConversionError(
            f"TensorFlow is not installed ({e})", "install tensorflow-cpu to convert models (pip install tensorflow-cpu)"
        ) from None
    tf.config.experimental.enable_op_determinism()
    return tf


def import_keras():
    """Import Keras (after TensorFlow, so it picks the TensorFlow backend)."""
    import_tf()
    import keras

    return keras


@contextlib.contextmanager
def stdout_to_stderr(*, capture: bool = False) -> Iterator[None]:
    """Keep everything off stdout for the duration (fd 1 too, where TensorFlow's C++ writes).

    ``--json`` promises stdout holds exactly one JSON object; Keras' SavedModel
    export prints "Saved artifact at ..." with an endpoint listing and the
    converter's C++ side prints its own lines.

    Args:
        capture: Around one conversion: Python-level prints are logged at DEBUG
            (``--verbose`` shows them) instead of copied to stderr (Keras' export
            listing is noise to a user), and the converter's native log lines are
            sorted by :func:`edgert.native_output.native_chatter_to_debug`: chatter
            to DEBUG, real errors to stderr, everything when the conversion fails.
    """
    if capture:
        captured = io.StringIO()
        try:
            with native_chatter_to_debug(stdout=True), contextlib.redirect_stdout(captured):
                yield
        finally:
            text = captured.getvalue().strip()
            if text:
                logging.getLogger("edgert.convert").debug("%s", text)
        return
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded interpreters): the Python-level redirect is all we can do
        saved = None
    try:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
