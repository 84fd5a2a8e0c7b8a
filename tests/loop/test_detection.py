"""Detection end to end on real TFLite models: a video written by OpenCV, the loop, boxes out.

The corpus holds no detection model, so the tests convert their own, each
"detecting" the bright cells of its 64x64 input with real TFLite ops:

- SSD-style outputs computed by the graph itself (boxes ``[1,N,4]`` ymin/xmin/
  ymax/xmax, classes, scores, count: mean, average pool, top-k, gather);
- the real ``TFLite_Detection_PostProcess`` custom op (anchor decoding and NMS
  in TFLite's kernel), fused by the converter from a function that declares it
  with ``experimental_implements``, the way the TF Object Detection API exports
  SSD models;
- raw boxes that edgert decodes with its own per-class NMS: candidates at two
  scales written out the way YOLOv8 exports them (one ``[1, 4+C, N]`` output,
  ``cx, cy, w, h`` in input pixels), int8-quantized with normalised boxes (as
  Ultralytics exports for TFLite), and the way YOLOv5 does (``[1, N, 5+C]`` with
  an objectness column, declared in the model's edgert metadata).

A square moves across a dark clip; the loop must report boxes inside it on every
frame, and the snapshots sink must draw them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
tf = pytest.importorskip("tensorflow")

from edgert.loop import Pipeline  # noqa: E402
from edgert.model import embed_metadata  # noqa: E402
from edgert.runtime import load_model  # noqa: E402

SIZE, CELL, TOP = 64, 8, 3
FRAMES = 12
COLORS, LABELS = [(255, 255, 255), (255, 0, 0)], ["white", "red"]  # squares alternate white and red
# Raw-box candidates as (window, stride, box side) in input pixels, in output order: the 8x8 cells;
# 16x16 windows every 4 pixels, so the window on a 16x16 square has up to four duplicates 4 px
# off it (IoU 0.6 with it: NMS merges them) while the square's four cells overlap it by IoU 0.25
# (kept); and the whole image boxed at twice its size, the way YOLOv5 grows a low-score box up
# to 4x its anchor (never reported, but wider than the image in normalised units).
RAW_SCALES = ((8, 8, 8), (16, 4, 16), (SIZE, SIZE, 2 * SIZE))
# Scores on the clip: the square's window and cells >= 0.96, its 4 px duplicates >= 0.73,
# windows 4 px off diagonally <= 0.6.
RAW_THRESHOLD = 0.65


def _convert(function, int8: bool = False) -> bytes:
    """TFLiteConverter on a tf.function; ``int8``: full integer quantization (int8 in and out) calibrated on the clip's frames."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [(frame[None, ::2, ::2] / 255.0).astype(np.float32)] for frame, _ in _square_frames(COLORS)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # Emitted for every full-integer conversion with a representative dataset (as edgert.convert notes).
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


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

    return _convert(detect)


def _window_scores(x, scales):
    """White and red scores ``[1, N, 2]`` of the windows of a float [0, 1] image, in ``scales`` order.

    A pixel's brightness (max channel) is split between white and red by its
    redness; a window scores the mean of its pixels.
    """
    bright = tf.reduce_max(x, axis=-1, keepdims=True)
    red = tf.clip_by_value((x[..., :1] - x[..., 1:2]) * 2.0, 0.0, 1.0)
    maps = tf.concat([bright * (1.0 - red), bright * red], axis=-1)
    return tf.concat([tf.reshape(tf.nn.avg_pool2d(maps, k, s, "VALID"), [1, -1, 2]) for k, s, _ in scales], axis=1)


def _candidate_boxes() -> np.ndarray:
    """``[N, 4]`` cx, cy, w, h in input pixels of the raw-box candidates (RAW_SCALES order, row-major)."""
    rows = []
    for window, stride, side in RAW_SCALES:
        n = (SIZE - window) // stride + 1
        rows += [[c * stride + window / 2, r * stride + window / 2, side, side] for r in range(n) for c in range(n)]
    return np.array(rows, np.float32)


def _yolo_model(*, pixels: bool, objectness: bool = False, int8: bool = False) -> bytes:
    """A raw-box detector over a float [0, 1] image with one YOLO-style output.

    Without objectness: boxes then white/red scores, stored ``[1, 4+2, N]`` as
    YOLOv8 exports; with it: boxes, objectness (brightness) and white/red given an
    object, stored ``[1, N, 5+2]`` as YOLOv5 does. Boxes are in input pixels or normalised.
    """
    boxes = _candidate_boxes() / (1.0 if pixels else SIZE)

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="image")])
    def detect(image):
        table = tf.constant(boxes[None])
        scores = _window_scores(image, RAW_SCALES)
        if objectness:
            bright = tf.reduce_sum(scores, axis=-1, keepdims=True)
            return tf.concat([table, bright, scores / (bright + 1e-6)], axis=-1)
        return tf.transpose(tf.concat([table, scores], axis=-1), [0, 2, 1])

    return _convert(detect, int8)


