"""The float model being converted (:class:`SourceModel`), and how Keras files and SavedModels become one.

A :class:`SourceModel` knows the input shape, makes a ``TFLiteConverter`` with a
static batch of 1, and runs the float model as the accuracy reference. This module
is the leaf the model routes share: :mod:`edgert.convert.loader` dispatches to
:mod:`edgert.convert.onnx_route` and :mod:`edgert.convert.torch_route`, and they
build their results from here, so no route imports the dispatcher back.
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

__all__ = [
    "KERAS_SUFFIXES",
    "SourceModel",
    "from_keras",
    "from_saved_model",
    "load_keras_model",
    "sha256_file",
    "sha256_weights",
]

log = logging.getLogger("edgert.convert")

#: What keras.models.load_model raises on a file that is not a model (garbage
#: zip, truncated HDF5, JSON config of something else, unknown layer class).
_NOT_A_MODEL_ERRORS = (ValueError, OSError, TypeError, KeyError, AttributeError, ImportError, EOFError, zipfile.BadZipFile)

#: Name of the batch-1 wrapper model. Fixed, so tensor names are the same in
#: every conversion of one model (--keep-float and the per-layer comparison match by name).
_WRAPPER_NAME = "edgert"

#: File suffixes Keras can load.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def sha256_file(path: Path) -> str:
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
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def sha256_weights(model: Any) -> str:
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
        route: How it becomes a .tflite: ``"tensorflow"`` (TFLiteConverter on Keras/SavedModel),
            ``"onnx"`` (onnx2tf, then TFLiteConverter) or ``"torch"`` (litert-torch).
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
    route: str = "tensorflow"

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


def from_keras(model: Any, fmt: str, sha: str, path: str | None) -> SourceModel:
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


def from_saved_model(path: Path) -> SourceModel:
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
