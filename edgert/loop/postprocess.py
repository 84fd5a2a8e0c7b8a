"""Model outputs -> results, by task (pycoral-style small functions and documented records).

The task comes from the model's metadata (``task``) or, when absent, from its
output shapes:

- ``detection``: the four outputs of ``TFLite_Detection_PostProcess`` (boxes,
  classes, scores, count), or raw ``boxes [1,N,4]`` + ``scores [1,N,C]``, or
  (with ``task: detection`` in the metadata or ``--task detection``) one YOLO-style
  ``[1, N, 4+C]`` / ``[1, 4+C, N]`` output (``cx, cy, w, h`` then class scores,
  YOLOv8), or ``[1, N, 5+C]`` with an objectness column before the class scores
  (YOLOv5, metadata ``postprocessing.objectness: true``; confidence = objectness x
  class score); raw boxes are decoded here with per-class non-maximum suppression.
  YOLO boxes may be normalised or in pixels of the model input (told apart per
  inference by their centres);
- ``anomaly``: one output shaped like the input (an autoencoder, e.g. MLPerf
  Tiny ad01): the score is the reconstruction mean squared error;
- ``classification``: one ``[1, C]`` output with C >= 2;
- ``regression``: anything else (values passed through).

Boxes are normalised to [0, 1] of the model input, ``xmin, ymin, xmax, ymax``.

Metadata ``postprocessing`` keys read here: ``top_k``, ``output`` (``probabilities``
or ``logits``), ``score_threshold``, ``anomaly_threshold``, and for raw boxes
``box_format`` (:data:`BOX_FORMATS`; default ``yxyx``, ``cxcywh`` for YOLO),
``iou_threshold`` (default 0.5) and ``objectness`` (default false).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgert.errors import InputDataError
from edgert.model.metadata import TASKS

__all__ = [
    "Class",
    "BBox",
    "Object",
    "Anomaly",
    "Postprocessor",
    "TASKS",
    "BOX_FORMATS",
    "infer_task",
    "get_classes",
    "get_objects",
    "decode_boxes",
    "non_max_suppression",
    "reconstruction_error",
    "Result",
]

log = logging.getLogger(__name__)

#: Tasks the loop understands.
#: Raw box layouts: TFLite/SSD ``ymin, xmin, ymax, xmax``; ``xmin, ymin, xmax, ymax``; YOLO ``cx, cy, w, h``.
BOX_FORMATS = ("yxyx", "xyxy", "cxcywh")
# Normalised box centres stay near [0, 1]; pixel ones lie beyond this on any real input.
_PIXEL_CENTRE = 1.5


@dataclass(frozen=True)
class Class:
    """One classification result.

    Attributes:
        id: Class index in the model output.
        score: Probability (or logit for a logits model).
        label: Name from the model's labels, or None.
    """

    id: int
    score: float
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``id, score, label``)."""
        return {"id": self.id, "score": round(self.score, 6), "label": self.label}


@dataclass(frozen=True)
class BBox:
    """A box in normalised input coordinates (0..1)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def area(self) -> float:
        """Area in the box's own units (0 for an inverted box)."""
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)

    def scale(self, width: float, height: float) -> BBox:
        """The box in pixels of a ``width`` x ``height`` image."""
        return BBox(self.xmin * width, self.ymin * height, self.xmax * width, self.ymax * height)

    def to_dict(self) -> dict[str, float]:
        """The JSON form (``xmin, ymin, xmax, ymax``)."""
        corners = (self.xmin, self.ymin, self.xmax, self.ymax)
        return {k: round(float(v), 5) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True)}


