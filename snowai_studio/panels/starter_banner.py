"""The slim bar at the top of a tool page while its recommended models are not all there: what they
would give, what they cost, a "Get started…" button and a ✕ that hides it for good."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from snowai_studio.icons import icon


class StarterBanner(QFrame):
    """``open_requested`` for "Get started…"; ``dismissed`` for ✕ (the window remembers it)."""

    open_requested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("starterBanner")
        self.setStyleSheet(
            "#starterBanner { border: 1px solid rgb(70, 130, 220); border-radius: 6px;"
            " background: rgba(70, 130, 220, 30); }"
        )
        badge = QLabel()
        badge.setPixmap(icon("models").pixmap(18, 18))
        self.label = QLabel()
        self.label.setObjectName("starterBannerText")
        self.label.setWordWrap(True)
        from snowai_studio.panels.tool_page import push_button

        self.button = push_button("Get started…", "download", primary=True)
        self.button.setObjectName("starterBannerOpen")
        self.button.clicked.connect(self.open_requested)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide this; Get started stays in the Home page and the Models menu")
        close.clicked.connect(self._dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 4, 6)
        row.addWidget(badge, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.label, 1)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def offer(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
