"""Structural validation of .tflite flatbuffers: one entry point, one error type.

:func:`validate_model_bytes` (in the spirit of ``onnx.checker.check_model``) runs
two passes and raises :class:`~edgert.errors.InvalidModelError` with one line
naming the first problem:

1. **Structure** (flatbuffers level), driven by the maintained ``tflite`` schema
   package: every table reachable from the root is checked the way the C++
   ``flatbuffers::Verifier`` does (vtable and object inside the file, every
   field inside its object, every offset target inside the file, every vector's
   ``length x element size`` and every string inside the file *before* anything
   iterates it). Field slots, scalar widths and nested table classes are not
   written here by hand: they are recorded by calling the generated accessors
   on a probe (see :func:`schema_fields`), so the checker follows the schema the
   reader uses. Offsets in a flatbuffer only point forward, so the walk cannot
   cycle; a byte budget (everything referenced, counted every time it is
   referenced, must fit in about twice the file) bounds the work a crafted file
   with shared or overlapping tables can cause.
2. **Semantics** (TFLite level), through the now-safe accessors: subgraph,
   tensor, operator, opcode, buffer and metadata indices in range (tensor -1
   only as an optional operator input), shapes non-negative with bounded rank
   and element count, constant buffers at least shape x dtype (int4/uint4 packed two per
   byte, int2 four; buffers in the >2 GB extension area must lie inside the file),
   quantization parameters consistent with the shape, control-flow subgraph
   indices in range, signature defs in range, and :data:`MAX_MODEL_BYTES`.

The validator refuses what is corrupt, truncated or crafted, not what one runtime
dislikes: a sound file that LiteRT or TFLite Micro runs passes. Leftovers of real
exports that one of them refuses (a stale per-channel axis on a rank-1 bias, an old
schema version, ...) are reported by :func:`find_runtime_quirks` as
:class:`RuntimeQuirk` warnings naming that runtime.

Everything a file can make the pure-Python reader (:mod:`edgert.model.reader`)
do is covered, so for a file that validates, ``read_model(...).to_dict()``
raises nothing. The native interpreter is another matter: it is run in an
isolated process (:mod:`edgert.runtime`) because its kernels can still fail on
files that are structurally sound.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import NamedTuple, NoReturn

import numpy as np

from edgert.errors import InvalidModelError

# SchemaField and schema_fields are re-exported: the validator's walk is what they were recorded for.
from edgert.model.schema import (
    EXTERNAL_OFFSET_MIN,
    MAX_MODEL_BYTES,
    TFLITE_DTYPES,
    SchemaField,
    dtype_nbytes,
    schema_fields,
    snake_case,
)

__all__ = [
    "MAX_RANK",
    "MAX_TENSOR_ELEMENTS",
    "RUNTIME_NAMES",
    "RuntimeQuirk",
    "SchemaField",
    "find_runtime_quirks",
    "schema_fields",
    "validate_model_bytes",
]

#: Largest rank accepted (TFLite kernels stop at 6; reshape-only graphs go a little higher).
MAX_RANK = 32
#: Largest element count of one tensor (TFLite indexes elements with int32).
MAX_TENSOR_ELEMENTS = 2**31 - 1

_HINT = "the file is corrupt, truncated or crafted; re-export it from the original model"
# Every byte the walk touches is charged; legitimate files reference each object once.
_BUDGET_FACTOR = 2
_BUDGET_SLACK = 64 * 1024
# Union accessors whose enum is not named after the accessor (schema.fbs).
_UNION_ENUMS = {
    "Details": "QuantizationDetails",
    "ArraySegments": "SparseIndexVector",
    "ArrayIndices": "SparseIndexVector",
}
# Control-flow options whose scalar fields are subgraph indices.
_SUBGRAPH_OPTION_FIELDS = {
    "IfOptions": ("ThenSubgraphIndex", "ElseSubgraphIndex"),
    "WhileOptions": ("CondSubgraphIndex", "BodySubgraphIndex"),
    "CallOnceOptions": ("InitSubgraphIndex",),
}

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U8 = struct.Struct("<B")


@cache
def _union_tables(table_cls: type, accessor: str) -> dict[int, type]:
    """``{union type code: table class}`` for a union field of ``table_cls``."""
    import tflite

    enum = getattr(tflite, _UNION_ENUMS.get(accessor, accessor), None)
    if not isinstance(enum, type):
        return {}
    out = {}
    for name, code in vars(enum).items():
        if isinstance(code, int) and not name.startswith("_") and code != 0:
            cls = getattr(tflite, name, None)
            if isinstance(cls, type) and hasattr(cls, "Init"):
                out[code] = cls
    return out


class _Walker:
    """Pass 1: the flatbuffers-level walk over every reachable table."""

    def __init__(self, data, name: str) -> None:
        self.data = data
        self.n = len(data)
        self.name = name
        self.budget = _BUDGET_FACTOR * self.n + _BUDGET_SLACK
        self.spent = 0
        self.vtables: dict[int, tuple[int, ...]] = {}

    def fail(self, where: str, problem: str):
        raise InvalidModelError(f"{self.name}: {where or 'root table'}: {problem}", _HINT)

    def charge(self, nbytes: int, where: str) -> None:
        self.spent += nbytes
        if self.spent > self.budget:
            self.fail(where, f"the structure references more than {self.budget} bytes in a {self.n}-byte file "
                             "(tables or vectors shared or overlapping)")

    def u32(self, pos: int, where: str) -> int:
        if pos < 0 or pos + 4 > self.n:
            self.fail(where, f"offset {pos} is outside the file ({self.n} bytes)")
        return _U32.unpack_from(self.data, pos)[0]

    def target(self, pos: int, where: str) -> int:
        """Follow the uoffset stored at ``pos``; the target must leave room for a length/soffset."""
        t = pos + self.u32(pos, where)
        if t + 4 > self.n:
            self.fail(where, f"points at offset {t}, past the end of the file ({self.n} bytes)")
        return t

    def table(self, pos: int, cls: type | None, where: str) -> None:
        data, n = self.data, self.n
        if pos < 0 or pos + 4 > n:
            self.fail(where, f"table at offset {pos} is outside the file ({n} bytes)")
        vt = pos - _I32.unpack_from(data, pos)[0]
        if vt < 0 or vt + 4 > n:
            self.fail(where, f"vtable at offset {vt} is outside the file ({n} bytes)")
        slots = self.vtables.get(vt)
        if slots is None:
            slots = self.vtable(vt, where)
        obj_size = _U16.unpack_from(data, vt + 2)[0]
        if pos + obj_size > n:
            self.fail(where, f"table at offset {pos} of {obj_size} bytes runs past the end of the file ({n} bytes)")
        self.charge(obj_size, where)
        if cls is None:
            return
        union_types: dict[str, int] = {}
        for f in schema_fields(cls):
            idx = (f.slot - 4) // 2
            off = slots[idx] if idx < len(slots) else 0
            if not off:
                continue
            here = f"{where}.{f.name}" if where else f.name
            width = f.size if f.kind == "scalar" else 4
            if off + width > obj_size:
                self.fail(here, f"{width}-byte field at +{off} overruns its {obj_size}-byte table")
            fpos = pos + off
            if f.kind == "scalar":
                if f.accessor.endswith("Type") and f.size == 1:
                    union_types[f.accessor[:-4]] = _U8.unpack_from(data, fpos)[0]
            elif f.kind == "string":
                self.string(self.target(fpos, here), here)
            elif f.kind == "table":
                self.table(self.target(fpos, here), f.table, here)
            elif f.kind == "union":
                # flatc gives a union's type field the slot just before it, so it was read above.
                code = union_types.get(f.accessor, 0)
                self.table(self.target(fpos, here), _union_tables(cls, f.accessor).get(code), here)
            else:
                self.vector(self.target(fpos, here), f, here)

    def vtable(self, vt: int, where: str) -> tuple[int, ...]:
        """Check a vtable once (tables share them) and return its field offsets."""
        data = self.data
        vt_size, obj_size = _U16.unpack_from(data, vt)[0], _U16.unpack_from(data, vt + 2)[0]
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.n:
            self.fail(where, f"vtable at offset {vt} has an impossible size {vt_size}")
        if obj_size < 4:
            self.fail(where, f"vtable at offset {vt} gives its table an impossible size {obj_size}")
        self.charge(vt_size, where)
        # Every present field, known to this schema or not, must lie inside the object.
        slots = struct.unpack_from(f"<{(vt_size - 4) // 2}H", data, vt + 4)
        if slots and max(slots) >= obj_size:
            i = next(i for i, off in enumerate(slots) if off >= obj_size)
            self.fail(where, f"field {i} at +{slots[i]} lies outside its {obj_size}-byte table")
        self.vtables[vt] = slots
        return slots

    def string(self, pos: int, where: str) -> None:
        length = self.u32(pos, where)
        end = pos + 4 + length
        if end + 1 > self.n:
            self.fail(where, f"string of {length} bytes at offset {pos} runs past the end of the file ({self.n} bytes)")
        if self.data[end] != 0:
            self.fail(where, f"string at offset {pos} is not NUL-terminated")
        self.charge(length + 4, where)

    def vector(self, pos: int, f: SchemaField, where: str) -> None:
        length = self.u32(pos, where)
        nbytes = length * f.size
        if pos + 4 + nbytes > self.n:
            self.fail(where, f"vector of {length} x {f.size}-byte elements at offset {pos} runs past the end "
                             f"of the file ({self.n} bytes)")
        self.charge(nbytes + 4, where)
        if f.element == "scalar" or length == 0:
            return
        base = pos + 4
        rel = np.frombuffer(self.data, dtype="<u4", count=length, offset=base)
        targets = rel.astype(np.int64) + (base + 4 * np.arange(length, dtype=np.int64))
        for i, t in enumerate(targets.tolist()):
            here = f"{where}[{i}]"
            if t + 4 > self.n:
                self.fail(here, f"points at offset {t}, past the end of the file ({self.n} bytes)")
            if f.element == "string":
                self.string(t, here)
            else:
                self.table(t, f.table, here)


def validate_model_bytes(data: bytes, name: str = "model") -> None:
    """Check that ``data`` is a structurally sound TFLite flatbuffer.

    Args:
        data: The whole file (bytes, bytearray or memoryview).
        name: How to call the model in messages (its path).

    Raises:
        InvalidModelError: with a one-line reason naming the first problem found,
            e.g. ``tensor 5 of subgraph 0 refers to buffer 999 but the model has 12 buffers``.
    """
    import tflite

    if isinstance(data, memoryview):
        data = data.tobytes()
    n = len(data)
    if n > MAX_MODEL_BYTES:
        raise InvalidModelError(f"{name}: {n} bytes is over the {MAX_MODEL_BYTES}-byte model size limit")
    if n < 16:
        raise InvalidModelError(f"{name}: {n} bytes is too short to be a .tflite model", _HINT)
    if bytes(data[4:8]) != b"TFL3":
        raise InvalidModelError(
            f"{name}: not a TFLite flatbuffer (file identifier is {bytes(data[4:8])!r}, expected b'TFL3')",
            "pass a .tflite file",
        )
    walker = _Walker(data, name)
    walker.table(walker.target(0, "root offset"), tflite.Model, "")
    _check_semantics(tflite.Model.GetRootAs(data, 0), data, name)


def _fail(name: str, problem: str) -> NoReturn:
    raise InvalidModelError(f"{name}: {problem}", _HINT)


def _ints(accessor_len, accessor_np) -> np.ndarray:
    """A vector field as int64 numpy (empty when absent); bounds were checked in pass 1."""
    if not accessor_len():
        return np.zeros(0, np.int64)
    return np.asarray(accessor_np(), dtype=np.int64)


def _check_semantics(m, data, name: str) -> None:
    """Pass 2: TFLite-level consistency, through the accessors pass 1 made safe."""
    import tflite

    n = len(data)
    n_buffers, n_subgraphs, n_opcodes = m.BuffersLength(), m.SubgraphsLength(), m.OperatorCodesLength()
    if n_subgraphs == 0:
        _fail(name, "the model has no subgraphs")

    buffer_bytes = []
    for i in range(n_buffers):
        b = m.Buffers(i)
        off = b.Offset()
        if off >= EXTERNAL_OFFSET_MIN:
            size = b.Size()
            if off + size > n:
                _fail(name, f"buffer {i} points at bytes {off}..{off + size} but the file has {n} bytes")
            buffer_bytes.append(size)
        else:
            buffer_bytes.append(b.DataLength())

    subgraph_tensors = []
    for s in range(n_subgraphs):
        sg = m.Subgraphs(s)
        n_tensors = sg.TensorsLength()
        subgraph_tensors.append(n_tensors)
        for what, arr in (("input", _ints(sg.InputsLength, sg.InputsAsNumpy)),
                          ("output", _ints(sg.OutputsLength, sg.OutputsAsNumpy))):
            bad = arr[(arr < 0) | (arr >= n_tensors)]
            if bad.size:
                _fail(name, f"subgraph {s} {what} refers to tensor {int(bad[0])} "
                            f"but the subgraph has {n_tensors} tensors")
        for t in range(n_tensors):
            _check_tensor(sg.Tensors(t), t, s, n_buffers, buffer_bytes, name)
        for o in range(sg.OperatorsLength()):
            _check_operator(sg.Operators(o), o, s, n_tensors, n_opcodes, n_subgraphs, n, name, tflite)

    legacy = _ints(m.MetadataBufferLength, m.MetadataBufferAsNumpy)  # deprecated list of buffer indices
    bad = legacy[(legacy < 0) | (legacy >= n_buffers)]
    if bad.size:
        _fail(name, f"metadata_buffer refers to buffer {int(bad[0])} but the model has {n_buffers} buffers")
    for i in range(m.MetadataLength()):
        b = m.Metadata(i).Buffer()
        if b >= n_buffers:
            _fail(name, f"metadata entry {i} refers to buffer {b} but the model has {n_buffers} buffers")
    for i in range(m.SignatureDefsLength()):
        sig = m.SignatureDefs(i)
        s = sig.SubgraphIndex()
        if s >= n_subgraphs:
            _fail(name, f"signature {i} refers to subgraph {s} but the model has {n_subgraphs} subgraphs")
        for kind, length, get in (("input", sig.InputsLength, sig.Inputs), ("output", sig.OutputsLength, sig.Outputs)):
            for j in range(length()):
                ti = get(j).TensorIndex()
                if ti >= subgraph_tensors[s]:
                    _fail(name, f"signature {i} {kind} {j} refers to tensor {ti} but subgraph {s} has "
                                f"{subgraph_tensors[s]} tensors")


def _check_tensor(t, index: int, s: int, n_buffers: int, buffer_bytes: list[int], name: str) -> None:
    what = f"tensor {index} of subgraph {s}"
    code = t.Type()
    dtype = TFLITE_DTYPES.get(code)
    if dtype is None:
        _fail(name, f"{what} has unknown type code {code}")
    shape = _ints(t.ShapeLength, t.ShapeAsNumpy)
    if shape.size > MAX_RANK:
        _fail(name, f"{what} has rank {shape.size} (at most {MAX_RANK} supported)")
    if shape.size and shape.min() < 0:
        _fail(name, f"{what} has a negative dimension in shape {shape.tolist()}")
    elements = 1
    for d in shape.tolist():
        elements *= d
    if elements > MAX_TENSOR_ELEMENTS:
        _fail(name, f"{what} has shape {shape.tolist()} = {elements:.3g} elements (limit {MAX_TENSOR_ELEMENTS})")
    # shape_signature is not checked: LiteRT and TFLite Micro both run files whose signature has
    # another rank or values below -1 (tests/model/test_quirks.py); the reader ignores such a one.
    buf = t.Buffer()
    if buf >= n_buffers:
        _fail(name, f"{what} refers to buffer {buf} but the model has {n_buffers} buffers")
    have = buffer_bytes[buf] if buf > 0 else 0
    if have and dtype not in ("string", "resource", "variant") and t.Sparsity() is None:
        want = dtype_nbytes(dtype, elements)
        # A longer buffer is padding both runtimes accept (LiteRT checks required <= bytes). A
        # shorter one is refused even though TFLite Micro, which checks nothing, would run it:
        # its kernels would read the weights from past the buffer's end.
        if have < want:
            _fail(name, f"{what} has shape {shape.tolist()} {dtype} = {want} bytes but buffer {buf} holds {have} bytes")
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 1:
        channels, zps, axis = q.ScaleLength(), q.ZeroPointLength(), q.QuantizedDimension()
        if not 0 <= axis < shape.size:
            # A rank-1 tensor has one possible channel axis: a stale axis copied from the conv
            # filter (TFLite Micro's person-detection model) is a quirk that TFLite Micro runs
            # and LiteRT refuses (find_runtime_quirks), not corruption.
            if not (shape.size == 1 and int(shape[0]) == channels):
                _fail(name, f"{what} is quantized per channel along axis {axis} but has rank {shape.size}")
        elif int(shape[axis]) != channels:
            _fail(name, f"{what} has {channels} scales but dimension {axis} of shape {shape.tolist()} "
                        f"is {int(shape[axis])}")
        if zps not in (0, 1, channels):
            _fail(name, f"{what} has {channels} scales but {zps} zero points")


def _check_operator(
    op, o: int, s: int, n_tensors: int, n_opcodes: int, n_subgraphs: int, n: int, name: str, tflite
) -> None:
    what = f"operator {o} of subgraph {s}"
    code = op.OpcodeIndex()
    if code >= n_opcodes:
        _fail(name, f"{what} uses opcode {code} but the model has {n_opcodes} operator codes")
    for kind, arr, low in (("input", _ints(op.InputsLength, op.InputsAsNumpy), -1),
                           ("output", _ints(op.OutputsLength, op.OutputsAsNumpy), 0),
                           ("intermediate", _ints(op.IntermediatesLength, op.IntermediatesAsNumpy), 0)):
        bad = arr[(arr < low) | (arr >= n_tensors)]
        if bad.size:
            _fail(name, f"{what} {kind} refers to tensor {int(bad[0])} but the subgraph has {n_tensors} tensors")
    if hasattr(op, "LargeCustomOptionsOffset"):
        off, size = op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()
        if off > 1 and off + size > n:
            _fail(name, f"{what} custom options point at bytes {off}..{off + size} but the file has {n} bytes")
    table_cls = _union_tables(tflite.Operator, "BuiltinOptions").get(op.BuiltinOptionsType())
    fields = _SUBGRAPH_OPTION_FIELDS.get(table_cls.__name__) if table_cls else None
    if table_cls and fields and op.BuiltinOptions() is not None:
        opts = table_cls()
        tab = op.BuiltinOptions()
        opts.Init(tab.Bytes, tab.Pos)
        for field in fields:
            idx = getattr(opts, field)()
            if not 0 <= idx < n_subgraphs:
                label = snake_case(field).replace("_", " ")
                _fail(name, f"{what} {label} is {idx} but the model has {n_subgraphs} subgraphs")


# ---- quirks: sound files that one runtime refuses -------------------------------------------------

#: Runtime keys of :class:`RuntimeQuirk` and how messages name them.
RUNTIME_NAMES = {"litert": "LiteRT", "tflm": "TFLite Micro"}
#: The schema version LiteRT's InterpreterBuilder accepts (``TFLITE_SCHEMA_VERSION``).
_LITERT_SCHEMA_VERSION = 3
#: BuiltinOperator code of custom ops (schema.fbs).
_CUSTOM_CODE = 32


class RuntimeQuirk(NamedTuple):
    """A structurally sound file that one runtime refuses while the other runs it.

    Real exports carry such leftovers (a stale per-channel axis, an old schema version);
    they are warnings, not corruption, and ``fit`` fails only on targets of that runtime.
    Each rule was checked against the runtimes themselves (tests/model/test_quirks.py).

    Attributes:
        runtime: The runtime that refuses the file: ``"litert"`` or ``"tflm"``.
        message: One line: what is in the file, who refuses it and why.
    """

    runtime: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form used in ``inspect --json`` and ``fit --json`` ``warnings``."""
        return {"runtime": self.runtime, "message": self.message}


