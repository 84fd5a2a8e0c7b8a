"""load_input: .npy tensors, images through the shared preprocessing, 16-bit .wav windows."""

from __future__ import annotations

import logging
import wave

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.model import TensorSpec, read_model
from edgert.runtime import quantize
from edgert.runtime.tensors import load_input

pytestmark = pytest.mark.runtime

KWS = TensorSpec("input_1", 0, (1, 49, 10, 1), "int8", scale=0.5847029089927673, zero_point=83)


def test_npy_of_the_input_dtype_is_used_as_is(tmp_path):
    x = np.random.default_rng(0).integers(-128, 127, size=(1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    got = load_input(tmp_path / "x.npy", KWS)
    assert got.dtype == np.int8 and got.tobytes() == x.tobytes()
    np.save(tmp_path / "squeezed.npy", x.reshape(49, 10))
    assert load_input(tmp_path / "squeezed.npy", KWS).shape == (1, 49, 10, 1)


def test_npy_floats_are_quantized(tmp_path):
    f = np.linspace(-200, 100, 490, dtype=np.float32).reshape(1, 49, 10, 1)
    np.save(tmp_path / "f.npy", f)
    got = load_input(tmp_path / "f.npy", KWS)
    assert got.dtype == np.int8
    assert got.tobytes() == quantize(f, KWS).tobytes()
    assert got.min() == -128 and got.max() == 127  # both ends clamp


def test_npy_errors(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((1, 40, 10, 1), np.int8))
    with pytest.raises(InputDataError, match=r"shape \[1, 40, 10, 1\] does not fit input 'input_1' of shape \[1, 49, 10, 1\]"):
        load_input(tmp_path / "wrong.npy", KWS)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputDataError, match=r"holds Python objects \(pickled\), which edgert never loads"):
        load_input(tmp_path / "obj.npy", KWS)  # pickles can run code: refused
    (tmp_path / "text.npy").write_text("1,2,3\n")
    with pytest.raises(InputDataError, match=r"not a NumPy .npy file \(no NumPy header\)"):
        load_input(tmp_path / "text.npy", KWS)
    with open(tmp_path / "zipped.npy", "wb") as f:
        np.savez(f, x=np.zeros(3))
    with pytest.raises(InputDataError, match=r"is a .npz file where a .npy is needed"):
        load_input(tmp_path / "zipped.npy", KWS)
    np.save(tmp_path / "nan.npy", np.full((1, 49, 10, 1), np.nan, np.float32))
    with pytest.raises(InputDataError, match="holds NaN or infinite values"):
        load_input(tmp_path / "nan.npy", KWS)
    with pytest.raises(InputDataError, match="no such file"):
        load_input(tmp_path / "absent.npy", KWS)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(InputDataError, match="unknown input type '.csv'"):
        load_input(tmp_path / "x.csv", KWS)


def test_image_goes_through_preprocessing(conformance_dir):
    spec = read_model(conformance_dir / "models" / "visual_wake_words__vww_96_int8.tflite").inputs[0]
    x = load_input(conformance_dir / "inputs" / "tflm__person_detection__person.bmp", spec)
    assert x.shape == tuple(spec.shape) and x.dtype == np.dtype(spec.dtype)
    # A grayscale BMP becomes three identical channels for an RGB model.
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2])
    assert len(np.unique(x)) > 20  # real picture content, not a constant


def test_broken_image_is_a_user_error(tmp_path, conformance_dir):
    spec = read_model(conformance_dir / "models" / "visual_wake_words__vww_96_int8.tflite").inputs[0]
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(InputDataError, match="not a readable image"):
        load_input(tmp_path / "bad.png", spec)


def _wav_samples(path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def test_wav_fills_an_audio_window(conformance_dir, caplog):
    wav = conformance_dir / "inputs" / "tflm__micro_speech__yes_1000ms.wav"
    pcm = _wav_samples(wav)
    assert pcm.size == 16000
    window = TensorSpec("audio", 0, (1, 16000), "float32")
    x = load_input(wav, window)
    assert x.dtype == np.float32 and x.shape == (1, 16000)
    assert x.tobytes() == (pcm.astype(np.float32) / 32768).reshape(1, 16000).tobytes()
    assert -1.0 <= x.min() < 0 < x.max() < 1.0
    with caplog.at_level(logging.WARNING, logger="edgert"):
        cropped = load_input(wav, TensorSpec("audio", 0, (15600,), "float32"))
        padded = load_input(wav, TensorSpec("audio", 0, (1, 16384, 1), "float32"))
    assert "cropping" in caplog.text and "padding" in caplog.text
    assert np.array_equal(cropped, x[0, :15600])
    assert np.array_equal(padded[0, :16000, 0], x[0]) and not padded[0, 16000:].any()
    q = TensorSpec("audio", 0, (1, 16000), "int8", scale=1 / 128, zero_point=0)
    assert load_input(wav, q).tobytes() == quantize(x, q).tobytes()


def test_wav_for_a_feature_model_asks_for_npy(conformance_dir):
    spec = read_model(conformance_dir / "models" / "tflm__micro_speech_quantized.tflite").inputs[0]
    with pytest.raises(InputDataError, match=r"expects features of shape \[1, 1960\].*\.npy"):
        load_input(conformance_dir / "inputs" / "tflm__micro_speech__no_1000ms.wav", spec)


def test_wav_must_be_16_bit(tmp_path):
    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)))
    with pytest.raises(InputDataError, match="8-bit samples"):
        load_input(tmp_path / "u8.wav", TensorSpec("audio", 0, (256,), "float32"))
