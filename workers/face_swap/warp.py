"""The triangulated warp the classic engine uses: a fixed face mesh and its piecewise-affine remap.

Both faces get dlib's 68 landmarks plus six points on the forehead (brow points lifted along the
face's axis). One fixed triangulation of those 74 points serves every face: it was made once on a
mean frontal face with the mouth a little open (:data:`TEMPLATE`), with the inner-lip outline
(points 60-67) kept as edges, so the inside of the mouth is triangles of its own
(:data:`INNER_MOUTH`) and no triangle reaches from a lip across the mouth. A per-pair Delaunay
triangulation did reach across: where one mouth was open and the other closed, slivers flipped and
pasted dark triangles of mouth onto the lips.

:func:`piecewise_maps` maps every pixel of a target crop through the affine transform of the
triangle it lies in and tells which triangle that is, so a caller can leave out the mouth.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "FOREHEAD_LIFT",
    "INNER_MOUTH",
    "TEMPLATE",
    "TRIANGLES",
    "extended_points",
    "mask_points",
    "piecewise_maps",
    "up_vector",
]

#: Brow points lifted onto the forehead so the warp covers the whole face.
FOREHEAD_FROM = (17, 19, 21, 22, 24, 26)
FOREHEAD_LIFT = 0.28  # of the chin-to-brow distance
MASK_LIFT = 0.07  # the mask reaches a little above the brows

#: dlib's 68 points on a mean frontal face (eyes 64 px apart), the mouth a little open.
_TEMPLATE_TEXT = """
    30 84 31 101 33 118 36 135 43 151 53 170 67 181 83 190 100 193 117 190
    133 181 147 170 157 151 164 135 167 118 169 101 170 84 41 70 49 60 62 57
    75 59 87 65 113 65 125 59 138 57 151 60 159 70 100 79 100 90 100 101
    100 112 84 119 92 121 100 124 108 121 116 119 56 80 64 76 73 76 80 82
    72 83 63 83 120 82 127 76 136 76 144 80 137 83 128 83 69 138 80 137
    92 136 100 137 108 136 120 137 131 138 120 159 109 164 100 165 91 164 80 159
    76 139 92 140 100 141 108 140 124 139 108 157 100 157 92 157
"""
TEMPLATE = np.array(_TEMPLATE_TEXT.split(), np.float32).reshape(68, 2)

#: The mesh over the 68 points and the six forehead points (68-73), counter-clockwise on the template.
_TRIANGLES_TEXT = """
    17 36 0 36 1 0 68 17 0 1 41 2 36 41 1 31 48 2 41 31 2 48 3 2 3 48 4 48 5 4
    5 48 59 6 5 59 58 6 59 58 7 6 7 58 8 56 9 8 57 56 8 58 57 8 56 10 9 10 55 11
    56 55 10 11 54 12 55 54 11 54 13 12 13 54 14 35 46 14 46 15 14 54 35 14 15 45 16 45 15 46
    26 73 16 45 26 16 18 17 68 36 17 18 19 18 68 19 37 18 37 36 18 19 70 20 37 19 20 69 19 68
    70 19 69 20 21 38 37 20 38 70 21 20 21 39 38 22 21 70 22 27 21 27 39 21 22 43 42 22 70 71
    22 71 23 27 22 42 43 22 23 24 44 23 44 43 23 71 24 23 24 71 72 25 24 73 25 44 24 73 24 72
    26 25 73 44 25 45 45 25 26 27 42 28 39 27 28 29 39 28 42 29 28 29 35 30 29 42 35 31 29 30
    39 29 31 32 31 30 33 32 30 34 33 30 35 34 30 31 41 40 31 49 48 39 31 40 50 31 32 50 49 31
    33 50 32 33 34 52 33 52 51 50 33 51 52 34 35 35 47 46 42 47 35 53 52 35 54 53 35 37 41 36
    40 37 38 41 37 40 39 40 38 43 47 42 44 47 43 44 45 46 47 44 46 48 60 59 49 60 48 50 61 49
    60 49 61 61 50 51 52 63 51 62 61 51 63 62 51 53 63 52 53 54 64 64 63 53 54 55 64 55 56 65
    64 55 65 56 57 65 57 66 65 66 57 67 67 57 58 67 58 59 60 67 59 60 61 67 61 62 67 62 63 65
    62 66 67 66 62 65 64 65 63 70 69 72 71 70 72
"""
TRIANGLES = np.array(_TRIANGLES_TEXT.split(), np.int32).reshape(-1, 3)

#: Rows of :data:`TRIANGLES` inside the inner-lip outline: the mouth's opening.
INNER_MOUTH = np.flatnonzero((TRIANGLES >= 60).all(axis=1) & (TRIANGLES < 68).all(axis=1))


def up_vector(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The face's unit "up" (chin to brows) and the chin-to-brow distance."""
    lm = np.asarray(landmarks, np.float32)
    brow_mid = (lm[19] + lm[24]) / 2
    up = brow_mid - lm[8]
    length = float(np.hypot(*up))
    if length < 1e-3:
        return np.array([0.0, -1.0], np.float32), 1.0
    return (up / length).astype(np.float32), length


def extended_points(landmarks: np.ndarray, lift: float = FOREHEAD_LIFT) -> np.ndarray:
    """68 landmarks plus six forehead points (brow points moved up along the face's axis)."""
    lm = np.asarray(landmarks, np.float32)
    up, length = up_vector(lm)
    forehead = lm[list(FOREHEAD_FROM)] + up * (length * lift)
    return np.concatenate([lm, forehead.astype(np.float32)])


def mask_points(landmarks: np.ndarray) -> np.ndarray:
    """The outline the face mask fills: jaw and brows, the brows lifted a little."""
    lm = np.asarray(landmarks, np.float32)
    up, length = up_vector(lm)
    brows = lm[17:27] + up * (length * MASK_LIFT)
    return np.concatenate([lm[0:17], brows])


def piecewise_maps(
    src_pts: np.ndarray, dst_pts: np.ndarray, shape: tuple[int, int], triangles: np.ndarray = TRIANGLES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (x, y) for a crop of ``shape``, and which triangle covers each pixel.

    Every target pixel inside triangle i reads the source at ``A_i @ (x, y, 1)``, where ``A_i``
    maps that target triangle onto its source triangle. ``owner`` is 0 outside the mesh and i + 1
    inside triangle i (int32); maps are -1 where no triangle covers the pixel.
    """
    height, width = shape
    owner = np.zeros((height, width), np.int32)
    coeffs = np.zeros((len(triangles) + 1, 6), np.float32)
    src_tris = np.asarray(src_pts, np.float32)[triangles]
    dst_tris = np.asarray(dst_pts, np.float32)[triangles]
    for i, (s, d) in enumerate(zip(src_tris, dst_tris, strict=True), start=1):
        d_area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[1, 1] - d[0, 1]) * (d[2, 0] - d[0, 0])
        if abs(d_area) < 0.25:  # degenerate in the target: nothing to fill
            continue
        coeffs[i] = cv2.getAffineTransform(d, s).reshape(6)
        # Sub-pixel vertices (4 fractional bits) so neighbouring triangles meet without gaps.
        cv2.fillConvexPoly(owner, np.round(d * 16).astype(np.int32), i, cv2.LINE_8, 4)
    valid = owner > 0
    c = coeffs[owner]  # (h, w, 6)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    map_x = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
    map_y = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
    map_x[~valid] = -1.0
    map_y[~valid] = -1.0
    return map_x, map_y, owner
