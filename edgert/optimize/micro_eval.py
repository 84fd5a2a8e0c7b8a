"""Top-1 of an int8 model under the real TensorFlow Lite Micro interpreter, many samples in one isolated child.

:func:`edgert.runtime.micro.run_micro` runs one inference per child process;
checking accuracy on held-out data needs hundreds, so this loads TFLM once in
one child (same isolation, same typed errors) and loops there.
"""

from __future__ import annotations

import numpy as np

from edgert.errors import InvalidModelError

__all__ = ["micro_top1"]


def _child_predict(data: bytes, samples: np.ndarray) -> np.ndarray:
    """Child side: raw outputs of every sample (already in the input dtype)."""
    from edgert.runtime.micro import _interpreter
    from edgert.model.memory import plan_arena
    from edgert.model import read_model

    interp = _interpreter(data, plan_arena(read_model(data)).total_bytes + 4096)
    out = []
    for s in samples:
        interp.set_input(np.ascontiguousarray(s), 0)
        interp.invoke()
        out.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(out)


def micro_top1(data: bytes, x: np.ndarray, y: np.ndarray, limit: int | None = None) -> dict:
    """Run ``x`` (float, model-ready) through TFLite Micro and score against ``y``.

    Args:
        data: An int8 .tflite model (TFLM rejects uint8).
        x: Float inputs, batch first; quantized here by the model's input scale.
        y: Integer labels.
        limit: Only the first ``limit`` samples.

    Returns:
        ``{"samples", "top1", "predictions"}``.

    Raises:
        MicroError / InvalidModelError: TFLM cannot load or crashed on the model.
        BackendError: tflite_micro is not installed.
    """
    from edgert.isolate import IsolationError, run_isolated
    from edgert.model import read_model
    from edgert.runtime import quantize
    from edgert.runtime.micro import MICRO_TIMEOUT_S, MicroError, _check_types, _require

    _require()
    data = bytes(data)
    _check_types(data)
    spec = read_model(data).inputs[0]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    samples = np.stack([
        (quantize(s.reshape(spec.shape), spec) if spec.quantized else s.reshape(spec.shape).astype(spec.dtype))
        for s in x
    ])
    try:
        raw = run_isolated("edgert.optimize.micro_eval:_child_predict", data, samples, timeout=MICRO_TIMEOUT_S)
    except IsolationError as e:
        if e.kind == "signal":
            raise InvalidModelError(f"TFLite Micro crashed on this model ({e.detail})") from None
        raise MicroError(e.detail, "check the model's ops and types against TFLite Micro's op resolver") from None
    pred = np.argmax(raw, axis=1)
    return {"samples": int(len(y)), "top1": float(np.mean(pred == y)), "predictions": pred.tolist()}
