"""How much accuracy a conversion cost: float vs converted, and which layers lost the most.

The converted model runs in the real interpreter (``edgert.runtime``); the
float reference is the source model itself. The per-layer table comes from
TensorFlow's ``QuantizationDebugger`` for integer modes (each op's quantized
output against the float op fed the same inputs), and otherwise from comparing
the intermediate tensors of the float32 and converted flatbuffers by name.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgert.runtime.predict import predict_samples

__all__ = ["LAYER_ROWS", "compare", "evaluate", "layer_errors", "worst_layers"]

log = logging.getLogger("edgert.convert")

#: Rows kept in the per-layer table (worst first).
LAYER_ROWS = 10
#: Samples fed to the per-layer analysis (statistics settle after a few dozen).
_LAYER_SAMPLES = 32


def _is_classification(pred: np.ndarray, y: np.ndarray) -> bool:
    return pred.ndim == 2 and pred.shape[1] > 1 and np.asarray(y).dtype.kind in "iub"


def _metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if _is_classification(pred, y):
        return {"top1": float(np.mean(np.argmax(pred, axis=1) == np.asarray(y).reshape(-1)))}
    target = np.asarray(y, np.float32).reshape(pred.shape[0], -1)
    return {"mse": float(np.mean((pred.reshape(target.shape) - target) ** 2))}


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, progress=None) -> dict[str, Any]:
    """Accuracy of a .tflite model on labeled data.

    Returns:
        ``{"samples", "top1"}`` for classifiers (integer ``y``, vector outputs),
        ``{"samples", "mse"}`` otherwise.
    """
    pred = predict_samples(model, x, progress)
    return {"samples": int(len(x)), **_metrics(pred, y)}


def compare(float_pred: np.ndarray, converted_pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Float vs converted on the same labeled data.

    Returns:
        For classifiers ``float_top1``, ``converted_top1``, ``drop_points``
        (percentage points lost) and ``agreement`` (share of samples with the
        same top-1 class); for regressors ``float_mse``, ``converted_mse`` and
        ``output_mse`` (converted vs float outputs).
    """
    fp = float_pred.reshape(len(float_pred), -1)
    cp = converted_pred.reshape(len(converted_pred), -1)
    out: dict[str, Any] = {"samples": int(len(fp))}
    if _is_classification(fp, y):
        f1, c1 = _metrics(fp, y)["top1"], _metrics(cp, y)["top1"]
        out.update(
            task="classification",
            float_top1=f1,
            converted_top1=c1,
            drop_points=round((f1 - c1) * 100.0, 3),
            agreement=float(np.mean(np.argmax(fp, 1) == np.argmax(cp, 1))),
        )
    else:
        out.update(
            task="regression",
            float_mse=_metrics(fp, y)["mse"],
            converted_mse=_metrics(cp, y)["mse"],
            output_mse=float(np.mean((fp - cp) ** 2)),
        )
    out["max_abs_output_diff"] = float(np.max(np.abs(fp - cp))) if fp.size else 0.0
    return out


def _snr_db(signal_power: float, noise_power: float) -> float | None:
    # None when undefined: an exact layer (no noise) or an all-zero signal; JSON has no infinity.
    if noise_power <= 0.0 or signal_power <= 0.0:
        return None
    return 10.0 * math.log10(signal_power / noise_power)


def _row(name: str, op: str, signal: float, noise: float, max_abs: float) -> dict[str, Any]:
    rms_signal = math.sqrt(signal) if signal > 0 else 0.0
    return {
        "layer": name,
        "op": op,
        "snr_db": _snr_db(signal, noise),
        "relative_error": (math.sqrt(noise) / rms_signal) if rms_signal > 0 else None,
        "mse": noise,
        "max_abs_error": max_abs,
    }


def _short(name: str) -> str:
    # "functional_1/sequential/conv_b_1/Relu;.../BiasAdd" -> "functional_1/sequential/conv_b_1/Relu"
    return name.split(";")[0]


