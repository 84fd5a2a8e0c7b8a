"""``edgert run``: the summary on exit and on SIGTERM, and one-line errors with exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from edgert.cli import main
from tests.helpers import user_error_line
from tests.loop.conftest import AD01_INT8, VWW_INT8, csv_line, start_writer

pytestmark = pytest.mark.runtime


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_a_running_loop_cleanly_with_the_summary(signum, ad01_model, ad01_frames, pty_pair, tmp_path):
    out = tmp_path / "preds.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgert", "run", str(AD01_INT8), "--source", f"serial:{pty_pair.name}?hop=640",
         "--sink", f"jsonl:{out}", "--sink", "console", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Wait (safety deadline only) until the loop runs, then feed it three windows.
        deadline = time.monotonic() + 60
        early = []
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
            early.append(line)
            if "running" in line:
                break
        assert proc.poll() is None, "".join(early)
        # A writer thread: the pty buffer is small and must never block the test itself.
        start_writer(lambda: [pty_pair.write(csv_line(row)) for row in ad01_frames[:15]])
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)  # exactly one JSON object: console lines went to stderr
    assert summary["frames"] == 3 and summary["stopped_by"] == "stop"
    assert set(summary) >= {"frames", "dropped", "fps", "latency_ms"}
    assert set(summary["latency_ms"]) == {"p50", "p99"}
    assert len(out.read_text().splitlines()) == 3
    assert "anomaly score" in stderr


def test_finite_run_prints_the_summary(vww_model, scene_images, tmp_path, capsys):
    from PIL import Image

    for i, rgb in enumerate(scene_images):
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    rc = main(["run", str(VWW_INT8), "--source", f"images:{tmp_path}", "--sink", f"csv:{tmp_path / 'o.csv'}",
               "--json", "--top-k", "2"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 2 and summary["dropped"] == 0 and summary["stopped_by"] == "end"
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 3


def test_a_sink_that_lost_results_fails_the_run(scene_images, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(scene_images[0]).save(tmp_path / "a.png")
    rc = main(["run", str(VWW_INT8), "--source", f"images:{tmp_path}", "--sink", "jsonl:/dev/full", "--json"])
    assert rc == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 1 and summary["sink_errors"]["jsonl:/dev/full"]["count"] == 1


@pytest.mark.parametrize(
    "model,source,message",
    [
        (VWW_INT8, "serial:/dev/ttyEDGERT_MISSING", "could not be opened"),
        (VWW_INT8, "video:/nonexistent/clip.mp4", "does not exist"),
        (VWW_INT8, "rtsp://camera.local/stream", "unknown source"),
        (VWW_INT8, "images:/nonexistent-folder", "does not exist"),
        (AD01_INT8, "serial:{pty}?window=100", "window=100"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(model, source, message, capsys, pty_pair):
    rc = main(["run", str(model), "--source", source.format(pty=pty_pair.name)])
    assert rc == 2
    assert message in user_error_line(capsys, alone=False)


def test_audio_model_on_pictures_exits_2(scene_images, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(scene_images[0]).save(tmp_path / "a.png")
    rc = main(["run", str(AD01_INT8), "--source", f"images:{tmp_path}"])
    assert rc == 2
    assert "is not an image" in user_error_line(capsys, alone=False)


def test_unwritable_sink_exits_2(scene_images, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc = main(["run", str(VWW_INT8), "--source", f"images:{tmp_path}", "--sink", f"jsonl:{tmp_path / 'file' / 'x.jsonl'}"])
    assert rc == 2
    assert "cannot write" in user_error_line(capsys, alone=False)


def test_stdin_pipe_through_the_command(ad01_frames):
    data = b"".join(csv_line(row) for row in ad01_frames[:10])
    proc = subprocess.run([sys.executable, "-m", "edgert", "run", str(AD01_INT8), "--source", "stdin?hop=640", "--json",
                           "--threshold", "1e9"],
                          input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 2 and summary["stopped_by"] == "end" and summary["task"] == "anomaly"


def test_help_lists_every_source_and_sink_with_each_of_its_options():
    from edgert.commands.loop import _EPILOG
    from edgert.loop.sinks import _REGISTRY as SINKS
    from edgert.loop.sources import _REGISTRY as SOURCES

    lines = _EPILOG.splitlines()
    for scheme, cls in [*SOURCES.items(), *SINKS.items()]:
        if scheme.startswith("test-"):  # registered by other tests
            continue
        mentions = [line for line in lines if scheme in line]
        assert mentions, f"{scheme} is not in edgert run --help"
        for option in cls.options:
            assert any(f"{option}=" in line for line in mentions), f"{scheme}?{option}= is not in edgert run --help"