@dataclass(frozen=True)
class Object:
    """One detected object.

    Attributes:
        id: Class index.
        score: Detection confidence.
        bbox: Normalised :class:`BBox`.
        label: Name from the model's labels, or None.
    """

    id: int
    score: float
    bbox: BBox
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``id, score, label, bbox``)."""
        return {"id": self.id, "score": round(self.score, 6), "label": self.label, "bbox": self.bbox.to_dict()}


@dataclass(frozen=True)
class Anomaly:
    """An anomaly score.

    Attributes:
        score: Reconstruction MSE (autoencoder) or the model's own score.
        threshold: Decision threshold, or None when not set.
        is_anomaly: ``score > threshold``, or None without a threshold.
    """

    score: float
    threshold: float | None = None
    is_anomaly: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``score, threshold, is_anomaly``)."""
        return {"score": round(self.score, 6), "threshold": self.threshold, "is_anomaly": self.is_anomaly}


# ---- free functions ------------------------------------------------------------------
def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def get_classes(
    scores: np.ndarray, top_k: int = 1, threshold: float | None = None, labels: Sequence[str] | None = None
) -> list[Class]:
    """Top-k classes of one score vector, best first, at least ``threshold``."""
    flat = np.asarray(scores, np.float32).reshape(-1)
    k = max(1, min(top_k, flat.size))
    if k == 1:
        order = [int(flat.argmax())]
    else:
        part = np.argpartition(-flat, k - 1)[:k]
        order = part[np.argsort(-flat[part], kind="stable")].tolist()
    out = []
    for i in order:
        score = float(flat[i])
        if threshold is not None and score < threshold:
            continue
        out.append(Class(i, score, labels[i] if labels and i < len(labels) else None))
    return out


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``[ymin, xmin, ymax, xmax]`` box with many."""
    y1 = np.maximum(box[0], others[:, 0])
    x1 = np.maximum(box[1], others[:, 1])
    y2 = np.minimum(box[2], others[:, 2])
    x2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, max_detections: int = 100
) -> list[int]:
    """Greedy NMS: indices of kept boxes (``[N, 4]`` as ymin, xmin, ymax, xmax), best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return keep


def decode_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float = 0.5,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    box_format: str = "yxyx",
    labels: Sequence[str] | None = None,
) -> list[Object]:
    """Raw detector outputs -> objects, with per-class NMS.

    Args:
        boxes: ``[N, 4]`` boxes, normalised; ``box_format`` ``"yxyx"`` (ymin, xmin,
            ymax, xmax — TFLite/SSD order), ``"xyxy"`` or ``"cxcywh"`` (YOLO).
        scores: ``[N, C]`` class scores (or ``[N]`` for a single class).
        threshold: Minimum score.
        iou_threshold: Boxes of one class overlapping more than this are merged.
    """
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.asarray(scores, np.float32).reshape(b.shape[0], -1)
    if box_format == "xyxy":
        b = b[:, [1, 0, 3, 2]]
    elif box_format == "cxcywh":
        cx, cy, w, h = b.T
        b = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)
    elif box_format != "yxyx":
        raise InputDataError(f"unknown box format {box_format!r}", f"use one of: {', '.join(BOX_FORMATS)}")
    ids = np.argmax(s, axis=1)
    best = s[np.arange(s.shape[0]), ids]
    mask = best >= threshold
    objects: list[Object] = []
    for cls in np.unique(ids[mask]):
        sel = np.nonzero(mask & (ids == cls))[0]
        for j in non_max_suppression(b[sel], best[sel], iou_threshold, max_detections):
            i = sel[j]
            y0, x0, y1, x1 = (float(v) for v in np.clip(b[i], 0.0, 1.0))
            objects.append(Object(int(cls), float(best[i]), BBox(x0, y0, x1, y1), _label(labels, int(cls))))
    objects.sort(key=lambda o: -o.score)
    return objects[:max_detections]


