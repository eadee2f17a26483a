"""A still image in the face-swap page's preview: opening one shows it swapped (the swap runs on the
worker's thread), a change of the settings renders it again after a short pause, Before/after shows
the picture as it was, and Save writes the swapped picture beside it (never over it), with the mark
and the generated-image label the settings asked for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QFileDialog

from snowai_studio.face_swap.jobs import Job
from snowai_studio.tool_dock import pictures_dir
from workers.files import free_name, same_file

if TYPE_CHECKING:
    from snowai_studio.face_swap.page import FaceSwapPage

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"
SAVE_FILTER = "PNG (*.png);;JPEG (*.jpg *.jpeg);;WebP (*.webp)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: How long the settings must rest before the still is rendered again (ms).
RENDER_DELAY_MS = 250


class StillPreview(QObject):
    """The page's still: ``path`` (the picture opened), ``result`` (the latest render, a
    :class:`~workers.face_swap.worker.StillResult`) and whether a render is on its way."""

    def __init__(self, page: FaceSwapPage) -> None:
        super().__init__(page)
        self.page = page
        self.path: Path | None = None
        self.result: Any = None
        self.before = False
        self._job: int | None = None
        self._again = False
        #: Counts the pictures opened and forgotten: a render of an earlier one is dropped.
        self._generation = 0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(RENDER_DELAY_MS)
        self.timer.timeout.connect(self._render)
        # "image": a picture opened; "render": the same picture again with new settings.
        for kind in ("image", "render"):
            page.jobs.on(kind, self._done, self._failed, self._cancelled)
        page.jobs.on("save", self._saved)

    @property
    def rendering(self) -> bool:
        """A render is running or waits for the settings to rest."""
        return self._job is not None or self.timer.isActive()

    @property
    def can_save(self) -> bool:
        return self.result is not None and not self.rendering

    # ---- open and render ------------------------------------------------------------------------------
    def open(self, path: str | Path | None = None) -> int | None:
        """Show the faces of an image swapped in the preview (nothing is written); returns the job id."""
        page = self.page
        if not page.check_ready_for_swap():
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(page, "Choose an image to change", pictures_dir(), IMAGE_FILTER)
            if not path:
                return None
        chosen = Path(path).expanduser()
        self.timer.stop()
        self._again = False
        self._generation += 1
        page.show_message(f"Swapping the faces of {chosen.name}…")
        self._job = page.jobs.start(
            "image", lambda w: w.render_image(chosen), key=page.store, label=f"Swapping {chosen.name}…",
            extra=(chosen, self._generation),
        )
        page.update_state()
        return self._job

    def schedule(self) -> None:
        """The settings changed: render the still again once they rest (nothing to do without one)."""
        if self.result is None and self._job is None:
            return
        self.timer.start()
        self.page.update_state()

    def _render(self) -> None:
        if self.result is None or self.page.source_summary is None:
            return
        if self._job is not None:
            self._again = True  # one more once the running render is done
            return
        result = self.result
        self._job = self.page.jobs.start(
            "render", lambda w: w.render_image(result.source, result.original), key=self.page.store,
            extra=(result.source, self._generation), shown=False,
        )
        self.page.preview.set_overlay(f"{result.source.name} · updating…")

    def _current(self, job: Job) -> bool:
        if job.extra[1] != self._generation:
            return False  # a render of a picture forgotten since
        self._job = None
        return True

    def _done(self, job: Job, result: Any) -> None:
        if not self._current(job):
            return
        first = self.result is None or self.result.source != result.source
        self.path, self.result = result.source, result
        self.show()
        if self._again:
            self._again = False
            self._render()
        if first:
            took = sum(result.ms.values()) if result.ms else 0.0
            self.page.show_message(
                f"{result.source.name}: swapped {result.faces_swapped} of {result.faces_found} "
                f"face{'s' if result.faces_found != 1 else ''} ({result.engine} engine"
                f"{f', {took:.0f} ms' if took else ''}). Save (Ctrl+S) writes a copy; the original stays as it is."
            )

    def _failed(self, job: Job, message: str) -> None:
        if not self._current(job):
            return
        if self.result is None or self.result.source != job.extra[0]:
            self.forget()  # a new picture that could not be swapped: nothing of it is shown
        else:
            self.show()
        self.page.report(message)

    def _cancelled(self, job: Job) -> None:
        if not self._current(job):
            return
        self._again = False
        if job.kind == "image":
            self.page.show_message("Cancelled; the picture was not swapped.")
        self.show()  # a render dropped on the way: the picture shown stays, Save writes it

    # ---- showing ----------------------------------------------------------------------------------------
    def show(self) -> None:
        """Put the still in the preview (not while the camera is live)."""
        result = self.result
        if result is None or self.page.live.running:
            return
        preview = self.page.preview
        preview.show_frame(result.original if self.before else result.image)
        what = "before" if self.before else f"{result.faces_swapped} of {result.faces_found} swapped · {result.engine}"
        preview.set_overlay(f"{result.source.name} · {what}")

    def set_before(self, on: bool) -> None:
        self.before = bool(on) and self.result is not None
        self.show()

    def forget(self) -> None:
        self.timer.stop()
        self._generation += 1
        self._job = None
        self.path = self.result = None
        self.before = False
        self._again = False
        if not self.page.live.running:
            self.page.preview.clear()
            self.page.preview.set_overlay("")

    # ---- saving -------------------------------------------------------------------------------------------
    def save(self, dst: str | Path | None = None) -> int | None:
        """Write the swapped still (PNG, JPEG or WebP) under a new name; returns the job id."""
        page = self.page
        result = self.result
        if result is None:
            page.show_message("Open an image first: its swapped picture is what Save writes.", "warning")
            return None
        if self.rendering:
            page.show_message("The picture is being updated; save once it shows the new settings.")
            return None
        src = result.source
        if dst is None:
            suffix = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
            suggestion = free_name(src.with_name(f"{src.stem}-swapped{suffix}"), src)
            dst, _ = QFileDialog.getSaveFileName(page, "Save the swapped image as", str(suggestion), SAVE_FILTER)
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".png")
        if same_file(src, dst):
            page.show_message(
                f"{dst.name} is the image you opened; pick another name (the original is never overwritten).",
                "warning",
            )
            return None
        return page.jobs.start("save", lambda w: w.save_still(result, dst), key=page.store, extra=dst)

    def _saved(self, job: Job, saved: Any) -> None:
        self.page.show_message(
            f"Saved {saved.path.name} in {saved.path.parent}: swapped {saved.faces_swapped} of "
            f"{saved.faces_found} face{'s' if saved.faces_found != 1 else ''} ({saved.engine} engine"
            f"{', with the mark' if saved.marked else ''})."
        )
