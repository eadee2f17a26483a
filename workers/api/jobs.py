"""Long files as jobs: a request with ``job=true`` is answered at once with a job (202); the work
runs on a thread of its own, and the job says its progress, can be cancelled, and keeps its result
(a file, or text) until it is fetched or removed.

Jobs are bounded: at most :data:`MAX_RUNNING` run at the same time (the others wait, queued), and
at most :data:`MAX_KEPT` finished ones are kept (the oldest is removed with its files).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.errors import Cancelled, UserError, describe_exception

log = logging.getLogger(__name__)

MAX_RUNNING = 2
MAX_KEPT = 32
MAX_WAITING = 64


@dataclass
class JobResult:
    """What a finished job gives: a file (``path``) or text (``text``), with its media type."""

    media_type: str
    path: Path | None = None
    text: str | None = None
    filename: str = ""


@dataclass
class Job:
    id: str
    kind: str
    status: str = "queued"  # queued, running, succeeded, failed, cancelled
    done: int = 0
    total: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    result: JobResult | None = None
    workdir: Path | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def progress(self) -> float:
        if self.status == "succeeded":
            return 1.0
        return round(self.done / self.total, 4) if self.total > 0 else 0.0

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def report(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "job",
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress,
            "error": self.error or None,
            "notes": self.notes,
            "created": int(self.created),
            "finished": int(self.finished) if self.finished else None,
            "result_url": f"/v1/jobs/{self.id}/result" if self.status == "succeeded" else None,
        }


class JobQueue:
    """The server's jobs, run by a small pool of threads."""

    def __init__(self, max_running: int = MAX_RUNNING, max_kept: int = MAX_KEPT) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_running, thread_name_prefix="api-job")
        self._max_kept = max_kept
        self._closed = False

    def submit(self, kind: str, work: Callable[[Job], JobResult], workdir: Path | None = None) -> Job:
        """Queue ``work(job)``; it reports progress with ``job.report`` and checks ``job.cancelled()``."""
        job = Job(uuid.uuid4().hex, kind, workdir=workdir)
        with self._lock:
            if self._closed:
                raise UserError("The server is shutting down; send the job again once it is back.")
            waiting = sum(1 for j in self._jobs.values() if j.status in ("queued", "running"))
            if waiting >= MAX_WAITING:
                raise UserError(f"{waiting} jobs are already waiting; send this one when some have finished.")
            self._jobs[job.id] = job
            self._trim()
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], JobResult]) -> None:
        if job.cancelled():
            self._finish(job, "cancelled")
            return
        job.status = "running"
        try:
            job.result = work(job)
            self._finish(job, "cancelled" if job.cancelled() else "succeeded")
        except Cancelled:
            self._finish(job, "cancelled")
        except UserError as exc:
            job.error = str(exc)
            self._finish(job, "failed")
        except Exception as exc:  # a sentence for the client; the traceback goes to the log
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.error = describe_exception(exc, f"The {job.kind} job failed")
            self._finish(job, "failed")

    def _finish(self, job: Job, status: str) -> None:
        job.status = status
        job.finished = time.time()
        if status != "succeeded" or job.result is None:
            job.result = None
            _remove(job.workdir)
        else:
            _keep_only(job.workdir, job.result.path)  # the uploads go; the result stays until fetched and removed

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j.status not in ("queued", "running")]
        while len(self._jobs) > self._max_kept and finished:
            old = finished.pop(0)
            self._jobs.pop(old.id, None)
            _remove(old.workdir)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel_event.set()
        if job.status == "queued":
            self._finish(job, "cancelled")
        return job

    def remove(self, job_id: str) -> Job:
        """Cancel a job if it still runs, and forget it with its files."""
        job = self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)
        if job.status not in ("queued", "running"):
            _remove(job.workdir)
        return job

    def active(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status in ("queued", "running"))

    def cancel_all(self) -> None:
        """Ask every job to stop (they end at their next check) and take no new ones; waits for none."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_event.set()

    def close(self, wait: bool = True) -> None:
        """Cancel every job and (``wait``) let the running ones end; their files are removed."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_event.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for job in jobs:
            if job.status == "queued":
                self._finish(job, "cancelled")
            _remove(job.workdir)


def _keep_only(folder: Path | None, keep: Path | None) -> None:
    if folder is None:
        return
    if keep is None:
        _remove(folder)
        return
    for item in folder.rglob("*"):
        if item.is_file() and item != keep:
            item.unlink(missing_ok=True)


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