def _first_and_more(items: list[str]) -> str:
    return items[0] + (f" (and {len(items) - 1} more)" if len(items) > 1 else "")


def find_runtime_quirks(data: bytes) -> list[RuntimeQuirk]:
    """The quirks of a file that :func:`validate_model_bytes` accepted.

    Args:
        data: The whole, already validated file.

    Returns:
        One :class:`RuntimeQuirk` per kind of quirk found (empty for a clean file).
    """
    import tflite

    m = tflite.Model.GetRootAs(data, 0)
    quirks: list[RuntimeQuirk] = []
    version = m.Version()
    if version != _LITERT_SCHEMA_VERSION:
        # InterpreterBuilder: "Model provided is schema version N not equal to supported version 3";
        # TFLite Micro does not look at the field.
        quirks.append(RuntimeQuirk("litert", f"schema version {version}: LiteRT loads only version "
                                             f"{_LITERT_SCHEMA_VERSION} files (TFLite Micro runs it)"))
    stale_axis: list[str] = []
    zero_points: list[str] = []
    empty_data: list[str] = []
    # Buffer 0 is the "no data" sentinel, whatever it holds: the Edge TPU compiler writes it with
    # an empty data vector, and LiteRT never reads it (tests/model/test_quirks.py).
    empty_buffers = {i for i in range(1, m.BuffersLength())
                     if not m.Buffers(i).DataIsNone() and m.Buffers(i).DataLength() == 0
                     and m.Buffers(i).Offset() < EXTERNAL_OFFSET_MIN}
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            rank = t.ShapeLength()
            q = t.Quantization()
            if q is not None and q.ScaleLength() and rank and not 0 <= q.QuantizedDimension() < rank:
                # LiteRT's ParseQuantization: "quantized_dimension must be in range [0, rank)";
                # TFLite Micro takes the channel axis from the kernel, not from the tensor.
                stale_axis.append(f"tensor {i} of subgraph {s} (rank {rank}, axis {q.QuantizedDimension()})")
            if q is not None and q.ScaleLength() and q.ZeroPointLength() != q.ScaleLength():
                # LiteRT: "QuantizationParam has 1 zero_point values and 64 scale values. Must have
                # same number." TFLite Micro reads the zero points its kernels need.
                zero_points.append(f"tensor {i} of subgraph {s} ({q.ScaleLength()} scales, "
                                   f"{q.ZeroPointLength()} zero points)")
            if t.Buffer() in empty_buffers and _ints(t.ShapeLength, t.ShapeAsNumpy).prod() != 0:
                # LiteRT reads a present data vector as constant data, even when it is empty,
                # then finds 0 bytes for a tensor that needs more; TFLite Micro treats it as absent.
                empty_data.append(f"tensor {i} of subgraph {s} (buffer {t.Buffer()})")
    if stale_axis:
        quirks.append(RuntimeQuirk("litert", "quantized_dimension outside the rank of " + _first_and_more(stale_axis)
                                             + ": a stale per-channel axis that LiteRT refuses "
                                             "(TFLite Micro runs it)"))
    if zero_points:
        quirks.append(RuntimeQuirk("litert", "zero points do not match the scales one to one on "
                                             + _first_and_more(zero_points) + ": LiteRT refuses such a tensor"))
    if empty_data:
        quirks.append(RuntimeQuirk("litert", "empty data vector in the buffer of " + _first_and_more(empty_data)
                                             + ": LiteRT reads it as 0 bytes of constant data and refuses the "
                                             "tensor (TFLite Micro runs it)"))
    builtin_with_options: list[str] = []
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            if codes[op.OpcodeIndex()] != _CUSTOM_CODE and not op.CustomOptionsIsNone():
                builtin_with_options.append(f"operator {o} of subgraph {s}")
    if builtin_with_options:
        # TFLite Micro's allocator: "Unsupported behavior: found builtin operator X with custom options".
        quirks.append(RuntimeQuirk("tflm", "custom options on builtin " + _first_and_more(builtin_with_options)
                                           + ": TFLite Micro refuses builtin operators that carry custom "
                                           "options (LiteRT runs it)"))
    return quirks
