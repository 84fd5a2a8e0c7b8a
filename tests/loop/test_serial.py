"""A serial sensor on a real pseudo-terminal, read through pyserial, scored by the real ad01 autoencoder."""

from __future__ import annotations

import os
import pty
import re
import threading
import time

import numpy as np
import pytest

from edgert.loop import Pipeline
from tests.loop.conftest import csv_line, start_writer

pytestmark = pytest.mark.runtime

LINES = 40
WINDOWS = LINES - 5 + 1  # 5 log-mel frames per window, sliding one frame (128 values)


def _expected_score(model, frames: np.ndarray, window: int) -> float:
    x = frames[window : window + 5].reshape(1, 640)
    out = model.predict(x)[0]
    return float(np.mean((out.reshape(-1) - x.reshape(-1)) ** 2))


def test_anomaly_scores_from_csv_lines_with_malformed_lines_skipped(ad01_model, ad01_frames, pty_pair):
    results = []

    def on_result(result):
        results.append(result)
        if result.name == f"window {WINDOWS - 1}":
            pipeline.stop()

    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?baud=115200&format=csv&window=640&hop=128",
                        threshold=20.0, on_result=on_result)

    def sensor():
        for i, row in enumerate(ad01_frames[:LINES]):
            pty_pair.write(csv_line(row))
            if i in (3, 17, 30):  # a board printing debug output / a torn line
                pty_pair.write(b"DEBUG: adc overrun\n" if i != 17 else b"0.1,0.2,0.3\n")

    start_writer(sensor)
    summary = pipeline.run()
    assert summary.stopped_by == "stop"
    assert summary.malformed == 3
    assert summary.frames + summary.dropped == WINDOWS
    assert summary.task == "anomaly"
    for r in results:
        window = int(r.name.split()[1])
        assert r.anomaly.score == pytest.approx(_expected_score(ad01_model, ad01_frames, window), rel=1e-5)
        assert r.anomaly.threshold == 20.0 and r.anomaly.is_anomaly == (r.anomaly.score > 20.0)
    # The normal ToyCar clip scores low next to a scrambled one (sanity of the real model).
    scrambled = np.random.default_rng(0).permutation(ad01_frames[:5].reshape(-1)).reshape(1, 640)
    out = ad01_model.predict(scrambled)[0]
    assert np.mean((out - scrambled) ** 2) > max(r.anomaly.score for r in results)


def test_sensor_that_disconnects_is_reopened(ad01_model, ad01_frames, tmp_path):
    # Like a udev /dev/serial/by-id link: the name stays, the device behind it comes back.
    link = tmp_path / "ttySENSOR"
    first = pty.openpty()
    os.symlink(os.ttyname(first[1]), link)
    results = []
    reconnected = threading.Event()

    def on_result(result):
        results.append(result)
        if reconnected.is_set() and len(results) >= 4:
            pipeline.stop()

    pipeline = Pipeline(ad01_model, f"serial:{link}?hop=640", retry_delays=(0.02,), on_result=on_result)

    def sensor():
        for row in ad01_frames[:10]:  # two windows, then the cable is pulled
            os.write(first[0], csv_line(row))
        while len(results) < 2:
            time.sleep(0.01)
        os.close(first[0])
        os.close(first[1])
        second = pty.openpty()
        tmp = tmp_path / "ttySENSOR.new"
        os.symlink(os.ttyname(second[1]), tmp)
        os.replace(tmp, link)
        while pipeline.source.opened < 2:
            time.sleep(0.01)
        reconnected.set()
        os.write(second[0], b"0.5,0.5\n")  # torn first line after replug: dropped, not counted
        for row in ad01_frames[10:20]:
            os.write(second[0], csv_line(row))
        while not pipeline.stopping:
            time.sleep(0.01)
        os.close(second[0])
        os.close(second[1])

    writer = start_writer(sensor)
    summary = pipeline.run()
    writer.join(5)
    assert summary.reopens >= 1
    assert summary.frames == 4 and summary.malformed == 0
    assert [r.anomaly.score for r in results] == pytest.approx(
        [_expected_score(ad01_model, ad01_frames, w) for w in (0, 5, 10, 15)], rel=1e-5
    )


