"""Load the model to convert: a Keras file, a SavedModel directory or an in-memory Keras model;
``.onnx``, ``.pt2`` and PyTorch modules are handed to :mod:`edgert.convert.onnx_route` /
:mod:`edgert.convert.torch_route`.

Everything is wrapped in a :class:`SourceModel`, which knows the input shape,
makes a ``TFLiteConverter`` with a static batch of 1, and runs the float model
as the accuracy reference.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgert.convert._tf import import_keras, import_tf, stdout_to_stderr
from edgert.errors import ConversionError, InputDataError

__all__ = ["SourceModel", "load_source", "load_keras_model", "KERAS_SUFFIXES"]

log = logging.getLogger("edgert.convert")

#: What keras.models.load_model raises on a file that is not a model (garbage
#: zip, truncated HDF5, JSON config of something else, unknown layer class).
_NOT_A_MODEL_ERRORS = (ValueError, OSError, TypeError, KeyError, AttributeError, ImportError, EOFError, zipfile.BadZipFile)

#: Name of the batch-1 wrapper model. Fixed, so tensor names are the same in
#: every conversion of one model (--keep-float and the per-layer comparison match by name).
_WRAPPER_NAME = "edgert"

#: File suffixes Keras can load.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_dir(path: Path) -> str:
    # Relative names are hashed too, so a renamed variables shard changes the digest.
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0")
        h.update(_sha256_file(p).encode())
    return h.hexdigest()


def _sha256_weights(model: Any) -> str:
    h = hashlib.sha256()
    for w in model.weights:
        h.update(w.path.encode() if hasattr(w, "path") else b"")
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    return h.hexdigest()


@dataclass
class SourceModel:
    """The float model being converted.

    Attributes:
        format: ``"keras"``, ``"h5"``, ``"saved_model"`` or ``"memory"``.
        sha256: Digest of the source file/directory (weights for in-memory models).
        path: Where it came from (None for in-memory models).
        input_shape: Input shape without the batch dimension.
        input_dtype: Input dtype name.
        keras_model: The Keras model (None for plain SavedModels).
        layer_names: Names of the model's layers (for ``--keep-float``).
    """

    format: str
    sha256: str
    path: str | None
    input_shape: tuple[int, ...]
    input_dtype: str
    keras_model: Any = None
    layer_names: list[str] = field(default_factory=list)
    _saved: Any = None
    _signature: Any = None
    _input_name: str | None = None

    def make_converter(self):
        """A ``tf.lite.TFLiteConverter`` for this model with a static batch of 1."""
        tf = import_tf()
        shape = [1, *self.input_shape]
        if self.keras_model is not None:
            keras = import_keras()
            # A batch-1 functional wrapper: from_keras_model then exports fixed shapes,
            # which device interpreters and the Edge TPU compiler require.
            inp = keras.Input(batch_shape=tuple(shape), dtype=self.input_dtype)
            fixed = keras.Model(inp, self.keras_model(inp), name=_WRAPPER_NAME)
            with stdout_to_stderr(capture=True):
                return tf.lite.TFLiteConverter.from_keras_model(fixed)
        sig, name = self._signature, self._input_name
        spec = tf.TensorSpec(shape, tf.as_dtype(self.input_dtype))

        @tf.function(input_signature=[spec])
        def fixed_fn(x):
            out = sig(**{name: x})
            return [out[k] for k in sorted(out)]

        return tf.lite.TFLiteConverter.from_concrete_functions([fixed_fn.get_concrete_function()], self._saved)

    def predict(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Run the float model on ``x`` (N, *input_shape); returns the first output, float32."""
        outs = []
        for i in range(0, len(x), batch_size):
            chunk = np.asarray(x[i : i + batch_size], dtype=self.input_dtype)
            if self.keras_model is not None:
                y = self.keras_model(chunk, training=False)
            else:
                assert self._input_name is not None  # loaded with its signature and that signature's input name
                res = self._signature(**{self._input_name: chunk})
                y = res[sorted(res)[0]]
            if isinstance(y, (list, tuple)):
                y = y[0]
            elif isinstance(y, dict):
                y = y[sorted(y)[0]]
            outs.append(np.asarray(y, dtype=np.float32))
        return np.concatenate(outs, axis=0)