def _detection_postprocess_op_model(tmp_path) -> bytes:
    """Bright cells scored as background / white / red, then TFLite_Detection_PostProcess (5 detections)."""
    grid = SIZE // CELL
    n = grid * grid
    anchors = np.array(
        [[(r + 0.5) / grid, (c + 0.5) / grid, 1 / grid, 1 / grid] for r in range(grid) for c in range(grid)], np.float32
    )
    attrs = {"max_detections": "i: 5", "max_classes_per_detection": "i: 1", "use_regular_nms": "b: false",
             "nms_score_threshold": "f: 0.3", "nms_iou_threshold": "f: 0.5", "y_scale": "f: 10.0", "x_scale": "f: 10.0",
             "h_scale": "f: 5.0", "w_scale": "f: 5.0", "num_classes": "i: 2"}
    signature = 'name: "TFLite_Detection_PostProcess" ' + " ".join(
        f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items()
    )

    @tf.function(experimental_implements=signature)
    def postprocess(box_encodings, class_predictions, anchor_boxes):  # the converter puts the op in its place
        return tuple(tf.constant(0.0, tf.float32, name=name) for name in ("boxes", "classes", "scores", "num_detections"))

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8, name="image")])
    def detect(image):
        cells = _window_scores(tf.cast(image, tf.float32) / 255.0, [(CELL, CELL, CELL)])  # white, red
        scores = tf.concat([1.0 - tf.reduce_sum(cells, axis=-1, keepdims=True), cells], axis=-1)  # background first
        return postprocess(tf.zeros([1, n, 4]), scores, tf.constant(anchors))  # zero encodings: each box is its anchor

    module = tf.Module()
    module.detect = detect
    tf.saved_model.save(module, str(tmp_path / "saved_model"), signatures=detect.get_concrete_function())
    return tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model")).convert()


def _square_frames(colors):
    """FRAMES 128x128 RGB frames: a 32x32 square (``colors[i % len]``) stepping right and down over dark noise, and its xyxy."""
    rng = np.random.default_rng(3)
    for i in range(FRAMES):
        frame = rng.integers(0, 40, (128, 128, 3), dtype=np.uint8)
        top, left = 16 * (i % 6), 16 * (i % 7)  # on the model's 8x8 cell grid once shrunk to 64x64
        frame[top:top + 32, left:left + 32] = colors[i % len(colors)]
        yield frame, (left / 128, top / 128, (left + 32) / 128, (top + 32) / 128)


def _write_square_clip(path, colors) -> list[tuple[float, float, float, float]]:
    """An MJPG clip of :func:`_square_frames`; the square's xyxy per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 128))
    squares = []
    for frame, square in _square_frames(colors):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        squares.append(square)
    writer.release()
    return squares


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    path = tmp_path_factory.mktemp("detector") / "bright_cells.tflite"
    path.write_bytes(_bright_cell_detector())
    return path


@pytest.fixture(scope="module")
def moving_square(tmp_path_factory):
    path = tmp_path_factory.mktemp("square") / "square.avi"
    return path, _write_square_clip(path, [(255, 255, 255)])


@pytest.fixture(scope="module")
def white_and_red_squares(tmp_path_factory):
    path = tmp_path_factory.mktemp("squares") / "squares.avi"
    return path, _write_square_clip(path, COLORS)


def _run_loop(model, clip, sinks=(), **options) -> list:
    """The loop's results over a whole clip (the run must end cleanly after every frame)."""
    results = []
    summary = Pipeline(model, f"video:{clip}", sinks, on_result=results.append, **options).run()
    assert summary.task == "detection" and summary.frames == FRAMES and summary.stopped_by == "end", summary.error
    return results


def _inside(box, square) -> bool:
    xmin, ymin, xmax, ymax = square
    return xmin - 1e-6 <= box.xmin < box.xmax <= xmax + 1e-6 and ymin - 1e-6 <= box.ymin < box.ymax <= ymax + 1e-6


def _square_and_its_cells(square) -> set[tuple[float, ...]]:
    """What NMS keeps of the raw-box candidates on a square: its own window and the four cells it covers."""
    xmin, ymin, xmax, ymax = square
    half = (xmax - xmin) / 2
    return {square} | {(xmin + dx, ymin + dy, xmin + dx + half, ymin + dy + half) for dx in (0, half) for dy in (0, half)}


