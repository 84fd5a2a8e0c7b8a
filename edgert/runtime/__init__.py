"""Run .tflite models on the device: the interpreter facade, IO and safe loading.

Imports on a Raspberry Pi with only tflite-runtime: never imports TensorFlow.
"""

from edgert.runtime.backend import Backend, available_backends, select_backend
from edgert.runtime.interpreter import Model, load_model
from edgert.runtime.io import dequantize, quantize

__all__ = ["Backend", "Model", "available_backends", "dequantize", "load_model", "quantize", "select_backend"]
