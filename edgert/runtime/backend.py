"""Interpreter backends behind one facade: ai-edge-litert (default) or tflite-runtime.

Selection order: an explicit name (``--backend``), then ``EDGERT_BACKEND``, then
the first of ai-edge-litert / tflite-runtime that imports and can work with the
installed numpy. Both expose the same ``Interpreter`` API, so everything above
this module is backend-agnostic.

Nothing here is imported at ``import edgert.runtime`` time: the backend module
is imported on the first :func:`select_backend` call.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgert.errors import BackendError, InterpreterRejectedError

__all__ = [
    "BACKENDS",
    "KERNELS",
    "Backend",
    "available_backends",
    "backend_names",
    "select_backend",
]

log = logging.getLogger("edgert.runtime")

#: Backend name -> (module holding Interpreter/load_delegate, distribution, pip command that provides it).
BACKENDS: dict[str, tuple[str, str, str]] = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "ai-edge-litert", "pip install ai-edge-litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite-runtime", 'pip install tflite-runtime "numpy<2"'),
}

#: Kernel sets an interpreter can run with -> the backends' ``OpResolverType`` member.
KERNELS: dict[str, str] = {
    # The backend's default: builtin kernels, with the XNNPACK delegate applied to float and int8 graphs.
    "auto": "AUTO",
    # The optimized builtin kernels alone: the same results on ai-edge-litert and tflite-runtime.
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    # TFLite's reference kernels: the readable definition of each op; slow (VWW int8: ~50x auto).
    "reference": "BUILTIN_REF",
}

_ALIASES = {"litert": "ai_edge_litert", "ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}

#: tflite-runtime releases up to this one were compiled against the numpy 1.x C API.
_TFLITE_RUNTIME_LAST_NUMPY1 = (2, 14)

_NUMPY2_FIX = 'pip install "numpy<2" (tflite-runtime is built for numpy 1.x), or use ai-edge-litert'


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class Backend:
    """An importable interpreter implementation.

    Attributes:
        name: ``"ai_edge_litert"`` or ``"tflite_runtime"``.
        version: The installed distribution's version.
        interpreter_class: The backend's ``Interpreter`` class.
        load_delegate: The backend's ``load_delegate`` function.
        op_resolver_type: The backend's ``OpResolverType`` enum (None when it has none).
    """

    name: str
    version: str
    interpreter_class: Any
    load_delegate: Callable[..., Any]
    op_resolver_type: Any = None

    def make_interpreter(self, model_content: bytes, num_threads: int | None = None, delegates: list | None = None,
                         kernels: str = "auto"):
        """Create an interpreter over ``model_content`` (not yet allocated).

        Args:
            kernels: A :data:`KERNELS` name.

        Raises:
            BackendError: The backend's native module cannot work here (tflite-runtime under numpy 2),
                or it cannot choose ``kernels``.
            InterpreterRejectedError: The interpreter refused the model (``reason`` holds its message).
        """
        options: dict[str, Any] = {}
        if kernels != "auto":
            member = getattr(self.op_resolver_type, KERNELS[kernels], None)
            if member is None:
                raise BackendError(f"backend {self.name} {self.version} cannot choose {kernels} kernels",
                                   "use --kernels auto, or ai-edge-litert")
            options["experimental_op_resolver_type"] = member
        try:
            return self.interpreter_class(
                model_content=model_content, num_threads=num_threads, experimental_delegates=delegates or None, **options
            )
        except SystemError as e:
            # tflite-runtime's extension fails to import numpy's C API lazily, on the first
            # interpreter: "SystemError: <built-in method CreateWrapperFromModelBuffer ...>
            # returned a result with an exception set" (cause: "numpy.core.multiarray failed to import").
            detail = _first_line(e)
            if "returned a result with an exception set" in detail:
                detail = "its native module could not load numpy's C API"
            raise BackendError(
                f"backend {self.name} {self.version} cannot run with numpy {_numpy_version()}: {detail}",
                _NUMPY2_FIX if self.name == "tflite_runtime" else BACKENDS[self.name][2],
            ) from None
        except (ValueError, RuntimeError) as e:
            raise InterpreterRejectedError(_first_line(e)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


_cache: dict[str, Backend] = {}


def backend_names() -> list[str]:
    """All backend names edgert knows, in auto-selection order."""
    return list(BACKENDS)


def _normalize(name: str) -> str:
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}", f"choose one of: {', '.join(BACKENDS)}")
    return key


def _dist_version(dist: str) -> str:
    from importlib import metadata as importlib_metadata  # ~40 ms to import: only when a backend is picked

    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _import(name: str) -> Backend:
    if name in _cache:
        return _cache[name]
    module_name, dist, fix = BACKENDS[name]
    ver = _dist_version(dist)
    if name == "tflite_runtime":
        # Checked before importing: the import itself succeeds under numpy 2 (after a
        # long warning banner) and the failure only surfaces at the first model load.
        numpy_major = _version_tuple(_numpy_version())[:1]
        built = _version_tuple(ver)
        if numpy_major >= (2,) and built and built[:2] <= _TFLITE_RUNTIME_LAST_NUMPY1:
            raise BackendError(f"backend tflite_runtime {ver} does not work with numpy {_numpy_version()}", _NUMPY2_FIX)
    try:
        mod = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendError(f"backend {name} is not installed ({e})", fix) from None
    except (SystemError, OSError, AttributeError) as e:  # a broken native install fails in many ways
        raise BackendError(f"backend {name} is installed but broken: {type(e).__name__}: {_first_line(e)}", fix) from None
    backend = Backend(name, ver, mod.Interpreter, mod.load_delegate, getattr(mod, "OpResolverType", None))
    _cache[name] = backend
    log.debug("backend %s %s from %s", name, ver, mod.__file__)
    return backend


def available_backends() -> list[str]:
    """Names of backends that import and can work here, in auto-selection order."""
    out = []
    for name in BACKENDS:
        try:
            _import(name)
        except BackendError:
            continue
        out.append(name)
    return out


def select_backend(name: str | None = None) -> Backend:
    """Pick the interpreter backend.

    Args:
        name: Explicit backend name (``"ai_edge_litert"``, ``"tflite_runtime"``,
            or the aliases ``"litert"``, ``"ai-edge-litert"``, ``"tflite-runtime"``);
            when None, ``EDGERT_BACKEND``, then the first backend that works.

    Raises:
        BackendError: The requested backend is unknown, missing or broken, or none works.
    """
    requested = name or os.environ.get("EDGERT_BACKEND") or None
    if requested:
        return _import(_normalize(requested))
    reasons = []
    hint = "pip install ai-edge-litert"
    for candidate in BACKENDS:
        try:
            return _import(candidate)
        except BackendError as e:
            reasons.append(e.message)
            if e.hint == _NUMPY2_FIX:
                hint = _NUMPY2_FIX  # installed but held back by numpy: say how to fix that install
    raise BackendError("no usable TFLite interpreter backend: " + "; ".join(reasons), hint)
