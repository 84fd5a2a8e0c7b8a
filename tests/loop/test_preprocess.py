"""edgert.runtime.preprocess: the fused lookup path equals plain arithmetic, on real models and pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgert.errors import InputDataError
from edgert.model import TensorSpec, read_model
from edgert.runtime import quantize
from edgert.runtime.preprocess import image_preprocess_for, prepare_image
from tests.conftest import CONFORMANCE, require_conformance

pytestmark = pytest.mark.runtime


def _spec(shape, dtype="float32", scale=None, zero_point=None) -> TensorSpec:
    return TensorSpec("input", 0, tuple(shape), dtype, scale, zero_point)


def _picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_lookup_table_equals_arithmetic_quantization_for_every_pixel(vww_model):
    spec = vww_model.inputs[0]
    plan = image_preprocess_for(spec, None)
    pixels = np.arange(256, dtype=np.float32)
    expected = quantize(pixels / 255.0, spec)  # the runtime's own float -> int8 path
    assert plan.lut.dtype == np.int8 and plan.lut.shape == (3, 256)
    assert np.array_equal(plan.lut[0], expected)
    assert plan.uniform


def test_real_picture_through_vww_int8(vww_model, scene_images):
    spec = vww_model.inputs[0]
    rgb = scene_images[0]
    x = prepare_image(Image.fromarray(rgb), spec)
    assert x.shape == spec.shape and x.dtype == np.int8
    # scale 1/255, zero point -128: the input is pixel - 128.
    assert np.array_equal(x[0].astype(np.int16), rgb.astype(np.int16) - 128)


def test_opencv_bgr_frame_equals_pillow_rgb_image(vww_model):
    spec = vww_model.inputs[0]
    plan = image_preprocess_for(spec, None)
    rgb = _picture(160, 120)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    from_pil = plan(Image.fromarray(rgb))
    from_bgr = plan(bgr, color="bgr")
    from_rgb_array = plan(rgb)
    assert np.array_equal(from_pil, from_bgr)
    assert np.array_equal(from_pil, from_rgb_array)
    expected = quantize(np.asarray(Image.fromarray(rgb).resize((96, 96), Image.Resampling.BILINEAR), np.float32) / 255.0, spec)
    assert np.array_equal(from_pil[0], expected)


def test_metadata_mean_std_bgr_model_and_nearest_resize():
    spec = _spec((1, 8, 8, 3))
    metadata = {"preprocessing": {"color": "bgr", "resize": "nearest", "mean": [10, 20, 30], "std": [2, 4, 8]}}
    plan = image_preprocess_for(spec, metadata)
    rgb = _picture(16, 16, seed=3)
    out = plan(Image.fromarray(rgb))
    small = np.asarray(Image.fromarray(rgb).resize((8, 8), Image.Resampling.NEAREST), np.float32)[..., ::-1]
    expected = (small - np.array([10, 20, 30], np.float32)) / np.array([2, 4, 8], np.float32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-6)


def test_center_crop_takes_the_middle():
    spec = _spec((1, 10, 10, 3))
    plan = image_preprocess_for(spec, {"preprocessing": {"resize": "center_crop"}})
    rgb = _picture(40, 20, seed=5)
    out = plan(rgb)
    middle = Image.fromarray(rgb).crop((10, 0, 30, 20)).resize((10, 10), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(out[0], np.asarray(middle, np.float32) / 255.0, atol=1e-6)


def test_grayscale_model_uses_pillow_luma_for_rgb_and_bgr():
    spec = _spec((1, 12, 12, 1), "uint8", 1.0, 0)
    plan = image_preprocess_for(spec, None)
    assert plan.color == "grayscale" and plan.std[0] == 1.0  # uint8 s=1 zp=0 is raw pixels
    rgb = _picture(12, 12, seed=9)
    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(plan(Image.fromarray(rgb))[0, ..., 0], luma)
    assert np.array_equal(plan(np.ascontiguousarray(rgb[..., ::-1]), color="bgr")[0, ..., 0], luma)


def test_raw_pixel_quantization_is_inferred_for_cifar_resnet():
    path = require_conformance(CONFORMANCE / "models" / "image_classification__pretrainedResnet_quant.tflite")
    spec = read_model(path).inputs[0]  # int8 scale 1, zero point -128: calibrated on 0..255 pixels
    plan = image_preprocess_for(spec, None)
    rgb = _picture(32, 32, seed=1)
    assert np.array_equal(plan(rgb)[0].astype(np.int16), rgb.astype(np.int16) - 128)


def test_unquantized_8_bit_inputs_take_pixels_as_they_are_and_float_inputs_take_0_to_1():
    rgb = _picture(8, 8, seed=2)
    raw = image_preprocess_for(_spec((1, 8, 8, 3), "uint8"), None)
    assert raw.shortcut == "identity" and np.array_equal(raw(rgb)[0], rgb)
    centred = image_preprocess_for(_spec((1, 8, 8, 3), "int8"), None)
    assert centred.shortcut == "xor128" and np.array_equal(centred(rgb)[0].astype(np.int16), rgb.astype(np.int16) - 128)
    unit = image_preprocess_for(_spec((1, 8, 8, 3), "float32"), None)
    assert np.allclose(unit(rgb)[0], rgb / np.float32(255.0))


def test_float_frames_take_the_arithmetic_path():
    spec = _spec((1, 4, 4, 3), "int8", 1 / 255, -128)
    plan = image_preprocess_for(spec, None)
    frame = np.linspace(0, 255, 48, dtype=np.float32).reshape(4, 4, 3)
    assert np.array_equal(plan(frame)[0], quantize(frame / 255.0, spec))


@pytest.mark.parametrize(
    "name",
    ["anomaly_detection__ad01_int8", "keyword_spotting__kws_ref_model", "tflm__micro_speech_quantized",
     "streaming_wakeword__str_ww_ref_model"],
)
def test_feature_and_audio_models_cannot_take_images(name):
    spec = read_model(require_conformance(CONFORMANCE / "models" / f"{name}.tflite")).inputs[0]
    with pytest.raises(InputDataError):
        image_preprocess_for(spec, None)


def test_bad_metadata_is_a_user_error():
    with pytest.raises(InputDataError, match="std"):
        image_preprocess_for(_spec((1, 4, 4, 3)), {"preprocessing": {"std": [1, 2]}})
    with pytest.raises(InputDataError, match="resize"):
        image_preprocess_for(_spec((1, 4, 4, 3)), {"preprocessing": {"resize": "lanczos"}})


def test_shortcuts_and_table_paths_agree_with_arithmetic(vww_model):
    rgb = _picture(96, 96, seed=11)
    vww = image_preprocess_for(vww_model.inputs[0], None)
    assert vww.shortcut == "xor128"
    assert np.array_equal(vww(rgb)[0], vww.lut[0][rgb])
    # int8 calibrated on [-1, 1]: a real table (no shortcut), per-pixel equal to the arithmetic.
    spec = _spec((1, 96, 96, 3), "int8", 1 / 127.5, 0)
    plan = image_preprocess_for(spec, None)
    assert plan.shortcut is None and plan.uniform
    assert np.array_equal(plan(rgb)[0], quantize((rgb.astype(np.float32) - 127.5) / 127.5, spec))
    identity = image_preprocess_for(_spec((1, 96, 96, 3), "uint8", 1 / 255, 0), None)
    assert identity.shortcut == "identity" and np.array_equal(identity(rgb)[0], rgb)


# ---- the loop's OpenCV resize (edgert.loop.resize) against the Pillow reference ----
#: Shrinking: INTER_AREA vs Pillow's anti-aliased bilinear, in pixel levels on real
#: photos (measured: mean 1.2, 99th percentile 16, max 36 at 160x120 -> 96x96).
SHRINK_MEAN_LEVELS = 2.0
SHRINK_P99_LEVELS = 20.0


def _cv2_resizer(plan, shrink=False):
    pytest.importorskip("cv2")
    from edgert.loop.resize import opencv_resizer

    resize = opencv_resizer(plan, shrink=shrink)
    assert resize is not None
    return resize


@pytest.mark.parametrize("size", [(160, 120), (50, 70), (7, 5)])
def test_opencv_nearest_is_bit_exact_with_pillow(size):
    plan = image_preprocess_for(_spec((1, 24, 32, 3), "uint8", 1.0, 0), {"preprocessing": {"resize": "nearest"}})
    bgr = _picture(*size, seed=21)
    small = _cv2_resizer(plan)(bgr)
    assert small.shape == (24, 32, 3)
    assert np.array_equal(plan(small, color="bgr"), plan(bgr, color="bgr"))


def test_opencv_enlarging_is_within_one_level_and_center_crop_takes_the_same_box():
    spec = _spec((1, 10, 10, 3), "uint8", 1.0, 0)
    for pre, size in (({}, (6, 8)), ({"resize": "center_crop"}, (16, 8))):
        bgr = _picture(*size, seed=22)
        plan = image_preprocess_for(spec, {"preprocessing": pre} if pre else None)
        small = _cv2_resizer(plan)(bgr)
        assert small.shape == (10, 10, 3)
        fast = plan(small, color="bgr").astype(np.int16)
        assert np.abs(fast - plan(bgr, color="bgr").astype(np.int16)).max() <= 1, pre


def test_opencv_shrinking_is_left_to_pillow_unless_asked(vww_model, scene_images):
    spec = vww_model.inputs[0]
    plan = image_preprocess_for(spec, None)
    # A 160x120 camera frame of the real scene, as OpenCV delivers it (BGR).
    bgr = np.ascontiguousarray(np.asarray(Image.fromarray(scene_images[0]).resize((160, 120)))[..., ::-1])
    assert _cv2_resizer(plan)(bgr) is bgr  # default: the plan shrinks it, bit-exact with prepare_image
    crop = image_preprocess_for(spec, {"preprocessing": {"resize": "center_crop"}})
    assert _cv2_resizer(crop)(bgr) is bgr
    # Opt-in: close to Pillow in pixels, but not equal (the documented tolerance).
    for rgb in scene_images:
        bgr = np.ascontiguousarray(np.asarray(Image.fromarray(rgb).resize((160, 120)))[..., ::-1])
        small = _cv2_resizer(plan, shrink=True)(bgr)
        assert small.shape == (96, 96, 3)
        diff = np.abs(plan(small, color="bgr").astype(np.int16) - plan(bgr, color="bgr").astype(np.int16))
        assert 0 < diff.mean() <= SHRINK_MEAN_LEVELS and np.percentile(diff, 99) <= SHRINK_P99_LEVELS


def test_opencv_resizer_leaves_other_frames_to_the_plan():
    plan = image_preprocess_for(_spec((1, 8, 8, 3)), None)
    resize = _cv2_resizer(plan, shrink=True)
    floats = np.zeros((16, 16, 3), np.float32)
    rgba = np.zeros((16, 16, 4), np.uint8)
    assert resize(floats) is floats and resize(rgba) is rgba
    gray = _picture(16, 16, seed=23)[..., 0]
    assert resize(gray).shape == (8, 8)


@pytest.mark.parametrize(
    "shape, pre",
    [((1, 10, 12, 3), None), ((1, 10, 12, 3), {"color": "bgr"}), ((1, 10, 12, 1), None), ((1, 20, 16, 3), None)],
    ids=["rgb-model", "bgr-model", "grayscale-model", "no-resize"],
)
def test_bgr_frames_equal_rgb_frames_for_every_model_colour(shape, pre):
    # BGR frames take shortcuts (Pillow swaps channels while copying in; plane copies
    # instead of a reversed view): the tensor must be the one the RGB frame gives.
    plan = image_preprocess_for(_spec(shape, "int8", 1 / 255, -128), {"preprocessing": pre} if pre else None)
    rgb = _picture(16, 20, seed=31)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert np.array_equal(plan(bgr, color="bgr"), plan(rgb, color="rgb"))
