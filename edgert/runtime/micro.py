"""TensorFlow Lite Micro on the host: the real arena size and real MCU-kernel outputs.

``tflite_micro`` (the ``tflite-micro`` wheel, in the ``convert`` extra) is the
same interpreter and reference kernels firmware links, built for the host. It is
native code, so every call here runs in a child process through
:func:`edgert.isolate.run_isolated`: a model that crashes TFLM becomes a typed
error, never a dead caller. The package is imported lazily, in the child only.

Used by ``edgert fit`` (real arena next to our own plan), by the converter and
optimizer (does the int8 model run under TFLM, and what does it output) and by
the device simulator.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence

import numpy as np

from edgert.errors import BackendError, InputDataError, InvalidModelError

__all__ = ["MicroError", "micro_available", "micro_arena_bytes", "run_micro", "run_micro_many", "MICRO_TIMEOUT_S"]

log = logging.getLogger("edgert.runtime.micro")

#: Seconds one isolated TFLM call may take (VWW-size models run in well under a second).
MICRO_TIMEOUT_S = 120.0
#: Arena handed to TFLM when measuring: large enough for any model that could fit an MCU;
#: the reported figure is what TFLM actually used, not this.
_MEASURE_ARENA_BYTES = 64 * 2**20
#: Margin over edgert's arena plan when the caller gives no arena size (the plan is within ~1% of TFLM's).
_ARENA_MARGIN_BYTES = 4096
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")


class MicroError(BackendError):
    """TFLite Micro cannot run this model (unsupported op or type, allocation failure).

    Attributes:
        refused_ops: Op names TFLite Micro said it has no kernel for (empty when it named none).
    """

    def __init__(self, message: str, hint: str | None = None, refused_ops: Sequence[str] = ()) -> None:
        super().__init__(message, hint)
        self.refused_ops = tuple(refused_ops)


#: How TFLite Micro names an op it cannot resolve ("Didn't find op for builtin opcode 'X'",
#: "Failed to get registration from op code X", "Node X (number N) failed to prepare").
#: Its log is the only place the name exists, so it is read once, here, into MicroError.refused_ops.
_REFUSED_OP_RE = re.compile(r"(?:opcode|op for builtin opcode|Node) '?([A-Z][A-Z0-9_]+)'?")


def _refused_ops(detail: str) -> tuple[str, ...]:
    """Op names TFLite Micro's failure text names (``CUSTOM`` is not a name)."""
    return tuple(dict.fromkeys(n for n in _REFUSED_OP_RE.findall(detail) if n != "CUSTOM"))


def micro_available() -> bool:
    """True when the ``tflite_micro`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("tflite_micro") is not None


def _require() -> None:
    if not micro_available():
        raise BackendError(
            "TensorFlow Lite Micro (the tflite_micro package) is not installed",
            "pip install 'edgert[convert]'",
        )


def _check_types(data: bytes) -> None:
    """TFLM has no uint8 kernels: say so instead of letting it fail deep inside."""
    from edgert.model import read_model

    model = read_model(data)
    uint8 = [t.name for t in model.tensors(0) if t.dtype == "uint8" and not t.is_constant]
    if uint8:
        raise MicroError(
            f"TFLite Micro does not support uint8 tensors ({len(uint8)} in this model, e.g. {uint8[0]!r})",
            "convert for an MCU target (int8 weights and int8 input/output)",
        )


# ---- child-side functions (run inside run_isolated) ---------------------------------------
class _StderrCapture:
    """Capture what native code writes to file descriptor 2."""

    def __enter__(self):
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def _tflm_problem(text: str) -> str:
    """The informative lines TFLM printed before failing, joined on one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("[RecordingMicroAllocator]")]
    wanted = [ln for ln in lines if re.search(r"(?i)didn't find op|not supported|unsupported|failed|type|error", ln)]
    return "; ".join(dict.fromkeys(wanted or lines))[:400]


