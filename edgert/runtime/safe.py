"""Open unverified models in a child process first, and remember the verdict.

The TFLite C++ interpreter can segfault, hang or exhaust memory on a crafted
file that passes structural validation. :func:`check_model` builds an
interpreter from the bytes, allocates its tensors and invokes it once on zeros
in a child process (:func:`edgert.isolate.run_isolated`) with a memory and a
time limit. A crash, hang or interpreter error there becomes
:class:`~edgert.errors.InvalidModelError` naming the reason; the caller lives.

Verdicts are cached on disk, keyed by (sha256, backend, backend version, CPU
architecture), so a file that was checked once costs one small file read the
next time. Files our own converter wrote are marked trusted for every backend
with :func:`remember_trusted`.

Only what the model decides is remembered. A crash can also be the platform's
(a wheel for another CPU, qemu-user showing the guest the host's
``/proc/cpuinfo``): when a probe crashes, a built-in one-op model
(:func:`edgert.model.control.control_model`) is probed the same way, and if it
crashes too the runtime is reported broken (:class:`~edgert.errors.BackendError`)
and nothing is cached. Timeouts and SIGKILL (a busy machine, the OOM killer) are
never cached either. :func:`clear_cache` (``edgert cache clear``) forgets every
verdict; ``use_cache=False`` (``--no-cache``) neither reads nor writes them.

Cache location: ``$EDGERT_CACHE_DIR/verdicts/``, else
``$XDG_CACHE_HOME/edgert/verdicts/``, else ``~/.cache/edgert/verdicts/``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgert.errors import BackendError, InterpreterRejectedError, InvalidModelError
from edgert.files import atomic_write
from edgert.isolate import IsolationError, run_isolated
from edgert.model.reader import ModelFile, ModelSource, read_model
from edgert.runtime.backend import Backend, select_backend

__all__ = [
    "CHECK_BASE_MEMORY_BYTES",
    "CHECK_BASE_TIMEOUT_S",
    "Verdict",
    "cache_dir",
    "check_limits",
    "check_model",
    "clear_cache",
    "forget",
    "isolation_reason",
    "lookup_verdict",
    "probe_model",
    "remember_trusted",
]

log = logging.getLogger("edgert.runtime.safe")

#: Address space of the probe child before the model: Python, numpy, the backend, XNNPACK.
CHECK_BASE_MEMORY_BYTES = 2**30
#: The interpreter's arena and packed weights stay well within this many times the file size.
CHECK_MEMORY_PER_MODEL_BYTE = 8
#: Seconds for the child to start, import the backend and run once; grows with model size.
CHECK_BASE_TIMEOUT_S = 30.0
CHECK_TIMEOUT_PER_MIB_S = 2.0

_PROBE = "edgert.runtime.safe:probe_model"
_BAD_MODEL_HINT = "the file is corrupt, crafted or unsupported by this backend; use another model"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one model file with one backend.

    Attributes:
        ok: True when the interpreter built, allocated and ran the model.
        reason: Why it is not usable (None when ok).
        key: The cache key (``sha256``, backend, version) as a file-name stem.
        cached: True when this came from the cache without a child process.
    """

    ok: bool
    reason: str | None
    key: str
    cached: bool = False


def cache_dir() -> Path:
    """The directory holding verdict files (not created until a verdict is written)."""
    root = os.environ.get("EDGERT_CACHE_DIR")
    if root:
        return Path(root) / "verdicts"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "edgert" / "verdicts"


def check_limits(size_bytes: int) -> tuple[int, float]:
    """(memory bytes, timeout seconds) for probing a model of ``size_bytes``."""
    memory = CHECK_BASE_MEMORY_BYTES + CHECK_MEMORY_PER_MODEL_BYTE * size_bytes
    timeout = CHECK_BASE_TIMEOUT_S + CHECK_TIMEOUT_PER_MIB_S * size_bytes / 2**20
    return memory, timeout