def test_binary_float32_stream(ad01_model, ad01_frames, pty_pair):
    results = []

    def on_result(result):
        results.append(result)
        if len(results) == 3:
            pipeline.stop()

    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?format=binary&dtype=float32", on_result=on_result)
    raw = ad01_frames[:15].astype("<f4").tobytes()
    start_writer(lambda: [pty_pair.write(raw[i : i + 1000]) for i in range(0, len(raw), 1000)])
    summary = pipeline.run()
    assert summary.frames == 3 and summary.malformed == 0
    expected = [_expected_score(ad01_model, ad01_frames, w) for w in (0, 5, 10)]
    assert [r.anomaly.score for r in results] == pytest.approx(expected, rel=1e-5)


def test_serial_anomaly_sample_runs_and_flags_the_noisy_stretch():
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.loop.conftest import AD01_INPUT, AD01_INT8

    proc = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "serial_anomaly_detector.py"), str(AD01_INT8), "--simulate", str(AD01_INPUT),
         "--threshold", "30"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    flagged = [line for line in proc.stdout.splitlines() if "ANOMALY" in line]
    normal = [line for line in proc.stdout.splitlines() if line.endswith("ms)") and " ok " in line]
    # The sample scrambles 10 frames in the middle of a normal recording: only windows touching them are flagged.
    assert 0 < len(flagged) <= 14 and len(normal) > 150


def _stop_when(pipeline, condition, timeout: float = 30.0) -> threading.Timer:
    """Stop ``pipeline`` once ``condition()`` holds, at the latest after ``timeout`` seconds (a safety deadline only)."""
    def watch():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        pipeline.stop()

    return start_writer(watch)


def test_port_opened_while_the_sensor_is_mid_line_still_gives_every_window(ad01_model, ad01_frames, pty_pair):
    results = []
    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?window=640&hop=128", on_result=results.append)
    # The board was already printing when the port opened: the first bytes are the tail of a line (~30 values).
    torn = csv_line(ad01_frames[199])[-300:]
    start_writer(lambda: [pty_pair.write(data) for data in [torn] + [csv_line(row) for row in ad01_frames[:20]]])
    _stop_when(pipeline, lambda: len(results) >= 6)
    summary = pipeline.run()
    assert summary.malformed == 1  # only the torn line
    assert summary.frames >= 6
    for r in results:
        window = int(r.name.split()[1])
        assert r.anomaly.score == pytest.approx(_expected_score(ad01_model, ad01_frames, window), rel=1e-5)


@pytest.mark.parametrize("options, line, why", [
    ("columns=128", b"0.5," * 119 + b"0.5\n",
     "all 12 lines were malformed: lines have 120 values, not columns=128; set columns=120 or check baud= and format="),
    ("baud=9600", b"\xf0\x8c\x11\xe0\x8c\x8c\n",  # what a 115200 baud board looks like at 9600
     "all 12 lines were malformed: most are not numbers; "
     "check baud= (a wrong rate garbles text) and format= (binary for raw samples)"),
], ids=["wrong-columns", "wrong-baud"])
def test_a_run_where_every_line_is_malformed_says_why_once(options, line, why, ad01_model, pty_pair, caplog):
    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?{options}")
    start_writer(lambda: pty_pair.write(line * 12))
    _stop_when(pipeline, lambda: pipeline.source.malformed >= 12)
    summary = pipeline.run()
    assert summary.frames == 0 and summary.malformed == 12
    hints = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert hints == [f"serial {pty_pair.name} ({options}): {why}"]


def test_a_sensor_that_only_sends_garbage_is_reported_while_the_loop_runs(ad01_model, pty_pair, caplog):
    # A service with a wrong baud= must say so in the journal while it runs, not only when stopped.
    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?baud=9600")
    start_writer(lambda: pty_pair.write(b"\xf0\x8c\x11\xe0\x8c\x8c\n" * 25))

    def hints():
        return [r.getMessage() for r in caplog.records if "lines were malformed" in r.getMessage()]

    said_while_running = []

    def said() -> bool:
        if hints():
            said_while_running.append(True)
        return bool(said_while_running)

    _stop_when(pipeline, said, timeout=20)  # stops as soon as the loop has said it (or at the deadline)
    summary = pipeline.run()
    assert said_while_running and summary.frames == 0 and summary.stopped_by == "stop"
    said = re.search(r"all (\d+) lines were malformed: most are not numbers; check baud=", hints()[0])
    assert said and 20 <= int(said.group(1)) <= 25
