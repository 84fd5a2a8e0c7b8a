"""Untrusted models open in a child first; crashes become InvalidModelError; verdicts are remembered."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgert.errors import InvalidModelError
from edgert.isolate import IsolationError, run_isolated
from edgert.model import read_model
from edgert.runtime import load_model, safe, select_backend

pytestmark = pytest.mark.runtime


def test_crashing_model_is_refused_and_this_process_lives(crasher, fresh_cache, spawn_counter, monkeypatch):
    monkeypatch.setattr(safe, "_RUNTIME_WORKS", set())  # this process has not yet seen the runtime work
    pid = os.getpid()
    with pytest.raises(InvalidModelError) as info:
        load_model(crasher)
    message = str(info.value)
    assert "the interpreter crashed (SIG" in message  # SIGABRT (ai-edge-litert) or SIGSEGV (tflite-runtime)
    assert "\n" not in message
    # The crash is the file's: the built-in control model ran in a second child, so the verdict may be kept.
    assert os.getpid() == pid and spawn_counter == ["edgert.runtime.safe:probe_model"] * 2
    # The bad verdict is remembered: the second attempt fails the same way without a child.
    with pytest.raises(InvalidModelError, match=r"crashed \(SIG\w+\) on the model \(remembered\)"):
        load_model(crasher)
    assert len(spawn_counter) == 2
    records = [json.loads(p.read_text()) for p in fresh_cache.glob("*.json")]
    assert [r["ok"] for r in records] == [False] and records[0]["kind"] == "signal"


# A platform where the interpreter crashes on every model (as ai-edge-litert does under qemu-user 7.2, which shows
# the guest the host's x86 /proc/cpuinfo): every child that builds an interpreter dies of a real SIGSEGV.
_BROKEN_RUNTIME = """
import ctypes, importlib
for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    module.Interpreter.allocate_tensors = lambda self: ctypes.string_at(0)
"""


def test_a_runtime_that_crashes_on_every_model_is_blamed_not_the_file(conformance_dir, fresh_cache, monkeypatch,
                                                                      tmp_path, spawn_counter):
    from edgert.errors import BackendError

    monkeypatch.setattr(safe, "_RUNTIME_WORKS", set())
    broken = tmp_path / "broken-platform"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text(_BROKEN_RUNTIME)
    path = conformance_dir / "models" / "tflm__hello_world_int8.tflite"
    with monkeypatch.context() as m:
        m.syspath_prepend(str(broken))  # the probe children inherit this process's sys.path
        with pytest.raises(BackendError) as info:
            load_model(path)
    message = str(info.value)
    assert "on every model" in message and "the runtime or the platform is broken, not the file" in message
    assert "\n" not in message and "use another model" not in message
    assert len(spawn_counter) == 2  # the model, then the control model
    assert not list(fresh_cache.glob("*.json"))  # nothing about the file was remembered
    # The environment fixed: the same file loads at once, no "(remembered)" refusal.
    model = load_model(path)
    assert model.predict(np.array([[0.5]], np.float32))[0].shape == (1, 1)


def test_no_cache_checks_again_and_remembers_nothing_and_cache_clear_forgets(conformance_dir, fresh_cache,
                                                                            spawn_counter, capsys, tmp_path):
    from edgert.cli import main

    path = conformance_dir / "models" / "tflm__hello_world_int8.tflite"
    load_model(path, use_cache=False)
    load_model(path, use_cache=False)
    assert len(spawn_counter) == 2 and not list(fresh_cache.glob("*.json"))
    load_model(path)
    assert len(spawn_counter) == 3 and len(list(fresh_cache.glob("*.json"))) == 1
    assert main(["cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cache_dir": str(fresh_cache), "verdicts": 1, "removed": 0}
    assert main(["cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 1
    assert not list(fresh_cache.glob("*.json"))
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros(read_model(path).inputs[0].shape, np.float32))
    assert main(["predict", str(path), "--no-cache", "--json", str(zeros)]) == 0
    assert len(spawn_counter) == 4 and not list(fresh_cache.glob("*.json"))


def test_interpreter_message_is_the_reason(rejected, fresh_cache):
    try:
        read_model(rejected)
    except InvalidModelError:
        pytest.skip("the structural validator now rejects this file before the interpreter sees it")
    with pytest.raises(InvalidModelError) as info:
        load_model(rejected)
    message = info.value.message
    assert message.startswith("the interpreter rejected the model: ")
    assert "crashed" not in message and "Error:" not in message  # the interpreter's words, not a type name
    assert len(message) > len("the interpreter rejected the model: ")


def test_second_load_spawns_no_child(conformance_dir, fresh_cache, spawn_counter):
    path = conformance_dir / "models" / "tflm__hello_world_int8.tflite"
    first = load_model(path)
    assert len(spawn_counter) == 1
    second = load_model(path)
    load_model(path.read_bytes())  # same bytes from memory: same sha256, same verdict
    assert len(spawn_counter) == 1
    x = np.array([[0.5]], np.float32)
    assert first.predict(x)[0].tobytes() == second.predict(x)[0].tobytes()
    backend = select_backend()
    verdict = safe.lookup_verdict(first.file.sha256, backend)
    assert verdict is not None and verdict.ok and verdict.cached
    assert backend.name in verdict.key and backend.version in verdict.key
    assert not list(fresh_cache.glob(".*"))  # atomic writes leave no temp files


def test_trusted_models_skip_the_check(conformance_dir, fresh_cache, spawn_counter):
    data = (conformance_dir / "models" / "tflm__hello_world_float.tflite").read_bytes()
    load_model(data, trusted=True)
    assert spawn_counter == []
    safe.remember_trusted(read_model(data).sha256)
    assert (fresh_cache / f"{read_model(data).sha256}.trusted.json").is_file()
    load_model(data)
    assert spawn_counter == []
    safe.forget(read_model(data).sha256)
    load_model(data)
    assert len(spawn_counter) == 1


def test_timeout_becomes_invalid_model_and_is_not_remembered(conformance_dir, fresh_cache, spawn_counter):
    path = conformance_dir / "models" / "tflm__hello_world_float.tflite"
    with pytest.raises(InvalidModelError, match=r"timed out on .*hello_world_float\.tflite"):
        safe.check_model(path, timeout=0.01)  # no child can import the backend in 10 ms
    assert not list(fresh_cache.glob("*.json"))  # a busy machine must not condemn a file
    assert safe.check_model(path).ok
    assert len(spawn_counter) == 2


def test_isolation_errors_map_to_reasons():
    with pytest.raises(IsolationError) as info:
        run_isolated("os:abort", timeout=30)
    assert safe.isolation_reason(info.value, "m.tflite") == "the interpreter crashed (SIGABRT) on m.tflite"
    with pytest.raises(IsolationError) as info:
        run_isolated("time:sleep", 30, timeout=0.5)
    assert safe.isolation_reason(info.value, "m.tflite").startswith("the interpreter timed out on m.tflite")
    error = IsolationError("error", "RuntimeError: Node number 4 failed to prepare.")
    assert safe.isolation_reason(error, "m.tflite") == "the interpreter rejected m.tflite: Node number 4 failed to prepare."


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "a"))
    assert safe.cache_dir() == tmp_path / "a" / "verdicts"
    monkeypatch.delenv("EDGERT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert safe.cache_dir() == tmp_path / "xdg" / "edgert" / "verdicts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert safe.cache_dir() == tmp_path / "home" / ".cache" / "edgert" / "verdicts"


def test_probe_limits_grow_with_the_model():
    small_mem, small_t = safe.check_limits(1000)
    big_mem, big_t = safe.check_limits(100 * 2**20)
    assert small_mem == 2**30 + 8000 and big_mem == 2**30 + 800 * 2**20
    assert big_t > small_t >= safe.CHECK_BASE_TIMEOUT_S


def test_retyped_activations_never_take_the_caller_down(micro_speech, fresh_cache):
    """Each activation tensor retyped int32: the model either runs or is refused; this process lives."""
    from tests.runtime.conftest import patch_tensor_type

    spec_by_index = {t.index: t for t in read_model(micro_speech).tensors()}
    outcomes = {}
    for index, spec in spec_by_index.items():
        if spec.is_constant:
            continue
        data = patch_tensor_type(micro_speech, index, 2)
        try:
            model = load_model(data)
        except InvalidModelError as e:
            assert "\n" not in str(e)
            outcomes[spec.name] = "crashed" if "crashed (SIG" in e.message else "rejected"
            continue
        model.predict(*[np.zeros(s.shape, s.dtype) for s in model.inputs])
        outcomes[spec.name] = "ran"
    assert len(outcomes) == 5 and outcomes["Reshape_1"] == "crashed"
