"""Every conformance model reads with the shapes, dtypes and quantization its publisher states."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.model import read_model
from edgert.model.macs import KERNEL_FAMILIES, macs_by_family
from tests.conftest import conformance_models

pytestmark = pytest.mark.runtime

_SPEC = re.compile(r"^(?P<shape>[\dx]+)/(?P<dtype>\w+)(?:\(s=(?P<scale>[-\d.e]+),zp=(?P<zp>-?\d+)\))?$")


def parse_manifest_input(text: str) -> tuple[list[int], str, float | None, int | None]:
    """``"1x49x10x1/int8(s=0.584703,zp=83)"`` -> ([1, 49, 10, 1], "int8", 0.584703, 83)."""
    m = _SPEC.match(text.strip())
    assert m, f"unparseable MANIFEST input_shape_dtype {text!r}"
    scale = float(m["scale"]) if m["scale"] is not None else None
    zp = int(m["zp"]) if m["zp"] is not None else None
    return [int(d) for d in m["shape"].split("x")], m["dtype"], scale, zp


def test_manifest_parser():
    assert parse_manifest_input("1x640/float32") == ([1, 640], "float32", None, None)
    assert parse_manifest_input("1x32x32x3/int8(s=1,zp=-128)") == ([1, 32, 32, 3], "int8", 1.0, -128)


@pytest.mark.parametrize("model_path", conformance_models())
def test_inputs_match_the_manifest(model_path, model_bytes, manifest):
    if model_path is None:
        pytest.skip("corpus absent")
    name = model_path.name
    shape, dtype, scale, zp = parse_manifest_input(manifest[name]["input_shape_dtype"])
    model = read_model(model_path)
    assert model.size_bytes == int(manifest[name]["size_bytes"])
    assert model.sha256 == hashlib.sha256(model_bytes[name]).hexdigest()
    assert len(model.inputs) == 1
    spec = model.inputs[0]
    assert list(spec.shape) == shape and spec.dtype == dtype
    if scale is None:
        assert spec.scale is None and spec.zero_point is None and not spec.quantized
    else:
        # The manifest prints six significant digits.
        assert spec.scale == pytest.approx(scale, rel=1e-5) and spec.zero_point == zp
    info = model.to_dict()
    assert info["inputs"][0] == {"name": spec.name, "shape": shape, "dtype": dtype,
                                 "scale": spec.scale, "zero_point": spec.zero_point}
    assert set(info) >= {"size_bytes", "sha256", "inputs", "outputs", "ops", "parameters", "macs", "metadata"}
    assert info["metadata"] is None  # nobody on this project made these
    assert info["parameters"] > 0 and info["macs"] > 0 and sum(info["ops"].values()) == len(model.operators())


def _reference_interpreter(data: bytes):
    """Whichever real interpreter this venv has (ai-edge-litert, or tflite-runtime on the Pi)."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        interpreter = pytest.importorskip("tflite_runtime.interpreter")
    it = interpreter.Interpreter(model_content=data)
    it.allocate_tensors()
    return it


@pytest.mark.parametrize("model_path", conformance_models())
def test_every_tensor_matches_the_interpreter(model_path, model_bytes):
    """Shape, dtype, name and (per-channel) quantization of every tensor, as the real interpreter sees it."""
    if model_path is None:
        pytest.skip("corpus absent")
    data = model_bytes[model_path.name]
    it = _reference_interpreter(data)
    ours = read_model(data).tensors()
    details = it.get_tensor_details()
    assert details, "interpreter reported no tensors"
    compared = 0
    for d in details:
        if d["index"] >= len(ours):
            continue  # tensors a delegate (XNNPACK in tflite-runtime) adds at run time, not in the file
        compared += 1
        t = ours[d["index"]]
        assert t.name == d["name"]
        assert list(t.shape) == list(d["shape"])
        assert t.dtype == np.dtype(d["dtype"]).name
        q = d["quantization_parameters"]
        if len(q["scales"]):
            assert t.quantized
            ref_scales, ref_zps = q["scales"], q["zero_points"]
            if len(t.scales) == 1 < len(ref_scales):
                # The interpreter broadcasts a per-tensor filter scale to per-channel when it prepares
                # the kernel; the file holds one.
                ref_scales, ref_zps = ref_scales[:1], ref_zps[:1]
                assert np.all(q["scales"] == q["scales"][0])
            else:
                assert t.quantized_dimension == q["quantized_dimension"]
            np.testing.assert_allclose(t.scales, ref_scales, rtol=1e-7)
            np.testing.assert_array_equal(t.zero_points, ref_zps)
        else:
            assert not t.quantized
    assert compared == len(ours)
    # Constant data we read equals what the interpreter holds for the weights.
    checked = 0
    for t in ours:
        if t.is_constant and t.dtype in ("int8", "float32", "int32"):
            try:
                ref = it.get_tensor(t.index)
            except ValueError:  # interpreter may not expose some constants
                continue
            np.testing.assert_array_equal(read_model(data).tensor_data(t), ref)
            checked += 1
    assert checked > 0


# MLPerf Tiny's published model sizes (MACs per inference).
PUBLISHED_MACS = {
    "visual_wake_words__vww_96_int8.tflite": 7.5e6,
    "visual_wake_words__vww_96_float.tflite": 7.5e6,
    "keyword_spotting__kws_ref_model.tflite": 2.7e6,
    "image_classification__pretrainedResnet_quant.tflite": 12.5e6,
    "anomaly_detection__ad01_int8.tflite": 0.264e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_macs_match_published_figures(model_bytes, name):
    model = read_model(model_bytes[name])
    assert model.macs == pytest.approx(PUBLISHED_MACS[name], rel=0.03)
    fam = macs_by_family(model)
    assert set(fam) == set(KERNEL_FAMILIES) and sum(fam.values()) == model.macs


def test_kws_op_histogram_and_families(model_bytes):
    model = read_model(model_bytes["keyword_spotting__kws_ref_model.tflite"])
    assert model.ops == {"AVERAGE_POOL_2D": 1, "CONV_2D": 5, "DEPTHWISE_CONV_2D": 4,
                         "FULLY_CONNECTED": 1, "RESHAPE": 1, "SOFTMAX": 1}
    fam = macs_by_family(model)
    # DS-CNN: the pointwise convs dominate; the depthwise layers are about a tenth.
    assert fam["conv"] > 5 * fam["depthwise"] > 0
    assert fam["other"] == 0


def test_missing_path_and_directory_are_input_errors(tmp_path):
    with pytest.raises(InputDataError, match="no such file"):
        read_model(tmp_path / "nope.tflite")
    with pytest.raises(InputDataError, match="directory"):
        read_model(tmp_path)