def _boxes_on_grid(objects, tol: float) -> set[tuple[float, ...]]:
    """The objects' xyxy boxes snapped to the 1/8 grid of the squares and cells, each within ``tol`` of it."""
    boxes = np.array([[o.bbox.xmin, o.bbox.ymin, o.bbox.xmax, o.bbox.ymax] for o in objects]).reshape(-1, 4)
    snapped = np.round(boxes * 8) / 8
    assert np.abs(boxes - snapped).max(initial=0.0) <= tol
    return {tuple(float(v) for v in box) for box in snapped}


def _assert_square_and_its_cells(results, squares, tol: float = 1e-6) -> None:
    """Every frame: exactly the square's window and its four cells, of the square's colour."""
    for i, (result, square) in enumerate(zip(results, squares, strict=True)):
        assert len(result.objects) == 5, (i, [o.to_dict() for o in result.objects])
        assert _boxes_on_grid(result.objects, tol) == _square_and_its_cells(square)
        assert {(o.id, o.label) for o in result.objects} == {(i % 2, LABELS[i % 2])}
        assert all(o.score > 0.9 for o in result.objects)


def _duplicates_in_view(square) -> int:
    """How many 16x16 windows 4 px above, below, left or right of the square's own lie inside the input."""
    left, top = square[0] * SIZE, square[1] * SIZE
    return sum(0 <= p + d <= SIZE - 16 for p in (left, top) for d in (-4, 4))


def test_tflite_detection_postprocess_op_on_a_video(white_and_red_squares, tmp_path):
    clip, squares = white_and_red_squares
    path = tmp_path / "ssd_op.tflite"
    path.write_bytes(_detection_postprocess_op_model(tmp_path))
    model = load_model(path)
    assert "TFLite_Detection_PostProcess" in [op.name for op in model.file.operators()]
    results = _run_loop(model, clip, labels=LABELS)
    for i, (result, square) in enumerate(zip(results, squares, strict=True)):
        # The square covers 2x2 cells of the model's grid: the op keeps exactly those four.
        assert len(result.objects) == 4
        assert {o.label for o in result.objects} == {LABELS[i % 2]}
        assert all(_inside(o.bbox, square) and o.score > 0.9 for o in result.objects)


def test_ssd_style_outputs_on_a_video_boxes_follow_the_square_and_are_drawn(detector, moving_square, tmp_path):
    path, squares = moving_square
    shots = tmp_path / "shots"
    results = _run_loop(load_model(detector), path, [f"snapshots:{shots}?every=1&format=png"], threshold=0.5, labels=LABELS)
    for result, (xmin, ymin, xmax, ymax) in zip(results, squares, strict=True):
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


def test_yolov8_output_in_pixels_nms_merges_the_duplicates_on_the_square(white_and_red_squares, tmp_path):
    clip, squares = white_and_red_squares
    data = _yolo_model(pixels=True)
    path = tmp_path / "yolov8.tflite"
    path.write_bytes(data)
    model = load_model(path)
    assert [(o.shape, o.dtype) for o in model.outputs] == [((1, 6, len(_candidate_boxes())), "float32")]
    _assert_square_and_its_cells(_run_loop(model, clip, task="detection", threshold=RAW_THRESHOLD, labels=LABELS), squares)
    # With NMS off (no IoU is above 1) the 4 px duplicates it merged come out too.
    path.write_bytes(embed_metadata(data, {"postprocessing": {"iou_threshold": 1.0}}))
    unmerged = _run_loop(path, clip, task="detection", threshold=RAW_THRESHOLD, labels=LABELS)
    assert [len(r.objects) for r in unmerged] == [5 + _duplicates_in_view(square) for square in squares]


def test_int8_yolov8_output_is_dequantized_to_the_same_boxes(white_and_red_squares, tmp_path):
    clip, squares = white_and_red_squares
    path = tmp_path / "yolov8_int8.tflite"
    path.write_bytes(_yolo_model(pixels=False, int8=True))
    model = load_model(path)
    out = model.outputs[0]
    assert model.inputs[0].dtype == "int8" and out.dtype == "int8" and out.scale
    results = _run_loop(model, clip, task="detection", threshold=RAW_THRESHOLD, labels=LABELS)
    _assert_square_and_its_cells(results, squares, tol=out.scale)  # boxes within one quantization step


def test_yolov5_objectness_column_declared_in_metadata(white_and_red_squares, tmp_path):
    clip, squares = white_and_red_squares
    metadata = {"task": "detection", "labels": LABELS, "postprocessing": {"objectness": True, "score_threshold": RAW_THRESHOLD}}
    path = tmp_path / "yolov5.tflite"
    path.write_bytes(embed_metadata(_yolo_model(pixels=False, objectness=True), metadata))
    model = load_model(path)
    assert model.outputs[0].shape == (1, len(_candidate_boxes()), 5 + 2)
    _assert_square_and_its_cells(_run_loop(model, clip), squares)  # task, labels, threshold: all from the metadata
