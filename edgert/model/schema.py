"""The TFLite schema's vocabulary as plain Python: the leaf every ``edgert.model`` module builds on.

Dtype codes and byte sizes, the size limit of a model file, the records the
reader hands out for tensors and operators, builtin op names and options, and
the fields of each generated ``tflite`` table as recorded from its accessors
(:func:`schema_fields`). Nothing here imports another ``edgert.model`` module:
the reader, the validator, the MAC estimates and the metadata writer all import
this one, so none of them needs another to learn the schema.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "EXTERNAL_OFFSET_MIN",
    "MAX_MODEL_BYTES",
    "TFLITE_DTYPES",
    "OperatorInfo",
    "SchemaField",
    "TensorSpec",
    "builtin_op_names",
    "builtin_options",
    "dtype_nbytes",
    "numpy_dtype",
    "schema_fields",
    "snake_case",
]

#: Largest model file edgert will open (flatbuffers address at most 2 GiB without extensions).
MAX_MODEL_BYTES = 2**31 - 1

#: The large-model extension marks "data lives outside the flatbuffer" with a buffer offset > 1.
EXTERNAL_OFFSET_MIN = 2

#: TFLite TensorType code -> numpy dtype name (schema.fbs order).
TFLITE_DTYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
    6: "bool", 7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128",
    12: "uint64", 13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4",
    18: "bfloat16", 19: "int2", 20: "uint4", 21: "float8_e4m3fn", 22: "float8_e5m2",
}

# dtypes numpy cannot hold: bytes per element (sub-byte types: elements packed per byte instead).
_NON_NUMPY_ITEMSIZE = {"string": 1, "resource": 1, "variant": 1, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}
_PACKED_PER_BYTE = {"int4": 2, "uint4": 2, "int2": 4}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the graph.

    Attributes:
        name: Tensor name from the flatbuffer.
        index: Tensor index in its subgraph (what the interpreter calls it).
        shape: Static shape.
        dtype: numpy dtype name (``"int8"``, ``"float32"``, ...).
        scale: Quantization scale (first channel's when per-channel), None if not quantized.
        zero_point: Quantization zero point, None if not quantized.
        shape_signature: Shape with -1 for dynamic dims, None when absent (fully static).
        scales: All per-channel scales (None when not quantized).
        zero_points: All per-channel zero points.
        quantized_dimension: Axis of per-channel quantization.
        buffer: Buffer index (0 = no data).
        buffer_bytes: Bytes of constant data in the file (0 for activations).
        is_variable: True for variable (stateful) tensors.
    """

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    shape_signature: tuple[int, ...] | None = None
    scales: tuple[float, ...] | None = None
    zero_points: tuple[int, ...] | None = None
    quantized_dimension: int = 0
    buffer: int = 0
    buffer_bytes: int = 0
    is_variable: bool = False

    @property
    def quantized(self) -> bool:
        """True when the tensor carries a scale and zero point."""
        return self.scale is not None

    @property
    def is_constant(self) -> bool:
        """True when the tensor's data is stored in the file (weights, biases)."""
        return self.buffer_bytes > 0

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension is only known at run time."""
        return self.shape_signature is not None and any(d < 0 for d in self.shape_signature)

    @property
    def num_elements(self) -> int:
        """Number of elements of the static shape (1 for a scalar)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes this tensor occupies at run time (int4/uint4 packed two per byte, int2 four)."""
        return dtype_nbytes(self.dtype, self.num_elements)

    def to_dict(self) -> dict[str, Any]:
        """The command contract's tensor object: name, shape, dtype, scale, zero_point."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass(frozen=True)
class OperatorInfo:
    """One operator: its op name, tensor indices and where it sits.

    Attributes:
        index: Position in the subgraph's execution order.
        subgraph: Subgraph index.
        name: Builtin op name (``"CONV_2D"``) or the custom op's code.
        custom: True for custom ops.
        inputs: Input tensor indices (-1 = optional input absent).
        outputs: Output tensor indices.
        version: Op version from the operator code.
    """

    index: int
    subgraph: int
    name: str
    custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    version: int = 1


def dtype_nbytes(dtype: str, num_elements: int) -> int:
    """Bytes ``num_elements`` of a TFLite dtype occupy in a buffer (sub-byte types packed).

    Args:
        dtype: A value of :data:`TFLITE_DTYPES`.
        num_elements: Element count.
    """
    per_byte = _PACKED_PER_BYTE.get(dtype)
    if per_byte:
        return (num_elements + per_byte - 1) // per_byte
    size = _NON_NUMPY_ITEMSIZE.get(dtype)
    return num_elements * (size if size is not None else np.dtype(dtype).itemsize)


