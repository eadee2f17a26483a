"""The flash-and-click measurement: how far apart the picture and the voice leave, through fake devices.

A :class:`FlashCamera` and a :class:`ClickMicrophone` share one clock (:class:`EventClock`): every
``period`` seconds the camera's frame turns white for a few frames, and at the same instant the
microphone plays a short voiced burst (a sung vowel with a sharp onset: the voice changer and the
noise suppressor pass it, where a bare click would be smoothed away as noise). Both stream through the real live path; a
:class:`FrameLog` stands in for the virtual camera and records when each frame left, a
:class:`~workers.media.fakes.PacedSpeaker` for the virtual microphone records when each sample was
played. :func:`measure` pairs the flashes with the bursts: each stream's end-to-end latency, and
the residual offset (the voice's leave time less the picture's) for every pair.

No Qt here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.errors import UserError
from workers.media.camera import FrameInfo, FrameSourceBase
from workers.queues import StreamItem


class EventClock:
    """The shared timeline: time zero, and an event every ``period`` seconds from ``first`` on."""

    def __init__(self, period: float = 1.0, first: float = 0.8, origin: float | None = None) -> None:
        self.period = float(period)
        self.first = float(first)
        self.origin = time.monotonic() + 0.05 if origin is None else float(origin)

    def event_times(self, until: float) -> list[float]:
        """The monotonic times of the events up to ``until``."""
        out = []
        t = self.origin + self.first
        while t <= until:
            out.append(t)
            t += self.period
        return out

    def in_event(self, t: float, length: float) -> float | None:
        """The start of the event that ``t`` falls into (within ``length`` after it), else None."""
        rel = t - self.origin - self.first
        if rel < 0:
            return None
        k = int(rel // self.period)
        start = self.origin + self.first + k * self.period
        return start if t - start < length else None


#: The frame number is written in the first pixels of the top row, one bit a pixel.
STAMP_BITS = 24


def stamp_frame_number(frame: np.ndarray, n: int) -> None:
    bits = (int(n) >> np.arange(STAMP_BITS)) & 1
    frame[0, :STAMP_BITS, :] = (bits * 255).astype(np.uint8)[:, None]


def read_frame_number(frame: np.ndarray) -> int:
    bits = frame[0, :STAMP_BITS, :].mean(axis=1) > 127
    return int(np.sum(bits.astype(np.int64) << np.arange(STAMP_BITS)))


class FlashCamera(FrameSourceBase):
    """A grey frame with a dark square, white during ``flash_frames`` frames at every event.

    Frame ``n`` is captured at ``origin + n / fps`` (a reader that falls behind gets the newest
    frame, like a real camera); the frame's timestamp is that capture time, and its number is
    written in its top row (:func:`read_frame_number`), so the frame says when it was taken
    wherever it comes out.
    """

    def __init__(
        self, clock: EventClock, width: int = 320, height: int = 240, fps: float = 30.0, *, flash_frames: int = 3
    ) -> None:
        super().__init__()
        self.clock = clock
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.flash_frames = int(flash_frames)
        self._next = 0

    def open(self) -> None:
        self._info = FrameInfo(self.width, self.height, self.fps, "Flash test")
        self._next = 0
        self.is_open = True

    def read(self) -> StreamItem | None:
        if not self.is_open:
            raise UserError("The flash test camera is not open.")
        now = time.monotonic()
        n = max(self._next, int(np.floor((now - self.clock.origin) * self.fps)))
        due = self.clock.origin + n / self.fps
        if due > now:
            time.sleep(due - now)
        self._next = n + 1
        flash = self.clock.in_event(due + 1e-6, self.flash_frames / self.fps)
        frame = np.full((self.height, self.width, 3), 90, np.uint8)
        if flash is not None:
            frame[:] = 255
        else:
            s = min(self.width, self.height) // 4
            frame[s : 2 * s, s : 2 * s] = 20
        stamp_frame_number(frame, n)
        return StreamItem(frame, due, n, {"source": "Flash test", "flash": flash})

    def close(self) -> None:
        self.is_open = False


def _burst(samplerate: int, seconds: float = 0.15) -> np.ndarray:
    """A short sung "ah": a glottal pulse train (130-150 Hz with vibrato) through three vowel formants,
    a 3 ms attack and a 20 ms fade-out. Noise suppression keeps it (it sounds like a voice) and the
    voice changer shifts its pitch; its onset stays sharp."""
    from scipy.signal import lfilter

    n = round(samplerate * seconds)
    t = np.arange(n) / samplerate
    f0 = 130.0 + 15.0 * np.sin(2 * np.pi * 5 * t) + np.linspace(0.0, 20.0, n)
    pulses = np.diff(np.floor(np.cumsum(f0 / samplerate)), prepend=0.0)
    x = lfilter([1.0], [1.0, -0.97], pulses)
    for freq, bandwidth in ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)):
        r = np.exp(-np.pi * bandwidth / samplerate)
        x = lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2 * np.pi * freq / samplerate), r * r], x)
    x = x - x.mean()
    x = 0.35 * x / np.max(np.abs(x))
    attack, release = round(0.003 * samplerate), round(0.02 * samplerate)
    x[:attack] *= np.linspace(0.0, 1.0, attack)
    x[-release:] *= np.linspace(1.0, 0.0, release)
    return x.astype(np.float32)


class ClickMicrophone:
    """A microphone (the AudioSource contract) playing silence with a burst at every event of ``clock``.

    Sample ``i`` is the sound at ``origin + i / samplerate``; a block is handed out when its last
    sample is due, stamped with that time, like a sound card.
    """

    def __init__(self, clock: EventClock, samplerate: int = 48000, blocksize: int = 480) -> None:
        self.clock = clock
        self.samplerate = int(samplerate)
        self.blocksize = int(blocksize)
        self.channels = 1
        self.label = "Click test"
        self._burst = _burst(self.samplerate)
        self._seq = 0
        self._closed = threading.Event()
        self._open = False

    @property
    def ended(self) -> bool:
        return False

    def open(self) -> None:
        self._closed.clear()
        self._open = True
        # start at the block being recorded now
        self._seq = max(0, int((time.monotonic() - self.clock.origin) * self.samplerate) // self.blocksize)

    def _render(self, first: int) -> np.ndarray:
        out = np.zeros(self.blocksize, np.float32)
        t0 = self.clock.origin + first / self.samplerate
        t1 = t0 + self.blocksize / self.samplerate
        span = len(self._burst) / self.samplerate
        for start in self.clock.event_times(t1):
            if start + span < t0:
                continue
            offset = round((start - self.clock.origin) * self.samplerate) - first  # burst sample 0 here
            lo, hi = max(0, offset), min(self.blocksize, offset + len(self._burst))
            if hi > lo:
                out[lo:hi] += self._burst[lo - offset : hi - offset]
        return out

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if not self._open:
            raise UserError("The click test microphone is not open.")
        first = self._seq * self.blocksize
        due = self.clock.origin + (first + self.blocksize) / self.samplerate
        wait = due - time.monotonic()
        if timeout is not None and wait > timeout:
            self._closed.wait(timeout)
            return None
        if wait > 0 and self._closed.wait(wait):
            return None
        item = StreamItem(self._render(first)[:, None], due, self._seq, {"source": self.label})
        self._seq += 1
        return item

    def close(self) -> None:
        self._closed.set()
        self._open = False


@dataclass
class FrameLog:
    """A stand-in for the virtual camera: remembers when each frame left and how bright it was."""

    width: int = 0
    height: int = 0
    fps: float = 30.0
    device: str = "Frame log"
    #: (when it left, mean brightness, frame number) of every frame.
    sent: list[tuple[float, float, int]] = field(default_factory=list)

    def send(self, frame: np.ndarray) -> None:
        self.sent.append((time.monotonic(), float(frame.mean()), read_frame_number(frame)))

    def close(self) -> None:
        pass


def _onsets(times: np.ndarray, values: np.ndarray, threshold: float, gap: float) -> list[float]:
    """The times where ``values`` first rises over ``threshold`` after at least ``gap`` seconds under it."""
    out: list[float] = []
    last_above = -1e9
    for t, v in zip(times, values, strict=True):
        if v >= threshold:
            if t - last_above > gap:
                out.append(float(t))
            last_above = t
    return out


@dataclass
class SyncMeasurement:
    """Per event: the picture's and the voice's latency and the residual (voice leave - picture leave), ms."""

    video_ms: list[float]
    audio_ms: list[float]
    residual_ms: list[float]

    def summary(self) -> dict[str, Any]:
        def med(v: list[float]) -> float | None:
            return round(float(np.median(v)), 1) if v else None

        worst = max((abs(r) for r in self.residual_ms), default=None)
        return {
            "events": len(self.residual_ms),
            "video_latency_ms": med(self.video_ms),
            "audio_latency_ms": med(self.audio_ms),
            "residual_ms": med(self.residual_ms),
            "worst_residual_ms": None if worst is None else round(worst, 1),
        }


def measure(
    clock: EventClock, frames: FrameLog, speaker: Any, *, fps: float = 30.0, skip_first: float = 0.0
) -> SyncMeasurement:
    """Pair each flash that left the frame log with the burst that left ``speaker`` (a PacedSpeaker).

    The picture's latency is the first white frame's: from its capture (its number) to when it left;
    the voice's from the event to the burst's onset. The residual is their difference, so a flash
    frame a slow face engine skipped (the next one carries the flash) does not count as an offset.
    """
    sent = np.array(frames.sent, np.float64).reshape(-1, 3)
    audio = np.abs(np.asarray(speaker.played if hasattr(speaker, "played") else speaker._timeline)[:, 0])
    half = clock.period / 2
    window = 0.9 * clock.period  # a stream may be late by up to most of a period
    flashes = _onsets(sent[:, 0], sent[:, 1], 200.0, half) if len(sent) else []
    hop = max(1, speaker.samplerate // 2000)  # 0.5 ms envelope
    env = np.array([audio[i : i + hop].max() for i in range(0, len(audio) - hop, hop)]) if len(audio) > hop else []
    times = np.array([speaker.time_of(i * hop) for i in range(len(env))])
    bursts = _onsets(times, np.asarray(env), 0.05, half) if len(env) else []
    video_ms, audio_ms, residual = [], [], []
    for event in clock.event_times(time.monotonic()):
        if event < clock.origin + skip_first:
            continue
        v = next((t for t in flashes if event <= t < event + window), None)
        a = next((t for t in bursts if event <= t < event + window), None)
        if v is None or a is None:
            continue
        number = int(sent[np.searchsorted(sent[:, 0], v), 2])
        captured = clock.origin + number / fps
        video = v - captured
        video_ms.append(1000.0 * video)
        audio_ms.append(1000.0 * (a - event))
        residual.append(1000.0 * (a - event - video))
    return SyncMeasurement(video_ms, audio_ms, residual)