def _debugger_rows(source, settings, samples: np.ndarray, debug_x: np.ndarray) -> list[dict[str, Any]]:
    """Per-op error from the QuantizationDebugger's instrumented model.

    The debugger builds a model where every quantized op also runs in float on
    the same (dequantized) inputs, joined by a ``NumericVerify`` op. We run that
    model ourselves with every tensor preserved: the debugger's own interpreter
    reuses tensor memory, so reading the float side after ``invoke`` can return
    another layer's bytes.
    """
    import warnings

    from edgert.convert._tf import import_tf, stdout_to_stderr
    from edgert.convert.converter import apply_settings, representative_dataset
    from edgert.model import read_model

    tf = import_tf()
    converter = source.make_converter()
    apply_settings(converter, settings, samples, None)
    with stdout_to_stderr(capture=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated tf.lite.Interpreter it builds warns loudly
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative_dataset(debug_x[:1])
        )
        debug_model = bytes(debugger.get_debug_quantized_model())
    mf = read_model(debug_model)
    tensors = mf.tensors()
    producer = {o: op.name for op in mf.operators() for o in op.outputs}
    verify = [(op.inputs[0], op.inputs[1]) for op in mf.operators() if op.name.lower() in ("numericverify", "numeric_verify")]
    interp = _interpreter(debug_model)
    acc = {q: [0.0, 0.0, 0.0] for q, _ in verify}
    for sample in debug_x:
        _set_input(interp, sample)
        interp.invoke()
        for q, f in verify:
            spec = tensors[q]
            fv = np.asarray(interp.get_tensor(f), np.float64)
            qv = np.asarray(interp.get_tensor(q), np.float64)
            if spec.quantized:
                assert spec.scale is not None and spec.zero_point is not None  # quantized: the reader sets both
                qv = (qv - spec.zero_point) * spec.scale
            a = acc[q]
            a[0] += float(np.mean(fv**2))
            a[1] += float(np.mean((fv - qv) ** 2))
            a[2] = max(a[2], float(np.max(np.abs(fv - qv))) if fv.size else 0.0)
    n = max(len(debug_x), 1)
    return [_row(_short(tensors[q].name), producer.get(q, ""), a[0] / n, a[1] / n, a[2]) for q, a in acc.items()]


def _op_by_output_name(data: bytes) -> dict[str, str]:
    from edgert.model import read_model

    mf = read_model(data)
    tensors = mf.tensors()
    return {tensors[o].name: op.name for op in mf.operators() for o in op.outputs}


def _interpreter(data: bytes):
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    from edgert.native_output import native_chatter_to_debug

    with warnings.catch_warnings(), native_chatter_to_debug():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": that is what this is
        interp = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    return interp


def _set_input(interp, sample: np.ndarray) -> None:
    d = interp.get_input_details()[0]
    value = np.asarray(sample, np.float32).reshape(d["shape"])
    scale, zp = d["quantization"]
    if scale:
        info = np.iinfo(d["dtype"])
        value = np.clip(np.rint(value / scale) + zp, info.min, info.max)
    interp.set_tensor(d["index"], value.astype(d["dtype"]))


def _tensor_rows(float_data: bytes, converted: bytes, x: np.ndarray) -> list[dict[str, Any]]:
    """Compare each op output of ``converted`` with the same-named float32 tensor, accumulated over ``x``."""
    f_interp, c_interp = _interpreter(float_data), _interpreter(converted)
    f_by_name = {d["name"]: d for d in f_interp.get_tensor_details()}
    op_of = _op_by_output_name(converted)
    pairs = []
    for d in c_interp.get_tensor_details():
        fd = f_by_name.get(d["name"])
        if d["name"] in op_of and fd is not None and tuple(fd["shape"]) == tuple(d["shape"]):
            pairs.append((d, fd))
    acc = {d["name"]: [0.0, 0.0, 0.0] for d, _ in pairs}
    for sample in x:
        _set_input(f_interp, sample)
        _set_input(c_interp, sample)
        f_interp.invoke()
        c_interp.invoke()
        for d, fd in pairs:
            fv = np.asarray(f_interp.get_tensor(fd["index"]), np.float64)
            cv = np.asarray(c_interp.get_tensor(d["index"]), np.float64)
            scale, zp = d["quantization"]
            if scale:
                cv = (cv - zp) * scale
            a = acc[d["name"]]
            a[0] += float(np.mean(fv**2))
            a[1] += float(np.mean((fv - cv) ** 2))
            a[2] = max(a[2], float(np.max(np.abs(fv - cv))) if fv.size else 0.0)
    n = max(len(x), 1)
    # Full names: layer_errors maps them to layers (litert-torch puts the module path after the first ';').
    return [_row(name, op_of[name], a[0] / n, a[1] / n, a[2]) for name, a in acc.items()]


