"""Backgrounds: parsing what a user types, cutouts, composites over colour, blur and image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.errors import UserError
from workers.matting.compose import Background, checkerboard, composite, cutout, parse_background


def test_parse_background_forms(tmp_path: Path) -> None:
    assert parse_background("transparent").kind == "transparent"
    assert parse_background("").kind == "transparent"
    assert parse_background("#00ff00") == Background(kind="color", color=(0, 255, 0))
    assert parse_background("#0f0").color == (0, 255, 0)
    assert parse_background("Green").color == (0, 255, 0)
    assert parse_background("10, 20, 30").color == (10, 20, 30)
    assert parse_background("ff8800").color == (255, 136, 0)
    blur = parse_background("blur")
    assert blur.kind == "blur" and blur.blur == 31
    assert parse_background("blur:51").blur == 51
    image_path = tmp_path / "beach.png"
    cv2.imwrite(str(image_path), np.full((10, 20, 3), (1, 2, 3), np.uint8))
    bg = parse_background(str(image_path))
    assert bg.kind == "image" and bg.image is not None and bg.image.shape == (10, 20, 3)
    assert tuple(bg.image[0, 0]) == (1, 2, 3)


def test_parse_background_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not understood"):
        parse_background("sparkly")
    with pytest.raises(UserError, match="blur size"):
        parse_background("blur:0")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff nothing")
    with pytest.raises(UserError, match=r"background image broken\.jpg could not be read"):
        parse_background(str(broken))


def _scene() -> tuple[np.ndarray, np.ndarray]:
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[:] = (200, 100, 50)
    alpha = np.zeros((40, 60), np.uint8)
    alpha[:, 30:] = 255
    alpha[:, 29] = 128
    return bgr, alpha


def test_cutout_keeps_colours_and_sets_alpha() -> None:
    bgr, alpha = _scene()
    out = cutout(bgr, alpha)
    assert out.shape == (40, 60, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., :3], bgr)
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(composite(bgr, alpha, Background()), out)
    with pytest.raises(ValueError):
        cutout(bgr, alpha[:10])


def test_colour_composite_is_exact_at_both_ends_and_blends_between() -> None:
    bgr, alpha = _scene()
    out = composite(bgr, alpha, Background(kind="color", color=(0, 255, 0)))
    assert out.shape == (40, 60, 3)
    assert tuple(out[0, 0]) == (0, 255, 0)  # background, as BGR
    assert tuple(out[0, 59]) == (200, 100, 50)  # subject untouched
    assert tuple(out[0, 29]) == (100, 177, 25)  # half and half, rounded


def test_blur_and_image_backgrounds() -> None:
    bgr, alpha = _scene()
    rng = np.random.default_rng(0)
    bgr[:, :30] = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    blurred = composite(bgr, alpha, Background(kind="blur", blur=15))
    assert blurred[:, :25].std() < bgr[:, :25].std() / 2  # the noisy background is smoothed
    np.testing.assert_array_equal(blurred[:, 31:], bgr[:, 31:])
    big = composite(bgr, alpha, Background(kind="blur", blur=151))
    assert big.shape == bgr.shape
    wide = np.zeros((10, 100, 3), np.uint8)
    wide[:, 40:60] = 255  # only the middle of the wide image is white
    out = composite(bgr, alpha, Background(kind="image", image=wide))
    assert out.shape == (40, 60, 3)
    assert out[:, :25].min() == 255  # scaled to cover, centre cropped: the white middle fills the frame
    with pytest.raises(UserError):
        composite(bgr, alpha, Background(kind="image"))
    with pytest.raises(UserError):
        composite(bgr, alpha, Background(kind="plaid"))


def test_checkerboard() -> None:
    board = checkerboard(30, 50, cell=10)
    assert board.shape == (30, 50, 3) and board.dtype == np.uint8
    assert tuple(board[0, 0]) != tuple(board[0, 10])
    assert tuple(board[0, 0]) == tuple(board[10, 10])
