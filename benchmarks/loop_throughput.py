#!/usr/bin/env python3
"""Loop throughput vs the raw backend, with the MLPerf Tiny VWW int8 model; prints one JSON object.

Baseline, measured in the same run: the backend's invoke-only rate (input set
once, ``interpreter.invoke()`` in a tight loop). Then the full loop
(``edgert.loop.Pipeline``: capture thread, decode, preprocess, queue, set input,
invoke, read outputs, postprocess, result) over

- an image folder (PNG files at the model's 96x96: decode, no resize), and
- a video written here with OpenCV (MJPG 160x120: decode + resize, like a camera),
  shrunk by Pillow as ``prepare_image`` does (the default) and, as
  ``video_cv2_shrink``, by ``cv2.resize(INTER_AREA)`` (``Pipeline(opencv_shrink=True)``:
  cheaper, not bit-equal to ``prepare_image``; see ``edgert/loop/resize.py``), and
- pre-decoded 96x96 frames from a .npy stack (``npy:``; no decode cost, so the
  loop is inference-bound on any machine: the loop machinery vs raw invoke).

When decoding a frame takes longer than invoking the model (a fast desktop
CPU: VWW invokes in well under 0.1 ms) the image/video loops are bound by
decode and ``bound_by`` says so; on a Raspberry Pi the model dominates and the
capture thread's decode overlaps it.

Targets: loop fps >= 0.9 x raw fps; per-frame loop overhead excluding decode
and invoke (preprocess + set input + outputs + postprocess + sinks + queue and
bookkeeping) <= 100 us. Each figure is the best of ``--repeats`` runs, because
the machine may be shared.

Usage: python benchmarks/loop_throughput.py [--frames 300] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("EDGERT_CONFORMANCE", ROOT.parent / "shared" / "conformance"))
MODEL = "visual_wake_words__vww_96_int8.tflite"
TARGET_RATIO = 0.9
TARGET_OVERHEAD_US = 100.0


def raw_fps(model, frames: int) -> tuple[float, float]:
    """Invoke-only frames per second and mean invoke microseconds."""
    spec = model.inputs[0]
    interp = model.interpreter
    interp.set_tensor(spec.index, np.zeros(spec.shape, spec.dtype))
    for _ in range(20):
        interp.invoke()
    start = time.perf_counter()
    for _ in range(frames):
        interp.invoke()
    elapsed = time.perf_counter() - start
    return frames / elapsed, elapsed / frames * 1e6


def scenes(corpus: Path) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(corpus / "inputs" / f"tflm__person_detection__{n}.bmp").convert("RGB")) for n in ("person", "no_person")]


def make_images(folder: Path, pictures: list[np.ndarray], frames: int) -> None:
    from PIL import Image

    for i in range(frames):
        shifted = np.clip(pictures[i % 2].astype(np.int16) + (i % 40) - 20, 0, 255).astype(np.uint8)
        Image.fromarray(shifted).save(folder / f"frame_{i:05d}.png")


def make_video(path: Path, pictures: list[np.ndarray], frames: int) -> bool:
    try:
        import cv2
    except ImportError:
        return False
    from PIL import Image

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(frames):
        big = np.asarray(Image.fromarray(pictures[i % 2]).resize((160, 120)))
        writer.write(np.ascontiguousarray(np.clip(big.astype(np.int16) + (i % 40) - 20, 0, 255).astype(np.uint8)[..., ::-1]))
    writer.release()
    return True


def loop_run(model, source: str, **options) -> dict:
    """One loop run; fps is steady state (first result to last), stages from the run summary."""
    from edgert.loop import Pipeline

    stamps: list[float] = []
    summary = Pipeline(model, source, [], on_result=lambda r: stamps.append(time.perf_counter()), **options).run()
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    st = summary.stages_ms
    busy = ("set_input", "invoke", "outputs", "postprocess", "sinks")
    per_frame_us = 1e6 / fps
    # What the loop thread spent outside the timed stages and outside waiting: queue hand-off, control flow.
    bookkeeping_us = max(0.0, per_frame_us - 1e3 * (st["wait"] + sum(st[k] for k in busy)))
    overhead_us = 1e3 * (st["preprocess"] + st["set_input"] + st["outputs"] + st["postprocess"] + st["sinks"]) + bookkeeping_us
    capture_us = 1e3 * (st["read"] + st["preprocess"])
    loop_thread_us = 1e3 * sum(st[k] for k in busy) + bookkeeping_us
    return {
        "frames": summary.frames,
        "fps": round(fps, 2),
        "latency_ms": summary.latency_ms,
        "stages_us": {k: round(v * 1e3, 2) for k, v in st.items()},
        "bookkeeping_us": round(bookkeeping_us, 2),
        "overhead_us": round(overhead_us, 2),
        "bound_by": "decode" if capture_us > loop_thread_us else "inference",
    }


def resize_us(model, pictures: list[np.ndarray], repeats: int = 300) -> dict[str, float]:
    """Cost of bringing a 160x120 camera frame to 96x96 (part of preprocess in the video scenarios).

    ``pillow``: the plan's own resize (default loop, ``prepare_image``); ``cv2_area``:
    the loop's opt-in OpenCV shrink. Both net of preparing an already 96x96 frame.
    """
    from PIL import Image

    from edgert.loop.resize import opencv_resizer
    from edgert.runtime.preprocess import image_preprocess_for

    plan = image_preprocess_for(model.inputs[0], model.metadata)
    big = np.ascontiguousarray(np.asarray(Image.fromarray(pictures[0]).resize((160, 120)))[..., ::-1])
    small = np.ascontiguousarray(pictures[0][..., ::-1])
    steps = {"small": lambda: plan(small, color="bgr"), "pillow": lambda: plan(big, color="bgr")}
    shrink = opencv_resizer(plan, shrink=True)  # None without OpenCV
    if shrink is not None:
        steps["cv2_area"] = lambda: plan(shrink(big), color="bgr")
    best_us: dict[str, float] = {}
    for _ in range(5):  # interleaved, best of 5: the machine may be shared
        for label, step in steps.items():
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            us = (time.perf_counter() - start) / repeats * 1e6
            best_us[label] = min(us, best_us.get(label, us))
    return {k: round(max(0.0, v - best_us["small"]), 2) for k, v in best_us.items() if k != "small"}


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["fps"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    model_path = CORPUS / "models" / MODEL
    if not model_path.is_file():
        print(json.dumps({"benchmark": "loop_throughput", "error": f"{model_path} not found (set EDGERT_CONFORMANCE)"}))
        return 2

    from edgert.runtime import load_model

    model = load_model(model_path, threads=args.threads)
    pictures = scenes(CORPUS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        make_images(folder, pictures, args.frames)
        video = Path(tmp) / "clip.avi"
        have_video = make_video(video, pictures, args.frames)
        stack = Path(tmp) / "frames.npy"
        np.save(stack, np.stack([pictures[i % 2] for i in range(args.frames)]))
        raw, images, clips, clips_cv2, decoded = [], [], [], [], []
        for _ in range(args.repeats):
            raw.append(raw_fps(model, args.frames))
            images.append(loop_run(model, f"images:{folder}"))
            if have_video:
                clips.append(loop_run(model, f"video:{video}"))
                clips_cv2.append(loop_run(model, f"video:{video}", opencv_shrink=True))
            decoded.append(loop_run(model, f"npy:{stack}"))
        raw.append(raw_fps(model, args.frames))
        resize = resize_us(model, pictures)
    raw_best, invoke_us = max(raw)
    result = {
        "benchmark": "loop_throughput",
        "model": MODEL,
        "backend": model.backend.name,
        "threads": args.threads,
        "frames": args.frames,
        "baseline": {"raw_invoke_fps": round(raw_best, 2), "invoke_us": round(invoke_us, 2)},
        "targets": {"loop_vs_raw": TARGET_RATIO, "overhead_us": TARGET_OVERHEAD_US},
    }
    for name, runs in (("images", images), ("video", clips), ("video_cv2_shrink", clips_cv2), ("predecoded", decoded)):
        if not runs:
            result[name] = {"skipped": "OpenCV is not installed"}
            continue
        b = best(runs)
        b["loop_vs_raw"] = round(b["fps"] / raw_best, 3)
        b["meets_ratio"] = b["loop_vs_raw"] >= TARGET_RATIO
        b["overhead_us_best"] = min(r["overhead_us"] for r in runs)
        b["meets_overhead"] = b["overhead_us_best"] <= TARGET_OVERHEAD_US
        result[name] = b
    for name, key in (("video", "pillow"), ("video_cv2_shrink", "cv2_area")):
        if key in resize and "fps" in result[name]:
            video_best = result[name]
            video_best["resize_us"] = resize[key]
            video_best["overhead_excl_resize_us"] = round(max(0.0, video_best["overhead_us_best"] - resize[key]), 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
