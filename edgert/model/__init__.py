"""The .tflite artifact: read, validate, inspect, metadata, memory plan.

Pure Python over the maintained ``tflite`` schema package; never imports TensorFlow.
"""

from edgert.model.checker import validate_model_bytes
from edgert.model.macs import KERNEL_FAMILIES, OpCost, estimate_macs, kernel_family, macs_by_family, op_costs, op_macs
from edgert.model.metadata import METADATA_NAME, METADATA_SCHEMA, MetadataWriterError, embed_metadata, read_labels, read_metadata
from edgert.model.reader import MAX_MODEL_BYTES, ModelFile, OperatorInfo, TensorSpec, dtype_nbytes, read_model

__all__ = [
    "dtype_nbytes",
    "embed_metadata",
    "estimate_macs",
    "KERNEL_FAMILIES",
    "kernel_family",
    "macs_by_family",
    "MAX_MODEL_BYTES",
    "METADATA_NAME",
    "METADATA_SCHEMA",
    "MetadataWriterError",
    "ModelFile",
    "op_costs",
    "op_macs",
    "OpCost",
    "OperatorInfo",
    "read_labels",
    "read_metadata",
    "read_model",
    "TensorSpec",
    "validate_model_bytes",
]
