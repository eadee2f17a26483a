"""The microphone's side of the voice assistant: one resampler kept across blocks, and the echo guard
that tells the user's voice from the assistant's own coming back from the speakers (no Qt)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.media.audio import SILENCE_DBFS, resample

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

class StreamResampler:
    """Resamples a mono stream chunk by chunk without clicks at chunk edges (soxr's stream, else linear)."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self._stream: Any = None
        if self.src_rate != self.dst_rate:
            try:
                import soxr

                # "LQ" keeps the delay near 15-25 ms; its pass band is ample for speech.
                self._stream = soxr.ResampleStream(self.src_rate, self.dst_rate, 1, dtype="float32", quality="LQ")
            except (ImportError, AttributeError, ValueError) as exc:
                log.debug("streaming resampler unavailable (%s); resampling chunk by chunk", exc)

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(mono, dtype=np.float32).reshape(-1)
        if self.src_rate == self.dst_rate or not len(x):
            return x
        if self._stream is not None:
            return np.asarray(self._stream.resample_chunk(x), dtype=np.float32).reshape(-1)
        return resample(x[:, None], self.src_rate, self.dst_rate)[:, 0]

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        return np.asarray(out, dtype=np.float32).reshape(-1)


class EchoGuard:
    """Tells the user's voice from the assistant's own voice coming back from the speakers.

    The playback reports the level of every block it plays and when (:meth:`played`). For each
    microphone frame, the reference is the loudest block played in the last ``window_s`` (which
    covers the speaker → microphone delay). The coupling (how much quieter or louder the echo is at
    the microphone than the reference) is learnt while the assistant speaks: a high percentile of
    ``mic - reference`` over recent frames that do not look like the user; until enough frames were
    seen it is assumed to be ``prior_db`` (as loud as played). A frame is the user's when it is
    louder than ``reference + coupling + margin_db``. The guard stays active ``tail_s`` after the last
    block played (the echo's delay and reverberation).
    """

    def __init__(
        self,
        *,
        margin_db: float = 5.0,
        window_s: float = 0.4,
        tail_s: float = 0.25,
        prior_db: float = 0.0,
        percentile: float = 85.0,
        min_history: int = 15,
        history: int = 300,
    ) -> None:
        self.margin_db = margin_db
        self.window_s = window_s
        self.tail_s = tail_s
        self.prior_db = prior_db
        self.percentile = percentile
        self.min_history = min_history
        self._blocks: deque[tuple[float, float, float]] = deque()  # (start, end, level dBFS)
        self._history: deque[float] = deque(maxlen=history)
        self._coupling = prior_db
        self._until = float("-inf")
        self._lock = threading.Lock()

    def played(self, start: float, end: float, level_db: float) -> None:
        """A block of assistant audio plays from ``start`` to ``end`` (monotonic seconds)."""
        with self._lock:
            self._blocks.append((start, end, level_db))
            self._until = max(self._until, end)
            horizon = end - max(3.0, 2 * self.window_s)
            while self._blocks and self._blocks[0][1] < horizon:
                self._blocks.popleft()

    def cut(self, now: float) -> None:
        """The audio scheduled after ``now`` was dropped (an interruption): it will never play."""
        with self._lock:
            kept = [(s, min(e, now), db) for s, e, db in self._blocks if s < now]
            self._blocks = deque(kept)
            self._until = min(self._until, now)

    def active(self, now: float) -> bool:
        """Whether assistant audio may still be reaching the microphone at ``now``."""
        with self._lock:
            return now < self._until + self.tail_s

    @property
    def playing_until(self) -> float:
        with self._lock:
            return self._until

    def reference_db(self, t: float) -> float:
        """The loudest assistant audio played in ``[t - window_s, t]``."""
        lo = t - self.window_s
        with self._lock:
            levels = [db for s, e, db in self._blocks if s <= t and e >= lo]
        return max(levels) if levels else SILENCE_DBFS

    @property
    def coupling_db(self) -> float:
        with self._lock:
            return self._coupling

    def _learn(self, diff: float) -> None:
        self._history.append(diff)
        self._estimate()

    def _estimate(self) -> None:
        if not self._history:
            self._coupling = self.prior_db
            return
        estimate = float(np.percentile(self._history, self.percentile))
        self._coupling = estimate if len(self._history) >= self.min_history else max(self.prior_db, estimate)

    def observe(self, t: float, mic_db: float) -> float:
        """Judge (and learn from) one microphone frame ending at ``t``: how many dB it is louder than the
        loudest echo to expect. Above 0 it is not the echo (the user, or a sound of the room)."""
        ref = self.reference_db(t)
        if ref <= -70.0:
            return max(0.0, mic_db - SILENCE_DBFS)  # nothing was played that could come back now
        diff = mic_db - ref
        with self._lock:
            excess = diff - self._coupling - self.margin_db
            if len(self._history) < self.min_history or diff <= self._coupling + self.margin_db / 2:
                # Frames that may be the user's voice stay out of the estimate, once there is one.
                self._learn(diff)
        return excess

    @property
    def ready(self) -> bool:
        """Whether the coupling was learnt (about half a second of the assistant's voice heard)."""
        with self._lock:
            return len(self._history) >= self.min_history

    def forget(self, frames: int) -> None:
        """Take the last ``frames`` observations back out (they were the user's voice, not the echo)."""
        with self._lock:
            for _ in range(min(frames, len(self._history))):
                self._history.pop()
            self._estimate()

