"""Source photos and short source videos: what the face swap takes the face from.

A photo is one view of the face. A short video (a few seconds of someone turning their head and
talking) is many: :func:`video_frames` reads evenly spaced frames, and :func:`pick_views` keeps the
few that differ most in head pose and mouth state (the sharpest first), so the classic engine can
give every target face a view that fits it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workers.errors import UserError

log = logging.getLogger(__name__)

#: Frames read from a source video, and views kept from them.
VIDEO_FRAMES = 24
VIDEO_VIEWS = 8


def video_frames(path: Path, count: int = VIDEO_FRAMES, check: Callable[[], Any] | None = None) -> list[np.ndarray]:
    """Up to ``count`` evenly spaced frames of a video (BGR, upright); a UserError sentence when unreadable."""
    import av

    from workers.media.video import probe_video, upright

    info = probe_video(path)
    total = max(1, int(info.frames))
    n = min(count, total)
    wanted = {round(i * (total - 1) / max(1, n - 1)) for i in range(n)}
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            for number, frame in enumerate(container.decode(stream)):
                if check is not None:
                    check()
                if number in wanted:
                    frames.append(upright(frame.to_ndarray(format="bgr24"), info.rotation))
                if number >= max(wanted):
                    break
    except (av.FFmpegError, OSError) as exc:
        raise UserError(f"{path.name} could not be read as a video ({exc}).") from None
    if not frames:
        raise UserError(f"{path.name} holds no readable video frame.")
    return frames


def sharpness(bgr: np.ndarray, box: Sequence[float]) -> float:
    """How crisp a face is: the spread of the Laplacian over its box, at a fixed size."""
    h, w = bgr.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
    crop = bgr[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def pick_views(
    frames: list[np.ndarray], detect: Callable[[np.ndarray], list[Any]], count: int = VIDEO_VIEWS
) -> list[np.ndarray]:
    """The frames that show the face in the most different ways (head pose, mouth), at most ``count``.

    Frames without a face are dropped. The first pick is the sharpest face looking most directly at
    the camera; each next one the frame farthest (in pose and mouth) from those picked.
    """
    from workers.face_swap.pose import usable_view

    found: list[tuple[np.ndarray, np.ndarray, float]] = []  # frame, (yaw, pitch, mouth), sharpness
    for frame in frames:
        faces = detect(frame)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.area)
        view = None
        if face.landmarks is not None and len(face.landmarks) == 68:
            view = usable_view(face.landmarks, face.kps)
            if view is None:
                continue
        point = (
            np.array([view.pose.yaw, view.pose.pitch, view.mouth * 60.0]) if view is not None else np.zeros(3)
        )
        found.append((frame, point, sharpness(frame, face.bbox)))
    if not found:
        raise UserError("No usable face was found in the source video; film the face from the front, well lit.")
    if len(found) <= count:
        return [f for f, _p, _s in found]
    best_sharp = max(s for _f, _p, s in found) or 1.0
    start = min(range(len(found)), key=lambda i: np.hypot(*found[i][1][:2]) - 10.0 * found[i][2] / best_sharp)
    chosen = [start]
    points = np.stack([p for _f, p, _s in found])
    while len(chosen) < count:
        gaps = np.min(np.linalg.norm(points[:, None, :] - points[chosen][None, :, :], axis=2), axis=1)
        gaps[chosen] = -1.0
        nxt = int(np.argmax(gaps))
        if gaps[nxt] < 4.0:  # the rest look like views already picked
            break
        chosen.append(nxt)
    return [found[i][0] for i in sorted(chosen)]
