"""Run TensorFlow's ``TFLiteConverter`` with the settings a target needs."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgert.convert._tf import import_tf, stdout_to_stderr
from edgert.convert.loader import load_source
from edgert.convert.settings import ConverterSettings, normalize_mode
from edgert.convert.source_model import SourceModel
from edgert.errors import ConversionError, InputDataError
from edgert.progress import report
from edgert.targets import Runtime, runtime_for

__all__ = ["apply_settings", "convert_keras", "convert_source", "keep_float_nodes", "representative_dataset", "tf_dtype"]

log = logging.getLogger("edgert.convert")


@dataclass(frozen=True)
class _FreeTarget:
    """Stands in for a target profile when the caller states the settings directly."""

    runtime: Runtime
    full_int8: bool
    quantization: str
    input_dtype: str
    output_dtype: str
    name: str | None = None


def tf_dtype(name: str):
    """``tf.DType`` for a dtype name."""
    tf = import_tf()
    return {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[name]


def representative_dataset(samples: np.ndarray, progress=None, label: str = "calibrating"):
    """A ``representative_dataset`` callable over ``samples`` (one batch-1 sample per step)."""

    def gen():
        n = len(samples)
        for i in range(n):
            yield [np.asarray(samples[i : i + 1], np.float32)]
            report(progress, i + 1, n, label)

    return gen


def apply_settings(converter, settings: ConverterSettings, samples: np.ndarray | None, progress=None) -> None:
    """Configure a ``TFLiteConverter`` for ``settings`` (op sets, optimizations, I/O types, calibration)."""
    tf = import_tf()
    mode = settings.mode
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, name) for name in settings.supported_ops]
    if mode == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if mode == "dynamic":
        return
    if samples is None or len(samples) == 0:
        raise InputDataError(
            f"mode {mode} quantizes activations and needs calibration data",
            "pass --calibration DIR|FILE.npy with a few hundred typical inputs",
        )
    if not settings.per_channel_dense:
        # No public switch exists yet; the attribute is read by TFLiteConverter._quantize.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    converter.representative_dataset = representative_dataset(samples, progress)
    converter.inference_input_type = tf_dtype(settings.input_dtype)
    converter.inference_output_type = tf_dtype(settings.output_dtype)


def _converter_error(e: BaseException) -> ConversionError:
    text = str(e).strip()
    # The MLIR converter's message starts with a location line; the op that failed follows.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = next((ln for ln in lines if "error:" in ln), lines[0] if lines else type(e).__name__)
    return ConversionError(
        f"TFLiteConverter failed: {useful[:240]}",
        "run with --verbose for the converter's log; an op without an int8 kernel needs a CPU target or a model change",
    )


def _run(converter) -> bytes:
    from tensorflow.lite.python.convert_phase import ConverterError

    try:
        with stdout_to_stderr(capture=True), warnings.catch_warnings():
            # Emitted for every full-integer conversion with a representative dataset: noise, not news.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return bytes(converter.convert())
    except (ConverterError, ValueError, RuntimeError) as e:
        raise _converter_error(e) from None


def keep_float_nodes(quantized: bytes, keep_float: Sequence[str]) -> tuple[list[str], list[str]]:
    """Map ``--keep-float`` names to the debugger's ``(denylisted_nodes, denylisted_ops)``.

    A name in upper case that is an operator of the model (``SOFTMAX``) denylists
    that operator type; any other name is a Keras layer name, matched against the
    path segments of each op's output tensor name (``.../conv_b_1/Relu`` belongs
    to layer ``conv_b``: Keras 3 appends ``_<n>`` to name scopes).

    Raises:
        ConversionError: A name matches neither a layer nor an operator.
    """
    from edgert.model import read_model

    mf = read_model(quantized)
    tensors = mf.tensors()
    op_names = set(mf.ops)
    nodes: list[str] = []
    ops: list[str] = []
    for name in keep_float:
        if name in op_names:
            ops.append(name)
            continue
        seg = re.compile(rf"(^|[/;]){re.escape(name)}(_\d+)?(/|;|$)")
        hits = [tensors[o].name for op in mf.operators() for o in op.outputs if seg.search(tensors[o].name)]
        if not hits:
            raise ConversionError(
                f"--keep-float {name}: no layer or operator of that name in the model",
                f"operators: {', '.join(sorted(op_names))}",
            )
        nodes.extend(hits)
    return nodes, ops


def convert_source(
    source: SourceModel,
    settings: ConverterSettings,
    samples: np.ndarray | None = None,
    *,
    keep_float: Sequence[str] = (),
    progress=None,
) -> bytes:
    """Convert a :class:`SourceModel` with ``settings``; returns the .tflite bytes.

    Raises:
        InputDataError: Calibration is needed but missing.
        ConversionError: The converter failed, or ``keep_float`` names nothing.
    """
    if keep_float and not settings.allow_keep_float:
        raise ConversionError(
            f"--keep-float is not possible in mode {settings.mode}"
            + (f" for target {settings.target}" if settings.target else " with integer-only kernels"),
            "keep-float needs mode int8 on a target that allows float kernels (a CPU target)",
        )
    converter = source.make_converter()
    apply_settings(converter, settings, samples, progress)
    data = _run(converter)
    if not keep_float:
        return data
    assert samples is not None  # keep_float needs int8, and apply_settings refused int8 without calibration data
    tf = import_tf()
    nodes, ops = keep_float_nodes(data, keep_float)
    log.info("keeping in float: %s", ", ".join(nodes + ops))
    converter = source.make_converter()
    apply_settings(converter, settings, samples, None)
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=nodes or None, denylisted_ops=ops or None, fully_quantize=settings.input_dtype != "float32"
    )
    try:
        with stdout_to_stderr(capture=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecated tf.lite.Interpreter it builds warns loudly
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=representative_dataset(samples[:1]), debug_options=options
            )
            return bytes(debugger.get_nondebug_quantized_model())
    except (ValueError, RuntimeError) as e:
        raise _converter_error(e) from None


def convert_keras(
    keras_model: Any,
    *,
    mode: str,
    representative_data: np.ndarray | Iterable | None = None,
    input_dtype: str | None = None,
    output_dtype: str | None = None,
    keep_float: Sequence[str] = (),
    full_int8: bool = False,
    progress=None,
) -> bytes:
    """Convert a Keras model (or a .keras/.h5 path / SavedModel dir) to .tflite bytes.

    The target-free entry point: ``mode`` picks the quantization, ``full_int8``
    forbids float fallback ops (what microcontrollers and the Edge TPU need).
    :func:`edgert.convert.convert` chooses all of this from a target profile.

    Args:
        keras_model: Keras model, or a path accepted by :func:`edgert.convert.loader.load_source`.
        mode: ``float32``, ``float16``, ``dynamic``, ``int8`` or ``int16x8``.
        representative_data: Calibration samples (array/iterable) for int8/int16x8.
        input_dtype: Input dtype (default int8 for int8, int16 for int16x8, else float32).
        output_dtype: Output dtype (same defaults).
        keep_float: Layer or operator names to keep in float (mode int8, not with ``full_int8``).
        full_int8: Only integer kernels (``TFLITE_BUILTINS_INT8``).
        progress: Progress callback over calibration.
    """
    from edgert.convert.calibration import load_calibration
    from edgert.convert.settings import settings_for

    source = load_source(keras_model)
    m = normalize_mode(mode)

    io_dtype = {"int8": "int8", "int16x8": "int16"}.get(m, "float32")
    # Integer-only settings are TFLite Micro's (per-tensor dense weights); otherwise LiteRT's CPU kernels.
    free = _FreeTarget(
        runtime=runtime_for("tflm" if full_int8 else "tflite"), full_int8=full_int8,
        quantization=m, input_dtype=io_dtype, output_dtype=io_dtype,
    )
    settings = settings_for(free, m, input_dtype, output_dtype)
    samples = None
    if representative_data is not None:
        samples = load_calibration(representative_data, source.input_shape, progress)
    return convert_source(source, settings, samples, keep_float=keep_float, progress=progress)
