"""File-backed and generated stand-ins for cameras, microphones and speakers.

They follow the same contracts as the real devices (:class:`~workers.media.camera.FrameSource`,
:class:`~workers.media.audio.AudioSource`, :class:`~workers.media.audio.AudioSink`), so a machine
without a webcam or a sound card can run every pipeline end to end: the studio offers the test
pattern and video files as cameras, and the tests drive the real workers with them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from workers.errors import UserError
from workers.media.audio import as_block, convert_channels, resample
from workers.media.camera import CameraSource, FrameInfo, FrameSourceBase
from workers.queues import StreamItem

log = logging.getLogger(__name__)


# ---- cameras ------------------------------------------------------------------------------------------


class GeneratedCamera(FrameSourceBase):
    """A moving test pattern (colour bars, a sweeping box, a frame counter) at a given size and rate.

    ``paced=False`` returns frames as fast as they are asked for (tests); ``frames`` ends the
    stream after that many frames. ``open_count``/``close_count`` let tests check the release.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        *,
        paced: bool = True,
        frames: int | None = None,
        label: str = "Test pattern",
    ) -> None:
        super().__init__()
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.paced = paced
        self.frames = frames
        self.label = label
        self.open_count = 0
        self.close_count = 0
        self._bars: np.ndarray | None = None

    def open(self) -> None:
        if self.is_open:
            return
        if self.width <= 0 or self.height <= 0:
            raise UserError(f"The test pattern cannot be {self.width}x{self.height}; choose another resolution.")
        colours = np.array(
            [[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 255], [255, 0, 0]],
            dtype=np.uint8,
        )  # BGR: white, yellow, cyan, green, magenta, red, blue
        cols = (np.arange(self.width) * len(colours) // self.width).clip(0, len(colours) - 1)
        row = colours[cols]
        self._bars = np.ascontiguousarray(np.broadcast_to(row[None, :, :], (self.height, self.width, 3)))
        self._info = FrameInfo(self.width, self.height, self.fps, self.label, self.frames)
        self._seq = 0
        self._reset_clock()
        self.is_open = True
        self.open_count += 1

    def render(self, n: int) -> np.ndarray:
        """Frame number ``n`` of the pattern."""
        import cv2

        assert self._bars is not None
        frame = np.roll(self._bars, shift=(n * 4) % self.width, axis=1)
        box = max(8, min(self.width, self.height) // 6)
        span_x = max(1, self.width - box)
        x = (n * 7) % (2 * span_x)
        x = x if x < span_x else 2 * span_x - x
        y = (self.height - box) // 2
        frame[y : y + box, x : x + box] = (32, 32, 32)
        scale = max(0.4, self.height / 480)
        cv2.putText(
            frame,
            f"{n:06d}",
            (max(4, self.width // 40), self.height - max(6, int(16 * scale))),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
        return frame

    def read(self) -> StreamItem | None:
        if not self.is_open:
            raise UserError("The test pattern is not open.")
        if self.frames is not None and self._seq >= self.frames:
            return None
        if self.paced:
            self._pace(self.fps)
        return self._item(self.render(self._seq), source=self.label)

    def close(self) -> None:
        if self.is_open:
            self.close_count += 1
        self.is_open = False
        self._bars = None


class VideoFileCamera(CameraSource):
    """A video file played as a camera: at its own frame rate, looping by default."""

    def __init__(self, path: str | Path, *, loop: bool = True, paced: bool = True) -> None:
        super().__init__(str(path), None, None, None, loop=loop, paced=paced)


class FailingCamera(GeneratedCamera):
    """A test pattern that breaks on demand: on open, or with an error after ``fail_after`` frames."""

    def __init__(
        self,
        fail_after: int = 3,
        *,
        fail_on_open: bool = False,
        message: str = "The camera stopped sending frames. It may have been unplugged.",
        exception: type[BaseException] = UserError,
        width: int = 64,
        height: int = 48,
        fps: float = 30,
        paced: bool = False,
    ) -> None:
        super().__init__(width, height, fps, paced=paced, label="Failing camera")
        self.fail_after = fail_after
        self.fail_on_open = fail_on_open
        self.message = message
        self.exception = exception

    def open(self) -> None:
        if self.fail_on_open:
            raise self.exception(self.message)
        super().open()

    def read(self) -> StreamItem | None:
        if self.is_open and self._seq >= self.fail_after:
            raise self.exception(self.message)
        return super().read()


# ---- microphones ----------------------------------------------------------------------------------


class ArrayMicrophone:
    """Audio held in memory played as a microphone, block by block.

    Delivers ``(blocksize, channels)`` float32 blocks at ``samplerate``; the input is converted to
    that rate and channel count first. ``paced=True`` hands out blocks at real-time pace (like a
    device); ``loop=True`` starts over at the end, otherwise :attr:`ended` turns True.
    """

    def __init__(
        self,
        data: np.ndarray,
        source_rate: int,
        samplerate: int | None = None,
        blocksize: int = 1024,
        channels: int | None = 1,
        *,
        paced: bool = True,
        loop: bool = False,
        label: str = "Recorded audio",
    ) -> None:
        block = as_block(data)
        self.source_rate = int(source_rate)
        self.samplerate = int(samplerate or source_rate)
        self.channels = int(channels or block.shape[1])
        self.blocksize = int(blocksize)
        self.paced = paced
        self.loop = loop
        self.label = label
        self._raw = block
        self._data: np.ndarray | None = None
        self._pos = 0
        self._seq = 0
        self._start: float | None = None
        self._ended = False
        self._closed = threading.Event()
        self.open_count = 0
        self.close_count = 0

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def duration(self) -> float:
        return len(self._raw) / self.source_rate

    def open(self) -> None:
        if self._data is None:
            self._data = resample(convert_channels(self._raw, self.channels), self.source_rate, self.samplerate)
        self._pos = 0
        self._seq = 0
        self._start = None
        self._ended = False
        self._closed.clear()
        self.open_count += 1

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._data is None:
            raise UserError(f"{self.label} is not open.")
        if self._ended or self._closed.is_set():
            return None
        if self._pos >= len(self._data):
            if not self.loop or len(self._data) == 0:
                self._ended = True
                return None
            self._pos = 0
        if self.paced:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + (self._seq + 1) * self.blocksize / self.samplerate
            wait = due - now
            if timeout is not None and wait > timeout:
                self._closed.wait(timeout)
                return None
            if wait > 0 and self._closed.wait(wait):
                return None
        block = self._data[self._pos : self._pos + self.blocksize]
        if len(block) < self.blocksize:
            pad = np.zeros((self.blocksize - len(block), self.channels), np.float32)
            block = np.concatenate([block, pad])
        self._pos += self.blocksize
        item = StreamItem(np.array(block, dtype=np.float32), time.monotonic(), self._seq, {"source": self.label})
        self._seq += 1
        return item

    def close(self) -> None:
        if self._data is not None:
            self.close_count += 1
        self._closed.set()
        self._data = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class WavMicrophone(ArrayMicrophone):
    """A sound file (WAV, FLAC, OGG: anything soundfile reads) played as a microphone."""

    def __init__(
        self,
        path: str | Path,
        samplerate: int | None = None,
        blocksize: int = 1024,
        channels: int | None = 1,
        *,
        paced: bool = True,
        loop: bool = False,
    ) -> None:
        import soundfile

        p = Path(path)
        if not p.is_file():
            raise UserError(f"The audio file {p} was not found.")
        try:
            data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise UserError(f"{p.name} could not be read as audio ({exc}).") from exc
        super().__init__(data, int(rate), samplerate, blocksize, channels, paced=paced, loop=loop, label=p.name)
        self.path = p


# ---- speakers ---------------------------------------------------------------------------------------


class MemorySink:
    """An audio sink that keeps everything written, for tests and previews."""

    def __init__(self, samplerate: int = 48000, channels: int = 1) -> None:
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.blocks: list[np.ndarray] = []
        self.is_open = False
        self.open_count = 0
        self.close_count = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        self.is_open = True
        self.open_count += 1

    def write(self, block: np.ndarray) -> None:
        if not self.is_open:
            raise UserError("The audio output is not open.")
        data = as_block(block, self.channels).copy()
        with self._lock:
            self.blocks.append(data)

    def drain(self, timeout: float | None = None) -> bool:
        return True

    @property
    def data(self) -> np.ndarray:
        """Everything written so far, as one ``(frames, channels)`` float32 array."""
        with self._lock:
            if not self.blocks:
                return np.zeros((0, self.channels), np.float32)
            return np.concatenate(self.blocks)

    @property
    def frames(self) -> int:
        with self._lock:
            return sum(len(b) for b in self.blocks)

    def close(self) -> None:
        if self.is_open:
            self.close_count += 1
        self.is_open = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WavSink(MemorySink):
    """An audio sink that writes a WAV file (16-bit PCM by default) as blocks arrive."""

    def __init__(self, path: str | Path, samplerate: int = 48000, channels: int = 1, subtype: str = "PCM_16") -> None:
        super().__init__(samplerate, channels)
        self.path = Path(path)
        self.subtype = subtype
        self._file: Any = None

    def open(self) -> None:
        import soundfile

        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = soundfile.SoundFile(
                str(self.path), "w", samplerate=self.samplerate, channels=self.channels, subtype=self.subtype
            )
        except (OSError, RuntimeError) as exc:
            raise UserError(f"The audio file {self.path} could not be created ({exc}).") from exc
        super().open()

    def write(self, block: np.ndarray) -> None:
        if self._file is None:
            raise UserError(f"The audio file {self.path} is not open.")
        data = as_block(block, self.channels)
        self._file.write(np.clip(data, -1.0, 1.0))

    @property
    def data(self) -> np.ndarray:
        import soundfile

        if self._file is not None:
            self._file.flush()
        if not self.path.exists():
            return np.zeros((0, self.channels), np.float32)
        data, _ = soundfile.read(str(self.path), dtype="float32", always_2d=True)
        return data

    @property
    def frames(self) -> int:
        return len(self.data)

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
        super().close()
