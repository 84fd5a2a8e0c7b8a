"""edgert predict / bench: the --json contract and exit codes (in-process, the real CLI entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgert.cli import main
from edgert.runtime import dequantize, load_model

pytestmark = pytest.mark.runtime


def _run_json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_predict_json_matches_the_runtime(conformance_dir, tmp_path, capsys):
    path = conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite"
    x = np.random.default_rng(5).integers(-128, 127, size=(1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = _run_json(capsys, ["predict", str(path), str(tmp_path / "x.npy"), "--json", "--threads", "1"])
    assert code == 0
    assert out["backend"] and out["delegate"] is None and len(out["outputs"]) == 1
    entry = out["outputs"][0]
    assert set(entry) >= {"name", "dtype", "shape", "values", "raw"}
    model = load_model(path)
    raw = model.predict(x, dequantize_output=False)[0]
    assert entry["dtype"] == "int8" and entry["shape"] == [1, 12]
    assert np.array_equal(np.array(entry["raw"], np.int8), raw)
    assert np.array_equal(np.array(entry["values"], np.float32), dequantize(raw, model.outputs[0]))
    top = out["top"]  # a 12-way classifier: best classes, highest first
    assert top[0]["index"] == int(np.argmax(raw)) and top[0]["score"] >= top[-1]["score"]


def test_predict_float_model_has_no_raw(conformance_dir, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([[1.5]], np.float32))
    code, out, _ = _run_json(
        capsys, ["predict", str(conformance_dir / "models" / "tflm__hello_world_float.tflite"), str(tmp_path / "x.npy"), "--json"]
    )
    assert code == 0 and "raw" not in out["outputs"][0] and "top" not in out
    assert out["outputs"][0]["values"][0][0] == pytest.approx(np.sin(1.5), abs=0.1)


def test_predict_image_human_output(conformance_dir, capsys):
    code = main(
        [
            "predict",
            str(conformance_dir / "models" / "visual_wake_words__vww_96_int8.tflite"),
            str(conformance_dir / "inputs" / "tflm__person_detection__person.bmp"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1. class" in out and "2. class" in out


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["absent.npy"], "absent.npy: no such file"),
        (["wrong.npy"], "does not fit input"),
        (["x.npy", "x.npy"], "takes 1 input"),
        (["x.npy", "--backend", "nope"], "unknown backend 'nope'"),
        (["x.npy", "--delegate", "edgetpu", "--require-delegate"], "could not load the edgetpu delegate"),
    ],
)
def test_predict_user_errors_exit_2_with_one_line(conformance_dir, tmp_path, monkeypatch, capsys, argv_tail, message):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.zeros((1, 49, 10, 1), np.int8))
    np.save("wrong.npy", np.zeros((3, 3), np.int8))
    model = str(conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite")
    code, out, err = _run_json(capsys, ["predict", model, *argv_tail, "--json"])
    assert code == 2 and out is None
    lines = err.strip().splitlines()
    assert lines[-1].startswith("edgert predict: error: ") and message in lines[-1]
    assert "Traceback" not in err


def test_crashing_model_via_cli_is_exit_2(crasher, tmp_path, capsys):
    (tmp_path / "evil.tflite").write_bytes(crasher)
    np.save(tmp_path / "x.npy", np.zeros((1, 1960), np.int8))
    code, out, err = _run_json(capsys, ["predict", str(tmp_path / "evil.tflite"), str(tmp_path / "x.npy"), "--json"])
    assert code == 2 and out is None
    assert "the interpreter crashed (SIG" in err and "evil.tflite" in err and "Traceback" not in err


def test_bench_json_keys(conformance_dir, capsys):
    path = str(conformance_dir / "models" / "tflm__hello_world_int8.tflite")
    code, out, _ = _run_json(capsys, ["bench", path, "--runs", "20", "--warmup", "2", "--threads", "1", "--json"])
    assert code == 0
    assert set(out) >= {"backend", "threads", "runs", "latency_ms", "fps"} and "backends" not in out
    assert out["runs"] == 20 and out["threads"] == 1
    lat = out["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]
    assert out["fps"] > 0


def test_bench_side_by_side(conformance_dir, capsys):
    from edgert.runtime import available_backends

    name = available_backends()[0]
    path = str(conformance_dir / "models" / "tflm__hello_world_int8.tflite")
    code, out, _ = _run_json(capsys, ["bench", path, "--runs", "5", "--backend", name, "--backend", name, "--json"])
    assert code == 0 and [b["backend"] for b in out["backends"]] == [name, name]
    assert out["backend"] == name and out["latency_ms"] == out["backends"][0]["latency_ms"]


@pytest.mark.parametrize("bad", [["--runs", "0"], ["--warmup", "-1"], ["--threads", "zero"]])
def test_bench_bad_options_exit_2(conformance_dir, capsys, bad):
    code = main(["bench", str(conformance_dir / "models" / "tflm__hello_world_int8.tflite"), *bad, "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err


def test_console_script_exit_code(conformance_dir, tmp_path):
    """The installed entry point, in its own process: missing model -> 2, one line."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgert", "predict", str(tmp_path / "none.tflite"), "x.npy", "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "none.tflite: no such file" in proc.stderr
