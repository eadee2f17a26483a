"""Small matting models and images built by the tests themselves (nothing is downloaded).

``build_u2net_like`` writes an ONNX graph with the inputs and outputs of rembg's U²-Net family
(one float32 input ``1x3xSxS``, normalised with ImageNet mean/std; first output ``1x1xSxS``):
it calls bright pixels foreground, so a bright subject on a dark background has a known mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_u2net_like(path: Path, size: int = 320, gain: float = 3.0, extra_outputs: int = 1) -> Path:
    """A U²-Net-shaped ONNX model: mask = sigmoid(gain * mean of the normalised channels).

    ``extra_outputs`` adds side outputs (d1, d2, ...) like the real model, which rembg ignores.
    """
    import onnx
    from onnx import TensorProto, helper

    weight = np.full((1, 3, 1, 1), gain / 3.0, dtype=np.float32)
    bias = np.zeros((1,), dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "w", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["d0"]),
    ]
    outputs = [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, size, size])]
    for i in range(1, extra_outputs + 1):
        nodes.append(helper.make_node("Identity", ["d0"], [f"d{i}"]))
        outputs.append(helper.make_tensor_value_info(f"d{i}", TensorProto.FLOAT, [1, 1, size, size]))
    graph = helper.make_graph(
        nodes,
        "u2net_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten()),
            helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="snowai-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def subject_image(height: int = 480, width: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipse (the subject) on a dark, slightly noisy background, as BGR uint8,
    and its true mask (uint8, 255 inside)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(10, 50, size=(height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    import cv2

    center = (width // 2, height // 2)
    axes = (width // 5, height // 3)
    cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1)
    subject = rng.integers(200, 250, size=(height, width, 3), dtype=np.uint8)
    img[mask > 0] = subject[mask > 0]
    return img, mask


def iou(a: np.ndarray, b: np.ndarray, threshold: int = 128) -> float:
    a, b = a >= threshold, b >= threshold
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
