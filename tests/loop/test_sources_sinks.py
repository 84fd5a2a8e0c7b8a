"""stdin and npy sources, the console sink, and sources that are not there."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.loop import Pipeline, open_sink, open_source
from edgert.loop.sources import StdinSource
from edgert.loop.urls import parse_url
from tests.loop.conftest import csv_line

pytestmark = pytest.mark.runtime


def _mse(model, x: np.ndarray) -> float:
    out = model.predict(x.reshape(1, 640))[0]
    return float(np.mean((out.reshape(-1) - x.reshape(-1)) ** 2))


def test_stdin_csv_windows_in_order_including_an_unterminated_last_line(ad01_model, ad01_frames):
    data = b"".join(csv_line(row) for row in ad01_frames[:9]) + b"not,numbers\n" + csv_line(ad01_frames[9]).rstrip(b"\n")
    source = StdinSource(parse_url("stdin:?hop=640", StdinSource.options), stream=io.BufferedReader(io.BytesIO(data)))
    source.open()
    results = []
    summary = Pipeline(ad01_model, source, on_result=results.append).run()
    assert summary.frames == 2 and summary.malformed == 1 and summary.dropped == 0
    expected = [_mse(ad01_model, ad01_frames[i : i + 5]) for i in (0, 5)]
    assert [r.anomaly.score for r in results] == pytest.approx(expected, rel=1e-5)


def test_npy_rows_are_model_inputs(ad01_model, ad01_frames, tmp_path):
    windows = np.stack([ad01_frames[i : i + 5].reshape(640) for i in range(0, 30, 5)])
    np.save(tmp_path / "w.npy", windows)
    results = []
    summary = Pipeline(ad01_model, f"npy:{tmp_path / 'w.npy'}", on_result=results.append).run()
    assert summary.frames == 6
    assert [r.name for r in results] == [f"w.npy[{i}]" for i in range(6)]
    assert [r.anomaly.score for r in results] == pytest.approx([_mse(ad01_model, w) for w in windows], rel=1e-5)


def test_npy_of_the_wrong_size_is_refused(ad01_model, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 100), np.float32))
    with pytest.raises(InputDataError, match="takes"):
        Pipeline(ad01_model, f"npy:{tmp_path / 'bad.npy'}")


def test_npy_stack_of_pictures_goes_through_image_preprocessing(vww_model, scene_images, tmp_path):
    from edgert.runtime.preprocess import prepare_image

    np.save(tmp_path / "pics.npy", np.stack(scene_images))
    results = []
    Pipeline(vww_model, f"npy:{tmp_path / 'pics.npy'}", on_result=results.append).run()
    expected = [vww_model.predict(prepare_image(p, vww_model.inputs[0]))[0][0] for p in scene_images]
    assert [r.classes[0].score for r in results] == pytest.approx([float(e.max()) for e in expected])


def test_console_sink_is_rate_limited(vww_model, scene_images, tmp_path):
    np.save(tmp_path / "pics.npy", np.stack(scene_images * 3))
    every, limited = io.StringIO(), io.StringIO()
    sinks = [open_sink("console?rate=0", stream=every), open_sink("console?rate=0.001", stream=limited)]
    Pipeline(vww_model, f"npy:{tmp_path / 'pics.npy'}", sinks).run()
    assert len(every.getvalue().splitlines()) == 6
    assert len(limited.getvalue().splitlines()) == 1 and sinks[1].suppressed == 5


def test_unknown_sink_and_bad_option_values():
    with pytest.raises(InputDataError, match="unknown sink"):
        open_sink("mqtt://broker/topic")
    with pytest.raises(InputDataError, match="not an integer"):
        open_source("serial:/dev/null?window=many")
    with pytest.raises(InputDataError, match="format"):
        open_source("stdin?format=xml")


def test_snapshot_annotation_draws_boxes_on_the_frame():
    from edgert.loop import BBox, Frame, Object, Result
    from edgert.loop.sinks import annotate

    bgr = np.zeros((100, 200, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV order
    result = Result(0, "f", "detection", 1.0, objects=[Object(0, 0.9, BBox(0.25, 0.5, 0.75, 0.9), "cat")])
    image = np.asarray(annotate(Frame(bgr, "image", "bgr"), result))
    assert image.shape == (100, 200, 3)
    assert tuple(image[70, 100]) == (0, 0, 255)  # inside the box: the frame, converted to RGB
    assert tuple(image[70, 50]) == (255, 0, 0)  # the box's left edge at x = 0.25 * 200
    assert tuple(image[90, 100]) == (255, 0, 0)  # its bottom edge at y = 0.9 * 100
    assert image[:12].mean() < image[20:40].mean()  # the caption bar on top
