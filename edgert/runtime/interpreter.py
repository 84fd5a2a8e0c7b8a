"""The :class:`Model` facade over a backend interpreter."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgert.errors import InputDataError, InvalidModelError
from edgert.model.reader import ModelFile, ModelSource, TensorSpec, read_model
from edgert.runtime.backend import Backend, select_backend
from edgert.runtime.io import dequantize, quantize

__all__ = ["Model", "load_model"]


class Model:
    """A loaded model ready to run.

    Attributes:
        file: The validated :class:`~edgert.model.ModelFile`.
        inputs: Input tensor specs (index = the interpreter's tensor index).
        outputs: Output tensor specs.
        metadata: edgert metadata dict, or None.
        backend: The :class:`~edgert.runtime.Backend` in use.
    """

    def __init__(self, file: ModelFile, backend: Backend, interpreter: Any) -> None:
        self.file = file
        self.backend = backend
        self._interp = interpreter
        self.inputs: tuple[TensorSpec, ...] = file.inputs
        self.outputs: tuple[TensorSpec, ...] = file.outputs
        self.metadata = file.metadata

    @property
    def interpreter(self) -> Any:
        """The backend's interpreter (for callers that need the raw API)."""
        return self._interp

    def set_input(self, index: int, value: np.ndarray) -> None:
        """Write input ``index``; float values are quantized for quantized inputs."""
        spec = self.inputs[index]
        arr = np.asarray(value)
        if spec.quantized and arr.dtype.kind == "f":
            arr = quantize(arr, spec)
        elif arr.dtype != np.dtype(spec.dtype):
            arr = arr.astype(spec.dtype)
        if arr.shape != spec.shape:
            if arr.size != spec.num_elements:
                raise InputDataError(
                    f"input {spec.name!r} expects shape {list(spec.shape)}, got {list(arr.shape)}"
                )
            arr = arr.reshape(spec.shape)
        self._interp.set_tensor(spec.index, arr)

    def invoke(self) -> None:
        """Run the graph once on the inputs already set."""
        self._interp.invoke()

    def get_output(self, index: int, dequantize_output: bool = True) -> np.ndarray:
        """Read output ``index`` (a copy), dequantized to float32 unless asked not to."""
        spec = self.outputs[index]
        raw = self._interp.get_tensor(spec.index)
        return dequantize(raw, spec) if (dequantize_output and spec.quantized) else raw

    def predict(self, *inputs: np.ndarray, dequantize_output: bool = True) -> list[np.ndarray]:
        """Run once: set every input, invoke, return every output.

        Args:
            *inputs: One array per model input; float arrays are quantized for
                quantized inputs, arrays of the tensor's dtype are used as is.
            dequantize_output: Return float32 for quantized outputs (default) or raw integers.
        """
        if len(inputs) != len(self.inputs):
            raise InputDataError(f"model takes {len(self.inputs)} input(s), got {len(inputs)}")
        for i, value in enumerate(inputs):
            self.set_input(i, value)
        self.invoke()
        return [self.get_output(i, dequantize_output) for i in range(len(self.outputs))]


def load_model(
    source: ModelSource | ModelFile,
    *,
    backend: str | None = None,
    threads: int | None = None,
    trusted: bool = False,
) -> Model:
    """Load a model for inference.

    Args:
        source: Path, bytes or :class:`~edgert.model.ModelFile`.
        backend: ``"ai_edge_litert"`` / ``"tflite_runtime"``; default from ``EDGERT_BACKEND`` or auto.
        threads: Interpreter threads (None = backend default).
        trusted: Skip the isolated check (only for models our own converter just wrote).

    Raises:
        InvalidModelError: The file is not a valid model or crashes the interpreter.
        BackendError: No usable backend.
    """
    file = read_model(source)
    be = select_backend(backend)
    try:
        interp = be.make_interpreter(file.data, num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise InvalidModelError(f"{file.path or 'model'}: the interpreter rejected it: {str(e).splitlines()[0]}") from None
    return Model(file, be, interp)
