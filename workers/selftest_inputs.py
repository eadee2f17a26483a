"""What the self-test feeds the engines: a portrait, a tiny matting model, a subject on a background
and a voiced tone, each made on the spot or read from an installed package (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.errors import UserError

#: The voiced tone's pitch (Hz) and the voice checks' sample rate.
TONE_HZ = 140.0
VC_RATE = 48000


def portrait() -> np.ndarray:
    """scikit-image's astronaut portrait (BGR, 512x512; public domain), read from the installed
    package's data folder without importing scikit-image."""
    import cv2

    from workers.models.shipped import module_dir

    base = module_dir("skimage")
    path = base / "data" / "astronaut.png" if base is not None else None
    image = cv2.imread(str(path)) if path is not None and path.is_file() else None
    if image is None:
        try:
            from skimage import data

            image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
        except Exception:
            raise UserError(
                "The test portrait that comes with scikit-image is missing; reinstall scikit-image."
            ) from None
    return image


def build_test_matting_model(path: Path, size: int = 320, *, deep: bool = False) -> Path:
    """A tiny U²-Net-shaped ONNX model (bright pixels are foreground) written with the onnx package.
    ``deep`` adds a branch of two 16-channel 3x3 convolutions whose (tiny) result joins the logits:
    something for the 8-bit copy to quantize, with the same mask."""
    import onnx
    from onnx import TensorProto, helper

    weight = np.full((1, 3, 1, 1), 1.0, dtype=np.float32)
    bias = np.zeros((1,), dtype=np.float32)
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten()),
        helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
    ]
    nodes = [helper.make_node("Conv", ["input.1", "w", "b"], ["logits"])]
    if deep:
        rng = np.random.default_rng(0)
        x, cin = "input.1", 3
        for i in range(2):
            data = (rng.standard_normal((16, cin, 3, 3)) * (2.0 / (cin * 9)) ** 0.5).astype(np.float32)
            inits.append(helper.make_tensor(f"cw{i}", TensorProto.FLOAT, data.shape, data.flatten()))
            nodes += [
                helper.make_node("Conv", [x, f"cw{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            ]
            x, cin = f"r{i}", 16
        out = np.full((1, 16, 1, 1), 1e-4, np.float32)
        inits.append(helper.make_tensor("cwo", TensorProto.FLOAT, out.shape, out.flatten()))
        nodes += [
            helper.make_node("Conv", [x, "cwo"], ["branch"]),
            helper.make_node("Add", ["logits", "branch"], ["summed"]),
        ]
    nodes.append(helper.make_node("Sigmoid", ["summed" if deep else "logits"], ["d0"]))
    graph = helper.make_graph(
        nodes,
        "selftest_matting",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="snowai-selftest")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def subject() -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipse on a dark, noisy background (BGR) and its true mask."""
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(10, 50, size=(360, 480, 3), dtype=np.uint8)
    mask = np.zeros((360, 480), np.uint8)
    cv2.ellipse(mask, (240, 180), (96, 120), 0, 0, 360, 255, -1)
    image[mask > 0] = rng.integers(200, 250, size=(int((mask > 0).sum()), 3), dtype=np.uint8)
    return image, mask


def voice_like_tone(seconds: float = 1.2, rate: int = VC_RATE, f0: float = TONE_HZ) -> np.ndarray:
    """A steady voiced sound: harmonics of ``f0`` shaped by two formant-like peaks, with a soft onset."""
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    out = np.zeros_like(t)
    for k in range(1, 30):
        hz = k * f0
        if hz >= rate / 2:
            break
        gain = 1.0 / k + 0.8 * np.exp(-(((hz - 700.0) / 250.0) ** 2)) + 0.5 * np.exp(-(((hz - 1200.0) / 300.0) ** 2))
        out += gain * np.sin(2 * np.pi * hz * t)
    out *= np.minimum(1.0, t / 0.05)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)
