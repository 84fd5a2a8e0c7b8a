"""`edgert optimize`: the search measured for real, its files, and what users get when things go wrong."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from edgert.cli import main


@pytest.fixture(scope="module")
def mcu_result(teacher, digits_split, tmp_path_factory):
    """optimize for cortex-m4-256k with a 1-point budget: teacher vs 50% structured pruning."""
    from edgert.optimize.search import SearchSpace, optimize

    train, test = digits_split
    out = tmp_path_factory.mktemp("opt") / "mcu"
    space = SearchSpace(sparsities=[], filter_fractions=[0.5], students=[], epochs_structured=8)
    result = optimize(teacher, "cortex-m4-256k", train, test_data=test, max_accuracy_drop=1.0, output_dir=out,
                      space=space, labels=[str(i) for i in range(10)])
    return result, out


def test_mcu_winner_fits_runs_in_tflite_micro_and_keeps_accuracy(mcu_result, digits_split):
    """What must hold whichever candidates pass in this run (training outcomes are not asserted)."""
    from edgert.fit import check_fit
    from edgert.model import read_model
    from edgert.optimize.micro_eval import micro_top1
    from edgert.optimize.search import choose_best
    from edgert.runtime import load_model

    result, out = mcu_result
    _, test = digits_split
    best = result.best
    # The teacher alone in int8 keeps its accuracy within a point on digits; whichever wins, it is int8.
    assert best is not None and best.passed and best.mode == "int8"
    assert best.accuracy_drop <= 1.0 and best.evaluated_with == "tflite-micro"
    # The winner is the smallest passing candidate, and an int8 file is at most ~0.27 of the float one.
    assert best is choose_best(result.candidates, "size")
    assert best.size_bytes == min(c.size_bytes for c in result.candidates if c.passed)
    assert best.size_bytes <= 0.3 * result.baseline["size_bytes"]
    data = (out / "best" / "model.tflite").read_bytes()
    assert check_fit(data, "cortex-m4-256k").fits
    model = read_model(data)
    assert model.inputs[0].dtype == "int8" and model.metadata["labels"][3] == "3"
    # The real TFLite Micro interpreter gives the same answers as the host interpreter.
    micro = micro_top1(data, test.x, test.y, limit=100)
    host = load_model(data, trusted=True)
    host_pred = [int(np.argmax(host.predict(x[None])[0])) for x in test.x[:100]]
    agree = np.mean(np.array(micro["predictions"]) == np.array(host_pred))
    assert agree >= 0.98


def test_training_is_reproducible(teacher, digits_split):
    """The same seed and data give the same weights: a candidate's verdict does not change between runs."""
    from edgert.optimize.pruning import structured_prune

    train, _ = digits_split
    runs = [structured_prune(teacher, train.x[:256], train.y[:256], fraction=0.5, epochs=2, seed=3).model
            for _ in range(2)]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_candidates_json_pareto_and_best_directory(mcu_result):
    result, out = mcu_result
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["target"] == "cortex-m4-256k" and doc["chosen"] == result.best.name
    by_name = {c["name"]: c for c in doc["candidates"]}
    # An MCU cannot run float16/dynamic models: skipped with the reason, never converted.
    assert by_name["teacher/float16"]["status"] == "skipped" and "TFLite Micro" in by_name["teacher/float16"]["reason"]
    measured = [c for c in doc["candidates"] if c["status"] != "skipped"]
    assert {c["name"] for c in measured} >= {"teacher/int8", "structured50/int8"}
    for c in measured:
        for key in ("size_bytes", "arena_bytes", "target_latency_ms", "host_latency_ms", "accuracy", "fits"):
            assert c[key] is not None, key
        assert c["passed"] == (c["status"] == "passed")
    assert by_name["structured50/int8"]["size_bytes"] <= 0.6 * by_name["teacher/int8"]["size_bytes"]
    assert sum(c["chosen"] for c in doc["candidates"]) == 1
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("model.tflite", "report.json", "report.md", "model_data.h", "model_data.cc"):
        assert (out / "best" / name).is_file(), name
    report = json.loads((out / "best" / "report.json").read_text())
    assert report["optimize"]["candidate"]["name"] == result.best.name


