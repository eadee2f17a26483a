"""Steadier masks between the frames of a live picture or a video: no flicker on a still subject.

A model looks at every frame afresh, so on a still subject its mask trembles by a pixel or two at
the edges and blinks in doubtful places. :class:`MaskSteadier` keeps a running mask and blends each
new one into it with a weight per pixel:

- where the picture is still, the weight is small (``still_rate``): the mask changes only slowly, so
  the model's frame-to-frame noise averages out;
- where the picture moved, the weight is 1: the mask follows the model at once, with no trail.

Motion is read from the picture itself, not from the masks: the difference of two consecutive frames
at a small working size, in each colour (a subject and a background of the same brightness still
differ), less the global change of the whole picture (a camera's auto-exposure), above
a noise floor (raised to the picture's own noise in dim light), widened by a few pixels so that it
covers the subject's edge on both sides. When most of
the picture changed at once (a cut, the camera turned), the running mask starts again from the new one.

Plain numpy and OpenCV: no Qt, no model runtime.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MaskSteadier"]


class MaskSteadier:
    """Call it with each frame (BGR uint8) and the model's alpha for it (HxW uint8); it returns the
    steadied alpha (HxW uint8). :meth:`reset` forgets the running mask (a new stream, another model)."""

    def __init__(
        self,
        *,
        still_rate: float = 0.15,
        noise: float = 4.0,
        full_motion: float = 12.0,
        work_width: int = 320,
        spread: int = 2,
        cut_fraction: float = 0.5,
        cut_level: float = 30.0,
    ) -> None:
        #: Weight of a new mask where the picture is still (0: frozen, 1: no steadying).
        self.still_rate = float(np.clip(still_rate, 0.01, 1.0))
        #: Levels (0..255) of frame difference (at the working size) below which a pixel counts as still (at
        #: least; a noisy picture raises it to three times its noise)...
        self.noise = float(noise)
        #: ...and from which on it counts as fully moving.
        self.full_motion = max(float(full_motion), self.noise + 1.0)
        #: Width of the picture the motion is measured on.
        self.work_width = max(16, int(work_width))
        #: Motion is widened by this many working pixels (a moving edge moves the mask on both sides).
        self.spread = max(0, int(spread))
        #: When this share of the picture changed by ``cut_level`` or more, the running mask starts
        #: again from the model's (a cut, the camera turned).
        self.cut_fraction = float(cut_fraction)
        self.cut_level = float(cut_level)
        self._picture: np.ndarray | None = None
        self._state: np.ndarray | None = None
        #: The share of the picture that moved in the last frame (0..1), for stats and tests.
        self.motion = 0.0

    def reset(self) -> None:
        self._picture = None
        self._state = None
        self.motion = 0.0

    def __call__(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        h, w = alpha.shape[:2]
        picture = self._small_picture(frame)
        state = self._state
        previous = self._picture
        self._picture = picture
        if state is None or previous is None or state.shape != (h, w) or previous.shape != picture.shape:
            self._state = alpha.astype(np.float32)
            self.motion = 1.0
            return alpha
        rate_small = self._rate(picture, previous)
        if rate_small is None:  # most of the picture changed: start again
            self._state = alpha.astype(np.float32)
            return alpha
        rate = cv2.resize(rate_small, (w, h), interpolation=cv2.INTER_LINEAR)
        # state += rate * (alpha - state), in place
        change = alpha.astype(np.float32)
        cv2.subtract(change, state, dst=change)
        cv2.multiply(change, rate, dst=change)
        cv2.add(state, change, dst=state)
        return cv2.convertScaleAbs(state)  # rounded and saturated to 0..255 (the state never goes below 0)

    # ---- motion -----------------------------------------------------------------------------------
    def _small_picture(self, frame: np.ndarray) -> np.ndarray:
        """The frame at the working size, in colour (two colours of the same brightness differ)."""
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = frame[..., :3]
        h, w = frame.shape[:2]
        width = min(self.work_width, w)
        height = max(1, round(h * width / w))
        small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small.astype(np.float32), (3, 3), 0)

    def _rate(self, picture: np.ndarray, previous: np.ndarray) -> np.ndarray | None:
        """The per-pixel weight of the new mask at the working size, or None after a cut."""
        # A change of the whole picture (exposure, white balance) is not motion: the median change of
        # each colour is taken off; a pixel's motion is its largest change over the colours.
        channels = cv2.split(picture - previous) if picture.ndim == 3 else [picture - previous]
        diff = None
        for channel in channels:
            channel -= float(np.median(channel[::2, ::2]))
            np.abs(channel, out=channel)
            diff = channel if diff is None else cv2.max(diff, channel)
        assert diff is not None
        if np.count_nonzero(diff > self.cut_level) >= self.cut_fraction * diff.size:
            self.motion = 1.0
            return None
        # The camera's own noise, from the still majority of the picture (a robust spread): a noisy
        # picture in dim light raises the floor, so its grain is not taken for motion.
        spread = float(np.median(diff[::2, ::2]))
        floor = min(max(self.noise, 3.0 * 1.4826 * spread), self.cut_level / 2)
        full = floor + (self.full_motion - self.noise)
        moving = np.clip((diff - floor) / (full - floor), 0.0, 1.0)
        self.motion = float(np.count_nonzero(moving > 0) / moving.size)
        if self.spread:
            size = 2 * self.spread + 1
            moving = cv2.dilate(moving, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
        rate = self.still_rate + (1.0 - self.still_rate) * moving
        return rate.astype(np.float32)
