"""The Qt worker that trains voices off the UI thread (see :mod:`workers.base` for the protocol).

Jobs: :meth:`TrainingWorker.check_dataset` slices a folder and reports what is usable;
:meth:`TrainingWorker.train` prepares and runs a :class:`~workers.voice_conversion.training.trainer.Trainer`
(cancel saves the steps done and stops within a step); :meth:`TrainingWorker.export` writes a saved step
of the last run in the original format. Events arrive as signals: the dataset report, the stage, every
step's losses with the time left, each checkpoint with its validation loss, each preview file and the
exported files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal

from workers.base import JobContext, Worker
from workers.errors import UserError

log = logging.getLogger(__name__)


class TrainingWorker(Worker):
    name = "Voice training"
    watch_interval = 0.0

    report_ready = Signal(dict)
    stage_changed = Signal(str)
    step_done = Signal(dict)
    checkpoint_saved = Signal(dict)
    preview_ready = Signal(str)
    voice_exported = Signal(dict)

    def __init__(self, *, store: Any = None, device: str = "cpu") -> None:
        super().__init__()
        self.store = store
        self.device = device
        self.trainer: Any = None

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "report":
            self.report_ready.emit(data)
        elif kind == "stage":
            self.stage_changed.emit(str(data.get("text", "")))
        elif kind == "progress":
            self.progress.emit(int(data["done"]), int(data["total"]))
        elif kind == "step":
            self.step_done.emit(data)
        elif kind == "checkpoint":
            self.checkpoint_saved.emit(data)
        elif kind == "preview":
            self.preview_ready.emit(str(data["path"]))
        elif kind == "exported":
            self.voice_exported.emit(data)

    # ---- jobs -----------------------------------------------------------------------------------------
    def check_dataset(self, folder: str | Path, rate: int) -> int:
        """Slice ``folder`` at ``rate`` and emit its report (nothing is written)."""

        def job(ctx: JobContext) -> dict[str, Any]:
            from workers.voice_conversion.training.dataset import TooLittleSpeech, prepare_dataset

            try:
                _, report = prepare_dataset(folder, rate, progress=ctx.progress, cancelled=lambda: ctx.cancelled)
            except TooLittleSpeech as exc:  # still show what was found, then why training cannot start
                self.report_ready.emit({**exc.report.to_json(), "refused": str(exc)})
                raise
            data = report.to_json()
            self.report_ready.emit(data)
            return data

        return self.submit(job)

    def train(self, options: Any) -> int:
        """Train with ``options`` (a TrainOptions); the job's result is the exported files."""

        def job(ctx: JobContext) -> list[str]:
            from workers.voice_conversion.training.trainer import Trainer

            options.device = options.device or self.device
            trainer = Trainer(options, store=self.store, on_event=self._event, cancelled=lambda: ctx.cancelled)
            self.trainer = trainer
            trainer.prepare()
            return [str(p) for p in trainer.run()]

        return self.submit(job)

    def export(self, step: int) -> int:
        """Write the voice of a saved ``step`` of the last run; the job's result is the files."""

        def job(ctx: JobContext) -> list[str]:
            if self.trainer is None or not hasattr(self.trainer, "items"):
                raise UserError("Train or resume a voice first; then a saved step can be used.")
            return [str(p) for p in self.trainer.export(step)]

        return self.submit(job)
