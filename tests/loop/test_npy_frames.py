"""``npy:`` frames follow ``edgert predict``'s input rules: integers cast only when they fit, no NaN."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.loop import Pipeline

pytestmark = pytest.mark.runtime


def test_integers_that_do_not_fit_the_input_are_refused_before_the_first_frame(ad01_model, tmp_path):
    rng = np.random.default_rng(1)
    fitting = rng.integers(-128, 128, (3, 640)).astype(np.int16)
    np.save(tmp_path / "fits.npy", fitting)
    results = []
    summary = Pipeline(ad01_model, f"npy:{tmp_path / 'fits.npy'}", on_result=results.append).run()
    np.save(tmp_path / "same.npy", fitting.astype(np.int8))
    same = []
    Pipeline(ad01_model, f"npy:{tmp_path / 'same.npy'}", on_result=same.append).run()
    assert summary.frames == 3 and [r.anomaly.score for r in results] == [r.anomaly.score for r in same]

    too_big = fitting.copy()
    too_big[2, 7] = 300  # would wrap to 44 in an int8 cast
    np.save(tmp_path / "big.npy", too_big)
    with pytest.raises(InputDataError, match=r"big.npy: values -128..300 do not fit input"):
        Pipeline(ad01_model, f"npy:{tmp_path / 'big.npy'}")


def test_a_frame_with_nan_is_skipped_and_counted(ad01_model, ad01_frames, tmp_path, caplog):
    windows = np.stack([ad01_frames[i : i + 5].reshape(640) for i in range(0, 20, 5)])
    windows[1, 10] = np.nan
    np.save(tmp_path / "w.npy", windows)
    results = []
    with caplog.at_level(logging.WARNING):
        summary = Pipeline(ad01_model, f"npy:{tmp_path / 'w.npy'}", on_result=results.append).run()
    assert summary.frames == 3 and summary.skipped == 1
    assert [r.name for r in results] == ["w.npy[0]", "w.npy[2]", "w.npy[3]"]
    assert any("w.npy[1]: holds NaN or infinite values" in r.getMessage() for r in caplog.records)


def test_labels_that_do_not_match_the_classes_are_warned_about(vww_model, scene_images, tmp_path, caplog):
    np.save(tmp_path / "pics.npy", np.stack(scene_images))
    with caplog.at_level(logging.WARNING):
        Pipeline(vww_model, f"npy:{tmp_path / 'pics.npy'}", labels=["a", "b", "c"]).run()
    assert any("3 labels for 2 classes" in r.getMessage() for r in caplog.records)
