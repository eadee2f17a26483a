"""The studio's Home page: the tools with what to do first, and what this machine, its devices and
its models offer."""

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

from snowai_studio.context import StudioContext
from snowai_studio.icons import icon
from snowai_studio.panels.tool_page import push_button
from snowai_studio.tools import ToolSpec
from workers import paths
from workers.errors import describe_exception

log = logging.getLogger(__name__)

TOOLS = {
    "face_swap": "Face swap",
    "matting": "Background removal",
    "assistant": "Voice assistant",
    "voice_conversion": "Voice conversion",
    "live": "Go live",
}


#: What to do first on each tool's page.
FIRST_STEPS = {
    "face_swap": "First: choose a face photo, then an image, a video or Start live.",
    "matting": "First: open or drop a photo; the background is removed at once.",
    "assistant": "First: press Start listening and ask a question, or type one.",
    "voice_conversion": "First: pick a voice, then convert a recording or go live.",
    "live": "First: choose a face and a voice, then Go live; call programs pick SnowAI Microphone.",
}


def _card(title: str, icon_name: str = "") -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    head = QHBoxLayout()
    if icon_name:
        badge = QLabel()
        badge.setPixmap(icon(icon_name).pixmap(22, 22))
        head.addWidget(badge)
    heading = QLabel(title)
    heading.setObjectName("cardTitle")
    head.addWidget(heading, 1)
    layout.addLayout(head)
    return frame, layout


def _value_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class HomePage(QScrollArea):
    """Where the studio opens: the four tools with what to do first, then this machine, its devices
    and models."""

    devices_requested = Signal()
    models_requested = Signal()
    #: The user picked a tool card: its id.
    tool_requested = Signal(str)
    #: "Get the recommended models" on a tool card: its id.
    get_started_requested = Signal(str)

    def __init__(self, context: StudioContext, tools: list[ToolSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setObjectName("homePage")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(28, 22, 28, 22)
        outer.setSpacing(14)
        title = QLabel("Welcome to SnowAI Studio")
        title.setObjectName("overviewTitle")
        subtitle = QLabel(
            "Everything runs on this computer and works offline. Pick a tool to start; "
            "each one works right away with the models that came with the studio."
        )
        subtitle.setWordWrap(True)
        outer.addWidget(title)
        outer.addWidget(subtitle)

        tool_grid = QGridLayout()
        tool_grid.setSpacing(14)
        self.tool_buttons: dict[str, QPushButton] = {}
        for index, spec in enumerate(tools):
            card, lay = _card(spec.title, spec.icon)
            blurb = _value_label(spec.blurb)
            lay.addWidget(blurb)
            first = FIRST_STEPS.get(spec.id, "")
            if first:
                step = _value_label(first)
                step.setProperty("hint", True)
                lay.addWidget(step)
            lay.addStretch(1)
            number = index + 1
            button = push_button(f"Open {spec.title.lower()}", spec.icon, primary=True)
            button.setObjectName(f"home.open.{spec.id}")
            button.setToolTip(f"Ctrl+{number}")
            button.clicked.connect(lambda _checked=False, tool=spec.id: self.tool_requested.emit(tool))
            self.tool_buttons[spec.id] = button
            row = QHBoxLayout()
            row.addWidget(button)
            starter = self._starter_button(spec.id)
            if starter is not None:
                row.addWidget(starter)
            row.addStretch(1)
            lay.addLayout(row)
            tool_grid.addWidget(card, index // 2, index % 2)
        tool_grid.setColumnStretch(0, 1)
        tool_grid.setColumnStretch(1, 1)
        outer.addLayout(tool_grid)

        grid = QGridLayout()
        grid.setSpacing(14)
        outer.addLayout(grid)

        card, lay = _card("This computer", "settings")
        self.compute_value = _value_label("Detecting the compute device…")
        mem = psutil.virtual_memory().total / 2**30
        self.machine_value = _value_label(f"{os.cpu_count() or 1} CPU threads · {mem:.1f} GiB memory")
        lay.addWidget(self.compute_value)
        lay.addWidget(self.machine_value)
        lay.addStretch(1)
        grid.addWidget(card, 0, 0)

        card, lay = _card("Devices", "camera")
        self.devices_value = _value_label("Looking for cameras, microphones and speakers…")
        lay.addWidget(self.devices_value)
        lay.addStretch(1)
        self.devices_button = push_button("Devices…", "camera")
        self.devices_button.clicked.connect(self.devices_requested)
        lay.addWidget(self.devices_button, 0, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(card, 0, 1)

        card, lay = _card("Models", "models")
        self.models_value = _value_label()
        lay.addWidget(self.models_value)
        lay.addStretch(1)
        row = QHBoxLayout()
        self.models_button = push_button("Model manager…", "models")
        self.models_button.clicked.connect(self.models_requested)
        store_button = push_button("Open the model folder", "folder")
        store_button.clicked.connect(self._open_store)
        row.addWidget(self.models_button)
        row.addWidget(store_button)
        row.addStretch(1)
        lay.addLayout(row)
        grid.addWidget(card, 0, 2)
        for column in range(3):
            grid.setColumnStretch(column, 1)

        self.folders_value = _value_label()
        self.folders_value.setProperty("hint", True)
        outer.addWidget(self.folders_value)
        outer.addStretch(1)
        self.setWidget(body)
        self.refresh_models()
        self._show_folders()

    def _starter_button(self, tool: str) -> QPushButton | None:
        store = self.context.model_store
        starter = getattr(getattr(store, "manifest", None), "starters", {}).get(tool)
        if starter is None:
            return None
        button = push_button("Recommended models…", "download")
        button.setObjectName(f"home.getStarted.{tool}")
        button.setToolTip(starter.summary)
        button.clicked.connect(lambda _checked=False, t=tool: self.get_started_requested.emit(t))
        return button

    def set_compute(self, info: Any) -> None:
        """The device in words; the runtimes' own names only in the tooltip."""
        gpu = getattr(info, "device", "cpu") != "cpu"
        plain = "Models run on the graphics card." if gpu else "Models run on the processor (no usable GPU found)."
        self.compute_value.setText(f"<b>{info.label()}</b><br>{plain}")
        details = [f"{name}: {what}" for name, what in info.runtimes.items()] + list(info.notes)
        self.compute_value.setToolTip("\n".join(details))

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
        self.folders_value.setText(
            f"Models in {store_root} · settings in {paths.config_dir()} · logs in {paths.log_dir()}"
        )

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
        rows.append(f"{name}: {counts['ready']} of {counts['known']} ready")
    usage = summarize_usage(store)
    return "<br>".join(rows) + (f"<br>{usage}" if usage else "")


def summarize_usage(store: Any) -> str:
    """The same sentence as the model manager's (one computation for both)."""
    try:
        return store.disk_usage().summary()
    except OSError:
        return ""
