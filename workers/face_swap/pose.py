"""Head pose and mouth state from dlib's 68 landmarks, and which source view suits a target face.

Pose comes from ``cv2.solvePnP`` with a generic 3-D face (millimetres, the nose tip at the origin)
and a camera centred on the face. Sign conventions, always as the picture shows the face:

- ``yaw`` > 0: the face turns towards the picture's right (the nose points to larger x);
- ``pitch`` > 0: the face looks up (the nose points to smaller y);
- ``roll`` > 0: the head leans clockwise (the eye on the picture's right is lower).

The mouth's open ratio is the gap between the inner lips over the mouth's width (about 0 closed,
0.3 and more wide open).

A classic swap warps the source face in 2-D, so it only looks right when the source view shows the
head turned about as the target's is. :func:`choose_view` picks the closest view (pose first, mouth
state second) and says whether it is close enough; :func:`missing_view_sentence` tells the user
which photo would fill the gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "PITCH_TOLERANCE",
    "YAW_TOLERANCE",
    "HeadPose",
    "View",
    "ViewChoice",
    "choose_view",
    "five_point_yaw",
    "head_pose",
    "landmarks_fit",
    "mirrored",
    "missing_view_sentence",
    "mouth_open_ratio",
    "no_usable_view_sentence",
    "usable_view",
    "view_of",
]

#: Generic 3-D positions (mm; x to the picture's right, y down, z away from the camera) of some of
#: dlib's 68 points on a face looking straight at the camera.
MODEL_POINTS: dict[int, tuple[float, float, float]] = {
    30: (0.0, 0.0, 0.0),  # nose tip
    27: (0.0, -48.0, 24.0),  # nose bridge between the eyes
    33: (0.0, 14.0, 14.0),  # below the nose
    31: (-11.0, 10.0, 20.0),
    35: (11.0, 10.0, 20.0),
    36: (-44.0, -36.0, 44.0),  # eye corners, outer and inner
    39: (-15.0, -35.0, 36.0),
    42: (15.0, -35.0, 36.0),
    45: (44.0, -36.0, 44.0),
    19: (-30.0, -55.0, 34.0),  # brows
    24: (30.0, -55.0, 34.0),
    48: (-25.0, 33.0, 32.0),  # mouth corners
    54: (25.0, 33.0, 32.0),
    51: (0.0, 27.0, 19.0),  # upper and lower lip
    57: (0.0, 45.0, 23.0),
    8: (0.0, 78.0, 36.0),  # chin
    0: (-70.0, -22.0, 95.0),  # the jaw line, from beside the ears down to the chin
    2: (-66.0, 18.0, 88.0),
    4: (-57.0, 50.0, 70.0),
    6: (-38.0, 70.0, 50.0),
    10: (38.0, 70.0, 50.0),
    12: (57.0, 50.0, 70.0),
    14: (66.0, 18.0, 88.0),
    16: (70.0, -22.0, 95.0),
}
_INDEX = np.array(list(MODEL_POINTS), np.int32)
_MODEL = np.array(list(MODEL_POINTS.values()), np.float64)

#: A view counts as fitting a target when its yaw and pitch lie this close (degrees). Past that the
#: 2-D warp stretches the far cheek or the forehead and the face smears.
YAW_TOLERANCE = 18.0
PITCH_TOLERANCE = 15.0
#: Past these a face is too far turned for the 2-D warp at all (one eye or the mouth half hidden).
MAX_YAW = 50.0
MAX_PITCH = 40.0
#: Landmarks that lie further than this (mean, in eye-to-mouth lengths) from the detector's five
#: key points, or whose yaw differs from the key points' by more degrees than this, are a misfit.
LANDMARK_MISFIT = 0.3
YAW_DISAGREEMENT = 25.0
#: The generic model reads faces looking straight at the camera about this much downward.
PITCH_BIAS = 9.0
#: How much a difference in mouth opening weighs against degrees of pose when views are ranked.
MOUTH_WEIGHT = 40.0


@dataclass(frozen=True)
class HeadPose:
    """A face's direction in degrees (see the module's sign conventions)."""

    yaw: float
    pitch: float
    roll: float

    def distance(self, other: HeadPose) -> float:
        """How far apart two poses are, each axis over its tolerance (1.0 = at the tolerance)."""
        return math.hypot((self.yaw - other.yaw) / YAW_TOLERANCE, (self.pitch - other.pitch) / PITCH_TOLERANCE)

    def fits(self, other: HeadPose) -> bool:
        return abs(self.yaw - other.yaw) <= YAW_TOLERANCE and abs(self.pitch - other.pitch) <= PITCH_TOLERANCE


@dataclass(frozen=True)
class View:
    """What a face shows: its pose and how open its mouth is."""

    pose: HeadPose
    mouth: float


@dataclass(frozen=True)
class ViewChoice:
    """The view chosen for a target face and whether it lies within the tolerance."""

    index: int
    fits: bool
    #: The target's view, for the sentence that names the missing photo.
    target: View
    source: View


def _scale(lm: np.ndarray) -> float:
    return float(np.sqrt(((lm - lm.mean(axis=0)) ** 2).sum(axis=1).mean()))


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """The head's yaw, pitch and roll from 68 landmarks (degrees; see the module's conventions)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if len(lm) != 68:
        raise ValueError("68 landmarks are needed")
    size = max(_scale(lm), 1.0)
    centre = lm.mean(axis=0)
    # A camera centred on the face with a portrait lens: the focal length a few face sizes, so
    # that photos of any size and crop give the same angles for the same face.
    focal = 6.0 * size
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    image = lm[_INDEX]
    ok, rvec, tvec = cv2.solvePnP(_MODEL, image, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(
            _MODEL, image, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
        )
    if not ok or not np.all(np.isfinite(rvec)):
        return HeadPose(0.0, 0.0, _roll_2d(lm))
    rot, _ = cv2.Rodrigues(rvec)
    if tvec[2, 0] < 0:  # the mirror solution behind the camera
        rot = -rot
    forward = rot @ np.array([0.0, 0.0, -1.0])  # where the face looks, in camera coordinates
    right = rot @ np.array([1.0, 0.0, 0.0])
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2]))) + PITCH_BIAS
    roll = math.degrees(math.atan2(right[1], right[0]))
    return HeadPose(float(yaw), float(pitch), float(roll))


