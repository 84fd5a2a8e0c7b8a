"""PyTorch and ONNX models through ``edgert.convert.convert`` to the same int8 files as Keras.

Three small models are trained here in PyTorch (a CNN and a CNN with a residual
add on scikit-learn's digits, a 1-D sensor model on generated three-axis
signals); the ONNX models are the same networks written with ``onnx.helper``
from the trained weights (onnxruntime must agree with torch on them). The
networks, graphs and data come from ``tests/torch_models.py``. Each is
converted for a microcontroller, Coral and a Raspberry Pi, and the result must
run in LiteRT (and TFLite Micro for the MCU), agree with the float original on
at least 98 % of the held-out samples, and keep no TRANSPOSE next to a
convolution. Conversions of one model share litert-torch / onnx2tf runs (the
routes cache them per process), which keeps the module to a few minutes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402

from edgert.errors import ConversionError  # noqa: E402
from tests.torch_models import MODELS, digits_nchw, onnx_graph, sensor_ncl, train  # noqa: E402

pytestmark = pytest.mark.slow

TARGETS = ("cortex-m4-256k", "coral-usb", "raspberry-pi-5")
MIN_AGREEMENT = 0.98
N_CAL = 500


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per model kind: the trained module, its ONNX file, calibration and evaluation data (channels-first)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("torch_onnx")
    dx, dy = digits_nchw()
    sx, sy = sensor_ncl()
    specs = {
        "cnn": (MODELS["cnn"], dx, dy, 60),
        "residual": (MODELS["residual"], dx, dy, 40),
        "sensor": (MODELS["sensor"], sx, sy, 15),
    }
    out = {}
    for kind, (cls, x, y, epochs) in specs.items():
        n_train = int(len(x) * 0.75)
        torch.manual_seed(0)  # initial weights independent of what ran before
        model = train(cls(), x[:n_train], y[:n_train], epochs)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(x[n_train:])).argmax(1).numpy() == y[n_train:]).mean())
        assert acc > 0.7, f"{kind} did not train ({acc:.2f})"  # a real classifier, not near-tied logits
        onnx_path = root / f"{kind}.onnx"
        onnx.save(onnx_graph(model, kind, x.shape[1:]), onnx_path)
        cal = root / f"{kind}_cal.npy"
        np.save(cal, x[:N_CAL])
        ev = root / f"{kind}_eval.npz"
        np.savez(ev, x=x[n_train:], y=y[n_train:])
        out[kind] = {"model": model, "onnx": onnx_path, "cal": cal, "eval": ev, "x": x, "n_train": n_train}
    return out


def test_onnx_graphs_match_torch(trained):
    """The hand-written ONNX graphs compute what the trained modules compute."""
    import onnxruntime as ort

    for kind, t in trained.items():
        sess = ort.InferenceSession(str(t["onnx"]), providers=["CPUExecutionProvider"])
        x = t["x"][:4]
        ref = np.concatenate([t["model"](torch.from_numpy(x[i : i + 1])).detach().numpy() for i in range(4)])
        got = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(4)])
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=kind)


# --- conversions ---------------------------------------------------------------------------------


def _convert(trained, route: str, kind: str, target: str, out_dir):
    from edgert.convert import convert

    t = trained[kind]
    model = t["onnx"] if route == "onnx" else t["model"]
    example = (torch.from_numpy(t["x"][:1]),) if route == "torch" else None
    return convert(
        model,
        target=target,
        calibration=t["cal"],
        eval_data=t["eval"],
        output_dir=out_dir,
        example_inputs=example,
        labels=None,
    )


def _transposes_next_to_conv(mf) -> list[str]:
    from edgert.convert.verify import layout_transposes

    return layout_transposes(mf)


@pytest.mark.parametrize("route", ["torch", "onnx"])
@pytest.mark.parametrize("kind", ["cnn", "residual", "sensor"])
@pytest.mark.parametrize("target", TARGETS)
def test_converts_for_target(trained, route, kind, target, tmp_path):
    from edgert.model import read_model
    from edgert.model.metadata import read_metadata
    from edgert.runtime import load_model

    result = _convert(trained, route, kind, target, tmp_path)
    mf = read_model(result.tflite)
    # Full int8 weights and activations, the target's I/O type, channels-last input.
    from edgert.convert.verify import float_ops

    assert float_ops(mf) == {}
    io = "uint8" if target == "coral-usb" else "int8"
    assert mf.inputs[0].dtype == io and mf.outputs[0].dtype == io
    shape = trained[kind]["x"].shape[1:]
    assert tuple(mf.inputs[0].shape[1:]) == (*shape[1:], shape[0])  # NCHW -> NHWC, NCL -> NLC
    assert _transposes_next_to_conv(mf) == []
    # Runs in LiteRT and agrees with the float original.
    acc = result.accuracy
    assert acc["agreement"] >= MIN_AGREEMENT, acc
    # Per-layer error: the TFLite debugger on the ONNX route; on the PyTorch route each op output against
    # litert-torch's float32 conversion, rows named by the module they come from.
    layers = acc["layers"]
    assert layers["layers"] and all(r["snr_db"] is None or np.isfinite(r["snr_db"]) for r in layers["layers"]), layers
    if route == "torch":
        assert layers["method"] == "tensor_compare", layers
        assert {"conv1", "conv2"} <= {r["layer"] for r in layers["layers"]}, layers
    else:
        assert layers["method"] in ("quantization_debugger", "tensor_compare"), layers
    m = load_model(result.tflite, trusted=True)
    ev = trained[kind]["x"][trained[kind]["n_train"] :][:3]
    x_last = np.moveaxis(ev, 1, -1)
    assert m.predict(x_last[:1])[0].shape[-1] == (3 if kind == "sensor" else 10)
    # Every check passed, the verification ones included; report, metadata, C source on disk.
    checks = {c["name"]: c for c in result.report["checks"]}
    for name in ("float_ops", "layout", "agreement"):
        assert checks[name]["ok"], checks[name]
    if target == "cortex-m4-256k":
        assert checks["micro_run"]["ok"], checks["micro_run"]
        assert (tmp_path / "model_data.h").is_file() and (tmp_path / "model_data.cc").is_file()
    assert result.fits, [c for c in result.report["checks"] if not c["ok"]]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["source"]["format"] == ("onnx" if route == "onnx" else "torch")
    assert report["source"]["input_layout"] == ("NCL" if kind == "sensor" else "NCHW")
    assert "Verification against the original float model" in (tmp_path / "report.md").read_text()
    meta = read_metadata(mf)
    assert meta["source"]["converted_input_layout"] == ("NLC" if kind == "sensor" else "NHWC")
    if kind != "sensor":
        assert meta["preprocessing"]["layout"] == "NHWC"


def test_micro_run_matches_litert(trained, tmp_path):
    """The MCU file runs in the real TFLite Micro interpreter with LiteRT's outputs."""
    from edgert.convert.verify import MICRO_MAX_STEPS
    from edgert.model import read_model
    from edgert.runtime import load_model
    from edgert.runtime.micro import run_micro_many

    result = _convert(trained, "torch", "residual", "cortex-m4-256k", tmp_path)
    mf = read_model(result.tflite)
    spec = mf.inputs[0]
    x = np.moveaxis(trained["residual"]["x"][-8:], 1, -1)
    q = np.clip(np.rint(x / spec.scale) + spec.zero_point, -128, 127).astype(np.int8)
    micro = run_micro_many(result.tflite, [[s[None]] for s in q])
    lite = load_model(result.tflite, trusted=True)
    for s, m_out in zip(q, micro, strict=True):
        l_out = lite.predict(s[None], dequantize_output=False)[0]
        assert np.max(np.abs(np.asarray(m_out[0], np.int32) - np.asarray(l_out, np.int32))) <= MICRO_MAX_STEPS
        assert np.argmax(m_out[0]) == np.argmax(l_out)


