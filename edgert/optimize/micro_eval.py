"""Top-1 of an int8 model under the real TensorFlow Lite Micro interpreter.

All samples run in one TFLM instance in one isolated child
(:func:`edgert.runtime.micro.run_micro_many`): hundreds of held-out samples
would cost a process each through :func:`~edgert.runtime.micro.run_micro`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["micro_top1"]


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
    from edgert.model import read_model
    from edgert.runtime import quantize
    from edgert.runtime.micro import run_micro_many

    data = bytes(data)
    spec = read_model(data).inputs[0]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    samples = [
        [quantize(s.reshape(spec.shape), spec) if spec.quantized else s.reshape(spec.shape).astype(spec.dtype)]
        for s in x
    ]
    outputs = run_micro_many(data, samples)
    pred = np.array([int(np.argmax(out[0])) for out in outputs])
    return {"samples": int(len(y)), "top1": float(np.mean(pred == y)), "predictions": pred.tolist()}
