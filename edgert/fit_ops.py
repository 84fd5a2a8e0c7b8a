"""Which TFLite ops each runtime can execute: the tables ``edgert fit`` checks against.

* **TFLite Micro**: the builtin ops the tflite-micro op resolver registers
  (``Register_*`` kernels of the tflite-micro wheel; ``tests/targets`` checks
  the table against the symbols of the installed ``_runtime`` library, because
  the Python package does not expose its resolver's list).
* **Edge TPU**: the "Supported operations" table of Coral's
  "TensorFlow models on the Edge TPU" page (coral.ai/docs/edgetpu/models-intro),
  with the constraints we can check from the flatbuffer alone, corrected where
  the real compiler's output (the ``*_edgetpu.tflite`` twins in
  ``conformance/edgetpu/``) shows otherwise; the per-op and graph-position rules
  live in :mod:`edgert.fit` (``_edgetpu_problem``, ``_edgetpu_placement``).
* **XNNPACK** and **GPU** delegates: what they take over; anything else falls
  back to TFLite's builtin CPU kernels, which run every builtin op.
"""

from __future__ import annotations

__all__ = [
    "TFLM_OPS",
    "EDGETPU_OPS",
    "XNNPACK_OPS",
    "GPU_OPS",
    "TFLITE_CUSTOM_OPS",
    "TFLM_CUSTOM_OPS",
]

#: Builtin ops registered by TFLite Micro's op resolver (tflite-micro wheel, 2025-2026 builds).
TFLM_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION",
    "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV",
    "EMBEDDING_LOOKUP", "ELU", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
    "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF",
    "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX",
    "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND",
    "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE",
})
#: Custom ops TFLite Micro registers by name.
TFLM_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "ETHOSU"})

#: Edge TPU ops -> the constraint Coral documents (checked in :mod:`edgert.fit` where the flatbuffer tells).
EDGETPU_OPS = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation function",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "default weights format only",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional only",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation function",
    "MEAN": "no reduction in the batch dimension",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "no packing in the batch dimension",
    "PAD": "no padding in the batch dimension",
    "PRELU": "alpha must be 1-dimensional",
    "QUANTIZE": "",
    "REDUCE_MAX": "not on the batch dimension",
    "REDUCE_MIN": "not on the batch dimension",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "very large reshapes may stay on the CPU",
    "RESIZE_BILINEAR": "3-D input/output",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input, at most 16,000 elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "no split in the batch dimension",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "",
    "SUB": "",
    "SUM": "no reduction in the batch dimension",
    "TANH": "",
    # Not in Coral's table, but mapped by the real compiler: DeepLab-EdgeTPU's TILE
    # ([1,1,1,128] -> [1,33,33,128], image-pooling branch) is inside its edgetpu-custom-op.
    "TILE": "",
    "TRANSPOSE_CONV": "",
}

#: Ops the XNNPACK delegate takes over (TFLite's xnnpack delegate, float and int8 paths).
XNNPACK_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CEIL", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "FLOOR", "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU",
    "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU", "QUANTIZE", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "ROUND", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV", "EXPAND_DIMS", "SQUEEZE",
})

#: Ops the TFLite GPU delegate (OpenCL/OpenGL) takes over.
GPU_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "COS", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EXP", "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU",
    "LOG", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU", "QUANTIZE",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SIN",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE",
    "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "REDUCE_MAX", "REDUCE_MIN", "EXPAND_DIMS", "SQUEEZE",
})

#: Custom ops the standard TFLite interpreter registers (everything else custom needs your own kernel).
TFLITE_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "AudioSpectrogram", "Mfcc"})
