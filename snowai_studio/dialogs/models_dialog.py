"""The model manager dialog: what is installed, what can be downloaded, and the user's own models.

Importing takes one step: the user picks a model file (or folder); it is checked at once (a file that is
not a model is one sentence, nothing more is asked), the tool it is for is told from the file itself
(:func:`workers.models.detect.detect_model`), and one small dialog shows what was found, with the tool
(changeable) and a name to confirm. When the import is done the manager emits
:attr:`ModelManagerDialog.model_imported` with the tool and the new model's id, so a tool page can
select it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workers.errors import UserError, describe_exception
from workers.models.detect import Detection, detect_model
from workers.models.manifest import TOOL_NAMES, TOOLS
from workers.models.store import (
    SIZE_ONLY_NOTE,
    STATUS_TEXT,
    DiskUsage,
    Model,
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
MODEL_FILTER = "Models (*.onnx *.pth *.pt *.ckpt *.safetensors *.gguf *.bin);;All files (*)"


class ImportModelDialog(QDialog):
    """The one confirmation of an import: what the file was found to be, the tool it goes to (changeable)
    and the name it will have."""

    def __init__(self, detection: Detection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a model")
        self.detection = detection
        self.found = QLabel(detection.summary())
        self.found.setWordWrap(True)
        self.found.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tool_combo = QComboBox()
        self.tool_combo.setObjectName("import_tool")
        for tool in TOOLS:
            self.tool_combo.addItem(TOOL_NAMES[tool], tool)
        self.tool_combo.setPlaceholderText("Choose a tool")
        self.tool_combo.setCurrentIndex(self.tool_combo.findData(detection.tool) if detection.tool else -1)
        self.name_edit = QLineEdit(detection.name)
        self.name_edit.setObjectName("import_name")
        self.name_edit.selectAll()
        form = QFormLayout()
        form.addRow("For", self.tool_combo)
        form.addRow("Name", self.name_edit)
        if detection.companions:
            form.addRow("With", QLabel(", ".join(p.name for p in detection.companions)))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.found)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.tool_combo.currentIndexChanged.connect(self._update)
        self.name_edit.textChanged.connect(self._update)
        self._update()

    def tool(self) -> str | None:
        data = self.tool_combo.currentData()
        return str(data) if data else None

    def name(self) -> str:
        return self.name_edit.text().strip()

    def _update(self) -> None:
        self.import_button.setEnabled(self.tool() is not None and bool(self.name()))


class ModelManagerDialog(QDialog):
    """Lists every model grouped by tool, with Download, Import, Verify, Remove and Open folder."""

    #: An import finished: the tool the model is for and its new model id (a page can select it).
    model_imported = Signal(str, str)

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
        #: Where the store's disk space goes, as last shown (see ModelStore.disk_usage).
        self.usage: DiskUsage | None = None
        #: The confirmation shown for the last import (kept for tests and scripting).
        self.import_dialog: ImportModelDialog | None = None

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
        import_menu = QMenu(self.import_button)
        self.import_file_action = import_menu.addAction("Model file…", self.import_file)
        self.import_folder_action = import_menu.addAction("Model folder…", self.import_folder)
        self.import_button.setMenu(import_menu)
        self.import_button.setToolTip(
            "Import your own model file or folder; the tool it is for is found from the file itself"
        )
        self.verify_button = QPushButton("Verify")
        self.remove_button = QPushButton("Remove")
        self.folder_button = QPushButton("Open folder")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.close_button = QPushButton("Close")
        self.download_button.clicked.connect(self.download_selected)
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
        self.usage = usage
        self.usage_label.setText(f"Model store: {self.store.root} — {usage.summary()}")
        self.usage_label.setToolTip(
            "Sizes from the model store's folder; models that ship inside installed Python packages are "
            "used where they are."
        )
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

    # ---- import ------------------------------------------------------------------------------
    def ask_model_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model file", str(Path.home()), MODEL_FILTER)
        return path or None

    def ask_model_folder(self) -> str | None:
        path = QFileDialog.getExistingDirectory(self, "Import a model folder", str(Path.home()))
        return path or None

    @Slot()
    def import_file(self) -> int | None:
        """Import… → Model file…: pick a file, then :meth:`import_interactively`."""
        path = self.ask_model_file()
        return self.import_interactively(Path(path)) if path else None

    @Slot()
    def import_folder(self) -> int | None:
        """Import… → Model folder…: pick a folder, then :meth:`import_interactively`."""
        path = self.ask_model_folder()
        return self.import_interactively(Path(path)) if path else None

    def import_interactively(self, path: Path) -> int | None:
        """Check the file at once, tell its tool, ask once (:meth:`confirm_import`), then import it.

        Something that is not a model is one sentence in the message line and nothing else is asked.
        Returns the import job's id, or None when nothing was imported."""
        if self._job is not None:
            self.show_error("Wait for the current task to finish, or cancel it.")
            return None
        try:
            detection = detect_model(path)
        except UserError as exc:
            self.show_error(str(exc))
            return None
        except Exception as exc:  # an unexpected failure while looking into the file: still a sentence
            log.warning("Looking into %s failed", path, exc_info=True)
            self.show_error(describe_exception(exc, f"{Path(path).name} could not be read"))
            return None
        choice = self.confirm_import(detection)
        if choice is None:
            self.show_info("Nothing was imported.")
            return None
        tool, name = choice
        return self.import_path(Path(path), tool, name, kind=detection.kind, companions=detection.companions)

    def confirm_import(self, detection: Detection) -> tuple[str, str] | None:
        """The one confirmation: (tool, name), or None when the user cancels."""
        dialog = ImportModelDialog(detection, self)
        self.import_dialog = dialog
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted or dialog.tool() is None:
                return None
            return str(dialog.tool()), dialog.name()
        finally:
            dialog.deleteLater()

    def import_path(
        self,
        path: Path,
        tool: str,
        name: str | None = None,
        *,
        kind: str | None = None,
        companions: tuple[Path, ...] = (),
    ) -> int | None:
        """Import without asking anything (the tool is given)."""
        if self._job is not None:
            self.show_error("Wait for the current task to finish, or cancel it.")
            return None
        self.show_info(f"Importing {path.name}…")
        job_id = self.worker.import_model(path, tool, name, kind=kind, companions=companions)
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
        elif isinstance(result, Model):
            self.show_info(f"Imported {result.name} for {TOOL_NAMES.get(result.tool, result.tool)}.")
            self._end_job()
            self.select(result.id)
            self.model_imported.emit(result.tool, result.id)
            return
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
