"""The live view in the middle of the voice-conversion page: the shared live-source panel (microphone,
Start/Stop, the live numbers, Retry), the input and output level meters, and big readouts of the pitch,
the latency and the speed."""

from __future__ import annotations

from collections import deque
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QCheckBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from snowai_studio.panels.live_source import LiveSourcePanel
from snowai_studio.voice_conversion.texts import semitones
from snowai_studio.widgets.level_meter import LevelMeter


class Readout(QFrame):
    """A small caption over a large value ("Latency" / "330 ms")."""

    def __init__(self, caption: str, tip: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("svcReadout")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.caption = QLabel(caption)
        self.caption.setProperty("hint", True)
        self.value = QLabel("—")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if tip:
            self.setToolTip(tip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 6)
        layout.setSpacing(0)
        layout.addWidget(self.caption)
        layout.addWidget(self.value)

    def set_text(self, text: str) -> None:
        self.value.setText(text)


class LevelHistory(QWidget):
    """The microphone's and the converted voice's levels over the last seconds: the microphone as a
    filled area, the converted voice as a line over it (dBFS, -60 to 0)."""

    FLOOR = -60.0

    def __init__(self, points: int = 150, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("svcLevelHistory")
        self.setMinimumHeight(60)
        self.setToolTip("Microphone (filled) and converted voice (line) over the last seconds")
        self.levels: deque[tuple[float, float]] = deque(maxlen=points)

    def add(self, input_dbfs: float, output_dbfs: float) -> None:
        self.levels.append((max(self.FLOOR, min(0.0, input_dbfs)), max(self.FLOOR, min(0.0, output_dbfs))))
        self.update()

    def clear(self) -> None:
        self.levels.clear()
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(400, 160)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        area = QRectF(self.rect()).adjusted(34, 6, -6, -6)
        painter.fillRect(QRectF(self.rect()), palette.color(QPalette.ColorRole.Base))
        grid = palette.color(QPalette.ColorRole.Mid)
        text = palette.color(QPalette.ColorRole.PlaceholderText)
        for db in (0, -12, -24, -36, -48, -60):
            y = area.top() + area.height() * db / self.FLOOR
            painter.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(text)
            painter.drawText(QRectF(0, y - 8, 30, 16), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                             f"{db}")
        if len(self.levels) < 2:
            what = "The levels of the last seconds show here while live"
            painter.drawText(area, int(Qt.AlignmentFlag.AlignCenter), what)
            painter.end()
            return
        step = area.width() / (self.levels.maxlen or len(self.levels))
        x0 = area.right() - step * (len(self.levels) - 1)

        def point(i: int, db: float) -> QPointF:
            return QPointF(x0 + i * step, area.top() + area.height() * db / self.FLOOR)

        mic = QPainterPath(QPointF(x0, area.bottom()))
        voice = QPainterPath(point(0, self.levels[0][1]))
        for i, (a, b) in enumerate(self.levels):
            mic.lineTo(point(i, a))
            voice.lineTo(point(i, b))
        mic.lineTo(QPointF(area.right(), area.bottom()))
        fill = QColor(palette.color(QPalette.ColorRole.Text))
        fill.setAlpha(60)
        painter.fillPath(mic, fill)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
        painter.drawPath(voice)
        painter.end()


class LiveView(QFrame):
    """What the live conversion is doing. The page drives it: :attr:`panel` for the device line, the
    numbers and Retry; :meth:`show_stats` for the meters, readouts and the level history."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("svcLiveView")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        title = QLabel("Live")
        title.setObjectName("svcLiveTitle")
        font = title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        title.setFont(font)
        self.state_label = QLabel()
        self.state_label.setObjectName("svcLiveState")
        self.state_label.setToolTip("Whether your microphone is being converted to the output now")
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.state_label)
        self.show_state("stopped")
        self.panel = LiveSourcePanel("microphone", object_name="svcLive")
        # Start/Stop is the page's Live button on the action bar; the panel's button only keeps the state.
        self.panel.start_button.hide()

        self.in_meter = LevelMeter()
        self.in_meter.setObjectName("svcInputLevel")
        self.in_meter.setToolTip("Microphone level")
        self.out_meter = LevelMeter()
        self.out_meter.setObjectName("svcOutputLevel")
        self.out_meter.setToolTip("Converted voice level")
        for meter in (self.in_meter, self.out_meter):
            meter.setMinimumHeight(16)
        meters = QGridLayout()
        meters.setContentsMargins(0, 0, 0, 0)
        meters.addWidget(QLabel("Microphone"), 0, 0)
        meters.addWidget(self.in_meter, 0, 1)
        meters.addWidget(QLabel("Converted"), 1, 0)
        meters.addWidget(self.out_meter, 1, 1)
        meters.setColumnStretch(1, 1)
        meters_box = QWidget()
        meters_box.setLayout(meters)

        self.pitch_readout = Readout("Pitch", "The pitch shift applied to your voice (Pitch & voice, on the right)")
        self.latency_readout = Readout("Latency", "From the microphone to the output: blocks, model and devices")
        self.speed_readout = Readout("Load", "Time the voice takes per block of audio (under 1x keeps up)")
        readouts = QHBoxLayout()
        readouts.setContentsMargins(0, 0, 0, 0)
        for readout in (self.pitch_readout, self.latency_readout, self.speed_readout):
            readouts.addWidget(readout, 1)
        readouts_box = QWidget()
        readouts_box.setLayout(readouts)

        self.passthrough = QCheckBox("Passthrough: hear yourself unconverted, to compare")
        self.passthrough.setObjectName("svcPassthrough")
        self.passthrough.setToolTip("Send the microphone to the output as it is")

        self.history = LevelHistory()
        self.history.hide()  # shown when there is room (set_roomy)

        # The panel: device line, then what is ours, then Start, the numbers and the problem bar.
        panel_layout = self.panel.layout()
        if isinstance(panel_layout, QVBoxLayout):
            panel_layout.insertWidget(1, meters_box)
            panel_layout.insertWidget(2, readouts_box)
            panel_layout.insertWidget(4, self.passthrough)
            panel_layout.addWidget(self.history, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        layout.addLayout(head)
        layout.addWidget(self.panel, 1)

    def show_state(self, state: str) -> None:
        """"live", "starting" or "stopped", beside the title (like a broadcast's on-air light)."""
        text = {"live": "● LIVE", "starting": "Starting…"}.get(state, "Stopped")
        self.state_label.setText(text)
        self.state_label.setProperty("hint", state != "live")
        self.state_label.setStyleSheet("color: rgb(214, 69, 69); font-weight: bold;" if state == "live" else "")

    def set_roomy(self, roomy: bool) -> None:
        """With room to spare (a wide window) the level history shows under the numbers."""
        self.history.setVisible(roomy)

    def show_pitch(self, pitch: float, voice: str) -> None:
        self.pitch_readout.set_text(semitones(pitch))
        self.pitch_readout.setToolTip(f"The pitch shift applied to your voice, with {voice}")

    def show_stats(self, stats: dict[str, Any]) -> None:
        """The live numbers of a block: levels and readouts."""
        if "input_dbfs" in stats:
            self.in_meter.set_level(float(stats["input_dbfs"]))
        if "output_dbfs" in stats:
            self.out_meter.set_level(float(stats["output_dbfs"]))
        if "input_dbfs" in stats and "output_dbfs" in stats:
            self.history.add(float(stats["input_dbfs"]), float(stats["output_dbfs"]))
        if "latency_ms" in stats:
            self.latency_readout.set_text(f"{float(stats['latency_ms']):.0f} ms")
        if "rtf" in stats:
            self.speed_readout.set_text(f"{float(stats['rtf']):.2f}x")

    def reset(self) -> None:
        self.in_meter.reset()
        self.out_meter.reset()
        self.latency_readout.set_text("—")
        self.speed_readout.set_text("—")