def get_objects(
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    count: np.ndarray | int,
    *,
    threshold: float = 0.5,
    labels: Sequence[str] | None = None,
) -> list[Object]:
    """Objects from ``TFLite_Detection_PostProcess`` outputs (already NMS'd; boxes ymin, xmin, ymax, xmax)."""
    n = int(np.asarray(count).reshape(-1)[0]) if np.size(count) else 0
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    c = np.asarray(classes).reshape(-1)
    s = np.asarray(scores, np.float32).reshape(-1)
    n = max(0, min(n, b.shape[0], c.size, s.size))
    out = []
    for i in range(n):
        if s[i] < threshold:
            continue
        y0, x0, y1, x1 = (float(v) for v in np.clip(b[i], 0.0, 1.0))
        cls = int(c[i])
        out.append(Object(cls, float(s[i]), BBox(x0, y0, x1, y1), _label(labels, cls)))
    return out


def reconstruction_error(original: np.ndarray, reconstructed: np.ndarray) -> float:
    """Mean squared error between an autoencoder's input and output (both float)."""
    a = np.asarray(original, np.float32).reshape(-1)
    b = np.asarray(reconstructed, np.float32).reshape(-1)
    return float(np.mean((a - b) ** 2))


def _label(labels: Sequence[str] | None, i: int) -> str | None:
    return labels[i] if labels and 0 <= i < len(labels) else None


# ---- task inference -------------------------------------------------------------------
def _detection_postprocess_order(model_file, outputs) -> list[int] | None:
    """Output positions of (boxes, classes, scores, count) when the graph ends in TFLite_Detection_PostProcess."""
    if model_file is None:
        return None
    try:
        ops = model_file.operators()
    except (AttributeError, ValueError):
        return None
    by_tensor = {spec.index: pos for pos, spec in enumerate(outputs)}
    for op in ops:
        if op.name == "TFLite_Detection_PostProcess" and len(op.outputs) == 4:
            order = [by_tensor.get(t) for t in op.outputs]
            if None not in order:
                return order  # type: ignore[return-value]
    return None


def infer_task(inputs, outputs, metadata: dict | None = None, model_file=None) -> str:
    """The model's task: metadata ``task`` first, else from its output shapes."""
    task = (metadata or {}).get("task")
    if task:
        if task not in TASKS:
            raise InputDataError(f"metadata task {task!r} is unknown", f"use one of: {', '.join(TASKS)}")
        return task
    if _detection_postprocess_order(model_file, outputs) is not None or _ssd_shapes(outputs) is not None:
        return "detection"
    if _raw_box_shapes(outputs) is not None:
        return "detection"
    if (
        len(outputs) == 1
        and len(inputs) == 1
        and outputs[0].num_elements == inputs[0].num_elements
        and inputs[0].num_elements > 1
    ):
        return "anomaly"
    if len(outputs) == 1:
        dims = [d for d in outputs[0].shape if d != 1]
        if len(dims) == 1 and dims[0] >= 2:
            return "classification"
    return "regression"


def _ssd_shapes(outputs) -> list[int] | None:
    """(boxes, classes, scores, count) positions for 4 SSD-style outputs by shape and name."""
    if len(outputs) != 4:
        return None
    boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[-1] == 4]
    count = [i for i, o in enumerate(outputs) if o.num_elements == 1]
    pair = [i for i, o in enumerate(outputs) if len(o.shape) == 2 and o.num_elements > 1]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        return None
    first, second = pair
    # Default output order of the op is classes then scores; names settle exported variants.
    if "score" in outputs[first].name.lower() or "class" in outputs[second].name.lower():
        first, second = second, first
    return [boxes[0], first, second, count[0]]


def _raw_box_shapes(outputs) -> tuple[int, int] | None:
    """(boxes, scores) positions for raw ``[1,N,4]`` + ``[1,N,C]`` outputs."""
    if len(outputs) != 2:
        return None
    for b, s in ((0, 1), (1, 0)):
        bs, ss = outputs[b].shape, outputs[s].shape
        if len(bs) == 3 and bs[-1] == 4 and len(ss) == 3 and ss[1] == bs[1] and bs[1] > 1:
            return b, s
    return None


