"""Fixtures of the loop tests: real conformance models, real ptys, real image files."""

from __future__ import annotations

import os
import pty
import threading
import time

import numpy as np
import pytest

from tests.conftest import CONFORMANCE, require_conformance

VWW_INT8 = CONFORMANCE / "models" / "visual_wake_words__vww_96_int8.tflite"
AD01_INT8 = CONFORMANCE / "models" / "anomaly_detection__ad01_int8.tflite"
AD01_INPUT = CONFORMANCE / "inputs" / "anomaly_detection__normal_id_01_00000000_hist_librosa.bin"
PERSON_BMP = CONFORMANCE / "inputs" / "tflm__person_detection__person.bmp"
NO_PERSON_BMP = CONFORMANCE / "inputs" / "tflm__person_detection__no_person.bmp"


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch):
    """Tests must not talk to a real systemd even when the runner is a service."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)


@pytest.fixture(scope="session")
def vww_model():
    """The MLPerf Tiny VWW int8 model, loaded with the real interpreter."""
    from edgert.runtime import load_model

    return load_model(require_conformance(VWW_INT8))


@pytest.fixture(scope="session")
def ad01_model():
    """The MLPerf Tiny ToyCar anomaly autoencoder (int8 I/O), loaded with the real interpreter."""
    from edgert.runtime import load_model

    return load_model(require_conformance(AD01_INT8))


@pytest.fixture(scope="session")
def ad01_frames() -> np.ndarray:
    """The real anomaly input: 200 log-mel frames x 128 bins, float32."""
    return np.fromfile(require_conformance(AD01_INPUT), "<f4").reshape(200, 128)


@pytest.fixture(scope="session")
def scene_images():
    """Two real 96x96 pictures (person / no person) as RGB uint8 arrays."""
    from PIL import Image

    return [np.asarray(Image.open(require_conformance(p)).convert("RGB")) for p in (PERSON_BMP, NO_PERSON_BMP)]


def csv_line(values) -> bytes:
    """One sensor line as a board prints it."""
    return (",".join(f"{v:.6f}" for v in values) + "\n").encode()


class PtyPair:
    """A real pseudo-terminal: the loop opens ``name`` with pyserial, the test writes to ``master``."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.name = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def read_lines(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Read ``count`` lines the loop wrote back (safety timeout only)."""
        import select

        buf = b""
        deadline = time.monotonic() + timeout
        while buf.count(b"\n") < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                buf += os.read(self.master, 4096)
        return buf.splitlines()[:count]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty_pair():
    pair = PtyPair()
    yield pair
    pair.close()


def start_writer(target, *args) -> threading.Thread:
    """Run a sensor-writer function in a daemon thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread
