"""Steadied masks: a model whose mask trembles on a still picture gives a still mask, and a moving
subject is followed at once (stand-in models built by the tests, the real engine, no Qt)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image

from workers.matting.engine import MattingEngine
from workers.matting.options import MattingOptions
from workers.matting.steady import MaskSteadier
from workers.models.store import ModelStore

H, W = 180, 320


@pytest.fixture
def trembling(tmp_path: Path) -> MattingEngine:
    """A model that adds fresh noise to its logits on every run, as real models tremble on a webcam."""
    store = ModelStore(tmp_path / "store")
    path = build_u2net_like(tmp_path / "src" / "trembling.onnx", gain=2.0, jitter=2.5)
    model = store.import_file(path, "matting", name="trembling").id
    return MattingEngine(store, MattingOptions(model=model), threads=1)


def camera_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.5) -> np.ndarray:
    return np.clip(frame.astype(np.float32) + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def scene(dx: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The subject shifted right by ``dx`` pixels over a fixed textured background, and its mask."""
    subject, truth = subject_image(H, W, seed=seed)
    blocks = np.random.default_rng(seed + 1).integers(10, 70, (H // 8, W // 8, 3), dtype=np.uint8)
    background = cv2.resize(blocks, (W, H), interpolation=cv2.INTER_NEAREST)  # a dark, blocky texture
    shift = np.float32([[1, 0, dx], [0, 1, 0]])
    moved = cv2.warpAffine(subject, shift, (W, H))
    mask = cv2.warpAffine(truth, shift, (W, H), flags=cv2.INTER_NEAREST)
    frame = background.copy()
    frame[mask > 0] = moved[mask > 0]
    return frame, mask


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_a_still_subject_gets_a_still_mask_from_a_trembling_model(trembling: MattingEngine) -> None:
    rng = np.random.default_rng(0)
    frame, truth = scene(0)
    steadier = MaskSteadier()
    raw_changes, steady_changes = [], []
    previous = None
    for i in range(24):
        shot = camera_noise(frame, rng)
        raw = trembling.predict_mask(shot)
        steady = steadier(shot, raw)
        if previous is not None and i >= 8:  # after the running mask settled
            raw_changes.append(change(raw, previous[0]))
            steady_changes.append(change(steady, previous[1]))
        previous = (raw, steady)
    raw_change, steady_change = float(np.mean(raw_changes)), float(np.mean(steady_changes))
    assert raw_change > 2.0  # the model really trembles
    assert steady_change < 0.25 * raw_change, (raw_change, steady_change)
    assert steadier.motion < 0.05  # camera noise is not motion
    assert iou(steady, truth) >= 0.9


@pytest.mark.parametrize("step", [6, 40])
def test_a_moving_subject_is_followed_at_once(trembling: MattingEngine, step: int) -> None:
    """A subject that starts moving (a few pixels a frame, or a jump) after standing still: the steadied
    mask matches the truth as well as the model's own from the first or second moving frame on."""
    rng = np.random.default_rng(1)
    steadier = MaskSteadier()
    for _ in range(10):
        frame, _ = scene(0)
        shot = camera_noise(frame, rng)
        steadier(shot, trembling.predict_mask(shot))
    scores = []
    for k in range(1, 6):
        frame, truth = scene(k * step)
        shot = camera_noise(frame, rng)
        raw = trembling.predict_mask(shot)
        steady = steadier(shot, raw)
        scores.append((iou(raw, truth), iou(steady, truth)))
    raw_scores = [r for r, _ in scores]
    assert min(raw_scores) >= 0.85
    # Within 1-2 frames of the start of the motion, and on every frame after.
    for raw_iou, steady_iou in scores[1:]:
        assert steady_iou >= min(0.9, raw_iou - 0.03), scores
    assert scores[0][1] >= 0.8, scores


def test_a_cut_starts_again_and_a_brightness_change_is_no_motion() -> None:
    steadier = MaskSteadier()
    frame, truth = scene(0)
    frame = (frame * 0.8).astype(np.uint8)  # no highlight clips when it brightens
    steadier(frame, truth)
    # The camera's exposure brightens the whole picture: not motion, the mask stays steady.
    brighter = np.clip(frame.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    out = steadier(brighter, np.zeros_like(truth))
    assert steadier.motion < 0.05 and iou(out, truth) > 0.9
    # Another picture altogether (a cut to a bright room): the running mask starts again from the model's.
    other = np.random.default_rng(5).integers(120, 250, frame.shape, dtype=np.uint8)
    empty = np.zeros_like(truth)
    out = steadier(other, empty)
    assert steadier.motion >= steadier.cut_fraction and not out.any()
    # A new size (another camera) starts again too.
    small = cv2.resize(frame, (W // 2, H // 2))
    assert steadier(small, cv2.resize(truth, (W // 2, H // 2))).shape == (H // 2, W // 2)
