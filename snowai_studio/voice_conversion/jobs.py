"""Converting recordings on the voice-conversion page: the list, the output (folder, format, channels)
and the line that says what will be written, and the file job in the shared job runner (progress, time
left, Cancel, the result)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog

from snowai_studio.voice_conversion import prefs
from snowai_studio.voice_conversion.texts import AUDIO_FILTER, InputShape, output_summary, read_shape, strip_source
from workers.voice_conversion.worker import model_label

if TYPE_CHECKING:
    from snowai_studio.voice_conversion.page import VoiceConversionPage

#: Progress steps per file (the worker's).
STEPS = 1000


class FileJobs(QObject):
    """Drives :attr:`VoiceConversionPage.files` and :attr:`VoiceConversionPage.output_settings`, and the
    worker's file jobs (one at a time)."""

    def __init__(self, page: VoiceConversionPage) -> None:
        super().__init__(page)
        self.page = page
        self.files = page.files
        self.output = page.output_settings
        self.runner = page.job_runner
        self.job_id: int | None = None
        self._shapes: dict[str, InputShape] = {}
        self.files.add_requested.connect(lambda: self.add_files())
        self.files.files_dropped.connect(lambda paths: self.add_files(paths))
        self.files.changed.connect(self.update)
        self.runner.cancel_requested.connect(self.cancel)
        self.output.panel.folder_changed.connect(self._on_folder_changed)
        self.output.panel.format_changed.connect(lambda fmt: self._remember("format", fmt))
        self.output.channels_changed.connect(lambda channels: self._remember("channels", channels))

    # ---- the list ------------------------------------------------------------------------------------------
    def add_files(self, files: list[str | Path] | None = None) -> int:
        """Add sound files to the list (asks for them when not given); returns how many were added."""
        page = self.page
        if files is None:
            ask: Callable[..., Any] | None = page.context.extras.get("svc_choose_files")
            if ask is not None:
                files = list(ask(page, "Add sound files", AUDIO_FILTER) or [])
            else:
                chosen, _ = QFileDialog.getOpenFileNames(page, "Add sound files", str(Path.home()), AUDIO_FILTER)
                files = list(chosen)
        paths = [Path(f).expanduser() for f in files]
        missing = [p for p in paths if not p.is_file()]
        added = self.files.add_paths([p for p in paths if p.is_file()])
        if missing:
            what = "is a folder" if missing[0].is_dir() else "was not found"
            page.show_message(f"{missing[0].name} {what}; it was not added.", "warning")
        elif added:
            n = len(self.files.paths())
            page.show_message(f"{n} file{'s' if n != 1 else ''} ready to convert. Press Convert.")
        self.update()
        return added

    def _shape(self, path: Path) -> InputShape:
        key = str(path)
        if key not in self._shapes:
            self._shapes[key] = read_shape(path)
        return self._shapes[key]

    # ---- the output ----------------------------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        folder = self.output.panel.folder
        return Path(folder) if folder else None

    def set_folder(self, folder: Path | str | None) -> None:
        """Where converted files go (None: next to each original)."""
        self.output.panel.folder_row.set_folder(str(Path(folder).expanduser()) if folder else "", notify=True)

    def _on_folder_changed(self, folder: str) -> None:
        self.output.show_folder(folder)
        self._remember("output", folder)

    def _remember(self, key: str, value: str) -> None:
        prefs.save(key, value)
        self.show_summary()

    def show_summary(self) -> None:
        """The output panel's line: exactly what Convert writes, for the files listed now."""
        info = self.page.model_info
        if not self.page.active_model:
            model_rate: int | None = None
        else:
            model_rate = int(info.get("sample_rate", 0) or 0) if info.get("model") == self.page.active_model else 0
        shapes = [self._shape(p) for p in self.files.paths()]
        fmt = self.output.panel.format or "wav"
        self.output.panel.set_summary(
            output_summary(shapes, fmt, self.output.channels, self.output.panel.folder, model_rate)
        )

    # ---- the job -------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def convert(self) -> int | None:
        """Convert every listed file with the current voice; returns the job id (None when nothing to do)."""
        page = self.page
        files = self.files.paths()
        if not files:
            page.show_message("Add sound files first (Open recordings… or drop them on the list).")
            return None
        if self.busy:
            return None
        worker = page.ensure_worker()
        self.job_id = worker.convert_files(files, self.folder, self.output.panel.format or "wav", self.output.channels)
        n = len(files)
        label = f"Converting {n} file{'s' if n != 1 else ''}"
        self.runner.start(label, STEPS * n)
        page.show_message(f"{label} with {model_label(page.options)}…")
        self.update()
        return self.job_id

    @Slot()
    def cancel(self) -> None:
        if self.page.worker is not None and self.busy:
            self.page.worker.cancel()
            self.runner.set_label("Cancelling…")

    def _take(self, job_id: int) -> bool:
        if job_id != self.job_id:
            return False
        self.job_id = None
        self.runner.finish()
        self.update()
        return True

    @Slot(int, object)
    def on_finished(self, job_id: int, report: Any) -> None:
        if not self._take(job_id):
            return
        self.page.last_report = report
        failed = bool(getattr(report, "failed", None))
        cancelled = bool(getattr(report, "cancelled", False))
        text = report.summary(speed=True) if hasattr(report, "summary") else "Done."
        self.page.show_message(text, "warning" if failed or cancelled else "info", notify=failed)
        self.page.job_done.emit("files", not failed and not cancelled)

    @Slot(int, str)
    def on_failed(self, job_id: int, message: str) -> None:
        if self._take(job_id):
            self.page.show_message(strip_source(message), "error", notify=False)
            self.page.job_done.emit("files", False)

    @Slot(int)
    def on_cancelled(self, job_id: int) -> None:
        if self._take(job_id):
            self.page.show_message("Cancelled; the files converted before were kept.")
            self.page.job_done.emit("files", False)

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        if self.busy and total > 0:
            self.runner.set_progress(done, total)

    def update(self) -> None:
        """Convert and the list's buttons, as the list and the job are now; the summary follows the list."""
        self.page.convert_action.setEnabled(bool(self.files.paths()) and not self.busy)
        if self.page.open_action is not None:
            self.page.open_action.setEnabled(not self.busy)
        self.files.set_busy(self.busy)
        self.show_summary()
