"""``edgert targets`` and ``edgert fit``."""

from __future__ import annotations

from edgert.commands import add_input_shape_option, positive_float
from edgert.commands.output import emit
from edgert.units import format_bytes

__all__ = ["register"]


def register(sub, add_common) -> None:
    """Add ``targets`` and ``fit`` to the ``edgert`` parser."""
    p = sub.add_parser("targets", help="list the target profiles")
    add_common(p)
    p.set_defaults(handler=_targets)

    p = sub.add_parser("fit", help="check whether a .tflite model fits a target (size, RAM, ops, latency, energy)")
    p.add_argument("model", help="path to a .tflite file, or a source model (.onnx, .pt2, .keras, SavedModel) with --calibration")
    p.add_argument("--target", "-t", required=True, help="profile name (see `edgert targets`) or path to a .toml")
    p.add_argument("--calibration", "-c", metavar="DATA",
                   help="source models: typical inputs; the model is converted for the target in memory, checked, then fitted")
    add_input_shape_option(p, "source models: ")
    p.add_argument("--rate", help="inferences per time for average power, e.g. 1/s, 5/s, 10/min, 0.2")
    p.add_argument("--battery-mah", type=positive_float, help="battery capacity in mAh (needs --rate)")
    p.add_argument("--battery-v", type=positive_float, default=3.7, help="battery voltage (default 3.7 V)")
    p.add_argument("--no-micro", action="store_true", help="do not load the model in TFLite Micro to measure the real arena")
    p.add_argument("--measure-on", choices=("emulated",),
                   help="also run the model on the target's emulated board (our firmware in QEMU): its arena "
                        "becomes arena_bytes and its instruction count is reported beside the latency estimate")
    add_common(p)
    p.set_defaults(handler=_fit)


def _targets(args) -> int:
    from edgert.targets import list_targets

    targets = [t.to_dict() for t in list_targets()]
    emit(args, {"targets": targets}, _targets_text)
    return 0


def _targets_text(result: dict) -> str:
    rows = [f"{'name':20} {'kind':8} {'RAM':>10} {'flash':>10} {'quant':8} {'I/O':14} description"]
    for t in result["targets"]:
        rows.append(
            f"{t['name']:20} {t['kind']:8} "
            f"{format_bytes(t['ram_bytes'], exact=True):>10} {format_bytes(t['flash_bytes'], exact=True):>10} "
            f"{t['quantization']:8} {t['input_dtype'] + '/' + t['output_dtype']:14} {t['description']}"
        )
    return "\n".join(rows)


def _fit(args) -> int:
    from edgert.commands.output import progress_bar
    from edgert.fit import check_fit, fit_markdown, parse_rate

    rate = parse_rate(args.rate) if args.rate is not None else None
    battery_mwh = None
    if args.battery_mah is not None:  # both positive: their argparse type checks it
        battery_mwh = args.battery_mah * args.battery_v
    if not str(args.model).lower().endswith(".tflite"):
        return _fit_source(args, rate)
    measured = _measure_on_emulated(args.model, args.target) if args.measure_on == "emulated" else None
    report = check_fit(
        args.model,
        args.target,
        rate_hz=rate,
        battery_mwh=battery_mwh,
        measure_micro=not args.no_micro,
        measured=measured,
        progress=None if args.json else progress_bar(),
    )
    emit(args, report.to_dict(), fit_markdown)
    return 0 if report.fits else 1


def _fit_source(args, rate) -> int:
    """``fit`` on a source model: convert it for the target in memory (with every check), report the fit."""
    from edgert.commands.output import progress_bar
    from edgert.convert import convert
    from edgert.errors import InputDataError
    from edgert.fit import fit_markdown

    if rate is not None or args.battery_mah is not None or args.measure_on:
        raise InputDataError(
            "--rate, --battery-mah and --measure-on need a .tflite",
            "convert first: edgert convert MODEL --target T --calibration DATA -o DIR, then fit DIR/model.tflite",
        )
    result = convert(args.model, target=args.target, calibration=args.calibration, input_shape=args.input_shape,
                     measure_micro=not args.no_micro, progress=None if args.json else progress_bar())
    keep = ("target", "fits", "checks", "arena_bytes", "micro_arena_bytes", "flash_bytes", "ram_bytes", "latency_ms",
            "energy_uj", "unsupported_ops", "edgetpu", "delegate", "macs", "verification")
    report = {k: result.report[k] for k in keep if k in result.report}
    report["converted"] = {"mode": result.report["converter"]["mode"], "source": result.report["source"]}

    def text(r: dict) -> str:
        lines = [fit_markdown(result.fit).rstrip()]
        lines += [f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}" for c in r.get("verification", [])]
        return "\n".join(lines)

    emit(args, report, text)
    return 0 if report["fits"] else 1


def _measure_on_emulated(model, target):
    """The target's emulated board (firmware_tools: QEMU + our TFLite Micro firmware) measures the model."""
    from edgert.fit import TargetMeasurement
    from firmware_tools.measure import measure_on_emulated

    got = measure_on_emulated(model, target)
    return TargetMeasurement(arena_bytes=got.arena_bytes, instructions=got.instructions, board=got.board)