def test_pt2_file_on_the_command_line(trained, tmp_path, capsys):
    """``edgert convert model.pt2`` (a torch.export program) with NCHW calibration data."""
    from edgert.cli import main

    t = trained["cnn"]
    ep = torch.export.export(t["model"], (torch.from_numpy(t["x"][:1]),))
    pt2 = tmp_path / "cnn.pt2"
    torch.export.save(ep, str(pt2))
    rc = main(
        [
            "convert",
            str(pt2),
            "--target",
            "raspberry-pi-5",
            "--calibration",
            str(t["cal"]),
            "--eval",
            str(t["eval"]),
            "-o",
            str(tmp_path / "out"),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, [c for c in report["checks"] if not c["ok"]]
    assert report["source"]["format"] == "pt2"
    assert report["accuracy"]["agreement"] >= MIN_AGREEMENT


def test_dynamic_onnx_shape_names_input_and_fix(tmp_path, capsys):
    from onnx import TensorProto, helper

    from edgert.cli import main

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.zeros(108, np.float32).tolist())
    g = helper.make_graph(
        [helper.make_node("Conv", ["img", "w"], ["y"], name="conv")],
        "dyn",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None, None])],
        [w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "dyn.onnx"
    onnx.save(m, path)
    cal = tmp_path / "cal.npy"
    np.save(cal, np.zeros((2, 3, 8, 8), np.float32))
    rc = main(["convert", str(path), "--target", "raspberry-pi-5", "--calibration", str(cal), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert "'img'" in err[-1] and "--input-shape 1,3,<size>,<size>" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_custom_onnx_op_is_named(tmp_path):
    from onnx import TensorProto, helper

    from edgert.convert import convert

    g = helper.make_graph(
        [helper.make_node("FancyNorm", ["x"], ["y"], domain="com.example", name="fancy_1")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    m.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(m, path)
    with pytest.raises(ConversionError, match="fancy_1.*com.example.FancyNorm"):
        convert(path, target="raspberry-pi-5", calibration=np.zeros((2, 4), np.float32))


def test_module_without_shape_is_refused():
    from edgert.convert import convert

    with pytest.raises(ConversionError, match="example_inputs"):
        convert(MODELS["cnn"](), target="raspberry-pi-5", calibration=np.zeros((2, 1, 16, 16), np.float32))


def test_float_ops_on_int8_target_are_refused_with_names():
    """A model whose op has no int8 kernel in litert-torch's PT2E annotator is refused on an int8-only target."""

    class Gelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.nn.functional.gelu(x) * torch.sigmoid(x))

    from edgert.convert import convert

    cal = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    with pytest.raises(ConversionError, match=r"runs int8 only, but these ops stayed in float: .*[A-Z]"):
        convert(Gelu(), target="cortex-m4-256k", calibration=cal, example_inputs=(torch.zeros(1, 8),))


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_fit_on_an_onnx_or_pt2_file(trained, tmp_path, capsys, fmt):
    """``edgert fit model.onnx|model.pt2 --calibration DATA``: converted in memory, verified, fitted."""
    from edgert.cli import main

    t = trained["residual"]
    path = t["onnx"]
    if fmt == "pt2":
        path = tmp_path / "residual.pt2"
        torch.export.save(torch.export.export(t["model"], (torch.from_numpy(t["x"][:1]),)), str(path))
    rc = main(["fit", str(path), "--target", "coral-usb", "--calibration", str(t["cal"]), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, [c for c in report["checks"] if not c["ok"]]
    assert {c["name"] for c in report["verification"]} == {"float_ops", "layout", "agreement"}
    assert report["converted"]["source"]["format"] == fmt


def test_predict_feeds_the_converted_model_from_its_metadata(trained, tmp_path, capsys):
    """``edgert predict`` on an image: the metadata says NHWC, so a PNG reaches the model channels-last."""
    from PIL import Image

    from edgert.cli import main
    from edgert.runtime import load_model

    result = _convert(trained, "torch", "cnn", "raspberry-pi-5", tmp_path / "out")
    x = trained["cnn"]["x"][-1, 0]  # one held-out digit, 16x16 in [0, 1]
    pixels = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    png = tmp_path / "digit.png"
    Image.fromarray(pixels, mode="L").save(png)
    capsys.readouterr()
    rc = main(["predict", str(result.path), str(png), "--json"])
    got = np.asarray(json.loads(capsys.readouterr().out)["outputs"][0]["values"], np.float32)
    assert rc == 0
    expected = load_model(result.tflite, trusted=True).predict((pixels / 255.0).astype(np.float32)[None, :, :, None])[0]
    np.testing.assert_allclose(got.reshape(-1), np.asarray(expected).reshape(-1), atol=1e-6)
