"""The bar a live view shows when its device or model stopped: what happened, and a Retry button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QStyle, QToolButton, QWidget


class ProblemBar(QFrame):
    """A warning icon, a sentence (``label``) and a Retry button (``retry_button``); hidden while
    nothing is wrong. ``retry_requested`` fires when the user presses Retry: the owner restarts
    the device and the stream with the same settings. The ✕ only hides the bar."""

    retry_requested = Signal()

    def __init__(self, object_name: str = "", parent: QWidget | None = None, *, retry_text: str = "Retry") -> None:
        super().__init__(parent)
        name = object_name or "liveProblem"
        self.setObjectName(name)
        self.setStyleSheet(
            f"#{name} {{ border: 1px solid rgb(210, 80, 70); border-radius: 6px; background: rgba(210, 80, 70, 36); }}"
        )
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(16, 16))
        icon.setFixedSize(16, 16)
        self.label = QLabel()
        self.label.setObjectName(f"{name}Text")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = QPushButton(retry_text)
        self.retry_button.setObjectName(f"{name}Retry")
        self.retry_button.setToolTip("Open the device again and restart the live stream with the same settings")
        self.retry_button.clicked.connect(lambda: self.retry())
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide this message")
        close.clicked.connect(lambda: self.clear())
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 2, 4)
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.label, 1)
        row.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_problem(self, text: str) -> None:
        """Show ``text`` (a sentence saying what stopped) with the Retry button."""
        self.label.setText(text)
        self.retry_button.setEnabled(True)
        self.show()

    def clear(self) -> None:
        self.label.setText("")
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    @property
    def active(self) -> bool:
        """A problem is shown (the bar is visible, or would be once its dock is)."""
        return bool(self.label.text()) and not self.isHidden()

    def retry(self) -> None:
        """What the Retry button does: hide the bar and ask the owner to restart."""
        self.retry_button.setEnabled(False)  # one restart per press
        self.clear()
        self.retry_requested.emit()
