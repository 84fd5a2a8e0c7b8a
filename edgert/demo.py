"""``edgert demo``: the whole journey on real data, offline, in a few minutes on 2 cores.

1. Train (or reuse) a small CNN on scikit-learn's digits: 1,797 real scanned
   handwritten digits shipped inside scikit-learn, upscaled to 16×16.
2. Optimize it for four devices (Raspberry Pi, Android, Coral Edge TPU, a
   Cortex-M4 microcontroller) within a 1-point accuracy budget, sharing the
   trained variants between targets; check the MCU winner under the real
   TensorFlow Lite Micro interpreter.
3. Present held-out digits as a camera stream (a video file written with
   OpenCV) and run the offline loop (``video:`` source → interpreter →
   console) with the Raspberry Pi model, printing live predictions and fps.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import InputDataError
from edgert.progress import report
from edgert.units import format_bytes

__all__ = ["DEMO_TARGETS", "demo_space", "prepare_demo", "run_demo_loop", "run_demo", "demo_text", "table_text",
           "write_digit_video"]

log = logging.getLogger("edgert.demo")

#: One profile per device family the demo shows.
DEMO_TARGETS = ("raspberry-pi-4", "android-arm64", "coral-usb", "cortex-m4-256k")
#: The teacher's training run (changing it retrains a cached teacher).
TEACHER_EPOCHS = 40
_TEACHER_VERSION = 1
_SEED = 0
_TEST_FRACTION = 0.3
#: Held-out digits checked under TFLite Micro for the MCU winner.
_MICRO_SAMPLES = 200
#: Each 16×16 digit is shown as a 128×128 frame (a nearest-neighbour blow-up the loop scales back exactly).
_FRAME_SCALE = 8
#: A running accuracy tally every this many frames of the loop.
_TALLY_EVERY = 20


def demo_space():
    """The demo's search: one level of each technique, so four targets fit in a few minutes on 2 cores."""
    from edgert.optimize.search import SearchSpace

    return SearchSpace(sparsities=[0.5], filter_fractions=[0.5], students=[0.5], prune_students=True)



def _preprocessing(size: int) -> dict:
    """Metadata the winner carries so the loop feeds it exactly what training saw: pixel / 255, grayscale."""
    return {"input_size": [size, size], "layout": "NHWC", "color": "grayscale", "resize": "bilinear",
            "mean": 0.0, "std": 255.0}