def numpy_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype that holds a TFLite dtype's elements one per item, None when numpy has none.

    Strings, resources, bfloat16, float8 and the packed sub-byte types (int4, uint4, int2)
    come back None: their buffers cannot be viewed as a numpy array of the tensor's shape.
    """
    if dtype in _NON_NUMPY_ITEMSIZE or dtype in _PACKED_PER_BYTE:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return None  # an unknown(N) code from a newer schema


@lru_cache(maxsize=1)
def builtin_op_names() -> dict[int, str]:
    """``{BuiltinOperator code: name}`` from the generated ``tflite`` enum (``CONV_2D``, ...)."""
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_options(raw_op: Any, cls_name: str) -> Any:
    """An operator's builtin options as the generated ``tflite`` class, None when absent.

    Args:
        raw_op: A ``tflite.Operator`` (``ModelFile.operator_schema(op)``).
        cls_name: The options class, e.g. ``"Conv2DOptions"``; options of another type read as None.
    """
    import tflite

    code = getattr(tflite.BuiltinOptions, cls_name, None)
    if code is None or raw_op.BuiltinOptionsType() != code:
        return None
    tab = raw_op.BuiltinOptions()
    if tab is None:
        return None
    opts = getattr(tflite, cls_name)()
    opts.Init(tab.Bytes, tab.Pos)
    return opts


class SchemaField(NamedTuple):
    """One field of a schema table, as recorded from its generated accessor.

    Attributes:
        name: snake_case field name (``shape_signature``).
        accessor: Accessor method name (``ShapeSignature``).
        slot: Byte offset of the field's entry in the vtable (4, 6, 8, ...).
        kind: ``"scalar"``, ``"string"``, ``"table"``, ``"union"``, ``"vector"``.
        size: Scalar width, or the element width of a vector of scalars (4 for offsets).
        element: For vectors: ``"scalar"``, ``"string"`` or ``"table"``.
        table: Table class for ``table`` fields and vectors of tables.
    """

    name: str
    accessor: str
    slot: int
    kind: str
    size: int
    element: str | None = None
    table: type | None = None


class _Probe:
    """Stands in for a flatbuffers ``Table``: records what a generated accessor asks for."""

    Bytes = b""
    Pos = 0

    def __init__(self) -> None:
        self.slot: int | None = None
        self.events: list[tuple] = []

    def Offset(self, slot):  # noqa: N802 - flatbuffers Table API
        self.slot = slot
        return 4  # "present", so the accessor goes on to show how it reads the field

    def Get(self, flags, off):  # noqa: N802
        self.events.append(("get", flags.bytewidth))
        return 0

    def String(self, off):  # noqa: N802
        self.events.append(("string",))
        return b""

    def Vector(self, off):  # noqa: N802
        self.events.append(("vector",))
        return 0

    def VectorLen(self, off):  # noqa: N802
        self.events.append(("vectorlen",))
        return 0

    def Indirect(self, off):  # noqa: N802
        self.events.append(("indirect",))
        return 0

    def Union(self, t2, off):  # noqa: N802
        self.events.append(("union",))


def snake_case(name: str) -> str:
    """``ShapeSignature`` -> ``shape_signature`` (accessor names to schema field names)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@cache
def schema_fields(table_cls: type) -> tuple[SchemaField, ...]:
    """The fields of a generated ``tflite`` table class, recorded from its accessors.

    Each accessor is called once on a :class:`_Probe`; the probe sees which vtable
    slot it looks up and whether it then reads a scalar (and how wide), a string,
    a vector (and of what) or a nested table (and of which class).

    Args:
        table_cls: A generated table class such as ``tflite.Tensor``.

    Returns:
        The fields in slot order.
    """
    fields = []
    for attr, fn in vars(table_cls).items():
        if not inspect.isfunction(fn) or attr.startswith(("_", "Init", "GetRootAs")):
            continue
        if attr.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        if len(params) > 1:
            continue
        obj: Any = object.__new__(table_cls)  # generated tables define no __new__; skip __init__
        probe = _Probe()
        obj._tab = probe
        result = fn(obj, 0) if params else fn(obj)
        if probe.slot is None:
            continue
        ev = [e[0] for e in probe.events]
        nested = type(result) if hasattr(result, "_tab") and type(result).__module__.startswith("tflite") else None
        if ev == ["get"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "scalar", probe.events[0][1])
        elif ev == ["string"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "string", 4)
        elif ev == ["indirect"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "table", 4, table=nested)
        elif ev == ["union"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "union", 4)
        elif ev == ["vector", "get"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "vector", probe.events[1][1], "scalar")
        elif ev == ["vector", "string"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "vector", 4, "string")
        elif ev == ["vector", "indirect"]:
            f = SchemaField(snake_case(attr), attr, probe.slot, "vector", 4, "table", nested)
        else:
            # A shape of accessor this schema version does not use (structs): checked generically.
            continue
        fields.append(f)
    return tuple(sorted(fields, key=lambda f: f.slot))

