"""The visible "AI-generated" mark and the generated-image metadata of saved files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from face_fixtures import astronaut
from PIL import Image

from workers.errors import UserError
from workers.face_swap.mark import (
    DESCRIPTION,
    GENERATED_METADATA,
    MARK_TEXT,
    draw_mark,
    mark_geometry,
    read_generated_label,
    save_marked_image,
)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return diff.max(axis=2) > 0 if diff.ndim == 3 else diff > 0


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480), (1280, 720), (3840, 2160)])
def test_mark_is_drawn_bottom_right_and_nowhere_else(width: int, height: int) -> None:
    frame = np.full((height, width, 3), 120, np.uint8)
    out = draw_mark(frame)
    assert np.array_equal(frame, np.full_like(frame, 120))  # a copy unless asked
    x1, y1, x2, y2 = mark_geometry(width, height)
    assert x2 <= width and y2 <= height and x1 > width // 2 and y1 > height // 2
    diff = _changed(out, frame)
    assert diff[y1:y2, x1:x2].mean() > 0.9  # the darkened box
    assert (out[y1:y2, x1:x2] > 200).all(axis=2).sum() > 20  # white letters
    diff[y1:y2, x1:x2] = False
    assert not diff.any()
    # Small on big frames, still legible on small ones.
    assert (y2 - y1) >= 16 and (x2 - x1) < 0.5 * width and (y2 - y1) <= 0.1 * height + 1


def test_mark_scales_with_the_frame() -> None:
    small = mark_geometry(320, 240)
    large = mark_geometry(3840, 2160)
    assert (large[3] - large[1]) > 4 * (small[3] - small[1])


def test_mark_in_place_and_other_layouts() -> None:
    frame = astronaut()
    before = frame.copy()
    assert draw_mark(frame, inplace=True) is frame
    assert _changed(frame, before).any()
    bgra = np.zeros((240, 320, 4), np.uint8)
    out = draw_mark(bgra)
    x1, y1, x2, y2 = mark_geometry(320, 240)
    assert (out[y1:y2, x1:x2, 3] == 255).all() and (out[..., 3] > 0).sum() == (y2 - y1) * (x2 - x1)
    gray = np.full((240, 320), 100, np.uint8)
    assert _changed(draw_mark(gray), gray)[y1:y2, x1:x2].any()
    tiny = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(draw_mark(tiny), tiny)


def test_png_says_it_was_generated(tmp_path: Path) -> None:
    image = draw_mark(astronaut())
    path = save_marked_image(tmp_path / "swap.png", image)
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert "AI-generated" in png.info["Comment"]
        assert png.info["Software"] == "SnowAI Studio"
        pixels = np.asarray(png.convert("RGB"))[:, :, ::-1]
    assert np.array_equal(pixels, image)  # lossless, same colours
    assert read_generated_label(path) == DESCRIPTION


def test_jpeg_says_it_was_generated_in_exif_and_comment(tmp_path: Path) -> None:
    path = save_marked_image(tmp_path / "swap.jpg", astronaut())
    with Image.open(path) as jpeg:
        assert jpeg.format == "JPEG"
        assert "AI-generated" in jpeg.getexif()[0x010E]  # ImageDescription
        assert jpeg.getexif()[0x0131] == "SnowAI Studio"  # Software
        assert b"AI-generated" in jpeg.info["comment"]  # the COM segment
        pixels = np.asarray(jpeg)[:, :, ::-1].astype(np.int16)
    assert np.abs(pixels - astronaut()).mean() < 4
    assert read_generated_label(path) == DESCRIPTION


def test_webp_says_it_was_generated_in_xmp(tmp_path: Path) -> None:
    path = save_marked_image(tmp_path / "swap.webp", astronaut())
    with Image.open(path) as webp:
        assert webp.format == "WEBP"
        xmp = webp.info["xmp"]
        xmp = xmp.decode("utf-8") if isinstance(xmp, bytes) else xmp
    assert "AI-generated" in xmp and "TrainedAlgorithmicMedia" in xmp
    assert "SnowAI Studio" in xmp
    assert read_generated_label(path) is not None


def test_saving_is_atomic_and_refuses_unlabelled_formats(tmp_path: Path) -> None:
    target = tmp_path / "out" / "swap.png"
    save_marked_image(target, astronaut())
    save_marked_image(target, astronaut()[:100, :100])  # replaced in one step
    assert sorted(p.name for p in target.parent.iterdir()) == ["swap.png"]
    with Image.open(target) as png:
        assert png.size == (100, 100)
    with pytest.raises(UserError, match="PNG, JPEG or WebP"):
        save_marked_image(tmp_path / "swap.bmp", astronaut())
    assert not (tmp_path / "swap.bmp").exists()
    plain = tmp_path / "plain.png"
    Image.fromarray(astronaut()).save(plain)
    assert read_generated_label(plain) is None


def test_video_metadata_says_generated() -> None:
    assert "AI-generated" in GENERATED_METADATA["comment"]
    assert all(isinstance(v, str) and v for v in GENERATED_METADATA.values())
    assert MARK_TEXT == "AI-generated"


def test_light_modules_load_no_model_runtime() -> None:
    code = (
        "import sys; import workers.face_swap.options, workers.face_swap.mark; "
        "heavy = [m for m in ('dlib', 'onnxruntime', 'insightface', 'PySide6') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
