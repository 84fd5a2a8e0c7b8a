"""Shared fixtures: the conformance corpus and real data.

Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = Path(os.environ.get("EDGERT_CONFORMANCE", ROOT.parent / "shared" / "conformance"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def conformance_missing_reason() -> str | None:
    """None when the corpus is here, else why tests that need it cannot run."""
    if (CONFORMANCE / "MANIFEST.tsv").is_file():
        return None
    return f"conformance corpus not found at {CONFORMANCE} (set EDGERT_CONFORMANCE)"


def conformance_models(pattern: str = "*.tflite") -> list:
    """Conformance model paths as pytest params; one failing/skipping param when the corpus is absent.

    Use as ``@pytest.mark.parametrize("model_path", conformance_models())``.
    In CI (``CI=true``) an absent corpus fails, so CI can never pass by skipping.
    """
    reason = conformance_missing_reason()
    if reason:
        return [pytest.param(None, id="conformance-missing", marks=[pytest.mark.conformance_missing])]
    return [pytest.param(p, id=p.stem) for p in sorted((CONFORMANCE / "models").glob(pattern))]


def require_conformance(path) -> Path:
    """Return ``path`` or skip (fail in CI) when the corpus is absent."""
    reason = conformance_missing_reason()
    if reason or path is None:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return Path(path)


@pytest.fixture(scope="session", autouse=True)
def _private_edgert_cache(tmp_path_factory):
    """One edgert cache (model verdicts) per test session: never the user's ~/.cache, each check runs once."""
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGERT_CACHE_DIR", str(tmp_path_factory.mktemp("edgert-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The conformance corpus directory (skips locally, fails in CI, when absent)."""
    return require_conformance(CONFORMANCE)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits (real scanned handwriting shipped in the package): (x, y), x float32 in [0, 16]."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    return data.images.astype("float32"), data.target.astype("int64")


@pytest.fixture(scope="session")
def firmware():
    """``firmware(target, kernels="cmsis-nn")`` -> FirmwareBuild of our Cortex-M firmware, built once per session.

    The TFLM library is cached on disk (``$EDGERT_FIRMWARE_CACHE``), so a later session only links.
    Skips without the Arm toolchain, QEMU or a TFLM tree; fails under ``CI=true``.
    """
    from tests.helpers import firmware_toolchain_missing

    reason = firmware_toolchain_missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but the firmware cannot be built: {reason}")
        pytest.skip(f"firmware tests need the Arm toolchain, QEMU and a TFLM tree: {reason}")
    from firmware_tools.firmware import build_firmware

    built: dict = {}

    def get(target: str, kernels: str = "cmsis-nn"):
        if (target, kernels) not in built:
            built[target, kernels] = build_firmware(target, kernels=kernels, progress=None)
        return built[target, kernels]

    return get


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance_missing: placeholder param when the corpus is absent")
