"""check_fit on real models: MLPerf Tiny latency/energy calibration, Edge TPU partition, CLI contract.

Runs without TensorFlow and without TFLite Micro (``measure_micro=False``); the
comparisons with the real TFLM arena are in ``test_micro.py``.
"""

from __future__ import annotations

import json

import pytest

from edgert.cli import main
from edgert.errors import InputDataError
from edgert.fit import check_fit, fit_markdown, parse_rate
from tests.conftest import CONFORMANCE, require_conformance
from tests.targets.conftest import KWS_REFERENCE, VWW_REFERENCE

pytestmark = pytest.mark.runtime


def _model(name):
    return require_conformance(CONFORMANCE / "models" / name)


@pytest.mark.parametrize("ref", [KWS_REFERENCE, VWW_REFERENCE], ids=["kws", "vww"])
def test_mlperf_tiny_latency_and_energy_within_1_5x(ref):
    report = check_fit(_model(ref["model"]), "cortex-m4-256k", measure_micro=False)
    ratio = report.latency_ms / ref["latency_ms"]
    assert 1 / 1.5 <= ratio <= 1.5, (report.latency_ms, ref)
    if "energy_uj" in ref:
        e_ratio = report.energy_uj / ref["energy_uj"]
        assert 1 / 1.5 <= e_ratio <= 1.5, (report.energy_uj, ref)


def test_faster_target_is_faster_and_uses_the_same_macs():
    path = _model(KWS_REFERENCE["model"])
    m4 = check_fit(path, "cortex-m4-256k", measure_micro=False)
    m7 = check_fit(path, "cortex-m7-stm32h7", measure_micro=False)
    assert m7.macs == m4.macs > 2_000_000
    assert m7.latency_ms < m4.latency_ms / 3  # 4x the clock, better IPC


def test_rate_gives_duty_cycled_power_and_battery_life():
    path = _model(KWS_REFERENCE["model"])
    r = check_fit(path, "cortex-m4-256k", rate_hz=parse_rate("1/s"), battery_mwh=1000 * 3.7, measure_micro=False)
    duty = r.latency_ms / 1000
    assert r.average_power_mw == pytest.approx(r.energy_uj / 1000 + 0.01 * (1 - duty))
    assert r.battery_hours == pytest.approx(3700 / r.average_power_mw)
    assert r.check("rate").ok
    # 10/s needs ~2 s of work per second: the rate check fails and so does fits
    busy = check_fit(path, "cortex-m4-256k", rate_hz=10, measure_micro=False)
    assert not busy.check("rate").ok and not busy.fits


@pytest.mark.parametrize("text, hz", [("1/s", 1.0), ("5/s", 5.0), ("0.2", 0.2), ("30/min", 0.5), ("2/h", 2 / 3600)])
def test_parse_rate(text, hz):
    assert parse_rate(text) == pytest.approx(hz)


@pytest.mark.parametrize("text", ["fast", "-1/s", "0", "1/fortnight"])
def test_parse_rate_rejects(text):
    with pytest.raises(InputDataError):
        parse_rate(text)


def test_edgetpu_float_graph_stays_on_cpu():
    r = check_fit(_model("visual_wake_words__vww_96_float.tflite"), "coral-usb")
    assert not r.fits
    assert r.edgetpu["subgraphs"] == 0 and r.edgetpu["mapped_ops"] == 0
    assert r.edgetpu["cpu_ops"]["CONV_2D"] == 14 and r.unsupported_ops["DEPTHWISE_CONV_2D"] == 13
    assert "float32" in r.edgetpu["first_unsupported"]["reason"]
    assert not r.check("full_int8").ok and "int8" in r.check("full_int8").detail


def test_edgetpu_int8_graph_maps_in_one_subgraph():
    r = check_fit(_model(KWS_REFERENCE["model"]), "coral-usb")
    assert r.fits and r.edgetpu["subgraphs"] == 1 and r.edgetpu["cpu_ops"] == {}
    assert r.edgetpu["mapped_ops"] == 13 and r.unsupported_ops == {}
    assert 0 < r.edgetpu["param_bytes"] < r.flash_bytes


def test_big_float_model_does_not_fit_small_mcu():
    r = check_fit(_model("visual_wake_words__vww_96_float.tflite"), "cortex-m4-256k", measure_micro=False)
    ram = r.check("ram")
    assert not r.fits and not ram.ok and ram.value > 256 * 1024 and "RAM" in ram.detail
    assert "computes in float" not in ram.detail
    assert r.unsupported_ops["CONV_2D"] == 14  # float kernels are not what an int8 MCU profile runs


def test_cli_fit_json_contract_and_exit_codes(capsys):
    path = str(_model(KWS_REFERENCE["model"]))
    argv = ["fit", path, "--target", "cortex-m4-256k", "--no-micro", "--rate", "1/s", "--battery-mah", "1000", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("target", "fits", "checks", "arena_bytes", "flash_bytes", "latency_ms", "energy_uj", "unsupported_ops"):
        assert key in d
    assert {"name", "ok", "value", "limit", "detail"} <= set(d["checks"][0])
    assert d["battery_hours"] > 24
    float_vww = str(_model("visual_wake_words__vww_96_float.tflite"))
    assert main(["fit", float_vww, "--target", "coral-usb", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["fits"] is False and d["edgetpu"]["subgraphs"] == 0 and d["edgetpu"]["cpu_ops"]
    assert main(["fit", "/nonexistent/model.tflite", "--target", "coral-usb", "--json"]) == 2


def test_fit_markdown_table():
    r = check_fit(_model(VWW_REFERENCE["model"]), "cortex-m4-256k", measure_micro=False)
    md = fit_markdown(r)
    assert md.startswith("### Fit on `cortex-m4-256k`: fits")
    assert "| check | ok | value | limit | detail |" in md
    assert "| ram | yes |" in md and "µJ" in md
