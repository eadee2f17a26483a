"""The long jobs of the background-removal page: a folder of images (a batch) and a video file.

Before a batch runs the user sees what it will do (how many images, the output folder, which they
may change, and whether the background is applied); the job runner shows its progress, the time left
and Cancel; the result line says where the files went and the skipped files are listed.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QVBoxLayout, QWidget

from snowai_studio.icons import icon
from snowai_studio.matting.inspector_sections import effective_background, file_description, keeps_transparency
from snowai_studio.matting.jobs import Job, strip_source
from snowai_studio.matting.state import path_key
from snowai_studio.panels.output_panel import FolderRow, short_path
from snowai_studio.panels.tool_page import PRIMARY_ICON_COLOR
from snowai_studio.tool_dock import pictures_dir, videos_dir
from workers.matting.batch import expand_inputs
from workers.matting.compose import Background

VIDEO_SUFFIXES = {".webm": "WebM, VP9 with transparency", ".mov": "MOV, ProRes 4444 with transparency", ".mp4": "MP4"}
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.webm *.avi *.m4v);;All files (*)"


class BatchDialog(QDialog):
    """'Cut out 42 images from shoot': where the results go (changeable) and what each file will be."""

    def __init__(self, folder: Path, count: int, out: Path, fmt: str, background: Background,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mattingBatchDialog")
        self.setWindowTitle("Batch: cut out a folder")
        self.setMinimumWidth(460)
        heading = QLabel(f"<b>Cut out {count} image{'s' if count != 1 else ''} from {short_path(folder)}</b>")
        self.folder_row = FolderRow("Results go to", str(out))
        applied = (
            "The subject keeps its transparency." if keeps_transparency(fmt, background)
            else "The background chosen on the page is applied to every image."
        )
        self.summary = QLabel(
            f"Each image is saved as {file_description(fmt, background)}, named photo-nobg.{fmt}; "
            f"no file is overwritten. {applied}"
        )
        self.summary.setObjectName("mattingBatchSummary")
        self.summary.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = buttons.addButton("Start batch", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setProperty("primary", True)
        self.start_button.setIcon(icon("batch", PRIMARY_ICON_COLOR))
        self.start_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.folder_row)
        layout.addWidget(self.summary)
        layout.addWidget(buttons)

    @property
    def out(self) -> Path:
        return Path(self.folder_row.folder)


class LongJobsMixin:
    """``batch_folder`` and ``open_video``: jobs on the model's worker that the job runner follows."""

    _jobs: dict[int, Job]
    last_report: object

    def _long_job_refused(self) -> bool:
        """Says why a batch or a video cannot start now (another one runs, or no model is ready)."""
        if self._busy_with("batch", "video"):
            self.show_message("A batch or video is already running; wait for it or cancel it.")
            return True
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
        return bool(problem)

    # ---- batch ----------------------------------------------------------------------------------------
    def batch_folder(self, folder: str | Path | None = None, outdir: str | Path | None = None) -> int | None:
        """Cut out every image of ``folder`` into ``outdir`` (default: the output section's folder).
        Without ``folder`` the user chooses one and confirms the batch in :class:`BatchDialog`."""
        ask = folder is None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Batch: choose a folder of images", pictures_dir())
            if not folder:
                return None
        folder = Path(folder).expanduser()
        if self._long_job_refused():
            return None
        files, _ = expand_inputs([str(folder)])
        if not files:
            self.show_message(f"There are no images in {folder}.", "warning")
            return None
        fmt = self.export_format
        out = Path(outdir).expanduser() if outdir is not None else Path(self.output.folder).expanduser()
        if ask:
            dialog = BatchDialog(folder, len(files), out, fmt, self.background, self)
            dialog.folder_row.folder_changed.connect(self._choose_output_folder)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            out = dialog.out
        background = effective_background(fmt, self.background)
        if self._camera is not None:
            self.stop_live()
        job = self._ensure_matting().batch(files, out, background, fmt)
        self._jobs[job] = Job("batch", None, (out, len(files)), label=f"Batch into {out.name}:", total=len(files))
        self.skipped.hide()
        self._update_busy()
        self.show_message(f"Cutting out {len(files)} images from {folder.name} into {out}…")
        self._update_actions()
        return job

    def _choose_output_folder(self, folder: str) -> None:
        """A folder chosen in the batch dialog becomes the output section's folder (and is remembered)."""
        self.output.set_folder(folder)
        self._on_output_folder(folder)

    def _done_batch(self, job: Job, report: object) -> None:
        out, total = job.extra
        self.last_report = report
        done, failed = len(report.done), len(report.failed)
        stopped = getattr(report, "stopped", "")
        if stopped:
            text = f"Batch stopped: {done} of {total} images saved in {out}. {stopped}"
        elif report.cancelled:
            text = f"Batch cancelled: {done} of {total} images saved in {out}."
        else:
            text = f"Batch finished: {done} images saved in {out}."
        if failed:
            text += f" {failed} skipped (listed below)."
        self.skipped.show_skipped([(path, strip_source(reason)) for path, reason in report.failed])
        self.show_message(text, "warning" if failed else "info")

    # ---- video ----------------------------------------------------------------------------------------
    def open_video(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Replace the background of every frame of a video file (.webm/.mov keep transparency)."""
        if src is None:
            src, _ = QFileDialog.getOpenFileName(self, "Choose a video", videos_dir(), VIDEO_FILTER)
            if not src:
                return None
        src = Path(src).expanduser()
        if dst is None:
            suggestion = src.with_name(f"{src.stem}-nobg.webm")
            filters = ";;".join(f"{label} (*{suffix})" for suffix, label in VIDEO_SUFFIXES.items())
            dst, _ = QFileDialog.getSaveFileName(self, "Save the video as", str(suggestion), filters)
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".webm")
        if dst.suffix.lower() not in VIDEO_SUFFIXES:
            self.show_message(f"{dst.name}: choose .webm or .mov (with transparency) or .mp4.", "warning")
            return None
        if path_key(dst) == path_key(src):
            self.show_message("Choose another file name: the source video is never overwritten.", "warning")
            return None
        if self._long_job_refused():
            return None
        if self._camera is not None:
            self.stop_live()
        job = self._ensure_matting().video(src, dst, self.background)
        self._jobs[job] = Job("video", None, dst, label=f"Video {src.name} → {dst.name}:", total=100,
                              name=src.name)
        self.frame_rate.restart()
        self._update_busy()
        self.show_message(f"Processing {src.name} into {dst.name}…")
        self._update_actions()
        return job

    def _done_video(self, job: Job, path: Path) -> None:
        self.show_message(f"Video saved: {path}")
