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
from workers.media.audio import BlockClock, as_block, convert_channels, resample
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


#: How a stalling fake stops delivering: it hangs in ``read``, hands out nothing, or ends.
STALL_MODES = ("block", "silent", "end")


class _Stall:
    """What the stalling fakes share: the point where they stop, and the hang they stop in."""

    def __init__(self, stall_after: int, mode: str, release_on_close: bool) -> None:
        if mode not in STALL_MODES:
            raise ValueError(f"unknown stall mode {mode!r}; choose one of {', '.join(STALL_MODES)}")
        self.stall_after = int(stall_after)
        self.mode = mode
        self.release_on_close = release_on_close
        #: Set when the device starts to hang or go quiet (tests wait on it).
        self.stalled = threading.Event()
        #: Set while a read is hanging inside the device.
        self.hanging = threading.Event()
        self._unblock = threading.Event()

    def release(self) -> None:
        """Let a hanging read return (a device that comes back, or the end of a test)."""
        self._unblock.set()

    def hang(self) -> None:
        self.stalled.set()
        self.hanging.set()
        try:
            self._unblock.wait()
        finally:
            self.hanging.clear()

    def closed(self) -> None:
        if self.release_on_close:
            self._unblock.set()


class StallingCamera(GeneratedCamera):
    """A test pattern that stops delivering after ``stall_after`` frames, the way a camera that is
    unplugged without an error does: ``mode="block"`` hangs inside ``read`` (until the camera is
    closed, like a driver whose read returns when the device is released; with
    ``release_on_close=False`` until :meth:`release`, like a driver stuck for good) and
    ``mode="end"`` returns None (the stream ends). ``"silent"`` is the same as ``"end"`` for a camera.
    """

    def __init__(
        self,
        stall_after: int = 3,
        mode: str = "block",
        *,
        release_on_close: bool = True,
        width: int = 64,
        height: int = 48,
        fps: float = 30,
        paced: bool = False,
    ) -> None:
        super().__init__(width, height, fps, paced=paced, label="Stalling camera")
        self.stall = _Stall(stall_after, mode, release_on_close)

    @property
    def stalled(self) -> threading.Event:
        return self.stall.stalled

    def release(self) -> None:
        self.stall.release()

    def read(self) -> StreamItem | None:
        if self.is_open and self._seq >= self.stall.stall_after:
            if self.stall.mode == "block":
                self.stall.hang()
            self.stall.stalled.set()
            return None
        return super().read()

    def close(self) -> None:
        self.stall.closed()
        super().close()


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
        self._ended = False
        self._closed = threading.Event()
        self._clock = BlockClock(self._closed)
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
        self._clock.reset()
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
        if self.paced and not self._clock.wait(self._seq, self.blocksize, self.samplerate, timeout):
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


