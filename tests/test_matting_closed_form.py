"""Closed-form alpha matting (workers/matting/closed_form.py): rembg's trimap, an alpha close to the
truth on a composite with a soft outline, pymatting's answer where it is installed, and
an engine whose alpha matting imports neither rembg, pymatting nor numba."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.matting import closed_form


def _composite(h: int = 160, w: int = 200, seed: int = 3):
    """A textured subject with a soft outline and thin half-transparent strands over a textured
    background: (BGR uint8 image, true alpha 0..1, true foreground 0..1, a coarse model-like mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dist = np.hypot((yy - h / 2) / (0.34 * h), (xx - w / 2) / (0.3 * w))
    alpha = np.clip((1.0 - dist) * 6.0, 0.0, 1.0)
    for k in range(9):  # strands leaving the outline, like hair
        x0 = w / 2 + (k - 4) * w * 0.06
        strand = np.exp(-(((xx - x0 - 0.15 * (yy - h * 0.1)) / 2.0) ** 2)) * (yy < h * 0.35)
        alpha = np.maximum(alpha, 0.7 * strand)
    fg = np.stack(
        [0.55 + 0.25 * np.sin(xx / 9.0), 0.35 + 0.2 * np.cos(yy / 7.0), np.full_like(xx, 0.25)], axis=-1
    )
    bg = np.stack([0.2 + 0.15 * np.sin(yy / 13.0 + 1), np.full_like(xx, 0.55), 0.6 + 0.2 * np.cos(xx / 11.0)], -1)
    bg = np.clip(bg + rng.normal(0, 0.01, bg.shape), 0, 1)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    image8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    # A segmentation model's mask: the subject's body, blurred, without the fine strands.
    coarse = cv2.GaussianBlur((dist < 1.0).astype(np.float32), (0, 0), 2.0)
    mask = np.clip(coarse * 255, 0, 255).astype(np.uint8)
    return image8, alpha, fg, mask


@pytest.mark.parametrize("erode", [0, 1, 4, 10, 15])
def test_trimap_is_rembgs(erode: int) -> None:
    from scipy.ndimage import binary_erosion

    rng = np.random.default_rng(erode)
    mask = cv2.GaussianBlur((rng.random((90, 120)) > 0.6).astype(np.float32) * 255, (0, 0), 4).astype(np.uint8)
    mask[:, :8] = 255  # a sure region touching the border
    structure = np.ones((erode, erode), np.uint8) if erode > 0 else None
    fg = binary_erosion(mask > 200, structure=structure)
    bg = binary_erosion(mask < 40, structure=structure, border_value=1)
    expected = np.full(mask.shape, 128, np.uint8)
    expected[fg] = 255
    expected[bg] = 0
    np.testing.assert_array_equal(closed_form.trimap_from_mask(mask, 200, 40, erode), expected)


def test_alpha_finds_the_soft_edge() -> None:
    image, truth, true_fg, mask = _composite()
    trimap = closed_form.trimap_from_mask(mask, 240, 10, 10)
    alpha = closed_form.estimate_alpha(image / 255.0, trimap)
    assert alpha.shape == truth.shape and alpha.min() >= 0 and alpha.max() <= 1
    unknown = (trimap > 25) & (trimap < 230)
    assert unknown.sum() > 1000
    err_mask = np.abs(mask / 255.0 - truth)[unknown].mean()
    err_alpha = np.abs(alpha - truth)[unknown].mean()
    assert err_alpha < 0.45 * err_mask, (err_alpha, err_mask)
    # Known pixels keep the trimap's value.
    np.testing.assert_array_equal(alpha[trimap == 255], 1.0)
    np.testing.assert_array_equal(alpha[trimap == 0], 0.0)
    # Foreground colours: close to the subject's own where it shows, not the background's.
    fg = closed_form.estimate_foreground(image / 255.0, alpha)
    seen = unknown & (truth > 0.3)
    err_fg = np.abs(fg - true_fg)[seen].mean()
    err_image = np.abs(image / 255.0 - true_fg)[seen].mean()
    assert err_fg < 0.6 * err_image, (err_fg, err_image)


def test_alpha_equals_pymattings_closed_form() -> None:
    pymatting = pytest.importorskip("pymatting", reason="pymatting (rembg's matting) is not installed here")
    image, _truth, _fg, mask = _composite(seed=5)
    trimap = closed_form.trimap_from_mask(mask, 240, 10, 10)
    ours = closed_form.estimate_alpha(image / 255.0, trimap)
    theirs = pymatting.estimate_alpha_cf(image / 255.0, trimap / 255.0)
    assert np.abs(ours - theirs).max() < 1e-3


def test_nothing_to_solve_is_said() -> None:
    image, _truth, _fg, _mask = _composite(60, 80)
    with pytest.raises(closed_form.NothingToSolve):
        closed_form.estimate_alpha(image / 255.0, np.full((60, 80), 255, np.uint8))
    with pytest.raises(closed_form.NothingToSolve):
        closed_form.estimate_alpha(image / 255.0, np.full((60, 80), 128, np.uint8))


def test_engine_alpha_matting_imports_no_rembg_pymatting_or_numba() -> None:
    """The engine's alpha matting (8-bit alpha and foreground) in a fresh process: closer to the truth
    than the mask it starts from, with none of rembg's matting stack imported."""
    script = f"""
import sys, numpy as np, cv2
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_matting_closed_form import _composite
from workers.matting.engine import MattingEngine
image, truth, _fg, mask = _composite()
engine = MattingEngine.__new__(MattingEngine)
engine.timings = {{}}
from workers.matting.options import MattingOptions
alpha, fg = engine._alpha_matting(image, mask, MattingOptions(alpha_matting=True))
assert alpha.dtype == np.uint8 and fg.dtype == np.uint8 and fg.shape == image.shape
print(float(np.abs(alpha / 255.0 - truth).mean() / np.abs(mask / 255.0 - truth).mean()))
print(sorted(m for m in sys.modules if m.split('.')[0] in ('rembg', 'pymatting', 'numba', 'llvmlite')))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ratio, modules = done.stdout.strip().splitlines()[-2:]
    assert float(ratio) < 0.7
    assert modules == "[]"
