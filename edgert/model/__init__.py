"""The .tflite artifact: read, validate, inspect, metadata, memory plan.

Pure Python over the maintained ``tflite`` schema package; never imports TensorFlow.
"""

from edgert.model.metadata import METADATA_NAME, METADATA_SCHEMA, MetadataWriterError, embed_metadata, read_metadata
from edgert.model.reader import MAX_MODEL_BYTES, ModelFile, OperatorInfo, TensorSpec, read_model
from edgert.model.validate import validate_model_bytes

__all__ = [
    "METADATA_NAME",
    "MAX_MODEL_BYTES",
    "METADATA_SCHEMA",
    "MetadataWriterError",
    "embed_metadata",
    "ModelFile",
    "OperatorInfo",
    "TensorSpec",
    "read_metadata",
    "read_model",
    "validate_model_bytes",
]