def _interpreter(data: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    cap = _StderrCapture()
    try:
        with cap:
            interp = runtime.Interpreter.from_bytes(bytes(data), arena_size=int(arena_size))
    except RuntimeError as e:
        detail = _tflm_problem(cap.text) or str(e)
        raise RuntimeError(f"TFLM cannot load the model: {detail}") from None
    return interp


def _child_arena_bytes(data: bytes) -> int:
    interp = _interpreter(data, max(_MEASURE_ARENA_BYTES, 4 * len(data)))
    cap = _StderrCapture()
    with cap:
        interp.print_allocations()
    m = _ARENA_RE.search(cap.text)
    if not m:
        raise RuntimeError("TFLM printed no arena total")
    return int(m.group(1))


def _child_run(data: bytes, samples: list, arena_size: int, n_outputs: int) -> list:
    interp = _interpreter(data, arena_size)
    results = []
    for inputs in samples:
        for i, arr in enumerate(inputs):
            interp.set_input(arr, i)
        cap = _StderrCapture()
        try:
            with cap:
                interp.invoke()
        except RuntimeError as e:
            raise RuntimeError(f"TFLM invoke failed: {_tflm_problem(cap.text) or e}") from None
        results.append([np.array(interp.get_output(i)) for i in range(n_outputs)])
    return results


# ---- public API ------------------------------------------------------------------------
def _call(fn: str, *args, arena_size: int | None = None):
    from edgert.isolate import IsolationError, run_isolated

    try:
        return run_isolated(f"edgert.runtime.micro:{fn}", *args, timeout=MICRO_TIMEOUT_S)
    except IsolationError as e:
        if e.kind == "signal" and arena_size is not None:
            # TFLM does not always fail cleanly when the arena is too small: it can crash.
            raise MicroError(
                f"TFLite Micro crashed ({e.detail}) with a {arena_size:,}-byte arena",
                "give a larger arena_size (micro_arena_bytes() measures what the model needs)",
            ) from None
        if e.kind == "signal":
            raise InvalidModelError(
                f"TFLite Micro crashed on this model ({e.detail})", "the file is corrupt or uses an op TFLM mishandles"
            ) from None
        detail = e.detail.split(": ", 1)[1] if e.detail.startswith("RuntimeError: ") else e.detail
        if re.search(r"(?i)failed to allocate|arena", detail):
            raise MicroError(
                f"the tensor arena is too small: {detail}",
                "give a larger arena_size (micro_arena_bytes() measures what the model needs)",
                refused_ops=_refused_ops(detail),
            ) from None
        raise MicroError(detail, "check the model's ops and types against TFLite Micro's op resolver",
                         refused_ops=_refused_ops(detail)) from None


def micro_arena_bytes(data: bytes) -> int:
    """The tensor arena TFLite Micro really allocates for ``data`` (head + tail).

    Loads the model in TFLM's recording interpreter in a child process and reads
    the ``Arena allocation total`` line that ``print_allocations()`` prints.

    Args:
        data: The .tflite flatbuffer.

    Returns:
        Arena bytes as measured on this host build (8-byte pointers).

    Raises:
        BackendError: tflite_micro is not installed.
        MicroError: TFLM cannot load the model (uint8, unsupported op, allocation failure).
        InvalidModelError: TFLM crashed on the file.
    """
    _require()
    data = bytes(data)
    _check_types(data)
    return int(_call("_child_arena_bytes", data))


def _prepare(model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check one inference's inputs against the model and reshape them to the input shapes."""
    if len(inputs) != len(model.inputs):
        raise InputDataError(f"model takes {len(model.inputs)} input(s), got {len(inputs)}")
    prepared = []
    for spec, arr in zip(model.inputs, inputs, strict=True):
        arr = np.asarray(arr)
        if arr.dtype != np.dtype(spec.dtype):
            raise InputDataError(
                f"input {spec.name!r} is {spec.dtype}, got {arr.dtype}", "quantize the data to the input's dtype first"
            )
        if arr.size != spec.num_elements:
            raise InputDataError(f"input {spec.name!r} has shape {list(spec.shape)}, got {list(arr.shape)}")
        prepared.append(np.ascontiguousarray(arr.reshape(spec.shape)))
    return prepared


def run_micro_many(
    data: bytes, samples: Sequence[Sequence[np.ndarray]], arena_size: int | None = None
) -> list[list[np.ndarray]]:
    """Run several inferences in one TFLite Micro interpreter (one child process).

    Loading TFLM once and invoking it per sample is what evaluation loops need,
    and it is the only way to run stateful (streaming) models, whose variable
    tensors carry over from one invoke to the next.

    Args:
        data: The .tflite flatbuffer (int8 or float; TFLM rejects uint8).
        samples: One entry per inference; each is the list of input arrays
            (already in each input's dtype; quantize floats first).
        arena_size: Arena bytes to give TFLM; default is edgert's arena plan plus a
            margin. A too-small value reproduces the firmware's failure as a MicroError.

    Returns:
        Per inference, the output tensors in model order (raw, of their own dtype).

    Raises:
        InputDataError: wrong number, dtype or shape of inputs.
        MicroError: TFLM cannot load or run the model (or the arena is too small).
    """
    from edgert.model import read_model

    _require()
    data = bytes(data)
    model = read_model(data)
    _check_types(data)
    prepared = [_prepare(model, inputs) for inputs in samples]
    explicit = arena_size is not None
    if arena_size is None:
        from edgert.model.memory import plan_arena

        arena_size = plan_arena(model).total_bytes + _ARENA_MARGIN_BYTES
    outputs = _call("_child_run", data, prepared, int(arena_size), len(model.outputs),
                    arena_size=int(arena_size) if explicit else None)
    return [list(o) for o in outputs]


def run_micro(data: bytes, inputs: Sequence[np.ndarray], arena_size: int | None = None) -> list[np.ndarray]:
    """Run one inference with TFLite Micro and return the raw (still quantized) outputs.

    Args:
        data: The .tflite flatbuffer (int8 or float; TFLM rejects uint8).
        inputs: One array per model input, already in the input's dtype and shape
            (quantize floats first, e.g. with :func:`edgert.runtime.quantize`).
        arena_size: Arena bytes to give TFLM; default is edgert's arena plan plus a
            margin, so a too-small value reproduces the firmware's failure.

    Returns:
        The output tensors, in model order, as numpy arrays of their own dtype.

    Raises:
        InputDataError: wrong number, dtype or shape of inputs.
        MicroError: TFLM cannot load or run the model.
    """
    return run_micro_many(data, [inputs], arena_size)[0]
