"""Training a voice from the page: the Train section's controller.

It owns a :class:`~workers.voice_conversion.training.worker.TrainingWorker` (started when first needed)
and talks to it only through signals: choosing recordings slices them and shows the report; Train
starts (or continues, when the voice's folder already holds a run) training in the voice's folder under
the studio's data folder; Stop saves the steps done; each step moves the progress and the curves, each
checkpoint joins the list of steps (the best marked), each preview can be heard; "Use this voice now"
exports the chosen step and loads it as the page's voice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

from snowai_studio.voice_conversion.texts import SOURCE
from snowai_studio.voice_conversion.train_section import TrainSection

if TYPE_CHECKING:
    from snowai_studio.voice_conversion.page import VoiceConversionPage

log = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    whole: int = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def describe_report(data: dict[str, Any]) -> str:
    """The dataset report as the section shows it."""
    usable = float(data.get("usable_seconds", 0.0))
    lines = [f"{usable / 60:.1f} min usable in {data.get('pieces', 0)} pieces from {data.get('files', 0)} files"]
    seconds = data.get("seconds") or {}
    if len(seconds) > 1:
        lines.append("Speakers: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in sorted(seconds.items())))
    for entry in data.get("skipped", []):
        lines.append(f"Skipped {entry['file']}: {entry['reason']}")
    if data.get("refused"):
        lines.append(str(data["refused"]))
    return "\n".join(lines)


class TrainControl(QObject):
    def __init__(self, page: VoiceConversionPage, section: TrainSection) -> None:
        super().__init__(page)
        self.page = page
        self.section = section
        self.folder: Path | None = None
        self.worker: Any = None
        self.train_job: int | None = None
        self.check_job: int | None = None
        self.export_job: int | None = None
        self.last_step: dict[str, Any] = {}
        self.previews: list[str] = []
        section.choose_folder_requested.connect(lambda: self.choose_folder())
        section.train_requested.connect(self.toggle)
        section.listen_requested.connect(self.listen)
        section.use_requested.connect(self.use_voice)
        section.size_combo.currentIndexChanged.connect(self._default_steps)
        self._default_steps()

    # ---- the worker ---------------------------------------------------------------------------------
    def ensure_worker(self) -> Any:
        if self.worker is not None:
            return self.worker
        from workers.voice_conversion.training.worker import TrainingWorker

        worker = TrainingWorker(store=self.page.context.model_store, device=self.page.context.settings.compute)
        worker.report_ready.connect(self.on_report)
        worker.stage_changed.connect(self.on_stage)
        worker.step_done.connect(self.on_step)
        worker.checkpoint_saved.connect(self.on_checkpoint)
        worker.preview_ready.connect(self.on_preview)
        worker.progress.connect(self.on_progress)
        worker.job_finished.connect(self.on_finished)
        worker.job_failed.connect(self.on_failed)
        worker.job_cancelled.connect(self.on_cancelled)
        worker.start()
        self.worker = worker
        return worker

    def shutdown(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop(timeout_ms=60000)  # a cancelled run saves its last steps first
        self.train_job = self.check_job = self.export_job = None

    @property
    def training(self) -> bool:
        return self.train_job is not None

    def out_folder(self) -> Path:
        from workers import paths

        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.section.name_edit.text().strip())
        return paths.data_dir() / "voices" / (name or "my-voice")

    # ---- actions --------------------------------------------------------------------------------------
    def _default_steps(self) -> None:
        from workers.voice_conversion.training.trainer import DEFAULT_STEPS

        self.section.steps.setValue(DEFAULT_STEPS.get(self.section.size, 1000))

    def choose_folder(self, folder: str | Path | None = None) -> bool:
        """Use a folder of recordings (asks for one when not given) and show what it gives."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.page, "Recordings of the voice", str(Path.home()))
            if not folder:
                return False
        self.folder = Path(folder)
        self.section.folder_label.setText(self.folder.name)
        self.section.folder_label.setToolTip(str(self.folder))
        self.section.report.setText("Reading the recordings…")
        self.check_job = self.ensure_worker().check_dataset(self.folder, self.section.arch[1])
        return True

    def toggle(self) -> None:
        if self.training:
            self.stop()
        else:
            self.start()

    def start(self) -> int | None:
        from workers.voice_conversion.training.trainer import TrainOptions

        if self.folder is None:
            self.say("Choose a folder of recordings first.", "warning")
            return None
        arch, rate = self.section.arch
        out = self.out_folder()
        options = TrainOptions(
            data=self.folder,
            out=out,
            arch=arch,
            size=self.section.size,
            sample_rate=rate,
            steps=int(self.section.steps.value()),
            resume=(out / "train.json").is_file(),
            base=_base_id(arch, rate) if self.section.size == "full" else "",
            device=self.page.context.settings.compute,
        )
        # settings a caller fixes for every run (a content-encoder folder, checkpoint cadence)
        for key, value in self.page.context.extras.get("svc_train_options", {}).items():
            setattr(options, key, value)
        self.section.chart.clear()
        self.section.checkpoint_combo.clear()
        self.section.use_button.setEnabled(False)
        self.section.set_running(True)
        self.section.status.setText("Starting…")
        self.train_job = self.ensure_worker().train(options)
        return self.train_job

    def stop(self) -> None:
        if self.worker is not None and self.training:
            self.section.status.setText("Stopping after this step…")
            self.worker.cancel()

    def listen(self) -> None:
        if self.previews:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.previews[-1]))

    def use_voice(self) -> int | None:
        step = self.section.checkpoint_combo.currentData()
        if step is None or self.worker is None:
            return None
        self.section.status.setText(f"Exporting step {step}…")
        self.export_job = self.worker.export(int(step))
        return self.export_job

    def say(self, text: str, level: str = "info") -> None:
        self.section.status.setText(text)
        self.page.show_message(text, level, notify=level != "info")

    # ---- worker signals ---------------------------------------------------------------------------------
    @Slot(dict)
    def on_report(self, data: dict) -> None:
        self.section.report.setText(describe_report(data))

    @Slot(str)
    def on_stage(self, text: str) -> None:
        self.section.status.setText(f"{text}…")

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        if self.training and not self.last_step:
            self.section.progress.setRange(0, max(1, total))
            self.section.progress.setValue(done)

    @Slot(dict)
    def on_step(self, data: dict) -> None:
        self.last_step = data
        self.section.progress.setRange(0, int(data["target"]))
        self.section.progress.setValue(int(data["step"]))
        self.section.status.setText(
            f"Step {data['step']} of {data['target']} · {data['per_step']:.2f} s a step · "
            f"{_clock(data['eta'])} left · mel {data['mel']:.3f}"
        )
        self.section.chart.add(int(data["step"]), data)

    @Slot(dict)
    def on_checkpoint(self, data: dict) -> None:
        combo = self.section.checkpoint_combo
        best = data.get("best")
        entries = [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count())]
        entries = [(s, t.split(" (best)")[0]) for s, t in entries if s != data["step"]]
        val = data.get("val_mel")
        entries.append((data["step"], f"Step {data['step']}" + (f" · validation {val:.3f}" if val is not None else "")))
        combo.clear()
        for step, text in sorted(entries, key=lambda e: int(e[0])):
            combo.addItem(text + (" (best)" if step == best else ""), step)
        combo.setCurrentIndex(max(0, combo.findData(best)))
        self.section.use_button.setEnabled(True)

    @Slot(str)
    def on_preview(self, path: str) -> None:
        self.previews.append(path)
        self.section.preview_label.setText(f"Preview: {Path(path).stem.replace('_', ' ')}")
        self.section.listen_button.setEnabled(True)

    @Slot(int, object)
    def on_finished(self, job_id: int, result: Any) -> None:
        if job_id == self.check_job:
            self.check_job = None
        elif job_id == self.train_job:
            self.train_job = None
            self.section.set_running(False)
            self.say(f"Trained: {Path(result[0]).name} in {Path(result[0]).parent}.")
        elif job_id == self.export_job:
            self.export_job = None
            self._load(result)

    def _load(self, files: list[str]) -> None:
        model = files[0]
        self.page.set_model(model)
        index = next((f for f in files[1:] if f.endswith((".index", ".pt"))), "")
        if index:
            self.page.set_index(index)
        self.say(f"Using the trained voice {Path(model).name}.")

    @Slot(int, str)
    def on_failed(self, job_id: int, message: str) -> None:
        text = message.split(f"{SOURCE}: ", 1)[-1]
        if job_id == self.check_job:
            self.check_job = None
            if not self.section.report.text() or self.section.report.text().startswith("Reading"):
                self.section.report.setText(text)
            return
        if job_id == self.train_job:
            self.train_job = None
            self.section.set_running(False)
        elif job_id == self.export_job:
            self.export_job = None
        self.say(text, "error")

    @Slot(int)
    def on_cancelled(self, job_id: int) -> None:
        if job_id == self.train_job:
            self.train_job = None
            self.section.set_running(False)
            step = self.last_step.get("step", 0)
            self.say(f"Stopped at step {step}; the steps done are saved, and Train continues from there.")
        elif job_id == self.check_job:
            self.check_job = None


def _base_id(arch: str, rate: int) -> str:
    """The model manager's pretrained base for a full-size run."""
    return f"rvc-v2-pretrained-{rate // 1000}k" if arch == "rvc-v2" else "sovits-4.1-pretrained"
