"""``edgert inspect`` / ``predict`` / ``bench``."""

from __future__ import annotations

import time
from typing import Any

from edgert.cli import emit
from edgert.commands import non_negative_int, positive_int
from edgert.errors import InputDataError

__all__ = ["register", "bench", "predict_files"]

#: Classes shown by the human output of ``predict`` for a classifier.
TOP_CLASSES = 5


def register(sub, add_common) -> None:
    """Add inspect, predict and bench."""
    p = sub.add_parser("inspect", help="show what a .tflite model is")
    p.add_argument("model", help="path to a .tflite file")
    add_common(p)
    p.set_defaults(handler=_inspect)

    p = sub.add_parser("predict", help="run a model once on input files (.npy, image, .wav)")
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="one file per model input: .npy, .png/.jpg/.bmp/.gif, .wav")
    _add_runtime_options(p)
    add_common(p)
    p.set_defaults(handler=_predict)

    p = sub.add_parser("bench", help="time the interpreter on a model")
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--runs", type=positive_int, default=100, help="timed invocations (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, help="untimed invocations first (default 10)")
    _add_runtime_options(p, repeat_backend=True)
    add_common(p)
    p.set_defaults(handler=_bench)


def _add_runtime_options(p, repeat_backend: bool = False) -> None:
    if repeat_backend:
        p.add_argument(
            "--backend",
            action="append",
            metavar="NAME",
            help="ai_edge_litert or tflite_runtime; repeat to compare side by side (default: $EDGERT_BACKEND or auto)",
        )
    else:
        p.add_argument("--backend", metavar="NAME", help="ai_edge_litert or tflite_runtime (default: $EDGERT_BACKEND or auto)")
    p.add_argument("--threads", type=positive_int, help="interpreter threads (default: the backend's)")
    p.add_argument("--delegate", metavar="NAME|LIB", help="'edgetpu' (libedgetpu.so.1) or a delegate library path")
    p.add_argument(
        "--require-delegate", action="store_true", help="fail instead of falling back to the CPU when the delegate is missing"
    )


def _inspect(args) -> int:
    from edgert.model import read_model

    info = read_model(args.model).to_dict()
    emit(args, info, _inspect_text)
    return 0


def _inspect_text(info: dict) -> str:
    lines = [f"{info['path']}: {info['size_bytes']} bytes, sha256 {info['sha256'][:16]}…"]
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = f" scale={t['scale']:.6g} zero_point={t['zero_point']}" if t["scale"] is not None else ""
            lines.append(f"  {kind[:-1]:6} {t['name']}: {t['dtype']}{t['shape']}{q}")
    lines.append("  ops: " + ", ".join(f"{k}×{v}" for k, v in info["ops"].items()))
    lines.append(f"  parameters: {info['parameters']:,}  MACs: {info['macs']:,}")
    lines.append(f"  metadata: {'edgert' if info['metadata'] else 'none'}")
    return "\n".join(lines)


# ---- predict ---------------------------------------------------------------------------


def predict_files(model, paths: list[str]) -> dict[str, Any]:
    """Run ``model`` once on input files and describe the outputs (the ``predict`` contract).

    Args:
        model: A loaded :class:`~edgert.runtime.Model`.
        paths: One input file per model input.

    Returns:
        ``{"model", "backend", "delegate", "inputs", "outputs": [{name, dtype, shape,
        values, raw?}], "top"?}``; ``values`` are dequantized floats, ``raw`` the
        integer tensor when the output is quantized, ``top`` the best classes of a classifier.

    Raises:
        InputDataError: Wrong number of inputs or unusable input files.
    """
    from edgert.runtime.io import dequantize, load_input

    if len(paths) != len(model.inputs):
        names = ", ".join(s.name for s in model.inputs)
        raise InputDataError(
            f"the model takes {len(model.inputs)} input(s) ({names}), got {len(paths)} file(s)",
            "pass one file per model input, in order",
        )
    arrays = [load_input(path, spec, model.metadata) for path, spec in zip(paths, model.inputs)]
    raw_outputs = model.predict(*arrays, dequantize_output=False)
    outputs = []
    for spec, raw in zip(model.outputs, raw_outputs):
        entry: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype, "shape": list(raw.shape)}
        if spec.quantized:
            entry["values"] = dequantize(raw, spec).tolist()
            entry["raw"] = raw.tolist()
        else:
            entry["values"] = raw.tolist()
        outputs.append(entry)
    result: dict[str, Any] = {
        "model": model.file.path,
        "backend": model.backend.name,
        "delegate": model.delegate,
        "inputs": [str(p) for p in paths],
        "outputs": outputs,
    }
    top = _top_classes(model, raw_outputs)
    if top is not None:
        result["top"] = top
    return result


