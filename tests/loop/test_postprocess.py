"""Postprocessing by task: top-k, SSD outputs, raw boxes with NMS, reconstruction scores, task inference."""

from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.loop.postprocess import (
    BBox,
    Postprocessor,
    decode_boxes,
    get_classes,
    get_objects,
    infer_task,
    non_max_suppression,
)
from edgert.model import TensorSpec, read_model
from tests.conftest import CONFORMANCE, require_conformance

pytestmark = pytest.mark.runtime


def _t(name, shape, dtype="float32") -> TensorSpec:
    return TensorSpec(name, 0, tuple(shape), dtype)


def test_top_k_with_labels_and_threshold():
    scores = np.array([[0.1, 0.5, 0.05, 0.35]], np.float32)
    top = get_classes(scores, top_k=3, threshold=0.2, labels=["a", "b", "c", "d"])
    assert [(c.id, c.label) for c in top] == [(1, "b"), (3, "d")]
    assert top[0].score == pytest.approx(0.5)


def test_logits_model_reports_probabilities():
    metadata = {"task": "classification", "postprocessing": {"output": "logits", "top_k": 3}}
    post = Postprocessor([_t("x", (1, 4))], [_t("y", (1, 3))], metadata)
    classes = post([np.array([[2.0, 0.0, 1.0]], np.float32)])["classes"]
    assert [c.id for c in classes] == [0, 2, 1]
    assert sum(c.score for c in classes) == pytest.approx(1.0, abs=1e-6)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 0.5, 0.5], [0.01, 0.01, 0.5, 0.5], [0.6, 0.6, 1, 1]], np.float32)
    keep = non_max_suppression(boxes, np.array([0.8, 0.9, 0.3]), iou_threshold=0.5)
    assert keep == [1, 2]


def test_raw_box_decoding_per_class_nms_and_threshold():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.5, 0.52], [0.1, 0.1, 0.5, 0.5], [0.7, 0.7, 0.9, 0.9]], np.float32)
    # two overlapping boxes of class 1, the same box as class 0, one low-score box.
    scores = np.array([[0.1, 0.9], [0.2, 0.7], [0.8, 0.1], [0.3, 0.2]], np.float32)
    objects = decode_boxes(boxes, scores, threshold=0.5, labels=["cat", "dog"])
    assert [(o.label, round(o.score, 2)) for o in objects] == [("dog", 0.9), ("cat", 0.8)]
    assert objects[0].bbox.to_dict() == BBox(0.1, 0.1, 0.5, 0.5).to_dict()
    yolo = decode_boxes(np.array([[0.5, 0.5, 0.2, 0.4]]), np.array([[0.9]]), box_format="cxcywh")
    assert yolo[0].bbox.to_dict() == {"xmin": 0.4, "ymin": 0.3, "xmax": 0.6, "ymax": 0.7}


def test_ssd_postprocess_outputs():
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 0, 0]]], np.float32)
    objects = get_objects(boxes, np.array([[3.0, 1.0, 0.0]]), np.array([[0.9, 0.4, 0.0]]), np.array([2.0]),
                          threshold=0.3, labels=["a", "b", "c", "d"])
    assert [(o.id, o.label) for o in objects] == [(3, "d"), (1, "b")]
    assert objects[0].bbox.to_dict() == BBox(0.2, 0.1, 0.4, 0.3).to_dict()  # ymin,xmin,ymax,xmax -> x/y


def test_ssd_shapes_are_recognised_as_detection_by_shape_and_name():
    outs = [_t("TFLite_Detection_PostProcess", (1, 10, 4)), _t("TFLite_Detection_PostProcess:1", (1, 10)),
            _t("TFLite_Detection_PostProcess:2", (1, 10)), _t("TFLite_Detection_PostProcess:3", (1,))]
    inp = [_t("image", (1, 300, 300, 3), "uint8")]
    assert infer_task(inp, outs) == "detection"
    post = Postprocessor(inp, outs, None, threshold=0.5)
    result = post([np.array([[[0, 0, 1, 1]] * 10], np.float32), np.full((1, 10), 7.0), np.linspace(1, 0, 10)[None],
                   np.array([10.0])])
    assert {o.id for o in result["objects"]} == {7} and len(result["objects"]) == 5


