"""The faces of the face-swap page: the source photos (the face to put in, read on the worker's
thread and remembered for the next session) and the reference photo (the one person to replace)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from snowai_studio.face_swap.inspector_sections import NO_SOURCE
from snowai_studio.face_swap.jobs import Job
from snowai_studio.face_swap.still_preview import IMAGE_FILTER
from snowai_studio.tool_dock import pictures_dir

if TYPE_CHECKING:
    from snowai_studio.face_swap.page import FaceSwapPage


class SourceFaces(QObject):
    """``summary`` (a :class:`~workers.face_swap.worker.SourceSummary`, None until a face is read)
    and ``reference`` (the reference photo's path)."""

    def __init__(self, page: FaceSwapPage) -> None:
        super().__init__(page)
        self.page = page
        self.summary: Any = None
        self.reference: Path | None = None
        jobs = page.jobs
        jobs.on("source", self._done, self._failed, self._failed)
        jobs.on("clear", lambda _job, _result: page.show_message(
            "The source face was cleared: the camera picture is shown untouched."))
        jobs.on("reference", self._done_reference, self._failed_reference)
        jobs.replaced = self._resend

    def _resend(self, worker: Any) -> None:
        """A new worker (the models folder changed, or the last one could not start) gets the faces again."""
        if self.summary is not None:
            paths = list(self.summary.paths)
            self.page.jobs.book("source", worker.set_source(paths), extra=(paths, False), shown=False)
        if self.reference is not None:
            self.page.jobs.book("reference", worker.set_reference(self.reference), extra=self.reference)

    @property
    def section(self) -> Any:
        return self.page.source_section

    # ---- the source photos ----------------------------------------------------------------------------------
    def choose(self, paths: Iterable[str | Path] | None = None, *, remember: bool = True) -> int | None:
        """Use the face in these photos (one person; several photos are averaged). Returns the job id."""
        page = self.page
        if not page.ensure_consent():
            return None
        if paths is None:
            paths, _ = QFileDialog.getOpenFileNames(page, "Choose photos of the face to use", pictures_dir(),
                                                    IMAGE_FILTER)
        chosen = [Path(p).expanduser() for p in paths]
        if not chosen:
            return None
        missing = [p for p in chosen if not p.is_file()]
        if missing:
            if missing[0].is_dir():
                page.show_message(f"{missing[0].name} is a folder; choose the photos inside it.", "warning")
            else:
                page.show_message(f"The photo {missing[0]} was not found.", "warning")
            return None
        self.section.label.setText(f"Looking for the face in {', '.join(p.name for p in chosen)}…")
        return page.jobs.start("source", lambda w: w.set_source(chosen), key=page.store,
                               label="Reading the source face…", extra=(chosen, remember))

    def _done(self, job: Job, summary: Any) -> None:
        page = self.page
        chosen, remember = job.extra
        self.summary = summary
        self.section.show_summary(summary, page.options.face_map)
        if remember:
            page.context.settings.face_swap.last_source = [str(p) for p in chosen]
            page.save_settings()
        page.refresh_engine()
        page.still.schedule()
        ready = "It is swapped live now." if page.live.running else "Open an image or a video, or press Live."
        page.show_message(f"{summary.describe()} {ready}")

    def _failed(self, job: Job, message: str | None = None) -> None:
        self.section.label.setText(NO_SOURCE if self.summary is None else self.summary.describe())
        if message is not None:  # (None: cancelled)
            self.page.report(message)
            self.page.refresh_engine()

    def clear(self) -> int | None:
        """Forget the source face (the live picture goes back to the untouched camera)."""
        page = self.page
        self.summary = None
        self.section.forget()
        page.still.forget()
        page.context.settings.face_swap.last_source = []
        page.save_settings()
        page.update_state()
        if page.jobs.worker is None:
            return None
        return page.jobs.start("clear", lambda w: w.clear_source(), key=page.store)

    def restore(self) -> None:
        """Reopen the source photos of the last session (only once the terms were accepted)."""
        page = self.page
        if page.closing or not page.consent_accepted or self.summary is not None:
            return
        saved = page.context.settings.face_swap.last_source
        paths = [Path(p) for p in saved if isinstance(p, str)] if isinstance(saved, list) else []
        paths = [p for p in paths if p.is_file()]
        if paths:
            self.choose(paths, remember=False)

    # ---- the reference photo ---------------------------------------------------------------------------------
    def choose_reference(self, path: str | Path | None = None) -> int | None:
        """The person to replace when "One person (reference photo)" is chosen."""
        page = self.page
        if not page.ensure_consent():
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(page, "Choose a photo of the person to replace", pictures_dir(),
                                                  IMAGE_FILTER)
            if not path:
                return None
        chosen = Path(path).expanduser()
        page.target_section.reference_label.setText(f"Reading {chosen.name}…")
        return page.jobs.start("reference", lambda w: w.set_reference(chosen), key=page.store, extra=chosen)

    def _done_reference(self, job: Job, faces: int) -> None:
        path: Path = job.extra
        self.reference = path
        extra = f" ({faces} faces: the largest is the reference)" if faces > 1 else ""
        self.page.target_section.reference_label.setText(f"Reference: {path.name}{extra}")
        self.page.still.schedule()
        self.page.show_message(f"Only faces that look like the person in {path.name} are replaced.")

    def _failed_reference(self, job: Job, message: str) -> None:
        label = f"Reference: {self.reference.name}" if self.reference is not None else "No reference photo."
        self.page.target_section.reference_label.setText(label)
        self.page.report(message)
