"""Converter settings per target, calibration/evaluation data readers and the Edge TPU log parser.

None of this needs TensorFlow: it runs in the runtime-only venv too.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgert.convert.calibration import load_calibration, load_labeled
from edgert.convert.edgetpu import compile_edgetpu, parse_compiler_log
from edgert.convert.settings import settings_for
from edgert.errors import InputDataError
from edgert.targets import list_targets, load_target

pytestmark = pytest.mark.runtime


def test_targets_pick_the_settings():
    coral = settings_for(load_target("coral-usb"))
    assert (coral.mode, coral.input_dtype, coral.output_dtype) == ("int8", "uint8", "uint8")
    assert coral.supported_ops == ("TFLITE_BUILTINS_INT8",) and coral.full_int8 and not coral.allow_keep_float
    m4 = settings_for(load_target("cortex-m4-256k"))
    assert (m4.input_dtype, m4.supported_ops, m4.allow_keep_float) == ("int8", ("TFLITE_BUILTINS_INT8",), False)
    pi = settings_for(load_target("raspberry-pi-4"))
    assert pi.supported_ops == ("TFLITE_BUILTINS_INT8", "TFLITE_BUILTINS") and pi.allow_keep_float
    gpu = settings_for(load_target("android-gpu"))
    assert (gpu.mode, gpu.input_dtype, gpu.needs_calibration) == ("float16", "float32", False)
    for t in list_targets():
        assert settings_for(t).batch == 1


def test_user_overrides():
    pi = load_target("raspberry-pi-4")
    s = settings_for(pi, mode="int16x8")
    int16_ops = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
    assert (s.mode, s.input_dtype, s.supported_ops[0]) == ("int16x8", "int16", int16_ops)
    assert settings_for(pi, input_dtype="float32", output_dtype="float32").input_dtype == "float32"
    assert settings_for(pi, mode="fp16").mode == "float16"
    with pytest.raises(InputDataError, match="unknown conversion mode"):
        settings_for(pi, mode="int4")
    with pytest.raises(InputDataError, match="--input-dtype uint8"):
        settings_for(pi, mode="float32", input_dtype="uint8")
    # Integer-only targets cannot take float I/O in int8 mode.
    with pytest.raises(InputDataError, match="--output-dtype float32"):
        settings_for(load_target("coral-usb"), output_dtype="float32")


def _png_folder(root, n, size=(20, 12), mode="L"):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(root / f"{i}.png")


def test_image_folder_is_resized_and_normalised(tmp_path):
    _png_folder(tmp_path / "cal", 5, mode="RGB")
    seen = []
    x = load_calibration(tmp_path / "cal", (8, 8, 1), progress=lambda d, t, label: seen.append((d, t)))
    assert x.shape == (5, 8, 8, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert seen[-1] == (5, 5)
    x3 = load_calibration(tmp_path / "cal", (8, 8, 3), preprocessing={"mean": 127.5, "std": 127.5})
    assert x3.shape == (5, 8, 8, 3) and x3.min() >= -1.0 and x3.max() <= 1.0 and x3.min() < -0.5


def test_calibration_arrays(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((7, 4, 4), np.float32))
    assert load_calibration(tmp_path / "a.npy", (4, 4, 1)).shape == (7, 4, 4, 1)  # channel axis implied
    np.savez(tmp_path / "b.npz", x=np.ones((3, 4, 4, 1)))
    assert load_calibration(tmp_path / "b.npz", (4, 4, 1)).shape == (3, 4, 4, 1)
    assert load_calibration(np.zeros((4, 4, 1)), (4, 4, 1)).shape == (1, 4, 4, 1)
    gen = (np.full((1, 4, 4, 1), i, np.float32) for i in range(600))
    x = load_calibration(gen, (4, 4, 1), max_samples=50)
    assert x.shape == (50, 4, 4, 1) and x[-1, 0, 0, 0] == 49
    assert len(load_calibration(np.zeros((900, 2)), (2,), max_samples=100)) == 100


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p / "c.npy", np.zeros((5, 28, 28, 1))) or p / "c.npy", "[5, 28, 28, 1]"),
        (lambda p: np.save(p / "c.npy", np.zeros((0, 4, 4, 1))) or p / "c.npy", "no samples"),
        (lambda p: np.save(p / "c.npy", np.full((2, 4, 4, 1), np.nan)) or p / "c.npy", "NaN"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
        (lambda p: p / "missing", "not found"),
        (lambda p: (p / "c.csv").write_text("1,2") and p / "c.csv", ".npy"),
        (lambda p: (p / "bad.npy").write_bytes(b"garbage") and p / "bad.npy", "not a NumPy .npy file"),
    ],
)
def test_bad_calibration_is_one_line(tmp_path, make, message):
    with pytest.raises(InputDataError) as e:
        load_calibration(make(tmp_path), (4, 4, 1))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_folder_for_a_non_image_input(tmp_path):
    _png_folder(tmp_path / "cal", 2)
    with pytest.raises(InputDataError, match="not an image"):
        load_calibration(tmp_path / "cal", (49, 40))


def test_labeled_folder_uses_label_names(tmp_path):
    _png_folder(tmp_path / "eval" / "dog", 2)
    _png_folder(tmp_path / "eval" / "cat", 3)
    x, y, classes = load_labeled(tmp_path / "eval", (6, 6, 1), labels=["dog", "cat"])
    assert x.shape == (5, 6, 6, 1) and classes == ["dog", "cat"]
    assert sorted(y.tolist()) == [0, 0, 1, 1, 1] and y[:3].tolist() == [1, 1, 1]  # cat/ sorts first, label index 1
    _, y2, classes2 = load_labeled(tmp_path / "eval", (6, 6, 1))
    assert classes2 == ["cat", "dog"] and y2.tolist() == [0, 0, 0, 1, 1]


def test_labeled_npz_needs_y(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((3, 4, 4, 1)))
    with pytest.raises(InputDataError, match="no 'y'"):
        load_labeled(tmp_path / "e.npz", (4, 4, 1))
    np.savez(tmp_path / "f.npz", x=np.zeros((3, 4, 4, 1)), y=np.arange(2))
    with pytest.raises(InputDataError, match="3 inputs but 2 targets"):
        load_labeled(tmp_path / "f.npz", (4, 4, 1))


# The shape of `edgetpu_compiler -s` output (compiler 16), as documented by Coral.
_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1153 ms.

Input model: build/coral/model.tflite
Input size: 3.40MiB
Output model: build/coral/model_edgetpu.tflite
Output size: 3.98MiB
On-chip memory used for caching model parameters: 3.44MiB
On-chip memory remaining for caching model parameters: 4.28MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 2
Total number of operations: 66
Operation log: build/coral/model_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 63
Number of operations that will run on CPU: 3

Operator                       Count      Status

CONV_2D                        35         Mapped to Edge TPU
DEPTHWISE_CONV_2D              17         Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
LOG_SOFTMAX                    1          Operation not supported
QUANTIZE                       1          Mapped to Edge TPU
SQUARED_DIFFERENCE             2          More than one subgraph is not supported
"""  # noqa: E501 - the compiler's output as it prints it


