"""Backend selection and delegates (the Edge TPU runtime is not installed here: the real fallback path)."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from edgert.errors import BackendError, DelegateError
from edgert.runtime import available_backends, backend, load_model, select_backend

pytestmark = pytest.mark.runtime


def test_auto_selection_takes_the_first_working_backend(monkeypatch):
    monkeypatch.delenv("EDGERT_BACKEND", raising=False)
    names = available_backends()
    assert names, "no backend in this environment"
    assert select_backend().name == names[0]
    assert names == [n for n in backend.backend_names() if n in names]  # preference order kept


def test_explicit_name_and_environment(monkeypatch):
    name = available_backends()[0]
    alias = {"ai_edge_litert": "litert", "tflite_runtime": "tflite-runtime"}[name]
    monkeypatch.setenv("EDGERT_BACKEND", alias)
    assert select_backend().name == name
    monkeypatch.setenv("EDGERT_BACKEND", "onnxruntime")
    with pytest.raises(BackendError, match="unknown backend 'onnxruntime'.*choose one of: ai_edge_litert, tflite_runtime"):
        select_backend()
    assert select_backend(name).name == name  # an explicit name beats the environment


def test_missing_backend_names_the_fix(monkeypatch):
    missing = [n for n in backend.backend_names() if n not in available_backends()]
    if not missing:
        pytest.skip("both backends are installed here")
    with pytest.raises(BackendError) as info:
        select_backend(missing[0])
    assert "pip install" in str(info.value)


def test_tflite_runtime_under_numpy2_is_refused_with_the_fix(monkeypatch):
    # tflite-runtime 2.14 wheels are built against numpy 1.x: under numpy 2 the first model
    # load dies with "SystemError: ... returned a result with an exception set".
    monkeypatch.setattr(backend, "_numpy_version", lambda: "2.1.3")
    monkeypatch.setattr(backend, "_dist_version", lambda dist: "2.14.0")
    monkeypatch.setattr(backend, "_cache", {})
    with pytest.raises(BackendError) as info:
        select_backend("tflite_runtime")
    assert 'pip install "numpy<2"' in str(info.value) and "ai-edge-litert" in str(info.value)


def test_auto_selection_in_a_fresh_interpreter():
    """What a user's process picks: ai-edge-litert when installed, else tflite-runtime (the Pi venv)."""
    code = "from edgert.runtime import select_backend; print(select_backend().name)"
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "EDGERT_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_free, check=True)
    try:
        import ai_edge_litert.interpreter  # noqa: F401

        expected = "ai_edge_litert"
    except ImportError:
        expected = "tflite_runtime"
    assert out.stdout.strip() == expected


def test_missing_edgetpu_falls_back_to_cpu_with_one_warning(conformance_dir, caplog):
    path = conformance_dir / "models" / "tflm__hello_world_float.tflite"
    with caplog.at_level(logging.WARNING, logger="edgert"):
        model = load_model(path, delegate="edgetpu")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "libedgetpu.so.1" in warnings[0].getMessage() and "CPU" in warnings[0].getMessage()
    assert model.delegate is None
    plain = load_model(path)
    x = np.array([[1.0]], np.float32)
    assert model.predict(x)[0].tobytes() == plain.predict(x)[0].tobytes()


def test_required_delegate_fails(conformance_dir, tmp_path):
    path = conformance_dir / "models" / "tflm__hello_world_float.tflite"
    with pytest.raises(DelegateError, match=r"edgetpu delegate \(libedgetpu\.so\.1\).*install the Edge TPU runtime"):
        load_model(path, delegate="edgetpu", require_delegate=True)
    not_a_library = tmp_path / "libfake_delegate.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(DelegateError, match="libfake_delegate.so"):
        load_model(path, delegate=str(not_a_library), require_delegate=True)
