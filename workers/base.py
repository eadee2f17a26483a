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
``stats(dict)``. An exception inside a worker becomes an ``error`` signal with a readable sentence
(a full disk always reads "The disk is full: …"); it never reaches the UI thread as a crash. Cancel
is cooperative: :meth:`Worker.cancel` bumps a generation counter that every running job polls.
:func:`shutdown_all` stops every live worker, joins its thread and releases its devices.

Failing streams are bounded, the same way for every worker:

- a stream item that fails gives one ``error``; the failures that follow it within the window do not
  (they go to the log), so a model that fails on every frame never floods the notifications;
- after :attr:`Worker.max_consecutive_failures` failures in a row (or
  :attr:`Worker.max_window_failures` among the last :attr:`Worker.failure_window` items) the worker
  restarts its engine once (:meth:`Worker.recover`); if that is not possible or the failures go on,
  it halts the stream: one ``error`` and one ``stream_halted(sentence)``, later items are dropped
  until :meth:`Worker.resume_stream` (a Retry button) is called. Jobs keep working;
- a source loop (a camera, a microphone) whose :meth:`Worker.step` raises ends with one ``error``
  and one ``stream_halted``.

Model files are watched: :meth:`Worker.watched_files` names the files the loaded models came from;
about once a second (and before each job) they are compared with what was loaded. A removed file is
reported once (the copy in memory stays in use); a changed one is loaded again
(:meth:`Worker.reload_models`), or reported when it cannot be.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from PySide6.QtCore import QMetaObject, QObject, Qt, QThread, QTimer, Signal, Slot

from workers.engine import Engine
from workers.errors import Cancelled, UserError, describe_exception
from workers.files import disk_full_sentence, is_disk_full
from workers.media.openmp import release_openmp_threads
from workers.queues import DropOldestQueue, LatestValue, StreamItem, StreamResult
from workers.stage_timer import StageTimer
from workers.thread_state import ThreadStateHold

log = logging.getLogger(__name__)

