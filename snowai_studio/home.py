"""The studio's home page: what this machine can run, which devices and models are here."""

from __future__ import annotations

import logging
import os
from typing import Any

import psutil
from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.docks import StudioContext
from workers import paths
from workers.errors import describe_exception

log = logging.getLogger(__name__)

TOOLS = {
    "face_swap": "Face swap",
    "matting": "Background removal",
    "assistant": "Voice assistant",
    "voice_conversion": "Voice conversion",
}


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    heading = QLabel(title)
    heading.setObjectName("cardTitle")
    layout.addWidget(heading)
    return frame, layout


def _value_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class OverviewPage(QScrollArea):
    devices_requested = Signal()
    models_requested = Signal()

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(24, 20, 24, 20)
        outer.setSpacing(14)
        title = QLabel("SnowAI Studio")
        title.setObjectName("overviewTitle")
        subtitle = QLabel(
            "Face swap, background removal, a voice assistant and voice conversion, "
            "all running on this machine. Nothing leaves it unless you start a download."
        )
        subtitle.setWordWrap(True)
        outer.addWidget(title)
        outer.addWidget(subtitle)

        grid = QGridLayout()
        grid.setSpacing(14)
        outer.addLayout(grid)

        card, lay = _card("This machine")
        self.compute_value = _value_label("Detecting the compute device…")
        mem = psutil.virtual_memory().total / 2**30
        self.machine_value = _value_label(f"{os.cpu_count() or 1} CPU threads · {mem:.1f} GiB memory")
        lay.addWidget(self.compute_value)
        lay.addWidget(self.machine_value)
        lay.addStretch(1)
        grid.addWidget(card, 0, 0)

        card, lay = _card("Devices")
        self.devices_value = _value_label("Looking for cameras, microphones and speakers…")
        lay.addWidget(self.devices_value)
        lay.addStretch(1)
        self.devices_button = QPushButton("Devices…")
        self.devices_button.clicked.connect(self.devices_requested)
        lay.addWidget(self.devices_button, 0, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(card, 0, 1)

        card, lay = _card("Models")
        self.models_value = _value_label()
        lay.addWidget(self.models_value)
        lay.addStretch(1)
        row = QHBoxLayout()
        self.models_button = QPushButton("Model manager…")
        self.models_button.clicked.connect(self.models_requested)
        store_button = QPushButton("Open the model folder")
        store_button.clicked.connect(self._open_store)
        row.addWidget(self.models_button)
        row.addWidget(store_button)
        row.addStretch(1)
        lay.addLayout(row)
        grid.addWidget(card, 1, 0, 1, 2)

        card, lay = _card("Folders")
        self.folders_value = _value_label()
        lay.addWidget(self.folders_value)
        grid.addWidget(card, 2, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        outer.addStretch(1)
        self.setWidget(body)
        self.refresh_models()
        self._show_folders()

    def set_compute(self, info: Any) -> None:
        text = f"<b>{info.label()}</b>"
        extra = [f"{name}: {what}" for name, what in info.runtimes.items()] + list(info.notes)
        if not info.runtimes:
            extra.append("No model runtime is installed yet; each tool installs its own.")
        self.compute_value.setText(text + "<br>" + "<br>".join(extra))

    def set_devices_summary(self, summary: str) -> None:
        self.devices_value.setText(summary)

    @Slot()
    def refresh_models(self) -> None:
        store = self.context.model_store
        if store is None:
            self.models_value.setText("The model store is not available.")
            return
        try:
            self.models_value.setText(models_summary_html(store))
        except Exception as exc:  # the store's folder may be unreadable: say so, keep going
            log.warning("%s", describe_exception(exc, "The model store could not be read"), exc_info=exc)
            self.models_value.setText(describe_exception(exc, "The model store could not be read"))

    def _show_folders(self) -> None:
        store = self.context.model_store
        store_root = getattr(store, "root", paths.models_dir())
        self.folders_value.setText(f"Models: {store_root}<br>Settings: {paths.config_dir()}<br>Logs: {paths.log_dir()}")

    def _open_store(self) -> None:
        root = getattr(self.context.model_store, "root", paths.models_dir())
        root.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(root)))


def models_summary_html(store: Any) -> str:
    """Per tool: how many models are ready (installed or shipped) out of how many are known."""
    from workers.models.store import summarize  # pure function, no Qt

    rows = []
    for tool, counts in summarize(store).items():
        name = TOOLS.get(tool, tool)
        rows.append(f"{name}: {counts['ready']} of {counts['known']} models ready")
    total = summarize_usage(store)
    return "<br>".join(rows) + (f"<br><br>Disk used by downloaded models: {total}" if total else "")


def summarize_usage(store: Any) -> str:
    from workers.models.store import human_size

    try:
        return human_size(store.disk_usage_total())
    except OSError:
        return ""
