"""The worker protocol: QObject workers living in their own QThreads.

A worker loads its models on its own thread (``load``), emits ``ready``, then serves

- **jobs** (one-shot work: a file, a batch) submitted with :meth:`Worker.submit`; a job is a
  callable taking a :class:`JobContext` through which it reports progress and sees cancellation;
- a **stream** (camera frames, audio blocks) pushed with :meth:`Worker.push` from any thread into a
  bounded queue that drops the oldest item; :meth:`Worker.process` handles one item at a time and
  the newest result waits in a one-item mailbox (``result_ready`` then :meth:`Worker.take_result`),
  so a slow consumer never floods the UI thread;
- or, for a **source** (a camera, a microphone), a loop of :meth:`Worker.step` calls, each posted
  as an event so that parameter changes and stop requests get in between.

Every worker emits ``progress(done, total)``, ``error(message)``, ``warning(message)`` and
``stats(dict)``. An exception inside a worker becomes an ``error`` signal with a readable sentence;
it never reaches the UI thread as a crash. Cancel is cooperative: :meth:`Worker.cancel` bumps a
generation counter that every running job polls. :func:`shutdown_all` stops every live worker,
joins its thread and releases its devices.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from workers.engine import Engine
from workers.errors import Cancelled, UserError, describe_exception
from workers.queues import DropOldestQueue, LatestValue, StreamItem, StreamResult

log = logging.getLogger(__name__)

_job_ids = itertools.count(1)
_live: list[Worker] = []
_live_lock = threading.Lock()


class _ThreadStateHold:
    """Keeps the worker thread's Python thread state alive from start to stop.

    Qt enters Python for each slot call with a thread state made for that call and dropped after
    it. Native extensions that remember the thread state they first ran on (dlib does) then crash
    when a model loaded in one slot is used in the next; one reference held for the thread's whole
    life keeps the state, and ``threading.current_thread()``, the same for every slot.
    """

    def __init__(self) -> None:
        import ctypes

        self._api = ctypes.pythonapi
        self._api.PyGILState_Ensure.restype = ctypes.c_int
        self._api.PyGILState_Release.argtypes = [ctypes.c_int]
        self._state: int | None = int(self._api.PyGILState_Ensure())
        self._thread = threading.get_ident()

    def release(self) -> None:
        if self._state is not None and threading.get_ident() == self._thread:
            self._api.PyGILState_Release(self._state)
        self._state = None


class JobContext:
    """Handed to a job: progress reporting and cooperative cancellation."""

    def __init__(self, worker: Worker, job_id: int, generation: int) -> None:
        self._worker = worker
        self.job_id = job_id
        self._generation = generation
        self._last_progress = 0.0

    @property
    def cancelled(self) -> bool:
        return self._worker._cancel_generation != self._generation or self._worker._stopping

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user cancelled; call this often (every few ms of work)."""
        if self.cancelled:
            raise Cancelled()

    def progress(self, done: int, total: int) -> None:
        """Report progress (rate-limited to ~20 Hz, the last step always goes through)."""
        self.check()
        now = time.monotonic()
        if done >= total or now - self._last_progress >= 0.05:
            self._last_progress = now
            self._worker.progress.emit(int(done), int(total))

    def warn(self, message: str) -> None:
        self._worker._emit_warning(message)

    def sleep(self, seconds: float) -> None:
        """Sleep in small steps, returning early (with Cancelled) when cancelled."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.01))


class StageTimer:
    """Collects per-stage milliseconds and items per second for the ``stats`` signal."""

    def __init__(self, window: int = 30) -> None:
        self._stamps: deque[float] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = {}
        self._latency: deque[float] = deque(maxlen=window)
        self._window = window

    def add_stage(self, name: str, ms: float) -> None:
        self._stages.setdefault(name, deque(maxlen=self._window)).append(ms)

    def add_item(self, latency_ms: float | None = None) -> None:
        self._stamps.append(time.monotonic())
        if latency_ms is not None:
            self._latency.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        fps = 0.0
        if len(self._stamps) >= 2:
            span = self._stamps[-1] - self._stamps[0]
            fps = (len(self._stamps) - 1) / span if span > 0 else 0.0
        out: dict[str, Any] = {
            "fps": round(fps, 2),
            "stages_ms": {k: round(sum(v) / len(v), 2) for k, v in self._stages.items() if v},
        }
        if self._latency:
            out["latency_ms"] = round(sum(self._latency) / len(self._latency), 2)
        return out


class Worker(QObject):
    """Base class of every worker. Subclasses override :meth:`load`, :meth:`unload`,
    :meth:`process` (stream) or :meth:`step` (source loop); jobs need no override."""

    ready = Signal()
    progress = Signal(int, int)
    error = Signal(str)
    warning = Signal(str)
    stats = Signal(dict)
    state_changed = Signal(str)
    job_finished = Signal(int, object)
    job_cancelled = Signal(int)
    job_failed = Signal(int, str)
    result_ready = Signal()
    stopped = Signal()

    _submit_requested = Signal(int, int, object)
    _wake_requested = Signal()
    _param_requested = Signal(str, object)
    _stop_requested = Signal()

    #: Shown in messages ("Camera: the device is busy.").
    name: ClassVar[str] = "Worker"
    #: Stream queue length; 1-2 keeps live latency low.
    queue_size: ClassVar[int] = 2
    #: Seconds between two ``stats`` emissions.
    stats_interval: ClassVar[float] = 0.5
    #: The same error message is not repeated within this many seconds (a stream failing on
    #: every frame must not bury the log).
    repeat_error_after: ClassVar[float] = 5.0

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = "idle"
        self.params: dict[str, Any] = {}
        self.timer = StageTimer()
        self.latest: LatestValue[Any] = LatestValue()
        self._queue: DropOldestQueue[StreamItem] = DropOldestQueue(self.queue_size)
        self._thread: QThread | None = None
        self._thread_state: _ThreadStateHold | None = None
        self._cancel_generation = 0
        self._stopping = False
        self._load_error: str | None = None
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._looping = False
        self._last_stats = 0.0
        self._recent_errors: dict[str, float] = {}
        self._submit_requested.connect(self._run_job)
        self._wake_requested.connect(self._drain)
        self._param_requested.connect(self._apply_param)
        self._stop_requested.connect(self._shutdown)

    # ---- overridables (run on the worker's thread) -------------------------------------------
    def load(self) -> None:
        """Load models and open devices. Runs once, on the worker's thread, before any work."""

    def unload(self) -> None:
        """Release models and devices. Runs on the worker's thread when the worker stops."""

    def process(self, item: StreamItem) -> Any:
        """Handle one stream item and return the result payload (stream mode)."""
        raise NotImplementedError(f"{type(self).__name__} does not take a stream")

    def step(self) -> bool:
        """One iteration of a source loop (read a frame, a block). Return False to end the loop."""
        raise NotImplementedError(f"{type(self).__name__} is not a source")

    def on_param(self, name: str, value: Any) -> None:
        """A parameter changed (already stored in ``self.params``)."""

    # ---- lifecycle (called from the UI thread) -------------------------------------------
    def start(self, *, loop: bool = False) -> None:
        """Move to a new thread and start it; ``loop=True`` runs :meth:`step` repeatedly."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        if self.parent() is not None:
            raise RuntimeError("a worker with a parent cannot move to its own thread")
        self._looping = loop
        thread = QThread()
        thread.setObjectName(self.name)
        self._thread = thread
        self.moveToThread(thread)
        thread.started.connect(self._on_started)
        with _live_lock:
            _live.append(self)
        thread.start()

    @property
    def thread_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def stop(self, timeout_ms: int = 3000) -> bool:
        """Cancel work, release models and devices, and join the thread. True if it ended in time."""
        thread = self._thread
        if thread is None:
            return True
        self._stopping = True
        self.cancel()
        if thread.isRunning():
            self._stop_requested.emit()
            finished = thread.wait(timeout_ms)
        else:
            finished = True
        if not finished:
            log.warning("%s did not stop within %d ms", self.name, timeout_ms)
        with _live_lock:
            if finished and self in _live:
                _live.remove(self)
        return finished

    # ---- work (callable from any thread) -------------------------------------------------
    def submit(self, job: Callable[[JobContext], Any]) -> int:
        """Queue a job; returns its id. The job runs on the worker's thread after ``load``."""
        if self._thread is None:
            raise RuntimeError(f"start {self.name} before submitting jobs")
        job_id = next(_job_ids)
        self._submit_requested.emit(job_id, self._cancel_generation, job)
        return job_id

    def push(self, item: StreamItem | Any) -> int:
        """Offer a stream item; returns how many stale items were dropped to make room."""
        if not isinstance(item, StreamItem):
            item = StreamItem(item)
        dropped = self._queue.put(item)
        if self._thread is not None:
            self._request_wake()
        return dropped

    def cancel(self) -> None:
        """Cancel every job submitted so far and forget queued stream items."""
        self._cancel_generation += 1
        self._queue.clear()

    def set_param(self, name: str, value: Any) -> None:
        """Change a parameter live; applied on the worker's thread between two items."""
        self._param_requested.emit(name, value)

    def take_result(self) -> Any:
        """The newest stream result (a :class:`StreamResult`), or None."""
        return self.latest.take()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    # ---- internals (worker thread) -------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _emit_error(self, message: str, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        last = self._recent_errors.get(message)
        self._recent_errors[message] = now
        if last is not None and now - last < self.repeat_error_after:
            return
        with_trace = exc if exc is not None and not isinstance(exc, UserError | Cancelled) else None
        log.error("%s", message, exc_info=with_trace, extra={"source": self.name})
        self.error.emit(message)

    def _emit_warning(self, message: str) -> None:
        log.warning("%s", message, extra={"source": self.name})
        self.warning.emit(message)

    def report(self, exc: BaseException, what: str = "") -> str:
        """Log an exception (with its traceback) and emit it as a readable ``error``."""
        message = describe_exception(exc, what or self.name)
        self._emit_error(message, exc)  # the traceback goes to the log file; the panel shows the sentence
        return message

    @Slot()
    def _on_started(self) -> None:
        self._thread_state = _ThreadStateHold()
        threading.current_thread().name = self.name  # readable thread names in the log
        self._set_state("loading")
        try:
            self.load()
        except BaseException as exc:
            self._load_error = self.report(exc, f"{self.name} could not start")
            self._set_state("failed")
            return
        self._set_state("ready")
        self.ready.emit()
        if len(self._queue):
            self._request_wake()
        if self._looping:
            QTimer.singleShot(0, self._loop_step)

    @Slot()
    def _loop_step(self) -> None:
        if self._stopping or self.state != "ready":
            return
        try:
            more = self.step()
        except BaseException as exc:
            self.report(exc)
            more = False
        self._maybe_emit_stats()
        if more and not self._stopping:
            QTimer.singleShot(0, self._loop_step)
        elif not self._stopping:
            self._set_state("ended")

    @Slot(int, int, object)
    def _run_job(self, job_id: int, generation: int, job: Callable[[JobContext], Any]) -> None:
        ctx = JobContext(self, job_id, generation)
        if self._load_error is not None:
            self.job_failed.emit(job_id, self._load_error)
            return
        if ctx.cancelled:
            self.job_cancelled.emit(job_id)
            return
        self._set_state("busy")
        try:
            result = job(ctx)
        except Cancelled:
            self.job_cancelled.emit(job_id)
        except BaseException as exc:
            self.job_failed.emit(job_id, self.report(exc))
        else:
            self.job_finished.emit(job_id, result)
        finally:
            if not self._stopping:
                self._set_state("ready")

    def _request_wake(self) -> None:
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._wake_requested.emit()

    @Slot()
    def _drain(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        if self._stopping or self._load_error is not None:
            self._queue.clear()
            return
        item = self._queue.get_nowait()
        if item is not None:
            self.process_item(item)
        if len(self._queue):
            self._request_wake()  # let queued parameter changes and stop requests in first

    def process_item(self, item: StreamItem) -> None:
        """Run :meth:`process` on one item and publish the result (worker thread)."""
        try:
            payload = self.process(item)
        except BaseException as exc:
            self.report(exc)
            return
        if payload is None:
            return
        result = payload if isinstance(payload, StreamResult) else StreamResult(payload, item.timestamp, item.seq)
        self.timer.add_item(result.latency_ms)
        self.publish(result)
        self._maybe_emit_stats()

    def publish(self, result: Any) -> None:
        """Put a result in the mailbox; ``result_ready`` fires only if the UI took the last one."""
        if self.latest.post(result):
            self.result_ready.emit()

    def _maybe_emit_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < self.stats_interval:
            return
        self._last_stats = now
        snap = self.timer.snapshot()
        snap["dropped"] = self._queue.dropped
        snap["queued"] = len(self._queue)
        snap.update(self.extra_stats())
        self.stats.emit(snap)

    def extra_stats(self) -> dict[str, Any]:
        """More entries for the ``stats`` signal (worker thread); overridden by workers that have them."""
        return {}

    @Slot(str, object)
    def _apply_param(self, name: str, value: Any) -> None:
        self.params[name] = value
        try:
            self.on_param(name, value)
        except BaseException as exc:
            self.report(exc, f"{self.name}: cannot set {name}")

    @Slot()
    def _shutdown(self) -> None:
        try:
            self.unload()
        except BaseException as exc:
            self.report(exc, f"{self.name} did not release its resources cleanly")
        self._set_state("stopped")
        self.stopped.emit()
        if self._thread_state is not None:
            self._thread_state.release()
            self._thread_state = None
        thread = self._thread
        if thread is not None:
            thread.quit()


class EngineWorker(Worker):
    """A stream/job worker that owns one engine (see :class:`workers.engine.Engine`).

    The engine is built and loaded on the worker's thread and reused for every item.
    """

    def __init__(self, engine_factory: Callable[[], Engine], name: str | None = None) -> None:
        super().__init__()
        if name:
            self.name = name
        self._factory = engine_factory
        self.engine: Engine | None = None

    def load(self) -> None:
        engine = self._factory()
        engine.load()
        self.engine = engine

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def process(self, item: StreamItem) -> Any:
        assert self.engine is not None
        return self.engine.process(item.payload)

    def on_param(self, name: str, value: Any) -> None:
        if self.engine is not None:
            self.engine.set_param(name, value)


def live_workers() -> list[Worker]:
    with _live_lock:
        return list(_live)


def shutdown_all(timeout_ms: int = 3000) -> list[str]:
    """Stop every live worker (cancel, release, join). Returns the names that did not stop."""
    stuck = []
    for worker in live_workers():
        if not worker.stop(timeout_ms):
            stuck.append(worker.name)
    return stuck
