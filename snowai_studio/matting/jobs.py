"""The background-removal page's jobs: what each running job is, where its result goes, and the one
job the shared job runner shows (with its progress, the time left and Cancel).

Jobs run on three workers: the model's (remove, batch, video), the page's helper (open an image,
refine, background previews, exports) and a thumbnail maker. Their results arrive here by job id.
A video shows its frames done and the frames a second in the job runner's label ("Frame 120 of 480
· 14 fps"); the job runner adds the time left.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snowai_studio.matting.state import ImageEntry
from workers.base import Worker
from workers.errors import UserError, describe_exception

log = logging.getLogger(__name__)

#: Jobs the job runner shows, newest first; the others finish too quickly to need it.
SHOWN = ("remove", "refine", "batch", "video")
#: Jobs that run on the model's worker (its cancel stops them).
ON_MODEL = ("remove", "batch", "video")


@dataclass
class Job:
    kind: str  # load | thumb | remove | refine | export | layer | batch | video
    entry: ImageEntry | None = None
    extra: Any = None
    ignored: bool = False
    #: What the job runner says while this job runs, and its step count (0: busy, no count).
    label: str = ""
    total: int = 0
    #: What the label names while the job counts frames (a video: its file name).
    name: str = ""


class FrameRate:
    """Frames a second of a running job, over its last few seconds of progress."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 3.0) -> None:
        self.clock = clock
        self.window = float(window)
        self._samples: deque[tuple[float, int]] = deque()

    def restart(self) -> None:
        self._samples.clear()

    def add(self, done: int) -> float | None:
        """Record ``done`` frames now; the rate, once half a second of progress was seen (else None)."""
        now = self.clock()
        samples = self._samples
        if samples and done < samples[-1][1]:
            samples.clear()  # a new job
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        t0, d0 = samples[0]
        if now - t0 < 0.5 or done <= d0:
            return None
        return (done - d0) / (now - t0)


def frames_label(name: str, done: int, total: int, fps: float | None) -> str:
    """'clip.mp4: Frame 120 of 480 · 14 fps' (the rate once it is known)."""
    text = f"{name}: Frame {done} of {total}" if name else f"Frame {done} of {total}"
    if fps:
        text += f" · {fps:.1f} fps" if fps < 9.95 else f" · {fps:.0f} fps"
    return text


