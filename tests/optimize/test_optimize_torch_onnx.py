"""``edgert optimize`` for PyTorch and ONNX models: the post-training formats, checked against the float original.

One small 1-D sensor classifier is trained here in PyTorch (the network and the
data come from ``tests/torch_models.py``, shared with the convert tests) and
written as an ONNX graph. The search runs for a Raspberry Pi on the module and
for a microcontroller on the ONNX file: the winner must be full int8, run, and
agree with the float original on at least 98 % of the held-out samples; the
Keras-only techniques are listed as skipped with their reason, and asking for
one by name is refused in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgert.errors import ConversionError  # noqa: E402
from tests.helpers import user_error_line  # noqa: E402
from tests.torch_models import MODELS, onnx_graph, sensor_ncl, train  # noqa: E402

pytestmark = pytest.mark.slow

MIN_AGREEMENT = 0.98
#: Few samples keep the search cheap: 420 to calibrate on (200 used), 180 held out.
N_SAMPLES = 600
EPOCHS = 15
KERAS_ONLY = ("student0.5", "structured25", "magnitude50")


@pytest.fixture(scope="module")
def sensor(tmp_path_factory):
    """The trained sensor module, its ONNX file and its labeled data (channels-first, as a PyTorch user has it)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("optimize_torch_onnx")
    x, y = sensor_ncl(N_SAMPLES)
    torch.manual_seed(0)
    n_train = int(len(x) * 0.75)
    model = train(MODELS["sensor"](), x[:n_train], y[:n_train], EPOCHS)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x[n_train:])).argmax(1).numpy() == y[n_train:]).mean())
    assert acc > 0.7, f"the sensor model did not train ({acc:.2f})"
    onnx_path = root / "sensor.onnx"
    onnx.save(onnx_graph(model, "sensor", x.shape[1:]), onnx_path)
    npz = root / "sensor.npz"
    np.savez(npz, x=x, y=y)
    return {"model": model, "onnx": onnx_path, "npz": npz, "x": x, "y": y}


def _winner_checks(best_dir, n_classes: int, window: tuple[int, ...]) -> dict:
    """The written winner is full int8, runs in LiteRT, and its report agrees with the float original."""
    from edgert.convert.verify import float_ops
    from edgert.model import read_model
    from edgert.runtime import load_model

    data = (best_dir / "model.tflite").read_bytes()
    mf = read_model(data)
    assert float_ops(mf) == {}
    assert mf.inputs[0].dtype == "int8" and mf.outputs[0].dtype == "int8"
    assert tuple(mf.inputs[0].shape[1:]) == (window[1], window[0])  # NCL -> NLC
    out = load_model(data, trusted=True).predict(np.zeros((1, window[1], window[0]), np.float32))[0]
    assert out.shape[-1] == n_classes
    report = json.loads((best_dir / "report.json").read_text())
    assert report["accuracy"]["agreement"] >= MIN_AGREEMENT, report["accuracy"]
    assert all(c["ok"] for c in report["checks"]), [c for c in report["checks"] if not c["ok"]]
    return report


def test_pytorch_module_for_a_pi(sensor, tmp_path):
    """Python API, nn.Module, CPU target: int8 measured, the formats litert-torch cannot write and the
    Keras-only techniques skipped with their reasons, the winner written through convert."""
    from edgert.optimize import optimize

    x, y = sensor["x"], sensor["y"]
    result = optimize(sensor["model"], "raspberry-pi-5", (x, y), max_accuracy_drop=1.0, output_dir=tmp_path,
                      example_inputs=(torch.from_numpy(x[:1]),))
    by_name = {c.name: c for c in result.candidates}
    assert result.best is not None and result.best.name == "teacher/int8"
    assert result.baseline["reference"] == "torch" and result.baseline["format"] == "float32"
    for mode in ("float16", "dynamic", "int16x8"):
        c = by_name[f"teacher/{mode}"]
        assert c.status == "skipped" and "not available for PyTorch models" in c.reason
    for variant in KERAS_ONLY:
        c = by_name[f"{variant}/int8"]
        assert c.status == "skipped" and "needs a Keras model" in c.reason, c
    assert {c.variant for c in result.candidates if c.status != "skipped"} == {"teacher"}
    report = _winner_checks(tmp_path / "best", 3, x.shape[1:])
    assert report["source"]["format"] == "torch" and report["optimize"]["candidate"]["name"] == "teacher/int8"
    assert report["accuracy"]["layers"]["method"] == "tensor_compare"  # per-layer error on the PyTorch route
    saved = json.loads((tmp_path / "candidates.json").read_text())
    assert saved["chosen"] == "teacher/int8"


def test_onnx_file_for_a_microcontroller(sensor, tmp_path, capsys):
    """Command line, .onnx with NCL data, MCU target: candidates measured in TFLite Micro, C source written."""
    from edgert.cli import main

    out = tmp_path / "out"
    rc = main(["optimize", str(sensor["onnx"]), "--target", "cortex-m4-256k", "--data", str(sensor["npz"]),
               "--max-accuracy-drop", "1", "-o", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0, result
    assert result["baseline"]["reference"] == "onnxruntime"
    measured = [c for c in result["candidates"] if c["status"] != "skipped"]
    assert {c["mode"] for c in measured} == {"int8", "int16x8"}  # what TFLite Micro runs
    assert all(c["evaluated_with"] == "tflite-micro" for c in measured)
    chosen = next(c for c in result["candidates"] if c["chosen"])
    assert chosen["mode"] == "int8" and chosen["accuracy_drop"] <= 1.0
    report = _winner_checks(out / "best", 3, sensor["x"].shape[1:])
    assert report["source"]["format"] == "onnx"
    assert {c["name"] for c in report["checks"]} >= {"micro_run", "agreement", "float_ops"}
    assert (out / "best" / "model_data.h").is_file() and (out / "pareto.png").is_file()


@pytest.mark.parametrize(("flag", "technique"), [("--sparsity", "magnitude pruning"), ("--students", "distillation"),
                                                 ("--filters", "structured pruning")])
def test_keras_only_flag_is_refused_in_one_line(sensor, tmp_path, capsys, flag, technique):
    line = user_error_line(capsys, ["optimize", str(sensor["onnx"]), "--target", "raspberry-pi-5", "--data",
                                    str(sensor["npz"]), "--max-accuracy-drop", "1", "-o", str(tmp_path), flag, "0.5"])
    assert f"{flag}: {technique} needs a Keras model and this is an ONNX model" in line
    assert not (tmp_path / "candidates.json").exists()


def test_keras_only_functions_refuse_a_pytorch_module(sensor):
    from edgert.optimize.distill import distill
    from edgert.optimize.pruning import magnitude_prune, structured_prune
    from edgert.optimize.qat import quantization_aware_fine_tune

    model, x, y = sensor["model"], sensor["x"][:64], sensor["y"][:64]
    calls = {
        "magnitude pruning": lambda: magnitude_prune(model, x, y, sparsity=0.5),
        "structured pruning": lambda: structured_prune(model, x, y, fraction=0.5),
        "distillation": lambda: distill(model, 0.5, x, y),
        "quantization-aware fine-tuning": lambda: quantization_aware_fine_tune(model, x, y),
    }
    for technique, call in calls.items():
        with pytest.raises(ConversionError, match=f"^{technique} needs a Keras model and this is a PyTorch model"):
            call()
