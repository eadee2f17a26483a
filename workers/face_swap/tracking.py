"""Following faces from frame to frame between detections (Lucas-Kanade optical flow).

A full face detection costs far more than a frame's budget on a CPU, so live video detects every
few frames and tracks in between: each face's landmarks are followed with pyramidal Lucas-Kanade
optical flow on a small greyscale copy of the frame, points that do not come back to where they
started when tracked backwards are dropped (forward-backward check), and a similarity transform
(shift, turn, zoom) fitted to the survivors moves the face's box, key points and landmarks.
When too few points survive the track is lost and the caller detects again at once; when a face
moved a lot the caller is told to detect on the next frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from workers.face_swap.options import Face

log = logging.getLogger(__name__)

_LK_PARAMS = {
    "winSize": (15, 15),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}


@dataclass
class Track:
    """One followed face: its latest state and what was learned about it when it was detected."""

    id: int
    face: Face
    #: Similarity to the reference face (None until measured).
    similarity: float | None = None
    #: Detections this face has been matched through.
    detections: int = 1
    #: Detections in a row that missed this face while tracking still followed it.
    misses: int = 0
    #: Whether the last :meth:`FaceTracker.track` followed this face.
    followed: bool = True


@dataclass
class TrackResult:
    """The outcome of following the faces into a new frame."""

    faces: list[Face]
    ok: bool  # False: a face was lost, detect again now
    moved_a_lot: bool = False  # detect again on the next frame
    kept: list[float] = field(default_factory=list)  # share of points kept per face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _points_of(face: Face) -> np.ndarray:
    if face.landmarks is not None and len(face.landmarks) >= 5:
        return np.asarray(face.landmarks, np.float32)
    return np.asarray(face.kps, np.float32)


def _moved(face: Face, m: np.ndarray) -> Face:
    """The face moved by the 2x3 similarity ``m`` (full-resolution coordinates)."""
    a, t = m[:, :2], m[:, 2]

    def move(points: np.ndarray | None) -> np.ndarray | None:
        if points is None:
            return None
        return (np.asarray(points, np.float32) @ a.T + t).astype(np.float32)

    cx, cy = face.center
    centre = np.array([cx, cy], np.float32) @ a.T + t
    zoom = float(np.sqrt(abs(np.linalg.det(a))))
    half_w, half_h = face.width * zoom / 2, face.height * zoom / 2
    bbox = np.array([centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h], np.float32)
    kps = move(face.kps)
    assert kps is not None
    return Face(bbox, kps, move(face.landmarks), face.embedding, face.score)


class FaceTracker:
    """Follows faces between detections on a greyscale copy at most ``max_side`` px long."""

    def __init__(
        self,
        *,
        max_side: int = 480,
        fb_error: float = 1.0,
        min_kept: float = 0.5,
        big_shift: float = 0.2,
        big_zoom: float = 0.1,
        keep_missed: int = 2,
    ) -> None:
        self.max_side = int(max_side)
        self.fb_error = float(fb_error)  # px at the tracking scale
        self.min_kept = float(min_kept)
        self.big_shift = float(big_shift)  # of the face's width, in one frame
        self.big_zoom = float(big_zoom)
        #: A face the detector misses stays while tracking follows it, for this many detections.
        self.keep_missed = int(keep_missed)
        self.tracks: list[Track] = []
        self._gray: np.ndarray | None = None
        self._scale = 1.0
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self._gray = None

    @property
    def faces(self) -> list[Face]:
        return [t.face for t in self.tracks]

    def _to_gray(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = frame.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        gray = frame
        if gray.ndim == 3:  # grey first: a third of the pixels to shrink
            gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY if gray.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR)
        return gray, scale

    def start(self, frame: np.ndarray, faces: list[Face]) -> list[Track]:
        """Begin following freshly detected ``faces``; faces that overlap an old track keep its id and data.

        Old tracks that no detection matches are kept (for ``keep_missed`` detections in a row)
        when :meth:`track` followed them into this same frame: detectors miss a face now and then.
        """
        self._gray, self._scale = self._to_gray(frame)
        old = list(self.tracks)
        tracks: list[Track] = []
        for face in faces:
            best, best_iou = None, 0.3
            for track in old:
                overlap = iou(track.face.bbox, face.bbox)
                if overlap > best_iou:
                    best, best_iou = track, overlap
            if best is not None:
                old.remove(best)
                if face.embedding is None:
                    face.embedding = best.face.embedding
                tracks.append(Track(best.id, face, best.similarity, best.detections + 1))
            else:
                tracks.append(Track(self._next_id, face))
                self._next_id += 1
        for track in old:
            if track.followed and track.misses < self.keep_missed:
                track.misses += 1
                tracks.append(track)
        self.tracks = tracks
        return tracks

    def refresh(self, faces: list[Face]) -> None:
        """Replace the tracked faces (same order) after their landmarks were refined."""
        for track, face in zip(self.tracks, faces, strict=False):
            if face.embedding is None:
                face.embedding = track.face.embedding
            track.face = face

    def track(self, frame: np.ndarray) -> TrackResult:
        """Follow every face into ``frame``. With nothing to follow the result is ok and empty."""
        gray, scale = self._to_gray(frame)
        prev, prev_scale = self._gray, self._scale
        self._gray, self._scale = gray, scale
        if not self.tracks:
            return TrackResult([], True)
        if prev is None or prev.shape != gray.shape or prev_scale != scale:
            for track in self.tracks:
                track.followed = False
            return TrackResult(self.faces, False)
        groups = [_points_of(t.face) * np.float32(scale) for t in self.tracks]
        p0 = np.concatenate(groups).reshape(-1, 1, 2).astype(np.float32)
        p1, st1, _err = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **_LK_PARAMS)
        p0r, st2, _err = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **_LK_PARAMS)
        fb = np.linalg.norm((p0 - p0r).reshape(-1, 2), axis=1)
        good_all = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1) & (fb < self.fb_error)
        faces: list[Face] = []
        kept: list[float] = []
        ok, moved = True, False
        start = 0
        for track, group in zip(self.tracks, groups, strict=True):
            n = len(group)
            good = good_all[start : start + n]
            a = p0[start : start + n].reshape(-1, 2)[good]
            b = p1[start : start + n].reshape(-1, 2)[good]
            start += n
            share = float(good.mean()) if n else 0.0
            kept.append(share)
            m = None
            if len(a) >= 4 and share >= self.min_kept:
                m, _inliers = cv2.estimateAffinePartial2D(
                    a, b, method=cv2.RANSAC, ransacReprojThreshold=2.0, maxIters=200, confidence=0.99
                )
            if m is None:
                ok = False
                track.followed = False
                faces.append(track.face)
                continue
            m = m.astype(np.float32)
            m[:, 2] /= np.float32(scale)  # the shift back to full resolution
            moved_face = _moved(track.face, m)
            shift = float(np.hypot(*(np.array(moved_face.center) - np.array(track.face.center))))
            zoom = abs(float(np.sqrt(abs(np.linalg.det(m[:, :2])))) - 1.0)
            if shift > self.big_shift * max(track.face.width, 1.0) or zoom > self.big_zoom:
                moved = True
            height, width = frame.shape[:2]
            cx, cy = moved_face.center
            track.followed = 0 <= cx < width and 0 <= cy < height
            if not track.followed:
                ok = False  # the face left the picture
            track.face = moved_face
            faces.append(moved_face)
        return TrackResult(faces, ok, moved, kept)
