"""Reading and writing images, for every tool (background removal, face swap, the CLI).

Decoding goes through Pillow with the EXIF orientation applied, and every odd kind of file is
brought to 8-bit BGR (plus its alpha when it has one): greyscale, 16-bit greyscale or RGB,
CMYK JPEGs, palette images with a transparent colour, LA/RGBA. Writing is atomic (a temporary
name in the same folder, then a rename): PNG, WebP and TIFF keep the alpha; JPEG and BMP are
flattened on white. No model runtime is imported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workers.errors import UserError
from workers.files import save_bytes
from workers.media.pixels import blend

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
#: Output formats and whether they keep an alpha channel.
OUTPUT_FORMATS = {"png": True, "webp": True, "tif": True, "tiff": True, "jpg": False, "jpeg": False, "bmp": False}
FLATTEN_COLOR = (255, 255, 255)  # BGR behind a transparent image saved without alpha


@dataclass
class LoadedImage:
    """A decoded image: 8-bit BGR, its alpha if the file had one, where it came from, what was converted."""

    bgr: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    note: str = ""

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "image"


def _is_16bit(img: Image.Image) -> bool:
    if img.mode.startswith("I;16") or img.mode == "I":
        return True
    return any(";16" in str(getattr(tile, "args", "")) for tile in (getattr(img, "tile", None) or []))


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Wide integer or float samples to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float32))
        top = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
    wide = arr.astype(np.int64)
    top = int(wide.max()) if wide.size else 0
    if top <= 255:
        return np.clip(wide, 0, 255).astype(np.uint8)
    # 16-bit data (also 16-bit greyscale opened as 32-bit "I"): keep the high byte, rounded.
    return np.clip((wide * 255 + 32767) // 65535, 0, 255).astype(np.uint8)


def _decode(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Pillow image to (BGR uint8, alpha uint8 or None, notes)."""
    notes: list[str] = []
    if _is_16bit(img):
        notes.append("16-bit converted to 8-bit")
    mode = img.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "I;16", "I") and "transparency" in img.info
    )
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode == "P":
        notes.append("palette converted to RGB")
    elif mode in ("L", "LA", "1", "I", "F") or mode.startswith("I;16"):
        notes.append("greyscale converted to RGB")

    if mode in ("I", "F") or mode.startswith("I;16"):
        grey = _to_uint8(np.asarray(img))
        if grey.ndim == 3:
            grey = grey[..., 0]
        bgr = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)
        alpha = None
        if has_alpha:
            with contextlib.suppress(TypeError, ValueError):
                alpha = np.where(np.asarray(img) == int(img.info["transparency"]), 0, 255).astype(np.uint8)
        return bgr, alpha, notes
    if mode in ("L", "1") and not has_alpha:
        grey = np.asarray(img.convert("L"))
        return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR), None, notes
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        bgr = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)
        return bgr, np.ascontiguousarray(rgba[..., 3]), notes
    rgb = np.asarray(img if mode == "RGB" else img.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, notes


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Decode an image file to 8-bit BGR (EXIF orientation applied). UserError sentence when it cannot be read."""
    path = Path(path)
    name = path.name or str(path)
    if path.is_dir():
        raise UserError(f"{name} could not be read: it is a folder, not an image.")
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{name} could not be read: the file is empty (0 bytes).")
    except OSError:
        pass  # Pillow says what is wrong below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: the pixels count
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                sixteen = _is_16bit(opened)  # the tile list is gone once decoded
                opened.load()
                img = ImageOps.exif_transpose(opened) or opened
                bgr, alpha, notes = _decode(img)
                if sixteen and "16-bit converted to 8-bit" not in notes:
                    notes.insert(0, "16-bit converted to 8-bit")
    except FileNotFoundError:
        raise UserError(f"{name} could not be read: the file does not exist.") from None
    except PermissionError:
        raise UserError(f"{name} could not be read: permission denied.") from None
    except UnidentifiedImageError:
        raise UserError(f"{name} could not be read: it is not an image, or not in a format the studio knows.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{name} could not be read: it is too large (more pixels than the studio accepts).") from None
    except MemoryError:
        raise UserError(f"{name} could not be read: not enough memory for an image this large.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        log.info("could not decode %s: %s", path, exc)
        raise UserError(f"{name} could not be read: the file is damaged or truncated.") from None
    if bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise UserError(f"{name} could not be read: the image is empty.")
    return LoadedImage(np.ascontiguousarray(bgr), alpha, path, ", ".join(notes))


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether Pillow recognises the file as an image, by its content (the suffix does not count).

    An image too large to decode still counts: reading it says so in a sentence.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(Path(path)):
                return True
    except Image.DecompressionBombError:
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return False


def from_array(bgr: np.ndarray, path: Path | None = None) -> LoadedImage:
    """Wrap a BGR, BGRA or greyscale array as a :class:`LoadedImage`."""
    if bgr.ndim == 2:
        return LoadedImage(cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR), None, path)
    if bgr.shape[2] == 4:
        return LoadedImage(np.ascontiguousarray(bgr[..., :3]), np.ascontiguousarray(bgr[..., 3]), path)
    return LoadedImage(np.ascontiguousarray(bgr), None, path)


def _flatten(bgra: np.ndarray, color: tuple[int, int, int] = FLATTEN_COLOR) -> np.ndarray:
    bg = np.empty((*bgra.shape[:2], 3), np.uint8)
    bg[:] = color
    return blend(np.ascontiguousarray(bgra[..., :3]), np.ascontiguousarray(bgra[..., 3]), bg)


def encode_image(image: np.ndarray, fmt: str, *, quality: int = 95) -> bytes:
    """Encode a BGR, BGRA or greyscale array in ``fmt`` (png, webp, jpg, bmp, tif)."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"The format {fmt!r} cannot be written; choose PNG, WebP or JPEG.")
    if image.dtype != np.uint8:
        image = _to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 4 and not OUTPUT_FORMATS[fmt]:
        image = _flatten(image)
    quality = int(min(100, max(1, quality)))
    params: list[int] = []
    ext = "." + fmt
    if fmt in ("jpg", "jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif fmt == "png":
        # PNG's row filters do most of the work on photos; run-length matching after them is two
        # to three times faster than the default deflate search, and the files come out no larger.
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, data = cv2.imencode(ext, np.ascontiguousarray(image), params)
    if not ok:
        raise UserError(f"The image could not be encoded as {fmt.upper()}.")
    return data.tobytes()


def save_image(path: str | os.PathLike[str], image: np.ndarray, *, quality: int = 95) -> Path:
    """Save BGR or BGRA (or greyscale) by the file's suffix; PNG/WebP/TIFF keep alpha, JPEG is flattened."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"{path.name}: the studio saves PNG, WebP, JPEG, TIFF or BMP files, not '{path.suffix}'.")
    return save_bytes(path, encode_image(image, fmt, quality=quality))


def normalize_format(fmt: str) -> str:
    fmt = (fmt or "png").lower().lstrip(".")
    if fmt == "jpeg":
        fmt = "jpg"
    if fmt == "tiff":
        fmt = "tif"
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"The format {fmt!r} cannot be written; choose png, webp or jpg.")
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def output_path(source: Path, outdir: Path, fmt: str = "png", suffix: str = "-nobg") -> Path:
    """Where the result for ``source`` goes: ``<outdir>/<stem><suffix>.<fmt>``, never the source itself,
    with ``-2``, ``-3``... appended when that name is taken."""
    source = Path(source)
    outdir = Path(outdir)
    fmt = normalize_format(fmt)
    stem = f"{source.stem}{suffix}"
    candidate = outdir / f"{stem}.{fmt}"
    n = 2
    while candidate.exists() or _same_file(candidate, source):
        candidate = outdir / f"{stem}-{n}.{fmt}"
        n += 1
    return candidate
