"""The ``picamera2:`` source against a stand-in module that follows picamera2's documented API.

picamera2 is not in Debian's arm64 archive (it comes from the Raspberry Pi archive), so the
tests install a small ``picamera2`` package on ``sys.path`` that behaves as the Picamera2
manual describes: ``Picamera2(camera_num)`` raises ``IndexError`` when there is no such camera
(it indexes ``global_camera_info()``), ``create_video_configuration(main={"size", "format"})``,
``configure``, ``start``, ``capture_array("main")`` returning an H×W×3 array whose ``RGB888``
pixels are stored B, G, R, then ``stop`` and ``close``. The pictures it delivers are the real
person / no-person photos of the conformance corpus.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from edgert.errors import DeviceError
from edgert.loop import Pipeline, open_source

pytestmark = pytest.mark.runtime

_FAKE = '''
"""Stand-in for picamera2 (the documented subset edgert uses)."""
import numpy as np

FRAMES = []          # RGB uint8 pictures the camera "sees", in turn
CAMERAS = [{"Num": 0, "Model": "imx708"}]
LOG = []


class Picamera2:
    @staticmethod
    def global_camera_info():
        return list(CAMERAS)

    def __init__(self, camera_num=0):
        info = self.global_camera_info()[camera_num]   # IndexError without that camera, as picamera2 does
        self.camera_num, self.config, self.started, self.count = info["Num"], None, False, 0
        LOG.append(("open", camera_num))

    def create_video_configuration(self, main=None, **kwargs):
        return {"use_case": "video", "main": dict(main or {})}

    def configure(self, config):
        if config["main"].get("format") not in ("RGB888", "BGR888", "XRGB8888", "XBGR8888"):
            raise RuntimeError("unsupported format")
        self.config = config

    def start(self):
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        LOG.append(("start", self.config["main"]["size"]))

    def capture_array(self, name="main"):
        if not self.started:
            raise RuntimeError("Camera is not running")
        width, height = self.config["main"]["size"]
        rgb = FRAMES[self.count % len(FRAMES)]
        self.count += 1
        ys = np.arange(height) * rgb.shape[0] // height
        xs = np.arange(width) * rgb.shape[1] // width
        return np.ascontiguousarray(rgb[ys][:, xs][..., ::-1])   # RGB888 is stored B, G, R

    def stop(self):
        self.started = False
        LOG.append(("stop",))

    def close(self):
        LOG.append(("close",))
'''


@pytest.fixture
def picamera2(tmp_path, monkeypatch, scene_images):
    """The stand-in module, importable as ``picamera2`` for this test only."""
    package = tmp_path / "fake" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(_FAKE))
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    import picamera2 as module

    module.FRAMES[:] = list(scene_images)
    yield module
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)


def test_csi_camera_frames_reach_the_model_as_the_person_photos(picamera2, vww_model, scene_images):
    from edgert.runtime.preprocess import prepare_image

    results = []
    summary = Pipeline(vww_model, "picamera2:0?width=96&height=96", max_frames=4, on_result=results.append).run()
    assert summary.frames == 4 and summary.stopped_by == "max_frames"
    # The same answers as the photos fed directly: the B, G, R frames were read as such.
    spec, metadata = vww_model.inputs[0], vww_model.metadata
    expected = []
    for rgb in scene_images:
        scores = vww_model.predict(prepare_image(rgb, spec, metadata))[0].reshape(-1)
        expected.append((int(np.argmax(scores)), round(float(scores.max()), 4)))
    assert expected[0] != expected[1]  # person / no person: the check can tell the frames apart
    # A live source drops frames the model cannot keep up with; frame n is the camera's n-th picture.
    got = [(r.classes[0].id, round(r.classes[0].score, 4)) for r in results]
    assert got == [expected[r.frame % 2] for r in results]
    assert picamera2.LOG[0] == ("open", 0) and ("start", (96, 96)) in picamera2.LOG
    assert picamera2.LOG[-2:] == [("stop",), ("close",)]  # released on exit


def test_no_camera_is_one_clear_line(picamera2):
    picamera2.CAMERAS.clear()
    with pytest.raises(DeviceError) as info:
        open_source("picamera2:0")
    message = str(info.value)
    assert "CSI camera 0 could not be started" in message and "rpicam-hello" in message and "\n" not in message


def test_missing_module_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError, as on a plain venv
    with pytest.raises(DeviceError) as info:
        open_source("picamera2:")
    message = str(info.value)
    assert "picamera2 is not installed" in message and "apt install python3-picamera2" in message
    assert "--system-site-packages" in message and "\n" not in message
