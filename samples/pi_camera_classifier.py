#!/usr/bin/env python3
"""Raspberry Pi camera classifier: camera frames in, labels out, no network.

Uses the CSI camera through picamera2 when it is installed (Raspberry Pi OS),
else the first USB camera through OpenCV. Prints one line per result (at most
5 a second), appends every result to ``preds.jsonl`` and saves an annotated
snapshot whenever the top label changes.

A model (none is committed to this repository):

* the MLPerf Tiny person detector, from the conformance corpus::

      python samples/pi_camera_classifier.py ../shared/conformance/models/visual_wake_words__vww_96_int8.tflite

* or your own Keras classifier, converted for the Pi (embeds labels and
  preprocessing, so the loop needs no flags)::

      edgert convert my_model.keras --target raspberry-pi-4 --calibration photos/ \\
          --labels labels.txt -o pi_model/
      python samples/pi_camera_classifier.py pi_model/model.tflite

No camera at hand? ``--source video:clip.mp4`` or ``--source images:photos/``.
Stop with Ctrl-C: the loop ends cleanly and prints its summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys

from edgert.errors import EdgertError
from edgert.loop import Pipeline
from edgert.runtime import load_model


def default_source() -> str:
    """The CSI camera when picamera2 is importable, else USB camera 0."""
    if importlib.util.find_spec("picamera2") is not None:
        return "picamera2:0?width=640&height=480"
    return "camera:0?width=640&height=480&fps=15"


def read_labels(path: str) -> list[str]:
    """One class name per line."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help=".tflite image classifier")
    parser.add_argument("--source", default=None, help="override the camera (e.g. video:clip.mp4)")
    parser.add_argument("--out", default="pi-camera-out", help="folder for preds.jsonl and snapshots/")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--labels", default=None, help="class names, one per line (models without edgert metadata)")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        pipeline = Pipeline(
            load_model(args.model, threads=2),
            args.source or default_source(),
            ["console?rate=5", f"jsonl:{args.out}/preds.jsonl", f"snapshots:{args.out}/snapshots"],
            top_k=args.top_k,
            labels=read_labels(args.labels) if args.labels else None,
            max_frames=args.max_frames,
        )
    except EdgertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.stop())
    summary = pipeline.run()
    print(summary.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
