"""Settings: theme, compute device, where models are stored, and the local API."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.dialogs.local_api_section import LocalApiSection
from workers import paths
from workers.settings import Settings

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
COMPUTE_LABELS = {"auto": "Automatic (GPU when available)", "cpu": "CPU only", "cuda": "NVIDIA GPU (CUDA)"}


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.theme = QComboBox()
        for key, label in THEME_LABELS.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(list(THEME_LABELS).index(settings.theme))
        self.compute = QComboBox()
        for key, label in COMPUTE_LABELS.items():
            self.compute.addItem(label, key)
        self.compute.setCurrentIndex(list(COMPUTE_LABELS).index(settings.compute))
        self.store = QLineEdit(settings.model_store or "")
        self.store.setPlaceholderText(str(paths.models_dir()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        store_row = QHBoxLayout()
        store_row.addWidget(self.store, 1)
        store_row.addWidget(browse)
        self.message = QLabel()
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Theme", self.theme)
        form.addRow("Compute device", self.compute)
        form.addRow("Model folder", store_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.local_api = LocalApiSection(settings)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.local_api)
        layout.addWidget(
            QLabel(f"Settings are saved in {Settings.path()}. Leave the model folder empty for the default.")
        )
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.store.text() or str(paths.models_dir()))
        if folder:
            self.store.setText(folder)

    def accept(self) -> None:
        text = self.store.text().strip()
        if text:
            folder = Path(text).expanduser()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / ".snowai-write-test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                self.message.setText(f"The model folder {folder} cannot be used: {exc.strerror or exc}.")
                return
        problem = self.local_api.problem()
        if problem:
            self.message.setText(problem)
            return
        self.local_api.save_into(self.settings)
        self.settings.theme = self.theme.currentData()
        self.settings.compute = self.compute.currentData()
        self.settings.model_store = text or None
        super().accept()
