"""Where the wait for an answer went: the milestones of a turn (end of speech, recognised, first word,
first sound) as text and as a bar of coloured stages."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

#: The stages of one turn, in order: (key of the stage's end in the timings, name, colour).
STAGES = (
    ("endpoint", "pause detected", QColor(130, 130, 140)),
    ("asr", "recognition", QColor(70, 160, 230)),
    ("llm", "language model", QColor(235, 170, 50)),
    ("tts", "voice", QColor(70, 190, 110)),
)


def _num(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def milestones(data: dict[str, Any]) -> dict[str, float]:
    """When each stage of a turn ended, in ms after the end of the user's speech (or the send of a typed
    message): ``endpoint`` (the pause was recognised as the end of the turn), ``asr`` (the text was
    recognised), ``llm`` (the first token) and ``tts`` (the first audio). Missing stages are left out."""
    out: dict[str, float] = {}
    vad = _num(data, "speech_end_to_vad_ms")
    asr = _num(data, "asr_ms")  # like every *_ms: from the end of speech, so when recognition was done
    if vad is not None:
        out["endpoint"] = vad
    if asr is not None:
        out["asr"] = asr
    first_token = _num(data, "first_token_ms")
    if first_token is not None:
        out["llm"] = first_token
    first_audio = _num(data, "first_audio_ms")
    if first_audio is not None:
        out["tts"] = first_audio
    return out


def _seconds(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def timings_text(data: dict[str, Any], *, typed: bool = False) -> str:
    """ "End of speech → recognised 0.31 s → first word 0.62 s → first sound 1.05 s · 14 tokens/s"."""
    marks = milestones(data)
    if not marks and _num(data, "total_ms") is None:
        return ""
    parts = ["Sent" if typed or "asr" not in marks else "End of speech"]
    if "asr" in marks and not typed:
        parts.append(f"recognised {_seconds(marks['asr'])}")
    if "llm" in marks:
        parts.append(f"first word {_seconds(marks['llm'])}")
    if "tts" in marks:
        parts.append(f"first sound {_seconds(marks['tts'])}")
    text = " → ".join(parts)
    extra = []
    total = _num(data, "total_ms")
    if total is not None:
        extra.append(f"whole answer {_seconds(total)}")
    rate = _num(data, "tokens_per_s")
    if rate is not None and rate > 0:
        extra.append(f"{rate:.0f} tokens/s" if rate >= 10 else f"{rate:.1f} tokens/s")
    if extra:
        text += " · " + " · ".join(extra)
    return text


def stage_lengths(data: dict[str, Any]) -> list[tuple[str, float, QColor]]:
    """How long each stage took (name, ms, colour), in order."""
    marks = milestones(data)
    out = []
    previous = 0.0
    for key, name, colour in STAGES:
        if key in marks:
            out.append((name, max(0.0, marks[key] - previous), colour))
            previous = max(previous, marks[key])
    return out


def breakdown_text(data: dict[str, Any]) -> str:
    """ "pause detected 0.40 s + recognition 180 ms + language model 240 ms + voice 430 ms = first sound
    after 1.25 s": where the wait for the answer went."""
    stages = stage_lengths(data)
    if not stages:
        return ""
    marks = milestones(data)
    end = marks.get("tts", marks.get("llm", marks.get("asr", 0.0)))
    what = "first sound" if "tts" in marks else "first word" if "llm" in marks else "recognised"
    text = " + ".join(f"{name} {_seconds(ms)}" for name, ms, _ in stages) + f" = {what} after {_seconds(end)}"
    rtf = _num(data, "asr_rtf")
    if rtf is not None and rtf > 0 and "asr" in marks:
        text += f" · recognition {1 / rtf:.0f}× faster than real time" if rtf < 1 else f" · recognition RTF {rtf:.2f}"
    return text


class LatencyBar(QWidget):
    """One turn's latency as coloured segments: finding the end of speech, recognition, the language
    model's first token and the voice's first sound (each segment as long as the stage took)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._segments: list[tuple[str, float, QColor]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(60)

    def set_timings(self, data: dict[str, Any]) -> None:
        self._segments = stage_lengths(data)
        self.setToolTip("\n".join(f"{name}: {_seconds(ms)}" for name, ms, _ in self._segments))
        self.update()

    def clear(self) -> None:
        self._segments = []
        self.setToolTip("")
        self.update()

    @property
    def segments(self) -> list[tuple[str, float]]:
        return [(name, length) for name, length, _ in self._segments]

    def sizeHint(self) -> QSize:
        return QSize(200, 8)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 8)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect())
        painter.fillRect(rect, QColor(128, 128, 128, 40))
        total = sum(length for _, length, _ in self._segments)
        if total > 0:
            x = rect.left()
            for _, length, colour in self._segments:
                width = rect.width() * length / total
                painter.fillRect(QRectF(x, rect.top(), width, rect.height()), colour)
                x += width
        painter.end()


class LatencyRow(QWidget):
    """The last answer's latency: the stage bar, and under it the sentence that adds the stages up."""

    EMPTY_TEXT = "Latency of each answer shows here."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = LatencyBar()
        self.bar.setObjectName("assistantLatencyBar")
        self.bar.setFixedHeight(6)
        self.label = QLabel(self.EMPTY_TEXT)
        self.label.setObjectName("assistantLatency")
        self.label.setWordWrap(True)
        self.label.setProperty("hint", True)
        self.label.setToolTip(
            "From the end of your speech: when the speech was recognised, when the first word of the answer "
            "was written and when its first sound played."
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.bar)
        layout.addWidget(self.label)

    def show_timings(self, data: dict[str, Any]) -> None:
        self.bar.set_timings(data)
        breakdown = breakdown_text(data)
        self.label.setText(f"Last answer: {breakdown}" if breakdown else "")

    def clear(self) -> None:
        self.bar.clear()
        self.label.setText(self.EMPTY_TEXT)
