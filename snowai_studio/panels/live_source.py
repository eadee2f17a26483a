"""The live-source panel of a page: which camera or microphone, Start/Stop, frame rate and latency,
a Retry bar when the device stops, and (for pictures) recording into a chosen folder."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from snowai_studio.icons import icon
from snowai_studio.panels.output_panel import FolderRow
from snowai_studio.panels.tool_page import PRIMARY_ICON_COLOR
from snowai_studio.widgets.problem_bar import ProblemBar


def describe_camera(camera: str | None, report: Any = None) -> str:
    """'Camera 0' (with its name once the device scan in ``report`` found it, or saying it was not
    found), or 'Video file clip.mp4' when a file stands in for the camera."""
    from pathlib import PurePath

    value = (camera or "0").strip()
    if not value.isdigit():
        return f"Video file {PurePath(value).name}"
    cameras = getattr(report, "cameras", None)
    if cameras is None:
        return f"Camera {value}"
    found = next((c for c in cameras if str(getattr(c, "spec", "")) == value), None)
    if found is not None:
        name = str(getattr(found, "name", "") or "")
        return f"Camera {value} ({name})" if name and name != f"Camera {value}" else f"Camera {value}"
    if not cameras:
        return "No camera found: connect one, or choose a video file in Devices"
    return f"Camera {value} was not found: choose another in Devices"


def describe_microphone(microphone: str | None) -> str:
    from pathlib import PurePath

    if not microphone:
        return "The default microphone"
    if any(sep in microphone for sep in "/\\") and PurePath(microphone).suffix:
        return f"Sound file {PurePath(microphone).name} (looped)"
    return microphone


class _StatsLabel(QLabel):
    """A label that takes no room while it has nothing to say."""

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setVisible(bool(text))


class LiveSourcePanel(QWidget):
    """``start_requested``/``stop_requested`` come from the Start button; ``retry_requested`` from the
    problem bar's Retry; ``record_toggled`` from Record (when the panel records)."""

    start_requested = Signal()
    stop_requested = Signal()
    retry_requested = Signal()
    record_toggled = Signal(bool)
    devices_requested = Signal()

    def __init__(
        self,
        kind: str = "camera",
        *,
        object_name: str = "liveSource",
        start_text: str = "Start live",
        stop_text: str = "Stop live",
        recording: bool = False,
        show_start: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.kind = kind
        self.start_text, self.stop_text = start_text, stop_text
        self.source_label = QLabel()
        self.source_label.setObjectName(f"{object_name}Device")
        self.source_label.setWordWrap(True)
        change = QPushButton("Devices…")
        change.setToolTip(f"Choose the {kind}: a device, or a file that stands in for one")
        change.clicked.connect(self.devices_requested)
        self.start_button = QPushButton(start_text)
        self.start_button.setObjectName(f"{object_name}Start")
        self.start_button.setCheckable(True)
        self.start_button.setProperty("primary", True)
        self.start_button.setIcon(icon("live", PRIMARY_ICON_COLOR))
        self.start_button.clicked.connect(self._on_clicked)
        self.stats_label = _StatsLabel()
        self.stats_label.setObjectName(f"{object_name}Stats")
        self.stats_label.setWordWrap(True)
        self.problem = ProblemBar(f"{object_name}Problem")
        self.problem.retry_requested.connect(self.retry_requested)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.source_label, 1)
        top.addWidget(change)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.start_button)
        # A page whose action bar has the Start/Stop action keeps the button hidden (its state still counts).
        self.start_button.setVisible(show_start)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.problem)

        self.record_button: QPushButton | None = None
        self.folder: FolderRow | None = None
        if recording:
            self.record_button = QPushButton(icon("record", "#d64545"), "Record")
            self.record_button.setObjectName(f"{object_name}Record")
            self.record_button.setCheckable(True)
            self.record_button.setEnabled(False)
            self.record_button.setToolTip("Record what the preview shows to an MP4 file in the folder below")
            self.record_button.toggled.connect(self._on_record_clicked)
            self.folder = FolderRow("Recordings go to")
            layout.addWidget(self.record_button)
            layout.addWidget(self.folder)
        self._available = True
        self._reason = ""
        self.set_running(False)

    # ---- state ----------------------------------------------------------------------------------
    def set_device_text(self, text: str) -> None:
        self.source_label.setText(text)

    def set_available(self, available: bool, reason: str = "") -> None:
        """Without a device Start is disabled and its tooltip says why."""
        self._available = available
        self._reason = "" if available else reason
        self.start_button.setEnabled(available or self.running)
        self.start_button.setToolTip("" if available else reason)
        if not self.running:  # the reason shows while stopped; it goes once the device is back
            self.stats_label.setText(self._reason)

    @property
    def running(self) -> bool:
        return self.start_button.isChecked()

    def set_running(self, running: bool) -> None:
        """Show the live state (no signal is sent)."""
        self.start_button.blockSignals(True)
        self.start_button.setChecked(running)
        self.start_button.blockSignals(False)
        self.start_button.setText(self.stop_text if running else self.start_text)
        self.start_button.setIcon(icon("stop" if running else "live", PRIMARY_ICON_COLOR))
        self.start_button.setEnabled(self._available or running)
        if self.record_button is not None:
            self.record_button.setEnabled(running)
            if not running:
                self.set_recording(False)
        if not running:
            self.stats_label.setText(self._reason)
        else:
            self.problem.clear()

    def set_recording(self, on: bool) -> None:
        if self.record_button is None:
            return
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.setText("Stop recording" if on else "Record")
        self.record_button.blockSignals(False)

    def set_stats(self, text: str) -> None:
        self.stats_label.setText(text)

    def show_problem(self, text: str) -> None:
        self.problem.show_problem(text)

    def _on_record_clicked(self, on: bool) -> None:
        if self.record_button is not None:
            self.record_button.setText("Stop recording" if on else "Record")
        self.record_toggled.emit(on)

    def _on_clicked(self, checked: bool) -> None:
        # The owner confirms with set_running once the source really started or stopped.
        self.start_button.blockSignals(True)
        self.start_button.setChecked(not checked)
        self.start_button.blockSignals(False)
        (self.start_requested if checked else self.stop_requested).emit()

