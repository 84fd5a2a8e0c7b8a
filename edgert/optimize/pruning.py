"""Pruning for Keras 3 models (the TF Model Optimization Toolkit only works with legacy tf_keras).

Two kinds, because they buy different things:

* **Magnitude pruning** (:func:`magnitude_prune`): the smallest weights of each
  kernel are zeroed along a polynomial sparsity schedule while the model
  fine-tunes, then the masks are folded into the weights. The TFLite file keeps
  every zero as a stored weight, so the file does not shrink; the
  gzip-compressed file (what an OTA update or a compressed flash image carries)
  does. Reports say so instead of claiming a smaller model.
* **Structured pruning** (:func:`structured_prune`): whole Conv2D filters and
  Dense units with the smallest L1 norms are removed and a smaller dense model
  is rebuilt (see :mod:`edgert.optimize.surgery`), then fine-tuned. This is what
  makes the int8 file smaller and the model faster.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgert.errors import InputDataError
from edgert.optimize._keras import clone, compile_for_training, epoch_callback, keras, parameter_count, seed_training
from edgert.optimize.foreign import require_keras
from edgert.optimize.surgery import narrow_model, prunable_layers

__all__ = [
    "PolynomialSparsity",
    "magnitude_prune",
    "structured_prune",
    "kernel_sparsity",
    "gzip_size",
    "fine_tune",
    "PruneResult",
]

log = logging.getLogger("edgert.optimize.pruning")

_KERNEL_LAYERS = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D", "Conv1D")


@dataclass(frozen=True)
class PolynomialSparsity:
    """Sparsity that rises from ``initial`` to ``final`` over ``begin_step..end_step`` (cubic, as in Zhu & Gupta 2017).

    Pruning fast at first and slowly at the end lets the network recover from the
    last, most damaging cuts.
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    power: float = 3.0

    def __call__(self, step: int) -> float:
        if step <= self.begin_step:
            return self.initial
        if step >= self.end_step:
            return self.final
        t = (step - self.begin_step) / max(1, self.end_step - self.begin_step)
        return self.final + (self.initial - self.final) * (1.0 - t) ** self.power


@dataclass
class PruneResult:
    """A pruned model and what pruning did.

    Attributes:
        model: The pruned (and fine-tuned) Keras model, masks folded in.
        kind: ``"magnitude"`` or ``"structured"``.
        amount: Target sparsity (magnitude) or fraction of filters removed (structured).
        sparsity: Measured fraction of zero kernel weights.
        parameters: Parameters before → after (``(before, after)``).
    """

    model: Any
    kind: str
    amount: float
    sparsity: float
    parameters: tuple[int, int]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "amount": self.amount, "sparsity": round(self.sparsity, 4),
                "parameters_before": self.parameters[0], "parameters_after": self.parameters[1]}


def _kernels(model: Any) -> list[Any]:
    """Kernel variables that magnitude pruning masks (biases and norms are left alone: tiny and sensitive)."""
    out = []
    for layer in model.layers:
        if layer.__class__.__name__ in _KERNEL_LAYERS:
            for var in layer.weights:
                if "kernel" in var.path.rsplit("/", 1)[-1]:
                    out.append(var)
    return out


def kernel_sparsity(model: Any) -> float:
    """Fraction of exactly-zero weights over the prunable kernels of ``model``."""
    total = zeros = 0
    for var in _kernels(model):
        w = np.asarray(var)
        total += w.size
        zeros += int(np.count_nonzero(w == 0))
    return zeros / total if total else 0.0


