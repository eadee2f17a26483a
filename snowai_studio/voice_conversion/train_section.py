"""The inspector's "Train a voice" section: recordings, what they give, architecture and size, progress
with the time left, the loss curves, the latest preview, and the saved steps to use as the voice.

Widgets only: :class:`~snowai_studio.voice_conversion.train_control.TrainControl` runs the training."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.panels.tool_page import push_button
from snowai_studio.voice_conversion.inspector_sections import compact, hint, labelled
from snowai_studio.voice_conversion.loss_chart import LossChart

#: Architecture choices: label -> "arch:sample rate".
ARCHITECTURES = {
    "RVC v2, 40 kHz": "rvc-v2:40000",
    "RVC v2, 48 kHz": "rvc-v2:48000",
    "RVC v2, 32 kHz": "rvc-v2:32000",
    "so-vits-svc 4.1 (44.1 kHz)": "sovits-4.1:44100",
}
#: Size presets: label -> (size, tooltip).
SIZES = {
    "Tiny: try it": ("tiny", "A few kilobytes of weights: minutes on any CPU, to try the steps (not a usable voice)"),
    "Small: CPU": ("small", "A reduced network that a CPU trains in hours"),
    "Full: GPU": ("full", "The published architecture, fine-tuned from the pretrained base (Models); for a GPU"),
}


class TrainSection(QWidget):
    choose_folder_requested = Signal()
    train_requested = Signal()
    listen_requested = Signal()
    use_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name_edit = QLineEdit("my-voice")
        self.name_edit.setObjectName("svcTrainName")
        self.name_edit.setToolTip("The voice's name: its folder under the studio's data folder")
        self.folder_button = push_button(
            "Recordings…", "open", tip="A folder of recordings of the voice (sub-folders: speakers)"
        )
        self.folder_button.setObjectName("svcTrainFolder")
        self.folder_label = QLabel("No recordings chosen")
        self.folder_label.setWordWrap(True)
        self.report = hint("", "svcTrainReport")
        self.arch_combo = compact(QComboBox())
        self.arch_combo.setObjectName("svcTrainArch")
        for label, value in ARCHITECTURES.items():
            self.arch_combo.addItem(label, value)
        self.size_combo = compact(QComboBox())
        self.size_combo.setObjectName("svcTrainSize")
        for label, (key, tip) in SIZES.items():
            self.size_combo.addItem(label, key)
            self.size_combo.setItemData(self.size_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.steps = QSpinBox()
        self.steps.setObjectName("svcTrainSteps")
        self.steps.setRange(2, 1_000_000)
        self.steps.setSingleStep(100)
        self.steps.setToolTip("Train up to this step (a stopped run continues from its last saved step)")
        self.train_button = push_button("Train", "voice_conversion", primary=True, tip="Start or continue training")
        self.train_button.setObjectName("svcTrainButton")
        self.progress = QProgressBar()
        self.progress.setObjectName("svcTrainProgress")
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.status = hint("", "svcTrainStatus")
        self.chart = LossChart()
        self.preview_label = QLabel("No preview yet")
        self.preview_label.setObjectName("svcTrainPreview")
        self.listen_button = QPushButton("Listen")
        self.listen_button.setObjectName("svcTrainListen")
        self.listen_button.setToolTip("Play the latest preview: the first recording converted by the voice so far")
        self.listen_button.setEnabled(False)
        self.checkpoint_combo = compact(QComboBox(), 12)
        self.checkpoint_combo.setObjectName("svcTrainCheckpoints")
        self.checkpoint_combo.setToolTip("Saved steps with their validation loss (lower is closer to the recordings)")
        self.use_button = push_button("Use this voice now", tip="Export the chosen step and load it as the voice above")
        self.use_button.setObjectName("svcTrainUse")
        self.use_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(labelled("Name", self.name_edit))
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_button)
        folder_row.addWidget(self.folder_label, 1)
        layout.addLayout(folder_row)
        layout.addWidget(self.report)
        layout.addWidget(labelled("Model", self.arch_combo))
        layout.addWidget(labelled("Size", self.size_combo))
        layout.addWidget(labelled("Steps", self.steps))
        layout.addWidget(self.train_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.chart)
        preview_row = QHBoxLayout()
        preview_row.addWidget(self.preview_label, 1)
        preview_row.addWidget(self.listen_button)
        layout.addLayout(preview_row)
        layout.addWidget(labelled("Step", self.checkpoint_combo))
        layout.addWidget(self.use_button)

        self.folder_button.clicked.connect(self.choose_folder_requested)
        self.train_button.clicked.connect(self.train_requested)
        self.listen_button.clicked.connect(self.listen_requested)
        self.use_button.clicked.connect(self.use_requested)

    @property
    def arch(self) -> tuple[str, int]:
        arch, rate = str(self.arch_combo.currentData()).split(":")
        return arch, int(rate)

    @property
    def size(self) -> str:
        return str(self.size_combo.currentData())

    def set_running(self, running: bool) -> None:
        self.train_button.setText("Stop" if running else "Train")
        for widget in (self.name_edit, self.folder_button, self.arch_combo, self.size_combo, self.steps):
            widget.setEnabled(not running)
