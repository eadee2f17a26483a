"""The images of the background-removal page: opening files and folders, the thumbnail strip, the
image on the canvas, and what the user does to its mask (Remove background, brush, Refine, Undo).

Each image keeps its own mask, strokes and undo history while the user moves between images.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QListWidgetItem

from snowai_studio.matting.canvas import Stroke
from snowai_studio.matting.jobs import Job, strip_source
from snowai_studio.matting.state import SEED_BACKGROUND, SEED_SUBJECT, ImageEntry, make_thumbnail, path_key
from snowai_studio.tool_dock import pictures_dir
from workers.errors import UserError
from workers.matting.batch import expand_inputs
from workers.matting.refine import grabcut_refine
from workers.media.imageio import IMAGE_EXTENSIONS, load_image

IMAGE_FILTER = "Images ({})".format(" ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS)))


class ImagesMixin:
    """``self.entries`` (every open image) and ``self.current`` (the one on the canvas)."""

    entries: list[ImageEntry]
    current: ImageEntry | None
    _jobs: dict[int, Job]

    # ---- opening ------------------------------------------------------------------------------------
    def open_images(self, paths: Iterable[str | Path] | None = None) -> list[ImageEntry]:
        if paths is None:
            start = str(self.current.path.parent) if self.current else pictures_dir()
            names, _ = QFileDialog.getOpenFileNames(self, "Open images", start, f"{IMAGE_FILTER};;All files (*)")
            paths = names
        return self.add_paths(list(paths))

    def open_folder(self, folder: str | Path | None = None) -> list[ImageEntry]:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", pictures_dir())
            if not folder:
                return []
        return self.add_paths([folder])

    def add_paths(self, paths: list[str | Path]) -> list[ImageEntry]:
        """Add image files and folders (their images) to the list; shows the first new one."""
        if not paths:
            return []
        found, unmatched = expand_inputs([str(p) for p in paths])
        files = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
        unmatched += [str(f) for f in found if f.suffix.lower() not in IMAGE_EXTENSIONS]
        known = {e.key: e for e in self.entries}
        added: list[ImageEntry] = []
        for path in files:
            key = path_key(path)
            if key in known:
                continue
            entry = ImageEntry(Path(path))
            known[key] = entry
            self.entries.append(entry)
            added.append(entry)
            self.thumbs.add(entry.key, entry.name, str(entry.path))
            job = self._thumbs.submit(lambda ctx, p=entry.path: _thumbnail_or_reason(p))
            self._jobs[job] = Job("thumb", entry)
        if unmatched:
            self.show_message(_unmatched_sentence(unmatched), "warning")
        elif not added and files:
            self.show_message("These images are already open.")
        first = added[0] if added else (known.get(path_key(files[0])) if files else None)
        if first is not None:
            self.select(first)
        if len(added) > 1:
            self.show_message(f"{len(added)} images added; click a thumbnail to switch between them.")
        self.thumbs.setVisible(len(self.entries) > 1 and self._camera is None)
        self._update_actions()
        return added

    # ---- the image on the canvas ------------------------------------------------------------------------
    def _on_thumb_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is None:
            return
        key = item.data(Qt.ItemDataRole.UserRole)
        entry = next((e for e in self.entries if e.key == key), None)
        if entry is not None and entry is not self.current:
            self.select(entry)

    def select(self, entry: ImageEntry) -> None:
        """Show ``entry`` (its own mask and history come with it)."""
        previous = self.current
        if previous is not None and previous is not entry:
            previous.drop_pixels()
        self.current = entry
        self.thumbs.select_quietly(entry.key)
        if self._camera is None:  # a live view whose camera stopped gives way to the image
            self._show_view(self.canvas)
        if entry.image is None:
            self.canvas.set_image(None)
            self.canvas.set_placeholder(f"Opening {entry.name}…")
            self.canvas.set_hint("")
            if not entry.loading:
                entry.loading = True
                job = self._tasks.submit(lambda ctx, p=entry.path: load_image(p))
                self._jobs[job] = Job("load", entry)
        else:
            self._show_entry(entry)
        self._update_actions()

    def _show_entry(self, entry: ImageEntry) -> None:
        assert entry.image is not None
        self.canvas.set_image(entry.image.bgr, entry.alpha)
        self._update_hint()
        self._request_layer()
        self.image_changed.emit()

    def _update_hint(self) -> None:
        entry = self.current
        if entry is None or entry.image is None:
            self.canvas.set_hint("")
        elif entry.busy == "remove":
            self.canvas.set_hint("Removing the background…")
        elif entry.busy == "refine":
            self.canvas.set_hint("Refining the edges…")
        elif entry.alpha is None:
            self.canvas.set_hint("Press Remove background to cut out the subject")
        else:
            self.canvas.set_hint("")

    def _mark_unsaved(self, entry: ImageEntry) -> None:
        item = self.thumbs.item_of(entry.key)
        if item is not None:
            item.setText(("• " if entry.unsaved else "") + entry.name)

    # ---- remove, brush, refine, undo ------------------------------------------------------------------
    def remove_background(self) -> int | None:
        """Run the model on the current image; returns the job id (None when it cannot start)."""
        entry = self.current
        if entry is None:
            self.show_message("Open an image first: drop it here or use Open images….")
            return None
        if entry.image is None:
            if entry.error:
                self.show_message(strip_source(entry.error), "error", notify=False)
            else:
                self.show_message(f"{entry.name} is still opening; try again in a moment.")
            return None
        if entry.busy:
            self.show_message(f"{entry.name} is already being worked on.")
            return None
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            return None
        job = self._ensure_matting().remove(entry.image)
        self._jobs[job] = Job("remove", entry, label=f"Removing the background of {entry.name}…")
        self._entry_busy(entry, "remove")
        return job

    def _entry_busy(self, entry: ImageEntry, kind: str) -> None:
        entry.busy = kind
        self._update_busy()
        self._update_hint()
        self._update_actions()

    def _on_tool(self) -> None:
        if self.brush_add_action.isChecked():
            self.canvas.set_tool("add")
        elif self.brush_erase_action.isChecked():
            self.canvas.set_tool("erase")
        else:
            self.canvas.set_tool("none")

    def set_tool(self, tool: str) -> None:
        """ "add", "erase" or "none" (pan)."""
        self.brush_add_action.setChecked(tool == "add")
        self.brush_erase_action.setChecked(tool == "erase")
        self._on_tool()

    def _on_stroke(self, stroke: Stroke) -> None:
        entry = self.current
        if entry is None or entry.alpha is None or self.canvas.alpha is not entry.alpha:
            return
        entry.add_stroke(stroke.points, stroke.radius, stroke.add)
        self._mark_unsaved(entry)
        self._update_actions()
        self.image_changed.emit()

    def refine_edges(self) -> int | None:
        """GrabCut on the current mask and strokes (off the UI thread); returns the job id."""
        entry = self.current
        if entry is None or entry.image is None or entry.alpha is None:
            self.show_message("Remove the background first; then Refine edges tightens the outline.")
            return None
        if entry.busy:
            self.show_message(f"{entry.name} is already being worked on.")
            return None
        bgr = entry.image.bgr
        alpha = entry.alpha.copy()
        seeds = entry.seeds.copy() if entry.seeds is not None else np.zeros_like(alpha)

        def job(ctx: Any) -> np.ndarray:
            return grabcut_refine(bgr, alpha, sure_fg=seeds == SEED_SUBJECT, sure_bg=seeds == SEED_BACKGROUND)

        job_id = self._tasks.submit(job)
        self._jobs[job_id] = Job("refine", entry, entry.history.version, label=f"Refining the edges of {entry.name}…")
        self.canvas.editable = False
        self._entry_busy(entry, "refine")
        return job_id

    def undo(self) -> bool:
        return self._step_history(redo=False)

    def redo(self) -> bool:
        return self._step_history(redo=True)

    def _step_history(self, *, redo: bool) -> bool:
        entry = self.current
        if entry is None or entry.busy or not (entry.redo() if redo else entry.undo()):
            return False
        self.canvas.set_alpha(entry.alpha)
        self._mark_unsaved(entry)
        self._update_actions()
        self.image_changed.emit()
        return True


def _unmatched_sentence(unmatched: list[str]) -> str:
    names = ", ".join(Path(u).name or u for u in unmatched[:5])
    more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
    if all(not Path(u).expanduser().exists() for u in unmatched):
        return f"Not found: {names}{more}."
    if all(Path(u).expanduser().is_dir() for u in unmatched):
        return f"There are no images the studio can open in {names}{more}."
    return f"Not an image the studio can open: {names}{more}."


def _thumbnail_or_reason(path: Path) -> np.ndarray | str:
    """A thumbnail, or why there is none (not an error to report: opening the image tells)."""
    try:
        return make_thumbnail(path)
    except UserError as exc:
        return str(exc)
