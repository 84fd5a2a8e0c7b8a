#!/usr/bin/env python3
"""Serial sensor anomaly detector: a board streams readings, the Pi scores them, alerts go back.

The sensor board prints one reading per line (comma-separated numbers) on a
serial port. The loop assembles sliding windows the size of the model input,
scores each window with an autoencoder (reconstruction error) and writes
``FRAME,SCORE,FLAG`` lines back on a second port (or the console).

The model: the MLPerf Tiny ToyCar autoencoder from the conformance corpus
(``anomaly_detection__ad01_int8.tflite``; 5 log-mel frames of 128 bins = 640
values per window, sliding one frame = 128 values)::

    python samples/serial_anomaly_detector.py ../shared/conformance/models/anomaly_detection__ad01_int8.tflite \\
        --port /dev/ttyUSB0 --baud 115200 --threshold 15

No board at hand? ``--simulate FILE.bin`` makes a pseudo-terminal and a thread
that plays a real recording (float32 log-mel frames, e.g. the corpus's
``anomaly_detection__normal_id_01_00000000_hist_librosa.bin``) into it as CSV
lines, with a burst of noise in the middle so you see the score jump::

    python samples/serial_anomaly_detector.py ../shared/conformance/models/anomaly_detection__ad01_int8.tflite \\
        --simulate ../shared/conformance/inputs/anomaly_detection__normal_id_01_00000000_hist_librosa.bin
"""

from __future__ import annotations

import argparse
import logging
import os
import pty
import signal
import sys
import threading
import time

import numpy as np

from edgert.errors import EdgertError
from edgert.loop import Pipeline
from edgert.runtime import load_model

BINS = 128  # values per sensor line (one log-mel frame)


def play_recording(path: str, master_fd: int, stop: threading.Event, rate_hz: float = 200.0) -> None:
    """Write a recording as CSV lines into a pty, like a board would (with a noisy stretch)."""
    frames = np.fromfile(path, "<f4").reshape(-1, BINS)
    rng = np.random.default_rng(0)
    for i, row in enumerate(frames):
        if stop.is_set():
            return
        if len(frames) // 2 <= i < len(frames) // 2 + 10:
            row = rng.permutation(row) + rng.normal(0, 5, BINS).astype(np.float32)  # "a bearing starts to fail"
        os.write(master_fd, (",".join(f"{v:.4f}" for v in row) + "\n").encode())
        time.sleep(1.0 / rate_hz)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="autoencoder .tflite (output shape == input shape)")
    parser.add_argument("--port", help="sensor port (any pyserial URL)")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--hop", type=int, default=BINS, help="values between windows (one sensor line = 128)")
    parser.add_argument("--threshold", type=float, default=15.0, help="reconstruction MSE above which a window is anomalous")
    parser.add_argument("--alerts", default="console?rate=0", help="sink for results, e.g. serial:/dev/ttyACM0")
    parser.add_argument("--simulate", metavar="FILE.bin", help="play a float32 log-mel recording through a pseudo-terminal")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    if not args.port and not args.simulate:
        parser.error("give --port or --simulate")
    stop = threading.Event()
    port = args.port
    if args.simulate:
        master, slave = pty.openpty()
        port = os.ttyname(slave)
    try:
        pipeline = Pipeline(
            load_model(args.model),
            f"serial:{port}?baud={args.baud}&format=csv&hop={args.hop}",
            [args.alerts],
            task="anomaly",
            threshold=args.threshold,
        )
    except EdgertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.simulate:
        def play() -> None:
            play_recording(args.simulate, master, stop)
            time.sleep(0.5)
            pipeline.stop()

        threading.Thread(target=play, daemon=True).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.stop())
    summary = pipeline.run()
    stop.set()
    print(summary.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