def _roll_2d(lm: np.ndarray) -> float:
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    return float(math.degrees(math.atan2(right[1] - left[1], right[0] - left[0])))


def mouth_open_ratio(landmarks: np.ndarray) -> float:
    """The gap between the inner lips over the mouth's width (0 closed)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 2)
    width = float(np.linalg.norm(lm[54] - lm[48]))
    if width < 1e-3:
        return 0.0
    gap = np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    return float(gap / width)


def view_of(landmarks: np.ndarray) -> View:
    return View(head_pose(landmarks), mouth_open_ratio(landmarks))


def five_point_yaw(kps: np.ndarray) -> float:
    """A rough yaw (degrees, same sign as :func:`head_pose`) from five key points alone: how far the
    nose tip lies beside the line from the eyes' midpoint to the mouth's, over that line's length."""
    k = np.asarray(kps, np.float64).reshape(5, 2)
    eyes, mouth = (k[0] + k[1]) / 2, (k[3] + k[4]) / 2
    axis = mouth - eyes
    length = float(np.hypot(*axis))
    if length < 1e-3:
        return 0.0
    side = np.array([axis[1], -axis[0]]) / length  # the face's own "right", as the picture shows it
    offset = float(np.dot(k[2] - (eyes + mouth) / 2, side)) / length
    # The nose tip stands about 0.55 eye-to-mouth lengths in front of the face.
    return float(math.degrees(math.asin(max(-1.0, min(1.0, offset / 0.55)))))


