"""How much does edgert's ``Model.predict()`` add to the raw interpreter?

For every conformance model, the median latency of ``edgert``'s ``predict()``
is compared with the raw backend loop ``set_tensor / invoke / get_tensor`` on
the same interpreter build, the same input and in the same run (measured in
alternating blocks so machine noise hits both sides alike). Prints one JSON
object; exits 1 when a model misses its target:

- models slower than 100 µs: overhead <= 5 %
- faster models: overhead <= 10 µs

Usage: ``python benchmarks/runtime_overhead.py [--backend NAME] [--seconds S]``
(corpus from ``$EDGERT_CONFORMANCE`` or ``../shared/conformance``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgert.runtime import load_model, select_backend
from edgert.runtime.tensors import random_input

#: Above this raw latency the target is relative, below it absolute.
SLOW_MODEL_US = 100.0
MAX_OVERHEAD_PCT = 5.0
MAX_OVERHEAD_US = 10.0
#: Target length of one timed block; blocks alternate raw / edgert so drift hits both.
BLOCK_US = 2000.0
#: At least this many blocks per side, however slow the model.
MIN_BLOCKS = 15


def _corpus() -> Path:
    root = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("EDGERT_CONFORMANCE", root.parent / "shared" / "conformance"))


def _time_block(fn, n: int) -> float:
    """Median-friendly sample: mean µs per call over one block of ``n`` calls."""
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n / 1e3


def measure(path: Path, backend_name: str | None, seconds: float, threads: int | None) -> dict:
    """Median µs per call of the raw loop and of ``predict()`` for one model."""
    model = load_model(path, backend=backend_name, threads=threads)
    backend = model.backend
    raw = backend.make_interpreter(model.file.data, num_threads=threads)
    raw.allocate_tensors()
    rng = np.random.default_rng(0)
    inputs = [random_input(spec, rng) for spec in model.inputs]
    in_idx = [d["index"] for d in raw.get_input_details()]
    out_idx = [d["index"] for d in raw.get_output_details()]

    def raw_call():
        for i, x in zip(in_idx, inputs, strict=True):
            raw.set_tensor(i, x)
        raw.invoke()
        return [raw.get_tensor(i) for i in out_idx]

    def edgert_call():
        return model.predict(*inputs, dequantize_output=False)

    def edgert_float_call():
        return model.predict(*inputs)

    same = all(np.array_equal(a, b) for a, b in zip(raw_call(), edgert_call(), strict=True))
    for fn in (raw_call, edgert_call, edgert_float_call):  # warm-up: XNNPACK packs weights on first run
        _time_block(fn, 3)
    block = max(1, int(BLOCK_US / max(_time_block(raw_call, 3), 0.1)))
    calls = {"raw": raw_call, "edgert": edgert_call, "edgert_dequantized": edgert_float_call}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples["raw"]) < MIN_BLOCKS:
        for name in order:
            samples[name].append(_time_block(calls[name], block))
        order.reverse()  # neither side always runs right after the other
    raw_us = float(np.median(samples["raw"]))
    ours_us = float(np.median(samples["edgert"]))
    overhead_us = ours_us - raw_us
    overhead_pct = 100.0 * overhead_us / raw_us
    if raw_us > SLOW_MODEL_US:
        target, ok = f"<= {MAX_OVERHEAD_PCT:g} %", overhead_pct <= MAX_OVERHEAD_PCT
    else:
        target, ok = f"<= {MAX_OVERHEAD_US:g} us", overhead_us <= MAX_OVERHEAD_US
    return {
        "model": path.name,
        "raw_median_us": round(raw_us, 3),
        "edgert_median_us": round(ours_us, 3),
        "edgert_dequantized_median_us": round(float(np.median(samples["edgert_dequantized"])), 3),
        "overhead_us": round(overhead_us, 3),
        "overhead_pct": round(overhead_pct, 2),
        "blocks": len(samples["raw"]),
        "calls_per_block": block,
        "outputs_identical": same,
        "target": target,
        "pass": bool(ok and same),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help="backend name (default: $EDGERT_BACKEND or auto)")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per model (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads for both sides (default 1)")
    args = parser.parse_args(argv)
    corpus = _corpus()
    models = sorted((corpus / "models").glob("*.tflite"))
    if not models:
        print(json.dumps({"error": f"no conformance models under {corpus}"}))
        return 2
    backend = select_backend(args.backend)
    results = [measure(p, backend.name, args.seconds, args.threads) for p in models]
    report = {
        "benchmark": "runtime_overhead",
        "backend": backend.name,
        "backend_version": backend.version,
        "threads": args.threads,
        "baseline": "raw interpreter set_tensor/invoke/get_tensor, same process, alternating blocks",
        "targets": {"slow_model_us": SLOW_MODEL_US, "max_overhead_pct": MAX_OVERHEAD_PCT, "max_overhead_us": MAX_OVERHEAD_US},
        "models": results,
        "pass": all(r["pass"] for r in results),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
