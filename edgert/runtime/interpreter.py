"""The :class:`Model` facade over a backend interpreter.

Everything :meth:`Model.predict` needs per call (tensor indices, dtypes,
shapes, quantization, the interpreter's tensor-view accessors) is computed once
at load time, so a prediction costs the backend's own ``set_tensor`` /
``invoke`` plus a few attribute reads. Quantized outputs are dequantized
straight from the interpreter's output buffer (no intermediate copy).

Tensor views (:meth:`Model.input_view`, :meth:`Model.output_view`) are numpy
arrays over the interpreter's own memory: writing an input view is zero-copy.
A view is only valid until the next :meth:`Model.invoke` or input resize, and
the backend refuses to invoke while one is still referenced, so take a view,
use it, and drop it (``del view``) before invoking.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgert.errors import DelegateError, InputDataError, InterpreterRejectedError, InvalidModelError
from edgert.model.reader import ModelFile, ModelSource, TensorSpec, read_model
from edgert.native_output import native_chatter_to_debug
from edgert.runtime.backend import KERNELS, Backend, select_backend
from edgert.runtime.tensors import dequantize, to_input_dtype

__all__ = ["EDGETPU_LIBRARY", "Model", "load_model"]

log = logging.getLogger("edgert.runtime")

#: Shared library of the Coral Edge TPU delegate (``libedgetpu1-std`` / ``-max`` packages).
EDGETPU_LIBRARY = "libedgetpu.so.1"
_EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


class _Port:
    """Precomputed facts about one input or output tensor (kept off the per-call path)."""

    __slots__ = ("spec", "index", "dtype", "shape", "quantized", "view", "float_of_byte")

    def __init__(self, spec: TensorSpec, shape: Sequence[int], view: Callable[[], np.ndarray]) -> None:
        self.spec = spec
        self.index = spec.index
        self.dtype = np.dtype(spec.dtype)
        self.shape = tuple(int(d) for d in shape)
        self.quantized = spec.quantized
        self.view = view
        # 8-bit quantized tensors: the float of each of the 256 byte values, by dequantize()
        # itself (so the same bits), indexed by the raw byte: one table lookup per read.
        self.float_of_byte: np.ndarray | None = None
        if self.quantized and self.dtype.itemsize == 1:
            self.float_of_byte = dequantize(np.arange(256, dtype=np.uint8).view(self.dtype), spec)


class Model:
    """A loaded model ready to run.

    Attributes:
        file: The validated :class:`~edgert.model.ModelFile`.
        inputs: Input tensor specs (index = the interpreter's tensor index).
        outputs: Output tensor specs.
        metadata: edgert metadata dict, or None.
        backend: The :class:`~edgert.runtime.Backend` in use.
        threads: Interpreter threads requested (None = backend default).
        delegate: The active delegate (``"edgetpu"`` or a library path), None on plain CPU.
        kernels: The kernel set (``"auto"``, ``"builtin"``, ``"reference"``; see
            :data:`~edgert.runtime.backend.KERNELS`).
    """

    def __init__(
        self,
        file: ModelFile,
        backend: Backend,
        interpreter: Any,
        *,
        threads: int | None = None,
        delegate: str | None = None,
        kernels: str = "auto",
    ) -> None:
        self.file = file
        self.backend = backend
        self.threads = threads
        self.delegate = delegate
        self.kernels = kernels
        self._interp = interpreter
        self.inputs: tuple[TensorSpec, ...] = file.inputs
        self.outputs: tuple[TensorSpec, ...] = file.outputs
        self.metadata = file.metadata
        self._in = self._ports(self.inputs, interpreter.get_input_details())
        self._out = self._ports(self.outputs, interpreter.get_output_details())

    def _ports(self, specs: tuple[TensorSpec, ...], details: list[dict]) -> tuple[_Port, ...]:
        by_index = {d["index"]: d for d in details}
        ports = []
        for spec in specs:
            detail = by_index.get(spec.index)
            if detail is None:  # the file and the interpreter disagree: never index blindly
                raise InvalidModelError(f"the interpreter has no tensor {spec.index} ({spec.name!r}) the file declares")
            ports.append(_Port(spec, detail["shape"], self._interp.tensor(spec.index)))
        return tuple(ports)

    def __repr__(self) -> str:
        where = f", delegate={self.delegate!r}" if self.delegate else ""
        return f"Model({self.file.path or 'bytes'!r}, backend={self.backend.name}{where})"

    @property
    def interpreter(self) -> Any:
        """The backend's interpreter (for callers that need the raw API)."""
        return self._interp

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Current input shapes (after any resize)."""
        return [p.shape for p in self._in]

    # ---- inputs -------------------------------------------------------------------------

    def set_input(self, index: int, value: np.ndarray) -> None:
        """Write input ``index``.

        Arrays of the tensor's dtype are copied in as they are; float arrays are
        quantized by the tensor's scale and zero point when the input is quantized;
        other arrays are cast when the cast is safe (e.g. float64 -> float32).

        Raises:
            InputDataError: Wrong shape (both shapes named) or an unsafe dtype.
        """
        port = self._in[index]
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if arr.dtype != port.dtype:
            arr = self._convert(port, arr)
        if arr.shape != port.shape:
            arr = self._fit_shape(port, arr)
        self._interp.set_tensor(port.index, arr)

    def _convert(self, port: _Port, arr: np.ndarray) -> np.ndarray:
        return to_input_dtype(arr, port.spec, "predict")

    def _fit_shape(self, port: _Port, arr: np.ndarray) -> np.ndarray:
        if arr.size == int(np.prod(port.shape, dtype=np.int64)):
            return arr.reshape(port.shape)  # e.g. (49, 10) for (1, 49, 10, 1): same data, no copy
        signature = port.spec.shape_signature
        if (
            signature is not None
            and len(signature) == arr.ndim
            and all(s < 0 or s == d for s, d in zip(signature, arr.shape, strict=True))
        ):
            self.resize_input(self._in.index(port), arr.shape)
            return arr
        raise InputDataError(
            f"input {port.spec.name!r} expects shape {list(port.shape)}, got {list(arr.shape)}",
            "reshape or resize the data to the model's input",
        )

    def resize_input(self, index: int, shape: Sequence[int]) -> None:
        """Resize a dynamic input (a ``-1`` in its shape signature) and reallocate.

        Invalidates every tensor view taken before.
        """
        port = self._in[index]
        try:
            self._interp.resize_tensor_input(port.index, [int(d) for d in shape], strict=True)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InputDataError(f"input {port.spec.name!r} cannot take shape {list(shape)}: {_first_line(e)}") from None
        port.shape = tuple(int(d) for d in shape)
        for out, detail in zip(self._out, self._interp.get_output_details(), strict=True):
            out.shape = tuple(int(d) for d in detail["shape"])

    def input_view(self, index: int) -> np.ndarray:
        """A writable numpy view of input ``index``'s buffer inside the interpreter (zero-copy).

        Fill it in place (``view[...] = x``), then drop it before :meth:`invoke`:
        the view is invalid after ``invoke()`` or a resize, and the backend
        refuses to invoke while it is still referenced.
        """
        return self._in[index].view()

    # ---- run ----------------------------------------------------------------------------

    def invoke(self) -> None:
        """Run the graph once on the inputs already set.

        Raises:
            InvalidModelError: The interpreter failed while running the model.
            RuntimeError: A tensor view is still referenced (a programming error).
        """
        safe_to_run = getattr(self._interp, "_safe_to_run", None)  # both backends' wrappers have it
        if safe_to_run is not None and not safe_to_run():
            # A tensor view is still held: the caller's bug, not the model's. Asked before invoking, so the
            # interpreter's own failures below are never mistaken for it.
            raise RuntimeError("a numpy view of an interpreter tensor is still referenced; drop it before invoke()")
        try:
            self._interp.invoke()
        except (ValueError, RuntimeError) as e:
            raise InvalidModelError(f"the interpreter failed to run the model: {_first_line(e)}") from None

    # ---- outputs ------------------------------------------------------------------------

    def get_output(self, index: int, dequantize_output: bool = True) -> np.ndarray:
        """Read output ``index`` as a new array, dequantized to float32 unless asked not to.

        Raw outputs are the interpreter's bytes exactly (what ``get_tensor`` returns).
        """
        port = self._out[index]
        if dequantize_output and port.quantized:
            # Straight from the interpreter's buffer: the float result is the only copy.
            if port.float_of_byte is not None:
                return port.float_of_byte.take(port.view().view(np.uint8))
            return dequantize(port.view(), port.spec)
        return self._interp.get_tensor(port.index)

    def output_view(self, index: int) -> np.ndarray:
        """A read-only numpy view of output ``index``'s buffer (zero-copy; drop it before :meth:`invoke`)."""
        view = self._out[index].view()
        view.flags.writeable = False
        return view

    def predict(self, *inputs: np.ndarray, dequantize_output: bool = True) -> list[np.ndarray]:
        """Run once: set every input, invoke, return every output.

        Args:
            *inputs: One array per model input; float arrays are quantized for
                quantized inputs, arrays of the tensor's dtype are used as is.
            dequantize_output: Return float32 for quantized outputs (default) or raw integers.

        Returns:
            One new array per output (never a view into the interpreter).

        Raises:
            InputDataError: Wrong number of inputs, shape or dtype.
        """
        if len(inputs) != len(self._in):
            raise InputDataError(f"model takes {len(self._in)} input(s), got {len(inputs)}")
        interp = self._interp
        for i, value in enumerate(inputs):
            port = self._in[i]
            # Fast path inline: the common call passes arrays of the right dtype and shape.
            if type(value) is np.ndarray and value.dtype == port.dtype and value.shape == port.shape:
                interp.set_tensor(port.index, value)
            else:
                self.set_input(i, value)
        self.invoke()
        return [self.get_output(i, dequantize_output) for i in range(len(self._out))]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _silence_partial_delegate_cleanup():
    """Hide the backend's own noise when a delegate library fails to load.

    ``Delegate.__init__`` (ai-edge-litert, tflite-runtime) raises before setting
    ``_library``; its ``__del__`` then prints "Exception ignored ... AttributeError"
    with a traceback on stderr, which must not reach a user who only asked for a
    delegate that is not installed. Only that exact case is filtered.
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        obj = getattr(unraisable, "object", None)
        if isinstance(unraisable.exc_value, AttributeError) and getattr(obj, "__qualname__", "") == "Delegate.__del__":
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
        gc.collect()  # the half-built Delegate may sit in a reference cycle with its traceback
    finally:
        sys.unraisablehook = previous


def _load_delegate(be: Backend, delegate: str, require: bool) -> Any | None:
    library = EDGETPU_LIBRARY if delegate == "edgetpu" else delegate
    with _silence_partial_delegate_cleanup():
        try:
            return be.load_delegate(library)
        except (ValueError, OSError, RuntimeError) as e:
            message = f"could not load the {delegate} delegate ({library}): {_first_line(e)}"
    hint = (
        "install the Edge TPU runtime (libedgetpu1-std) and plug in the accelerator"
        if delegate == "edgetpu"
        else "check the delegate library path"
    )
    if require:
        raise DelegateError(message, hint)
    log.warning("%s; running on the CPU instead (%s)", message, hint)
    return None


def load_model(
    source: ModelSource | ModelFile,
    *,
    backend: str | Backend | None = None,
    threads: int | None = None,
    trusted: bool = False,
    delegate: str | None = None,
    require_delegate: bool = False,
    kernels: str | None = None,
    use_cache: bool = True,
) -> Model:
    """Load a model for inference.

    A file that is not known-good is first opened in a child process
    (:func:`edgert.runtime.safe.check_model`); the verdict is remembered by
    sha256, so the second load of the same file spawns nothing.

    Args:
        source: Path, bytes or :class:`~edgert.model.ModelFile`.
        backend: ``"ai_edge_litert"`` / ``"tflite_runtime"`` (or a Backend); default
            from ``EDGERT_BACKEND`` or auto-detection.
        threads: Interpreter threads (None = backend default).
        trusted: Skip the isolated check (only for models our own converter just wrote).
        delegate: ``"edgetpu"`` (loads ``libedgetpu.so.1``) or a delegate library path.
        require_delegate: Fail with :class:`~edgert.errors.DelegateError` instead of
            falling back to the CPU when the delegate cannot be loaded.
        kernels: ``"auto"`` (default: the backend's kernels with XNNPACK),
            ``"builtin"`` (without XNNPACK: the same results on every backend) or
            ``"reference"`` (TFLite's reference kernels: slow, for checking a
            suspect kernel or timing a device-class CPU).
        use_cache: Consult and update the remembered verdicts of the isolated check
            (False: check again in a child process and remember nothing; ``--no-cache``).

    Raises:
        InvalidModelError: The file is not a valid model or crashes the interpreter.
        BackendError: No usable backend.
        DelegateError: ``require_delegate`` and the delegate is unavailable.
        InputDataError: Missing file or a bad option value.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputDataError(f"threads must be a positive integer, got {threads!r}")
    kernels = kernels or "auto"
    if kernels not in KERNELS:
        raise InputDataError(f"unknown kernels {kernels!r}", f"use one of: {', '.join(KERNELS)}")
    file = read_model(source)
    be = backend if isinstance(backend, Backend) else select_backend(backend)
    if not trusted:
        from edgert.runtime.safe import check_model

        check_model(file, be, use_cache=use_cache)
    delegates = []
    if delegate:
        loaded = _load_delegate(be, delegate, require_delegate)
        if loaded is not None:
            delegates.append(loaded)
    name = file.path or "model"
    try:
        with native_chatter_to_debug():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." and the like
            interp = be.make_interpreter(file.data, num_threads=threads, delegates=delegates, kernels=kernels)
            interp.allocate_tensors()
    except InterpreterRejectedError as e:
        raise _rejected(file, name, e.reason, delegates) from None
    except (ValueError, RuntimeError) as e:
        raise _rejected(file, name, _first_line(e), delegates) from None
    return Model(file, be, interp, threads=threads, delegate=delegate if delegates else None, kernels=kernels)


def _rejected(file: ModelFile, name: str, reason: str, delegates: list) -> InvalidModelError:
    if _EDGETPU_CUSTOM_OP in file.ops and not delegates:
        return InvalidModelError(
            f"{name} is compiled for the Edge TPU and cannot run on the CPU: {reason}",
            "run it with --delegate edgetpu on a machine with the accelerator, or use the uncompiled model",
        )
    return InvalidModelError(f"{name}: the interpreter rejected it: {reason}")
