"""Where a live stream leaves the studio: the virtual camera, and a buffered writer for a sound output.

No Qt here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.errors import UserError, describe_exception
from workers.media.virtual_camera import open_virtual_camera as open_camera

log = logging.getLogger(__name__)

VirtualCameraFactory = Callable[[int, int, float], Any]


def open_virtual_camera(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam camera taking BGR frames; a UserError sentence with the fix when there is none."""
    return open_camera(width, height, fps, meanwhile="the voice keeps going")


class BufferedSink:
    """Puts a writer thread between a live loop and a sound output that may block (a sound server that
    stalls never holds up the voice): at most ``max_seconds`` wait, the oldest audio is dropped beyond.

    :attr:`buffered_frames` counts what waits here plus what the output itself holds.
    """

    def __init__(self, inner: Any, *, max_seconds: float = 0.2, name: str = "live-audio-out") -> None:
        self.inner = inner
        self.samplerate = int(inner.samplerate)
        self.channels = 1
        self.max_frames = int(max_seconds * self.samplerate)
        self.dropped_frames = 0
        self.error: str | None = None
        self._chunks: deque[np.ndarray] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    @property
    def label(self) -> str:
        return str(getattr(self.inner, "label", "the sound output"))

    def open(self) -> None:
        self.inner.open()
        if not self._started:
            self._started = True
            self._thread.start()

    def write(self, block: np.ndarray, timeout: float | None = None) -> None:
        if self.error is not None:
            raise UserError(self.error)
        data = np.asarray(block, np.float32).reshape(-1)
        with self._cond:
            self._chunks.append(data)
            self._queued += len(data)
            while self._queued > self.max_frames and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._queued -= len(old)
                self.dropped_frames += len(old)
            self._cond.notify()

    @property
    def buffered_frames(self) -> int:
        with self._cond:
            queued = self._queued
        return queued + int(getattr(self.inner, "buffered_frames", 0) or 0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._chunks and not self._stop:
                    self._cond.wait(0.1)
                if self._stop:
                    return
                chunk = self._chunks.popleft()
            try:
                self.inner.write(chunk[:, None])
            except Exception as exc:
                self.error = describe_exception(exc, self.label)
                log.warning("%s", self.error)
                return
            finally:
                with self._cond:
                    self._queued -= len(chunk)

    def drain(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout or 2.0)
        while time.monotonic() < deadline:
            with self._cond:
                if not self._chunks:
                    break
            time.sleep(0.01)
        return bool(self.inner.drain(max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._chunks.clear()
            self._queued = 0
            self._cond.notify_all()
        if self._started:
            self._thread.join(2.0)
        self.inner.close()
