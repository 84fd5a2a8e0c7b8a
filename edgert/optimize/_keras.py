"""Shared Keras helpers for the optimize package (TensorFlow/Keras imported lazily, here only).

Everything in :mod:`edgert.optimize` trains with the same few conventions, kept
in one place: how the loss follows the model's output layer, how a model is
compiled for fine-tuning, how it is copied.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["keras", "outputs_probabilities", "compile_for_training", "clone", "evaluate_keras", "parameter_count",
           "epoch_callback", "seed_training"]

log = logging.getLogger("edgert.optimize")


def keras():
    """Import and return Keras 3 (TensorFlow quietened and made deterministic first: see ``import_tf``)."""
    from edgert.convert._tf import import_keras

    # tf.function retracing warnings are expected here: we train many small models in one process.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return import_keras()


def seed_training(model: Any, seed: int) -> None:
    """Seed everything a training run of ``model`` draws from, so the same seed gives the same weights.

    ``keras.utils.set_random_seed`` seeds shuffling and new initialisers, but a
    layer's dropout seed was drawn when the layer was built: a pruned or cloned
    model built after other work would train differently with the same seed.
    Each layer's seed generators are therefore reset from ``seed`` and the layer's position.
    """
    k = keras()
    k.utils.set_random_seed(seed)
    for index, layer in enumerate(model.layers):
        for value in vars(layer).values():
            if isinstance(value, k.random.SeedGenerator):
                value.state.assign(np.array([seed * 1000 + index, 0], dtype=value.state.dtype))


def epoch_callback(progress, epochs: int, label: str) -> Any:
    """A Keras callback that reports each finished epoch and honours a pending Ctrl-C there.

    The end of an epoch is plain Python between training steps: a safe point for
    :func:`edgert.interrupt.checkpoint` (see :mod:`edgert.interrupt`).
    """
    from edgert.interrupt import checkpoint
    from edgert.progress import report

    callback: Any = keras().callbacks.Callback  # Keras is imported here, at run time: no static base class

    class _EpochEnd(callback):
        def on_epoch_end(self, epoch, logs=None):
            report(progress, epoch + 1, epochs, label)
            checkpoint()

    return _EpochEnd()


def outputs_probabilities(model: Any) -> bool:
    """True when the model's last layer ends in a softmax (probabilities), False for logits."""
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    name = getattr(act, "__name__", "") if act is not None else ""
    if last.__class__.__name__ == "Softmax" or name == "softmax":
        return True
    if last.__class__.__name__ == "Activation" and getattr(last.activation, "__name__", "") == "softmax":
        return True
    return False


def compile_for_training(model: Any, learning_rate: float = 1e-3) -> None:
    """Compile ``model`` for (fine-)tuning on integer class labels."""
    k = keras()
    model.compile(
        optimizer=k.optimizers.Adam(learning_rate),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def clone(model: Any) -> Any:
    """A structurally identical model with copied weights (training one never touches the other)."""
    # from_config, not clone_model: clone_model also re-creates the compile state, which fails for a
    # model compiled with a closure loss (a distilled student).
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def evaluate_keras(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a Keras classifier on ``(x, y)``."""
    pred = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(pred.reshape(len(x), -1), axis=1) == y))


def parameter_count(model: Any) -> int:
    """Number of weights (trainable and not) of a Keras model."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))
