"""Putting a cut-out subject on a new background: transparent, a colour, a blur of the photo, an image.

numpy + OpenCV only (the dock imports this on the UI thread). Images are BGR uint8, alphas HxW uint8.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.errors import UserError
from workers.media.pixels import blend, mask2d

log = logging.getLogger(__name__)

BACKGROUND_KINDS = ("transparent", "color", "blur", "image")

#: Colour names a user may type (RGB).
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "chroma": (0, 177, 64),
    "greenscreen": (0, 177, 64),
    "bluescreen": (0, 71, 187),
}

_HEX_RE = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGB_RE = re.compile(r"^(?:rgb\()?\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)?$")
_BLUR_RE = re.compile(r"^blur(?:[:=](\d+))?$")


@dataclass
class Background:
    """What goes behind the subject."""

    kind: str = "transparent"  # "transparent" | "color" | "blur" | "image"
    color: tuple[int, int, int] = (255, 255, 255)  # RGB
    blur: int = 31  # Gaussian kernel size in pixels for "blur"
    image: np.ndarray | None = None  # BGR, for "image"

    @property
    def transparent(self) -> bool:
        return self.kind == "transparent"

    def describe(self) -> str:
        if self.kind == "color":
            return "#{:02x}{:02x}{:02x}".format(*self.color)
        if self.kind == "blur":
            return f"blur:{self.blur}"
        return self.kind


def parse_color(text: str) -> tuple[int, int, int] | None:
    """An RGB colour from ``#0f0``, ``#00ff00``, ``00ff00``, ``0,255,0`` or a colour name; None otherwise."""
    value = text.strip().lower()
    if value in NAMED_COLORS:
        return NAMED_COLORS[value]
    m = _HEX_RE.match(value)
    if m and (value.startswith("#") or len(m.group(1)) == 6):
        digits = m.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    m = _RGB_RE.match(value)
    if m:
        rgb = tuple(int(g) for g in m.groups())
        if all(0 <= c <= 255 for c in rgb):
            return rgb[0], rgb[1], rgb[2]
    return None


def parse_background(text: str) -> Background:
    """``transparent``, a colour (``#00ff00``, ``green``, ``0,255,0``), ``blur`` / ``blur:51``, or an image path."""
    value = (text or "").strip()
    low = value.lower()
    if low in ("", "transparent", "none", "alpha"):
        return Background()
    m = _BLUR_RE.match(low)
    if m:
        size = int(m.group(1)) if m.group(1) else 31
        if not 1 <= size <= 501:
            raise UserError("The blur size must lie between 1 and 501 pixels.")
        return Background(kind="blur", blur=size)
    color = parse_color(value)
    if color is not None:
        return Background(kind="color", color=color)
    path = Path(value).expanduser()
    if path.exists():
        from workers.media.imageio import load_image

        try:
            image = load_image(path)
        except UserError as exc:
            raise UserError(f"The background image {exc}") from None
        return Background(kind="image", image=image.bgr)
    raise UserError(
        f"The background {value!r} is not understood: give 'transparent', a colour such as '#00ff00' or "
        "'green', 'blur' (or 'blur:51'), or the path of an image."
    )


def cutout(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The image with the alpha as its fourth channel (BGRA uint8; colours are kept, not premultiplied)."""
    alpha = mask2d(alpha, bgr.shape)
    out = cv2.cvtColor(np.ascontiguousarray(bgr[..., :3]), cv2.COLOR_BGR2BGRA)
    out[..., 3] = alpha
    return out


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale an image to cover ``width x height`` and crop the middle (no distortion)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = image[..., :3]
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    y0, x0 = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(image[y0 : y0 + height, x0 : x0 + width])


def background_layer(bgr: np.ndarray, background: Background) -> np.ndarray:
    """The BGR layer that goes behind the subject, the size of ``bgr``."""
    h, w = bgr.shape[:2]
    if background.kind == "color":
        r, g, b = background.color
        return np.full((h, w, 3), (b, g, r), np.uint8)
    if background.kind == "blur":
        k = max(1, int(background.blur)) | 1
        # Blurring a smaller copy is much faster for big kernels and looks the same.
        factor = max(1, k // 15)
        if factor > 1 and min(h, w) // factor >= 8:
            small = cv2.resize(bgr, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
            ks = max(1, k // factor) | 1
            small = cv2.GaussianBlur(small, (ks, ks), 0)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(bgr, (k, k), 0)
    if background.kind == "image":
        if background.image is None:
            raise UserError("Choose a background image first.")
        return _cover(background.image, h, w)
    raise UserError(f"Unknown background kind {background.kind!r}; choose one of {', '.join(BACKGROUND_KINDS)}.")


def composite(bgr: np.ndarray, alpha: np.ndarray, background: Background) -> np.ndarray:
    """The subject over the background: BGRA when transparent, otherwise BGR."""
    bgr = bgr[..., :3]
    if background.kind == "transparent":
        return cutout(bgr, alpha)
    return blend(bgr, alpha, background_layer(bgr, background))


def checkerboard(height: int, width: int, cell: int = 12) -> np.ndarray:
    """The grey checkerboard that shows transparency (BGR uint8)."""
    cell = max(1, int(cell))
    ys = (np.arange(height) // cell)[:, None]
    xs = (np.arange(width) // cell)[None, :]
    board = np.where((ys + xs) % 2 == 0, 204, 153).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)