def _tone(samplerate: int, seconds: float) -> np.ndarray:
    """A 220 Hz sine at -14 dBFS peak: what the failing and stalling microphones play until they break."""
    t = np.arange(int(samplerate * seconds), dtype=np.float32) / samplerate
    return (0.2 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


class FailingMicrophone(ArrayMicrophone):
    """A tone played as a microphone that breaks on demand: on open, or with an error on the read
    after ``fail_after`` blocks."""

    def __init__(
        self,
        fail_after: int = 5,
        *,
        fail_on_open: bool = False,
        message: str = "The microphone stopped sending sound. It may have been unplugged.",
        exception: type[BaseException] = UserError,
        samplerate: int = 16000,
        blocksize: int = 512,
        paced: bool = True,
        seconds: float = 30.0,
    ) -> None:
        tone = _tone(samplerate, seconds)
        super().__init__(tone, samplerate, samplerate, blocksize, 1, paced=paced, label="Failing microphone")
        self.fail_after = fail_after
        self.fail_on_open = fail_on_open
        self.message = message
        self.exception = exception

    def open(self) -> None:
        if self.fail_on_open:
            raise self.exception(self.message)
        super().open()

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._data is not None and self._seq >= self.fail_after:
            raise self.exception(self.message)
        return super().read(timeout)


class StallingMicrophone(ArrayMicrophone):
    """A tone played as a microphone that stops delivering after ``stall_after`` blocks:
    ``mode="silent"`` hands out nothing from then on (``read`` waits its timeout and returns None,
    ``ended`` stays False: a driver that went quiet), ``mode="block"`` hangs inside ``read`` whatever
    its timeout (until closed; with ``release_on_close=False`` until :meth:`release`), and
    ``mode="end"`` ends the stream."""

    def __init__(
        self,
        stall_after: int = 5,
        mode: str = "silent",
        *,
        release_on_close: bool = True,
        samplerate: int = 16000,
        blocksize: int = 512,
        paced: bool = True,
        seconds: float = 30.0,
    ) -> None:
        tone = _tone(samplerate, seconds)
        super().__init__(tone, samplerate, samplerate, blocksize, 1, paced=paced, label="Stalling microphone")
        self.stall = _Stall(stall_after, mode, release_on_close)

    @property
    def stalled(self) -> threading.Event:
        return self.stall.stalled

    def release(self) -> None:
        self.stall.release()

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._data is not None and self._seq >= self.stall.stall_after:
            mode = self.stall.mode
            if mode == "block":
                self.stall.hang()
                return None
            self.stall.stalled.set()
            if mode == "end":
                self._ended = True
                return None
            self._closed.wait(timeout if timeout is not None else 0.05)
            return None
        return super().read(timeout)

    def close(self) -> None:
        self.stall.closed()
        super().close()


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
        self.clears = 0
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

    def clear(self) -> int:
        """Nothing waits to be played here (a write is played at once): counts the call, drops nothing."""
        self.clears += 1
        return 0

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


class FailingSink(MemorySink):
    """A speaker that breaks: on open, or on the write after ``fail_after`` good ones."""

    def __init__(
        self,
        samplerate: int = 48000,
        channels: int = 1,
        *,
        fail_after: int = 0,
        fail_on_open: bool = False,
        message: str = "The speaker stopped taking audio. It may have been unplugged.",
        exception: type[BaseException] = UserError,
    ) -> None:
        super().__init__(samplerate, channels)
        self.fail_after = fail_after
        self.fail_on_open = fail_on_open
        self.message = message
        self.exception = exception
        self.writes = 0

    def open(self) -> None:
        if self.fail_on_open:
            raise self.exception(self.message)
        super().open()

    def write(self, block: np.ndarray) -> None:
        self.writes += 1
        if self.writes > self.fail_after:
            raise self.exception(self.message)
        super().write(block)


class PacedSpeaker:
    """A speaker that plays at real-time pace from a small buffer and remembers what it played and when.

    Time is the monotonic clock: frame ``n`` of the speaker's timeline plays at ``opened_at + n /
    samplerate``. :meth:`write` puts audio after what is queued (or at "now" when the speaker ran dry)
    and waits while more than ``buffer_seconds`` are queued, like a sound card; :meth:`clear` drops what
    was not played yet. Everything that was played (silence included) stays on the timeline:
    :meth:`played_between` reads it back for an :class:`EchoRoomMicrophone`, and
    :meth:`sound_intervals` tells a test when sound came out. With ``keep=False`` it only keeps the pace
    (hours of output take no memory, for soak runs) and remembers nothing.
    """

    def __init__(
        self,
        samplerate: int = 48000,
        channels: int = 1,
        *,
        buffer_seconds: float = 0.1,
        label: str = "Test speaker",
        keep: bool = True,
    ) -> None:
        self.keep = keep
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.buffer_seconds = float(buffer_seconds)
        self.label = label
        self.is_open = False
        self.open_count = 0
        self.close_count = 0
        self.opened_at = 0.0
        #: ``(monotonic time, frames)`` of every write, and ``(time, frames dropped)`` of every clear.
        self.writes: list[tuple[float, int]] = []
        self.clears: list[tuple[float, int]] = []
        self._timeline = np.zeros((0, self.channels), np.float32)
        self._cursor = 0  # the frame after the last one queued
        self._cond = threading.Condition()

    # ---- the clock ----
    def _now_frame(self) -> int:
        return int((time.monotonic() - self.opened_at) * self.samplerate)

    def time_of(self, frame: int) -> float:
        """The monotonic time at which timeline frame ``frame`` plays."""
        return self.opened_at + frame / self.samplerate

    @property
    def capacity(self) -> int:
        return max(1, int(self.buffer_seconds * self.samplerate))

    @property
    def buffered_frames(self) -> int:
        """Frames queued but not played yet."""
        with self._cond:
            return max(0, self._cursor - self._now_frame()) if self.is_open else 0

    # ---- the sink contract ----
    def open(self) -> None:
        with self._cond:
            if self.is_open:
                return
            self.opened_at = time.monotonic()
            self._timeline = np.zeros((0, self.channels), np.float32)
            self._cursor = 0
            self.is_open = True
            self.open_count += 1

    def write(self, block: np.ndarray, timeout: float | None = 5.0) -> None:
        data = as_block(block, self.channels)
        if not len(data):
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if not self.is_open:
                    raise UserError(f"{self.label} is not open.")
                queued = self._cursor - self._now_frame()
                if queued <= 0 or queued + len(data) <= self.capacity:
                    break
                wait = (queued + len(data) - self.capacity) / self.samplerate
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise UserError(f"{self.label} stopped taking audio.")
                    wait = min(wait, left)
                self._cond.wait(max(0.001, wait))  # a clear() or close() wakes it early
            start = max(self._cursor, self._now_frame())
            end = start + len(data)
            self._cursor = end
            if not self.keep:
                return
            if end > len(self._timeline):
                grown = np.zeros((max(end, 2 * len(self._timeline), self.samplerate), self.channels), np.float32)
                grown[: len(self._timeline)] = self._timeline
                self._timeline = grown
            self._timeline[start:end] = data
            self.writes.append((time.monotonic(), len(data)))

    def clear(self) -> int:
        """Drop everything queued but not played yet; returns the frames dropped."""
        with self._cond:
            if not self.is_open:
                return 0
            now = self._now_frame()
            dropped = max(0, self._cursor - now)
            if dropped:
                self._timeline[now : self._cursor] = 0.0
                self._cursor = now
            if self.keep:
                self.clears.append((time.monotonic(), dropped))
            self._cond.notify_all()
            return dropped

    def drain(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.is_open and self._cursor > self._now_frame():
                wait = (self._cursor - self._now_frame()) / self.samplerate
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(wait, left)
                self._cond.wait(max(0.001, wait))
            return True

    def close(self) -> None:
        with self._cond:
            if self.is_open:
                self.close_count += 1
                now = min(self._now_frame(), len(self._timeline))
                self._timeline = self._timeline[: max(0, now)].copy()  # the unplayed rest is never heard
                self._cursor = len(self._timeline)
            self.is_open = False
            self._cond.notify_all()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what was heard ----
    @property
    def played(self) -> np.ndarray:
        """Everything played so far (silence included), ``(frames, channels)`` float32."""
        with self._cond:
            end = self._cursor if not self.is_open else min(self._now_frame(), self._cursor)
            return self._timeline[: max(0, end)].copy()

    def played_between(self, start: float, end: float, samplerate: int | None = None) -> np.ndarray:
        """The mono sound that came out between two monotonic times (zeros where nothing played),
        at ``samplerate`` (default the speaker's), by linear interpolation on the timeline."""
        rate = int(samplerate or self.samplerate)
        n = max(0, round((end - start) * rate))
        times = start + np.arange(n, dtype=np.float64) / rate
        return self.sample_at(times)

    def sample_at(self, times: np.ndarray) -> np.ndarray:
        """The mono sound at each monotonic time in ``times`` (zero outside what was played)."""
        times = np.asarray(times, dtype=np.float64)
        out = np.zeros(len(times), np.float32)
        if not len(times):
            return out
        pos = (times - self.opened_at) * self.samplerate
        with self._cond:
            if self.open_count == 0:
                return out
            limit = min(self._now_frame(), self._cursor) if self.is_open else self._cursor
            lo = max(0, int(np.floor(pos.min())))
            hi = min(max(0, limit), int(np.ceil(pos.max())) + 2)
            if hi <= lo:
                return out
            mono = self._timeline[lo:hi].mean(axis=1)
        grid = np.arange(lo, hi, dtype=np.float64)
        return np.interp(pos, grid, mono, left=0.0, right=0.0).astype(np.float32)

    def sound_intervals(self, threshold: float = 0.01, gap: float = 0.3) -> list[tuple[float, float]]:
        """``(start, end)`` monotonic times of the stretches where sound above ``threshold`` came out,
        stretches less than ``gap`` seconds apart joined."""
        played = np.abs(self.played).max(axis=1) if self.channels else np.zeros(0)
        loud = np.flatnonzero(played > threshold)
        if not len(loud):
            return []
        max_gap = max(1, int(gap * self.samplerate))
        breaks = np.flatnonzero(np.diff(loud) > max_gap)
        starts = np.concatenate([[loud[0]], loud[breaks + 1]])
        ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
        return [(self.time_of(int(a)), self.time_of(int(b))) for a, b in zip(starts, ends, strict=True)]


class EchoRoomMicrophone:
    """A microphone in a room with a speaker: the user's scripted speech plus, ``delay`` seconds late,
    what the speaker played times ``gain`` (and a faint noise floor).

    Paced like a device: block ``k`` is handed out when its last sample has been "recorded". Speech is
    scheduled with :meth:`say` (now, or at a given monotonic time) and may be added while the microphone
    runs, so a test can talk over the assistant once it starts speaking.
    """

    def __init__(
        self,
        speaker: PacedSpeaker | None = None,
        *,
        samplerate: int = 16000,
        blocksize: int = 512,
        channels: int = 1,
        gain: float = 0.3,
        delay: float = 0.05,
        noise_dbfs: float | None = -70.0,
        duration: float | None = None,
        label: str = "Echo room",
        seed: int = 0,
    ) -> None:
        self.speaker = speaker
        self.samplerate = int(samplerate)
        self.blocksize = int(blocksize)
        self.channels = int(channels)
        self.gain = float(gain)
        self.delay = float(delay)
        self.noise = 0.0 if noise_dbfs is None else float(10 ** (noise_dbfs / 20.0))
        self.duration = duration
        self.label = label
        self.started_at = 0.0
        self.open_count = 0
        self.close_count = 0
        #: ``(monotonic time of its first sample, samples)`` of every scheduled utterance.
        self.utterances: list[tuple[float, np.ndarray]] = []
        self._speech: list[tuple[int, np.ndarray]] = []  # (first sample index, mono samples at our rate)
        self._lock = threading.Lock()
        self._seq = 0
        self._ended = False
        self._closed = threading.Event()
        self._rng = np.random.default_rng(seed)
        self._recorded: list[np.ndarray] = []

    @property
    def ended(self) -> bool:
        return self._ended

    def open(self) -> None:
        with self._lock:
            self.started_at = time.monotonic()
            self._seq = 0
            self._ended = False
            self._closed.clear()
            self._recorded = []
            self.open_count += 1

    def _index(self, when: float) -> int:
        return round((when - self.started_at) * self.samplerate)

    def say(self, audio: np.ndarray, rate: int, *, at: float | None = None) -> float:
        """Schedule speech (any rate and channel count) to reach the microphone at monotonic time ``at``
        (default now, or the next sample not handed out yet); returns the time of its first sample."""
        mono = resample(as_block(audio, 1), int(rate), self.samplerate)[:, 0].copy()
        with self._lock:
            if self.open_count == 0:
                raise UserError(f"{self.label} is not open.")
            first = max(self._index(time.monotonic() if at is None else at), self._seq * self.blocksize)
            self._speech.append((first, mono))
            when = self.started_at + first / self.samplerate
            self.utterances.append((when, mono))
            return when

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self.open_count == 0 or self._closed.is_set():
            return None
        if self._ended:
            return None
        k = self._seq
        start = k * self.blocksize
        if self.duration is not None and start >= self.duration * self.samplerate:
            self._ended = True
            return None
        due = self.started_at + (start + self.blocksize) / self.samplerate
        wait = due - time.monotonic()
        if timeout is not None and wait > timeout:
            self._closed.wait(timeout)
            return None
        if wait > 0 and self._closed.wait(wait):
            return None
        block = np.zeros(self.blocksize, np.float32)
        with self._lock:
            for first, samples in self._speech:
                lo, hi = max(start, first), min(start + self.blocksize, first + len(samples))
                if lo < hi:
                    block[lo - start : hi - start] += samples[lo - first : hi - first]
        if self.speaker is not None and self.gain:
            times = self.started_at + (start + np.arange(self.blocksize)) / self.samplerate - self.delay
            block += self.gain * self.speaker.sample_at(times)
        if self.noise:
            block += (self.noise * self._rng.standard_normal(self.blocksize)).astype(np.float32)
        np.clip(block, -1.0, 1.0, out=block)
        self._recorded.append(block)
        self._seq += 1
        out = np.repeat(block[:, None], self.channels, axis=1)
        return StreamItem(out, time.monotonic(), k, {"source": self.label})

    @property
    def recorded(self) -> np.ndarray:
        """Everything the microphone handed out, mono."""
        return np.concatenate(self._recorded) if self._recorded else np.zeros(0, np.float32)

    def close(self) -> None:
        if self.open_count and not self._closed.is_set():
            self.close_count += 1
        self._closed.set()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
