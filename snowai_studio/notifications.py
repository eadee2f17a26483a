"""One place where every error and warning of the studio lands.

Every worker reports errors through ``logging`` (see :mod:`workers.base`), so a logging handler
feeds the :class:`NotificationManager`; uncaught exceptions on any thread reach it through
``sys.excepthook`` and ``threading.excepthook``. The :class:`NotificationPanel` dock lists them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workers.errors import describe_exception

log = logging.getLogger(__name__)

LEVELS = {logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error", logging.CRITICAL: "error"}
MAX_KEPT = 1000


@dataclass(frozen=True)
class Notification:
    level: str  # "info" | "warning" | "error"
    message: str
    source: str = ""
    details: str = ""
    time: float = field(default_factory=time.time)


class NotificationManager(QObject):
    """Collects notifications from any thread and re-emits them on the UI thread."""

    notified = Signal(object)
    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.items: list[Notification] = []
        self._handler: NotificationLogHandler | None = None
        self._old_excepthook = sys.excepthook
        self._old_threading_hook = threading.excepthook
        # Queued: a post from a worker thread is delivered on the manager's (UI) thread.
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def post(self, notification: Notification) -> None:
        """Thread-safe."""
        self._posted.emit(notification)

    def info(self, message: str, source: str = "") -> None:
        self.post(Notification("info", message, source))

    def warning(self, message: str, source: str = "") -> None:
        self.post(Notification("warning", message, source))

    def error(self, message: str, source: str = "", details: str = "") -> None:
        self.post(Notification("error", message, source, details))

    @Slot(object)
    def _deliver(self, notification: Notification) -> None:
        self.items.append(notification)
        if len(self.items) > MAX_KEPT:
            del self.items[: len(self.items) - MAX_KEPT]
        self.notified.emit(notification)

    def counts(self) -> dict[str, int]:
        out = {"info": 0, "warning": 0, "error": 0}
        for n in self.items:
            out[n.level] += 1
        return out

    def clear(self) -> None:
        self.items.clear()

    # ---- hooks ------------------------------------------------------------------------------
    def install_hooks(self, level: int = logging.WARNING) -> None:
        """Route warnings/errors from ``logging`` and uncaught exceptions here."""
        if self._handler is None:
            self._handler = NotificationLogHandler(self, level)
            logging.getLogger().addHandler(self._handler)
        sys.excepthook = self._excepthook
        threading.excepthook = self._threading_excepthook

    def uninstall_hooks(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        sys.excepthook = self._old_excepthook
        threading.excepthook = self._old_threading_hook

    def _excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._old_excepthook(exc_type, exc, tb)
            return
        # Logged with the traceback to the log file; the handler turns it into one sentence.
        logging.getLogger("snowai_studio.crash").error(
            "%s", describe_exception(exc, "Unexpected error"), exc_info=(exc_type, exc, tb)
        )

    def _threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        where = f"Unexpected error in {args.thread.name}" if args.thread else "Unexpected error"
        logging.getLogger("snowai_studio.crash").error(
            "%s",
            describe_exception(args.exc_value, where),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )


class NotificationLogHandler(logging.Handler):
    """Turns log records (WARNING and above by default) into notifications."""

    def __init__(self, manager: NotificationManager, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._manager = manager

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else ""
            details = ""
            if record.exc_info:
                details = logging.Formatter().formatException(record.exc_info)
            level = LEVELS.get(record.levelno, "error" if record.levelno > logging.ERROR else "info")
            source = getattr(record, "source", None) or _source_of(record.name)
            self._manager.post(Notification(level, message, source, details, record.created))
        except Exception:  # a broken notification must never break logging
            self.handleError(record)


def _source_of(logger_name: str) -> str:
    parts = logger_name.split(".")
    if parts[0] == "workers" and len(parts) > 1:
        return parts[1].replace("_", " ")
    if parts[0] == "snowai_studio":
        return "studio"
    return parts[0]


class NotificationPanel(QWidget):
    """The dock's content: a list of notifications, newest last, with details in the tooltip."""

    def __init__(self, manager: NotificationManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._manager = manager
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Time", "Source", "Message"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setWordWrap(False)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.summary = QLabel()
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy every message, with details, to the clipboard")
        copy.clicked.connect(self.copy_all)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(copy)
        top.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree)
        style = self.style()
        self._icons = {
            "info": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation),
            "warning": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning),
            "error": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical),
        }
        for n in manager.items:
            self._add(n)
        manager.notified.connect(self._add)
        self._update_summary()

    @Slot(object)
    def _add(self, n: Notification) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(n.time))
        item = QTreeWidgetItem([stamp, n.source, n.message])
        item.setIcon(0, self._icons[n.level])
        item.setToolTip(2, n.message + ("\n\n" + n.details if n.details else ""))
        if n.level == "error":
            item.setForeground(2, QColor(220, 60, 60))
        self.tree.addTopLevelItem(item)
        while self.tree.topLevelItemCount() > MAX_KEPT:
            self.tree.takeTopLevelItem(0)
        self.tree.scrollToItem(item)
        self._update_summary()

    def _update_summary(self) -> None:
        c = self._manager.counts()
        if not any(c.values()):
            self.summary.setText("No messages. Errors and warnings from every tool appear here.")
        else:
            self.summary.setText(f"{c['error']} errors, {c['warning']} warnings, {c['info']} messages")

    @Slot()
    def clear(self) -> None:
        self._manager.clear()
        self.tree.clear()
        self._update_summary()

    @Slot()
    def copy_all(self) -> None:
        lines = []
        for n in self._manager.items:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.time))
            lines.append(f"{stamp} [{n.level}] {n.source}: {n.message}")
            if n.details:
                lines.append(n.details)
        QGuiApplication.clipboard().setText("\n".join(lines))

    def messages(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(2) for i in range(self.tree.topLevelItemCount())]
