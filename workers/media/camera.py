"""Frame sources: webcams and video files read through OpenCV, one BGR frame at a time.

No Qt here. A source is opened, read and closed on one thread (the camera worker's). Every frame
comes out as a :class:`~workers.queues.StreamItem` carrying a BGR ``uint8`` array, the monotonic
time it was captured and a sequence number, so that later stages can show latency and drops.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from workers.errors import UserError
from workers.queues import StreamItem

log = logging.getLogger(__name__)

#: A camera spec that names the generated test pattern instead of a device or a file.
TEST_PATTERN = "test-pattern"

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a source actually delivers (a device may not honour the size or rate asked for)."""

    width: int
    height: int
    fps: float
    #: A short human description: "Camera 0", "clip.mp4", "Test pattern".
    label: str = ""
    #: Frames in a file, or None for a live source.
    frame_count: int | None = None


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields BGR frames: a webcam, a video file, a generated pattern."""

    @property
    def info(self) -> FrameInfo: ...

    def open(self) -> None:
        """Acquire the device or file; raises :class:`UserError` with a sentence on failure."""

    def read(self) -> StreamItem | None:
        """The next frame (BGR uint8, HxWx3), or None at the end of the stream."""

    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class FrameSourceBase:
    """Shared plumbing: context manager, sequence numbers, a pacing clock."""

    def __init__(self) -> None:
        self._seq = 0
        self._info = FrameInfo(0, 0, 0.0)
        self._clock_start: float | None = None
        self._clock_frames = 0
        self.is_open = False

    @property
    def info(self) -> FrameInfo:
        return self._info

    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read(self) -> StreamItem | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        self.is_open = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _item(self, frame: np.ndarray, **meta: Any) -> StreamItem:
        item = StreamItem(frame, time.monotonic(), self._seq, dict(meta))
        self._seq += 1
        return item

    def _pace(self, fps: float) -> None:
        """Sleep until the next frame is due at ``fps`` (a steady clock, no drift)."""
        if fps <= 0:
            return
        now = time.monotonic()
        if self._clock_start is None:
            self._clock_start = now
            self._clock_frames = 0
        due = self._clock_start + self._clock_frames / fps
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.5:
            # Far behind (the reader stalled): restart the clock instead of bursting frames.
            self._clock_start = now
            self._clock_frames = 0
        self._clock_frames += 1

    def _reset_clock(self) -> None:
        self._clock_start = None
        self._clock_frames = 0


def parse_camera_spec(spec: int | str) -> int | str:
    """A camera index (``0``, ``"1"``) becomes an int; anything else stays a path or URL."""
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"/dev/video(\d+)", text)
    if m and sys.platform.startswith("linux"):
        return int(m.group(1))
    return text


def is_stream_url(spec: int | str) -> bool:
    return isinstance(spec, str) and bool(_URL.match(spec)) and not spec.startswith("file://")


class CameraSource(FrameSourceBase):
    """A webcam (by index) or a video file / stream URL (by path) read with OpenCV.

    For a device, the requested size and rate are asked for and :attr:`info` reports what the
    device gave. A file is paced at its own frame rate (so it behaves like a live camera) and
    can loop; ``paced=False`` reads it as fast as possible (batch work, tests).
    """

    #: Consecutive failed reads after which a live camera counts as gone.
    max_failed_reads = 10

    def __init__(
        self,
        spec: int | str = 0,
        width: int | None = 1280,
        height: int | None = 720,
        fps: float | None = 30,
        *,
        loop: bool = False,
        paced: bool = True,
        backend: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = parse_camera_spec(spec)
        self.requested = (width, height, fps)
        self.loop = loop
        self.paced = paced
        self.backend = backend
        self._cap: Any = None
        self._failed_reads = 0

    @property
    def is_device(self) -> bool:
        return isinstance(self.spec, int)

    @property
    def is_file(self) -> bool:
        return isinstance(self.spec, str) and not is_stream_url(self.spec)

    def describe(self) -> str:
        if isinstance(self.spec, int):
            return f"Camera {self.spec}"
        if is_stream_url(self.spec):
            return self.spec
        return Path(self.spec).name

    def open(self) -> None:
        import cv2

        if self.is_open:
            return
        cap = self._open_device(cv2, self.spec) if isinstance(self.spec, int) else self._open_path(cv2, self.spec)
        self._cap = cap
        self.is_open = True
        self._failed_reads = 0
        self._reset_clock()
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = float(self.requested[2] or 30) if self.is_device else 25.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0
        self._info = FrameInfo(width, height, fps, self.describe(), count if count > 0 else None)
        want_w, want_h, want_fps = self.requested
        if self.is_device and want_w and want_h and (width, height) != (want_w, want_h):
            log.info("%s gives %dx%d instead of the requested %dx%d", self.describe(), width, height, want_w, want_h)
        if self.is_device and want_fps and abs(fps - want_fps) > 0.5:
            log.info("%s gives %.1f fps instead of the requested %s", self.describe(), fps, want_fps)
        log.info("Opened %s: %dx%d at %.1f fps", self.describe(), width, height, fps)

    def _open_device(self, cv2: Any, index: int) -> Any:
        backend = self.backend
        if backend is None:
            backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(index, backend)
        if not cap.isOpened():
            cap.release()
            if sys.platform.startswith("linux") and os.path.exists(f"/dev/video{index}"):
                raise UserError(
                    f"The camera at index {index} could not be opened. It may be in use by another "
                    "program, or your user may lack permission for it (the 'video' group)."
                )
            raise UserError(f"No camera found at index {index}. Connect a camera or choose a video file in Devices.")
        want_w, want_h, want_fps = self.requested
        if want_w and want_h:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(want_w))
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(want_h))
        if want_fps:
            cap.set(cv2.CAP_PROP_FPS, float(want_fps))
        return cap

    def _open_path(self, cv2: Any, spec: str) -> Any:
        path = spec[len("file://") :] if spec.startswith("file://") else spec
        if not is_stream_url(path):
            p = Path(path).expanduser()
            if not p.exists():
                raise UserError(f"The video file {p} was not found. Choose another file in Devices.")
            if p.is_dir():
                raise UserError(f"{p} is a folder, not a video file. Choose a video file in Devices.")
            path = str(p)
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            cap.release()
            if is_stream_url(path):
                raise UserError(f"The video stream {path} could not be opened. Check the address and the network.")
            raise UserError(f"{Path(path).name} could not be opened as a video. Try another file or format.")
        return cap

    def read(self) -> StreamItem | None:
        if not self.is_open or self._cap is None:
            raise UserError(f"{self.describe()} is not open.")
        if self.is_file and self.paced:
            self._pace(self._info.fps)
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                self._failed_reads = 0
                return self._item(self._as_bgr(frame), source=self.describe())
            if self.is_file:
                return self._rewind() if self.loop and self._seq > 0 else None
            if is_stream_url(self.spec):
                return None
            self._failed_reads += 1
            if self._failed_reads >= self.max_failed_reads:
                raise UserError(
                    f"{self.describe()} stopped sending frames. It may have been unplugged or taken by another program."
                )
            time.sleep(0.01)

    def _rewind(self) -> StreamItem | None:
        import cv2

        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return self._item(self._as_bgr(frame), source=self.describe(), looped=True)

    @staticmethod
    def _as_bgr(frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if frame.ndim == 2:
            return np.repeat(frame[:, :, None], 3, axis=2)
        if frame.shape[2] == 4:
            return np.ascontiguousarray(frame[:, :, :3])
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        self.is_open = False
        if cap is not None:
            cap.release()
            log.info("Released %s", self.describe())


def make_frame_source(spec: int | str, width: int = 1280, height: int = 720, fps: float = 30) -> FrameSource:
    """The source a camera setting names: an index, a video file (looped) or the test pattern."""
    from workers.media.fakes import GeneratedCamera

    if isinstance(spec, str) and spec.strip() == TEST_PATTERN:
        return GeneratedCamera(width, height, fps)
    parsed = parse_camera_spec(spec)
    if isinstance(parsed, int):
        return CameraSource(parsed, width, height, fps)
    return CameraSource(parsed, width, height, fps, loop=not is_stream_url(parsed))
