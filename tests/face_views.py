"""Face photos in other poses and with other mouths, made from the astronaut (nothing is downloaded).

- ``posed(yaw, pitch)``: the astronaut's head turned by a few degrees (as the picture shows it: yaw > 0
  to the picture's right, pitch > 0 up). Every landmark moves as the point of a generic 3-D face at
  its depth would when the head turns, and the picture is warped piecewise along, fading out over a
  ring around the face (the background stays).
- ``with_mouth(image, open_)``: the same face with the mouth wide open (a dark opening, as in a
  photo of someone talking) or closed (the lips pressed together, no teeth).
- ``small_face_frame()``: the astronaut small (face about 30 px) in a wide 1280x960 frame.
- ``cameraman()``: scikit-image's cameraman (CC0): a greyscale photo of a man seen nearly from the
  side, his face half hidden by a camera.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from face_fixtures import astronaut

from workers.face_swap.warp import extended_points, piecewise_maps

#: dlib's 68 landmarks of :func:`face_fixtures.astronaut` (HOG box and predictor).
ASTRONAUT_68 = np.array(
    [179, 104, 179, 116, 180, 127, 181, 139, 185, 151, 191, 160, 200, 169, 209, 176, 221, 178, 232, 177, 243, 171,
     253, 164, 260, 154, 265, 144, 268, 132, 270, 120, 272, 108, 186, 94, 192, 88, 200, 87, 208, 89, 216, 92, 236,
     93, 244, 91, 252, 91, 260, 92, 265, 98, 225, 103, 225, 111, 225, 119, 225, 127, 214, 131, 219, 132, 224, 134,
     229, 133, 234, 132, 195, 101, 200, 98, 207, 98, 212, 104, 206, 104, 199, 104, 238, 105, 244, 101, 250, 101,
     255, 104, 250, 107, 244, 106, 201, 140, 209, 139, 218, 139, 223, 141, 229, 140, 237, 140, 245, 141, 237, 151,
     229, 155, 222, 156, 216, 155, 208, 150, 204, 141, 217, 143, 223, 144, 229, 143, 243, 142, 229, 150, 223, 150,
     217, 150],
    np.float32,
).reshape(68, 2)

#: Rough depth (mm behind the nose tip) of each of dlib's 68 points on a face looking at the camera,
#: then of the six forehead points the warp adds.
DEPTH_68 = np.array(
    [95, 92, 88, 80, 70, 60, 50, 42, 36, 42, 50, 60, 70, 80, 88, 92, 95,
     55, 45, 38, 34, 32, 32, 34, 38, 45, 55,
     24, 16, 8, 0, 20, 17, 14, 17, 20,
     44, 38, 36, 36, 38, 40, 36, 36, 38, 44, 40, 38,
     32, 26, 21, 19, 21, 26, 32, 27, 24, 23, 24, 27,
     30, 22, 20, 22, 30, 24, 23, 24,
     60, 45, 38, 38, 45, 60],
    np.float32,
)
#: The depth the head turns about (mm behind the nose tip).
PIVOT_MM = 85.0
EYE_CORNERS_MM = 88.0


def _ring(points: np.ndarray, scale: float, count: int = 16) -> np.ndarray:
    centre = points.mean(axis=0)
    half = (points.max(axis=0) - points.min(axis=0)) / 2 * scale
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([centre[0] + half[0] * np.cos(angles), centre[1] + half[1] * np.sin(angles)], axis=1)


def reshape(image: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``image`` warped so that the points ``old`` (68 landmarks) move to ``new``; a ring of fixed
    points around the face lets the change fade out."""
    from scipy.spatial import Delaunay

    src = extended_points(old)
    dst = extended_points(new)
    ring = _ring(src, 1.7)
    src = np.concatenate([src, ring]).astype(np.float32)
    dst = np.concatenate([dst, ring]).astype(np.float32)
    tris = Delaunay(src).simplices.astype(np.int32)
    map_x, map_y, owner = piecewise_maps(src, dst, image.shape[:2], tris)
    inside = owner > 0
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    map_x = np.where(inside, map_x, xs)
    map_y = np.where(inside, map_y, ys)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def posed_landmarks(yaw: float = 0.0, pitch: float = 0.0, landmarks: np.ndarray = ASTRONAUT_68) -> np.ndarray:
    """The landmarks moved as a head turned by ``yaw`` and ``pitch`` degrees would move them."""
    lm = np.asarray(landmarks, np.float32)
    mm = float(np.linalg.norm(lm[45] - lm[36])) / EYE_CORNERS_MM  # px per mm
    depth = DEPTH_68[:68]
    centre = np.array([lm[27:31, 0].mean(), lm[27:36, 1].mean()], np.float32)
    a, b = np.radians(yaw), np.radians(pitch)
    out = lm.copy()
    out[:, 0] = centre[0] + (lm[:, 0] - centre[0]) * np.cos(a) + (PIVOT_MM - depth) * mm * np.sin(a)
    out[:, 1] = centre[1] + (lm[:, 1] - centre[1]) * np.cos(b) - (PIVOT_MM - depth) * mm * np.sin(b)
    return out


