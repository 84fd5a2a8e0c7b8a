"""Fixtures for the targets/fit tests: the int8 conformance models and their real TFLM arenas."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, conformance_missing_reason

#: MLPerf Tiny reference (TFLM on STM32L4R5 @ 120 MHz) figures the cortex-m4-256k profile is calibrated on.
KWS_REFERENCE = {"model": "keyword_spotting__kws_ref_model.tflite", "latency_ms": 181.9, "energy_uj": 7374.0}
VWW_REFERENCE = {"model": "visual_wake_words__vww_96_int8.tflite", "latency_ms": 600.6}


def int8_conformance_models() -> list:
    """Params: every conformance model whose activations are all integer (the TFLM-runnable ones)."""
    if conformance_missing_reason():
        return [pytest.param(None, id="conformance-missing")]
    from edgert.model import read_model

    out = []
    for p in sorted((CONFORMANCE / "models").glob("*.tflite")):
        m = read_model(p)
        if all(not t.dtype.startswith("float") for t in m.tensors(0) if not t.is_constant):
            out.append(pytest.param(p, id=p.stem))
    return out


@pytest.fixture(scope="session")
def real_arenas():
    """Memoized ``{path: bytes}`` of the arena the real TFLite Micro allocates (one child process per model)."""
    cache: dict[Path, int] = {}

    def get(path: Path) -> int:
        from edgert.runtime.micro import micro_arena_bytes

        if path not in cache:
            cache[path] = micro_arena_bytes(Path(path).read_bytes())
        return cache[path]

    return get
