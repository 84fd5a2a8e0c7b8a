"""Detection end to end on a real TFLite model: a video written by OpenCV, the loop, boxes out.

The corpus holds no detection model, so the test converts one: a small graph
with SSD-style outputs (boxes ``[1,N,4]`` ymin/xmin/ymax/xmax, classes, scores,
count) that "detects" the brightest 8x8 cells of its 64x64 input with real
TFLite ops (mean, average pool, top-k, gather). A white square moves across a
dark clip; the loop must report a box around it on every frame, and the
snapshots sink must draw that box.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
tf = pytest.importorskip("tensorflow")

from edgert.loop import Pipeline  # noqa: E402
from edgert.runtime import load_model  # noqa: E402

SIZE, CELL, TOP = 64, 8, 3
FRAMES = 12


def _bright_cell_detector() -> bytes:
    grid = SIZE // CELL
    table = np.array([[r / grid, c / grid, (r + 1) / grid, (c + 1) / grid] for r in range(grid) for c in range(grid)], np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8, name="image")])
    def detect(image):
        gray = tf.reduce_mean(tf.cast(image, tf.float32), axis=-1, keepdims=True)
        cells = tf.reshape(tf.nn.avg_pool2d(gray, CELL, CELL, "VALID"), [1, grid * grid]) / 255.0
        scores, idx = tf.math.top_k(cells, k=TOP)
        boxes = tf.reshape(tf.gather(tf.constant(table), tf.reshape(idx, [-1])), [1, TOP, 4])
        red = tf.reshape(tf.nn.avg_pool2d(tf.cast(image[..., :1], tf.float32), CELL, CELL, "VALID"), [1, grid * grid])
        redness = tf.gather(red / 255.0 - cells, tf.reshape(idx, [-1]), axis=1)
        classes = tf.cast(redness > 0.25, tf.float32)  # 0: a white cell, 1: a red one
        count = tf.reshape(tf.reduce_sum(tf.cast(scores > 0.5, tf.float32)), [1])
        return boxes, classes, scores, count

    converter = tf.lite.TFLiteConverter.from_concrete_functions([detect.get_concrete_function()], detect)
    return converter.convert()


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    path = tmp_path_factory.mktemp("detector") / "bright_cells.tflite"
    path.write_bytes(_bright_cell_detector())
    return path


@pytest.fixture(scope="module")
def moving_square(tmp_path_factory):
    """A 128x128 MJPG clip: a 32x32 white square stepping right and down over dark noise."""
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("square") / "square.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 128))
    squares = []
    for i in range(FRAMES):
        frame = rng.integers(0, 40, (128, 128, 3), dtype=np.uint8)
        top, left = 16 * (i % 6), 16 * (i % 7)  # on the model's 8x8 cell grid once shrunk to 64x64
        frame[top:top + 32, left:left + 32] = 255
        writer.write(frame)
        squares.append((left / 128, top / 128, (left + 32) / 128, (top + 32) / 128))
    writer.release()
    return path, squares


def test_real_detection_model_on_a_video_boxes_follow_the_square(detector, moving_square, tmp_path):
    path, squares = moving_square
    model = load_model(detector)
    results = []
    shots = tmp_path / "shots"
    summary = Pipeline(model, f"video:{path}", [f"snapshots:{shots}?every=1&format=png"], threshold=0.5,
                       labels=["white", "red"], on_result=results.append).run()
    assert summary.task == "detection" and summary.frames == FRAMES and summary.stopped_by == "end"
    for result, (xmin, ymin, xmax, ymax) in zip(results, squares):
        assert 1 <= len(result.objects) <= TOP
        for obj in result.objects:  # every reported cell lies inside the square (8x8 cells of 64: 1/8 each)
            b = obj.bbox
            assert obj.label == "white" and obj.score > 0.5
            assert xmin - 1e-6 <= b.xmin < b.xmax <= xmax + 1e-6 and ymin - 1e-6 <= b.ymin < b.ymax <= ymax + 1e-6
            assert b.xmax - b.xmin == pytest.approx(1 / 8) and b.ymax - b.ymin == pytest.approx(1 / 8)
    # The snapshot of the first frame has the red outline drawn on the top object's box.
    from PIL import Image

    saved = sorted(shots.iterdir())
    assert len(saved) == FRAMES
    with Image.open(saved[0]) as img:
        pixels = np.asarray(img.convert("RGB"))
    box = results[0].objects[0].bbox.scale(128, 128)
    edge = pixels[int(box.ymax) - 1, int(box.xmin) + 4:int(box.xmax) - 4]
    assert (edge[:, 0] > 200).all() and (edge[:, 1] < 60).all() and (edge[:, 2] < 60).all()