def _teacher(out: Path, train, test, retrain: bool, progress) -> tuple[Any, dict]:
    """Load the teacher saved by an earlier run, or train and save it."""
    from edgert.optimize._keras import evaluate_keras, keras, parameter_count
    from edgert.optimize.models import DIGITS_SIZE, digits_teacher
    from edgert.optimize.pruning import fine_tune

    path, info_path = out / "teacher.keras", out / "teacher.json"
    want = {"version": _TEACHER_VERSION, "epochs": TEACHER_EPOCHS, "size": DIGITS_SIZE, "seed": _SEED,
            "train_samples": len(train), "held_out_samples": len(test)}
    if not retrain and path.is_file() and info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        if all(info.get(k) == v for k, v in want.items()):
            log.info("reusing the trained teacher in %s", path)
            return keras().models.load_model(path, compile=False), {**info, "reused": True}
    model = digits_teacher(DIGITS_SIZE, seed=_SEED)
    t0 = time.perf_counter()
    fine_tune(model, train.x, train.y, epochs=TEACHER_EPOCHS, progress=progress, label="train teacher", seed=_SEED)
    info = {**want, "accuracy": evaluate_keras(model, test.x, test.y), "parameters": parameter_count(model),
            "train_seconds": round(time.perf_counter() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    model.save(path)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return model, {**info, "reused": False}


def prepare_demo(output_dir: str | Path = "edgert-demo", *, targets=None, max_accuracy_drop: float = 1.0,
                 retrain: bool = False, progress=None) -> dict[str, Any]:
    """Train/reuse the teacher and optimize it for every demo target.

    Returns:
        ``{"output_dir", "teacher", "targets": [row per target], "timing_s"}``; each row has
        ``target, kind, chosen, technique, format, size_bytes, arena_bytes, accuracy, float_accuracy,
        accuracy_drop, host_latency_ms, target_latency_ms, size_ratio, model`` (+ ``tflm`` for MCUs).
    """
    from edgert.optimize.data import digits_dataset, split_dataset
    from edgert.optimize.models import DIGITS_SIZE
    from edgert.optimize.search import VariantCache, optimize
    from edgert.targets import load_target

    out = Path(output_dir)
    t_start = time.perf_counter()
    profiles = [load_target(t) for t in (targets or DEMO_TARGETS)]
    data = digits_dataset(DIGITS_SIZE)
    train, test = split_dataset(data, _TEST_FRACTION, _SEED)
    teacher, teacher_info = _teacher(out, train, test, retrain, progress)
    t_teacher = time.perf_counter() - t_start
    cache = VariantCache()
    rows = []
    for target in profiles:
        result = optimize(teacher, target, train, test_data=test, max_accuracy_drop=max_accuracy_drop,
                          output_dir=out / target.name, space=demo_space(), labels=data.labels,
                          preprocessing=_preprocessing(DIGITS_SIZE), cache=cache, progress=progress, seed=_SEED)
        rows.append(_row(result, target, test))
    return {
        "output_dir": str(out),
        "teacher": teacher_info,
        "targets": rows,
        "timing_s": {"teacher": round(t_teacher, 1), "optimize": round(time.perf_counter() - t_start - t_teacher, 1)},
    }


def _row(result, target, test) -> dict[str, Any]:
    c = result.best or result.closest
    base = result.baseline
    row = {
        "target": target.name, "kind": target.kind, "chosen": result.best is not None,
        "candidate": c.name if c else None, "technique": c.technique if c else None, "format": c.mode if c else None,
        "size_bytes": c.size_bytes if c else None, "arena_bytes": c.arena_bytes if c else None,
        "accuracy": c.accuracy if c else None, "float_accuracy": base["accuracy"],
        "accuracy_drop": c.accuracy_drop if c else None, "host_latency_ms": c.host_latency_ms if c else None,
        "float_host_latency_ms": base["host_latency_ms"], "target_latency_ms": c.target_latency_ms if c else None,
        "float_size_bytes": base["size_bytes"],
        "size_ratio": round(c.size_bytes / base["size_bytes"], 4) if c and c.size_bytes else None,
        "candidates": len(result.candidates),
        "model": str(result.output_dir / "best" / "model.tflite") if result.best else None,
    }
    from edgert.runtime.micro import micro_available

    if result.best is not None and target.runtime.interpreter == "tflm" and micro_available():
        from edgert.optimize.micro_eval import micro_top1

        tflm = micro_top1(result.best_tflite, test.x, test.y, limit=_MICRO_SAMPLES)
        row["tflm"] = {"samples": tflm["samples"], "top1": round(tflm["top1"], 4)}
    return row


def write_digit_video(path: str | Path, images: np.ndarray, *, size: int = 16, scale: int = _FRAME_SCALE,
                      fps: float = 30.0) -> Path:
    """Write 8×8 digits (values 0..16) as a grayscale-looking BGR video, one digit per frame.

    The digits go through the same upscale as training (:func:`edgert.optimize.data.digit_pixels`),
    then a nearest-neighbour blow-up by ``scale`` so frames look like a camera's.

    Raises:
        InputDataError: OpenCV could not open a writer for ``path``.
    """
    import cv2

    from edgert.optimize.data import digit_pixels

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pix = digit_pixels(images, size)
    side = size * scale
    # MJPG in .avi: every OpenCV build can write it (mp4v needs an encoder some builds lack).
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (side, side))
    if not writer.isOpened():
        raise InputDataError(f"{path}: OpenCV cannot write this video file", "use an .avi path")
    try:
        for p in pix:
            big = np.kron(p, np.ones((scale, scale), np.uint8))
            writer.write(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return path


def run_demo_loop(model_path: str | Path, video_path: str | Path, truth: np.ndarray,
                  live: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the offline loop (``video:`` source → model → console) and score predictions against ``truth``.

    Args:
        model_path: The .tflite to run (with labels in its metadata).
        video_path: The video written by :func:`write_digit_video`.
        truth: Label of each frame.
        live: Called with each live console line (None = quiet).

    Returns:
        The loop summary (``frames, dropped, fps, latency_ms``) plus ``correct`` and ``top1`` over the frames.
    """
    import io

    from edgert.loop import Pipeline, open_sink, open_source

    score = {"correct": 0, "scored": 0}

    def on_result(result) -> None:
        # Frames arrive in order from a finite video source, so result.frame indexes ``truth``.
        if result.classes and 0 <= result.frame < len(truth):
            score["scored"] += 1
            score["correct"] += int(result.classes[0].id == int(truth[result.frame]))
            if live is not None and score["scored"] % _TALLY_EVERY == 0:
                live(f"  -- {score['correct']}/{score['scored']} frames recognised so far")

    class _Lines(io.TextIOBase):
        def write(self, s: str) -> int:
            for line in s.splitlines():
                if line.strip() and live is not None:
                    live(line)
            return len(s)

    console = open_sink("console:?rate=0", stream=_Lines())
    source = open_source(f"video:{video_path}")
    summary = Pipeline(str(model_path), source, [console], on_result=on_result).run()
    d = summary.to_dict() if hasattr(summary, "to_dict") else dict(vars(summary))
    d.update(score)
    d["top1"] = round(score["correct"] / score["scored"], 4) if score["scored"] else None
    return d


def run_demo(output_dir: str | Path = "edgert-demo", *, targets=None, max_accuracy_drop: float = 1.0, frames: int = 60,
             retrain: bool = False, progress=None, live: Callable[[str], None] | None = None,
             on_table: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """The whole demo: :func:`prepare_demo`, then the loop over ``frames`` held-out digits.

    Args:
        on_table: Called with the per-target result before the loop starts (the CLI prints the table there).

    Returns:
        :func:`prepare_demo`'s dict plus ``loop`` (summary, live top-1, the model and video used).
    """
    from sklearn.datasets import load_digits

    from edgert.optimize.data import Dataset, split_dataset
    from edgert.optimize.models import DIGITS_SIZE

    t0 = time.perf_counter()
    result = prepare_demo(output_dir, targets=targets, max_accuracy_drop=max_accuracy_drop, retrain=retrain,
                          progress=progress)
    if on_table is not None:
        on_table(result)
    runnable = [r for r in result["targets"] if r["model"] and r["kind"] == "cpu"] or \
               [r for r in result["targets"] if r["model"] and r["format"] != "int8"] or \
               [r for r in result["targets"] if r["model"] and r["kind"] != "edgetpu"]
    if runnable:
        digits = load_digits()
        # The same split as training, applied to the raw 8×8 images, so the video shows held-out digits only.
        idx = np.arange(len(digits.target))
        _, held = split_dataset(Dataset(idx.reshape(-1, 1).astype(np.float32), digits.target.astype(np.int64)),
                                _TEST_FRACTION, _SEED)
        pick = held.x[:frames, 0].astype(np.int64)
        video = write_digit_video(Path(output_dir) / "held_out_digits.avi", digits.images[pick], size=DIGITS_SIZE)
        row = runnable[0]
        report(progress, 0, 1, "run loop")
        loop = run_demo_loop(row["model"], video, digits.target[pick], live=live)
        report(progress, 1, 1, "run loop")
        result["loop"] = {**loop, "model": row["model"], "target": row["target"], "video": str(video)}
    else:
        result["loop"] = None
    result["timing_s"]["total"] = round(time.perf_counter() - t0, 1)
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def table_text(result: dict) -> str:
    """The per-target table."""
    t = result["teacher"]
    lines = [
        f"teacher: digits CNN, {t.get('parameters', '?')} parameters, top-1 {_pct(t.get('accuracy'))} on "
        f"{t['held_out_samples']} held-out digits ({'reused' if t.get('reused') else 'trained'})",
        f"{'target':16} {'size':>10} {'arena':>10} {'top-1':>7} {'float':>7} {'drop':>6} {'host ms':>8}  technique chosen",
    ]
    for r in result["targets"]:
        size, arena = format_bytes(r["size_bytes"]), format_bytes(r["arena_bytes"])
        drop = "-" if r["accuracy_drop"] is None else f"{r['accuracy_drop']:+.2f}"
        host = "-" if r["host_latency_ms"] is None else f"{r['host_latency_ms']:.3f}"
        tech = (r["technique"] or "-") + ("" if r["chosen"] else "  (closest; FAILS the budget)")
        lines.append(f"{r['target']:16} {size:>10} {arena:>10} {_pct(r['accuracy']):>7} {_pct(r['float_accuracy']):>7} "
                     f"{drop:>6} {host:>8}  {tech}")
        if "tflm" in r:
            lines.append(f"{'':16} TFLite Micro ran it: top-1 {_pct(r['tflm']['top1'])} on {r['tflm']['samples']} "
                         f"held-out digits; file is {r['size_ratio']:.2f}× the float teacher's")
    lines.append(f"artifacts: {result['output_dir']}/<target>/{{candidates.json,pareto.png,best/}}")
    return "\n".join(lines)


def demo_text(result: dict) -> str:
    """Loop summary (the table was printed before the loop ran)."""
    loop = result.get("loop")
    if not loop:
        return "loop: no model runs on this host"
    lat = loop.get("latency_ms") or {}
    return (f"loop ({loop['target']} model over {loop['video']}): {loop.get('frames')} frames, "
            f"{loop.get('fps', 0):.1f} fps, p50 {lat.get('p50', 0):.2f} ms, "
            f"live top-1 {_pct(loop.get('top1'))}; total {result['timing_s']['total']:.0f} s")
