"""Interpreter backends behind one facade: ai-edge-litert (default) or tflite-runtime.

Selection order: an explicit name, then ``EDGERT_BACKEND``, then the first of
ai-edge-litert / tflite-runtime that imports. Both expose the same
``Interpreter`` API, so everything above this module is backend-agnostic.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable

from edgert.errors import BackendError

__all__ = ["Backend", "BACKENDS", "select_backend", "available_backends"]

#: Backend name -> (module holding Interpreter/load_delegate, pip requirement that provides it).
BACKENDS: dict[str, tuple[str, str]] = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "pip install ai-edge-litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", 'pip install tflite-runtime "numpy<2"'),
}

_ALIASES = {"litert": "ai_edge_litert", "ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}


@dataclass(frozen=True)
class Backend:
    """An importable interpreter implementation.

    Attributes:
        name: ``"ai_edge_litert"`` or ``"tflite_runtime"``.
        version: The installed distribution's version.
        interpreter_class: The backend's ``Interpreter`` class.
        load_delegate: The backend's ``load_delegate`` function.
    """

    name: str
    version: str
    interpreter_class: Any
    load_delegate: Callable[..., Any]

    def make_interpreter(self, model_content: bytes, num_threads: int | None = None, delegates: list | None = None):
        """Create an interpreter over ``model_content`` (not yet allocated)."""
        return self.interpreter_class(
            model_content=model_content, num_threads=num_threads, experimental_delegates=delegates or None
        )


_cache: dict[str, Backend] = {}


def _normalize(name: str) -> str:
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}", f"choose one of: {', '.join(BACKENDS)}")
    return key


def _import(name: str) -> Backend:
    if name in _cache:
        return _cache[name]
    module_name, fix = BACKENDS[name]
    try:
        mod = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendError(f"backend {name} is not installed ({e})", fix) from None
    except Exception as e:  # a broken install raises anything from its extension module
        raise BackendError(f"backend {name} is installed but broken: {type(e).__name__}: {e}", fix) from None
    try:
        from importlib.metadata import version

        dist = "ai-edge-litert" if name == "ai_edge_litert" else "tflite-runtime"
        ver = version(dist)
    except Exception:
        ver = "unknown"
    backend = Backend(name, ver, mod.Interpreter, mod.load_delegate)
    _cache[name] = backend
    return backend


def available_backends() -> list[str]:
    """Names of backends that import here."""
    out = []
    for name in BACKENDS:
        try:
            _import(name)
            out.append(name)
        except BackendError:
            pass
    return out


def select_backend(name: str | None = None) -> Backend:
    """Pick the interpreter backend.

    Args:
        name: Explicit backend name; when None, ``EDGERT_BACKEND`` then auto-detection.

    Raises:
        BackendError: The requested backend is missing or broken, or none is installed.
    """
    requested = name or os.environ.get("EDGERT_BACKEND") or None
    if requested:
        return _import(_normalize(requested))
    errors = []
    for candidate in BACKENDS:
        try:
            return _import(candidate)
        except BackendError as e:
            errors.append(str(e))
    raise BackendError("no TFLite interpreter backend is installed", "pip install ai-edge-litert")
