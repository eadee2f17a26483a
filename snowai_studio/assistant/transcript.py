"""The conversation as the page shows it: the user's words on the right, the assistant's answers on the
left, streamed as they come, each answer with its latency under it.

Nothing here knows about the worker: the page feeds the transcript from the worker's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.assistant.latency import timings_text
from snowai_studio.panels.tool_page import push_button

USER_STYLE = "QFrame#userBubble { background: rgba(62, 132, 230, 48); border: 1px solid rgba(62, 132, 230, 110); }"
ASSISTANT_STYLE = (
    "QFrame#assistantBubble { background: rgba(128, 128, 140, 34); border: 1px solid rgba(128, 128, 140, 80); }"
)
BUBBLE_RADIUS = "QFrame { border-radius: 10px; }"
NOTE_STYLE = "color: palette(placeholder-text); font-size: 9pt;"
INTERRUPTED_STYLE = "color: rgb(215, 130, 40); font-size: 9pt;"
BUBBLE_MAX_WIDTH = 860
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
        self._body.setBackgroundRole(QPalette.ColorRole.Base)  # a page to read, like a chat app's
        self._body.setAutoFillBackground(True)
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
        # Most of the width, but lines no longer than reads well on a wide screen.
        bubble.setMaximumWidth(max(160, min(int(self.viewport().width() * 0.86), BUBBLE_MAX_WIDTH)))

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
        QTimer.singleShot(0, self, self.scroll_to_end)  # not run once the view is gone

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
        # Ordered by each row's place in the column (QLayout.indexOf). Not by walking the column's
        # items: a QLayoutItem is no QObject, so when a removed row's item is deleted its Python
        # wrapper is not told, and a new Qt object made at the same address was later handed out as
        # that stale wrapper (a scroll bar came back as a QWidgetItem).
        placed = [(self._column.indexOf(b.row), n, b) for n, b in enumerate(self._all_bubbles())]
        return [b for index, _n, b in sorted(placed, key=lambda p: (p[0], p[1])) if index >= 0]

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
            QTimer.singleShot(0, self, self.scroll_to_end)  # not run once the view is gone

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



class ComposeRow(QWidget):
    """The text box under the transcript and its Send button; ``send_requested(text)`` on Enter or Send."""

    send_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input = QLineEdit()
        self.input.setObjectName("assistantInput")
        self.input.setPlaceholderText("Type a question and press Enter…")
        self.input.setClearButtonEnabled(True)
        self.input.returnPressed.connect(lambda: self.send_requested.emit(self.input.text()))
        self.send_button = push_button("Send", "send", tip="Send the question (Enter)")
        self.send_button.setObjectName("assistantSend")
        self.send_button.setDefault(False)
        self.send_button.clicked.connect(lambda: self.send_requested.emit(self.input.text()))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
