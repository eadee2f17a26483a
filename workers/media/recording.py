"""Recording a live stream from a worker: asked for from any thread, written on the worker's thread.

:class:`LiveRecording` holds the path a recording was asked for, the
:class:`~workers.media.video.VideoRecorder` it opens with the next frame (whose size it takes) and
the lock between them. A frame that cannot be written stops the recording; what was written so far
is kept when the file can still be finished.

No Qt here: the owner passes what to do with a saved path (a worker emits its ``recording_saved``)
and with an error (a worker's ``report``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    from workers.media.video import VideoRecorder

log = logging.getLogger(__name__)

#: Frame rate a recording is opened at when the stream has none measured yet.
DEFAULT_FPS = 30.0


class LiveRecording:
    """One recording at a time of a live stream of BGR frames.

    ``on_saved(path)`` is called with every recording that was finished and saved (stopped, replaced
    by a new one, or kept after a failure); ``on_error(exc, what)`` with every error, ``what`` being
    a short phrase such as ``"recording stopped"``. ``suffix``, when given, replaces the suffix of
    every path asked for.
    """

    def __init__(
        self,
        on_saved: Callable[[Path], object],
        on_error: Callable[[BaseException, str], object],
        *,
        suffix: str | None = None,
    ) -> None:
        self._on_saved = on_saved
        self._on_error = on_error
        self._suffix = suffix
        self._lock = threading.Lock()
        self._recorder: VideoRecorder | None = None
        self._requested: Path | None = None  # asked for; opened at the next frame (its size)

    @property
    def active(self) -> bool:
        """A recording was asked for or is running."""
        with self._lock:
            return self._recorder is not None or self._requested is not None

    @property
    def frames(self) -> int:
        """Frames written to the running recording."""
        with self._lock:
            return self._recorder.frames if self._recorder is not None else 0

    def stats(self) -> dict[str, bool | int]:
        """``recording`` and ``recorded_frames``, read together."""
        with self._lock:
            return {
                "recording": self._recorder is not None or self._requested is not None,
                "recorded_frames": self._recorder.frames if self._recorder is not None else 0,
            }

    def start(self, path: str | Path) -> Path:
        """Record to ``path`` from the next frame on; returns the path that will be written.

        A recording already running is finished first (and passed to ``on_saved``).
        """
        self.stop()
        target = Path(path).expanduser()
        if self._suffix is not None:
            target = target.with_suffix(self._suffix)
        with self._lock:
            self._requested = target
        log.info("Recording requested: %s", path)
        return target

    def stop(self) -> Path | None:
        """Finish the recording; returns its path, or None when no frame was recorded."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
            self._requested = None
        if recorder is None:
            return None
        try:
            path = recorder.close()
        except UserError as exc:
            self._on_error(exc, "the recording")
            return None
        self._on_saved(path)
        return path

    def write(self, frame: np.ndarray, timestamp: float, fps: Callable[[], float | None]) -> bool:
        """Write one frame when recording (opening the file at the first); True when one was written.

        ``fps()`` gives the stream's measured frame rate, read only when the file is opened.
        """
        with self._lock:
            if self._recorder is None and self._requested is None:
                return False
            try:
                if self._recorder is None:
                    from workers.media.video import VideoRecorder

                    assert self._requested is not None
                    h, w = frame.shape[:2]
                    self._recorder = VideoRecorder(self._requested, w, h, fps() or DEFAULT_FPS)
                    self._requested = None
                self._recorder.write(frame, timestamp)
                return True
            except Exception as exc:
                failed, self._recorder, self._requested = self._recorder, None, None
                error = exc
        self._on_error(error, "recording stopped")
        if failed is not None:
            self._salvage(failed)
        return False

    def _salvage(self, recorder: VideoRecorder) -> None:
        """Keep what a failed recording holds so far, if it can still be finished."""
        try:
            path = recorder.close()
        except Exception as exc:
            log.warning("The interrupted recording could not be saved: %s", exc)
            recorder.abort()
            return
        self._on_saved(path)
