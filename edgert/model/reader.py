"""Read a .tflite flatbuffer into plain, documented Python values.

The schema accessors come from the maintained ``tflite`` package (generated from
TensorFlow's schema.fbs); nothing here computes flatbuffer offsets by hand.
:func:`read_model` validates the structure first (see :mod:`edgert.model.checker`)
so the accessors never walk out of the buffer.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import InputDataError, InvalidModelError
from edgert.model.checker import find_runtime_quirks, validate_model_bytes
from edgert.model.macs import estimate_macs
from edgert.model.metadata import read_metadata

# Re-exported: the records and dtype tables live in the schema leaf, where every model module reads them.
from edgert.model.schema import (
    MAX_MODEL_BYTES,
    TFLITE_DTYPES,
    OperatorInfo,
    TensorSpec,
    builtin_op_names,
    dtype_nbytes,
    numpy_dtype,
    schema_fields,
)

__all__ = ["TensorSpec", "OperatorInfo", "ModelFile", "read_model", "dtype_nbytes", "MAX_MODEL_BYTES", "TFLITE_DTYPES"]

ModelSource = str | os.PathLike | bytes | bytearray | memoryview


@lru_cache(maxsize=1)
def _buffer_data_slot() -> int:
    """vtable slot of ``Buffer.data``, recorded from the schema accessor (not hand-written)."""
    import tflite

    return next(f.slot for f in schema_fields(tflite.Buffer) if f.name == "data")


class ModelFile:
    """A validated .tflite file and everything edgert knows about it without running it.

    Build one with :func:`read_model`. Cheap facts (size, sha256, tensors, ops)
    are computed on first use and cached.
    """

    def __init__(self, data: bytes, path: str | None = None) -> None:
        import tflite

        self.data = data
        self.path = path
        self._model = tflite.Model.GetRootAs(data, 0)

    # -- identity -----------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        """File size in bytes."""
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the file's bytes (the identity verdicts and metadata refer to)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def schema(self):
        """The ``tflite.Model`` root object, for code that needs the raw schema."""
        return self._model

    @cached_property
    def warnings(self) -> list:
        """Quirks that one runtime refuses (:class:`~edgert.model.checker.RuntimeQuirk`), empty when clean."""
        return find_runtime_quirks(self.data)

    # -- graph --------------------------------------------------------------------
    @property
    def num_subgraphs(self) -> int:
        """Number of subgraphs (1 unless the model uses control flow or signatures)."""
        return self._model.SubgraphsLength()

    def tensors(self, subgraph: int = 0) -> list[TensorSpec]:
        """All tensors of one subgraph, in index order."""
        return list(self._tensors(subgraph))

    def _tensors(self, subgraph: int) -> tuple[TensorSpec, ...]:
        cache = self.__dict__.setdefault("_tensor_cache", {})
        if subgraph not in cache:
            sg = self._model.Subgraphs(subgraph)
            cache[subgraph] = tuple(self._tensor_spec(sg.Tensors(i), i) for i in range(sg.TensorsLength()))
        return cache[subgraph]

    def _tensor_spec(self, t, index: int) -> TensorSpec:
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else None
        if sig is not None and (len(sig) != t.ShapeLength() or min(sig) < -1):
            sig = None  # a malformed signature, which both runtimes ignore too: treat the shape as static
        dtype = TFLITE_DTYPES.get(t.Type(), f"unknown({t.Type()})")
        scale = zero_point = scales = zero_points = None
        qdim = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            scales = tuple(float(s) for s in q.ScaleAsNumpy())
            zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(len(scales), np.int64)
            zero_points = tuple(int(z) for z in zps)
            scale, zero_point = scales[0], zero_points[0] if zero_points else 0
            qdim = q.QuantizedDimension()
        buf = t.Buffer()
        name = t.Name()
        return TensorSpec(
            name=name.decode("utf-8", "replace") if name else f"tensor_{index}",
            index=index,
            shape=shape,
            dtype=dtype,
            scale=scale,
            zero_point=zero_point,
            shape_signature=sig,
            scales=scales,
            zero_points=zero_points,
            quantized_dimension=qdim,
            buffer=buf,
            buffer_bytes=self._buffer_size(buf),
            is_variable=bool(t.IsVariable()),
        )

    def _buffer_size(self, index: int) -> int:
        # Buffer 0 is the empty sentinel activations point at.
        if index <= 0 or index >= self._model.BuffersLength():
            return 0
        return self.buffer_span(index)[1]

    def buffer_span(self, index: int) -> tuple[int, int]:
        """Where one buffer's bytes sit in the file: ``(offset, size)``; ``(0, 0)`` when empty.

        Works for inline buffers and for the large-model extension area alike,
        so callers (C export, memory planning) never compute flatbuffer offsets.

        Raises:
            IndexError: ``index`` is not a buffer of this model.
        """
        if not 0 <= index < self._model.BuffersLength():
            raise IndexError(f"buffer {index} out of range (model has {self._model.BuffersLength()} buffers)")
        b = self._model.Buffers(index)
        if b.Offset() > 1:  # large-model extension: data lives after the flatbuffer
            return int(b.Offset()), int(b.Size())
        n = b.DataLength()
        if n == 0:
            return 0, 0
        return b._tab.Vector(b._tab.Offset(_buffer_data_slot())), n

    def buffer_data(self, index: int) -> memoryview:
        """Raw bytes of one buffer (inline or in the large-model extension area), zero-copy."""
        start, size = self.buffer_span(index)
        return memoryview(self.data)[start: start + size]

    def tensor_data(self, spec: TensorSpec) -> np.ndarray | None:
        """The constant data of a tensor as a read-only numpy array of its shape (zero-copy).

        Returns None for activations and for dtypes numpy cannot hold (int4, bfloat16,
        strings, ...). Sparse tensors (whose buffer is not shape x dtype) come back flat.
        """
        dtype = numpy_dtype(spec.dtype)
        if not spec.is_constant or dtype is None:
            return None
        raw = self.buffer_data(spec.buffer)
        itemsize = dtype.itemsize
        # A padded buffer (both runtimes accept one): the data is its start. Sparse values are
        # never longer than the dense tensor, so this cannot cut them.
        raw = raw[: spec.num_elements * itemsize]
        if len(raw) % itemsize:
            return None  # sparse data in a format that is not whole elements
        arr = np.frombuffer(raw, dtype=spec.dtype)
        return arr.reshape(spec.shape) if arr.size == spec.num_elements else arr

    def operators(self, subgraph: int = 0) -> list[OperatorInfo]:
        """Operators of one subgraph in execution order."""
        cache = self.__dict__.setdefault("_op_cache", {})
        if subgraph not in cache:
            names = self._opcode_names()
            sg = self._model.Subgraphs(subgraph)
            ops = []
            for i in range(sg.OperatorsLength()):
                op = sg.Operators(i)
                name, custom, version = names[op.OpcodeIndex()]
                ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
                outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
                ops.append(OperatorInfo(i, subgraph, name, custom, ins, outs, version))
            cache[subgraph] = ops
        return list(cache[subgraph])

    def operator_schema(self, op: OperatorInfo):
        """The raw ``tflite.Operator`` for reading builtin options."""
        return self._model.Subgraphs(op.subgraph).Operators(op.index)

    def _opcode_names(self) -> list[tuple[str, bool, int]]:
        builtin = builtin_op_names()
        out = []
        for i in range(self._model.OperatorCodesLength()):
            oc = self._model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if builtin.get(code) == "CUSTOM":
                cc = oc.CustomCode()
                out.append((cc.decode("utf-8", "replace") if cc else "CUSTOM", True, oc.Version()))
            else:
                out.append((builtin.get(code, f"UNKNOWN_{code}"), False, oc.Version()))
        return out

    def _io(self, which: str) -> tuple[TensorSpec, ...]:
        sg = self._model.Subgraphs(0)
        idx = sg.InputsAsNumpy() if which == "in" else sg.OutputsAsNumpy()
        if isinstance(idx, int):
            return ()
        tensors = self._tensors(0)
        return tuple(tensors[int(i)] for i in idx)

    @cached_property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Input tensors of the main subgraph, in order."""
        return self._io("in")

    @cached_property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Output tensors of the main subgraph, in order."""
        return self._io("out")

    @cached_property
    def ops(self) -> dict[str, int]:
        """Op histogram over all subgraphs: ``{name: count}``."""
        hist: dict[str, int] = {}
        for s in range(self.num_subgraphs):
            for op in self.operators(s):
                hist[op.name] = hist.get(op.name, 0) + 1
        return dict(sorted(hist.items()))

    @cached_property
    def parameters(self) -> int:
        """Number of constant elements stored in the file (weights, biases, constant tables)."""
        total = 0
        for s in range(self.num_subgraphs):
            for t in self._tensors(s):
                if t.is_constant:
                    total += t.num_elements
        return total

    @cached_property
    def macs(self) -> int:
        """Estimated multiply-accumulates for one inference (see :mod:`edgert.model.macs`)."""
        return estimate_macs(self)

    @cached_property
    def metadata(self) -> dict[str, Any] | None:
        """edgert's own metadata entry, or None for models we did not make."""
        return read_metadata(self)

    def metadata_names(self) -> list[str]:
        """Names of all metadata entries (ours and others, e.g. ``min_runtime_version``)."""
        out = []
        for i in range(self._model.MetadataLength()):
            n = self._model.Metadata(i).Name()
            out.append(n.decode("utf-8", "replace") if n else "")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``edgert inspect --json`` object."""
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": self.ops,
            "parameters": self.parameters,
            "macs": self.macs,
            "subgraphs": self.num_subgraphs,
            "metadata": self.metadata,
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def __repr__(self) -> str:
        return f"ModelFile(path={self.path!r}, size_bytes={self.size_bytes}, sha256={self.sha256[:12]}...)"


def _load_bytes(source: ModelSource) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_MODEL_BYTES:
            raise InvalidModelError(f"model is {len(data)} bytes, over the {MAX_MODEL_BYTES}-byte limit")
        return data, None
    path = Path(source)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputDataError(f"{path}: no such file", "check the model path") from None
    except OSError as e:
        raise InputDataError(f"{path}: cannot read ({e.strerror})") from None
    if path.is_dir():
        raise InputDataError(f"{path} is a directory, not a .tflite file")
    if size > MAX_MODEL_BYTES:
        raise InvalidModelError(f"{path}: {size} bytes is over the {MAX_MODEL_BYTES}-byte limit")
    try:
        return path.read_bytes(), str(path)
    except OSError as e:
        raise InputDataError(f"{path}: cannot read ({e.strerror})") from None


def read_model(source: ModelSource | ModelFile) -> ModelFile:
    """Read and structurally validate a .tflite model.

    Args:
        source: A path, the model's bytes, or an existing :class:`ModelFile`.

    Returns:
        The validated :class:`ModelFile`.

    Raises:
        InvalidModelError: The bytes are not a structurally valid TFLite flatbuffer.
        InputDataError: The path does not exist or cannot be read.
    """
    if isinstance(source, ModelFile):
        return source
    data, path = _load_bytes(source)
    validate_model_bytes(data, name=path or "model")
    return ModelFile(data, path)
