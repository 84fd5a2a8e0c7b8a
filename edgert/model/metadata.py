"""edgert's own metadata, stored inside the flatbuffer as a named metadata buffer (UTF-8 JSON).

The entry is named :data:`METADATA_NAME` in the model's ``metadata`` table and
points at a buffer holding a UTF-8 JSON object::

    {
      "schema": "edgert.metadata/1",
      "task": "classification" | "detection" | "anomaly" | "regression",
      "labels": ["zero", "one", ...],                       # optional
      "preprocessing": {                                    # optional (image models)
        "input_size": [H, W],
        "layout": "NHWC",
        "color": "rgb" | "bgr" | "grayscale",
        "resize": "bilinear" | "nearest" | "center_crop",
        "mean": float | [per-channel], "std": float | [per-channel]
      },                      # model float input = (pixel_0_255 - mean) / std
      "postprocessing": {"top_k": 3, "score_threshold": 0.0,
                         "anomaly_threshold": float, "output": "probabilities" | "logits",
                         # raw-box detection (see edgert.loop.postprocess):
                         "box_format": "yxyx" | "xyxy" | "cxcywh", "iou_threshold": 0.5,
                         "objectness": false},
      "target": "cortex-m4-256k",
      "source": {"sha256": "...", "format": "keras" | "h5" | "saved_model" | "memory"},
      "converter": {"edgert": "0.1.0", "tensorflow": "2.21.0", "mode": "int8"},
      "calibration": {"samples": 200, "source": "samples/", "min": 0.0, "max": 1.0}
    }

Reading needs only the ``tflite`` accessor package (runtime side). Writing
(:func:`embed_metadata`, host side) re-serialises the model with the object API
of a maintained generated schema (``ai_edge_litert.schema_py_generated`` or the
copy shipped in ``tflite_micro``), so every table the schema knows survives:
other metadata entries (``min_runtime_version``, TFLM's offline memory plan),
signature defs, all buffers, including the large-model extension area.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from edgert.errors import BackendError, InputDataError, InvalidModelError
from edgert.model.checker import validate_model_bytes
from edgert.model.schema import EXTERNAL_OFFSET_MIN

__all__ = [
    "TASKS",
    "METADATA_NAME",
    "METADATA_SCHEMA",
    "WRITER_SCHEMA_MODULES",
    "MetadataWriterError",
    "embed_metadata",
    "read_metadata",
    "read_labels",
]

log = logging.getLogger("edgert.model.metadata")

#: What a model does (the metadata's ``task``): it picks the post-processing and the accuracy report.
TASKS = ("classification", "detection", "anomaly", "regression")

#: Name of our entry in the flatbuffer's ``metadata`` table.
METADATA_NAME = "edgert"
#: Value of the ``schema`` key of the current format.
METADATA_SCHEMA = "edgert.metadata/1"

#: Generated schema modules with the flatbuffers object API (``ModelT``), most current first.
#: TensorFlow's own copy is deliberately absent: importing it imports TensorFlow.
WRITER_SCHEMA_MODULES = (
    "ai_edge_litert.schema_py_generated",
    "tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
)

# TFLite's schema declares buffer data ``force_align: 16``; the Python generator
# ignores it, so we restore it (weights read as int32/float need it on some MCUs).
_BUFFER_ALIGNMENT = 16


class MetadataWriterError(BackendError):
    """No schema module able to write TFLite flatbuffers is installed (writing is host-side)."""


def read_metadata(model) -> dict[str, Any] | None:
    """Return edgert's metadata dict from a :class:`~edgert.model.ModelFile`, or None when absent.

    A present but malformed entry (not UTF-8 JSON, not an object) reads as None
    with a warning: metadata is advisory and must never make a model unusable.
    """
    m = model.schema
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            raw = bytes(model.buffer_data(entry.Buffer()))
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                log.warning("ignoring malformed edgert metadata: %s", e)
                return None
            return value if isinstance(value, dict) else None
    return None


def _writer_schema():
    """The first importable generated schema module that has the object API."""
    tried = []
    for name in WRITER_SCHEMA_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            tried.append(f"{name} ({e})")
            continue
        if hasattr(mod, "ModelT") and hasattr(mod, "MetadataT"):
            return mod
        tried.append(f"{name} (no object API)")
    raise MetadataWriterError(
        "cannot write model metadata: no flatbuffer schema writer is installed (tried " + "; ".join(tried) + ")",
        "pip install ai-edge-litert (or 'edgert[convert]'); writing metadata is a host-side step",
    )


def _json_bytes(metadata: dict) -> bytes:
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        # allow_nan=False: NaN/Infinity are not JSON and other readers would reject the entry.
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata is not JSON-serialisable: {e}") from None
    return text.encode("utf-8")


class _AlignedBufferT:
    """A ``BufferT`` stand-in whose ``Pack`` writes its bytes 16-byte aligned (see _BUFFER_ALIGNMENT)."""

    def __init__(self, schema, payload: bytes | None = None, offset: int = 0, size: int = 0) -> None:
        self._schema = schema
        self.payload = payload
        self.offset = offset
        self.size = size

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object API calls this name
        s = self._schema
        vec = None
        if self.payload is not None:
            # Same steps as Builder.CreateNumpyVector, but with the schema's alignment
            # (StartVector reserves the room the copy below fills).
            n = len(self.payload)
            builder.StartVector(1, n, _BUFFER_ALIGNMENT)
            builder.head -= n
            builder.Bytes[builder.head : builder.head + n] = self.payload
            builder.vectorNumElems = n
            vec = builder.EndVector()
        s.BufferStart(builder)
        if vec is not None:
            s.BufferAddData(builder, vec)
        s.BufferAddOffset(builder, self.offset)
        s.BufferAddSize(builder, self.size)
        return s.BufferEnd(builder)


def _finish(model_t) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def embed_metadata(data: bytes, metadata: dict) -> bytes:
    """Return a copy of a .tflite model carrying ``metadata`` as edgert's entry.

    The entry named :data:`METADATA_NAME` is added, or replaced when the model
    already has one (embedding twice leaves exactly one entry holding the second
    value). Everything else is preserved: operators, tensors, signature defs,
    other metadata entries and all buffers (indices unchanged, data 16-byte
    aligned; buffers in the >2 GB extension area are re-appended after the new
    flatbuffer with their offsets updated).

    Args:
        data: The model's bytes (validated first: a crafted file is never unpacked).
        metadata: A JSON-serialisable dict (see the module docstring for the keys).

    Returns:
        The new model bytes.

    Raises:
        InvalidModelError: ``data`` is not a structurally valid model.
        MetadataWriterError: No schema writer module is installed (host-only step).
        TypeError: ``metadata`` is not a JSON-serialisable dict.
    """
    payload = _json_bytes(metadata)
    data = bytes(data)
    validate_model_bytes(data, name="model")
    schema = _writer_schema()
    model_t = schema.ModelT.InitFromPackedBuf(data, 0)

    # Re-wrap every buffer so it packs aligned. Data stored after the flatbuffer
    # (large-model extension: buffers and large custom options) is copied out of
    # the old file, because its offsets move with the new flatbuffer's size.
    external: list[tuple[object, str, bytes]] = []  # (object, offset attribute, bytes)
    buffers = []
    for b in model_t.buffers or []:
        if b.offset >= EXTERNAL_OFFSET_MIN:
            moved = _AlignedBufferT(schema, None, offset=1, size=b.size)  # 1 keeps the field present
            external.append((moved, "offset", data[b.offset : b.offset + b.size]))
            buffers.append(moved)
        else:
            buffers.append(_AlignedBufferT(schema, _as_bytes(b.data)))
    for sg in model_t.subgraphs or []:
        for op in sg.operators or []:
            off = getattr(op, "largeCustomOptionsOffset", 0) or 0
            if off >= EXTERNAL_OFFSET_MIN:
                external.append((op, "largeCustomOptionsOffset", data[off : off + op.largeCustomOptionsSize]))
                op.largeCustomOptionsOffset = 1
    if not buffers:
        # Buffer 0 is the conventional empty sentinel that activations point at.
        buffers.append(_AlignedBufferT(schema))

    entries = list(model_t.metadata or [])
    ours = [e for e in entries if _entry_name(e) == METADATA_NAME]
    others = [e for e in entries if _entry_name(e) != METADATA_NAME]
    reusable = _exclusive_buffer(model_t, ours, len(buffers))
    if reusable is not None:
        buffers[reusable] = _AlignedBufferT(schema, payload)
        index = reusable
    else:
        buffers.append(_AlignedBufferT(schema, payload))
        index = len(buffers) - 1
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = index
    model_t.metadata = others + [entry]
    model_t.buffers = buffers

    out = _finish(model_t)
    if not external:
        return out
    # Offsets are fixed-width fields present (non-zero) in both passes, so giving
    # them their final values does not change the flatbuffer's length.
    pos = _align_up(len(out), _BUFFER_ALIGNMENT)
    for obj, attr, chunk in external:
        setattr(obj, attr, pos)
        pos = _align_up(pos + len(chunk), _BUFFER_ALIGNMENT)
    final = _finish(model_t)
    if len(final) != len(out):
        raise InvalidModelError(
            "re-serialising the model changed the size of its flatbuffer part; cannot place the large-model data",
            "report this model to the edgert maintainers",
        )
    tail = bytearray(pos - len(final))
    for obj, attr, chunk in external:
        rel = getattr(obj, attr) - len(final)
        tail[rel : rel + len(chunk)] = chunk
    return final + bytes(tail)


def _as_bytes(data) -> bytes | None:
    """BufferT.data is a numpy view when numpy is present, else a list of ints."""
    if data is None:
        return None
    if hasattr(data, "tobytes"):
        return data.tobytes()
    return bytes(data)


def _entry_name(entry) -> str:
    name = entry.name
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    return name or ""


def _exclusive_buffer(model_t, ours: list, num_buffers: int) -> int | None:
    """Buffer index of our old entry when nothing else refers to it (so it can be overwritten)."""
    if not ours:
        return None
    index = ours[0].buffer
    if index <= 0 or index >= num_buffers:
        return None
    for sg in model_t.subgraphs or []:
        for t in sg.tensors or []:
            if t.buffer == index:
                return None
    for e in model_t.metadata or []:
        if e not in ours and e.buffer == index:
            return None
    return index


def _align_up(n: int, alignment: int) -> int:
    return int(math.ceil(n / alignment) * alignment)


def read_labels(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored): what ``labels`` holds.

    Shared by ``edgert convert --labels`` (names embedded in the metadata) and
    ``edgert run --labels`` (names for a model that carries none).

    Raises:
        InputDataError: Missing, unreadable or empty file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputDataError(f"{p}: labels file not found", "pass a text file with one class name per line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputDataError(f"{p}: cannot read the labels file: {e}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise InputDataError(f"{p}: labels file is empty", "write one class name per line")
    return labels
