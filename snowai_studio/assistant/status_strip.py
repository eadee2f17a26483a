"""The row above the transcript that says what the assistant is doing: a coloured state pill, the
microphone's level and how sure the speech detector is that someone speaks."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from snowai_studio.widgets.level_meter import LevelMeter

#: state → (text, colour).
STATE_LOOK: dict[str, tuple[str, QColor]] = {
    "off": ("Not listening", QColor(128, 128, 136)),
    "loading": ("Loading…", QColor(150, 120, 200)),
    "idle": ("Ready", QColor(128, 128, 136)),
    "listening": ("Listening", QColor(60, 170, 90)),
    "hearing": ("Hearing you…", QColor(40, 200, 90)),
    "thinking": ("Thinking…", QColor(225, 160, 40)),
    "speaking": ("Speaking…", QColor(60, 140, 230)),
    "stopped": ("Stopped", QColor(128, 128, 136)),
    "failed": ("Not available", QColor(210, 70, 70)),
}


class StatePill(QLabel):
    """A rounded, coloured label saying what the assistant is doing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantState")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumWidth(130)
        self.state = ""
        self.set_state("off")

    def set_state(self, state: str, text: str | None = None) -> None:
        label, colour = STATE_LOOK.get(state, (state.capitalize(), QColor(128, 128, 136)))
        self.state = state
        self.setText(text or label)
        r, g, b = colour.red(), colour.green(), colour.blue()
        self.setStyleSheet(
            f"QLabel#assistantState {{ border: 1px solid rgb({r}, {g}, {b}); border-radius: 10px; "
            f"background: rgba({r}, {g}, {b}, 55); padding: 2px 12px; font-weight: 600; }}"
        )


class StatusStrip(QWidget):
    """``pill`` (the state), ``level_meter`` (the microphone) and ``voice_label`` (speech probability)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pill = StatePill()
        self.level_meter = LevelMeter()
        self.level_meter.setObjectName("assistantLevel")
        self.level_meter.setToolTip("The microphone's level")
        self.level_meter.setMaximumWidth(420)
        self.voice_label = QLabel()
        self.voice_label.setObjectName("assistantVoiceProb")
        self.voice_label.setMinimumWidth(110)
        self.voice_label.setProperty("hint", True)
        self.voice_label.setToolTip("How sure the speech detector is that you are speaking")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.pill)
        row.addWidget(self.level_meter, 1)
        row.addWidget(self.voice_label)
        row.addStretch(0)

    def quiet(self) -> None:
        """The microphone is closed: no level, no voice."""
        self.level_meter.reset()
        self.voice_label.setText("")
