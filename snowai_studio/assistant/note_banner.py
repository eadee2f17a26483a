"""The language model's note above the transcript ("the built-in Gemma is tiny: expect short answers"):
its first sentence with More…, a button to the language-model settings, and ✕ to hide it until
another model brings another note."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from snowai_studio.panels.tool_page import push_button


def first_sentence(text: str) -> str:
    """The note's first sentence (the whole text when it has only one)."""
    for i, ch in enumerate(text):
        if ch in ".!?" and (i + 1 == len(text) or text[i + 1] == " ") and i > 20:
            return text[: i + 1]
    return text


class NoteBanner(QFrame):
    """``choose_requested`` comes from its "Choose a model…" button."""

    choose_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantNote")
        self.setStyleSheet(
            "#assistantNote { border: 1px solid rgb(200, 150, 40); border-radius: 6px; "
            "background: rgba(200, 150, 40, 36); }"
        )
        self.label = QLabel()
        self.label.setObjectName("assistantNoteText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.label.linkActivated.connect(self._on_link)
        self.choose_button = push_button("Choose a model…", "models", tip="Open the language-model settings")
        self.choose_button.setObjectName("assistantNoteChoose")
        self.choose_button.clicked.connect(self.choose_requested)
        close = QToolButton()
        close.setObjectName("assistantNoteClose")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide this note")
        close.clicked.connect(lambda: self.dismiss())
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 2, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.choose_button, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.text = ""
        self._expanded = False
        self._dismissed = ""
        self.hide()

    def set_note(self, text: str) -> None:
        """Show ``text`` (hidden when empty, or when the user hid this very note)."""
        if text != self.text:
            self.text = text
            self._expanded = False
        self._show_text()
        self.setVisible(bool(text) and text != self._dismissed)

    def dismiss(self) -> None:
        """Hide the note until another model brings another one."""
        self._dismissed = self.text
        self.hide()

    def _show_text(self) -> None:
        summary = first_sentence(self.text)
        if self._expanded or summary == self.text:
            link = ' <a href="less">Less</a>' if summary != self.text else ""
            self.label.setText(html.escape(self.text, quote=False) + link)
        else:
            self.label.setText(html.escape(summary, quote=False) + ' <a href="more">More…</a>')
        self.label.setToolTip(self.text)

    @Slot(str)
    def _on_link(self, link: str) -> None:
        self._expanded = link == "more"
        self._show_text()
