"""Video files written by OpenCV and read back through VideoCapture, as a finite video and as a camera."""

from __future__ import annotations

import logging

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgert.loop import Pipeline  # noqa: E402
from edgert.loop.resize import opencv_resizer  # noqa: E402
from edgert.runtime.preprocess import image_preprocess_for  # noqa: E402
from tests.loop.conftest import VWW_INT8  # noqa: E402

FRAMES = 24


def _write_video(path, frames) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (w, h))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    writer.release()


def _decoded(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(bgr)
    cap.release()
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory, scene_images):
    """A 24-frame MJPG clip: the person / no-person pictures, brightness changing per frame."""
    from PIL import Image

    frames = []
    for i in range(FRAMES):
        base = np.asarray(Image.fromarray(scene_images[i % 2]).resize((128, 96)), np.int16)
        frames.append(np.clip(base + (i * 5 - 60), 0, 255).astype(np.uint8))
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    _write_video(path, frames)
    return path


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, scene_images):
    """A clip whose frames are all the same picture (what a stuck camera driver delivers)."""
    path = tmp_path_factory.mktemp("still") / "still.avi"
    _write_video(path, [scene_images[0]] * 30)
    return path


@pytest.mark.parametrize("opencv_shrink, threads", [(False, 0), (False, 2), (True, 3)],
                         ids=["pillow-shrink", "pillow-shrink-2-threads", "cv2-shrink-3-threads"])
def test_finite_video_every_frame_once_in_order(vww_model, clip, opencv_shrink, threads):
    results = []
    summary = Pipeline(vww_model, f"video:{clip}", on_result=results.append, opencv_shrink=opencv_shrink,
                       prepare_threads=threads).run()
    decoded = _decoded(clip)
    assert summary.frames == len(decoded) == FRAMES
    assert summary.dropped == 0 and summary.stopped_by == "end"
    assert [r.frame for r in results] == list(range(FRAMES))
    assert [r.name for r in results] == [f"clip.avi#{i}" for i in range(FRAMES)]
    # Each result is the real interpreter's answer on that very frame, prepared the
    # way the run was asked to: prepare_image's own Pillow shrink (the default) or OpenCV's.
    plan = image_preprocess_for(vww_model.inputs[0], None)
    resize = opencv_resizer(plan, shrink=True) if opencv_shrink else (lambda bgr: bgr)
    for result, bgr in zip(results, decoded, strict=True):
        scores = vww_model.predict(plan(resize(bgr), color="bgr"))[0][0]
        assert result.classes[0].id == int(np.argmax(scores))
        assert result.classes[0].score == pytest.approx(float(scores.max()))


def test_max_frames_on_a_video(vww_model, clip):
    results = []
    summary = Pipeline(vww_model, f"video:{clip}", max_frames=5, on_result=results.append).run()
    assert summary.frames == 5 and summary.stopped_by == "max_frames"
    assert [r.frame for r in results] == [0, 1, 2, 3, 4]


def test_camera_that_runs_dry_is_reopened_with_backoff(vww_model, clip):
    # camera: opens through the same VideoCapture call as /dev/video0; at the end of
    # the file the "camera" stops delivering, which the loop must survive.
    summary = Pipeline(vww_model, f"camera:{clip}", max_frames=FRAMES * 2 + 5, retry_delays=(0.01,)).run()
    assert summary.frames == FRAMES * 2 + 5
    assert summary.reopens >= 2
    assert summary.max_queue == 1


def test_stale_camera_frames_trigger_a_reopen(vww_model, still_clip, caplog):
    caplog.set_level(logging.WARNING, logger="edgert.loop")
    summary = Pipeline(vww_model, f"camera:{still_clip}?stale=5", max_frames=12, retry_delays=(0.01,)).run()
    assert summary.frames == 12
    assert summary.reopens >= 1
    assert any("stale" in r.getMessage() for r in caplog.records)


def test_audio_model_on_a_video_is_refused(ad01_model, clip):
    from edgert.errors import InputDataError

    with pytest.raises(InputDataError, match="not an image"):
        Pipeline(ad01_model, f"video:{clip}")


def test_offline_camera_demo_sample_runs(tmp_path):
    import subprocess
    import sys

    from tests.conftest import CONFORMANCE, ROOT, require_conformance

    require_conformance(CONFORMANCE)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "offline_camera_demo.py"), "--corpus", str(CONFORMANCE), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "video : 60 frames, 0 dropped" in proc.stdout
    assert "camera: 150 frames" in proc.stdout
    assert len((tmp_path / "preds.csv").read_text().splitlines()) == 61
    assert any((tmp_path / "snapshots").iterdir())


def test_pi_camera_sample_on_a_video(clip, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    labels = tmp_path / "labels.txt"
    labels.write_text("no person\nperson\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "pi_camera_classifier.py"), str(VWW_INT8), "--source", f"video:{clip}",
         "--out", str(tmp_path / "out"), "--labels", str(labels), "--max-frames", "10"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "10 frames, 0 dropped" in proc.stdout
    assert len((tmp_path / "out" / "preds.jsonl").read_text().splitlines()) == 10
    assert "person" in proc.stdout
