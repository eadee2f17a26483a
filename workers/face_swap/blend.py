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


#: The scale (a fraction of the face's size) below which shading counts as detail: kept from the
#: source; above it, light and colour come from the target.
LIGHT_SCALE = 1.0 / 10.0
#: The same for colour: skin tone is taken from the target over a wider scale than light.
COLOUR_SCALE = 1.0 / 5.0


def masked_lowpass(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``image`` (H x W x C float32) that only averages where ``weight`` (0..1) is set.

    Normalised convolution: what lies outside the weight (hair, background, an open mouth) does not
    bleed into the result, and the result is defined (extended smoothly) everywhere. A wide blur is
    done on a smaller copy (the result is smooth anyway), which keeps it cheap for live video.
    """
    height, width = weight.shape[:2]
    w = weight.astype(np.float32)
    num = image * w[..., None]
    factor = min(1.0, 3.0 / max(float(sigma), 1e-3))
    if factor < 0.9:
        size = (max(2, round(width * factor)), max(2, round(height * factor)))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        w = cv2.resize(w, size, interpolation=cv2.INTER_AREA)
        sigma = float(sigma) * size[0] / width
    if num.ndim == 2:
        num = num[..., None]
    ksize = _odd(int(sigma * 6) + 1)
    num = cv2.GaussianBlur(num, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    if num.ndim == 2:
        num = num[..., None]
    out = num / np.maximum(den, 1e-4)[..., None]
    if out.shape[:2] != (height, width):
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
        if out.ndim == 2:
            out = out[..., None]
    return out


def chroma_spread(bgr: np.ndarray, mask: np.ndarray) -> float:
    """How coloured an image is inside ``mask``: the spread of its LAB a and b channels (0 for grey)."""
    m8 = mask.astype(np.uint8) if mask.dtype == np.bool_ else mask
    if cv2.countNonZero(m8) < 16:
        return 0.0
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    _mean, std = cv2.meanStdDev(lab, mask=m8)
    return float((std[1, 0] + std[2, 0]) / 2)


def transfer_light(
    source: np.ndarray, target: np.ndarray, mask: np.ndarray, face_px: float, *, sharpen: float = 0.0
) -> np.ndarray:
    """``source`` (a face warped onto ``target``'s geometry) lit and coloured like ``target``.

    In LAB, inside ``mask``: the lightness keeps the source's detail (everything finer than
    :data:`LIGHT_SCALE` of the face), its contrast matched to the target's, on the target's own
    low-frequency light; the colour keeps the source's colour detail (lips, cheeks) on the target's
    skin tone. A grey source has no colour detail to keep, so it takes the target's colour as a
    whole, lips included, and comes out in the target's skin colour instead of grey. ``sharpen``
    (0..1) restores some crispness when the source face was smaller than the target and is upscaled.
    Returns BGR uint8 of the crop's size.
    """
    m = mask > 0
    if int(m.sum()) < 16:
        return source
    weight = m.astype(np.float32)
    sigma = max(1.5, float(face_px) * LIGHT_SCALE)
    src = cv2.cvtColor(source, cv2.COLOR_BGR2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_BGR2LAB).astype(np.float32)
    src_low = masked_lowpass(src, weight, sigma)
    dst_low = masked_lowpass(dst, weight, sigma)
    wide = max(sigma, float(face_px) * COLOUR_SCALE)
    src_low[..., 1:] = masked_lowpass(src[..., 1:], weight, wide)
    dst_low[..., 1:] = masked_lowpass(dst[..., 1:], weight, wide)
    detail = src[..., 0] - src_low[..., 0]
    if sharpen > 0:
        fine = max(0.8, sigma / 6)
        k = _odd(int(fine * 6) + 1)
        detail = detail + sharpen * (detail - cv2.GaussianBlur(detail, (k, k), fine))
    src_spread = float(detail[m].std())
    dst_spread = float((dst[..., 0] - dst_low[..., 0])[m].std())
    gain = float(np.clip(dst_spread / max(src_spread, 1e-3), 0.75, 1.4))
    out = np.empty_like(src)
    out[..., 0] = dst_low[..., 0] + gain * detail
    # Colour: the target's skin tone, with the source's own colour detail (its spread matched to
    # the target's) when it has colour, the target's own (a little softened) when it is grey.
    own = float(np.clip((chroma_spread(source, m.astype(np.uint8)) - 1.5) / 3.0, 0.0, 1.0))
    src_ab = src[..., 1:] - src_low[..., 1:]
    dst_ab = dst[..., 1:] - dst_low[..., 1:]
    if own < 1.0:
        soft = max(0.8, float(face_px) / 25.0)
        k = _odd(int(soft * 6) + 1)
        dst_ab = cv2.GaussianBlur(dst_ab, (k, k), soft)
    for c in range(2):
        spread = float(src_ab[..., c][m].std())
        wanted = float(dst_ab[..., c][m].std())
        src_ab[..., c] *= float(np.clip(wanted / max(spread, 1e-3), 0.3, 1.2))
    out[..., 1:] = dst_low[..., 1:] + own * src_ab + (1.0 - own) * dst_ab
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def polygon_mask(points: np.ndarray, shape: tuple[int, ...], grow_px: int = 0) -> np.ndarray:
    """A uint8 mask (0/255) of the polygon's convex hull, grown by ``grow_px``."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.round(np.asarray(points, np.float32).reshape(-1, 2)).astype(np.int32)
    if len(pts) >= 3:
        cv2.fillPoly(mask, [cv2.convexHull(pts)], 255, cv2.LINE_AA)
    if grow_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        mask = cv2.dilate(mask, kernel)
    return mask