def strip_source(message: str) -> str:
    """Job errors arrive as "Background removal: <sentence>"; the page shows the sentence."""
    prefix = "Background removal: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class JobsMixin:
    """Tracks the page's jobs (``self._jobs``) and routes their results to ``_done_<kind>``.

    The page's mixins carry no ``@Slot`` decorators: PySide6 calls a decorated method of a plain
    mixin directly on the emitting worker's thread, while an undecorated bound method of the page is
    queued to the UI thread like any slot of a QObject.
    """

    _jobs: dict[int, Job]
    _runner_job: Job | None
    #: The frame rate of the running video (made by the page; its clock can be replaced in tests).
    frame_rate: FrameRate

    def _start_helper(self, name: str) -> Worker:
        worker = Worker()
        worker.name = name
        self._connect_jobs(worker)
        worker.start()
        return worker

    def _connect_jobs(self, worker: Any) -> None:
        worker.job_finished.connect(self._on_job_finished)
        worker.job_failed.connect(self._on_job_failed)
        worker.job_cancelled.connect(self._on_job_cancelled)

    # ---- results ------------------------------------------------------------------------------------
    def _take_job(self, job_id: int) -> Job | None:
        """The job ``job_id`` ended: forget it; None when it was not ours or its result is ignored."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        self._finish_job(job_id)
        return None if job.ignored else job

    def _on_job_finished(self, job_id: int, result: Any) -> None:
        job = self._take_job(job_id)
        if job is None:
            return
        try:
            getattr(self, f"_done_{job.kind}")(job, result)
        except Exception as exc:  # a bug here must not take the page down
            text = describe_exception(exc, "Background removal")
            log.error("%s", text, exc_info=exc, extra={"source": "Background removal"})
            self.show_message(strip_source(text), "error", notify=False)
        # Everything that depended on the job (Batch, Video, Live, Export...) is usable again now.
        self._update_actions()
        self.job_done.emit(job.kind, True)

    def _on_job_failed(self, job_id: int, message: str) -> None:
        job = self._take_job(job_id)
        if job is None:
            return
        self._end_entry_job(job)
        entry, text = job.entry, strip_source(message)
        if job.kind == "load" and entry is not None:
            entry.loading = False
            entry.error = message
            if entry is self.current:
                self.canvas.set_placeholder(text)
            self.show_message(text, "error", notify=False)
        elif job.kind == "export":
            self.show_message(f"{text} Your edits are kept; export again elsewhere.", "error", notify=False)
        elif job.kind == "layer":
            self.show_message(text, "warning", notify=False)
        elif job.kind != "thumb":
            self.show_message(text, "error", notify=False)
        self._update_actions()
        self.job_done.emit(job.kind, False)

    def _on_job_cancelled(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        self._finish_job(job_id)
        self._end_entry_job(job)
        if job.kind in ON_MODEL:
            self.show_message("Cancelled." if job.kind != "video" else "Cancelled; no video file was written.")
        self._update_actions()
        self.job_done.emit(job.kind, False)

    def _finish_job(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self._update_busy()

    def _end_entry_job(self, job: Job) -> None:
        entry = job.entry
        if entry is not None and job.kind in ("remove", "refine") and entry.busy == job.kind:
            entry.busy = ""
            if job.kind == "refine":
                self.canvas.editable = True
            if entry is self.current:
                self._update_hint()

    def _done_thumb(self, job: Job, rgb: np.ndarray | str) -> None:
        entry = job.entry
        assert entry is not None
        item = self.thumbs.item_of(entry.key)
        if item is None:
            return
        if isinstance(rgb, str):
            item.setIcon(self.skipped.warning_icon)
            item.setToolTip(f"{entry.path}\n{rgb}")
        else:
            self.thumbs.set_picture(item, rgb)

    def _done_load(self, job: Job, image: Any) -> None:
        entry = job.entry
        assert entry is not None
        entry.loading = False
        entry.error = ""
        entry.image = image
        if entry is not self.current:
            entry.drop_pixels()
            return
        self._show_entry(entry)
        if entry.alpha is None:
            note = getattr(image, "note", "")
            extra = f" ({note})" if note else ""
            size = f"{image.bgr.shape[1]}×{image.bgr.shape[0]}"
            self.show_message(f"{entry.name}: {size}{extra}. Press Remove background.")

    def _done_remove(self, job: Job, result: Any) -> None:
        entry = job.entry
        assert entry is not None
        self._end_entry_job(job)
        alpha = np.asarray(result.alpha)
        if entry.image is None:
            entry.image = result.image
        if alpha.shape != entry.image.bgr.shape[:2]:
            raise UserError(f"The model returned a mask of the wrong size for {entry.name}.")
        entry.set_result(alpha, str(result.model))
        self._mark_unsaved(entry)
        if entry is self.current:
            self.canvas.set_alpha(entry.alpha)
            self._update_hint()
            self.image_changed.emit()
        self.show_message(f"{entry.name}: background removed with {result.model} in {result.ms:.0f} ms.")

    def _done_refine(self, job: Job, alpha: np.ndarray) -> None:
        entry = job.entry
        assert entry is not None
        self._end_entry_job(job)
        entry.set_refined(alpha)
        self._mark_unsaved(entry)
        if entry is self.current:
            self.canvas.set_alpha(entry.alpha)
            self.image_changed.emit()
        self.show_message(f"{entry.name}: edges refined. Undo (Ctrl+Z) brings the previous mask back.")

    def _done_layer(self, job: Job, layer: np.ndarray) -> None:
        if job.extra != self._layer_generation or job.entry is not self.current:
            return  # the background or the image changed meanwhile
        self.canvas.set_background_layer(layer)

    def _done_export(self, job: Job, path: Path) -> None:
        entry = job.entry
        assert entry is not None
        version, note = job.extra
        entry.saved_version = version
        entry.exported_to = Path(path)
        self._mark_unsaved(entry)
        self.show_message(f"Saved {Path(path).name} in {Path(path).parent}.{note}")

    # ---- the job runner -----------------------------------------------------------------------------
    def _busy_with(self, *kinds: str) -> bool:
        return any(j.kind in kinds for j in self._jobs.values())

    def _update_busy(self) -> None:
        """Show the newest running job that has a progress in the job runner, or end it."""
        shown = [j for j in self._jobs.values() if j.kind in SHOWN]
        runner = self.job_runner
        if not shown:
            self._runner_job = None
            if runner.running:
                runner.finish()
            return
        job = shown[-1]
        if job is self._runner_job:
            return
        self._runner_job = job
        runner.start(job.label, job.total)
        runner.bar.setFormat("%p%" if job.kind == "video" else "%v of %m" if job.total else "")

    def _on_progress(self, done: int, total: int) -> None:
        job = self._runner_job
        if job is not None and job.kind in ("batch", "video") and total > 0:
            self.job_runner.set_progress(done, total)
            if job.kind == "video":
                self.job_runner.set_label(frames_label(job.name, done, total, self.frame_rate.add(done)))

    def cancel(self) -> None:
        """Stop the running batch, video, removal or refinement; finished work is kept."""
        cancelled = False
        for job_id, job in list(self._jobs.items()):
            if job.kind in ON_MODEL:
                cancelled = True
            elif job.kind == "refine":
                job.ignored = True
                self._end_entry_job(job)
                self._finish_job(job_id)
                cancelled = True
        if cancelled and self._matting is not None:
            self._matting.cancel()
        if cancelled:
            self.show_message("Cancelling…")
        self._update_busy()
        self._update_actions()