def _keras_layer(tensor_name: str, layer_names: set[str]) -> str | None:
    """The Keras layer a tensor belongs to: ``edgert_1/sequential_1/conv_b_1/Relu`` -> ``conv_b``."""
    for seg in reversed(tensor_name.split(";")[0].split("/")):
        for cand in (seg, re.sub(r"_\d+$", "", seg)):
            if cand in layer_names:
                return cand
    return None


def _torch_module(tensor_name: str, module_names: set[str]) -> str | None:
    """The PyTorch module a litert-torch tensor comes from: ``.../torch.nn.modules.conv.Conv2d_conv1;1`` -> ``conv1``."""
    for part in reversed(tensor_name.split(";")):
        seg = part.rsplit("/", 1)[-1]
        for name in sorted(module_names, key=len, reverse=True):
            if seg.endswith("_" + name):
                return name
    return None


def _torch_tensor(tensor_name: str) -> str:
    """The module of a litert-torch tensor name: the last path segment of its most specific ';'-part
    (the first part is the channels-last wrapper's), e.g. ``torch.nn.modules.conv.Conv2d_conv1``."""
    parts = [p for p in tensor_name.split(";") if p and not p.isdigit()]
    return (parts[-1] if parts else tensor_name).rsplit("/", 1)[-1]


def _sort_key(row: dict[str, Any]) -> float:
    snr = row["snr_db"]
    return math.inf if snr is None else snr


def layer_errors(
    source,
    settings,
    converted: bytes,
    samples: np.ndarray | None,
    x: np.ndarray,
    *,
    float_data: bytes | None = None,
    rows: int = LAYER_ROWS,
) -> dict[str, Any]:
    """Per-layer quantization error, worst SNR first.

    Args:
        source: The :class:`~edgert.convert.loader.SourceModel`.
        settings: The :class:`~edgert.convert.settings.ConverterSettings` used.
        converted: The converted model.
        samples: Calibration samples (the debugger re-calibrates with them).
        x: Inputs to measure on (a few dozen are used).
        float_data: A float32 .tflite of the same model (for the tensor comparison).
        rows: How many layers to keep.

    Returns:
        ``{"method": "quantization_debugger" | "tensor_compare" | None, "layers": [...], "note"?}``;
        each layer ``{layer, op, snr_db, relative_error, mse, max_abs_error}``.
    """
    debug_x = x[:_LAYER_SAMPLES]
    method, table, note = None, [], None
    # The debugger re-converts through TFLiteConverter, which a PyTorch source (litert-torch) has not.
    if settings.mode == "int8" and samples is not None and source.route != "torch":
        try:
            table = _debugger_rows(source, settings, samples, debug_x)
            method = "quantization_debugger"
            if not settings.per_channel_dense:
                # The debugger always quantizes dense weights per channel (LiteRT issue 3596).
                note = "the debugger quantized dense layers per-channel; the converted model uses per-tensor"
        except (ValueError, RuntimeError, KeyError, AttributeError) as e:
            # The debugger is experimental (and its interpreter deprecated); the
            # tensor comparison below gives the accumulated error instead.
            note = f"QuantizationDebugger unavailable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
            log.info("%s; comparing intermediate tensors instead", note)
    if method is None and float_data is not None:
        table = _tensor_rows(float_data, converted, debug_x)
        method = "tensor_compare"
    names = set(getattr(source, "layer_names", []) or [])
    torch_route = source.route == "torch"
    for row in table:
        full = row["layer"]
        if torch_route:
            row["tensor"] = _torch_tensor(full)
            row["layer"] = _torch_module(full, names) or row["tensor"]
        else:
            row["tensor"] = _short(full)
            row["layer"] = _keras_layer(full, names) or row["tensor"]
    table.sort(key=_sort_key)
    out: dict[str, Any] = {"method": method, "samples": int(len(debug_x)), "layers": table[:rows]}
    if note:
        out["note"] = note
    return out


def worst_layers(table: Sequence[dict[str, Any]], n: int = 3) -> list[str]:
    """Names of the ``n`` layers with the lowest SNR."""
    return [r["layer"] for r in list(table)[:n]]
