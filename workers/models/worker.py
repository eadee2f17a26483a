"""The Qt worker that runs model downloads, verification and imports off the UI thread."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Signal

from workers.base import JobContext, Worker
from workers.models import get_started
from workers.models.download import download_model
from workers.models.get_started import StarterPlan
from workers.models.store import Model, ModelState, ModelStore, VerifyReport

log = logging.getLogger(__name__)


class ModelDownloadWorker(Worker):
    """Downloads (and verifies, imports) models as jobs with progress and prompt cancel.

    Results arrive through ``job_finished(job_id, result)``: a :class:`ModelState` for a
    download, a :class:`VerifyReport` for a verification, a :class:`Model` for an import.
    ``model_changed(model_id)`` fires whenever a job changed what is in the store.
    """

    name = "Model manager"
    model_changed = Signal(str)
    #: What a "Get started" job is fetching now, in words.
    step_changed = Signal(str)

    def __init__(self, store: ModelStore, *, timeout: float = 30.0) -> None:
        super().__init__()
        self.store = store
        self.timeout = timeout

    def download(self, model_id: str) -> int:
        """Queue the download of one model; returns the job id."""

        def job(ctx: JobContext) -> ModelState:
            try:
                return download_model(
                    self.store,
                    model_id,
                    progress=ctx.progress,
                    cancel=lambda: ctx.cancelled,
                    timeout=self.timeout,
                )
            finally:
                self.model_changed.emit(model_id)

        return self.submit(job)

    def get_started(self, tool: str) -> int:
        """Queue the download of ``tool``'s recommended set; the job's result is the plan afterwards
        (:class:`workers.models.get_started.StarterPlan`). Progress is counted in KiB over the set."""

        def job(ctx: JobContext) -> StarterPlan:
            try:
                return get_started.fetch(
                    self.store,
                    tool,
                    progress=lambda done, total: ctx.progress(done // 1024, max(1, total // 1024)),
                    status=self.step_changed.emit,
                    cancel=lambda: ctx.cancelled,
                    timeout=self.timeout,
                )
            finally:
                for item in get_started.plan(self.store, tool).items:
                    self.model_changed.emit(item.model.id)

        return self.submit(job)

    def verify(self, model_id: str) -> int:
        def job(ctx: JobContext) -> VerifyReport:
            return self.store.verify(model_id, progress=ctx.progress, cancel=lambda: ctx.cancelled)

        return self.submit(job)

    def import_model(
        self,
        path: Path,
        tool: str,
        name: str | None = None,
        *,
        kind: str | None = None,
        companions: Sequence[Path] = (),
    ) -> int:
        """Queue the import of a model file or folder (with the files it needs beside it)."""

        def job(ctx: JobContext) -> Model:
            model = self.store.import_file(
                path,
                tool,
                name,
                kind=kind,
                companions=companions,
                progress=ctx.progress,
                cancel=lambda: ctx.cancelled,
            )
            self.model_changed.emit(model.id)
            return model

        return self.submit(job)