def _top_classes(model, raw_outputs) -> list[dict[str, Any]] | None:
    """Best classes when the model is a classifier (one vector output), else None."""
    import numpy as np

    from edgert.runtime.io import dequantize

    meta = model.metadata or {}
    task = meta.get("task")
    if task not in (None, "classification") or len(raw_outputs) != 1:
        return None
    scores = np.ravel(dequantize(raw_outputs[0], model.outputs[0]))
    squeezed = [d for d in raw_outputs[0].shape if d != 1]
    if len(squeezed) != 1 or scores.size < 2 or scores.dtype.kind != "f":
        return None
    labels = meta.get("labels") if isinstance(meta.get("labels"), list) else None
    order = np.argsort(-scores, kind="stable")[: min(TOP_CLASSES, scores.size)]
    return [
        {
            "index": int(i),
            "label": str(labels[i]) if labels and i < len(labels) else None,
            "score": float(scores[i]),
        }
        for i in order
    ]


def _predict(args) -> int:
    from edgert.runtime import load_model

    model = load_model(
        args.model,
        backend=args.backend,
        threads=args.threads,
        delegate=args.delegate,
        require_delegate=args.require_delegate,
    )
    emit(args, predict_files(model, args.inputs), _predict_text)
    return 0


def _predict_text(result: dict) -> str:
    lines = [f"{result['model']} on {', '.join(result['inputs'])} ({result['backend']}{', ' + result['delegate'] if result['delegate'] else ''})"]
    if "top" in result:
        for rank, c in enumerate(result["top"], 1):
            name = c["label"] if c["label"] is not None else f"class {c['index']}"
            lines.append(f"  {rank}. {name:<20} {c['score']:.4f}")
        return "\n".join(lines)
    import numpy as np

    for out in result["outputs"]:
        values = np.asarray(out["values"]).ravel()
        shown = ", ".join(f"{v:.6g}" for v in values[:8]) + (", …" if values.size > 8 else "")
        lines.append(f"  {out['name']} {out['dtype']}{out['shape']}: [{shown}]")
    return "\n".join(lines)


# ---- bench -----------------------------------------------------------------------------


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

    Returns:
        ``{"backend", "backend_version", "delegate", "threads", "runs", "warmup",
        "latency_ms": {min, p50, p90, p99, mean}, "fps"}`` (fps from the mean latency).

    Raises:
        InputDataError: ``runs`` < 1 or ``warmup`` < 0.
    """
    import numpy as np

    from edgert.runtime import load_model
    from edgert.runtime.io import random_input

    if runs < 1 or warmup < 0:
        raise InputDataError(f"runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    model = load_model(source, backend=backend, threads=threads, delegate=delegate, require_delegate=require_delegate)
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


def _bench(args) -> int:
    backends = args.backend or [None]
    results = [
        bench(
            args.model,
            backend=name,
            threads=args.threads,
            runs=args.runs,
            warmup=args.warmup,
            delegate=args.delegate,
            require_delegate=args.require_delegate,
        )
        for name in backends
    ]
    result = {"model": args.model, **results[0]}
    if len(results) > 1:
        result["backends"] = results
    emit(args, result, _bench_text)
    return 0


def _bench_text(result: dict) -> str:
    rows = result.get("backends") or [result]
    lines = [f"{result['model']}: {rows[0]['runs']} runs after {rows[0]['warmup']} warm-up, threads {rows[0]['threads'] or 'default'}"]
    lines.append(f"  {'backend':<24} {'min':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'fps':>9}")
    for r in rows:
        lat = r["latency_ms"]
        name = f"{r['backend']} {r['backend_version']}" + (f" +{r['delegate']}" if r["delegate"] else "")
        lines.append(
            f"  {name:<24} {lat['min']:>7.3f}ms {lat['p50']:>7.3f}ms {lat['p90']:>7.3f}ms {lat['p99']:>7.3f}ms {r['fps']:>9.1f}"
        )
    return "\n".join(lines)
