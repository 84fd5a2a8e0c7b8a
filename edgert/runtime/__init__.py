"""Run .tflite models on the device: the interpreter facade, IO and safe loading.

Imports on a Raspberry Pi with only tflite-runtime: never imports TensorFlow,
and no interpreter backend is imported until the first model is loaded.

- :func:`load_model` -> :class:`Model` (``predict``, ``set_input``/``invoke``/``get_output``,
  zero-copy ``input_view``/``output_view``); unverified files are probed in a child
  process first (:func:`check_model`), verdicts cached by sha256.
- :func:`select_backend`: ai-edge-litert, tflite-runtime, ``EDGERT_BACKEND``.
- :func:`load_input`: ``.npy`` / image / ``.wav`` -> input tensor; :func:`quantize`, :func:`dequantize`.
"""

from edgert.runtime.backend import Backend, available_backends, select_backend
from edgert.runtime.interpreter import EDGETPU_LIBRARY, Model, load_model
from edgert.runtime.safe import Verdict, check_model, remember_trusted
from edgert.runtime.tensors import dequantize, load_input, quantize, random_input

__all__ = [
    "EDGETPU_LIBRARY",
    "Backend",
    "Model",
    "Verdict",
    "available_backends",
    "check_model",
    "dequantize",
    "load_input",
    "load_model",
    "quantize",
    "random_input",
    "remember_trusted",
    "select_backend",
]
