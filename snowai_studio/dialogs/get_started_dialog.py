""" "Get started": a tool's recommended models, what each gives, what the set costs on disk, and one
button that downloads all of it with one progress bar (cancel keeps what is done; Download resumes)."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workers.errors import describe_exception
from workers.models import get_started
from workers.models.get_started import StarterPlan
from workers.models.store import ModelStore, human_size
from workers.models.worker import ModelDownloadWorker

log = logging.getLogger(__name__)


class GetStartedDialog(QDialog):
    """``ready(tool, model_ids)`` once every model of the set is usable (after a download or when it
    already was); the window then selects them in the tool's page."""

    ready = Signal(str, list)

    def __init__(
        self,
        store: ModelStore,
        tool: str,
        parent: QWidget | None = None,
        *,
        worker: ModelDownloadWorker | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.tool = tool
        self._job: int | None = None
        self.plan: StarterPlan = get_started.plan(store, tool)
        self.setWindowTitle(f"Get started: {self.plan.tool_name}")
        self.setObjectName("getStartedDialog")
        self.resize(720, 420)

        heading = QLabel(f"<b>Recommended models for {self.plan.tool_name}</b>")
        heading.setObjectName("overviewTitle")
        summary = QLabel(self.plan.summary)
        summary.setWordWrap(True)
        self.rows = QGridLayout()
        self.rows.setHorizontalSpacing(16)
        self.rows.setVerticalSpacing(10)
        frame = QFrame()
        frame.setObjectName("card")
        frame.setLayout(self.rows)
        self.space_label = QLabel()
        self.space_label.setObjectName("getStartedSpace")
        self.space_label.setWordWrap(True)
        self.step_label = QLabel()
        self.step_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("getStartedMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setVisible(False)

        self.download_button = QPushButton()
        self.download_button.setObjectName("getStartedDownload")
        self.download_button.setDefault(True)
        self.download_button.setProperty("primary", True)
        self.download_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Not now")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        buttons.addWidget(self.download_button)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(summary)
        layout.addWidget(frame)
        layout.addWidget(self.space_label)
        layout.addStretch(1)
        layout.addWidget(self.step_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

        self.worker = worker or ModelDownloadWorker(store)
        self._owns_worker = worker is None
        self.worker.progress.connect(self._on_progress)
        self.worker.step_changed.connect(self.step_label.setText)
        self.worker.job_finished.connect(self._on_finished)
        self.worker.job_failed.connect(self._on_failed)
        self.worker.job_cancelled.connect(self._on_cancelled)
        if self._owns_worker:
            self.worker.start()
        self.refresh()

    # ---- showing the plan -----------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            self.plan = get_started.plan(self.store, self.tool)
        except Exception as exc:  # an unreadable store: say so, keep the dialog usable
            self.show_error(describe_exception(exc, "The model store could not be read"))
            return
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for row, item in enumerate(self.plan.items):
            name = QLabel(f"<b>{item.model.name}</b>")
            gives = QLabel(item.gives)
            gives.setWordWrap(True)
            note = f"Licence: {item.model.licence}."
            if item.model.access and not item.ready:
                note += " " + item.model.access
            licence = QLabel(note)
            licence.setWordWrap(True)
            licence.setProperty("hint", True)
            status = QLabel(("✓ " if item.ready else "") + item.status_text)
            status.setObjectName(f"getStartedStatus.{item.model.id}")
            status.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            text = QVBoxLayout()
            text.setSpacing(2)
            for w in (name, gives, licence):
                text.addWidget(w)
            self.rows.addLayout(text, row, 0)
            self.rows.addWidget(status, row, 1)
        self.rows.setColumnStretch(0, 1)
        self.space_label.setText(self.plan.space_sentence())
        self.space_label.setProperty("level", "" if self.plan.fits else "error")
        self.space_label.setStyleSheet("" if self.plan.fits else "color: #e5534b;")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self._job is not None
        plan = self.plan
        if plan.complete:
            self.download_button.setText("Use them")
        else:
            verb = "Resume" if self._resumes() else "Download"
            self.download_button.setText(f"{verb} {human_size(plan.to_fetch)}")
        self.download_button.setEnabled(not running and (plan.complete or plan.fits))
        self.cancel_button.setVisible(running)
        self.close_button.setText("Close" if plan.complete else "Not now")
        self.close_button.setEnabled(not running)

    def _resumes(self) -> bool:
        """Whether part of the set is already on disk (the download goes on from there)."""
        return any(i.to_fetch < i.model.size for i in self.plan.missing)

    def show_error(self, text: str) -> None:
        self.message.setStyleSheet("color: #e5534b;")
        self.message.setText(text)

    def show_info(self, text: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(text)

    # ---- the download ---------------------------------------------------------------------------
    @Slot()
    def start(self) -> int | None:
        """Download what is missing (or, when nothing is, hand the set to the page)."""
        if self._job is not None:
            return None
        self.refresh()
        if self.plan.complete:
            self._use()
            return None
        if not self.plan.fits:
            self.show_error(self.plan.space_sentence())
            return None
        self.show_info("")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._job = self.worker.get_started(self.tool)
        self._update_buttons()
        return self._job

    @Slot()
    def cancel(self) -> None:
        if self._job is not None:
            self.worker.cancel()

    @property
    def running(self) -> bool:
        return self._job is not None

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self._job is None or total <= 0:
            return
        self.progress.setValue(int(1000 * min(done, total) / total))
        self.progress.setFormat(f"{human_size(done * 1024)} of {human_size(total * 1024)}")

    def _end_job(self) -> None:
        self._job = None
        self.progress.setVisible(False)
        self.step_label.setText("")
        self.refresh()

    @Slot(int, object)
    def _on_finished(self, job_id: int, _result: object) -> None:
        if job_id != self._job:
            return
        self._end_job()
        names = ", ".join(i.model.name for i in self.plan.items)
        self.show_info(f"Ready: {names}. {self.plan.tool_name} uses them now.")
        self._use()

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id != self._job:
            return
        self._end_job()
        done = [i.model.name for i in self.plan.items if i.ready]
        kept = f" Kept: {', '.join(done)}." if done else ""
        self.show_error(f"{message}{kept} Click {self.download_button.text().split(' ')[0]} to try again.")

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        if job_id != self._job:
            return
        self._end_job()
        if self._resumes():
            self.show_info("Download cancelled. What was downloaded is kept; click Resume to go on.")
        else:  # cancelled before the first bytes reached the disk
            self.show_info("Download cancelled before anything arrived; click Download to start again.")

    def _use(self) -> None:
        if self.plan.complete:
            self.ready.emit(self.tool, [i.model.id for i in self.plan.items])

    # ---- closing ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._job is not None:
            self.worker.cancel()
        if self._owns_worker:
            self.worker.stop()

    def reject(self) -> None:
        if self._job is not None:  # Escape while downloading cancels the download first
            self.cancel()
            return
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
