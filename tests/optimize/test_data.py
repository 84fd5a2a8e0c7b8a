"""Loading labeled data for optimize: .npz files and labeled image folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgert.errors import InputDataError
from edgert.optimize.data import digit_pixels, load_dataset, split_dataset


def test_labeled_folder_becomes_model_ready_arrays(tmp_path):
    load_digits = pytest.importorskip("sklearn.datasets").load_digits

    d = load_digits()
    for cls in ("0", "1", "7"):
        (tmp_path / cls).mkdir()
        for i, img in enumerate(digit_pixels(d.images[d.target == int(cls)][:5], 8)):
            Image.fromarray(img).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "7" / "notes.txt").write_text("not an image")
    data = load_dataset(tmp_path, (None, 16, 16, 1))
    assert data.x.shape == (15, 16, 16, 1) and data.x.dtype == np.float32
    assert data.labels == ["0", "1", "7"] and sorted(set(data.y.tolist())) == [0, 1, 2]
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0 and data.x.max() > 0.5


def test_npz_accepts_one_hot_labels_and_adds_the_channel_axis(tmp_path):
    x = np.random.default_rng(0).random((40, 16, 16), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(40) % 10]
    np.savez(tmp_path / "d.npz", x=x, y=y, labels=np.array([f"c{i}" for i in range(10)]))
    data = load_dataset(tmp_path / "d.npz", (None, 16, 16, 1))
    assert data.x.shape == (40, 16, 16, 1) and data.y.tolist() == (np.arange(40) % 10).tolist()
    assert data.labels[3] == "c3"


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"y": np.zeros(4)}, "no 'x' array"),
        ({"x": np.zeros((4, 16, 16, 1)), "y": np.array([0.5, 1, 2, 3])}, "integer class indices"),
        ({"x": np.full((4, 16, 16, 1), np.nan), "y": np.arange(4)}, "NaN"),
        ({"x": np.zeros((4, 16, 16, 1)), "y": np.arange(3)}, "4 samples but 3 labels"),
    ],
    ids=["no-x", "fractional-labels", "nan", "length-mismatch"],
)
def test_npz_problems_are_input_errors(tmp_path, payload, message):
    np.savez(tmp_path / "d.npz", **payload)
    with pytest.raises(InputDataError, match=message):
        load_dataset(tmp_path / "d.npz", (None, 16, 16, 1))


def test_folder_without_classes_and_wrong_file_type(tmp_path):
    with pytest.raises(InputDataError, match="no class sub-folders"):
        load_dataset(tmp_path, (None, 16, 16, 1))
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(InputDataError, match="not an .npz"):
        load_dataset(tmp_path / "data.csv", (None, 16, 16, 1))


def test_split_is_stratified_and_disjoint():
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    y = np.repeat(np.arange(4), 25)
    from edgert.optimize.data import Dataset

    train, test = split_dataset(Dataset(x, y), 0.2, seed=3)
    assert len(train) == 80 and len(test) == 20
    assert np.bincount(test.y).tolist() == [5, 5, 5, 5]
    assert not set(train.x[:, 0].tolist()) & set(test.x[:, 0].tolist())
