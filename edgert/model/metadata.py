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
                         "anomaly_threshold": float, "output": "probabilities" | "logits"},
      "target": "cortex-m4-256k",
      "source": {"sha256": "...", "format": "keras" | "h5" | "saved_model" | "memory"},
      "converter": {"edgert": "0.1.0", "tensorflow": "2.21.0", "mode": "int8"},
      "calibration": {"samples": 200, "source": "samples/", "min": 0.0, "max": 1.0}
    }
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["METADATA_NAME", "METADATA_SCHEMA", "read_metadata"]

#: Name of our entry in the flatbuffer's ``metadata`` table.
METADATA_NAME = "edgert"
#: Value of the ``schema`` key of the current format.
METADATA_SCHEMA = "edgert.metadata/1"


def read_metadata(model) -> dict[str, Any] | None:
    """Return edgert's metadata dict from a :class:`~edgert.model.ModelFile`, or None when absent."""
    m = model.schema
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            raw = bytes(model.buffer_data(entry.Buffer()))
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None
            return value if isinstance(value, dict) else None
    return None
