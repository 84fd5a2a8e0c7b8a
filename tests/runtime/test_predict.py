"""Model.predict against the raw backend interpreter, on every conformance model."""

from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.model import read_model
from edgert.runtime import dequantize, load_model, quantize
from edgert.runtime.tensors import random_input
from tests.conftest import conformance_models, require_conformance
from tests.runtime.reference import (
    CROSS_ARCH,
    assert_as_claimed,
    claim,
    machine,
    pattern_input,
    read_reference,
    recorded_architectures,
)

pytestmark = pytest.mark.runtime


def _raw_interpreter(model):
    """A second, independent interpreter of the same backend: the reference."""
    raw = model.backend.make_interpreter(model.file.data)
    raw.allocate_tensors()
    return raw


def _raw_run(raw, inputs):
    for detail, x in zip(raw.get_input_details(), inputs, strict=True):
        raw.set_tensor(detail["index"], x)
    raw.invoke()
    return [raw.get_tensor(d["index"]) for d in raw.get_output_details()]


@pytest.mark.parametrize("model_path", conformance_models())
def test_predict_bit_identical_to_raw_interpreter(model_path):
    path = require_conformance(model_path)
    model = load_model(path)
    raw = _raw_interpreter(model)
    rng = np.random.default_rng(1234)
    for _ in range(2):  # a second call proves no state leaks between predictions
        inputs = [random_input(spec, rng) for spec in model.inputs]
        expected = _raw_run(raw, inputs)
        got = model.predict(*inputs, dequantize_output=False)
        assert len(got) == len(expected) == len(model.outputs)
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == e.dtype and g.shape == e.shape
            assert g.tobytes() == e.tobytes()
        floats = model.predict(*inputs)
        for f, e, spec in zip(floats, expected, model.outputs, strict=True):
            want = dequantize(e, spec)
            assert f.dtype == (np.float32 if spec.quantized else e.dtype)
            assert f.tobytes() == want.tobytes()


def _recorded_here():
    """This machine's ai-edge-litert recording: claims are made per architecture, never borrowed from another."""
    if machine() not in recorded_architectures():
        pytest.skip(f"no ai-edge-litert recording for {machine()}: make one with tests/runtime/reference.py")
    return read_reference(machine())


def _same_build(model, info) -> bool:
    return (model.backend.name, model.backend.version) == (info["backend"], info["version"])


@pytest.mark.parametrize("model_path", conformance_models())
def test_outputs_match_ai_edge_litert(model_path):
    """Against ai-edge-litert's outputs recorded on this architecture (tests/runtime/reference.py), as claimed.

    The same build gives its default (XNNPACK) bits. Another build (tflite-runtime 2.14) carries the bits of
    ai-edge-litert's default or builtin kernels (whichever it runs for the model) on x86-64, within the
    claimed LSB on aarch64; its floats agree within 1 % (another XNNPACK version sums in another order).
    """
    path = require_conformance(model_path)
    info, reference = _recorded_here()
    model = load_model(path, threads=1)
    assert model.file.sha256 == info["models"][path.stem]["sha256"], "corpus changed: regenerate the reference"
    outputs = model.predict(*[pattern_input(s) for s in model.inputs], dequantize_output=False)
    assert len(outputs) == info["models"][path.stem]["outputs"]
    same_build = _same_build(model, info)
    claimed = claim("auto", same_build=same_build, recorded_on=info["machine"])
    for i, got in enumerate(outputs):
        default, builtin = reference[f"{path.stem}/{i}"], reference[f"{path.stem}/{i}/builtin"]
        assert_as_claimed(got, [default] if same_build else [default, builtin], claimed)


@pytest.mark.parametrize("model_path", conformance_models())
def test_builtin_and_reference_kernels_give_the_claimed_bits_on_every_backend(model_path):
    """``kernels="builtin"`` (no XNNPACK) and ``"reference"`` (TFLite's reference kernels) against their own
    recordings on this architecture, on ai-edge-litert and tflite-runtime 2.14 alike, as claimed.

    The reference kernels round int8 differently from the optimized ones (measured on this input: 0 LSB on
    KWS/VWW, up to 2 on the AD01 autoencoder, up to 18 on ResNet-8), so each kernel set has its own recording.
    """
    path = require_conformance(model_path)
    info, reference = _recorded_here()
    inputs = [pattern_input(s) for s in read_model(path).inputs]
    for kernels in ("builtin", "reference"):
        model = load_model(path, threads=1, kernels=kernels)
        assert model.kernels == kernels
        claimed = claim(kernels, same_build=_same_build(model, info), recorded_on=info["machine"])
        for i, got in enumerate(model.predict(*inputs, dequantize_output=False)):
            assert_as_claimed(got, [reference[f"{path.stem}/{i}/{kernels}"]], claimed)


@pytest.mark.parametrize("model_path", conformance_models())
def test_two_architectures_differ_only_as_claimed(model_path):
    """ai-edge-litert's recordings on x86-64 and on aarch64 (the emulated Pi of tools/aarch64_lane.py) differ only
    as CROSS_ARCH claims, per kernel set (a check of the recorded data: it runs on any machine)."""
    path = require_conformance(model_path)
    assert {"x86_64", "aarch64"} <= set(recorded_architectures()), "record both: tests/runtime/reference.py"
    (x86_info, x86), (arm_info, arm) = read_reference("x86_64"), read_reference("aarch64")
    assert (x86_info["backend"], x86_info["version"]) == (arm_info["backend"], arm_info["version"])
    assert x86_info["models"][path.stem] == arm_info["models"][path.stem], "corpus changed: record both again"
    keys = [k for k in x86 if k.split("/")[0] == path.stem]
    assert keys and sorted(keys) == sorted(k for k in arm if k.split("/")[0] == path.stem)
    for key in keys:
        kernels = key.split("/")[2] if key.count("/") == 2 else "auto"
        assert_as_claimed(arm[key], [x86[key]], CROSS_ARCH[kernels])


