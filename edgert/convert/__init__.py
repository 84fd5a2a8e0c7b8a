"""Host-side conversion: Keras/SavedModel -> a .tflite sized for a target, with its report.

The only package (with :mod:`edgert.optimize`) that imports TensorFlow, and
only lazily inside functions: ``import edgert.convert`` is cheap.

Entry points:
    :func:`convert` — a model + a target profile -> model, metadata, accuracy, fit, reports.
    :func:`convert_keras` — the target-free converter call (mode + calibration data).
    :func:`load_keras_model`, :func:`load_calibration`, :func:`evaluate` — the pieces.
    :func:`stdout_to_stderr` — keeps TensorFlow's prints (fd 1 included) off a ``--json`` stdout.
"""

from edgert.convert._tf import stdout_to_stderr
from edgert.convert.accuracy import compare, evaluate, layer_errors
from edgert.convert.calibration import load_calibration, load_labeled, read_labels
from edgert.convert.converter import convert_keras
from edgert.convert.edgetpu import compile_edgetpu, parse_compiler_log
from edgert.convert.for_target import ConversionResult, convert
from edgert.convert.loader import SourceModel, load_keras_model, load_source
from edgert.convert.settings import MODES, ConverterSettings, settings_for

__all__ = [
    "MODES",
    "ConversionResult",
    "ConverterSettings",
    "SourceModel",
    "compare",
    "compile_edgetpu",
    "convert",
    "convert_keras",
    "evaluate",
    "layer_errors",
    "load_calibration",
    "load_keras_model",
    "load_labeled",
    "load_source",
    "parse_compiler_log",
    "read_labels",
    "settings_for",
    "stdout_to_stderr",
]
