"""Image files of every odd kind in, PNG/WebP/JPEG out (atomic), output names that never clash."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from workers.errors import UserError
from workers.media.imageio import IMAGE_EXTENSIONS, load_image, output_path, save_image


def _rgb(h: int = 20, w: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_plain_rgb_png_and_jpeg(tmp_path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(img.bgr, rgb[..., ::-1])
    assert img.alpha is None and img.note == "" and img.path == tmp_path / "a.png"
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    assert load_image(tmp_path / "a.jpg").bgr.shape == (20, 30, 3)
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(load_image(tmp_path / "a.bmp").bgr, rgb[..., ::-1])


def test_greyscale_and_one_bit(tmp_path: Path) -> None:
    grey = np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.bgr.shape == (20, 30, 3) and img.alpha is None
    np.testing.assert_array_equal(img.bgr[..., 1], grey)
    assert "greyscale" in img.note
    Image.fromarray(grey > 100).save(tmp_path / "b.png")
    assert set(np.unique(load_image(tmp_path / "b.png").bgr)) <= {0, 255}


def test_sixteen_bit_grey_png_and_tiff(tmp_path: Path) -> None:
    wide = (np.tile(np.arange(30, dtype=np.uint32) * 2000, (20, 1))).astype(np.uint16)
    for name in ("g16.png", "g16.tif"):
        Image.fromarray(wide).save(tmp_path / name)
        img = load_image(tmp_path / name)
        assert "16-bit converted to 8-bit" in img.note
        expected = np.round(wide.astype(np.float64) / 257).astype(np.int64)
        assert np.abs(img.bgr[..., 0].astype(np.int64) - expected).max() <= 1


def test_sixteen_bit_rgb_png_and_tiff(tmp_path: Path) -> None:
    wide = (np.random.default_rng(2).integers(0, 65536, (20, 30, 3))).astype(np.uint16)
    for name in ("c16.png", "c16.tif"):
        assert cv2.imwrite(str(tmp_path / name), wide)  # OpenCV writes 16-bit colour; Pillow cannot
        img = load_image(tmp_path / name)
        assert img.bgr.dtype == np.uint8 and img.bgr.shape == (20, 30, 3)
        assert "16-bit" in img.note
        assert np.abs(img.bgr.astype(int) - (wide >> 8).astype(int)).max() <= 1
    rgba16 = np.dstack([wide, np.full((20, 30), 65535, np.uint16)])
    assert cv2.imwrite(str(tmp_path / "c16a.png"), rgba16)
    img = load_image(tmp_path / "c16a.png")
    assert img.alpha is not None and int(img.alpha.min()) == 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = (255, 0, 0)
    rgb[:, 15:] = (0, 0, 255)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    img = load_image(tmp_path / "cmyk.jpg")
    assert "CMYK converted to RGB" in img.note
    assert img.bgr[10, 5, 2] > 200 and img.bgr[10, 5, 0] < 60  # red on the left
    assert img.bgr[10, 25, 0] > 200 and img.bgr[10, 25, 2] < 60  # blue on the right


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (30, 20), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    pal.paste(1, (0, 0, 15, 20))
    pal.paste(2, (15, 0, 30, 20))
    pal.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.alpha is None and tuple(img.bgr[5, 5]) == (0, 0, 255)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "pt.png", transparency=1)
    img = load_image(tmp_path / "pt.png")
    assert img.alpha is not None
    assert img.alpha[5, 5] == 0 and img.alpha[5, 25] == 255
    pal.save(tmp_path / "pt.gif", transparency=1)
    assert load_image(tmp_path / "pt.gif").alpha[5, 5] == 0


def test_la_and_rgba_and_webp_alpha(tmp_path: Path) -> None:
    alpha = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    grey = np.full((20, 30), 90, np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(img.alpha, alpha)
    assert (img.bgr == 90).all()
    rgba = np.dstack([_rgb(), alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = load_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(img.alpha, alpha)
    np.testing.assert_array_equal(img.bgr, rgba[..., 2::-1])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.webp", lossless=True)
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.webp").alpha, alpha)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # left half white
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    img = load_image(tmp_path / "rot.jpg")
    assert img.bgr.shape == (40, 20, 3)
    assert img.bgr[5, 10].mean() > 200 and img.bgr[35, 10].mean() < 50  # the white half is now on top


def test_unreadable_files_are_sentences(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(200, 200)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "text.png").write_text("not an image at all")
    (tmp_path / "folder.png").mkdir()
    cases = {
        "cut.png": "damaged or truncated",
        "text.png": "not an image",
        "absent.png": "does not exist",
        "folder.png": "is a folder",
    }
    for name, reason in cases.items():
        with pytest.raises(UserError, match=reason) as info:
            load_image(tmp_path / name)
        assert str(info.value).startswith(f"{name} could not be read: ")


def test_save_png_webp_keep_alpha_jpeg_flattens(tmp_path: Path) -> None:
    bgra = np.zeros((20, 30, 4), np.uint8)
    bgra[..., :3] = (10, 20, 200)
    bgra[:, 15:, 3] = 255
    for fmt in ("png", "webp"):
        out = save_image(tmp_path / f"o.{fmt}", bgra)
        back = load_image(out)
        assert back.alpha is not None
        assert back.alpha[5, 5] == 0 and back.alpha[5, 25] == 255
    out = save_image(tmp_path / "o.jpg", bgra)
    back = load_image(out)
    assert back.alpha is None
    assert back.bgr[5, 5].min() > 240  # transparent part flattened on white
    assert abs(int(back.bgr[5, 25, 2]) - 200) < 10
    bgr = save_image(tmp_path / "plain.png", bgra[..., :3])
    assert load_image(bgr).alpha is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_save_is_atomic_and_refuses_unknown_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    save_image(target, np.zeros((4, 4, 3), np.uint8))
    before = target.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("workers.media.imageio.os.replace", broken_replace)
    with pytest.raises(UserError, match="could not be saved"):
        save_image(target, np.full((4, 4, 3), 255, np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
    monkeypatch.undo()
    with pytest.raises(UserError, match="PNG, WebP, JPEG"):
        save_image(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8))


def test_output_path_never_the_source_and_numbers_taken_names(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"")
    assert output_path(src, tmp_path / "out") == tmp_path / "out" / "photo-nobg.png"
    assert output_path(src, tmp_path, "jpeg", suffix="") != src
    assert output_path(src, tmp_path, "jpg", suffix="") == tmp_path / "photo-2.jpg"
    (tmp_path / "photo-nobg.webp").write_bytes(b"")
    (tmp_path / "photo-nobg-2.webp").write_bytes(b"")
    assert output_path(src, tmp_path, "webp") == tmp_path / "photo-nobg-3.webp"
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"} == IMAGE_EXTENSIONS


# ---- one image I/O for every tool --------------------------------------------------------------------------
def test_the_image_io_lives_in_the_shared_media_package() -> None:
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("workers.matting.imageio")


def test_face_swap_reads_and_writes_images_like_the_other_tools(tmp_path: Path) -> None:
    """The face swap's file jobs decode odd images (CMYK, EXIF-rotated, 16-bit) like background removal
    does, and refuse a non-image with the same sentence."""
    from workers.face_swap.cli import read_image, save_result, target_kind

    rgb = _rgb(20, 30)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "cmyk.jpg"), load_image(tmp_path / "cmyk.jpg").bgr)

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rotated.jpg").shape == (30, 20, 3)

    wide = (np.arange(30, dtype=np.uint16) * 2000)[None, :].repeat(20, axis=0)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert read_image(tmp_path / "wide.png").dtype == np.uint8

    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(UserError) as from_face_swap:
        read_image(tmp_path / "notes.jpg")
    with pytest.raises(UserError) as shared:
        load_image(tmp_path / "notes.jpg")
    assert str(from_face_swap.value) == str(shared.value)
    assert target_kind(tmp_path / "cmyk.jpg") == "image"

    bgr = rgb[..., ::-1].copy()
    out = save_result(tmp_path / "plain.png", bgr, marked=False)
    np.testing.assert_array_equal(load_image(out).bgr, bgr)
    assert not list(tmp_path.glob("*.tmp"))


def test_is_image_file_looks_at_the_content(tmp_path: Path) -> None:
    from workers.media.imageio import is_image_file

    Image.fromarray(_rgb()).save(tmp_path / "real.png")
    (tmp_path / "real.png").rename(tmp_path / "real.dat")
    (tmp_path / "fake.png").write_bytes(b"hello")
    assert is_image_file(tmp_path / "real.dat")
    assert not is_image_file(tmp_path / "fake.png")
    assert not is_image_file(tmp_path / "missing.png")
    assert not is_image_file(tmp_path)


def test_blend_is_shared_and_rounds_exactly() -> None:
    from workers.matting.compose import Background, composite
    from workers.media.pixels import blend, mask2d

    fg = np.full((2, 3, 3), 200, np.uint8)
    bg = np.full((2, 3, 3), 100, np.uint8)
    alpha = np.array([[0, 128, 255], [64, 191, 255]], np.uint8)
    out = blend(fg, alpha, bg)
    expected = np.rint((200 * alpha.astype(float) + 100 * (255 - alpha.astype(float))) / 255).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(composite(fg, alpha, Background(kind="color", color=(100, 100, 100))), out)
    with pytest.raises(ValueError, match="the mask is 2x2"):
        mask2d(np.zeros((2, 2), np.uint8), fg.shape)
