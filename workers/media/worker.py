"""Qt workers for media devices: a camera loop, a microphone loop and a speaker test.

Each worker builds its device from a factory and reads it through a
:class:`~workers.media.watch.WatchedSource` (one reader thread opens, reads and releases the device;
a device that raises, hangs or stops delivering becomes one sentence, and stopping never waits on a
hung driver), publishes the newest result through the one-item mailbox of
:class:`~workers.base.Worker` (``result_ready`` then ``take_result``) and forwards every item to
subscriber workers' :meth:`~workers.base.Worker.push`, whose bounded queues drop the oldest item
when a model falls behind. A device failure ends the loop with one ``error`` and one
``stream_halted``; a stream that ends by itself (a video file) emits ``ended``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from PySide6.QtCore import Signal

from workers.base import JobContext, Worker
from workers.media.audio import AudioSink, AudioSource, iter_blocks, peak_dbfs, rms_dbfs, test_tone
from workers.media.camera import FrameSource
from workers.media.recording import LiveRecording
from workers.media.watch import WatchedSource
from workers.queues import StreamItem, StreamResult

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """Anything that takes stream items: a :class:`Worker` (its ``push``) or a test double."""

    def push(self, item: StreamItem) -> int: ...


class _SourceWorker(Worker):
    """A source loop that forwards its items to subscribers."""

    #: End of the stream (a video file without looping, a sound file played as a microphone).
    ended = Signal()

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        if name:
            self.name = name
        self._subscribers: list[Subscriber] = []
        self._sub_lock = threading.Lock()
        self.forwarded = 0

    def add_subscriber(self, target: Subscriber) -> None:
        """Send every item to ``target.push`` too (callable from any thread)."""
        with self._sub_lock:
            if target not in self._subscribers:
                self._subscribers.append(target)

    def remove_subscriber(self, target: Subscriber) -> None:
        with self._sub_lock:
            if target in self._subscribers:
                self._subscribers.remove(target)

    def _forward(self, item: StreamItem) -> None:
        with self._sub_lock:
            targets = list(self._subscribers)
        for target in targets:
            try:
                target.push(item)
            except Exception as exc:
                self.report(exc, f"{self.name}: a consumer refused a frame")
        self.forwarded += len(targets)

    def _read_or_release(self, read: Callable[..., StreamItem | None], *args: Any) -> StreamItem | None:
        """Return ``read(*args)``; if it raises, release the device now (``unload``) and re-raise.

        The base class then reports the error and ends the loop.
        """
        try:
            return read(*args)
        except BaseException:
            self.unload()
            raise

    def start(self, *, loop: bool = True) -> None:
        super().start(loop=loop)

    def interrupt(self) -> None:
        source = getattr(self, "source", None)
        if isinstance(source, WatchedSource):
            source.interrupt()

    def _open_watched(self, source: WatchedSource) -> None:
        """Open ``source`` as this worker's device (worker thread); reachable by :meth:`interrupt`
        while it opens, released when it cannot open."""
        self.source = source  # type: ignore[attr-defined]
        if self._stopping:
            source.interrupt()  # stop() came before the source was reachable: do not wait for the device
        try:
            source.open()
        except BaseException:
            self.source = None  # type: ignore[attr-defined]
            source.close()
            raise

    def extra_stats(self) -> dict[str, Any]:
        # A source has no input queue: what it drops are preview frames the UI never took.
        return {"dropped": self.latest.overwritten, "queued": 0}


class CameraWorker(_SourceWorker):
    """Reads frames from a :class:`FrameSource` in a loop.

    ``source_factory`` is called on the worker's thread; ``load`` opens the source and ``unload``
    releases it. The newest frame waits in the mailbox for the preview (a ``StreamResult`` whose
    payload is the BGR frame); every frame also goes to the subscribers. ``stats`` carries the
    measured fps, the size and how many preview frames were skipped. A source that fails mid
    stream (raises, hangs, or delivers nothing for ``stall_seconds``) gives one ``error`` sentence
    and one ``stream_halted``, is released, and the loop ends (state ``ended``).
    """

    name = "Camera"
    #: The source is open: emits its :class:`~workers.media.camera.FrameInfo`.
    opened = Signal(object)

    def __init__(
        self, source_factory: Callable[[], FrameSource], name: str | None = None, *, stall_seconds: float | None = None
    ) -> None:
        super().__init__(name)
        self._factory = source_factory
        self.stall_seconds = stall_seconds
        self.source: WatchedSource | None = None
        self.frames = 0

    def load(self) -> None:
        source = WatchedSource(self._factory(), "camera", stall_seconds=self.stall_seconds, name=self.name)
        self._open_watched(source)
        self.opened.emit(source.info)

    def unload(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            source.close()

    def step(self) -> bool:
        if self.source is None:
            return False
        item = self._read_or_release(self.source.read, WatchedSource.poll)
        if item is None:
            if not self.source.ended:
                return True  # no frame yet: parameter changes and stop requests get in between
            log.info("%s: end of stream after %d frames", self.name, self.frames)
            self.ended.emit()
            return False
        self.frames += 1
        self.timer.add_item()
        self.publish(StreamResult(item.payload, item.timestamp, item.seq, meta=item.meta))
        self._forward(item)
        return True

    def extra_stats(self) -> dict[str, Any]:
        info = self.source.info if self.source is not None else None
        out = super().extra_stats()
        out["frames"] = self.frames
        if info is not None:
            out.update(width=info.width, height=info.height, source_fps=info.fps)
        return out


class MicrophoneWorker(_SourceWorker):
    """Reads blocks from an :class:`AudioSource` and publishes their level.

    The mailbox holds a ``StreamResult`` whose payload is the block's RMS level in dBFS (with
    ``meta["peak_dbfs"]``); blocks go to subscribers when ``forward`` is true.
    """

    name = "Microphone"
    opened = Signal(int, int)  # sample rate, channels

    def __init__(
        self,
        source_factory: Callable[[], AudioSource],
        name: str | None = None,
        *,
        forward: bool = True,
        read_timeout: float = 0.05,
        stall_seconds: float | None = None,
    ) -> None:
        super().__init__(name)
        self._factory = source_factory
        self.forward = forward
        self.read_timeout = read_timeout
        self.stall_seconds = stall_seconds
        self.source: WatchedSource | None = None
        self.blocks = 0
        self.level_dbfs = -120.0

    def load(self) -> None:
        source = WatchedSource(self._factory(), "microphone", stall_seconds=self.stall_seconds, name=self.name)
        self._open_watched(source)
        self.opened.emit(int(source.samplerate), int(source.channels))

    def unload(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            source.close()

    def step(self) -> bool:
        if self.source is None:
            return False
        item = self._read_or_release(self.source.read, self.read_timeout)
        if item is None:
            if self.source.ended:
                self.ended.emit()
                return False
            return True
        self.blocks += 1
        self.level_dbfs = rms_dbfs(item.payload)
        self.timer.add_item()
        self.publish(
            StreamResult(self.level_dbfs, item.timestamp, item.seq, meta={"peak_dbfs": peak_dbfs(item.payload)})
        )
        if self.forward:
            self._forward(item)
        return True

    def extra_stats(self) -> dict[str, Any]:
        return {**super().extra_stats(), "blocks": self.blocks, "level_dbfs": round(self.level_dbfs, 1)}


class TonePlayer(Worker):
    """Plays a test tone on an output, as a job (``job_finished`` / ``job_failed`` when done).

    Start it once with :meth:`start`, then call :meth:`play` as often as needed; each call may
    name another output.
    """

    name = "Speaker test"

    def __init__(self, output_factory: Callable[[], AudioSink] | None = None, *, blocksize: int = 1024) -> None:
        super().__init__()
        self._factory = output_factory
        self.blocksize = blocksize

    def play(
        self, seconds: float = 1.0, freq: float = 440.0, output_factory: Callable[[], AudioSink] | None = None
    ) -> int:
        factory = output_factory or self._factory
        if factory is None:
            raise ValueError("no audio output to play the test tone on")

        def job(ctx: JobContext) -> int:
            return self._play(ctx, factory, seconds, freq)

        return self.submit(job)

    def _play(self, ctx: JobContext, factory: Callable[[], AudioSink], seconds: float, freq: float) -> int:
        sink = factory()
        sink.open()
        written = 0
        try:
            rate = int(sink.samplerate or 48000)
            tone = test_tone(rate, seconds, freq, channels=int(sink.channels or 1))
            for block in iter_blocks(tone, self.blocksize, pad=False):
                ctx.check()
                sink.write(block)
                written += len(block)
            while not sink.drain(0.05):
                ctx.check()
        finally:
            sink.close()
        log.info("Played a %.0f Hz test tone (%d frames)", freq, written)
        return written


class RecordingWorker(Worker):
    """A stream worker whose results can be recorded to MP4 (started and stopped from any thread,
    frames written on the worker's thread by :meth:`record`)."""

    #: A recording was finished and saved: its path.
    recording_saved = Signal(str)
    #: A recording stopped because it could not be written (the sentence; a full disk reads "The disk is
    #: full: …"). What could still be finished was saved (``recording_saved``); nothing half-written is
    #: left under the recording's name.
    recording_failed = Signal(str)
    #: Forced suffix of recordings (None keeps the one asked for).
    record_suffix: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._recording = LiveRecording(self._recording_saved, self._recording_error, suffix=self.record_suffix)

    @property
    def recording(self) -> bool:
        return self._recording.active

    @property
    def recorded_frames(self) -> int:
        """Frames written to the running recording."""
        return self._recording.frames

    def start_recording(self, path: str | Path) -> None:
        """Record the output stream to ``path`` (an MP4), from the next frame on.

        A recording already running is finished first (and ``recording_saved`` emitted).
        """
        self._recording.start(path)

    def stop_recording(self) -> Path | None:
        """Finish the recording; returns its path, or None when no frame was recorded."""
        return self._recording.stop()

    def record(self, frame: Any, timestamp: float) -> None:
        """Write one output frame to the running recording, if any (worker thread)."""
        start = time.perf_counter()
        if self._recording.write(frame, timestamp, lambda: self.timer.snapshot()["fps"]):
            self.timer.add_stage("record", (time.perf_counter() - start) * 1000.0)

    def extra_stats(self) -> dict[str, Any]:
        return self._recording.stats()

    def _recording_saved(self, path: Path) -> None:
        self.recording_saved.emit(str(path))

    def _recording_error(self, exc: BaseException, what: str) -> None:
        self.recording_failed.emit(self.report(exc, f"{self.name}: {what}"))