def _key(sha256: str, backend: Backend) -> str:
    # The architecture is part of the key: a verdict from an x86 host says nothing about the Pi.
    where = f"{backend.version}-{platform.machine() or 'unknown'}"
    safe = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in where)
    return f"{sha256}.{backend.name}-{safe}"


def _trusted_path(sha256: str) -> Path:
    return cache_dir() / f"{sha256}.trusted.json"


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON so readers see either the old file or the whole new one."""
    try:
        atomic_write(path, json.dumps(record))
    except OSError as e:
        # A read-only or full cache only costs a re-check next time; loading still works.
        log.warning("could not remember the model check in %s: %s", path.parent, e.strerror or e)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.debug("ignoring unreadable verdict %s: %s", path, e)
        return None
    return record if isinstance(record, dict) and isinstance(record.get("ok"), bool) else None


def remember_trusted(sha256: str) -> None:
    """Mark a model (by sha256) as trusted for every backend: our converter wrote it.

    Args:
        sha256: Hex digest of the model bytes (``ModelFile.sha256``).
    """
    _write_atomic(_trusted_path(sha256), {"ok": True, "trusted": True, "time": time.time()})


def forget(sha256: str) -> None:
    """Drop every cached verdict for ``sha256`` (all backends, and the trusted mark)."""
    directory = cache_dir()
    for path in directory.glob(f"{sha256}.*.json"):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def clear_cache() -> int:
    """Forget every remembered verdict and trusted mark; returns how many files were removed."""
    removed = 0
    for path in cache_dir().glob("*.json"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def lookup_verdict(sha256: str, backend: Backend, name: str = "the model") -> Verdict | None:
    """The remembered verdict for this file and backend, or None when it was never checked.

    Args:
        sha256: The model's digest.
        backend: The backend the verdict is for (its version is part of the key).
        name: How to call the model in a bad verdict's reason (its path).
    """
    if _read(_trusted_path(sha256)) is not None:
        return Verdict(True, None, f"{sha256}.trusted", cached=True)
    key = _key(sha256, backend)
    record = _read(cache_dir() / f"{key}.json")
    if record is None:
        return None
    reason = None if record["ok"] else _reason(record.get("kind", "error"), str(record.get("detail", "")), name)
    return Verdict(record["ok"], reason, key, cached=True)


def isolation_reason(error: IsolationError, name: str) -> str:
    """Turn an :class:`IsolationError` from the probe into a one-line reason about model ``name``."""
    return _reason(error.kind, error.detail, name)


def _reason(kind: str, detail: str, name: str) -> str:
    if kind == "signal":
        return f"the interpreter crashed ({detail}) on {name}"
    if kind == "timeout":
        return f"the interpreter timed out on {name} ({detail})"
    if kind == "error":
        # The child reports "Type: message"; the interpreter's own message is what helps.
        type_name, sep, message = detail.partition(": ")
        if sep and type_name.isidentifier():
            detail = message
        return f"the interpreter rejected {name}: {detail}"
    return f"the interpreter died on {name}: {detail}"


def probe_model(data: bytes, backend_name: str) -> dict[str, Any]:
    """Build, allocate and invoke once on zeros (runs in the child; returns a small summary).

    Args:
        data: The model bytes.
        backend_name: Backend to use (the parent's choice).

    Returns:
        ``{"inputs": n, "outputs": n}`` when the interpreter ran the model, or
        ``{"backend_error": message, "hint": hint}`` when the backend itself is unusable.
    """
    import numpy as np

    try:
        backend = select_backend(backend_name)
        interpreter = backend.make_interpreter(data, num_threads=1)
    except InterpreterRejectedError as e:
        raise RuntimeError(e.reason) from None
    except BackendError as e:
        return {"backend_error": e.message, "hint": e.hint}
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    for detail in inputs:
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "biuf":  # string/resource inputs have no meaningful zero value
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype))
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    for detail in outputs:
        interpreter.get_tensor(detail["index"])
    return {"inputs": len(inputs), "outputs": len(outputs)}


def check_model(
    source: ModelSource | ModelFile,
    backend: Backend | str | None = None,
    *,
    use_cache: bool = True,
    timeout: float | None = None,
    memory_bytes: int | None = None,
) -> Verdict:
    """Prove the interpreter can open and run a model without taking this process down.

    Args:
        source: Path, bytes or :class:`~edgert.model.ModelFile` (structurally validated first).
        backend: Backend or its name; default as :func:`~edgert.runtime.select_backend`.
        use_cache: Consult and update the on-disk verdict cache.
        timeout: Seconds for the child (default from :func:`check_limits`).
        memory_bytes: Address-space limit of the child (default from :func:`check_limits`).

    Returns:
        The good :class:`Verdict` (``cached=True`` when no child was needed).

    Raises:
        InvalidModelError: The interpreter crashed, hung, ran out of memory or rejected
            the model (now or, from the cache, before).
        BackendError: The backend itself cannot run here.
    """
    file = read_model(source)
    be = backend if isinstance(backend, Backend) else select_backend(backend)
    name = file.path or "the model"
    if use_cache:
        verdict = lookup_verdict(file.sha256, be, name)
        if verdict is not None:
            if not verdict.ok:
                raise InvalidModelError(f"{verdict.reason} (remembered)", _BAD_MODEL_HINT)
            return verdict
    default_memory, default_timeout = check_limits(file.size_bytes)
    key = _key(file.sha256, be)
    try:
        result = run_isolated(
            _PROBE,
            file.data,
            be.name,
            timeout=timeout or default_timeout,
            memory_bytes=memory_bytes or default_memory,
        )
    except IsolationError as e:
        # A timeout can be a busy machine, a SIGKILL the system's OOM killer, rather than
        # the file: do not condemn the file forever for those.
        transient = e.kind == "timeout" or (e.kind == "signal" and e.detail == "SIGKILL")
        if e.kind in ("signal", "exit") and not transient:
            _require_working_runtime(be, e)  # raises BackendError when every model crashes here
        if use_cache and not transient:
            record = {"ok": False, "kind": e.kind, "detail": e.detail, "time": time.time()}
            _write_atomic(cache_dir() / f"{key}.json", record)
        raise InvalidModelError(isolation_reason(e, name), _BAD_MODEL_HINT) from None
    if "backend_error" in result:
        raise BackendError(result["backend_error"], result.get("hint"))
    if use_cache:
        _write_atomic(cache_dir() / f"{key}.json", {"ok": True, "time": time.time()})
    log.debug("checked %s with %s %s in a child process", name, be.name, be.version)
    return Verdict(True, None, key, cached=False)


#: Backends (name, version) whose interpreter ran the control model in this process.
_RUNTIME_WORKS: set[tuple[str, str]] = set()


def _require_working_runtime(backend: Backend, crash: IsolationError) -> None:
    """Probe the built-in control model after a crash; raise BackendError when it crashes too.

    Remembered per process only: a fixed environment must be believed at the next run.
    """
    from edgert.model.control import control_model

    if (backend.name, backend.version) in _RUNTIME_WORKS:
        return
    data = control_model()
    memory, timeout = check_limits(len(data))
    try:
        run_isolated(_PROBE, data, backend.name, timeout=timeout, memory_bytes=memory)
    except IsolationError as e:
        if e.kind == "timeout":
            return  # a busy machine says nothing about the runtime; the user's crash stands
        raise BackendError(
            f"the {backend.name} {backend.version} interpreter crashes ({crash.detail}) on every model on this "
            f"{platform.machine() or 'machine'}, even edgert's built-in one-op model ({e.detail}): the runtime "
            "or the platform is broken, not the file",
            "reinstall the backend for this CPU or try --backend with the other one; under qemu-user, show the "
            "guest an Arm /proc/cpuinfo and pin QEMU_CPU (e.g. cortex-a72)",
        ) from None
    _RUNTIME_WORKS.add((backend.name, backend.version))
