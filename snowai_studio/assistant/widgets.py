"""The voice-assistant dock's own widgets: the chat transcript, the state pill, the latency bar and a
section that folds away.

Nothing here knows about the worker: the dock feeds these widgets from the worker's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

# ---- latency ---------------------------------------------------------------------------------------------

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


# ---- state ---------------------------------------------------------------------------------------------

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
        self.setMinimumWidth(110)
        self.state = ""
        self.set_state("off")

    def set_state(self, state: str, text: str | None = None) -> None:
        label, colour = STATE_LOOK.get(state, (state.capitalize(), QColor(128, 128, 136)))
        self.state = state
        self.setText(text or label)
        r, g, b = colour.red(), colour.green(), colour.blue()
        self.setStyleSheet(
            f"QLabel#assistantState {{ border: 1px solid rgb({r}, {g}, {b}); border-radius: 9px; "
            f"background: rgba({r}, {g}, {b}, 55); padding: 1px 10px; font-weight: 600; }}"
        )


# ---- a section that folds away ---------------------------------------------------------------------------


class CollapsibleSection(QWidget):
    """A header button with an arrow; clicking it shows or hides ``content``."""

    toggled = Signal(bool)

    def __init__(self, title: str, content: QWidget, parent: QWidget | None = None, *, expanded: bool = False) -> None:
        super().__init__(parent)
        self.content = content
        self.button = QToolButton()
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setAutoRaise(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setStyleSheet("QToolButton { font-weight: 600; }")
        self.button.toggled.connect(self.set_expanded)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.button)
        header.addWidget(line, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(content)
        self.button.setChecked(expanded)
        self.set_expanded(expanded)

    @property
    def expanded(self) -> bool:
        return self.button.isChecked()

    @Slot(bool)
    def set_expanded(self, on: bool) -> None:
        if self.button.isChecked() != on:
            self.button.setChecked(on)  # comes back here through toggled
            return
        self.button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.content.setVisible(on)
        self.toggled.emit(on)


# ---- the transcript --------------------------------------------------------------------------------------

USER_STYLE = "QFrame#userBubble { background: rgba(62, 132, 230, 48); border: 1px solid rgba(62, 132, 230, 110); }"
ASSISTANT_STYLE = (
    "QFrame#assistantBubble { background: rgba(128, 128, 140, 34); border: 1px solid rgba(128, 128, 140, 80); }"
)
BUBBLE_RADIUS = "QFrame { border-radius: 10px; }"
NOTE_STYLE = "color: palette(placeholder-text); font-size: 9pt;"
INTERRUPTED_STYLE = "color: rgb(215, 130, 40); font-size: 9pt;"
#: Shown at the end of a reply while it streams in.
CURSOR = " ▍"


class ChatBubble(QFrame):
    """One message: who spoke (and how), the text, and a footer (timings, "interrupted")."""

    def __init__(self, role: str, text: str = "", who: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.setObjectName("userBubble" if role == "user" else "assistantBubble")
        self.setStyleSheet((USER_STYLE if role == "user" else ASSISTANT_STYLE) + BUBBLE_RADIUS)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.header = QLabel(who)
        self.header.setStyleSheet(NOTE_STYLE + " font-weight: 600;")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space keeps reaching the transcript
        self.label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.flag = QLabel("Interrupted: the rest of this answer was not spoken.")
        self.flag.setStyleSheet(INTERRUPTED_STYLE)
        self.flag.setWordWrap(True)
        self.flag.hide()
        self.footer = QLabel()
        self.footer.setWordWrap(True)
        self.footer.setStyleSheet(NOTE_STYLE)
        self.footer.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 5, 10, 6)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.label)
        layout.addWidget(self.flag)
        layout.addWidget(self.footer)
        self.text = ""
        self.streaming = False
        self.interrupted = False
        self.row: QWidget | None = None
        self.set_text(text)

    def set_text(self, text: str, *, streaming: bool = False) -> None:
        self.text = text
        self.streaming = streaming
        if streaming:
            self.label.setText((text + CURSOR) if text else "…")
        else:
            self.label.setText(text if text else "(no answer)")

    def set_footer(self, text: str) -> None:
        self.footer.setText(text)
        self.footer.setVisible(bool(text))

    def set_interrupted(self, on: bool) -> None:
        self.interrupted = on
        self.flag.setVisible(on)


@dataclass
class _TurnView:
    user: ChatBubble | None = None
    reply: ChatBubble | None = None
    typed: bool = False
    timings: str = ""


class ChatView(QScrollArea):
    """The conversation: the user's words on the right, the assistant's answers on the left, streamed
    as they come. Space (held) while the transcript has the focus is push-to-talk (``talk_key``)."""

    #: Space pressed (True) or released (False) while the transcript has the focus.
    talk_key = Signal(bool)

    EMPTY_TEXT = "Press Start listening and speak, or type a question below."
    #: Turns shown at most: hours of talk must not pile up widgets (the conversation keeps every turn).
    MAX_TURNS_SHOWN = 200

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantTranscript")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip("The conversation. While it has the focus, hold Space to talk.")
        self._body = QWidget()
        self._body.setObjectName("assistantTranscriptBody")
        self._column = QVBoxLayout(self._body)
        self._column.setContentsMargins(8, 8, 8, 8)
        self._column.setSpacing(6)
        self.placeholder = QLabel(self.EMPTY_TEXT)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: palette(placeholder-text);")
        self.trimmed_note = QLabel()
        self.trimmed_note.setWordWrap(True)
        self.trimmed_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.trimmed_note.setStyleSheet("color: palette(placeholder-text);")
        self.trimmed_note.hide()
        self.hidden_turns = 0
        self._column.addWidget(self.trimmed_note)
        self._column.addWidget(self.placeholder)
        self._column.addStretch(1)
        self.setWidget(self._body)
        self._turns: dict[int, _TurnView] = {}
        self._order: list[int] = []
        self._rows: list[QWidget] = []
        self._waiting: list[ChatBubble] = []
        self._bubbles: list[ChatBubble] = []
        self._stick = True
        self._talk_down = False
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range)

    # ---- content -------------------------------------------------------------------------------------
    def _add_row(self, bubble: ChatBubble, right: bool, after: ChatBubble | None = None) -> None:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        if right:
            layout.addStretch(1)
        layout.addWidget(bubble, 6)
        if not right:
            layout.addStretch(1)
        index = self._column.count() - 1  # before the stretch
        if after is not None and after.row in self._rows:
            index = self._column.indexOf(after.row) + 1
        self._column.insertWidget(index, row)
        bubble.row = row
        self._rows.append(row)
        self._bubbles.append(bubble)
        self.placeholder.hide()
        self._fit_bubble(bubble)

    def _fit_bubble(self, bubble: ChatBubble) -> None:
        bubble.setMaximumWidth(max(160, int(self.viewport().width() * 0.86)))

    def _turn(self, turn: int) -> _TurnView:
        view = self._turns.get(turn)
        if view is None:
            view = _TurnView()
            self._turns[turn] = view
            self._order.append(turn)
            self._trim()
        return view

    def _trim(self) -> None:
        """Keep only the newest :attr:`MAX_TURNS_SHOWN` turns on screen (Save still writes every turn)."""
        while len(self._order) > self.MAX_TURNS_SHOWN:
            old = self._turns.pop(self._order.pop(0))
            for bubble in (old.user, old.reply):
                if bubble is None:
                    continue
                if bubble in self._bubbles:
                    self._bubbles.remove(bubble)
                row = getattr(bubble, "row", None)
                if row is not None and row in self._rows:
                    self._rows.remove(row)
                    row.setParent(None)
                    row.deleteLater()
            self.hidden_turns += 1
        if self.hidden_turns:
            self.trimmed_note.setText(
                f"{self.hidden_turns} earlier turns are not shown; Save keeps the whole conversation."
            )
            self.trimmed_note.show()

    def add_user(self, turn: int, text: str, source: str = "voice") -> ChatBubble:
        """The user's words of a new turn (recognised speech, or typed)."""
        view = self._turn(turn)
        view.typed = source == "text"
        who = "You (typed)" if view.typed else "You (spoken)"
        if view.user is None:
            waiting = next((b for b in self._waiting if b.text == text), None)
            if waiting is not None:
                self._waiting.remove(waiting)
                waiting.header.setText(who)
                view.user = waiting
            else:
                view.user = ChatBubble("user", text, who)
                self._add_row(view.user, right=True)
        else:
            view.user.set_text(text)
        self._follow()
        return view.user

    def add_waiting(self, text: str) -> ChatBubble:
        """A typed question not taken yet (the models are still loading); its turn adopts it later."""
        bubble = ChatBubble("user", text, "You (typed) · sent when the models are ready")
        self._add_row(bubble, right=True)
        self._waiting.append(bubble)
        self._follow()
        return bubble

    def fail_waiting(self, note: str = "not sent") -> None:
        """The waiting questions will not be answered (loading failed or was cancelled)."""
        for bubble in self._waiting:
            bubble.header.setText(f"You (typed) · {note}")
        self._waiting.clear()

    def _reply(self, turn: int) -> ChatBubble:
        view = self._turn(turn)
        if view.reply is None:
            view.reply = ChatBubble("assistant", "", "Assistant")
            view.reply.set_text("", streaming=True)
            self._add_row(view.reply, right=False, after=view.user)
        return view.reply

    def begin_reply(self, turn: int) -> ChatBubble:
        """An empty answer ("…") waiting for its first words."""
        return self._reply(turn)

    def append_reply(self, turn: int, delta: str) -> None:
        bubble = self._reply(turn)
        bubble.set_text(bubble.text + delta, streaming=True)
        self._follow()

    def finish_reply(self, turn: int, text: str | None = None, *, interrupted: bool = False) -> None:
        bubble = self._reply(turn)
        bubble.set_text(bubble.text if text is None else text)
        bubble.set_interrupted(interrupted)
        self._follow()

    def set_timings(self, turn: int, text: str) -> None:
        """The turn's latency under its answer."""
        view = self._turn(turn)
        view.timings = text
        self._reply(turn).set_footer(text)

    def show_turns(self, turns: Iterable[Any]) -> None:
        """Show a whole conversation (``Turn`` objects: id, user, assistant, interrupted, source)."""
        self.clear()
        for t in turns:
            turn_id = int(getattr(t, "id", len(self._order) + 1))
            user = str(getattr(t, "user", "") or "")
            if user:
                self.add_user(turn_id, user, str(getattr(t, "source", "voice") or "voice"))
            reply = str(getattr(t, "assistant", "") or "")
            interrupted = bool(getattr(t, "interrupted", False))
            if reply or interrupted:
                self._reply(turn_id)
                self.finish_reply(turn_id, reply, interrupted=interrupted)
            timings = getattr(t, "timings", None)
            if isinstance(timings, dict) and timings:
                self.set_timings(turn_id, timings_text(timings, typed=getattr(t, "source", "") == "text"))
        QTimer.singleShot(0, self.scroll_to_end)

    def clear(self) -> None:
        for row in self._rows:
            row.setParent(None)
            row.deleteLater()
        self._rows.clear()
        self._bubbles.clear()
        self._waiting.clear()
        self._turns.clear()
        self._order.clear()
        self.hidden_turns = 0
        self.trimmed_note.hide()
        self.placeholder.show()
        self._stick = True

    # ---- reading it back (tests, copy) ------------------------------------------------------------------
    def bubbles(self) -> list[ChatBubble]:
        """Every bubble, top to bottom."""
        by_row = {id(b.row): b for b in self._all_bubbles()}
        out = []
        for i in range(self._column.count()):
            widget = self._column.itemAt(i).widget()
            bubble = by_row.get(id(widget)) if widget is not None else None
            if bubble is not None:
                out.append(bubble)
        return out

    def _all_bubbles(self) -> list[ChatBubble]:
        return list(self._bubbles)

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of every bubble in order."""
        return [(b.role, b.text) for b in self.bubbles()]

    def user_texts(self) -> list[str]:
        return [text for role, text in self.messages() if role == "user"]

    def reply_texts(self) -> list[str]:
        return [text for role, text in self.messages() if role == "assistant"]

    def bubble(self, turn: int, role: str = "assistant") -> ChatBubble | None:
        view = self._turns.get(turn)
        if view is None:
            return None
        return view.user if role == "user" else view.reply

    @property
    def turn_ids(self) -> list[int]:
        return list(self._order)

    def streaming_turns(self) -> list[int]:
        return [t for t in self._order if self._turns[t].reply is not None and self._turns[t].reply.streaming]

    # ---- scrolling ---------------------------------------------------------------------------------------
    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - 24

    @Slot(int, int)
    def _on_range(self, _low: int, high: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(high)

    def _follow(self) -> None:
        if self._stick:
            QTimer.singleShot(0, self.scroll_to_end)

    @Slot()
    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._stick = True

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for view in self._turns.values():
            for bubble in (view.user, view.reply):
                if bubble is not None:
                    self._fit_bubble(bubble)

    # ---- push-to-talk key -------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat() and not self._talk_down:
                self._talk_down = True
                self.talk_key.emit(True)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat() and self._talk_down:
                self._talk_down = False
                self.talk_key.emit(False)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: Any) -> None:
        if self._talk_down:  # a released key never seen must not keep the microphone open
            self._talk_down = False
            self.talk_key.emit(False)
        super().focusOutEvent(event)

