"""What ``edgert bench`` measures: invoke latency of one backend on a model."""

from __future__ import annotations

import time
from typing import Any

from edgert.errors import InputDataError

__all__ = ["bench"]


def bench(
    source,
    *,
    backend: str | None = None,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    delegate: str | None = None,
    require_delegate: bool = False,
    seed: int = 0,
    kernels: str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Time ``invoke()`` of one backend on random inputs (set once, outside the timing).

    Args:
        source: Model path, bytes or :class:`~edgert.model.ModelFile`.
        backend: Backend name (default: ``EDGERT_BACKEND`` or auto).
        threads: Interpreter threads (None = the backend's default).
        runs: Timed invocations.
        warmup: Untimed invocations first (caches, XNNPACK weight packing).
        delegate: ``"edgetpu"`` or a delegate library path.
        require_delegate: Fail when the delegate is unavailable instead of using the CPU.
        seed: Seed of the random input.
        kernels: ``"auto"``, ``"builtin"`` or ``"reference"`` (see :func:`~edgert.runtime.load_model`).
        use_cache: Remembered verdicts of the isolated model check (see :func:`~edgert.runtime.load_model`).

    Returns:
        ``{"backend", "backend_version", "delegate", "kernels", "threads", "runs", "warmup",
        "latency_ms": {min, p50, p90, p99, mean}, "fps"}`` (fps from the mean latency).

    Raises:
        InputDataError: ``runs`` < 1 or ``warmup`` < 0.
    """
    import numpy as np

    from edgert.runtime import load_model
    from edgert.runtime.tensors import random_input

    if runs < 1 or warmup < 0:
        raise InputDataError(f"runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    model = load_model(source, backend=backend, threads=threads, delegate=delegate, require_delegate=require_delegate,
                       kernels=kernels, use_cache=use_cache)
    rng = np.random.default_rng(seed)
    for i, spec in enumerate(model.inputs):
        model.set_input(i, random_input(spec, rng))
    invoke = model.invoke
    for _ in range(warmup):
        invoke()
    clock = time.perf_counter_ns
    samples = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = clock()
        invoke()
        samples[i] = clock() - start
    ms = samples / 1e6
    mean = float(ms.mean())
    return {
        "backend": model.backend.name,
        "backend_version": model.backend.version,
        "delegate": model.delegate,
        "kernels": model.kernels,
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "latency_ms": {
            "min": float(ms.min()),
            "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "mean": mean,
        },
        "fps": 1000.0 / mean if mean > 0 else None,
    }
