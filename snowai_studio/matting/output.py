"""What goes behind the subject and what is written: the background (colour, blur, image), its preview
on the canvas, the export of one cut-out, and the output section's labels and summary kept true."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFileDialog

from snowai_studio.matting.images import IMAGE_FILTER
from snowai_studio.matting.inspector_sections import (
    FORMATS,
    effective_background,
    format_label,
    output_summary,
)
from snowai_studio.matting.jobs import Job
from snowai_studio.matting.state import ImageEntry, path_key
from snowai_studio.panels.page_settings import remember
from snowai_studio.tool_dock import pictures_dir
from workers.errors import UserError
from workers.matting.compose import Background, background_layer, composite
from workers.media.imageio import load_image, output_path, save_image


class OutputMixin:
    """``self.background`` and the output panel (``self.output``: format, batch folder, summary)."""

    background: Background
    current: ImageEntry | None
    _jobs: dict[int, Job]
    _layer_generation: int

    # ---- the background ------------------------------------------------------------------------------
    def _on_background_chosen(self, index: int) -> None:
        self._on_background_kind(str(self.background_combo.itemData(index)))

    def _on_background_kind(self, kind: str) -> None:
        if kind == "color":
            colour = QColorDialog.getColor(QColor(*self.background.color), self, "Background colour")
            if colour.isValid():
                self.set_background(Background(kind="color", color=(colour.red(), colour.green(), colour.blue())))
            else:
                self.background_chooser.show_background(self.background)
        elif kind == "image":
            name, _ = QFileDialog.getOpenFileName(self, "Background image", pictures_dir(), IMAGE_FILTER)
            if name:
                self.set_background_image(name)
            else:
                self.background_chooser.show_background(self.background)
        elif kind == "blur":
            self.set_background(Background(kind="blur", blur=self.background.blur or 31))
        else:
            self.set_background(Background())

    def set_background_image(self, path: str | Path) -> bool:
        try:
            image = load_image(path)
        except UserError as exc:
            self.show_message(f"The background image {exc}", "error")
            self.background_chooser.show_background(self.background)
            return False
        self.set_background(Background(kind="image", image=image.bgr))
        return True

    def set_background(self, background: Background) -> None:
        """Preview (and later export) the subject over ``background``."""
        self.background = background
        self.background_chooser.show_background(background)
        if self._matting is not None:
            self._matting.set_param("background", background)
        if background.kind == "transparent" and self.output.format == "jpg":
            self.output.set_format("png")  # the transparency the user just asked for
        self._update_output()
        self._request_layer()

    def _request_layer(self) -> None:
        """Compute the background behind the preview for the current image (off the UI thread)."""
        self._layer_generation += 1
        entry = self.current
        if entry is None or entry.image is None:
            return
        background = self.background
        if background.kind == "transparent":
            self.canvas.set_background_layer(None)
            return
        bgr = entry.image.bgr
        if background.kind == "color":
            self.canvas.set_background_layer(background_layer(bgr, background))
            return
        job = self._tasks.submit(lambda ctx: background_layer(bgr, background))
        self._jobs[job] = Job("layer", entry, self._layer_generation)

    # ---- the output section ----------------------------------------------------------------------------
    @property
    def export_format(self) -> str:
        return self.output.format or "png"

    def _update_output(self) -> None:
        """The formats' labels and the summary say what will be written with the background of now."""
        combo = self.output.format_combo
        for fmt in FORMATS:
            combo.setItemText(combo.findData(fmt), format_label(fmt, self.background))
        self.output.set_summary(output_summary(self.export_format, self.background, self.output.folder))

    def _on_output_folder(self, folder: str) -> None:
        remember(self.tool_id, "batch_folder", folder)
        self._update_output()

    # ---- export ----------------------------------------------------------------------------------------
    def export_image(self, path: str | Path | None = None) -> int | None:
        """Save the current cut-out as the output section says (PNG/WebP keep the transparency unless a
        background is chosen; JPEG always gets one). Never writes over the opened image. Returns the job id."""
        entry = self.current
        if entry is None or entry.image is None or entry.alpha is None:
            self.show_message("Nothing to export yet: open an image and press Remove background.")
            return None
        fmt = self.export_format
        if path is None:
            path = self._ask_export_path(entry, fmt)
            if not path:
                return None
        target = Path(path).expanduser()
        if not target.suffix:
            target = target.with_suffix("." + fmt)
        if path_key(target) == entry.key:
            self.show_message(
                f"{target.name} is the image you opened; choose another name (the original is never overwritten).",
                "warning",
            )
            return None
        jpeg = target.suffix.lower() in (".jpg", ".jpeg")
        background = effective_background("jpg" if jpeg else fmt, self.background)
        note = " JPEG has no transparency, so the background is white." if background is not self.background else ""
        bgr, alpha = entry.image.bgr, entry.alpha.copy()

        def job(ctx: Any) -> Path:
            return save_image(target, composite(bgr, alpha, background))

        job_id = self._tasks.submit(job)
        self._jobs[job_id] = Job("export", entry, (entry.history.version, note))
        self.show_message(f"Saving {target.name}…")
        return job_id

    def _ask_export_path(self, entry: ImageEntry, fmt: str) -> str:
        default = output_path(entry.path, entry.path.parent, fmt)
        filters = {"png": "PNG image (*.png)", "webp": "WebP image (*.webp)", "jpg": "JPEG image (*.jpg *.jpeg)"}
        name, _ = QFileDialog.getSaveFileName(
            self, "Export the cut-out", str(default), ";;".join(filters.values()), filters[fmt]
        )
        return name
