"""Detection end to end on real TFLite models: a video written by OpenCV, the loop, boxes out.

The corpus holds no detection model, so the tests convert two, each "detecting"
the bright 8x8 cells of its 64x64 input with real TFLite ops:

- SSD-style outputs computed by the graph itself (boxes ``[1,N,4]`` ymin/xmin/
  ymax/xmax, classes, scores, count: mean, average pool, top-k, gather);
- the real ``TFLite_Detection_PostProcess`` custom op (anchor decoding and NMS
  in TFLite's kernel), fused by the converter from a function that declares it
  with ``experimental_implements``, the way the TF Object Detection API exports
  SSD models.

A square moves across a dark clip; the loop must report boxes inside it on every
frame, and the snapshots sink must draw them.
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
    path = tmp_path_factory.mktemp("square") / "square.avi"
    return path, _write_square_clip(path, [(255, 255, 255)])


def _detection_postprocess_op_model(tmp_path) -> bytes:
    """Bright cells scored as background / white / red, then TFLite_Detection_PostProcess (5 detections)."""
    grid = SIZE // CELL
    n = grid * grid
    anchors = np.array([[(r + 0.5) / grid, (c + 0.5) / grid, 1 / grid, 1 / grid] for r in range(grid) for c in range(grid)], np.float32)
    attrs = {"max_detections": "i: 5", "max_classes_per_detection": "i: 1", "use_regular_nms": "b: false",
             "nms_score_threshold": "f: 0.3", "nms_iou_threshold": "f: 0.5", "y_scale": "f: 10.0", "x_scale": "f: 10.0",
             "h_scale": "f: 5.0", "w_scale": "f: 5.0", "num_classes": "i: 2"}
    signature = 'name: "TFLite_Detection_PostProcess" ' + " ".join(f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items())

    @tf.function(experimental_implements=signature)
    def postprocess(box_encodings, class_predictions, anchor_boxes):  # the converter puts the op in its place
        return tuple(tf.constant(0.0, tf.float32, name=name) for name in ("boxes", "classes", "scores", "num_detections"))

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8, name="image")])
    def detect(image):
        x = tf.cast(image, tf.float32) / 255.0
        bright = tf.reshape(tf.nn.avg_pool2d(tf.reduce_max(x, axis=-1, keepdims=True), CELL, CELL, "VALID"), [1, n, 1])
        red = tf.reshape(tf.nn.avg_pool2d(tf.clip_by_value((x[..., :1] - x[..., 1:2]) * 2.0, 0.0, 1.0), CELL, CELL, "VALID"), [1, n, 1])
        scores = tf.concat([1.0 - bright, bright * (1.0 - red), bright * red], axis=-1)  # background, white, red
        return postprocess(tf.zeros([1, n, 4]), scores, tf.constant(anchors))  # zero encodings: each box is its anchor

    module = tf.Module()
    module.detect = detect
    tf.saved_model.save(module, str(tmp_path / "saved_model"), signatures=detect.get_concrete_function())
    return tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model")).convert()


def _write_square_clip(path, colors) -> list[tuple[float, float, float, float]]:
    """128x128 MJPG: a 32x32 square (``colors[i % len]``) stepping right and down over dark noise; its xyxy per frame."""
    rng = np.random.default_rng(3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 128))
    squares = []
    for i in range(FRAMES):
        frame = rng.integers(0, 40, (128, 128, 3), dtype=np.uint8)
        top, left = 16 * (i % 6), 16 * (i % 7)  # on the model's 8x8 cell grid once shrunk to 64x64
        frame[top:top + 32, left:left + 32] = colors[i % len(colors)][::-1]  # BGR
        writer.write(frame)
        squares.append((left / 128, top / 128, (left + 32) / 128, (top + 32) / 128))
    writer.release()
    return squares


def _inside(box, square) -> bool:
    xmin, ymin, xmax, ymax = square
    return xmin - 1e-6 <= box.xmin < box.xmax <= xmax + 1e-6 and ymin - 1e-6 <= box.ymin < box.ymax <= ymax + 1e-6


def test_tflite_detection_postprocess_op_on_a_video(tmp_path):
    path = tmp_path / "ssd_op.tflite"
    path.write_bytes(_detection_postprocess_op_model(tmp_path))
    model = load_model(path)
    assert "TFLite_Detection_PostProcess" in [op.name for op in model.file.operators()]
    squares = _write_square_clip(tmp_path / "squares.avi", [(255, 255, 255), (255, 0, 0)])
    results = []
    summary = Pipeline(model, f"video:{tmp_path / 'squares.avi'}", labels=["white", "red"], on_result=results.append).run()
    assert summary.task == "detection" and summary.frames == FRAMES and summary.stopped_by == "end"
    for i, (result, square) in enumerate(zip(results, squares)):
        # The square covers 2x2 cells of the model's grid: the op keeps exactly those four.
        assert len(result.objects) == 4
        assert {o.label for o in result.objects} == {"white" if i % 2 == 0 else "red"}
        assert all(_inside(o.bbox, square) and o.score > 0.9 for o in result.objects)


def test_ssd_style_outputs_on_a_video_boxes_follow_the_square_and_are_drawn(detector, moving_square, tmp_path):
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
            assert obj.label == "white" and obj.score > 0.5 and _inside(b, (xmin, ymin, xmax, ymax))
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
