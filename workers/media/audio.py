"""Microphones and speakers through sounddevice (PortAudio), plus small audio helpers.

No Qt here. sounddevice is imported lazily and defensively: on Linux it needs the PortAudio
library from the system, and a machine without it (or without any sound device) must still run
the studio. Every device failure becomes a :class:`~workers.errors.UserError` sentence naming the
device.

Audio blocks are ``float32`` arrays shaped ``(frames, channels)`` with samples in [-1, 1].
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from workers.errors import UserError
from workers.queues import DropOldestQueue, StreamItem

log = logging.getLogger(__name__)

#: The level reported for digital silence.
SILENCE_DBFS = -120.0


# ---- sounddevice, loaded safely ----------------------------------------------------------------


def _portaudio_hint() -> str:
    if sys.platform.startswith("linux"):
        return (
            "Install it and restart the studio (Debian/Ubuntu: sudo apt install libportaudio2; "
            "Fedora: sudo dnf install portaudio; Arch: sudo pacman -S portaudio)."
        )
    return "Reinstall the studio; its sounddevice package should carry PortAudio."


def load_sounddevice() -> ModuleType:
    """Import sounddevice, or raise :class:`UserError` saying why sound is unavailable."""
    try:
        import sounddevice
    except OSError as exc:  # the module imports but cannot find the PortAudio library
        log.info("sounddevice could not load PortAudio: %s", exc)
        raise UserError(f"Sound is unavailable: the PortAudio library is not installed. {_portaudio_hint()}") from exc
    except ImportError as exc:
        log.info("sounddevice is missing: %s", exc)
        raise UserError(
            "Sound is unavailable: the sounddevice package is not installed (pip install sounddevice)."
        ) from exc
    return sounddevice


@dataclass(frozen=True, slots=True)
class AudioStatus:
    """Whether sound works at all on this machine, and a sentence for the user."""

    available: bool
    message: str
    inputs: int = 0
    outputs: int = 0


@dataclass(frozen=True, slots=True)
class AudioDevice:
    name: str
    index: int
    channels: int
    default_samplerate: float
    hostapi: str = ""
    is_default: bool = False


def _query(sd: ModuleType) -> list[dict[str, Any]]:
    try:
        return [dict(d) for d in sd.query_devices()]
    except Exception as exc:
        log.warning("Listing sound devices failed: %s", exc)
        return []


def _defaults(sd: ModuleType) -> tuple[int, int]:
    try:
        dev = sd.default.device
        return int(dev[0]), int(dev[1])
    except Exception:
        return -1, -1


def _hostapi_names(sd: ModuleType) -> list[str]:
    try:
        return [str(h.get("name", "")) for h in sd.query_hostapis()]
    except Exception:
        return []


def _list(kind: str) -> list[AudioDevice]:
    try:
        sd = load_sounddevice()
    except UserError:
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    default = _defaults(sd)[0 if kind == "input" else 1]
    apis = _hostapi_names(sd)
    out = []
    for i, d in enumerate(_query(sd)):
        channels = int(d.get(key, 0) or 0)
        if channels <= 0:
            continue
        index = int(d.get("index", i))
        api = d.get("hostapi", -1)
        out.append(
            AudioDevice(
                name=str(d.get("name", f"Device {index}")),
                index=index,
                channels=channels,
                default_samplerate=float(d.get("default_samplerate", 0.0) or 0.0),
                hostapi=apis[api] if isinstance(api, int) and 0 <= api < len(apis) else "",
                is_default=index == default,
            )
        )
    return out


def list_input_devices() -> list[AudioDevice]:
    """Microphones and other capture devices; empty when sound is unavailable."""
    return _list("input")


def list_output_devices() -> list[AudioDevice]:
    """Speakers, headphones and other playback devices; empty when sound is unavailable."""
    return _list("output")


def audio_status() -> AudioStatus:
    """Can the studio record and play sound here? Never raises."""
    try:
        load_sounddevice()
    except UserError as exc:
        return AudioStatus(False, str(exc))
    inputs, outputs = len(list_input_devices()), len(list_output_devices())
    if not inputs and not outputs:
        return AudioStatus(False, "No sound devices were found. Connect a microphone or speakers, then reopen Devices.")
    parts = []
    if not inputs:
        parts.append("No microphone was found.")
    if not outputs:
        parts.append("No speaker was found.")
    return AudioStatus(True, " ".join(parts) or "Sound is ready.", inputs, outputs)


def find_device(name: str | int | None, kind: str) -> AudioDevice | None:
    """The device called ``name`` (exact, then case-insensitive substring); None means the default.

    Raises :class:`UserError` when a named device is not connected.
    """
    if name is None or name == "":
        return None
    devices = list_input_devices() if kind == "input" else list_output_devices()
    if isinstance(name, int):
        for d in devices:
            if d.index == name:
                return d
    else:
        for d in devices:
            if d.name == name:
                return d
        low = name.lower()
        for d in devices:
            if low in d.name.lower():
                return d
    what = "microphone" if kind == "input" else "speaker"
    raise UserError(f"The {what} “{name}” is not connected. Choose another one in Devices.")


# ---- helpers --------------------------------------------------------------------------------------


def as_block(data: np.ndarray, channels: int | None = None) -> np.ndarray:
    """A float32 ``(frames, channels)`` array; ints are scaled to [-1, 1]."""
    arr = np.asarray(data)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = 0.0 if arr.dtype.kind == "i" else scale / 2
        arr = (arr.astype(np.float32) - offset) / scale
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 1:
        arr = arr[:, None]
    if channels is not None:
        arr = convert_channels(arr, channels)
    return arr


def convert_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """Downmix to mono by averaging, or spread mono (or fewer channels) over more."""
    if block.ndim == 1:
        block = block[:, None]
    have = block.shape[1]
    if have == channels:
        return block
    if channels == 1:
        return block.mean(axis=1, keepdims=True, dtype=np.float32).astype(np.float32)
    if have == 1:
        return np.repeat(block, channels, axis=1)
    if have > channels:
        return np.ascontiguousarray(block[:, :channels])
    extra = np.repeat(block[:, -1:], channels - have, axis=1)
    return np.concatenate([block, extra], axis=1)


def resample(data: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample a ``(frames, channels)`` float32 array (soxr when installed, else linear)."""
    if src_rate == dst_rate or len(data) == 0:
        return data.astype(np.float32, copy=False)
    try:
        import soxr
    except ImportError:
        soxr = None
    if soxr is not None:
        return np.asarray(soxr.resample(data, src_rate, dst_rate), dtype=np.float32).reshape(-1, data.shape[1])
    n_out = round(len(data) * dst_rate / src_rate)
    t_out = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    t_in = np.arange(len(data), dtype=np.float64)
    cols = [np.interp(t_out, t_in, data[:, c]) for c in range(data.shape[1])]
    return np.stack(cols, axis=1).astype(np.float32)


