"""``edgert optimize`` (search techniques to an accuracy budget) and ``edgert demo`` (the embedded default)."""

from __future__ import annotations

import sys

from edgert.commands import (
    add_input_shape_option,
    choice_list,
    float_list,
    non_negative_float,
    open_fraction,
    positive_float,
    positive_int,
    unit_fraction,
)
from edgert.commands.output import emit, progress_bar
from edgert.targets.base import ALL_FORMATS
from edgert.units import format_bytes

__all__ = ["register"]


def register(sub, add_common) -> None:
    """Add ``optimize`` and ``demo``."""
    p = sub.add_parser(
        "optimize",
        help="search pruning/distillation/quantization for the smallest model within an accuracy budget",
        description="Try formats × pruning levels × distilled students, measure each for real on held-out data, "
        "and keep the smallest (or fastest) one that fits the target and loses at most the budget.",
    )
    p.add_argument("model", help="trained classifier: .keras, .h5, SavedModel directory, or .onnx / .pt2 "
                   "(post-training formats only: pruning, distillation and QAT need Keras)")
    add_input_shape_option(p)
    p.add_argument("--target", "-t", required=True, help="target profile name or .toml path (see `edgert targets`)")
    p.add_argument("--data", "-d", required=True,
                   help=".npz with model-ready x and integer labels y, or a folder of class sub-folders of images")
    p.add_argument("--max-accuracy-drop", type=non_negative_float, required=True, metavar="POINTS",
                   help="allowed top-1 loss against the float model, in percentage points")
    p.add_argument("--output", "-o", required=True, help="output directory (candidates.json, pareto.png, best/)")
    p.add_argument("--sparsity", type=float_list, default=None, metavar="LIST",
                   help="magnitude-pruning sparsities to try, e.g. 0.5 (default: search 0.5,0.75; 'none' = off)")
    p.add_argument("--filters", type=float_list, default=None, metavar="LIST",
                   help="structured pruning: fractions of filters to remove, e.g. 0.5 (default: search 0.25,0.5,0.75)")
    p.add_argument("--students", type=float_list, default=None, metavar="LIST",
                   help="width multipliers of distilled students (default: 0.5; 'none' = no distillation)")
    p.add_argument("--temperature", type=positive_float, default=2.0, help="distillation softmax temperature (default 2)")
    p.add_argument("--alpha", type=unit_fraction, default=0.5,
                   help="distillation weight of the hard labels vs the teacher's soft targets (default 0.5)")
    p.add_argument("--formats", type=choice_list(ALL_FORMATS), default=None, metavar="LIST",
                   help="formats to consider: float16,dynamic,int8,int16x8 (default: all the target can run)")
    p.add_argument("--no-qat", action="store_true", help="do not try quantization-aware fine-tuning")
    p.add_argument("--prefer", choices=("auto", "size", "latency"), default="auto",
                   help="among passing candidates, pick the smallest file or the lowest estimated latency on the "
                   "target (auto: size on MCUs/Edge TPU, latency on CPUs/GPUs)")
    p.add_argument("--test-fraction", type=open_fraction, default=0.3,
                   help="share of the data held out for accuracy (default 0.3)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="fine-tuning batch size (default 32)")
    add_common(p)
    p.set_defaults(handler=_optimize)

    d = sub.add_parser(
        "demo",
        help="the embedded default: train on real handwritten digits, optimize for four devices, run the loop",
        description="Train a small CNN on scikit-learn's digits, optimize it for a Raspberry Pi, an Android phone, "
        "a Coral Edge TPU and a Cortex-M4 microcontroller, print one table, then run the offline loop over "
        "held-out digits presented as a camera stream. No network needed.",
    )
    d.add_argument("--output", "-o", default="edgert-demo", help="artifact directory (default ./edgert-demo)")
    d.add_argument("--targets", default=None, metavar="LIST",
                   help="comma-separated target profiles (default: the four demo devices)")
    d.add_argument("--max-accuracy-drop", type=non_negative_float, default=1.0, metavar="POINTS",
                   help="accuracy budget (default 1.0)")
    d.add_argument("--frames", type=positive_int, default=60,
                   help="held-out digits shown to the loop as video frames (default 60)")
    d.add_argument("--retrain", action="store_true", help="train the teacher again even if edgert-demo/ has one")
    add_common(d)
    d.set_defaults(handler=_demo)


def _space(args):
    from edgert.optimize.search import SearchSpace

    space = SearchSpace(qat=not args.no_qat, batch_size=args.batch_size, temperature=args.temperature, alpha=args.alpha)
    if args.sparsity is not None:
        space.sparsities = args.sparsity
    if args.filters is not None:
        space.filter_fractions = args.filters
    if args.students is not None:
        space.students = args.students
    if args.formats:
        space.modes = args.formats
    # --formats, --temperature, --alpha, --batch-size and --test-fraction are checked by their argparse types.
    return space


def _optimize(args) -> int:
    from edgert.targets import load_target

    target = load_target(args.target)  # a mistyped target fails at once, before TensorFlow is imported
    from edgert.convert import stdout_to_stderr
    from edgert.optimize.foreign import foreign_route, refuse_requested
    from edgert.optimize.search import optimize

    space = _space(args)
    route = foreign_route(args.model)
    if route is not None:
        # Asked for by name, a Keras-only technique is refused; the defaults are listed as skipped candidates.
        refuse_requested(route, {"student": args.students, "structured": args.filters, "magnitude": args.sparsity})
    with stdout_to_stderr():  # TensorFlow prints on fd 1; --json promises stdout holds one JSON object
        result = optimize(args.model, target, args.data, max_accuracy_drop=args.max_accuracy_drop,
                          output_dir=args.output, space=space, prefer=args.prefer,
                          test_fraction=args.test_fraction, progress=progress_bar(), input_shape=args.input_shape)
    emit(args, result.to_dict(), _optimize_text)
    if result.best is None:
        closest = result.closest
        sys.stderr.write(
            f"edgert optimize: no candidate fits {result.target} within {result.budget:g} points"
            + (f"; closest: {closest.name} ({closest.reason})" if closest else "")
            + f" — see {result.output_dir}/candidates.json and pareto.png\n"
        )
        return 1
    return 0


def _optimize_text(r: dict) -> str:
    base = r["baseline"]
    lines = [
        f"float teacher: top-1 {100 * base['accuracy']:.2f}%, {format_bytes(base['size_bytes'])}, "
        f"host {base['host_latency_ms']:.3f} ms; budget −{r['budget_points']:g} points; target {r['target']}",
        f"{'candidate':34} {'status':8} {'size':>10} {'arena':>10} {'est ms':>8} {'host ms':>8} {'top-1':>7} {'drop':>6}",
    ]
    for c in r["candidates"]:
        if c["status"] == "skipped":
            lines.append(f"{c['name']:34} {'skipped':8} {c['reason']}")
            continue
        mark = "*" if c["chosen"] else " "
        est = "-" if c["target_latency_ms"] is None else f"{c['target_latency_ms']:.3f}"
        acc = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.2f}"
        drop = "-" if c["accuracy_drop"] is None else f"{c['accuracy_drop']:+.2f}"
        host = "-" if c["host_latency_ms"] is None else f"{c['host_latency_ms']:.3f}"
        lines.append(f"{c['name'] + mark:34} {c['status']:8} "
                     f"{format_bytes(c['size_bytes']):>10} {format_bytes(c['arena_bytes']):>10} "
                     f"{est:>8} {host:>8} {acc:>7} {drop:>6}")
    if r["chosen"]:
        lines.append(f"chosen: {r['chosen']} → {r['output_dir']}/best/")
    else:
        lines.append(f"no candidate meets the budget; closest: {r['closest']}")
    return "\n".join(lines)


def _demo(args) -> int:
    from edgert.convert import stdout_to_stderr
    from edgert.demo import demo_text, run_demo, table_text

    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    # Training and conversion run with fd 1 sent to stderr (TensorFlow prints there); the table and the
    # live loop lines go to the real stdout through a duplicate taken first. With --json they go to stderr.
    out = _Out(sys.stderr if args.json else sys.stdout)
    with stdout_to_stderr():
        result = run_demo(args.output, targets=targets, max_accuracy_drop=args.max_accuracy_drop, frames=args.frames,
                          retrain=args.retrain, progress=progress_bar(), live=out,
                          on_table=lambda r: out(table_text(r)))
    emit(args, result, demo_text)
    return 0 if all(row["chosen"] for row in result["targets"]) else 1


class _Out:
    """Writes lines to a stream's file descriptor as it was when created (survives a later fd 1 redirect)."""

    def __init__(self, stream) -> None:
        import os

        stream.flush()
        self._fd = os.dup(stream.fileno())

    def __call__(self, text: str) -> None:
        import os

        os.write(self._fd, (text.rstrip("\n") + "\n").encode())
