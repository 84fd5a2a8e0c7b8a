"""``edgert inspect`` / ``predict`` / ``bench`` / ``cache``."""

from __future__ import annotations

from edgert.commands import add_kernels_option, add_no_cache_option, non_negative_int, positive_int
from edgert.commands.output import emit

__all__ = ["register"]


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

    p = sub.add_parser("cache", help="show or clear the remembered verdicts of model checks")
    p.add_argument("action", choices=("info", "clear"), help="info: where and how many; clear: forget them all")
    add_common(p)
    p.set_defaults(handler=_cache)


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
    add_kernels_option(p)
    add_no_cache_option(p)
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
    lines += [f"  warning: {w['message']}" for w in info.get("warnings", [])]
    return "\n".join(lines)


# ---- predict ---------------------------------------------------------------------------


def _predict(args) -> int:
    from edgert.runtime import load_model
    from edgert.runtime.predict import predict_files

    model = load_model(
        args.model,
        backend=args.backend,
        threads=args.threads,
        delegate=args.delegate,
        require_delegate=args.require_delegate,
        kernels=args.kernels,
        use_cache=not args.no_cache,
    )
    emit(args, predict_files(model, args.inputs), _predict_text)
    return 0


def _predict_text(result: dict) -> str:
    delegate = ", " + result["delegate"] if result["delegate"] else ""
    lines = [f"{result['model']} on {', '.join(result['inputs'])} ({result['backend']}{delegate})"]
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


def _bench(args) -> int:
    from edgert.runtime.bench import bench

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
            kernels=args.kernels,
            use_cache=not args.no_cache,
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
    lines = [f"{result['model']}: {rows[0]['runs']} runs after {rows[0]['warmup']} warm-up, "
             f"threads {rows[0]['threads'] or 'default'}, {rows[0]['kernels']} kernels"]
    lines.append(f"  {'backend':<24} {'min':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'fps':>9}")
    for r in rows:
        lat = r["latency_ms"]
        name = f"{r['backend']} {r['backend_version']}" + (f" +{r['delegate']}" if r["delegate"] else "")
        lines.append(
            f"  {name:<24} {lat['min']:>7.3f}ms {lat['p50']:>7.3f}ms {lat['p90']:>7.3f}ms {lat['p99']:>7.3f}ms {r['fps']:>9.1f}"
        )
    return "\n".join(lines)


# ---- cache -----------------------------------------------------------------------------


def _cache(args) -> int:
    from edgert.runtime.safe import cache_dir, clear_cache

    directory = cache_dir()
    before = len(list(directory.glob("*.json"))) if directory.is_dir() else 0
    removed = clear_cache() if args.action == "clear" else 0
    result = {"cache_dir": str(directory), "verdicts": before - removed, "removed": removed}
    emit(args, result, _cache_text)
    return 0


def _cache_text(result: dict) -> str:
    if result["removed"]:
        return f"forgot {result['removed']} remembered model check(s) in {result['cache_dir']}"
    return f"{result['verdicts']} remembered model check(s) in {result['cache_dir']}"
