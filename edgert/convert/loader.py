"""Load the model to convert: a Keras file, a SavedModel directory or an in-memory Keras model;
``.onnx``, ``.pt2`` and PyTorch modules are handed to :mod:`edgert.convert.onnx_route` /
:mod:`edgert.convert.torch_route`. Everything becomes a :class:`~edgert.convert.source_model.SourceModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgert.convert.source_model import (
    KERAS_SUFFIXES,
    SourceModel,
    from_keras,
    from_saved_model,
    load_keras_model,
    sha256_file,
    sha256_weights,
)
from edgert.errors import ConversionError, InputDataError

__all__ = ["SourceModel", "load_source", "load_keras_model", "KERAS_SUFFIXES"]


def load_source(model: Any, *, example_inputs: Any = None, input_shape: Any = None) -> SourceModel:
    """Wrap ``model`` as a :class:`SourceModel`.

    Args:
        model: A Keras file / SavedModel directory / Keras model, an ``.onnx`` file,
            a ``torch.export`` ``.pt2`` file or a PyTorch ``nn.Module``.
        example_inputs: PyTorch modules: ``(x,)``, one example input.
        input_shape: Input shape with the batch, for PyTorch modules and to fix
            dynamic dimensions of ONNX / ``.pt2`` models (e.g. ``(1, 3, 96, 96)``).

    Raises:
        InputDataError: The path does not exist.
        ConversionError: It is not a model edgert can convert.
    """
    if isinstance(model, SourceModel):
        return model
    if isinstance(model, (str, Path)):
        p = Path(model)
        if not p.exists():
            raise InputDataError(f"{p}: no such file or directory")
        if p.is_dir():
            return from_saved_model(p)
        suffix = p.suffix.lower()
        if suffix == ".onnx":
            from edgert.convert.onnx_route import load_onnx

            return load_onnx(p, input_shape=input_shape)
        if suffix == ".pt2":
            from edgert.convert.torch_route import load_pt2

            return load_pt2(p, input_shape=input_shape)
        if suffix not in KERAS_SUFFIXES:
            hint = "a .tflite file is already converted: use `edgert fit`" if suffix == ".tflite" else None
            raise ConversionError(
                f"{p}: not a Keras (.keras/.h5) file or SavedModel directory",
                hint or "pass a .keras/.h5/.onnx/.pt2 file or a SavedModel directory",
            )
        keras_model = load_keras_model(p)
        return from_keras(keras_model, "h5" if suffix in (".h5", ".hdf5") else "keras", sha256_file(p), str(p))
    from edgert.convert.torch_route import is_torch_module

    if is_torch_module(model):
        from edgert.convert.torch_route import load_torch_module

        return load_torch_module(model, example_inputs=example_inputs, input_shape=input_shape)
    if hasattr(model, "layers") and callable(model):
        return from_keras(model, "memory", sha256_weights(model), None)
    raise ConversionError(
        f"cannot convert a {type(model).__name__}",
        "pass a Keras or PyTorch model, a .keras/.h5/.onnx/.pt2 path or a SavedModel directory",
    )
