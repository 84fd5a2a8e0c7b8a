"""Checks every PyTorch/ONNX conversion passes before it is written as a success.

Four of the routes tried while designing this produced silently wrong or
partly-float files (residual ADDs left in float by a non-strict export, uint8
outputs clamped, a MEAN that TFLite Micro runs to a constant). So the file is
scanned and run before it is trusted:

* ``float_ops``: no op computes in float (on an int8-only target the conversion
  is refused with the op names, see :func:`refuse_float_ops`);
* ``layout``: no TRANSPOSE feeds or follows a convolution;
* ``agreement``: the int8 model agrees with the *original* float model
  (torch / onnxruntime) on the evaluation data (or the calibration samples);
* ``micro_run`` (TFLite Micro targets): the real TFLite Micro interpreter runs
  the model and gives LiteRT's outputs.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgert.errors import ConversionError

__all__ = [
    "MIN_AGREEMENT",
    "MAX_RELATIVE_ERROR",
    "MICRO_MAX_STEPS",
    "float_ops",
    "layout_transposes",
    "refuse_float_ops",
    "runs_micro",
    "verify_conversion",
]

log = logging.getLogger("edgert.convert")

#: Share of samples whose top-1 class must match the float model's (classifiers).
MIN_AGREEMENT = 0.95
#: Largest RMS error of the outputs relative to the float outputs' RMS (regressors).
MAX_RELATIVE_ERROR = 0.1
#: Samples run through TFLite Micro (one child process; enough to catch a constant output).
_MICRO_SAMPLES = 16
#: Largest TFLite Micro vs LiteRT difference, in output quantization steps: their reference kernels
#: round averages and requantization differently (3-4 steps seen on small CNNs); a broken kernel is
#: far off or constant.
MICRO_MAX_STEPS = 8
#: Ops a layout TRANSPOSE must not touch.
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D")


def float_ops(model) -> dict[str, list[str]]:
    """``{op name: [output tensor names]}`` of ops that compute in float (QUANTIZE/DEQUANTIZE at the edge excepted)."""
    tensors = model.tensors()
    inputs = {t.index for t in model.inputs}
    outputs = {t.index for t in model.outputs}
    found: dict[str, list[str]] = {}
    for op in model.operators():
        if op.name == "QUANTIZE" and any(i in inputs for i in op.inputs):
            continue
        if op.name in ("QUANTIZE", "DEQUANTIZE") and any(o in outputs for o in op.outputs):
            continue
        idx = [i for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)]
        if any(tensors[i].dtype in ("float32", "float16") and not tensors[i].is_constant for i in idx):
            found.setdefault(op.name, []).append(tensors[op.outputs[0]].name if op.outputs else "")
    return found


def refuse_float_ops(model, target_name: str, hint: str) -> None:
    """Raise when ``model`` would leave float ops on an int8-only target.

    Raises:
        ConversionError: Naming the float ops (and the first tensor of each).
    """
    found = float_ops(model)
    if found:
        names = ", ".join(f"{op} ({names[0][:60]})" for op, names in sorted(found.items()))
        raise ConversionError(f"target {target_name} runs int8 only, but these ops stayed in float: {names}", hint)


def layout_transposes(model) -> list[str]:
    """Names of TRANSPOSE ops that feed or follow a convolution (a layout the converter did not remove)."""
    ops = list(model.operators())
    producer = {o: op for op in ops for o in op.outputs}
    consumers: dict[int, list] = {}
    for op in ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    tensors = model.tensors()
    bad = []
    for op in ops:
        if op.name != "TRANSPOSE":
            continue
        before = producer.get(op.inputs[0])
        after = [c for o in op.outputs for c in consumers.get(o, [])]
        if (before is not None and before.name in _CONV_OPS) or any(c.name in _CONV_OPS for c in after):
            bad.append(tensors[op.outputs[0]].name)
    return bad


def runs_micro(tgt) -> bool:
    """True for targets whose firmware runs TFLite Micro (the ones ``convert`` writes C source for)."""
    runtime = getattr(tgt, "runtime", None)
    if runtime is not None and hasattr(runtime, "c_source"):
        return bool(runtime.c_source)
    return getattr(tgt, "kind", None) == "mcu"


def _check(name: str, ok: bool, value: Any, limit: Any, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "value": value, "limit": limit, "detail": detail}


def _agreement_check(float_pred: np.ndarray, conv_pred: np.ndarray, where: str) -> dict[str, Any]:
    fp = float_pred.reshape(len(float_pred), -1).astype(np.float64)
    cp = conv_pred.reshape(len(conv_pred), -1).astype(np.float64)
    if fp.shape[1] > 1:
        agree = float(np.mean(np.argmax(fp, 1) == np.argmax(cp, 1)))
        return _check(
            "agreement",
            agree >= MIN_AGREEMENT,
            round(agree, 4),
            MIN_AGREEMENT,
            f"top-1 of the int8 model matches the original float model on {agree:.1%} of {len(fp)} {where}"
            + ("" if agree >= MIN_AGREEMENT else "; calibrate on more typical inputs or keep the model on a CPU target in float"),
        )
    rms = float(np.sqrt(np.mean(fp**2))) or 1.0
    rel = float(np.sqrt(np.mean((fp - cp) ** 2))) / rms
    return _check(
        "agreement",
        rel <= MAX_RELATIVE_ERROR,
        round(rel, 4),
        MAX_RELATIVE_ERROR,
        f"int8 outputs differ from the original float model by {rel:.1%} RMS on {len(fp)} {where}",
    )


def _micro_check(data: bytes, x: np.ndarray) -> dict[str, Any]:
    from edgert.model import read_model
    from edgert.runtime import load_model
    from edgert.runtime.micro import MicroError, micro_available, run_micro_many

    if not micro_available():
        return _check("micro_run", False, None, None, "tflite-micro is not installed: pip install tflite-micro")
    mf = read_model(data)
    spec = mf.inputs[0]
    xs = x[:_MICRO_SAMPLES]
    samples = []
    for s in xs:
        v = np.asarray(s, np.float32).reshape(spec.shape)
        if spec.quantized:
            info = np.iinfo(np.dtype(spec.dtype))
            v = np.clip(np.rint(v / float(spec.scale or 1.0)) + spec.zero_point, info.min, info.max)
        samples.append([v.astype(spec.dtype)])
    try:
        micro = run_micro_many(data, samples)
    except MicroError as e:
        return _check("micro_run", False, None, None, f"TFLite Micro cannot run the model: {e}")
    lite = load_model(data, trusted=True)
    worst = 0.0
    for sample, m_out in zip(samples, micro, strict=True):
        l_out = lite.predict(sample[0], dequantize_output=False)[0]
        worst = max(worst, float(np.max(np.abs(np.asarray(m_out[0], np.int64) - np.asarray(l_out, np.int64)))))
    constant = len(micro) > 1 and all(np.array_equal(micro[0][0], m[0]) for m in micro[1:]) and len(xs) > 1
    ok = worst <= MICRO_MAX_STEPS and not constant
    detail = f"TFLite Micro ran {len(micro)} samples; largest difference from LiteRT {worst:g} quantization step(s)"
    if constant:
        detail += "; its output is the same for every input (a kernel TFLite Micro runs differently)"
    return _check("micro_run", ok, worst, MICRO_MAX_STEPS, detail)


def verify_conversion(source, tgt, data: bytes, x: np.ndarray | None, *, where: str, progress=None) -> list[dict[str, Any]]:
    """The checks above for a converted model.

    Args:
        source: The source model (its ``predict`` runs the original float model).
        tgt: The target profile.
        data: The converted model.
        x: Inputs in the converted model's layout (evaluation data, else calibration samples).
        where: What ``x`` is, for the messages (``"evaluation samples"``).
        progress: Progress callback.

    Returns:
        Check dicts (``name, ok, value, limit, detail``) to append to the report's checks.
    """
    from edgert.model import read_model
    from edgert.runtime.predict import predict_samples

    mf = read_model(data)
    checks = []
    found = float_ops(mf)
    checks.append(
        _check(
            "float_ops",
            not found,
            sum(len(v) for v in found.values()),
            0,
            "every op computes in integer" if not found else f"ops computing in float: {', '.join(sorted(found))}",
        )
    )
    bad = layout_transposes(mf)
    checks.append(
        _check(
            "layout",
            not bad,
            len(bad),
            0,
            "no TRANSPOSE next to a convolution" if not bad else f"TRANSPOSE next to a convolution: {', '.join(bad[:3])}",
        )
    )
    if x is not None and len(x):
        float_pred = source.predict(x)
        conv_pred = predict_samples(data, x, progress, "verifying")
        checks.append(_agreement_check(float_pred, conv_pred, where))
    if x is not None and len(x) and runs_micro(tgt):
        checks.append(_micro_check(data, x))
    for c in checks:
        (log.info if c["ok"] else log.warning)("verify %s: %s", c["name"], c["detail"])
    return checks