def landmarks_fit(landmarks: np.ndarray, kps: np.ndarray | None) -> bool:
    """Whether the 68 landmarks agree with the detector's five key points: dlib's predictor, made
    for faces seen from the front, draws a frontal face over a profile, and such a fit is no use."""
    if kps is None:
        return True
    lm = np.asarray(landmarks, np.float64)
    k = np.asarray(kps, np.float64).reshape(5, 2)
    from68 = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[30], lm[48], lm[54]])
    scale = float(np.linalg.norm((k[0] + k[1]) / 2 - (k[3] + k[4]) / 2))
    if scale < 1e-3:
        return False
    if float(np.linalg.norm(from68 - k, axis=1).mean()) / scale > LANDMARK_MISFIT:
        return False
    return abs(five_point_yaw(k) - head_pose(lm).yaw) <= YAW_DISAGREEMENT


def usable_view(landmarks: np.ndarray | None, kps: np.ndarray | None = None) -> View | None:
    """The face's view, or None when it is turned too far (or its landmarks are off) to be warped."""
    if landmarks is None or len(landmarks) != 68:
        return None
    lm = np.asarray(landmarks, np.float64)
    eyes = float(np.linalg.norm(lm[36:42].mean(axis=0) - lm[42:48].mean(axis=0)))
    if eyes < 4.0 or eyes < 0.12 * float(np.ptp(lm, axis=0).max()):
        return None
    if not landmarks_fit(lm, kps):
        return None
    view = view_of(lm)
    if abs(view.pose.yaw) > MAX_YAW or abs(view.pose.pitch) > MAX_PITCH:
        return None
    return view


def mirrored(view: View) -> View:
    """The view of the same face flipped left to right."""
    return View(HeadPose(-view.pose.yaw, view.pose.pitch, -view.pose.roll), view.mouth)


def choose_view(
    target: View, views: Sequence[View], previous: int | None = None, penalties: Sequence[float] | None = None
) -> ViewChoice:
    """The source view that suits ``target`` best: the closest pose, then the closest mouth state.

    ``previous`` (the view used on the last frame) is kept unless another is clearly better, so a
    video does not flicker between two views of nearly the same pose. ``penalties`` (in the cost's
    units, 1 = a tenth of the pose tolerance) hold back views that are second best by nature, such
    as a photo flipped left to right.
    """
    if not views:
        raise ValueError("no source views")

    def cost(view: View) -> float:
        return view.pose.distance(target.pose) * 10.0 + abs(view.mouth - target.mouth) * MOUTH_WEIGHT / 10.0

    costs = [cost(v) + (penalties[i] if penalties is not None else 0.0) for i, v in enumerate(views)]
    best = int(np.argmin(costs))
    if previous is not None and 0 <= previous < len(views) and costs[previous] <= costs[best] + 1.5:
        best = previous
    return ViewChoice(best, views[best].pose.fits(target.pose), target, views[best])


def _describe(pose: HeadPose) -> str:
    """Where a face looks, in words ("straight at the camera", "up and to the left of the picture")."""
    parts = []
    if abs(pose.pitch) > PITCH_TOLERANCE / 2:
        parts.append("up" if pose.pitch > 0 else "down")
    if abs(pose.yaw) > YAW_TOLERANCE / 2:
        parts.append(f"to the {'right' if pose.yaw > 0 else 'left'} of the picture")
    return " and ".join(parts) if parts else "straight at the camera"


def missing_view_sentence(choice: ViewChoice) -> str:
    """One sentence naming the source photo that is missing for this target face."""
    target, have = choice.target.pose, choice.source.pose
    wanted = _describe(target)
    return (
        f"No source photo shows the face turned like the target, which looks {wanted} (the closest photo "
        f"looks {_describe(have)}): add a photo looking {wanted}."
    )


def no_usable_view_sentence(number: int) -> str:
    """One sentence for a source photo whose face cannot be used at all."""
    return (
        f"The face in source photo {number} is turned too far from the camera to be used; choose a photo "
        "where both eyes and the mouth can be seen."
    )
