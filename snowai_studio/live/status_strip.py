"""Under the Go live preview: the state, each stream's latency, the levels and the message line."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from snowai_studio.widgets.level_meter import LevelMeter
from snowai_studio.widgets.status_rows import MessageLine


class LiveStatus(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = QLabel("Not live")
        self.state.setObjectName("live.state")
        font = self.state.font()
        font.setBold(True)
        self.state.setFont(font)
        self.numbers = QLabel("")
        self.numbers.setObjectName("live.numbers")
        self.numbers.setToolTip("Each stream's latency from the device to the outputs, and which one waits")
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.state)
        head.addStretch(1)
        head.addWidget(self.numbers)
        self.in_meter = LevelMeter()
        self.in_meter.setObjectName("live.inputLevel")
        self.out_meter = LevelMeter()
        self.out_meter.setObjectName("live.outputLevel")
        meters = QGridLayout()
        meters.setContentsMargins(0, 0, 0, 0)
        meters.addWidget(QLabel("Microphone"), 0, 0)
        meters.addWidget(self.in_meter, 0, 1)
        meters.addWidget(QLabel("Voice out"), 0, 2)
        meters.addWidget(self.out_meter, 0, 3)
        self.message = MessageLine("live.message")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        col.addLayout(head)
        col.addLayout(meters)
        col.addWidget(self.message)

    def show_state(self, live: bool, extra: str = "") -> None:
        self.state.setText(("Live" if live else "Not live") + (f" · {extra}" if extra else ""))

    def show_stats(self, stats: dict[str, Any]) -> None:
        parts = [f"picture {float(stats.get('video_ms', 0)):.0f} ms", f"voice {float(stats.get('audio_ms', 0)):.0f} ms"]
        if stats.get("video_delay_ms"):
            parts.append(f"picture waits {float(stats['video_delay_ms']):.0f} ms")
        elif stats.get("audio_delay_ms"):
            parts.append(f"voice waits {float(stats['audio_delay_ms']):.0f} ms")
        if stats.get("fps"):
            parts.append(f"{float(stats['fps']):.0f} fps")
        self.numbers.setText(" · ".join(parts))
        self.in_meter.set_level(float(stats.get("input_dbfs", -120.0)))
        self.out_meter.set_level(float(stats.get("output_dbfs", -120.0)))