def _input_hw(inputs) -> tuple[int, int]:
    """(height, width) of an NHWC/NCHW image input, (1, 1) when there is none."""
    shape = tuple(inputs[0].shape) if inputs else ()
    if len(shape) == 4:
        return (shape[2], shape[3]) if shape[1] in (1, 3) and shape[3] not in (1, 3) else (shape[1], shape[2])
    return 1, 1


def _pixel_scale(box_format: str, height: int, width: int) -> np.ndarray:
    """Divisors taking boxes in ``box_format`` from pixels to [0, 1] of a ``height`` x ``width`` input."""
    return np.array([height, width] * 2 if box_format == "yxyx" else [width, height] * 2, np.float32)


def _in_pixels(boxes: np.ndarray, box_format: str) -> bool:
    """Whether ``[N, 4]`` boxes are in pixels of the model input, judged by their centres.

    Sizes would mislead: YOLOv5 grows a box up to 4x its anchor, so a low-score
    candidate can be wider than the image in normalised units.
    """
    if not boxes.size:
        return False
    centres = boxes[:, :2] if box_format == "cxcywh" else (boxes[:, :2] + boxes[:, 2:]) / 2
    return float(np.max(centres)) > _PIXEL_CENTRE


def _postprocessing(metadata: dict) -> dict:
    """The metadata's ``postprocessing`` object ({} when absent)."""
    post = metadata.get("postprocessing") or {}
    if not isinstance(post, dict):
        raise InputDataError("metadata postprocessing is not an object", "re-embed the metadata with edgert")
    return post


def _number(post: dict, key: str, default: float | None = None) -> float | None:
    """``postprocessing[key]`` as a float, ``default`` when absent."""
    value = post.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputDataError(f"metadata postprocessing.{key} is {value!r}, not a number",
                             "re-embed the metadata with a number there")
    return float(value)


def _number_or_default(post: dict, key: str, default: float) -> float:
    """``postprocessing[key]`` as a float, ``default`` when absent; an explicit null is not a number."""
    value = _number(post, key, default)
    if value is None:
        raise InputDataError(f"metadata postprocessing.{key} is null, not a number",
                             "re-embed the metadata with a number there")
    return value