def test_budget_nobody_meets_exits_1_and_still_writes_candidates_and_picture(teacher_path, digits_npz, tmp_path, capfd):
    board = tmp_path / "tiny-mcu.toml"
    board.write_text('inherits = "cortex-m4-256k"\nname = "tiny-mcu"\ndescription = "8 KiB of flash"\nflash_bytes = 8192\n')
    out = tmp_path / "opt"
    code = main(["optimize", str(teacher_path), "--target", str(board), "--data", str(digits_npz),
                 "--max-accuracy-drop", "1.0", "-o", str(out), "--sparsity", "none", "--filters", "none",
                 "--students", "none", "--no-qat", "--json"])
    captured = capfd.readouterr()
    assert code == 1
    doc = json.loads(captured.out)  # exactly one JSON object on stdout, TensorFlow's chatter went to stderr
    assert doc["chosen"] is None and doc["closest"] == "teacher/int8"
    assert "no candidate fits tiny-mcu" in captured.err and "closest: teacher/int8" in captured.err
    written = json.loads((out / "candidates.json").read_text())
    assert all(not c["passed"] for c in written["candidates"])
    assert any("does not fit tiny-mcu" in c["reason"] for c in written["candidates"])
    assert (out / "pareto.png").is_file() and not (out / "best").exists()


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": "all"}, "no labels"),
        ({"x": 20, "y": 20}, "smaller than a training batch"),
        ({"x8": 200, "y": 200}, "model takes"),
    ],
    ids=["labels-missing", "smaller-than-a-batch", "wrong-shape"],
)
def test_bad_data_is_one_line_and_exit_2(teacher_path, digits_split, tmp_path, capfd, arrays, message):
    train, _ = digits_split
    path = tmp_path / "bad.npz"
    payload = {}
    for key, n in arrays.items():
        n = len(train) if n == "all" else n
        if key == "x":
            payload["x"] = train.x[:n]
        elif key == "x8":
            payload["x"] = train.x[:n, ::2, ::2]
        else:
            payload["y"] = train.y[:n]
    np.savez(path, **payload)
    code = main(["optimize", str(teacher_path), "--target", "cortex-m4-256k", "--data", str(path),
                 "--max-accuracy-drop", "1", "-o", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert message in err[-1] and err[-1].startswith("edgert optimize: error:")
    assert "Traceback" not in "\n".join(err)


def test_negative_budget_and_missing_file_are_user_errors(teacher_path, digits_npz, tmp_path, capfd):
    assert main(["optimize", str(teacher_path), "--target", "cortex-m4-256k", "--data", str(digits_npz),
                 "--max-accuracy-drop", "-1", "-o", str(tmp_path / "o")]) == 2
    assert "max-accuracy-drop" in capfd.readouterr().err
    assert main(["optimize", str(teacher_path), "--target", "cortex-m4-256k", "--data", str(tmp_path / "nope.npz"),
                 "--max-accuracy-drop", "1", "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capfd.readouterr().err


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler for the test, whatever the runner inherited (CI jobs may start with SIG_IGN)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_keeps_the_candidates_measured_so_far(teacher, digits_split, tmp_path, ctrl_c_raises):
    from edgert.optimize.search import SearchSpace, optimize

    train, test = digits_split
    out = tmp_path / "opt"

    def progress(done, total, label):
        # A real SIGINT, raised once two candidates are on disk. The search honours it at its next safe point
        # (edgert.interrupt), whichever native call the process is in when the signal is handled.
        path = out / "candidates.json"
        if path.exists() and len([c for c in json.loads(path.read_text())["candidates"] if c["status"] != "skipped"]) >= 2:
            signal.raise_signal(signal.SIGINT)

    space = SearchSpace(modes=["int8", "dynamic"], sparsities=[0.5], filter_fractions=[0.5], students=[], qat=False)
    with pytest.raises(KeyboardInterrupt):
        optimize(teacher, "raspberry-pi-4", train, test_data=test, max_accuracy_drop=1.0, output_dir=out,
                 space=space, progress=progress)
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["interrupted"] is True
    measured = [c for c in doc["candidates"] if c["status"] != "skipped"]
    assert len(measured) >= 2 and all(c["accuracy"] is not None for c in measured)
    # Stopped early: the last variant (magnitude pruning) was never reached.
    assert not any(c["variant"] == "magnitude50" for c in doc["candidates"])
    assert (out / "pareto.png").is_file()
    # The handler is restored: a Ctrl-C after optimize is an ordinary KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_pending_at_a_checkpoint_is_raised_there_and_a_second_one_at_once(ctrl_c_raises):
    from edgert.interrupt import checkpoint, deferred_interrupts, interrupt_pending

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)  # deferred: nothing raised here
            reached.append("after the signal")
            assert interrupt_pending()
            checkpoint()
            reached.append("after the checkpoint")
    assert reached == ["after the signal"] and not interrupt_pending()
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # the user insists: raised at once
            reached.append("never")
    assert "never" not in reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_ignored_by_the_user_stays_ignored():
    """Under nohup (SIGINT ignored) a long job must not start honouring Ctrl-C."""
    from edgert.interrupt import checkpoint, deferred_interrupts

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
            checkpoint()  # nothing pending: the signal was ignored
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_modes_follow_what_the_target_runs():
    from edgert.optimize.search import modes_for_target
    from edgert.targets import load_target

    assert modes_for_target(load_target("raspberry-pi-4"))[0] == ["float16", "dynamic", "int8", "int16x8"]
    allowed, skipped = modes_for_target(load_target("coral-usb"))
    assert allowed == ["int8"] and set(skipped) == {"float16", "dynamic", "int16x8"}
    allowed, skipped = modes_for_target(load_target("cortex-m4-256k"))
    assert "float16" not in allowed and "float16" in skipped


def test_techniques_that_cannot_follow_a_residual_model_are_skipped_not_fatal(digits_split, tmp_path):
    import keras

    from edgert.optimize.pruning import fine_tune
    from edgert.optimize.search import SearchSpace, optimize

    train, test = digits_split
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    fine_tune(model, train.x, train.y, epochs=2)
    space = SearchSpace(modes=["int8"], sparsities=[0.5], filter_fractions=[0.5], students=[0.5], qat=False,
                        epochs_prune=1)
    result = optimize(model, "raspberry-pi-4", train, test_data=test, max_accuracy_drop=100.0,
                      output_dir=tmp_path / "o", space=space)
    by_name = {c.name: c for c in result.candidates}
    assert by_name["structured50/int8"].status == "skipped" and "does not apply" in by_name["structured50/int8"].reason
    assert by_name["student0.5/int8"].status == "skipped"
    assert by_name["teacher/int8"].measured and by_name["magnitude50/int8"].measured
    assert result.best is not None


def test_qat_candidate_appears_when_post_training_int8_loses_more_than_the_budget(teacher, digits_split, tmp_path):
    from edgert.optimize.search import SearchSpace, optimize

    train, test = digits_split
    space = SearchSpace(modes=["int8"], sparsities=[], filter_fractions=[], students=[], epochs_qat=1)
    result = optimize(teacher, "cortex-m4-256k", train, test_data=test, max_accuracy_drop=0.0, output_dir=None,
                      space=space)
    by_name = {c.name: c for c in result.candidates}
    ptq = by_name["teacher/int8"]
    if ptq.accuracy_drop <= 0.0:
        # Post-training int8 lost nothing on this data, so QAT must (correctly) not be tried.
        assert "teacher+qat/int8" not in by_name
        return
    qat = by_name["teacher+qat/int8"]
    assert qat.measured and qat.mode == "int8" and "quantization-aware" in qat.technique


def test_ctrl_c_on_the_command_line_exits_130_and_keeps_what_was_measured(teacher_path, digits_npz, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "opt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgert", "optimize", str(teacher_path), "--target", "raspberry-pi-4", "--data",
         str(digits_npz), "--max-accuracy-drop", "1", "-o", str(out), "--formats", "int8,dynamic",
         "--sparsity", "none", "--filters", "none", "--students", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as in a terminal, even when the test runner itself was started with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            path = out / "candidates.json"
            if path.exists() and any(c["accuracy"] is not None for c in json.loads(path.read_text())["candidates"]):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "optimize finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["interrupted"] is True and any(c["accuracy"] is not None for c in doc["candidates"])
    assert (out / "pareto.png").is_file() and not (out / "best").exists()
