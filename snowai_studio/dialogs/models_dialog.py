"""The model manager dialog: what is installed, what can be downloaded, and the user's own models."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workers.errors import describe_exception
from workers.models.manifest import TOOL_NAMES, TOOLS
from workers.models.store import (
    SIZE_ONLY_NOTE,
    STATUS_TEXT,
    ModelState,
    ModelStore,
    Status,
    VerifyReport,
    human_size,
)
from workers.models.worker import ModelDownloadWorker

log = logging.getLogger(__name__)

COLUMNS = ("Name", "Size", "Licence", "Status", "Source")
#: Column widths in pixels beyond which a long name or licence is cut (the tooltip has it all).
MAX_WIDTHS = (330, 90, 230, 360, 200)
ID_ROLE = Qt.ItemDataRole.UserRole


class ModelManagerDialog(QDialog):
    """Lists every model grouped by tool, with Download, Import, Verify, Remove and Open folder."""

    def __init__(
        self, store: ModelStore, parent: QWidget | None = None, *, worker: ModelDownloadWorker | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(980, 560)
        self.store = store
        self._job: int | None = None
        self._job_kind = ""
        self._job_model = ""

        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemSelectionChanged.connect(self._update_buttons)

        self.offline_note = QLabel("Downloads only happen when you click Download. Everything else works offline.")
        self.offline_note.setWordWrap(True)
        self.usage_label = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setVisible(False)

        self.download_button = QPushButton("Download")
        self.import_button = QPushButton("Import…")
        self.verify_button = QPushButton("Verify")
        self.remove_button = QPushButton("Remove")
        self.folder_button = QPushButton("Open folder")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.close_button = QPushButton("Close")
        self.download_button.clicked.connect(self.download_selected)
        self.import_button.clicked.connect(self._ask_import)
        self.verify_button.clicked.connect(self.verify_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.folder_button.clicked.connect(self.open_folder)
        self.cancel_button.clicked.connect(self.cancel_job)
        self.close_button.clicked.connect(self.accept)

        buttons = QHBoxLayout()
        for b in (self.download_button, self.import_button, self.verify_button, self.remove_button, self.folder_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.offline_note)
        layout.addWidget(self.tree, 1)
        layout.addLayout(progress_row)
        layout.addWidget(self.message)
        layout.addWidget(self.usage_label)
        layout.addLayout(buttons)

        self.worker = worker or ModelDownloadWorker(store)
        self._owns_worker = worker is None
        self.worker.progress.connect(self._on_progress)
        self.worker.job_finished.connect(self._on_finished)
        self.worker.job_failed.connect(self._on_failed)
        self.worker.job_cancelled.connect(self._on_cancelled)
        if self._owns_worker:
            self.worker.start()
        self.refresh()

    # ---- table -------------------------------------------------------------------------------
    def refresh(self) -> None:
        selected = self.selected_id()
        self.tree.clear()
        try:
            states = self.store.states()
            usage = self.store.disk_usage()
        except Exception as exc:
            self.show_error(describe_exception(exc, "The model list could not be read"))
            return
        groups: dict[str, QTreeWidgetItem] = {}
        for tool in TOOLS:
            group = QTreeWidgetItem([TOOL_NAMES[tool]])
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            groups[tool] = group
            self.tree.addTopLevelItem(group)
        for st in states:
            item = QTreeWidgetItem(
                [
                    st.model.name,
                    human_size(st.model.size),
                    st.model.licence,
                    self.status_text(st),
                    st.model.source_summary(),
                ]
            )
            item.setData(0, ID_ROLE, st.model.id)
            tip = f"{st.model.description}\nLicence: {st.model.licence}\n{st.message}"
            for col in range(len(COLUMNS)):
                item.setToolTip(col, tip)
            groups[st.model.tool].addChild(item)
            if st.model.id == selected:
                item.setSelected(True)
        self.tree.expandAll()
        for col, widest in enumerate(MAX_WIDTHS):
            self.tree.resizeColumnToContents(col)
            if self.tree.columnWidth(col) > widest:
                self.tree.setColumnWidth(col, widest)  # the whole text stays in the tooltip
        self.usage_label.setText(f"Model store: {self.store.root} — {human_size(usage.total)} on disk.")
        self._update_buttons()

    @staticmethod
    def status_text(st: ModelState) -> str:
        text = STATUS_TEXT[st.status]
        if st.status is Status.SHIPPED_MISSING and st.pip_hint:
            text += f": {st.pip_hint}"
        if st.model.size_only:
            text += " — not checksum-verified (no checksum is published)"
        return text

    def rows(self) -> dict[str, QTreeWidgetItem]:
        """Model id -> row (for tests and the main window)."""
        out = {}
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                child = group.child(j)
                out[child.data(0, ID_ROLE)] = child
        return out

    def select(self, model_id: str) -> None:
        self.tree.clearSelection()
        row = self.rows().get(model_id)
        if row is not None:
            row.setSelected(True)
            self.tree.setCurrentItem(row)

    def selected_id(self) -> str | None:
        items = self.tree.selectedItems()
        if not items:
            return None
        value = items[0].data(0, ID_ROLE)
        return str(value) if value else None

    def _update_buttons(self) -> None:
        busy = self._job is not None
        model_id = self.selected_id()
        state = None
        if model_id:
            try:
                state = self.store.state(model_id)
            except Exception:
                state = None
        can_download = (state is not None and state.status in (Status.MISSING, Status.PARTIAL)) or (
            state is not None
            and state.status is Status.SHIPPED_AVAILABLE
            and any(f.where == "join" for f in state.files)
        )
        self.download_button.setEnabled(not busy and bool(can_download))
        self.verify_button.setEnabled(not busy and state is not None and state.usable)
        self.remove_button.setEnabled(not busy and state is not None and self.store._dir(state.model).exists())
        self.folder_button.setEnabled(True)
        self.import_button.setEnabled(not busy)

    # ---- actions -----------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(text)

    def show_info(self, text: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(text)

    def _start(self, kind: str, model_id: str, job_id: int) -> None:
        self._job, self._job_kind, self._job_model = job_id, kind, model_id
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._update_buttons()

    @Slot()
    def download_selected(self) -> int | None:
        model_id = self.selected_id()
        if model_id is None:
            self.show_error("Choose a model in the list first.")
            return None
        return self.download(model_id)

    def download(self, model_id: str) -> int | None:
        if self._job is not None:
            self.show_error("Wait for the current task to finish, or cancel it.")
            return None
        model = self.store.get(model_id)
        self.show_info(f"Downloading {model.name} ({human_size(model.size)})…")
        job_id = self.worker.download(model_id)
        self._start("download", model_id, job_id)
        return job_id

    @Slot()
    def verify_selected(self) -> int | None:
        model_id = self.selected_id()
        if model_id is None:
            self.show_error("Choose a model in the list first.")
            return None
        self.show_info("Checking the files against their checksums…")
        job_id = self.worker.verify(model_id)
        self._start("verify", model_id, job_id)
        return job_id

    @Slot()
    def remove_selected(self) -> None:
        model_id = self.selected_id()
        if model_id is None:
            self.show_error("Choose a model in the list first.")
            return
        try:
            freed = self.store.remove(model_id)
        except Exception as exc:
            self.show_error(describe_exception(exc))
            return
        self.show_info(
            f"Removed {self.store.get(model_id).name if model_id in self.rows() else model_id}; "
            f"{human_size(freed)} freed."
        )
        self.refresh()

    @Slot()
    def open_folder(self) -> None:
        model_id = self.selected_id()
        try:
            folder = self.store.path_of(model_id) if model_id else self.store.root
            if folder.is_file():
                folder = folder.parent
        except Exception:
            folder = self.store.model_dir(model_id) if model_id else self.store.root
            if not folder.exists():
                folder = self.store.root
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Import a model file",
            str(Path.home()),
            "Models (*.onnx *.pth *.pt *.ckpt *.safetensors *.gguf *.bin);;All files (*)",
        )
        if not path:
            return
        labels = [TOOL_NAMES[t] for t in TOOLS]
        label, ok = QInputDialog.getItem(self, "Import a model", "Which tool is this model for?", labels, 0, False)
        if not ok:
            return
        tool = TOOLS[labels.index(label)]
        name, ok = QInputDialog.getText(self, "Import a model", "Name:", text=Path(path).stem)
        if not ok:
            return
        self.import_path(Path(path), tool, name or None)

    def import_path(self, path: Path, tool: str, name: str | None = None) -> int | None:
        if self._job is not None:
            self.show_error("Wait for the current task to finish, or cancel it.")
            return None
        self.show_info(f"Importing {path.name}…")
        job_id = self.worker.import_model(path, tool, name)
        self._start("import", name or path.stem, job_id)
        return job_id

    @Slot()
    def cancel_job(self) -> None:
        if self._job is not None:
            self.worker.cancel()

    # ---- worker results ----------------------------------------------------------------------
    def _end_job(self) -> None:
        self._job = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.refresh()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self._job is None:
            return
        if total > 0:
            scale = max(1, total // 1_000_000_000 + 1)
            self.progress.setRange(0, total // scale)
            self.progress.setValue(done // scale)

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: object) -> None:
        if job_id != self._job:
            return
        if isinstance(result, VerifyReport):
            if result.ok:
                self.show_info(result.summary())
            else:
                self.show_error(result.summary())
        elif isinstance(result, ModelState):
            note = f" Note: some files {SIZE_ONLY_NOTE}." if result.model.size_only else ""
            self.show_info(f"{result.model.name}: {result.message}{note}")
        else:
            name = getattr(result, "name", self._job_model)
            self.show_info(f"Imported {name}.")
        self._end_job()

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id != self._job:
            return
        self.show_error(message)
        self._end_job()

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        if job_id != self._job:
            return
        what = "Download" if self._job_kind == "download" else self._job_kind.capitalize()
        resume = " Click Download again to resume." if self._job_kind == "download" else ""
        self.show_info(f"{what} cancelled.{resume}")
        self._end_job()

    # ---- closing -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._owns_worker:
            self.worker.stop()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
