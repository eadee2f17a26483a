"""One place where every error and warning of the studio lands.

Every worker reports errors through ``logging`` (see :mod:`workers.base`), so a logging handler
feeds the :class:`NotificationManager`; uncaught exceptions on any thread reach it through
``sys.excepthook`` and ``threading.excepthook``. The :class:`NotificationPanel` dock lists them.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
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
#: The same message again within this many seconds counts as a repeat of the first, not a new line.
REPEAT_SECONDS = 30.0

#: One name per tool, whatever spelling a worker, a logger or a page used.
SOURCE_NAMES = {
    "face swap": "Face swap",
    "faceswap": "Face swap",
    "matting": "Background removal",
    "background removal": "Background removal",
    "assistant": "Voice assistant",
    "voice assistant": "Voice assistant",
    "voice conversion": "Voice conversion",
    "svc": "Voice conversion",
    "models": "Models",
    "model manager": "Models",
    "media": "Devices",
    "camera": "Devices",
    "microphone": "Devices",
    "speaker": "Devices",
    "devices": "Devices",
    "settings": "Settings",
    "studio": "Studio",
    "crash": "Studio",
}


def source_name(source: str) -> str:
    """The one name shown for ``source`` ("face_swap", "Face swap worker" → "Face swap")."""
    key = source.replace("_", " ").strip().lower()
    if key in SOURCE_NAMES:
        return SOURCE_NAMES[key]
    for suffix in (" worker", " thumbnails", " camera", " jobs"):
        if key.endswith(suffix) and key[: -len(suffix)] in SOURCE_NAMES:
            return SOURCE_NAMES[key[: -len(suffix)]]
    return source[:1].upper() + source[1:] if source else "Studio"


def plural(count: int, word: str) -> str:
    """'1 error', '2 errors'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class Notification:
    level: str  # "info" | "warning" | "error"
    message: str
    source: str = ""
    details: str = ""
    time: float = field(default_factory=time.time)
    #: How many times it came (the same message again soon after is counted here).
    count: int = 1


class NotificationManager(QObject):
    """Collects notifications from any thread and re-emits them on the UI thread."""

    notified = Signal(object)
    #: A notification came again: its index in ``items`` and the updated notification.
    repeated = Signal(int, object)
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
        notification = dataclasses.replace(notification, source=source_name(notification.source))
        for index in range(len(self.items) - 1, max(-1, len(self.items) - 20), -1):
            seen = self.items[index]
            if notification.time - seen.time > REPEAT_SECONDS:
                break
            if seen.message == notification.message and seen.level == notification.level:
                self.items[index] = dataclasses.replace(seen, count=seen.count + 1, time=notification.time)
                self.repeated.emit(index, self.items[index])
                return
        self.items.append(notification)
        if len(self.items) > MAX_KEPT:
            del self.items[: len(self.items) - MAX_KEPT]
        self.notified.emit(notification)

    def counts(self) -> dict[str, int]:
        out = {"info": 0, "warning": 0, "error": 0}
        for n in self.items:
            out[n.level] += 1
        return out

    def summary(self) -> str:
        """'1 error, 2 warnings' (messages that came again count once); 'No problems'."""
        c = self.counts()
        parts = [plural(c["error"], "error")] if c["error"] else []
        if c["warning"]:
            parts.append(plural(c["warning"], "warning"))
        return ", ".join(parts) or "No problems"

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
        return source_name(parts[1])
    if parts[0] == "snowai_studio":
        return source_name(parts[1]) if len(parts) > 2 else "Studio"
    return source_name(parts[0])


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
        manager.repeated.connect(self._repeat)
        self._update_summary()

    @staticmethod
    def _text(n: Notification) -> str:
        return n.message if n.count == 1 else f"{n.message} (×{n.count})"

    @Slot(int, object)
    def _repeat(self, index: int, n: Notification) -> None:
        offset = len(self._manager.items) - self.tree.topLevelItemCount()
        item = self.tree.topLevelItem(index - offset)
        if item is not None:
            item.setText(0, time.strftime("%H:%M:%S", time.localtime(n.time)))
            item.setText(2, self._text(n))

    @Slot(object)
    def _add(self, n: Notification) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(n.time))
        item = QTreeWidgetItem([stamp, n.source, self._text(n)])
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
            parts = [plural(c["error"], "error"), plural(c["warning"], "warning"), plural(c["info"], "message")]
            self.summary.setText(", ".join(parts))

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


class NotificationPopover(QFrame):
    """The list of notifications as a popup over the status bar (opened from its button)."""

    def __init__(self, manager: NotificationManager, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("notificationPopover")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.panel = NotificationPanel(manager)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.panel)
        self.resize(640, 320)

    def show_at(self, anchor: QWidget) -> None:
        """Open above ``anchor`` (the status bar's button), kept inside its window."""
        window = anchor.window()
        width = min(self.width(), max(320, window.width() - 24))
        self.resize(width, self.height())
        corner = anchor.mapToGlobal(anchor.rect().topRight())
        left = max(window.mapToGlobal(window.rect().topLeft()).x() + 8, corner.x() - width)
        self.move(left, corner.y() - self.height() - 4)
        self.show()
        self.raise_()
