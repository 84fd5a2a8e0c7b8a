#!/usr/bin/env python3
"""Offline camera demo: make a short clip, run the loop on it, look at the annotated frames.

Everything is built here and nothing touches the network: the script writes a
video with OpenCV (two real 96x96 test pictures from TensorFlow Lite Micro's
person-detection example, panned and brightened over time, found in the
conformance corpus), then runs the person detector over it twice:

1. as a *video* (finite: every frame predicted once, in order), writing
   ``demo-out/preds.csv`` and annotated ``demo-out/snapshots/`` on every change;
2. as a *camera* (``camera:`` opens the file through the same VideoCapture as
   ``/dev/video0``; live: old frames are dropped, and when the "camera" runs dry
   the watchdog reopens it), for 150 frames.

Run::

    python samples/offline_camera_demo.py            # uses ../shared/conformance
    python samples/offline_camera_demo.py --corpus /path/to/conformance

Needs OpenCV (``pip install opencv-python-headless``). The model is
``visual_wake_words__vww_96_int8.tflite`` from the corpus; use your own with
``--model`` (e.g. the output of ``edgert convert ... --target raspberry-pi-4``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np


def make_clip(path: Path, pictures: list[np.ndarray], frames: int = 60, size: tuple[int, int] = (160, 120)) -> None:
    """A clip that alternates scenes every 15 frames, panning across each picture."""
    import cv2
    from PIL import Image

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, size)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    for i in range(frames):
        scene = pictures[(i // 15) % len(pictures)]
        big = np.asarray(Image.fromarray(scene).resize((width + 30, height + 30)))
        shift = i % 30
        frame = big[shift : shift + height, shift : shift + width]
        frame = np.clip(frame.astype(np.int16) + (i % 15) * 2, 0, 255).astype(np.uint8)
        writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
    writer.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "conformance"))
    parser.add_argument("--model", default=None, help="image classifier .tflite (default: the corpus VWW int8 model)")
    parser.add_argument("--out", default="demo-out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)

    from PIL import Image

    from edgert.errors import EdgertError
    from edgert.loop import Pipeline
    from edgert.runtime import load_model

    corpus = Path(args.corpus)
    model_path = Path(args.model) if args.model else corpus / "models" / "visual_wake_words__vww_96_int8.tflite"
    pictures = []
    for name in ("person", "no_person"):
        bmp = corpus / "inputs" / f"tflm__person_detection__{name}.bmp"
        if not bmp.is_file():
            print(f"error: {bmp} not found (point --corpus at the conformance corpus)", file=sys.stderr)
            return 2
        pictures.append(np.asarray(Image.open(bmp).convert("RGB")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "clip.avi"
    make_clip(clip, pictures)
    try:
        model = load_model(model_path)
        labels = ["no person", "person"]
        # The corpus model carries no metadata, so the class names are given here.
        sinks = [f"csv:{out}/preds.csv", f"snapshots:{out}/snapshots", "console?rate=4"]
        as_video = Pipeline(model, f"video:{clip}", sinks, labels=labels)
        print("video :", as_video.run().text())
        as_camera = Pipeline(model, f"camera:{clip}", [], max_frames=150, retry_delays=(0.05, 0.2))
        print("camera:", as_camera.run().text())
    except EdgertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"annotated frames in {out}/snapshots, results in {out}/preds.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