def gzip_size(data: bytes) -> int:
    """Size of ``data`` gzip-compressed (what zeros from magnitude pruning actually save)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _check_data(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> None:
    if y is None:
        raise InputDataError("fine-tuning needs labels", "pass labeled data (an .npz with x and y)")
    if len(x) < batch_size:
        raise InputDataError(
            f"only {len(x)} training samples, fewer than one batch of {batch_size}",
            "give more data or a smaller --batch-size",
        )


def fine_tune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    callbacks: list | None = None,
    progress=None,
    label: str = "fine-tune",
    seed: int = 0,
) -> Any:
    """Train ``model`` in place on ``(x, y)`` with Adam and cross-entropy; returns it.

    Raises:
        InputDataError: ``y`` is None (no labels) or ``x`` is shorter than one batch.
    """
    _check_data(x, y, batch_size)
    seed_training(model, seed)
    compile_for_training(model, learning_rate)
    cbs = list(callbacks or []) + [epoch_callback(progress, epochs, label)]
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True, callbacks=cbs)
    return model


def _magnitude_callback(kernels: list, schedule: PolynomialSparsity, frequency: int):
    callback: Any = keras().callbacks.Callback  # Keras is imported here, at run time: no static base class

    class MagnitudeMask(callback):
        """Recompute masks along the schedule and keep masked weights at zero after every step."""

        def __init__(self):
            super().__init__()
            self.step = 0
            self.masks = [np.ones(tuple(v.shape), dtype=bool) for v in kernels]

        def _update_masks(self, sparsity: float) -> None:
            for i, var in enumerate(kernels):
                w = np.abs(np.asarray(var))
                n_zero = int(round(sparsity * w.size))
                mask = np.ones(w.size, dtype=bool)
                if n_zero > 0:
                    # Per layer, so no layer is wiped out because its weights are small overall.
                    mask[np.argpartition(w.reshape(-1), n_zero - 1)[:n_zero]] = False
                self.masks[i] = mask.reshape(w.shape)

        def apply(self) -> None:
            for var, mask in zip(kernels, self.masks, strict=True):
                var.assign(np.where(mask, np.asarray(var), 0.0).astype(var.dtype))

        def on_train_batch_end(self, batch, logs=None):
            if self.step % frequency == 0 or self.step >= schedule.end_step:
                self._update_masks(schedule(self.step))
            self.apply()
            self.step += 1

    return MagnitudeMask()


def magnitude_prune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sparsity: float,
    epochs: int = 4,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    frequency: int = 10,
    progress=None,
    seed: int = 0,
) -> PruneResult:
    """Magnitude-prune a copy of ``model`` to ``sparsity`` while fine-tuning, then strip (masks folded in).

    The schedule ramps sparsity during the first ~70% of the steps and fine-tunes
    at the final sparsity for the rest.

    Args:
        model: Trained Keras model (left untouched).
        x, y: Training data (model-ready inputs, integer labels).
        sparsity: Target fraction of zero kernel weights, in (0, 1).
        epochs: Fine-tuning epochs.
        frequency: Steps between mask updates.

    Raises:
        InputDataError: Bad sparsity, no labels, fewer samples than a batch.
    """
    require_keras(model, "magnitude")
    if not 0.0 < sparsity < 1.0:
        raise InputDataError(f"sparsity {sparsity} is outside (0, 1)", "use e.g. 0.5 for half of the weights")
    _check_data(x, y, batch_size)
    pruned = clone(model)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    schedule = PolynomialSparsity(0.0, sparsity, 0, max(1, int(steps * 0.7)))
    mask = _magnitude_callback(_kernels(pruned), schedule, frequency)
    fine_tune(pruned, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
              callbacks=[mask], progress=progress, label=f"magnitude prune {sparsity:.0%}", seed=seed)
    # Strip: the final mask is already in the weights; make sure the last step's update is masked.
    mask._update_masks(sparsity)
    mask.apply()
    n = parameter_count(model)
    return PruneResult(pruned, "magnitude", sparsity, kernel_sparsity(pruned), (n, n))


def _l1_keep(fraction: float):
    def choose(layer: Any, kernel: np.ndarray | None) -> np.ndarray:
        assert kernel is not None, "structured_prune narrows with copy_weights=True: every prunable layer's kernel is passed"
        n = kernel.shape[-1]
        keep = max(1, int(round(n * (1.0 - fraction))))
        norms = np.abs(kernel.reshape(-1, n)).sum(axis=0)
        # Largest L1 norms survive; a stable sort makes ties deterministic.
        return np.sort(np.argsort(-norms, kind="stable")[:keep])

    return choose


def structured_prune(
    model: Any,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    fraction: float,
    epochs: int = 4,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    progress=None,
    seed: int = 0,
) -> PruneResult:
    """Remove ``fraction`` of the filters/units of every prunable layer (lowest L1 norm), rebuild, fine-tune.

    Args:
        model: Trained Keras model that is a chain of layers (left untouched).
        x, y: Fine-tuning data; with ``epochs=0`` (or no data) the narrowed model is returned
            untrained, which is how optimize predicts a candidate's size before training it.
        fraction: Fraction of filters/units removed per layer, in (0, 1).

    Raises:
        InputDataError: Bad fraction or data.
        ConversionError: The model branches or has a layer surgery cannot follow.
    """
    require_keras(model, "structured")
    if not 0.0 < fraction < 1.0:
        raise InputDataError(f"filter fraction {fraction} is outside (0, 1)", "use e.g. 0.5 to remove half of the filters")
    if not prunable_layers(model):
        raise InputDataError(f"model {model.name} has no Conv2D/Dense layer that can lose filters")
    pruned = narrow_model(model, _l1_keep(fraction), copy_weights=True, name_suffix=f"pruned{int(fraction * 100)}")
    if epochs > 0 and x is not None:
        fine_tune(pruned, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  progress=progress, label=f"structured prune {fraction:.0%}", seed=seed)
    return PruneResult(pruned, "structured", fraction, kernel_sparsity(pruned), (parameter_count(model), parameter_count(pruned)))
