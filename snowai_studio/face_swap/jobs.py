"""The face-swap page's worker and its jobs: the worker is built when first needed, every job is
booked under its kind ("source", "image", "save", "video"...), and its end goes to the handlers the
page registered for that kind. The job runner under the preview shows the job that matters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Slot

from snowai_studio.panels.job_runner import JobRunner
from workers.errors import describe_exception

log = logging.getLogger(__name__)

#: The kinds of job the runner shows (the others are quick and show nothing).
SHOWN = ("source", "image", "video")
#: The kinds Cancel stops.
CANCELLABLE = ("image", "video")


@dataclass
class Job:
    kind: str
    label: str = ""
    total: int = 0
    extra: Any = None
    #: Shown in the job runner (a re-render of the preview is not).
    shown: bool = True


@dataclass
class Handlers:
    done: Callable[[Job, Any], Any] | None = None
    failed: Callable[[Job, str], Any] | None = None
    cancelled: Callable[[Job], Any] | None = None


class FaceJobs(QObject):
    """Owns the :class:`~workers.face_swap.worker.FaceSwapWorker` (``make_worker`` builds it, ``wire``
    connects the page to it) and the jobs submitted to it; ``ended(kind, ok)`` is called after each.
    A failure without a handler of its own goes to ``report`` (the page's message line)."""

    def __init__(
        self,
        runner: JobRunner,
        make_worker: Callable[[], Any],
        wire: Callable[[Any], None],
        ended: Callable[[str, bool], None],
        report: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self._make_worker = make_worker
        self._wire = wire
        self._ended = ended
        self._report = report
        self._jobs: dict[int, Job] = {}
        self._handlers: dict[str, Handlers] = {}
        self._shown: Job | None = None
        self.worker: Any = None
        self.worker_key: Any = None
        #: Called with each new worker, before the job that needed it (the page gives it the faces again).
        self.replaced: Callable[[Any], None] | None = None

    def on(self, kind: str, done: Any = None, failed: Any = None, cancelled: Any = None) -> None:
        self._handlers[kind] = Handlers(done, failed, cancelled)

    # ---- the worker ---------------------------------------------------------------------------------
    def ensure_worker(self, key: Any = None) -> Any:
        """The worker, built (and started) when there is none or when ``key`` (the model store) changed."""
        worker = self.worker
        if worker is not None and self.worker_key is not key:
            self.retire(quietly=False)
            worker = None
        if worker is None:
            worker = self._make_worker()
            worker.job_finished.connect(self._on_finished)
            worker.job_failed.connect(self._on_failed)
            worker.job_cancelled.connect(self._on_cancelled)
            worker.progress.connect(self._on_progress)
            self._wire(worker)
            worker.start()
            self.worker, self.worker_key = worker, key
            if self.replaced is not None:
                self.replaced(worker)
        return worker

    def retire(self, *, quietly: bool = True) -> None:
        """Stop the worker (its thread joined) and forget its jobs; unless ``quietly`` (the page is
        closing), each job left is ended as cancelled."""
        worker, self.worker = self.worker, None
        left = list(self._jobs.values())
        self._jobs.clear()
        self._update()
        if worker is not None:
            worker.stop()
        for job in [] if quietly else left:
            self._call(job, "cancelled")
            self._ended(job.kind, False)

    # ---- jobs -----------------------------------------------------------------------------------------
    def start(self, kind: str, submit: Callable[[Any], int], *, key: Any = None, label: str = "", total: int = 0,
              extra: Any = None, shown: bool = True) -> int:
        return self.book(kind, submit(self.ensure_worker(key)), label=label, total=total, extra=extra, shown=shown)

    def book(self, kind: str, job_id: int, *, label: str = "", total: int = 0, extra: Any = None,
             shown: bool = True) -> int:
        """Keep a job submitted to the worker under its kind, so that its end reaches the handlers."""
        self._jobs[job_id] = Job(kind, label, total, extra, shown and kind in SHOWN)
        self._update()
        return job_id

    def busy_with(self, *kinds: str) -> bool:
        return any(j.kind in kinds for j in self._jobs.values())

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def cancel(self) -> bool:
        """Cancel the image and video jobs (and every other job queued with them)."""
        if self.worker is None or not self.busy_with(*CANCELLABLE, "source"):
            return False
        self.worker.cancel()
        return True

    def _take(self, job_id: int) -> Job | None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._update()
        return job

    def _call(self, job: Job, name: str, *args: Any) -> None:
        handler = getattr(self._handlers.get(job.kind, Handlers()), name)
        if handler is None:
            if name == "failed":
                self._report(*args)  # the worker's sentence, on the page's message line
            return
        try:
            handler(job, *args)
        except Exception as exc:  # a bug in a handler must not take the page down
            message = describe_exception(exc, "Face swap")
            log.error("%s", message, exc_info=exc)
            self._report(message)

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: Any) -> None:
        job = self._take(job_id)
        if job is not None:
            self._call(job, "done", result)
            self._ended(job.kind, True)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        job = self._take(job_id)
        if job is not None:
            self._call(job, "failed", message)
            self._ended(job.kind, False)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        job = self._take(job_id)
        if job is not None:
            self._call(job, "cancelled")
            self._ended(job.kind, False)

    # ---- the job runner ---------------------------------------------------------------------------------
    def _update(self) -> None:
        shown = [j for j in self._jobs.values() if j.shown]
        if not shown:
            self._shown = None
            if self.runner.running:
                self.runner.finish()
            return
        job = shown[-1]
        if job is self._shown:
            return
        self._shown = job
        self.runner.start(job.label, job.total, cancellable=job.kind in CANCELLABLE)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        job = self._shown
        if job is not None and job.kind == "video" and total > 0:
            self.runner.set_progress(done, total)