@cache
def _posed(yaw: float, pitch: float) -> np.ndarray:
    image = reshape(astronaut(), ASTRONAUT_68, posed_landmarks(yaw, pitch))
    image.setflags(write=False)
    return image


def posed(yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """The astronaut (BGR 512x512) with her head turned by ``yaw`` and ``pitch`` degrees."""
    return np.ascontiguousarray(_posed(float(yaw), float(pitch)))


def with_mouth(image: np.ndarray, landmarks: np.ndarray, open_: bool) -> np.ndarray:
    """The face with its mouth wide open (a dark opening) or pressed shut."""
    lm = np.asarray(landmarks, np.float32)
    width = float(np.linalg.norm(lm[54] - lm[48]))
    new = lm.copy()
    if open_:
        drop = 0.45 * width
        for index, share in [*((i, 1.0) for i in (55, 56, 57, 58, 59, 65, 66, 67)),
                             *((i, 0.9) for i in (6, 7, 8, 9, 10)), (5, 0.6), (11, 0.6), (4, 0.3), (12, 0.3)]:
            new[index, 1] += drop * share
        new[[61, 62, 63], 1] -= 0.05 * width
    else:
        gap = float(np.mean(lm[[65, 66, 67], 1] - lm[[63, 62, 61], 1]))
        new[[65, 66, 67], 1] = lm[[63, 62, 61], 1]
        for index, share in [*((i, 1.0) for i in (55, 56, 57, 58, 59)), *((i, 0.8) for i in range(5, 12))]:
            new[index, 1] -= gap * share
    out = reshape(image, lm, new)
    if open_:
        hole = np.round(new[60:68]).astype(np.int32)
        cv2.fillPoly(out, [hole], (28, 22, 30), cv2.LINE_AA)
    return out


@cache
def _small_face_frame() -> np.ndarray:
    frame = np.full((960, 1280, 3), (92, 104, 110), np.uint8)
    small = cv2.resize(astronaut(), (176, 176), interpolation=cv2.INTER_AREA)
    frame[400:576, 700:876] = small
    frame.setflags(write=False)
    return frame


def small_face_frame() -> np.ndarray:
    """A 1280x960 frame with the astronaut small (face about 30 px across) at about (760, 420)."""
    return np.ascontiguousarray(_small_face_frame())


#: Where the small face lies in :func:`small_face_frame` (x1, y1, x2, y2, roughly).
SMALL_FACE_BOX = (760.0, 420.0, 795.0, 460.0)


def cameraman() -> np.ndarray:
    """scikit-image's cameraman (CC0) as BGR 512x512: a face seen nearly from the side at about (195,114)-(256,195)."""
    from skimage import data

    return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
