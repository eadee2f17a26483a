"""Mask editing: brush strokes, GrabCut refinement seeded by the model and the strokes, undo/redo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matting_fixtures import iou, subject_image

from workers.matting.refine import MaskHistory, grabcut_refine, paint, paint_into, stroke_box


def _rough(mask: np.ndarray, grow: int = 15) -> np.ndarray:
    """A model-like mask: too large and blurry around the true outline."""
    grown = cv2.dilate(mask, np.ones((grow, grow), np.uint8))
    return cv2.GaussianBlur(grown, (21, 21), 0)


# ---- paint ----------------------------------------------------------------------------------------------


def test_paint_adds_a_round_stroke_and_leaves_the_input_alone() -> None:
    mask = np.zeros((60, 80), np.uint8)
    out = paint(mask, [(10.0, 20.0), (60.0, 20.0)], 6, add=True)
    assert mask.max() == 0  # a new array
    assert out[20, 10:61].min() == 255  # along the line
    assert out[20 - 4, 30] == 255 and out[20 + 4, 30] == 255  # inside the radius
    assert out[20 - 9, 30] == 0 and out[20 + 9, 30] == 0  # outside it
    assert out[20, 10 - 4] == 255 and out[20, 60 + 4] == 255  # round caps at both ends
    assert out[20, 60 + 9] == 0


def test_paint_erase_clears_only_under_the_brush() -> None:
    mask = np.full((50, 50), 255, np.uint8)
    out = paint(mask, [(25.0, 25.0)], 5, add=False)
    assert out[25, 25] == 0 and out[25, 21] == 0
    assert out[25, 32] == 255 and out[0, 0] == 255
    # The edge is anti-aliased: some pixel lies between the two.
    assert ((out > 0) & (out < 255)).any()


def test_paint_outside_the_image_changes_nothing() -> None:
    mask = np.zeros((20, 20), np.uint8)
    assert paint_into(mask, [(-100.0, -100.0)], 4, add=True) is None
    assert mask.max() == 0
    assert stroke_box([(5.0, 5.0)], 3, mask.shape) == (0, 0, 11, 11)


def test_paint_rejects_a_colour_image() -> None:
    with pytest.raises(ValueError):
        paint(np.zeros((4, 4, 3), np.uint8), [(1.0, 1.0)], 1, add=True)


# ---- GrabCut --------------------------------------------------------------------------------------------


def test_grabcut_tightens_a_rough_model_mask() -> None:
    bgr, truth = subject_image(160, 200)
    rough = _rough(truth)
    out = grabcut_refine(bgr, rough, sure_fg=None, sure_bg=None)
    assert out.dtype == np.uint8 and out.shape == truth.shape
    assert iou(out, truth) > iou(rough, truth) + 0.05
    assert iou(out, truth) > 0.95


def test_grabcut_on_a_large_image_runs_downscaled_and_keeps_full_size() -> None:
    bgr, truth = subject_image(300, 420)
    rough = _rough(truth, 21)
    out = grabcut_refine(bgr, rough, sure_fg=None, sure_bg=None, max_side=160)
    assert out.shape == truth.shape
    assert iou(out, truth) > 0.93
    # The outline is snapped to the full-size edges: a soft ramp, not 3-pixel blocks.
    assert iou(out, truth) > iou(rough, truth)


def test_grabcut_keeps_the_model_soft_edge_where_it_agrees() -> None:
    bgr, truth = subject_image(120, 160)
    soft = cv2.GaussianBlur(truth, (5, 5), 0)
    out = grabcut_refine(bgr, soft, sure_fg=None, sure_bg=None)
    edge = (soft > 20) & (soft < 235)
    agree = edge & ((out >= 128) == (soft >= 128))
    assert agree.sum() > 0.8 * edge.sum()
    assert np.array_equal(out[agree], soft[agree])


def test_grabcut_obeys_the_strokes() -> None:
    bgr, truth = subject_image(120, 160)
    model = truth.copy()
    sure_bg = np.zeros_like(truth)
    sure_bg[55:65, 70:90] = 1  # the user erased a patch inside the subject
    sure_fg = np.zeros_like(truth)
    sure_fg[5:10, 5:10] = 1  # and painted a patch of background in
    out = grabcut_refine(bgr, model, sure_fg=sure_fg, sure_bg=sure_bg, iterations=2)
    assert out[55:65, 70:90].max() == 0
    assert out[5:10, 5:10].min() == 255


def test_grabcut_with_nothing_to_separate_returns_the_mask() -> None:
    bgr, _ = subject_image(40, 50)
    empty = np.zeros((40, 50), np.uint8)
    seeds = np.zeros_like(empty)
    seeds[2:4, 2:4] = 1
    out = grabcut_refine(bgr, empty, sure_fg=seeds, sure_bg=None)
    assert out[2:4, 2:4].min() == 255 and out.sum() == 255 * 4


def test_grabcut_rejects_mismatched_sizes() -> None:
    bgr, truth = subject_image(40, 50)
    with pytest.raises(ValueError):
        grabcut_refine(bgr, truth[:20], sure_fg=None, sure_bg=None)


# ---- history --------------------------------------------------------------------------------------------


def test_history_undo_redo_walks_the_states() -> None:
    h = MaskHistory()
    a = np.zeros((30, 40), np.uint8)
    b = paint(a, [(10.0, 10.0)], 3, add=True)
    c = paint(b, [(30.0, 20.0)], 4, add=True)
    h.push(a)
    assert not h.can_undo and h.undo() is None
    h.push(b)
    h.push(c)
    assert h.can_undo and not h.can_redo
    assert np.array_equal(h.undo(), b)
    assert np.array_equal(h.undo(), a)
    assert h.undo() is None
    assert np.array_equal(h.redo(), b)
    # A new edit after an undo drops the redo branch.
    d = paint(b, [(5.0, 25.0)], 2, add=True)
    h.push(d)
    assert not h.can_redo
    assert np.array_equal(h.undo(), b)
    assert np.array_equal(h.redo(), d)


def test_history_ignores_no_op_and_returns_copies() -> None:
    h = MaskHistory()
    a = np.zeros((10, 10), np.uint8)
    h.push(a)
    assert h.push(a.copy()) is False
    b = a.copy()
    b[1, 1] = 9
    h.push(b)
    undone = h.undo()
    assert undone is not None
    undone[:] = 77  # the caller's copy: the history is not affected
    assert np.array_equal(h.redo(), b)


def test_history_stores_only_changed_rectangles_and_stays_bounded() -> None:
    base = np.zeros((400, 400), np.uint8)
    h = MaskHistory(max_steps=1000, max_bytes=base.nbytes + 10_000)
    h.push(base)
    mask = base.copy()
    for i in range(200):
        mask = paint(mask, [(float(i * 2 % 400), 200.0)], 5, add=i % 2 == 0)
        h.push(mask)
    assert h.nbytes <= h.max_bytes
    assert 0 < h.steps < 200  # the oldest edits were forgotten
    steps = h.steps
    for _ in range(steps):
        assert h.undo() is not None
    assert h.undo() is None
    h2 = MaskHistory(max_steps=3)
    h2.push(base)
    for i in range(10):
        h2.push(paint(base, [(float(10 + i), 10.0)], 2, add=True))
    assert h2.steps == 3


def test_history_restarts_on_a_new_size() -> None:
    h = MaskHistory()
    h.push(np.zeros((5, 5), np.uint8))
    h.push(np.ones((5, 5), np.uint8))
    h.push(np.zeros((6, 6), np.uint8))
    assert not h.can_undo


def _busy_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A subject on a busy background: a picture frame and a table edge of the subject's own colours
    elsewhere in the photo, and a good model mask (the truth with a soft edge)."""
    bgr, truth = subject_image(240, 320, seed=5)
    rng = np.random.default_rng(9)
    bright = rng.integers(200, 250, size=bgr.shape, dtype=np.uint8)
    clutter = np.zeros(truth.shape, bool)
    clutter[20:60, 250:300] = True  # a picture frame, far from the subject
    clutter[215:235, 10:120] = True  # a piece of table
    clutter &= truth == 0
    bgr[clutter] = bright[clutter]
    model = cv2.GaussianBlur(truth, (5, 5), 0)
    return bgr, truth, model, clutter


def test_refine_edges_never_pulls_in_background_of_the_subjects_colour() -> None:
    bgr, truth, model, clutter = _busy_photo()
    out = grabcut_refine(bgr, model, sure_fg=None, sure_bg=None)
    assert not (out[clutter] >= 128).any()  # no wall patch, frame or table piece
    assert iou(out, truth) >= iou(model, truth) - 0.005  # a good mask is not made worse
    # Outside the band around the outline the model's answer stands, pixel for pixel.
    from workers.matting.refine import edge_band

    outside = ~edge_band(model)
    assert np.array_equal(out[outside], model[outside])


def test_refine_edges_keeps_what_the_strokes_mark() -> None:
    bgr, truth, model, _clutter = _busy_photo()
    strokes = np.zeros_like(truth)
    strokes[30:40, 260:270] = 1  # the user says part of the frame is subject (a prop held up)
    out = grabcut_refine(bgr, model, sure_fg=strokes, sure_bg=None)
    assert out[30:40, 260:270].min() == 255
    assert out[215:235, 10:120].max() < 128  # the table piece nobody marked stays background
