"""Mask editing for the background-removal canvas: brush strokes, GrabCut refinement, undo/redo.

Plain numpy + OpenCV (no Qt, no model runtime). Masks are ``HxW uint8`` alpha (0..255) in image
coordinates. Every function here works on a bounding box around the change, so a brush stroke on
a 24-megapixel photo touches only the pixels under the brush.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: A box in image coordinates: (x0, y0, x1, y1), end-exclusive.
Box = tuple[int, int, int, int]

#: GrabCut runs on a copy whose longer side is at most this many pixels.
GRABCUT_MAX_SIDE = 1024
#: GrabCut's colour models need a few samples of each class to be fitted.
_MIN_SAMPLES = 16
_SUBPIXEL_BITS = 4


# ---- brush --------------------------------------------------------------------------------------------


def stroke_box(points: Sequence[tuple[float, float]], radius: float, shape: tuple[int, ...]) -> Box | None:
    """The pixels a stroke may touch, clipped to an image of ``shape``; None when it misses it."""
    if not points:
        return None
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pad = float(radius) + 2.0
    height, width = int(shape[0]), int(shape[1])
    x0 = max(0, int(np.floor(pts[:, 0].min() - pad)))
    y0 = max(0, int(np.floor(pts[:, 1].min() - pad)))
    x1 = min(width, int(np.ceil(pts[:, 0].max() + pad)) + 1)
    y1 = min(height, int(np.ceil(pts[:, 1].max() + pad)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def stroke_coverage(
    points: Sequence[tuple[float, float]], radius: float, shape: tuple[int, ...]
) -> tuple[np.ndarray, Box] | None:
    """How much a round brush covers each pixel (uint8 0..255, anti-aliased edge), in its box.

    The stroke is a polyline of ``points`` (x, y in image pixels) drawn with a round brush of
    ``radius`` pixels. Returns the coverage of the box and the box, or None if the stroke lies
    outside the image.
    """
    box = stroke_box(points, radius, shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    cover = np.zeros((y1 - y0, x1 - x0), np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    r = max(0.5, float(radius))
    fixed = [(round((x - x0) * scale), round((y - y0) * scale)) for x, y in points]
    thickness = max(1, round(2 * r))
    if len(fixed) == 1 or thickness <= 1:
        for p in fixed:
            cv2.circle(cover, p, round(r * scale), 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
    if len(fixed) > 1:
        # Each segment as a thick line (OpenCV caps thick lines with round ends) plus a disc at
        # every joint so that sharp turns stay round.
        for a, b in itertools.pairwise(fixed):
            if a == b:
                continue
            cv2.line(cover, a, b, 255, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
        for p in fixed:
            cv2.circle(cover, p, round(r * scale), 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
    return cover, box


def paint_into(mask: np.ndarray, points: Sequence[tuple[float, float]], radius: float, add: bool) -> Box | None:
    """Apply a brush stroke to ``mask`` in place; returns the box that may have changed."""
    _check_mask(mask)
    found = stroke_coverage(points, radius, mask.shape)
    if found is None:
        return None
    cover, (x0, y0, x1, y1) = found
    region = mask[y0:y1, x0:x1]
    if add:
        np.maximum(region, cover, out=region)
    else:
        np.minimum(region, 255 - cover, out=region)
    return x0, y0, x1, y1


def paint(mask: np.ndarray, points: list[tuple[float, float]], radius: float, add: bool) -> np.ndarray:
    """A round brush stroke along ``points`` on an HxW uint8 mask: ``add`` paints the subject in
    (255), otherwise it erases (0). Returns a new array; ``mask`` is left as it was."""
    out = np.array(mask, dtype=np.uint8, copy=True)
    paint_into(out, points, radius, add)
    return out


def _check_mask(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask must be HxW uint8, not {mask.dtype} {mask.shape}")


# ---- GrabCut refinement -----------------------------------------------------------------------------


def grabcut_refine(
    bgr: np.ndarray,
    mask: np.ndarray,
    *,
    sure_fg: np.ndarray | None = None,
    sure_bg: np.ndarray | None = None,
    iterations: int = 3,
    max_side: int = GRABCUT_MAX_SIDE,
) -> np.ndarray:
    """Let the subject's outline follow the image's edges, seeded by the model and the strokes.

    Only a band around the outline is refined: the model's soft edge (alpha between
    :data:`CONFIDENT_LOW` and :data:`CONFIDENT_HIGH`), a thin ring either side of its 50 % line and
    the surroundings of the user's strokes. Everything else keeps the model's answer (GrabCut sees it
    as certain), so a wall or a table of the subject's colour elsewhere in the photo is never pulled
    in; and a piece of subject that GrabCut finds but that touches neither the model's subject nor a
    stroke is dropped. ``sure_fg``/``sure_bg`` (non-zero where the user painted) are certain. Large
    images are refined on a copy whose longer side is ``max_side``; the result is scaled back and
    snapped to the full-size edges with a guided filter. Where GrabCut agrees with the model, the
    model's soft edge is kept. Returns a new HxW uint8 alpha.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"the image must be HxWx3 uint8, not {bgr.dtype} {bgr.shape}")
    _check_mask(mask)
    height, width = mask.shape
    if bgr.shape[:2] != (height, width):
        raise ValueError(f"the mask is {width}x{height} but the image is {bgr.shape[1]}x{bgr.shape[0]}")
    fg_seed = _seed(sure_fg, mask.shape)
    bg_seed = _seed(sure_bg, mask.shape)

    scale = min(1.0, float(max_side) / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
        small_fg = cv2.resize(fg_seed.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        small_bg = cv2.resize(bg_seed.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    else:
        small_bgr, small_mask, small_fg, small_bg = bgr, mask, fg_seed, bg_seed

    band = edge_band(small_mask, small_fg | small_bg)
    gc = np.where(small_mask >= 128, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    gc[band & (small_mask >= 128)] = cv2.GC_PR_FGD
    gc[band & (small_mask < 128)] = cv2.GC_PR_BGD
    gc[small_bg] = cv2.GC_BGD
    gc[small_fg] = cv2.GC_FGD
    fg_count = int(np.count_nonzero((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)))
    if fg_count < _MIN_SAMPLES or gc.size - fg_count < _MIN_SAMPLES or not band.any():
        # Nothing to separate (an empty or full mask): GrabCut cannot fit two colour models.
        log.info("GrabCut skipped: the mask has no subject or no background to learn from")
        return _apply_seeds(mask.copy(), fg_seed, bg_seed)

    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.grabCut(
        np.ascontiguousarray(small_bgr), gc, None, bgd_model, fgd_model, max(1, int(iterations)), cv2.GC_INIT_WITH_MASK
    )
    found = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    found = _keep_anchored(found, (small_mask >= 128) | small_fg)
    small_alpha = found.astype(np.float32)

    if scale < 1.0:
        up = cv2.resize(small_alpha, (width, height), interpolation=cv2.INTER_LINEAR)
        radius = max(2, round(1.5 / scale))
    else:
        up = small_alpha
        radius = 2
    guide = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    snapped = np.clip(_guided_filter(guide, up, radius, 1e-3), 0.0, 1.0)

    refined_fg = snapped >= 0.5
    model_fg = mask >= 128
    out = np.where(refined_fg == model_fg, mask, np.round(snapped * 255.0).astype(np.uint8))
    out = np.ascontiguousarray(out, dtype=np.uint8)
    return _apply_seeds(out, fg_seed, bg_seed)


#: Model alpha below this is certain background, above the other certain subject (outside the band).
CONFIDENT_LOW = 16
CONFIDENT_HIGH = 240


def edge_band(alpha: np.ndarray, strokes: np.ndarray | None = None) -> np.ndarray:
    """Where refinement may change the answer: the model's soft edge, a ring (3 % of the longer side,
    at least 8 pixels) either side of its 50 % line, and as much around the user's strokes."""
    height, width = alpha.shape
    radius = max(8, round(0.03 * max(height, width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    subject = (alpha >= 128).astype(np.uint8)
    ring = cv2.dilate(subject, kernel) != cv2.erode(subject, kernel)
    soft = (alpha >= CONFIDENT_LOW) & (alpha <= CONFIDENT_HIGH)
    band = ring | soft
    if strokes is not None and strokes.any():
        band |= cv2.dilate(strokes.astype(np.uint8), kernel).astype(bool)
    return band


def _keep_anchored(found: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The parts of ``found`` that touch ``anchors`` (the model's subject or a subject stroke)."""
    count, labels = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
    if count <= 2:
        return found & anchors.any() if count == 2 else found
    keep = np.zeros(count, bool)
    keep[np.unique(labels[anchors & found])] = True
    keep[0] = False
    return keep[labels]


def _seed(seed: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if seed is None:
        return np.zeros(shape[:2], bool)
    if seed.shape[:2] != shape[:2]:
        raise ValueError(f"a stroke mask is {seed.shape[1]}x{seed.shape[0]}, the image {shape[1]}x{shape[0]}")
    return np.ascontiguousarray(seed != 0)


def _apply_seeds(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    alpha[fg] = 255
    alpha[bg] = 0
    return alpha


def _guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` that follows the edges of ``guide`` (both float32)."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)

    mean_g = box(guide)
    mean_s = box(src)
    cov = box(guide * src) - mean_g * mean_s
    var = box(guide * guide) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return box(a) * guide + box(b)


# ---- undo / redo ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Patch:
    """The part of the mask one edit changed: its box and the pixels before and after."""

    box: Box
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


class MaskHistory:
    """Undo and redo of a mask's edits, keeping only the changed rectangle of each edit.

    ``push`` records a new state (the first push is the starting point and cannot be undone);
    ``undo``/``redo`` return the mask to show (a new array) or None when there is nothing to do.
    Memory stays under ``max_bytes`` (the current mask included) and ``max_steps`` edits: the
    oldest edits are forgotten first.
    """

    def __init__(self, max_steps: int = 100, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_steps = max(1, int(max_steps))
        self.max_bytes = int(max_bytes)
        self._current: np.ndarray | None = None
        self._undo: deque[_Patch] = deque()
        self._redo: list[_Patch] = []

    @property
    def current(self) -> np.ndarray | None:
        """The newest state (do not modify it)."""
        return self._current

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def steps(self) -> int:
        return len(self._undo)

    @property
    def nbytes(self) -> int:
        held = sum(p.nbytes for p in self._undo) + sum(p.nbytes for p in self._redo)
        return held + (self._current.nbytes if self._current is not None else 0)

    def clear(self) -> None:
        self._current = None
        self._undo.clear()
        self._redo.clear()

    def discard_redo(self) -> None:
        """Forget the undone edits (a new edit was made elsewhere)."""
        self._redo.clear()

    def push(self, mask: np.ndarray) -> bool:
        """Record ``mask`` as the newest state. Returns False when nothing changed."""
        _check_mask(mask)
        if self._current is None or self._current.shape != mask.shape:
            self.clear()
            self._current = mask.copy()
            return True
        box = _changed_box(self._current, mask)
        if box is None:
            return False
        x0, y0, x1, y1 = box
        patch = _Patch(box, self._current[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy())
        self._current[y0:y1, x0:x1] = patch.after
        self._undo.append(patch)
        self._redo.clear()
        self._trim()
        return True

    def undo(self) -> np.ndarray | None:
        if not self._undo or self._current is None:
            return None
        patch = self._undo.pop()
        x0, y0, x1, y1 = patch.box
        self._current[y0:y1, x0:x1] = patch.before
        self._redo.append(patch)
        return self._current.copy()

    def redo(self) -> np.ndarray | None:
        if not self._redo or self._current is None:
            return None
        patch = self._redo.pop()
        x0, y0, x1, y1 = patch.box
        self._current[y0:y1, x0:x1] = patch.after
        self._undo.append(patch)
        return self._current.copy()

    def _trim(self) -> None:
        while self._undo and (len(self._undo) > self.max_steps or self.nbytes > self.max_bytes):
            self._undo.popleft()


def _changed_box(a: np.ndarray, b: np.ndarray) -> Box | None:
    diff = a != b
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