@pytest.mark.parametrize(
    "name,task",
    [("anomaly_detection__ad01_int8", "anomaly"), ("visual_wake_words__vww_96_int8", "classification"),
     ("keyword_spotting__kws_ref_model", "classification"), ("tflm__hello_world_int8", "regression")],
)
def test_task_inferred_from_real_models(name, task):
    model = read_model(require_conformance(CONFORMANCE / "models" / f"{name}.tflite"))
    assert infer_task(model.inputs, model.outputs, model.metadata, model) == task


def test_anomaly_score_is_reconstruction_mse_with_threshold():
    post = Postprocessor([_t("x", (1, 4))], [_t("y", (1, 4))], {"postprocessing": {"anomaly_threshold": 0.5}})
    assert post.task == "anomaly"
    a = post([np.array([[1, 1, 1, 1]], np.float32)], np.array([0, 1, 1, 3], np.float32))["anomaly"]
    assert a.score == pytest.approx((1 + 0 + 0 + 4) / 4) and a.is_anomaly is True
    b = Postprocessor([_t("x", (1, 4))], [_t("y", (1, 4))], None)([np.zeros((1, 4))], np.zeros(4))["anomaly"]
    assert b.score == 0.0 and b.is_anomaly is None


def test_yolo_style_single_output_channels_first_in_pixels():
    inp = [_t("images", (1, 64, 64, 3))]
    out = [_t("output0", (1, 6, 8))]  # 4 box values + 2 classes, 8 candidates, channels first (YOLOv8 export)
    post = Postprocessor(inp, out, None, task="detection", threshold=0.5, labels=["cat", "dog"])
    rows = np.array([
        [32, 32, 16, 16, 0.9, 0.1],   # a cat in the middle
        [33, 32, 16, 16, 0.8, 0.1],   # the same cat again: suppressed
        [8, 8, 8, 8, 0.1, 0.7],       # a dog top-left
        [50, 50, 4, 4, 0.2, 0.3],     # below threshold
    ] + [[0, 0, 0, 0, 0.0, 0.0]] * 4, np.float32)
    objects = post([rows.T[None]])["objects"]
    assert [(o.label, round(o.score, 2)) for o in objects] == [("cat", 0.9), ("dog", 0.7)]
    assert objects[0].bbox.to_dict() == {"xmin": 0.375, "ymin": 0.375, "xmax": 0.625, "ymax": 0.625}


@pytest.mark.parametrize("box_format,row", [("cxcywh", [32, 8, 16, 8]), ("xyxy", [24, 4, 40, 12]), ("yxyx", [4, 24, 12, 40])])
def test_yolo_pixel_boxes_are_normalised_per_axis_in_their_format(box_format, row):
    inp = [_t("images", (1, 32, 64, 3))]  # 32 high, 64 wide: x and y scale differently
    post = Postprocessor(inp, [_t("output0", (1, 8, 6))], {"postprocessing": {"box_format": box_format}}, task="detection")
    rows = np.array([row + [0.9, 0.1]] + [[0, 0, 0, 0, 0.0, 0.0]] * 7, np.float32)
    (obj,) = post([rows[None]])["objects"]
    assert obj.bbox.to_dict() == {"xmin": 0.375, "ymin": 0.125, "xmax": 0.625, "ymax": 0.375}


_BOXES_SCORES = [_t("boxes", (1, 10, 4)), _t("scores", (1, 10, 3))]


@pytest.mark.parametrize(
    "postprocessing,outputs,message",
    [
        (["top_k", 3], _BOXES_SCORES, "postprocessing is not an object"),
        ({"iou_threshold": "high"}, _BOXES_SCORES, "iou_threshold is 'high', not a number"),
        ({"score_threshold": True}, _BOXES_SCORES, "score_threshold is True, not a number"),
        ({"box_format": "ltrb"}, _BOXES_SCORES, "box_format 'ltrb' is unknown"),
        ({"objectness": "yes"}, [_t("output0", (1, 10, 7))], "objectness is 'yes', not true or false"),
        ({"objectness": True}, _BOXES_SCORES, r"objectness needs one YOLO-style \[1, N, 5\+C\] output"),
        ({"objectness": True}, [_t("output0", (1, 10, 5))], r"objectness needs one YOLO-style"),  # no class column left
    ],
)
def test_malformed_detection_metadata_is_refused_when_the_loop_is_set_up(postprocessing, outputs, message):
    """A typed one-line error before the first frame, not a ValueError/AttributeError or a failure mid-run."""
    with pytest.raises(InputDataError, match=message):
        Postprocessor([_t("images", (1, 64, 64, 3))], outputs, {"task": "detection", "postprocessing": postprocessing})
