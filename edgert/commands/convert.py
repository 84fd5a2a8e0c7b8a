"""``edgert convert``: a Keras/SavedModel/ONNX/PyTorch (.pt2) model -> a .tflite for a target, with its report."""

from __future__ import annotations

import logging
import time

from edgert.commands import add_input_shape_option, float_list
from edgert.commands.output import emit, progress_bar
from edgert.errors import InputDataError
from edgert.model.metadata import TASKS

__all__ = ["register"]

log = logging.getLogger("edgert.convert")


def register(sub, add_common) -> None:
    """Add ``edgert convert``."""
    from edgert.convert.settings import MODES

    p = sub.add_parser(
        "convert",
        help="convert a Keras/SavedModel/ONNX/PyTorch model for a target and report whether it fits",
        description="Writes DIR/model.tflite, DIR/report.json, DIR/report.md "
        "(microcontroller targets also DIR/model_data.h and .cc). Exit 1 when the model does not fit the target.",
    )
    p.add_argument("model", help=".keras / .h5 / .onnx / .pt2 (torch.export) file or SavedModel directory")
    add_input_shape_option(p)
    p.add_argument("--target", "-t", required=True, help="target profile name (see `edgert targets`) or a .toml file")
    p.add_argument("--calibration", "-c", metavar="DATA", help="image folder, .npy or .npz of typical inputs")
    p.add_argument("--eval", metavar="DATA", dest="eval_data",
                   help="labeled folder (one subfolder per class) or .npz with x and y")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")
    p.add_argument("--mode", "-m", help=f"override the target's quantization: {', '.join(MODES)}")
    p.add_argument("--input-dtype", help="override the model input dtype (int8, uint8, int16, float32)")
    p.add_argument("--output-dtype", help="override the model output dtype")
    p.add_argument("--keep-float", metavar="LAYER", action="append", default=[],
                   help="keep this layer in float (CPU targets; repeatable)")
    p.add_argument("--task", choices=TASKS, help="task kind for the metadata")
    p.add_argument("--mean", type=float_list, help="pixel mean for image inputs: one value or one per channel (default 0)")
    p.add_argument("--std", type=float_list, help="pixel std for image inputs: one value or one per channel (default 255)")
    p.add_argument("--no-micro", action="store_true", help="skip measuring the arena in TFLite Micro")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="output directory")
    add_common(p)
    p.set_defaults(handler=_convert)


def _pixel_stat(values: list[float] | None, name: str):
    """One value or one per channel, as the converter takes them."""
    if values is None:
        return None
    if not values:
        raise InputDataError(f"--{name} is empty", "give one value or one per channel, e.g. 127.5 or 123.7,116.3,103.5")
    if name == "std" and any(v == 0 for v in values):
        raise InputDataError("--std must not be 0")
    return values[0] if len(values) == 1 else values


def _convert(args) -> int:
    from edgert.targets import load_target

    target = load_target(args.target)  # a mistyped target fails at once, before TensorFlow is imported
    from edgert.convert import convert

    t0 = time.perf_counter()
    result = convert(
        args.model,
        target=target,
        mode=args.mode,
        calibration=args.calibration,
        eval_data=args.eval_data,
        labels=args.labels,
        keep_float=args.keep_float,
        input_dtype=args.input_dtype,
        output_dtype=args.output_dtype,
        task=args.task,
        output_dir=args.output,
        progress=progress_bar(),
        mean=_pixel_stat(args.mean, "mean"),
        std=_pixel_stat(args.std, "std"),
        measure_micro=not args.no_micro,
        input_shape=args.input_shape,
    )
    log.info("converted in %.1f s", time.perf_counter() - t0)
    emit(args, result.report, _human)
    return 0 if result.fits else 1


def _human(report: dict) -> str:
    m = report["model"]
    conv = report["converter"]
    lines = [
        f"{report['files'].get('model', 'model')}: {conv['mode']} for {report['target']}, "
        f"{m['size_bytes']:,} bytes"
        + (f" ({m['size_ratio']:.2f}× float32), " if m.get("size_ratio") is not None else ", ")
        + f"{'fits' if report['fits'] else 'DOES NOT FIT'}",
    ]
    for c in report.get("checks", []):
        if not c.get("ok"):
            lines.append(f"  FAIL {c['name']}: {c.get('detail', '')}")
    acc = report.get("accuracy")
    if acc and acc.get("task") == "classification":
        lines.append(
            f"  top-1 float {acc['float_top1']:.2%} -> converted {acc['converted_top1']:.2%} "
            f"(drop {acc['drop_points']:.2f} points, agreement {acc['agreement']:.2%})"
        )
        worst = (acc.get("layers") or {}).get("layers") or []
        if worst:
            lines.append("  worst layers: "
                         + ", ".join(f"{r['layer']} ({r['snr_db']:.1f} dB)" for r in worst[:3] if r["snr_db"] is not None))
    elif acc:
        lines.append(f"  MSE float {acc['float_mse']:.4g} -> converted {acc['converted_mse']:.4g}")
    tpu = report.get("edgetpu_compiler")
    if tpu is not None and not tpu.get("available"):
        lines.append(f"  edgetpu_compiler not found; run: {tpu['command']}")
    for name in ("report_md", "c_header", "c_source"):
        if name in report["files"]:
            lines.append(f"  wrote {report['files'][name]}")
    return "\n".join(lines)