class Postprocessor:
    """Turns one inference's outputs into task results, configured once per model.

    Args:
        inputs: Model input specs.
        outputs: Model output specs.
        metadata: edgert metadata (task, labels, postprocessing defaults) or None.
        task: Force a task (else metadata, else inferred).
        top_k: Classes to report (default: metadata ``top_k`` or 1).
        threshold: Score threshold (classification/detection) or anomaly threshold.
        labels: Class names (else the metadata's ``labels``).
        model_file: The :class:`~edgert.model.ModelFile` (finds TFLite_Detection_PostProcess).

    Raises:
        InputDataError: Unknown task, malformed ``postprocessing`` metadata, or
            detection outputs of no layout this module decodes.
    """

    def __init__(self, inputs, outputs, metadata: dict | None = None, *, task: str | None = None, top_k: int | None = None,
                 threshold: float | None = None, labels: Sequence[str] | None = None, model_file=None) -> None:
        md = metadata or {}
        post = _postprocessing(md)
        if task is not None and task not in TASKS:
            raise InputDataError(f"unknown task {task!r}", f"use one of: {', '.join(TASKS)}")
        self.task = task or infer_task(inputs, outputs, md, model_file)
        if labels is None:
            labels = md.get("labels")
        self.labels = [str(x) for x in labels] if isinstance(labels, (list, tuple)) else None
        if self.task == "classification" and self.labels and outputs and len(self.labels) != outputs[0].num_elements:
            n = len(self.labels)
            log.warning("%d label%s for %d classes: results are named by position, check the labels file",
                        n, "" if n == 1 else "s", outputs[0].num_elements)
        self.top_k = int(top_k if top_k is not None else _number_or_default(post, "top_k", 1))
        self.logits = post.get("output") == "logits"
        self.box_format = "yxyx"
        self.iou_threshold = 0.5
        self.objectness = False
        if self.task == "anomaly":
            default = _number(post, "anomaly_threshold")
        elif self.task == "detection":
            default = _number(post, "score_threshold", 0.5)
        else:
            default = _number(post, "score_threshold")
        self.threshold = threshold if threshold is not None else default
        self._inputs, self._outputs = inputs, outputs
        self._order: list[int] | None = None
        self._raw: tuple[int, int] | None = None
        self._yolo: bool | None = None  # single YOLO-style output; True when stored channels first [1, 4+C, N]
        if self.task == "detection":
            self._setup_detection(inputs, outputs, post, model_file)

    def _setup_detection(self, inputs, outputs, post: dict, model_file) -> None:
        """Read the raw-box keys and find the layout.

        The layouts: TFLite_Detection_PostProcess / SSD outputs, boxes + scores, or one YOLO output.
        """
        self.iou_threshold = _number_or_default(post, "iou_threshold", 0.5)
        self.objectness = post.get("objectness", False)
        if not isinstance(self.objectness, bool):
            raise InputDataError(f"metadata postprocessing.objectness is {self.objectness!r}, not true or false",
                                 "re-embed the metadata with a JSON boolean there")
        self.box_format = post.get("box_format", "yxyx")
        self._order = _detection_postprocess_order(model_file, outputs) or _ssd_shapes(outputs)
        self._raw = None if self._order else _raw_box_shapes(outputs)
        shapes = [list(o.shape) for o in outputs]
        columns = 5 if self.objectness else 4  # box (and objectness) values before the class scores
        if self._order is None and self._raw is None and len(outputs) == 1 and len(outputs[0].shape) == 3:
            n, m = outputs[0].shape[1:]
            if min(n, m) > columns:
                self._yolo = n < m  # YOLOv8 exports (1, 84, 8400): channels first
                self.box_format = post.get("box_format", "cxcywh")
                self._box_scale = _pixel_scale(self.box_format, *_input_hw(inputs))
        if self.objectness and self._yolo is None:
            raise InputDataError("metadata postprocessing.objectness needs one YOLO-style [1, N, 5+C] output; "
                                 f"this model has {shapes}",
                                 "remove objectness from the metadata")
        if self._order is None and self._raw is None and self._yolo is None:
            raise InputDataError(
                f"detection model outputs {shapes} are not SSD-style, boxes+scores or YOLO-style",
                "use --task classification/regression, or export with TFLite_Detection_PostProcess",
            )
        if self._order is None and self.box_format not in BOX_FORMATS:
            raise InputDataError(f"metadata postprocessing.box_format {self.box_format!r} is unknown",
                                 f"use one of: {', '.join(BOX_FORMATS)}")

    def _boxes_and_scores(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw boxes ``[N, 4]`` (normalised) and class scores ``[N, C]`` from boxes+scores or YOLO outputs."""
        if self._yolo is None:
            bi, si = self._raw  # type: ignore[misc]
            return outputs[bi], outputs[si]
        out = np.asarray(outputs[0], np.float32)[0]
        rows = out.T if self._yolo else out
        boxes = rows[:, :4]
        if _in_pixels(boxes, self.box_format):
            boxes = boxes / self._box_scale
        if self.objectness:
            return boxes, rows[:, 5:] * rows[:, 4:5]
        return boxes, rows[:, 4:]

    def __call__(self, outputs: list[np.ndarray], model_input: np.ndarray | None = None) -> dict[str, Any]:
        """Results for one inference.

        Args:
            outputs: Dequantized model outputs, in model order.
            model_input: The float input (before quantization), for reconstruction scores.

        Returns:
            ``{"classes": [...]}``, ``{"objects": [...]}``, ``{"anomaly": Anomaly}`` or ``{"values": [...]}``.
        """
        if self.task == "classification":
            scores = outputs[0]
            if self.logits:
                scores = _softmax(np.asarray(scores, np.float32).reshape(-1))
            return {"classes": get_classes(scores, self.top_k, self.threshold, self.labels)}
        if self.task == "detection":
            thr = 0.5 if self.threshold is None else self.threshold
            if self._order is not None:
                b, c, s, n = (outputs[i] for i in self._order)
                return {"objects": get_objects(b, c, s, n, threshold=thr, labels=self.labels)}
            boxes, scores = self._boxes_and_scores(outputs)
            return {"objects": decode_boxes(boxes, scores, threshold=thr, iou_threshold=self.iou_threshold,
                                            box_format=self.box_format, labels=self.labels)}
        if self.task == "anomaly":
            out = outputs[0]
            if out.size == 1 or model_input is None or model_input.size != out.size:
                score = float(np.asarray(out, np.float32).reshape(-1)[0])
            else:
                score = reconstruction_error(model_input, out)
            limit = self.threshold
            return {"anomaly": Anomaly(score, limit, None if limit is None else bool(score > limit))}
        return {"values": [float(v) for o in outputs for v in np.asarray(o, np.float32).reshape(-1)[:64]]}


@dataclass
class Result:
    """What the loop produced for one frame (what sinks receive).

    Attributes:
        frame: Frame sequence number (0, 1, ...) in the order the source delivered
            frames; a frame dropped (live source) or skipped (undecodable) leaves a gap.
        name: Where the frame came from (file name, ``clip.mp4#12``, ``window 7``).
        task: The model's task.
        latency_ms: Milliseconds: capture -> result for live sources; for finite
            sources (read ahead), the frame's own read, decode, preprocess and
            inference time, without its wait in a queue (see ``RunSummary``).
        classes: Classification results, best first.
        objects: Detected objects, best first.
        anomaly: Anomaly score, for anomaly models.
        values: Regression outputs (first 64 values).
        time: Wall-clock time of the result (seconds since the epoch).
    """

    frame: int
    name: str | None
    task: str
    latency_ms: float
    classes: list[Class] | None = None
    objects: list[Object] | None = None
    anomaly: Anomaly | None = None
    values: list[float] | None = None
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (one jsonl line)."""
        out: dict[str, Any] = {"frame": self.frame, "name": self.name, "time": round(self.time, 3),
                               "task": self.task, "latency_ms": round(self.latency_ms, 3)}
        if self.classes is not None:
            out["classes"] = [c.to_dict() for c in self.classes]
        if self.objects is not None:
            out["objects"] = [o.to_dict() for o in self.objects]
        if self.anomaly is not None:
            out["anomaly"] = self.anomaly.to_dict()
        if self.values is not None:
            out["values"] = [round(v, 6) for v in self.values]
        return out

    def headline(self) -> str:
        """The short human form: ``person 0.87``, ``2 objects: cat 0.91, ...``, ``anomaly 12.3 (ok)``."""
        if self.classes is not None:
            if not self.classes:
                return "-"
            return ", ".join(f"{c.label if c.label is not None else c.id} {c.score:.3f}" for c in self.classes)
        if self.objects is not None:
            parts = [f"{o.label if o.label is not None else o.id} {o.score:.2f}" for o in self.objects[:5]]
            return f"{len(self.objects)} object(s)" + (": " + ", ".join(parts) if parts else "")
        if self.anomaly is not None:
            verdict = "" if self.anomaly.is_anomaly is None else (" ANOMALY" if self.anomaly.is_anomaly else " ok")
            return f"anomaly score {self.anomaly.score:.4g}{verdict}"
        if self.values is not None:
            return " ".join(f"{v:.4g}" for v in self.values[:8])
        return "-"

    def key(self) -> tuple:
        """What 'the result changed' means for snapshots: top label / object labels / anomaly verdict."""
        if self.classes:
            return ("c", self.classes[0].id)
        if self.objects is not None:
            return ("o", tuple(sorted({o.id for o in self.objects})))
        if self.anomaly is not None:
            return ("a", self.anomaly.is_anomaly)
        return ("-",)