def test_parse_compiler_log():
    r = parse_compiler_log(_LOG)
    assert r["compiled"] is True and r["version"] == "16.0.384591198"
    assert (r["subgraphs"], r["total_ops"], r["ops_on_edgetpu"], r["ops_on_cpu"]) == (2, 66, 63, 3)
    assert r["on_chip_cache_bytes"] == int(3.44 * 2**20) and r["off_chip_bytes"] == 0
    assert r["cpu_ops"] == {"LOG_SOFTMAX": 1, "SQUARED_DIFFERENCE": 2}
    assert [o["op"] for o in r["operators"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert sum(o["count"] for o in r["operators"]) == 66


def test_parse_compiler_failure():
    r = parse_compiler_log("Edge TPU Compiler version 16.0.384591198\n"
                           "ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph that has "
                           "dynamic-sized tensors.\nCompilation failed!\n")
    assert r["compiled"] is False and r["errors"][0].startswith("ERROR: Attempting")
    assert r["operators"] == [] and r["cpu_ops"] == {}


def test_compiler_absent_gives_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: certainly no edgetpu_compiler
    r = compile_edgetpu(tmp_path / "model.tflite", tmp_path)
    assert r["available"] is False
    assert r["command"] == f"edgetpu_compiler -s -o {tmp_path} {tmp_path / 'model.tflite'}"
    assert "not found" in r["note"]


def test_importing_the_converter_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, edgert.convert, edgert.commands.convert; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
