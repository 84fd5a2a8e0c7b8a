"""Lazy TensorFlow import and the guards conversion needs around it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import Iterator

__all__ = ["import_tf", "import_keras", "stdout_to_stderr"]


def import_tf():
    """Import TensorFlow on first use (it takes seconds and hundreds of MB).

    Its C++ INFO chatter is silenced unless the user configured TF_CPP_MIN_LOG_LEVEL.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgert.errors import ConversionError

    try:
        import tensorflow as tf
    except ImportError as e:
        raise ConversionError(
            f"TensorFlow is not installed ({e})", "install tensorflow-cpu to convert models (pip install tensorflow-cpu)"
        ) from None
    return tf


def import_keras():
    """Import Keras (after TensorFlow, so it picks the TensorFlow backend)."""
    import_tf()
    import keras

    return keras


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Keep conversion off stdout for the duration.

    Keras' SavedModel export prints "Saved artifact at ..." with its endpoint
    listing, and the converter's C++ side prints its own lines on fd 1;
    ``--json`` promises stdout holds exactly one JSON object. Python-level
    prints are logged at DEBUG (``--verbose`` shows them); fd-level writes go to stderr.
    """
    sys.stdout.flush()
    captured = io.StringIO()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded interpreters): the Python-level redirect is all we can do
        saved = None
    try:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(2, 1)
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        text = captured.getvalue().strip()
        if text:
            logging.getLogger("edgert.convert").debug("%s", text)