def test_unknown_kernels_are_refused(conformance_dir):
    with pytest.raises(InputDataError, match="unknown kernels 'fast'.*auto, builtin, reference"):
        load_model(conformance_dir / "models" / "tflm__hello_world_float.tflite", kernels="fast")


@pytest.mark.parametrize("model_path", conformance_models("*int8*.tflite") + conformance_models("*quant*.tflite"))
def test_float_inputs_are_quantized_by_scale_and_zero_point(model_path):
    path = require_conformance(model_path)
    model = load_model(path)
    spec = model.inputs[0]
    assert spec.quantized
    rng = np.random.default_rng(7)
    qmin, qmax = np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max
    lo, hi = (qmin - spec.zero_point) * spec.scale, (qmax - spec.zero_point) * spec.scale
    floats = rng.uniform(lo - spec.scale * 4, hi + spec.scale * 4, size=spec.shape).astype(np.float32)
    # Reference quantization written out independently: round half to even, clamp.
    expected = np.clip(np.round(floats.astype(np.float64) / spec.scale) + spec.zero_point, qmin, qmax).astype(spec.dtype)
    q = quantize(floats, spec)
    assert np.abs(q.astype(np.int32) - expected.astype(np.int32)).max() <= 1  # float32 vs float64 ties
    assert (quantize(np.full(spec.shape, hi + 10 * spec.scale, np.float32), spec) == qmax).all()
    assert (quantize(np.full(spec.shape, lo - 10 * spec.scale, np.float32), spec) == qmin).all()
    assert [o.tobytes() for o in model.predict(floats, dequantize_output=False)] == [
        o.tobytes() for o in model.predict(q, dequantize_output=False)
    ]


def test_quantize_known_values(conformance_dir):
    model = load_model(conformance_dir / "models" / "tflm__hello_world_int8.tflite")
    spec = model.inputs[0]  # scale 0.0244801, zero point -128
    x = np.array([[0.0]], np.float32)
    assert quantize(x, spec).item() == -128
    assert quantize(np.array([[spec.scale * 10]], np.float32), spec).item() == -118
    assert quantize(np.array([[1e6]], np.float32), spec).item() == 127
    assert dequantize(np.array([[-118]], np.int8), spec).item() == pytest.approx(spec.scale * 10, rel=1e-6)


def test_views_are_zero_copy_and_must_be_dropped_before_invoke(conformance_dir):
    model = load_model(conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite")
    rng = np.random.default_rng(3)
    x = random_input(model.inputs[0], rng)
    expected = model.predict(x, dequantize_output=False)[0]
    view = model.input_view(0)
    assert view.shape == x.shape and view.dtype == x.dtype
    view[...] = x  # written straight into the interpreter's buffer
    with pytest.raises(RuntimeError):
        model.invoke()  # the backend refuses while a view is alive
    del view
    model.invoke()
    out = model.output_view(0)
    assert not out.flags.writeable
    assert out.tobytes() == expected.tobytes()
    del out
    assert model.get_output(0, dequantize_output=False).tobytes() == expected.tobytes()


def test_predict_errors_name_the_shapes(conformance_dir):
    model = load_model(conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite")
    with pytest.raises(InputDataError, match=r"expects shape \[1, 49, 10, 1\], got \[1, 48, 10, 1\]"):
        model.predict(np.zeros((1, 48, 10, 1), np.int8))
    with pytest.raises(InputDataError, match="takes 1 input"):
        model.predict()
    with pytest.raises(InputDataError, match=r"complex64 values do not fit input 'input_1' \(int8\)"):
        model.predict(np.zeros((1, 49, 10, 1), np.complex64))
    with pytest.raises(InputDataError, match=r"values 0\.\.300 do not fit input 'input_1' \(int8\)"):
        model.predict(np.linspace(0, 300, 490).astype(np.int64).reshape(1, 49, 10, 1))  # no silent wrap-around
    small = np.arange(-100, 390, dtype=np.int64).reshape(1, 49, 10, 1) // 4
    assert model.predict(small)[0].tobytes() == model.predict(small.astype(np.int8))[0].tobytes()
    # Same data in a squeezed shape is the same tensor.
    x = np.arange(490, dtype=np.int8).reshape(49, 10)
    assert model.predict(x)[0].tobytes() == model.predict(x.reshape(1, 49, 10, 1))[0].tobytes()


def test_threads_option_is_validated(conformance_dir):
    path = conformance_dir / "models" / "tflm__hello_world_float.tflite"
    assert load_model(path, threads=2).threads == 2
    with pytest.raises(InputDataError, match="threads"):
        load_model(path, threads=0)


def test_dynamic_batch_is_resized(conformance_dir):
    model = load_model(conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite")
    assert model.inputs[0].shape_signature[0] == -1
    rng = np.random.default_rng(11)
    a, b = (random_input(model.inputs[0], rng) for _ in range(2))
    singles = [model.predict(x, dequantize_output=False)[0] for x in (a, b)]
    batch = model.predict(np.concatenate([a, b]), dequantize_output=False)[0]
    assert model.input_shapes == [(2, 49, 10, 1)] and batch.shape == (2, 12)
    assert batch.tobytes() == np.concatenate(singles).tobytes()
