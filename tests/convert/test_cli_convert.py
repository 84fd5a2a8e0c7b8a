"""`edgert convert` through the real CLI: the JSON contract, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgert.cli import main
from edgert.model import read_model


def _edgert(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "edgert", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("edgert convert: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_cli_convert_mcu_json_contract(digits_workspace, tmp_path):
    ws = digits_workspace
    out = tmp_path / "m4"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"an older model the user had")  # replaced atomically, not appended to
    proc = _edgert(
        "convert", str(ws.keras_path), "--target", "cortex-m4-256k", "--calibration", str(ws.cal_npy),
        "--eval", str(ws.eval_npz), "--labels", str(ws.labels_path), "-o", str(out), "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)  # exactly one JSON object: nothing else may reach stdout
    assert proc.stdout.count("\n") == 1
    assert report["fits"] is True and report["target"] == "cortex-m4-256k"
    assert report["accuracy"]["drop_points"] <= 1.0
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "model_data.cc", "model_data.h", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text())["model"]["sha256"] == report["model"]["sha256"]
    assert read_model(out / "model.tflite").metadata["calibration"]["source"] == str(ws.cal_npy)
    assert (out / "model.tflite").read_bytes()[4:8] == b"TFL3"
    assert "calibrating" in proc.stderr  # progress goes to stderr


def test_cli_not_a_model_exits_2(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_bytes(b"this is a text file, not a Keras archive\n" * 10)
    cal = tmp_path / "cal.npy"
    np.save(cal, np.zeros((4, 16, 16, 1), np.float32))
    proc = _edgert("convert", str(bogus), "--target", "raspberry-pi-4", "--calibration", str(cal), "-o", str(tmp_path / "o"),
                   cwd=tmp_path)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "model.keras" in line and "not a Keras model" in line
    assert not (tmp_path / "o" / "model.tflite").exists()


def test_cli_unknown_target_exits_2(digits_workspace, tmp_path):
    proc = _edgert(
        "convert", str(digits_workspace.keras_path), "--target", "no-such-board",
        "--calibration", str(digits_workspace.cal_npy), "-o", str(tmp_path / "o"), cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "no-such-board" in _one_error_line(proc.stderr)


def _run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["convert", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_wrong_calibration_shape_exits_2(digits_workspace, tmp_path, capsys):
    cal = tmp_path / "cal.npy"
    np.save(cal, np.zeros((10, 28, 28, 1), np.float32))
    code, out, err = _run_main(capsys, str(digits_workspace.keras_path), "--target", "cortex-m4-256k", "--calibration", str(cal),
                               "-o", str(tmp_path / "o"))
    assert code == 2 and out == ""
    line = _one_error_line(err)
    assert "[10, 28, 28, 1]" in line and "[16, 16, 1]" in line


def test_empty_calibration_folder_exits_2(digits_workspace, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    code, _, err = _run_main(capsys, str(digits_workspace.keras_path), "--target", "coral-usb", "--calibration", str(empty),
                             "-o", str(tmp_path / "o"))
    assert code == 2
    assert "no images" in _one_error_line(err)


def test_missing_calibration_for_int8_exits_2(digits_workspace, tmp_path, capsys):
    code, _, err = _run_main(capsys, str(digits_workspace.keras_path), "--target", "raspberry-pi-4", "-o", str(tmp_path / "o"))
    assert code == 2
    assert "calibration" in _one_error_line(err)


def test_keep_float_refused_on_integer_only_targets(digits_workspace, tmp_path, capsys):
    ws = digits_workspace
    for target in ("coral-usb", "cortex-m4-256k"):
        code, _, err = _run_main(capsys, str(ws.keras_path), "--target", target, "--calibration", str(ws.cal_npy),
                                 "--keep-float", "hidden", "-o", str(tmp_path / target))
        assert code == 2
        line = _one_error_line(err)
        assert "--keep-float" in line and target in line
        assert not (tmp_path / target).exists()


def test_keep_float_on_cpu_target(digits_workspace, tmp_path, capsys):
    ws = digits_workspace
    out = tmp_path / "pi"
    code, stdout, err = _run_main(
        capsys, str(ws.keras_path), "--target", "raspberry-pi-4", "--calibration", str(ws.cal_npy),
        "--eval", str(ws.eval_npz), "--keep-float", "hidden", "-o", str(out), "--json",
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report["converter"]["keep_float"] == ["hidden"]
    model = read_model(out / "model.tflite")
    hidden = [t for t in model.tensors() if "/hidden" in t.name and not t.is_constant]
    assert hidden and any(t.dtype == "float32" for t in hidden)
    assert "DEQUANTIZE" in model.ops
    others = [t for t in model.tensors() if "/conv_b" in t.name and not t.is_constant and t.dtype != "int32"]
    assert others and all(t.dtype == "int8" for t in others)
    assert report["accuracy"]["drop_points"] <= 1.0


def test_keep_float_unknown_layer_exits_2(digits_workspace, tmp_path, capsys):
    ws = digits_workspace
    code, _, err = _run_main(capsys, str(ws.keras_path), "--target", "raspberry-pi-4", "--calibration", str(ws.cal_npy),
                             "--keep-float", "nope", "-o", str(tmp_path / "o"))
    assert code == 2
    assert "nope" in _one_error_line(err)


def test_does_not_fit_exits_1(digits_workspace, tmp_path, capsys):
    board = tmp_path / "tiny-board.toml"
    board.write_text('inherits = "cortex-m4-256k"\nname = "tiny-board"\ndescription = "8 KiB flash"\nflash_bytes = 8192\n')
    ws = digits_workspace
    out = tmp_path / "tiny"
    code, stdout, err = _run_main(capsys, str(ws.keras_path), "--target", str(board), "--calibration", str(ws.cal_npy),
                                  "-o", str(out), "--json")
    assert code == 1, err
    report = json.loads(stdout)
    assert report["fits"] is False
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["flash"]
    assert (out / "model.tflite").is_file() and (out / "report.md").is_file()


def test_float_modes_and_overrides(digits_workspace, tmp_path, capsys):
    ws = digits_workspace
    for mode, weight_dtype in (("float16", "float16"), ("dynamic", "int8"), ("int16x8", "int8")):
        out = tmp_path / mode
        code, stdout, err = _run_main(capsys, str(ws.keras_path), "--target", "raspberry-pi-5", "--mode", mode,
                                      "--calibration", str(ws.cal_dir), "--eval", str(ws.eval_dir), "-o", str(out), "--json")
        assert code in (0, 1), err
        report = json.loads(stdout)
        assert report["converter"]["mode"] == mode
        model = read_model(out / "model.tflite")
        big = [t for t in model.tensors() if t.is_constant and t.num_elements > 1000]
        assert big and all(t.dtype == weight_dtype for t in big), mode
        assert report["accuracy"]["drop_points"] <= 1.0
        assert report["accuracy"]["layers"]["layers"]
    code, _, err = _run_main(capsys, str(ws.keras_path), "--target", "raspberry-pi-4", "--mode", "float16",
                             "--input-dtype", "uint8", "-o", str(tmp_path / "x"))
    assert code == 2 and "--input-dtype uint8" in _one_error_line(err)


def test_files_that_are_not_models(tmp_path):
    import zipfile

    from edgert.convert import load_keras_model
    from edgert.convert._tf import import_keras
    from edgert.errors import ConversionError, InputDataError

    keras = import_keras()
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as z:
        z.writestr("readme.txt", "not a model")
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(tmp_path / "lambda.keras")
    for name, words in (("junk.h5", "not a Keras model"), ("empty.keras", "config.json"), ("lambda.keras", "Lambda")):
        with pytest.raises(ConversionError) as e:
            load_keras_model(tmp_path / name)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputDataError, match="no such file"):
        load_keras_model(tmp_path / "missing.keras")


def test_bad_mean_is_exit_2(digits_workspace, tmp_path, capsys):
    code, _, err = _run_main(capsys, str(digits_workspace.keras_path), "--target", "raspberry-pi-4",
                             "--calibration", str(digits_workspace.cal_dir), "--mean", "gray", "-o", str(tmp_path / "o"))
    assert code == 2 and "--mean" in _one_error_line(err)