def rms_dbfs(block: np.ndarray) -> float:
    """Root-mean-square level in dBFS (0 dBFS is a full-scale square wave; silence is -120)."""
    arr = np.asarray(block, dtype=np.float32)
    if arr.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))
    if rms <= 1e-6:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms))


def peak_dbfs(block: np.ndarray) -> float:
    arr = np.asarray(block, dtype=np.float32)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    return SILENCE_DBFS if peak <= 1e-6 else max(SILENCE_DBFS, 20.0 * math.log10(peak))


def test_tone(
    samplerate: int, seconds: float = 1.0, freq: float = 440.0, *, amplitude: float = 0.2, channels: int = 1
) -> np.ndarray:
    """A sine with 10 ms fades at both ends (no clicks), as ``(frames, channels)`` float32."""
    n = max(0, round(samplerate * seconds))
    t = np.arange(n, dtype=np.float64) / samplerate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    fade = min(n // 2, int(samplerate * 0.01))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return np.repeat(wave.astype(np.float32)[:, None], channels, axis=1)


test_tone.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def iter_blocks(data: np.ndarray, blocksize: int, *, pad: bool = True) -> Iterator[np.ndarray]:
    """Cut ``data`` into blocks of ``blocksize`` frames; the last one is zero-padded if ``pad``."""
    for start in range(0, len(data), blocksize):
        block = data[start : start + blocksize]
        if pad and len(block) < blocksize:
            block = np.concatenate([block, np.zeros((blocksize - len(block), *block.shape[1:]), block.dtype)])
        yield block


# ---- source and sink contracts -----------------------------------------------------------------


@runtime_checkable
class AudioSource(Protocol):
    """A microphone or anything that plays like one: blocks of float32 audio with timestamps."""

    samplerate: int
    channels: int
    blocksize: int

    def open(self) -> None: ...

    def read(self, timeout: float | None = None) -> StreamItem | None:
        """The next block, or None when none came within ``timeout`` (see :attr:`ended`)."""

    @property
    def ended(self) -> bool:
        """True when the source will never produce another block (end of a file)."""

    def close(self) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    """A speaker or anything that takes audio like one."""

    samplerate: int
    channels: int

    def open(self) -> None: ...

    def write(self, block: np.ndarray) -> None: ...

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything written was played; True if it finished in time."""

    def close(self) -> None: ...


class _ContextMixin:
    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _device_label(device: AudioDevice | str | int | None, kind: str) -> str:
    what = "microphone" if kind == "input" else "speaker"
    if device is None:
        return f"the default {what}"
    name = device.name if isinstance(device, AudioDevice) else str(device)
    return f"the {what} “{name}”"


def _open_error(exc: BaseException, device: AudioDevice | str | int | None, kind: str) -> UserError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    label = _device_label(device, kind)
    return UserError(
        f"{label[0].upper()}{label[1:]} could not be opened ({detail}). "
        "Check that it is connected and not used by another program, or choose another one in Devices."
    )


def _resolve(device: AudioDevice | str | int | None, kind: str) -> AudioDevice | None:
    if isinstance(device, AudioDevice) or device is None:
        return device
    return find_device(device, kind)


def _start_stream(
    kind: str,
    device: AudioDevice | str | int | None,
    samplerate: int | None,
    blocksize: int,
    channels: int,
    callback: Callable[..., None],
) -> tuple[Any, int]:
    """Open and start a float32 ``InputStream`` (kind ``"input"``) or ``OutputStream`` (``"output"``).

    The rate is ``samplerate``, else the device's default rate. Returns the running stream and the
    rate it actually runs at; any failure is a :class:`UserError` naming the device.
    """
    sd = load_sounddevice()
    dev = _resolve(device, kind)
    rate = samplerate or (int(dev.default_samplerate) if dev else None)
    try:
        if rate is None:
            info = sd.query_devices(kind=kind)
            rate = int(info["default_samplerate"])
        stream_class = sd.InputStream if kind == "input" else sd.OutputStream
        stream = stream_class(
            samplerate=rate,
            blocksize=blocksize,
            device=dev.index if dev else None,
            channels=channels,
            dtype="float32",
            callback=callback,
        )
        stream.start()
    except UserError:
        raise
    except Exception as exc:
        raise _open_error(exc, dev or device, kind) from exc
    return stream, int(getattr(stream, "samplerate", rate) or rate)


# ---- real devices -----------------------------------------------------------------------------------


class AudioInput(_ContextMixin):
    """A microphone through a sounddevice InputStream.

    The PortAudio callback copies each block into a bounded drop-oldest queue with the time it
    arrived; :meth:`read` takes them in order. A reader that falls behind loses the oldest audio,
    never memory.
    """

    def __init__(
        self,
        device: AudioDevice | str | int | None = None,
        samplerate: int | None = None,
        blocksize: int = 1024,
        channels: int = 1,
        *,
        queue_blocks: int = 32,
    ) -> None:
        self.device = device
        self.requested_samplerate = samplerate
        self.samplerate = int(samplerate or 0)
        self.blocksize = int(blocksize)
        self.channels = int(channels)
        self.queue: DropOldestQueue[StreamItem] = DropOldestQueue(queue_blocks)
        self.overflows = 0
        self._stream: Any = None
        self._seq = 0
        self._error: str | None = None

    @property
    def ended(self) -> bool:
        return False

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def label(self) -> str:
        return _device_label(self.device, "input")

    def open(self) -> None:
        if self._stream is not None:
            return
        self._stream, self.samplerate = _start_stream(
            "input", self.device, self.requested_samplerate, self.blocksize, self.channels, self._callback
        )
        log.info(
            "Opened %s at %d Hz, %d channel(s), blocks of %d",
            self.label,
            self.samplerate,
            self.channels,
            self.blocksize,
        )

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self.overflows += 1
        item = StreamItem(np.array(indata, dtype=np.float32, copy=True), time.monotonic(), self._seq)
        self._seq += 1
        self.queue.put(item)

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._stream is None:
            raise UserError(f"{self.label[0].upper()}{self.label[1:]} is not open.")
        return self.queue.get(timeout)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as exc:
            log.warning("Closing %s failed: %s", self.label, exc)
        self.queue.clear()
        log.info("Released %s", self.label)


class AudioOutput(_ContextMixin):
    """A speaker through a sounddevice OutputStream fed from a bounded buffer.

    :meth:`write` waits while the buffer holds more than ``buffer_seconds`` of audio (so a
    producer runs at real-time pace); with ``drop_when_full`` it discards the oldest buffered
    audio instead, which keeps latency bounded for live conversion. Underruns play silence.
    """

    def __init__(
        self,
        device: AudioDevice | str | int | None = None,
        samplerate: int | None = None,
        blocksize: int = 1024,
        channels: int = 1,
        *,
        buffer_seconds: float = 0.5,
        drop_when_full: bool = False,
    ) -> None:
        self.device = device
        self.requested_samplerate = samplerate
        self.samplerate = int(samplerate or 0)
        self.blocksize = int(blocksize)
        self.channels = int(channels)
        self.buffer_seconds = buffer_seconds
        self.drop_when_full = drop_when_full
        self.underruns = 0
        self.dropped_frames = 0
        self._chunks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._stream: Any = None

    @property
    def label(self) -> str:
        return _device_label(self.device, "output")

    @property
    def capacity(self) -> int:
        return max(self.blocksize, int(self.buffer_seconds * (self.samplerate or 48000)))

    @property
    def buffered_frames(self) -> int:
        with self._cond:
            return self._buffered

    def open(self) -> None:
        if self._stream is not None:
            return
        self._stream, self.samplerate = _start_stream(
            "output", self.device, self.requested_samplerate, self.blocksize, self.channels, self._callback
        )
        log.info("Opened %s at %d Hz, %d channel(s)", self.label, self.samplerate, self.channels)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        filled = 0
        with self._cond:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk))
                outdata[filled : filled + take] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._buffered -= filled
            if filled < frames:
                outdata[filled:] = 0
                if filled or self._buffered:
                    self.underruns += 1
            self._cond.notify_all()

    def write(self, block: np.ndarray, timeout: float | None = 5.0) -> None:
        """Queue audio for playback (float32 or int, any channel count: converted)."""
        if self._stream is None:
            raise UserError(f"{self.label[0].upper()}{self.label[1:]} is not open.")
        data = as_block(block, self.channels).copy()
        if not len(data):
            return
        with self._cond:
            if self.drop_when_full:
                while self._chunks and self._buffered + len(data) > self.capacity:
                    old = self._chunks.popleft()
                    self._buffered -= len(old)
                    self.dropped_frames += len(old)
            else:
                ok = self._cond.wait_for(
                    lambda: self._buffered + len(data) <= self.capacity or self._buffered == 0, timeout
                )
                if not ok:
                    raise UserError(
                        f"{self.label[0].upper()}{self.label[1:]} stopped playing (no audio was taken "
                        "for several seconds). Check the device or choose another one in Devices."
                    )
            self._chunks.append(data)
            self._buffered += len(data)

    def drain(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._buffered <= 0, timeout)

    def clear(self) -> int:
        """Drop the audio written but not yet played (the user interrupted); returns the frames dropped.

        A :meth:`write` waiting for room returns at once; the device plays silence until the next write.
        """
        with self._cond:
            dropped = self._buffered
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()
        return dropped

    def close(self) -> None:
        stream, self._stream = self._stream, None
        with self._cond:
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as exc:
            log.warning("Closing %s failed: %s", self.label, exc)
        log.info("Released %s", self.label)


class BlockClock:
    """Paces audio blocks like a sound card: block ``seq`` is due ``seq + 1`` block lengths after the
    first read (for sources that play a file or an array in real time)."""

    def __init__(self, closed: threading.Event) -> None:
        self.closed = closed
        self.start: float | None = None

    def reset(self) -> None:
        self.start = None

    def wait(self, seq: int, blocksize: int, samplerate: float, timeout: float | None) -> bool:
        """Sleep until block ``seq`` is due; False when ``timeout`` comes first or the source closes."""
        now = time.monotonic()
        if self.start is None:
            self.start = now
        wait = self.start + (seq + 1) * blocksize / samplerate - now
        if timeout is not None and wait > timeout:
            self.closed.wait(timeout)
            return False
        return not (wait > 0 and self.closed.wait(wait))
