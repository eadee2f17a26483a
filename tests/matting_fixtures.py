"""Small matting models and images built by the tests themselves (nothing is downloaded).

``build_u2net_like`` writes an ONNX graph with the inputs and outputs of rembg's U²-Net family
(one float32 input ``1x3xSxS``, normalised with ImageNet mean/std; first output ``1x1xSxS``):
it calls bright pixels foreground, so a bright subject on a dark background has a known mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_u2net_like(
    path: Path,
    size: int = 320,
    gain: float = 3.0,
    extra_outputs: int = 1,
    *,
    jitter: float = 0.0,
    compute: int = 0,
) -> Path:
    """A U²-Net-shaped ONNX model: mask = sigmoid(gain * mean of the normalised channels).

    ``extra_outputs`` adds side outputs (d1, d2, ...) like the real model, which rembg ignores.
    ``jitter`` adds fresh uniform noise in [-jitter, jitter], in blobs, to the logits on every run (a
    model whose mask trembles from frame to frame on a still picture). ``compute`` adds that many 3x3
    convolutions of 16 channels at full size whose (tiny) result joins the logits: a slower model
    with the same mask.
    """
    import onnx
    from onnx import TensorProto, helper

    weight = np.full((1, 3, 1, 1), gain / 3.0, dtype=np.float32)
    bias = np.zeros((1,), dtype=np.float32)
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten()),
        helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
    ]
    nodes = [helper.make_node("Conv", ["input.1", "w", "b"], ["base"])]
    logits = "base"
    if compute:
        rng = np.random.default_rng(0)
        x, cin = "input.1", 3
        for i in range(compute):
            data = (rng.standard_normal((16, cin, 3, 3)) * (2.0 / (cin * 9)) ** 0.5).astype(np.float32)
            inits.append(helper.make_tensor(f"cw{i}", TensorProto.FLOAT, data.shape, data.flatten()))
            nodes.append(helper.make_node("Conv", [x, f"cw{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
            x, cin = f"r{i}", 16
        out = np.full((1, 16, 1, 1), 1e-4, np.float32)
        inits.append(helper.make_tensor("cwo", TensorProto.FLOAT, out.shape, out.flatten()))
        nodes.append(helper.make_node("Conv", [x, "cwo"], ["deep"]))
        nodes.append(helper.make_node("Add", [logits, "deep"], ["with_deep"]))
        logits = "with_deep"
    if jitter:
        # Noise in blobs (drawn at 1/16 of the size, then enlarged): edges that wander, doubtful patches.
        cells = max(2, size // 16)
        nodes.append(helper.make_node("RandomUniform", [], ["cells"], low=-jitter, high=jitter,
                                      shape=[1, 1, cells, cells]))
        scales = np.array([1, 1, size / cells, size / cells], np.float32)
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, scales.shape, scales))
        nodes.append(helper.make_node("Resize", ["cells", "", "scales"], ["noise"], mode="linear"))
        nodes.append(helper.make_node("Add", [logits, "noise"], ["noisy"]))
        logits = "noisy"
    nodes.append(helper.make_node("Sigmoid", [logits], ["d0"]))
    outputs = [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, size, size])]
    for i in range(1, extra_outputs + 1):
        nodes.append(helper.make_node("Identity", ["d0"], [f"d{i}"]))
        outputs.append(helper.make_tensor_value_info(f"d{i}", TensorProto.FLOAT, [1, 1, size, size]))
    graph = helper.make_graph(
        nodes,
        "u2net_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=inits,
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
