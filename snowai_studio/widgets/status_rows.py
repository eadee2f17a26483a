"""The rows under a tool dock's picture: a job's progress with its Cancel button, and the message line."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QStyle, QWidget

#: The colour of an error sentence on the message line.
ERROR_STYLE = "color: rgb(220, 70, 70);"


def message_icons(style: QStyle) -> dict[str, QIcon]:
    """The icons of the message levels: ``info``, ``warning`` and ``error``."""
    return {
        "info": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation),
        "warning": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning),
        "error": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical),
    }


class ProgressRow(QWidget):
    """A progress bar (``bar``) with a Cancel button (``cancel_button``) beside it; hidden at first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        self.hide()


class MessageLine(QWidget):
    """A level icon (``icon``) and a selectable, wrapped sentence (``label``); errors show in red."""

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icons = message_icons(self.style())
        self.icon = QLabel()
        self.icon.setFixedSize(16, 16)
        self.label = QLabel()
        self.label.setObjectName(object_name)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.label, 1)

    def set_message(self, text: str, level: str = "info") -> None:
        """Show ``text`` with the icon of ``level`` (``info``, ``warning`` or ``error``); "" empties the line."""
        self.label.setText(text)
        if text:
            self.icon.setPixmap(self.icons.get(level, self.icons["info"]).pixmap(16, 16))
        else:  # an empty line shows no icon either
            self.icon.clear()
        self.label.setStyleSheet(ERROR_STYLE if level == "error" else "")

    def report(
        self, text: str, level: str, *, source: str, logger: logging.Logger, notify: bool = True
    ) -> None:
        """Show ``text`` and log it: warnings and errors at their level (so the notifications panel,
        under ``source``, has them) unless ``notify`` is False because a worker reported them already."""
        self.set_message(text, level)
        if notify and level in ("warning", "error"):
            (logger.error if level == "error" else logger.warning)("%s", text, extra={"source": source})
        else:
            logger.info("%s", text)