def _static_shape(shape, where: str) -> tuple[int, ...]:
    dims = list(shape)[1:]
    if any(d is None or int(d) < 0 for d in dims):
        raise ConversionError(
            f"{where}: input shape {list(shape)} has dynamic dimensions besides the batch",
            "devices need static shapes: rebuild the model with a fixed input size (keras.Input(shape=...))",
        )
    return tuple(int(d) for d in dims)


def _from_keras(model: Any, fmt: str, sha: str, path: str | None) -> SourceModel:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ConversionError(
            f"{path or 'model'}: the Keras model has no defined inputs",
            "build it with keras.Input(...) or call it once on data before converting",
        )
    if len(inputs) != 1:
        raise ConversionError(f"{path or 'model'}: {len(inputs)} inputs; only single-input models are supported")
    shape = _static_shape(inputs[0].shape, path or "model")
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    return SourceModel(
        format=fmt,
        sha256=sha,
        path=path,
        input_shape=shape,
        input_dtype=dtype if dtype.startswith(("float", "int", "uint")) else "float32",
        keras_model=model,
        layer_names=[layer.name for layer in model.layers],
    )


def load_keras_model(path: str | Path):
    """Load a ``.keras``/``.h5`` file as a Keras model (``safe_mode``: no arbitrary code from the file).

    Raises:
        InputDataError: The file does not exist.
        ConversionError: The file is not a Keras model.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"{p}: no such file")
    keras = import_keras()
    try:
        with stdout_to_stderr(capture=True):
            return keras.models.load_model(p, compile=False, safe_mode=True)
    except _NOT_A_MODEL_ERRORS as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "safe_mode" in str(e):
            raise ConversionError(
                f"{p}: the model holds Python code (a Lambda layer) that edgert will not run from a file",
                "replace the Lambda with a registered custom layer, or pass the in-memory model to edgert.convert.convert()",
            ) from None
        raise ConversionError(
            f"{p}: not a Keras model ({first[:160]})",
            "pass a .keras/.h5 file saved with model.save(), or a SavedModel directory",
        ) from None


def _from_saved_model(path: Path) -> SourceModel:
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise ConversionError(
            f"{path}: directory has no saved_model.pb", "pass a SavedModel directory or a .keras/.h5 file"
        )
    tf = import_tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except (ValueError, OSError, RuntimeError, tf.errors.OpError) as e:
        raise ConversionError(f"{path}: cannot load the SavedModel ({str(e).splitlines()[0][:160]})") from None
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise ConversionError(
            f"{path}: SavedModel has no serving_default signature",
            "export it with model.export(dir) or tf.saved_model.save(obj, dir, signatures=...)",
        )
    sig = sigs["serving_default"]
    specs = sig.structured_input_signature[1]
    if len(specs) != 1:
        raise ConversionError(f"{path}: {len(specs)} inputs; only single-input models are supported")
    name, spec = next(iter(specs.items()))
    return SourceModel(
        format="saved_model",
        sha256=_sha256_dir(path),
        path=str(path),
        input_shape=_static_shape(spec.shape.as_list(), str(path)),
        input_dtype=spec.dtype.name,
        _saved=loaded,
        _signature=sig,
        _input_name=name,
    )


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
            return _from_saved_model(p)
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
        return _from_keras(keras_model, "h5" if suffix in (".h5", ".hdf5") else "keras", _sha256_file(p), str(p))
    from edgert.convert.torch_route import is_torch_module

    if is_torch_module(model):
        from edgert.convert.torch_route import load_torch_module

        return load_torch_module(model, example_inputs=example_inputs, input_shape=input_shape)
    if hasattr(model, "layers") and callable(model):
        return _from_keras(model, "memory", _sha256_weights(model), None)
    raise ConversionError(
        f"cannot convert a {type(model).__name__}",
        "pass a Keras or PyTorch model, a .keras/.h5/.onnx/.pt2 path or a SavedModel directory",
    )
