"""Quantization-aware fine-tuning for Keras 3 models (tfmot's QAT needs legacy tf_keras).

During each training step the kernels hold their int8-rounded values (symmetric,
per output channel for convolutions, per tensor for Dense — what the TFLite int8
converter produces), so the loss and gradients see the quantization error. The
update is applied to full-precision shadow weights (straight-through
estimator). After fine-tuning the float weights sit where rounding hurts least,
and the normal post-training int8 conversion (with calibration for the
activations) is applied to the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgert.optimize._keras import clone, keras
from edgert.optimize.foreign import require_keras
from edgert.optimize.pruning import fine_tune

__all__ = ["fake_quantize", "quantization_aware_fine_tune"]

_QUANTIZED = {"Conv2D": (0, 1, 2), "DepthwiseConv2D": (0, 1), "Dense": None, "Conv1D": (0, 1)}


def fake_quantize(w: np.ndarray, axes: tuple | None, bits: int = 8) -> np.ndarray:
    """Round ``w`` to symmetric ``bits``-bit levels (scale per channel over ``axes``, per tensor when None) and back."""
    qmax = 2 ** (bits - 1) - 1
    absmax = np.max(np.abs(w)) if axes is None else np.max(np.abs(w), axis=axes, keepdims=True)
    scale = np.where(absmax > 0, absmax / qmax, 1.0)
    return (np.clip(np.round(w / scale), -qmax, qmax) * scale).astype(w.dtype)


def _qat_callback(model: Any, bits: int):
    k = keras()
    targets = []
    for layer in model.layers:
        axes = _QUANTIZED.get(layer.__class__.__name__, "skip")
        if axes == "skip":
            continue
        for var in layer.weights:
            if "kernel" in var.path.rsplit("/", 1)[-1]:
                targets.append((var, axes))

    callback: Any = k.callbacks.Callback  # Keras is imported here, at run time: no static base class

    class WeightFakeQuant(callback):
        """Swap in quantized kernels for the step, then carry the step's update over to the float shadows."""

        def __init__(self) -> None:
            super().__init__()
            self.shadow: list[np.ndarray] = []
            self.rounded: list[np.ndarray] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.shadow = [np.asarray(v).copy() for v, _ in targets]
            self.rounded = [fake_quantize(w, axes, bits) for w, (_, axes) in zip(self.shadow, targets, strict=True)]
            for (var, _), q in zip(targets, self.rounded, strict=True):
                var.assign(q)

        def on_train_batch_end(self, batch, logs=None):
            for (var, _), w, q in zip(targets, self.shadow, self.rounded, strict=True):
                var.assign(w + (np.asarray(var) - q))

    return WeightFakeQuant()


def quantization_aware_fine_tune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 2e-4,
    bits: int = 8,
    progress=None,
    seed: int = 0,
) -> Any:
    """Fine-tune a copy of ``model`` with fake-quantized kernels; returns the copy (float weights, ready for int8 conversion).

    Raises:
        InputDataError: No labels or fewer samples than a batch.
    """
    require_keras(model, "qat")
    tuned = clone(model)
    fine_tune(tuned, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
              callbacks=[_qat_callback(tuned, bits)], progress=progress, label="quantization-aware fine-tune", seed=seed)
    return tuned
