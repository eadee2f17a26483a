"""Keeping the picture and the voice together: each path's latency, and the delay of the earlier one.

Each stream measures its own end-to-end latency on every item, from the moment the light or the
sound reached the device to the moment it leaves the studio:

- the picture: capture (a camera hands a frame over about one frame period after its exposure; a
  file or a generated source has no such delay) + face swap + the wait for the virtual camera
  (one frame of the device's buffer);
- the voice: the microphone block, the noise suppressor's frame, the converter's block, crossfade
  and search look-ahead, the conversion itself, and what the output device still holds.

:class:`SyncPlan` turns the two latencies and the manual offset into a delay for the earlier
stream; :class:`FrameDelay` holds swapped frames until they are due (on its own thread, so a frame
leaves on time whatever the camera does) and :class:`AudioDelay` is a delay line in front of the
voice outputs. The offset is in milliseconds, positive when the voice should come out later than
the picture (for a call program or a stream that delays its own video).

No Qt here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Both streams leave within this many milliseconds of each other (the goal).
TOLERANCE_MS = 20.0
#: The audio delay line moves only when its target changed by more than this (no constant jitter).
AUDIO_STEP_MS = 4.0


class Smoothed:
    """An exponential moving average that starts at the first value; thread-safe enough for floats."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = float(alpha)
        self.value: float | None = None
        self.count = 0

    def add(self, x: float) -> float:
        self.value = x if self.value is None else (1.0 - self.alpha) * self.value + self.alpha * x
        self.count += 1
        return self.value

    def get(self, default: float = 0.0) -> float:
        return default if self.value is None else self.value


@dataclass(frozen=True)
class SyncPlan:
    """How long each stream is held so that both leave ``offset_ms`` apart (voice after picture)."""

    video_ms: float
    audio_ms: float
    offset_ms: float = 0.0

    @property
    def difference_ms(self) -> float:
        """How much later the voice would leave than the picture without any delay, less the offset."""
        return self.audio_ms - self.video_ms - self.offset_ms

    @property
    def video_delay_ms(self) -> float:
        return max(0.0, self.difference_ms)

    @property
    def audio_delay_ms(self) -> float:
        return max(0.0, -self.difference_ms)

    @property
    def total_ms(self) -> float:
        """The latency both streams end up with (the picture's; the voice's differs by the offset)."""
        return self.video_ms + self.video_delay_ms

    def describe(self) -> str:
        if self.video_delay_ms >= self.audio_delay_ms:
            held = f"the picture is held {self.video_delay_ms:.0f} ms"
        else:
            held = f"the voice is held {self.audio_delay_ms:.0f} ms"
        return f"picture {self.video_ms:.0f} ms, voice {self.audio_ms:.0f} ms: {held}"


class FrameDelay:
    """Releases frames at ``capture time + target`` on its own thread, in order, to ``emit(frame, ts, left_at)``.

    ``target()`` gives the send latency in seconds (read while the frame waits, so a new plan moves
    the frames already waiting too); a frame that is already late leaves at once. At most
    ``max_frames`` wait; older ones are dropped.
    """

    def __init__(
        self,
        emit: Callable[[np.ndarray, float, float], None],
        target: Callable[[], float],
        *,
        max_frames: int = 90,
        name: str = "live-frame-delay",
    ) -> None:
        self.emit = emit
        self.target = target
        self.max_frames = int(max_frames)
        self.dropped = 0
        self.sent = 0
        self._queue: deque[tuple[float, np.ndarray, float]] = deque()  # (capture time, frame, capture time)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def push(self, frame: np.ndarray, timestamp: float) -> None:
        with self._cond:
            self._queue.append((timestamp, frame, timestamp))
            while len(self._queue) > self.max_frames:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._queue:
                        # the target is read now, not when the frame came: a change applies at once
                        wait = self._queue[0][0] + max(0.0, float(self.target())) - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(min(wait, 0.05))
                    else:
                        self._cond.wait(0.05)
                if self._stop:
                    return
                _due, frame, timestamp = self._queue.popleft()
            try:
                self.emit(frame, timestamp, time.monotonic())
                self.sent += 1
            except Exception:  # an output's failure is the output's to report
                log.exception("a live frame output failed")

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class AudioDelay:
    """A delay line for mono float32 blocks: each block out is as long as the block in, ``delay`` frames late.

    :meth:`set_delay` moves the target; the line follows at the next block, with a 5 ms fade where
    it inserts or drops audio so the change makes no click.
    """

    def __init__(self, samplerate: int) -> None:
        self.samplerate = int(samplerate)
        self.delay = 0
        self._target = 0
        self._buffer = np.zeros(0, np.float32)
        self._fade = max(1, self.samplerate // 200)

    def set_delay_ms(self, ms: float) -> bool:
        """Ask for ``ms`` of delay; True when the target moved (changes under AUDIO_STEP_MS are ignored)."""
        frames = max(0, round(ms * self.samplerate / 1000.0))
        if abs(frames - self._target) * 1000.0 / self.samplerate < AUDIO_STEP_MS:
            return False
        self._target = frames
        return True

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay / self.samplerate

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, np.float32).reshape(-1)
        if self._target != self.delay:
            self._move(self._target - self.delay)
        if self.delay == 0 and not len(self._buffer):
            return x
        self._buffer = np.concatenate([self._buffer, x])
        out = self._buffer[: len(x)].copy()
        self._buffer = self._buffer[len(x) :]
        return out

    def _move(self, change: int) -> None:
        fade = min(self._fade, len(self._buffer)) if len(self._buffer) else 0
        if change > 0:
            if fade:
                self._buffer[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            self._buffer = np.concatenate([self._buffer, np.zeros(change, np.float32)])
        else:
            drop = min(-change, len(self._buffer))
            self._buffer = self._buffer[:-drop] if drop else self._buffer
            fade = min(self._fade, len(self._buffer))
            if fade:
                self._buffer[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        self.delay = len(self._buffer)
