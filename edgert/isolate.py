"""Run a function in a fresh child process with memory and time limits.

Native code (the TFLite interpreter, TFLite Micro) can segfault or hang on a
crafted model. Anything that feeds an unverified model to native code goes
through :func:`run_isolated`, so a crash becomes an :class:`IsolationError`
naming the signal, the timeout or the child's own error, and the caller lives.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import subprocess
import sys
import tempfile
from typing import Any

from edgert.errors import EdgertError

__all__ = ["IsolationError", "run_isolated", "DEFAULT_TIMEOUT_S", "DEFAULT_MEMORY_BYTES"]

#: Wall-clock limit of one isolated call.
DEFAULT_TIMEOUT_S = 60.0
#: Address-space limit of the child (interpreter + model + arena need far less).
DEFAULT_MEMORY_BYTES = 4 * 2**30

_CHILD = r"""
import os, pickle, sys, importlib
payload = pickle.load(sys.stdin.buffer)
out = os.fdopen(int(sys.argv[1]), "wb")
mod_name, _, fn_name = payload["fn"].partition(":")
try:
    fn = getattr(importlib.import_module(mod_name), fn_name)
    result = ("ok", fn(*payload["args"], **payload["kwargs"]))
except BaseException as e:
    result = ("error", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
pickle.dump(result, out)
out.flush()
"""


class IsolationError(EdgertError):
    """The isolated call crashed, hung, ran out of memory or raised.

    Attributes:
        kind: ``"signal"``, ``"timeout"``, ``"error"`` or ``"exit"``.
        detail: Signal name, exception ``Type: message``, or exit code.
    """

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if kind != "error" else detail)


def _limit(memory_bytes: int | None, cpu_seconds: int):
    def apply() -> None:
        os.setsid()  # own process group: a timeout kills everything it started
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not litter core files

    return apply


def run_isolated(
    fn: str,
    *args: Any,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int | None = DEFAULT_MEMORY_BYTES,
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` in a fresh Python child and return its result.

    Args:
        fn: ``"package.module:function"``; must be importable in the child.
        *args, **kwargs: Picklable arguments (bytes are fine for models).
        timeout: Seconds before the child is killed.
        memory_bytes: RLIMIT_AS of the child, None for no limit.

    Raises:
        IsolationError: crash (``kind="signal"``, detail e.g. ``"SIGSEGV"``), timeout,
            an exception in the child (detail ``"ValueError: ..."``), or an odd exit.
    """
    payload = pickle.dumps({"fn": fn, "args": args, "kwargs": kwargs})
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The child must import what the parent imports, whatever put it on sys.path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with tempfile.TemporaryFile() as stderr_file:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
                pass_fds=(write_fd,),
                preexec_fn=_limit(memory_bytes, int(timeout) + 1),
                env=env,
            )
        finally:
            os.close(write_fd)
        assert proc.stdin is not None  # stdin=PIPE
        with os.fdopen(read_fd, "rb") as reader:
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                raise IsolationError("timeout", f"no answer within {timeout:g} s") from None
            data = reader.read()
        if proc.returncode < 0:
            try:
                name = signal.Signals(-proc.returncode).name
            except ValueError:
                name = f"signal {-proc.returncode}"
            if name == "SIGXCPU":
                raise IsolationError("timeout", f"CPU limit of {int(timeout) + 1} s exceeded")
            raise IsolationError("signal", name)
        if not data:
            stderr_file.seek(0)
            tail = stderr_file.read().decode("utf-8", "replace").strip().splitlines()
            msg = tail[-1] if tail else ""
            if "MemoryError" in msg or "std::bad_alloc" in msg:
                raise IsolationError("error", f"out of memory (limit {memory_bytes} bytes)")
            raise IsolationError("exit", f"child exited with code {proc.returncode}" + (f": {msg}" if msg else ""))
    result = pickle.loads(data)
    if result[0] == "ok":
        return result[1]
    raise IsolationError("error", f"{result[1]}: {result[2]}" if result[2] else result[1])
