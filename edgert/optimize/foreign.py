"""ONNX and PyTorch models in ``optimize``: the per-target formats, post-training quantized.

Pruning, distillation and quantization-aware fine-tuning rebuild and retrain the
model with Keras; an ONNX graph or a PyTorch module cannot go through them. The
search therefore measures every format the target runs (and the route can
produce: litert-torch writes int8 or float32 only) for the model as it is, and
lists each Keras-only technique of the search space as a *skipped* candidate
whose reason names the technique and why. Asking for one of them explicitly
(``--sparsity``, ``--filters``, ``--students`` on the command line, or calling
:func:`~edgert.optimize.pruning.magnitude_prune` and friends on such a model) is
refused with a :class:`~edgert.errors.ConversionError` (exit 2).

Accuracy is measured against the **original** float model (torch or
onnxruntime), and the winner goes through :func:`edgert.convert.convert`, whose
report compares it with that original too (top-1, agreement, verification).
The search itself is :class:`edgert.optimize.search.ForeignSearch`; this module
is the leaf the Keras techniques import to refuse such models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import ConversionError, InputDataError
from edgert.optimize.data import Dataset, check_classifier_data, load_dataset

__all__ = ["KERAS_ONLY", "TORCH_MODES", "foreign_route", "keras_only_reason", "require_keras", "refuse_requested",
           "load_foreign"]

#: Techniques that need a Keras model, by variant kind: (name, command-line flag, why).
KERAS_ONLY: dict[str, tuple[str, str | None, str]] = {
    "student": ("distillation", "--students", "it trains a narrower Keras copy of the model"),
    "structured": ("structured pruning", "--filters", "it rebuilds the Keras layers without the pruned filters"),
    "magnitude": ("magnitude pruning", "--sparsity", "it fine-tunes the weights with Keras"),
    "qat": ("quantization-aware fine-tuning", None, "it fine-tunes the weights with Keras"),
}
#: What litert-torch writes for a PyTorch model (the other formats need TFLiteConverter).
TORCH_MODES = ("int8",)
_ROUTE_TEXT = {"torch": "a PyTorch model", "onnx": "an ONNX model"}


def foreign_route(model: Any) -> str | None:
    """``"torch"`` or ``"onnx"`` for a model that is not Keras (checked without loading it), else None."""
    if isinstance(model, (str, Path)):
        suffix = Path(model).suffix.lower()
        return {".onnx": "onnx", ".pt2": "torch"}.get(suffix)
    route = getattr(model, "route", None)
    if route in _ROUTE_TEXT:
        return str(route)
    from edgert.convert.torch_route import is_torch_module

    return "torch" if is_torch_module(model) else None


def keras_only_reason(kind: str, route: str) -> str:
    """One line: the technique, that it needs Keras, why, and what ONNX/PyTorch models get instead."""
    name, _, why = KERAS_ONLY[kind]
    return (f"{name} needs a Keras model and this is {_ROUTE_TEXT[route]}: {why}; "
            "ONNX and PyTorch models are optimized by post-training quantization only")


def require_keras(model: Any, kind: str) -> None:
    """Refuse a Keras-only technique (``kind``: a key of :data:`KERAS_ONLY`) for an ONNX/PyTorch model.

    Raises:
        ConversionError: ``model`` is an ONNX file, a ``.pt2`` file or a PyTorch module.
    """
    route = foreign_route(model)
    if route is not None:
        raise ConversionError(keras_only_reason(kind, route),
                              "run `edgert optimize` on it for the post-training formats, or use the Keras original")


def refuse_requested(route: str, requested: dict[str, list[float] | None]) -> None:
    """Refuse command-line flags that ask for Keras-only techniques (``requested``: kind -> the flag's values).

    Raises:
        ConversionError: A flag with values (``none`` / an empty list is allowed: it turns the technique off).
    """
    for kind, values in requested.items():
        if values:
            _, flag, _ = KERAS_ONLY[kind]
            raise ConversionError(f"{flag}: {keras_only_reason(kind, route)}", f"drop {flag} for this model")


def load_foreign(model: Any, data: Dataset | str | Path | tuple, *, example_inputs: Any = None,
                 input_shape: Any = None) -> tuple[Any, Dataset]:
    """The ONNX/PyTorch model as a :class:`~edgert.convert.source_model.SourceModel`, and its labeled data.

    Data in the model's own layout (NCHW images, NCL windows) is moved to the converted model's
    channels-last layout, as ``edgert convert`` does.

    Raises:
        InputDataError: Unlabeled data, a model that is not a classifier, labels beyond its outputs.
        ConversionError: The model cannot be loaded.
    """
    from edgert.convert.layout import adapt_data
    from edgert.convert.loader import load_source

    source = load_source(model, example_inputs=example_inputs, input_shape=input_shape)
    shape = (None, *source.input_shape)
    given: Any = adapt_data((data.x, data.y) if isinstance(data, Dataset) else data, source, labeled=True)
    if isinstance(given, tuple):
        y = None if given[1] is None else np.asarray(given[1], np.int64)
        dataset = Dataset(np.asarray(given[0], np.float32), y, data.labels if isinstance(data, Dataset) else [])
        if dataset.x.shape[1:] != tuple(source.input_shape):
            own = tuple(getattr(source, "source_input_shape", None) or source.input_shape)
            raise InputDataError(f"samples are shaped {list(dataset.x.shape[1:])} but the model takes {list(own)}",
                                 "store x already preprocessed for the model (same size, channels and scaling)")
    else:
        dataset = load_dataset(given, shape)
    check_classifier_data(dataset, int(np.prod(source.predict(dataset.x[:1]).shape[1:])))
    if len(dataset) < 2:
        raise InputDataError(f"only {len(dataset)} sample(s)", "give labeled data to calibrate on and to hold out")
    return source, dataset
