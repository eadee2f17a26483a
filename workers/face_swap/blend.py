"""Masks, colour transfer and blending for pasting a new face into a frame (numpy and OpenCV only).

Every function works on a crop around one face, never on the whole frame: the callers cut the
crop with :func:`crop_box`, build the new face and its mask in crop coordinates, and write the
blended crop back. Sizes given "at 256" (mask blur and erosion) scale with the face's size, so a
setting looks the same on a small face in a wide shot and on a close-up.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: The face size the blur and erosion settings are expressed at.
REFERENCE_FACE = 256.0
#: dlib's 68-point layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67.
INNER_LIPS_68 = slice(60, 68)
OUTER_LIPS_68 = slice(48, 60)


def scaled_px(value_at_256: float, face_size: float) -> int:
    """A length set for a 256-px face, for a face of ``face_size`` px."""
    return max(0, round(float(value_at_256) * max(face_size, 1.0) / REFERENCE_FACE))


def face_size(points: np.ndarray) -> float:
    """A face's size in px: the larger side of its points' bounding box."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    span = pts.max(axis=0) - pts.min(axis=0)
    return float(max(span[0], span[1], 1.0))


def crop_box(points: np.ndarray, shape: tuple[int, ...], margin: float) -> tuple[int, int, int, int]:
    """The box (x1, y1, x2, y2) around ``points`` grown by ``margin`` px on each side, inside the frame."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    height, width = shape[:2]
    x1 = int(np.floor(pts[:, 0].min() - margin))
    y1 = int(np.floor(pts[:, 1].min() - margin))
    x2 = int(np.ceil(pts[:, 0].max() + margin)) + 1
    y2 = int(np.ceil(pts[:, 1].max() + margin)) + 1
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def hull_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 mask (0/255) filled inside the convex hull of ``points``."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.round(np.asarray(points, np.float32).reshape(-1, 2)).astype(np.int32)
    if len(pts) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 255, cv2.LINE_AA)
    return mask


def _odd(n: int) -> int:
    return n + 1 if n % 2 == 0 else n


def feather(mask: np.ndarray, erode_px: int, blur_px: int) -> np.ndarray:
    """A float32 alpha in 0..1: the mask pulled in by ``erode_px`` and its edge blurred over ``blur_px``.

    The edge is pulled in by a further half blur so the feathered border stays inside the
    original outline (nothing of the new face's surroundings leaks out).
    """
    hard = mask
    shrink = int(erode_px) + int(blur_px) // 2
    if shrink > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
        hard = cv2.erode(mask, kernel)
    alpha = hard.astype(np.float32) * (1.0 / 255.0)
    if blur_px > 0:
        size = _odd(2 * int(blur_px) + 1)
        alpha = cv2.GaussianBlur(alpha, (size, size), blur_px / 2.0, borderType=cv2.BORDER_CONSTANT)
    return alpha


def mouth_polygon(landmarks: np.ndarray | None, kps: np.ndarray | None = None) -> np.ndarray | None:
    """The inner-lip outline of a face: dlib's points 60-67, or an ellipse between the mouth corners."""
    if landmarks is not None and len(landmarks) == 68:
        return np.asarray(landmarks[INNER_LIPS_68], np.float32)
    if kps is None or len(kps) < 5:
        return None
    left, right = np.asarray(kps[3], np.float32), np.asarray(kps[4], np.float32)
    centre = (left + right) / 2
    axis = right - left
    length = float(np.hypot(*axis))
    if length < 2:
        return None
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    pts = cv2.ellipse2Poly(
        (round(centre[0]), round(centre[1])),
        (round(length / 2), max(1, round(length * 0.22))),
        round(angle),
        0,
        360,
        20,
    )
    return pts.astype(np.float32)


def mouth_alpha(
    polygon: np.ndarray, shape: tuple[int, ...], size: float, *, grow: float = 6.0, blur: float = 8.0
) -> np.ndarray:
    """A float32 alpha (0..1) over the mouth opening, grown and feathered (sizes at 256)."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.round(polygon).astype(np.int32)
    if len(pts) >= 3:
        cv2.fillPoly(mask, [cv2.convexHull(pts)], 255, cv2.LINE_AA)
    grow_px = scaled_px(grow, size)
    if grow_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        mask = cv2.dilate(mask, kernel)
    alpha = mask.astype(np.float32) * (1.0 / 255.0)
    blur_px = scaled_px(blur, size)
    if blur_px > 0:
        k = _odd(2 * blur_px + 1)
        alpha = cv2.GaussianBlur(alpha, (k, k), blur_px / 2.0)
    return alpha


def match_color_lab(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``source`` (BGR uint8) recoloured so its LAB mean and spread inside ``mask`` match ``target``'s.

    ``mask`` is a boolean or uint8 array of the crop; statistics are taken where it is set, and
    the transfer applies to the whole crop. Returns BGR uint8.
    """
    m8 = mask.astype(np.uint8) if mask.dtype == np.bool_ else mask
    if cv2.countNonZero(m8) < 16:
        return source
    src_lab = cv2.cvtColor(source, cv2.COLOR_BGR2LAB)
    dst_lab = cv2.cvtColor(target, cv2.COLOR_BGR2LAB)
    s_mean, s_std = (v.reshape(3) for v in cv2.meanStdDev(src_lab, mask=m8))
    d_mean, d_std = (v.reshape(3) for v in cv2.meanStdDev(dst_lab, mask=m8))
    # Limit the stretch so a flat source patch is not blown up into noise.
    gain = np.clip(d_std / np.maximum(s_std, 1e-3), 0.5, 2.0)
    matrix = np.zeros((3, 4), np.float64)
    matrix[:, :3] = np.diag(gain)
    matrix[:, 3] = d_mean - s_mean * gain
    out = cv2.transform(src_lab, matrix)  # saturates to 0..255
    return cv2.cvtColor(out, cv2.COLOR_LAB2BGR)


def alpha_blend(background: np.ndarray, foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``foreground`` over ``background`` (uint8 BGR of one size) with a float 0..1 alpha (HxW)."""
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    bg = background.astype(np.float32)
    out = bg + (foreground.astype(np.float32) - bg) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def seamless(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson (``cv2.seamlessClone``, normal clone) of ``foreground`` into ``background`` inside ``mask``.

    Both are crops of one size. The mask is kept off the crop's border (OpenCV needs that); when
    it is empty the background is returned unchanged.
    """
    height, width = mask.shape[:2]
    binary = np.where(mask > 0, np.uint8(255), np.uint8(0))
    binary[:2, :] = 0
    binary[-2:, :] = 0
    binary[:, :2] = 0
    binary[:, -2:] = 0
    ys, xs = np.nonzero(binary)
    if len(xs) < 16 or height < 8 or width < 8:
        return background.copy()
    x1, x2, y1, y2 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    # seamlessClone centres the mask's bounding box at ``center``; OpenCV versions round an even
    # box differently, so make both extents odd (drop the last column/row) and the centre is exact.
    if (x2 - x1) % 2:
        binary[:, x2] = 0
        x2 -= 1
    if (y2 - y1) % 2:
        binary[y2, :] = 0
        y2 -= 1
    center = ((x1 + x2) // 2, (y1 + y2) // 2)
    try:
        return cv2.seamlessClone(foreground, background, binary, center, cv2.NORMAL_CLONE)
    except cv2.error as exc:  # a degenerate mask; fall back to the plain paste
        log.debug("seamless clone failed (%s); using an alpha blend", exc)
        return alpha_blend(background, foreground, binary.astype(np.float32) / 255.0)