_job_ids = itertools.count(1)
_live: list[Worker] = []
_live_lock = threading.Lock()


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
    #: The live stream stopped because of a failure (the sentence); items are dropped until
    #: :meth:`resume_stream`. A dock shows it with a Retry button.
    stream_halted = Signal(str)

    _submit_requested = Signal(int, int, object)
    _wake_requested = Signal()
    _param_requested = Signal(str, object)
    _loop_requested = Signal()

    #: Shown in messages ("Camera: the device is busy.").
    name: ClassVar[str] = "Worker"
    #: Stream queue length; 1-2 keeps live latency low.
    queue_size: ClassVar[int] = 2
    #: Seconds between two ``stats`` emissions.
    stats_interval: ClassVar[float] = 0.5
    #: The same error message is not repeated within this many seconds (a stream failing on
    #: every frame must not bury the log).
    repeat_error_after: ClassVar[float] = 5.0
    #: Stream items that may fail in a row before the engine is restarted (once) or the stream halted.
    max_consecutive_failures: ClassVar[int] = 5
    #: ...or this many failures among the last ``failure_window`` items (a stream that fails every
    #: other frame).
    max_window_failures: ClassVar[int] = 10
    failure_window: ClassVar[int] = 20
    #: Seconds between two checks of :meth:`watched_files` (0 turns the watch off).
    watch_interval: ClassVar[float] = 1.0

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = "idle"
        self.params: dict[str, Any] = {}
        self.timer = StageTimer()
        self.latest: LatestValue[Any] = LatestValue()
        self._queue: DropOldestQueue[StreamItem] = DropOldestQueue(self.queue_size)
        self._thread: QThread | None = None
        self._thread_state: ThreadStateHold | None = None
        self._cancel_generation = 0
        self._stopping = False
        self._load_error: str | None = None
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._looping = False
        self._last_stats = 0.0
        self._recent_errors: dict[str, float] = {}
        self._fail_streak = 0
        self._outcomes: deque[bool] = deque(maxlen=max(1, self.failure_window))
        self._recovered = False
        self._halted: str | None = None
        self._file_stamps: dict[Path, tuple[int, int, int] | None] = {}
        self._reported_missing: set[Path] = set()
        self._last_watch = 0.0
        self._watch_timer: QTimer | None = None
        self._submit_requested.connect(self._run_job)
        self._wake_requested.connect(self._drain)
        self._param_requested.connect(self._apply_param)
        # Every connection is made here, never on the worker's thread: a connect() there (GIL held, waiting for
        # Qt's lock) and a disconnect() on the UI thread (lock held, waiting for the GIL) hang both for good.
        self._loop_requested.connect(self._loop_step, Qt.ConnectionType.QueuedConnection)

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

    def interrupt(self) -> None:
        """Wake the worker's thread from a device wait (called by :meth:`stop` from the caller's
        thread, before it waits for the thread): a source worker breaks out of an ``open`` or a
        ``read`` that hangs. Must be safe to call from any thread."""

    def recover(self) -> bool:
        """Restart the engine after a run of failed stream items (worker thread). Return True when a
        fresh engine is in place; the default cannot restart anything."""
        return False

    def watched_files(self) -> list[Path]:
        """The files the loaded models were read from (worker thread); see :meth:`reload_models`."""
        return []

    def reload_models(self, changed: list[Path]) -> bool:
        """A watched file changed on disk: load the models again (worker thread). Return True when
        the new file is in use; raise (a UserError sentence) when it cannot be loaded, keeping the
        models loaded before. The default restarts the engine (:meth:`recover`)."""
        return self.recover()

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
        watches = type(self).watched_files is not Worker.watched_files
        if watches and self.watch_interval > 0 and self._watch_timer is None:
            timer = QTimer(self)  # a child: it moves to the worker's thread with the worker
            timer.setInterval(max(50, int(self.watch_interval * 1000)))
            timer.timeout.connect(self._watch_tick)
            self._watch_timer = timer
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
        try:
            self.interrupt()
        except Exception as exc:  # waking a device must never keep the window from closing
            log.debug("%s: interrupt failed: %s", self.name, exc)
        if thread.isRunning():
            # A posted call, not a signal: it reaches a worker whose owner blocked its signals.
            QMetaObject.invokeMethod(self, "_shutdown", Qt.ConnectionType.QueuedConnection)
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
        if self._halted is not None:
            return 0  # the stream was halted after repeated failures: nothing is queued until resumed
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

    @property
    def halted(self) -> str | None:
        """Why the stream was halted (the sentence of ``stream_halted``), or None while it runs."""
        return self._halted

    def resume_stream(self) -> None:
        """Take stream items again after a halt (a Retry button), with a fresh failure count and one
        more engine restart allowed. Callable from any thread."""
        self._fail_streak = 0
        self._outcomes.clear()
        self._recovered = False
        self._halted = None

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

    def describe_error(self, exc: BaseException, what: str | None = None) -> str:
        """The sentence for an exception, prefixed with ``what`` (None: the worker's name; "": no
        prefix); a full disk reads "The disk is full: …" whatever library raised it."""
        context = self.name if what is None else what
        if is_disk_full(exc) and not isinstance(exc, Cancelled):
            detail = str(exc) if isinstance(exc, UserError) else ""
            return f"{context}: {disk_full_sentence(detail)}" if context else disk_full_sentence(detail)
        return describe_exception(exc, context)

    def report(self, exc: BaseException, what: str = "") -> str:
        """Log an exception (with its traceback) and emit it as a readable ``error``."""
        message = self.describe_error(exc, what or None)
        self._emit_error(message, exc)  # the traceback goes to the log file; the panel shows the sentence
        return message

    @Slot()
    def _on_started(self) -> None:
        self._thread_state = ThreadStateHold()
        threading.current_thread().name = self.name  # readable thread names in the log
        self._set_state("loading")
        try:
            self.load()
        except BaseException as exc:
            if self._stopping:  # stopped while opening: nothing to tell the user
                self._load_error = self.describe_error(exc, f"{self.name} could not start")
                log.info("%s", self._load_error)
            else:
                self._load_error = self.report(exc, f"{self.name} could not start")
            self._set_state("failed")
            return
        release_openmp_threads()  # the models are loaded: this thread's OpenMP workers go (workers/media/openmp.py)
        self._set_state("ready")
        self.ready.emit()
        self._start_watch()
        if len(self._queue):
            self._request_wake()
        if self._looping:
            self._loop_requested.emit()

    @Slot()
    def _loop_step(self) -> None:
        if self._stopping or self.state != "ready":
            return
        try:
            more = self.step()
        except BaseException as exc:
            if self._stopping:
                log.info("%s", self.describe_error(exc))
                return
            message = self.report(exc)
            self._halted = message
            self.stream_halted.emit(message)
            more = False
        self._maybe_emit_stats()
        if more and not self._stopping:
            self._loop_requested.emit()
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
            self.check_model_files(force=True)
            result = job(ctx)
        except Cancelled:
            self.job_cancelled.emit(job_id)
        except BaseException as exc:
            self.job_failed.emit(job_id, self.report(exc))
        else:
            self.job_finished.emit(job_id, result)
        finally:
            release_openmp_threads()  # idle until the next job: other threads get the cores' full speed
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
        if self._stopping or self._load_error is not None or self._halted is not None:
            self._queue.clear()
            return
        item = self._queue.get_nowait()
        if item is not None:
            self.process_item(item)
        if len(self._queue):
            self._request_wake()  # let queued parameter changes and stop requests in first

    def process_item(self, item: StreamItem) -> None:
        """Run :meth:`process` on one item and publish the result (worker thread)."""
        if self._halted is not None:
            return
        try:
            payload = self.process(item)
        except BaseException as exc:
            self._stream_failed(exc)
            return
        self._fail_streak = 0
        self._outcomes.append(True)
        if payload is None:
            return
        result = payload if isinstance(payload, StreamResult) else StreamResult(payload, item.timestamp, item.seq)
        self.timer.add_item(result.latency_ms)
        self.publish(result)
        self._maybe_emit_stats()

    # ---- the failure policy of streams (worker thread) -----------------------------------------
    def _stream_failed(self, exc: BaseException) -> None:
        """One stream item failed: report the first failure of a run, restart the engine once when
        the failures go on, then halt the stream (see the module's docstring)."""
        first = False not in self._outcomes
        self._fail_streak += 1
        self._outcomes.append(False)
        if first:
            message = self.report(exc)
        else:
            message = self.describe_error(exc)
            log.info("%s (%d failures in a row)", message, self._fail_streak, extra={"source": self.name})
        failures = sum(1 for ok in self._outcomes if not ok)
        if self._fail_streak < self.max_consecutive_failures and failures < self.max_window_failures:
            return
        count = self._fail_streak if self._fail_streak >= self.max_consecutive_failures else failures
        reason = message
        if not self._recovered:
            self._recovered = True
            log.info("%s failed on %d items; restarting its engine", self.name, count)
            try:
                restarted = self.recover()
            except BaseException as rexc:
                restarted = False
                reason = self.describe_error(rexc, f"{self.name} could not restart")
                log.info("%s", reason, exc_info=not isinstance(rexc, UserError))
            if restarted:
                self._fail_streak = 0  # the failures stay in the window: no second error unless it recovers
                return
        self._halt_stream(reason, count)

    def _halt_stream(self, reason: str, count: int) -> None:
        prefix = f"{self.name}: "
        sentence = reason[len(prefix) :] if reason.startswith(prefix) else reason
        text = f"{prefix}The live stream stopped after {count} failures: {sentence}"
        self._halted = text
        self._queue.clear()
        self._emit_error(text)
        self.stream_halted.emit(text)

    # ---- model files (worker thread) -----------------------------------------------------------
    @staticmethod
    def _file_label(path: Path) -> str:
        """``tiny.onnx``, or ``whisper-tiny/model.bin`` for the generic names inside model folders."""
        generic = {"model.bin", "config.json", "model.onnx", "model.safetensors", "pytorch_model.bin"}
        return f"{path.parent.name}/{path.name}" if path.name.lower() in generic and path.parent.name else path.name

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _start_watch(self) -> None:
        self.remember_model_files()
        timer = self._watch_timer
        if timer is not None and not timer.isActive():
            timer.start()

    @Slot()
    def _watch_tick(self) -> None:
        self.check_model_files()

    def remember_model_files(self) -> None:
        """Take the current state of :meth:`watched_files` as the loaded one (after a load)."""
        try:
            paths = [Path(p) for p in self.watched_files()]
        except Exception as exc:
            log.debug("%s: no model files to watch: %s", self.name, exc)
            paths = []
        self._file_stamps = {p: self._stamp(p) for p in paths}
        self._reported_missing -= set(paths)

    def check_model_files(self, force: bool = False) -> bool:
        """Compare the watched model files with what was loaded; a removed file is reported once,
        a changed one loaded again (worker thread). True when the models were loaded again."""
        now = time.monotonic()
        if self._stopping or (not force and now - self._last_watch < self.watch_interval):
            return False
        self._last_watch = now
        try:
            paths = [Path(p) for p in self.watched_files()]
        except Exception as exc:
            log.debug("%s: no model files to watch: %s", self.name, exc)
            return False
        changed: list[Path] = []
        for path in paths:
            stamp = self._stamp(path)
            if path not in self._file_stamps:
                self._file_stamps[path] = stamp  # a model chosen since: its state now is the loaded one
                continue
            before = self._file_stamps[path]
            if stamp is None:
                if path not in self._reported_missing:
                    self._reported_missing.add(path)
                    self._emit_warning(
                        f"{self.name}: the model file {self._file_label(path)} was removed or moved. The copy "
                        "already loaded stays in use, but it cannot be loaded again until the file is back."
                    )
                continue
            if path in self._reported_missing:
                self._reported_missing.discard(path)
            if stamp != before:
                changed.append(path)
        if not changed:
            return False
        names = ", ".join(self._file_label(p) for p in changed)
        log.info("%s: %s changed on disk; loading it again", self.name, names)
        try:
            reloaded = self.reload_models(changed)
        except BaseException as exc:
            for path in changed:
                self._file_stamps[path] = self._stamp(path)  # reported once, not every second
            sentence = self.describe_error(exc, "")
            self._emit_warning(
                f"{self.name}: {names} changed on disk and could not be loaded again ({sentence.rstrip('.')}). "
                "The model loaded before stays in use."
            )
            return False
        if reloaded:
            self.remember_model_files()
            self._emit_warning(f"{self.name}: {names} changed on disk and was loaded again.")
        else:
            for path in changed:
                self._file_stamps[path] = self._stamp(path)
        return bool(reloaded)

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
        if self._watch_timer is not None:
            self._watch_timer.stop()
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

    def recover(self) -> bool:
        """A fresh engine from the factory replaces the one that kept failing (parameters re-applied)."""
        engine = self._factory()
        engine.load()
        for name, value in self.params.items():
            engine.set_param(name, value)
        old, self.engine = self.engine, engine
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                log.debug("closing a failed engine: %s", exc)
        return True

    def process(self, item: StreamItem) -> Any:
        assert self.engine is not None
        return self.engine.process(item.payload)

    def on_param(self, name: str, value: Any) -> None:
        if self.engine is not None:
            self.engine.set_param(name, value)


def live_workers() -> list[Worker]:
    with _live_lock:
        return list(_live)


def shutdown_all(timeout_ms: int = 3000, grace_ms: int = 30000) -> list[str]:
    """Stop every live worker (cancel, release, join). Returns the names that did not stop.

    A job that cannot be cancelled (a library import, a device probe) may outlast ``timeout_ms``:
    such threads get up to ``grace_ms`` more to end, because a Qt thread destroyed while it still
    runs aborts the whole process (the window would close with a crash instead of cleanly).
    """
    stuck = [worker for worker in live_workers() if not worker.stop(timeout_ms)]
    for worker in stuck:
        thread = worker._thread
        if thread is not None and thread.wait(grace_ms):
            with _live_lock:
                if worker in _live:
                    _live.remove(worker)
    return [worker.name for worker in stuck if worker in live_workers()]
