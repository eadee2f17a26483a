"""Small widgets of the voice-conversion dock: a file list that takes drops."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget


class AudioFileList(QListWidget):
    """The files waiting to be converted: full paths as tooltips, files dropped from a file manager."""

    files_dropped = Signal(list)

    def __init__(self, suffixes: tuple[str, ...], placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.suffixes = suffixes
        self.placeholder = placeholder
        self.setAcceptDrops(True)
        self.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)

    def paths(self) -> list[Path]:
        return [Path(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def add_paths(self, paths: list[Path]) -> int:
        """Add files not listed yet; returns how many were added."""
        have = {str(p) for p in self.paths()}
        added = 0
        for path in paths:
            key = str(path)
            if key in have:
                continue
            item = QListWidgetItem(path.name)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(key)
            self.addItem(item)
            have.add(key)
            added += 1
        return added

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.count() or not self.placeholder:
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        rect = self.viewport().rect().adjusted(12, 12, -12, -12)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        painter.end()

    def remove_selected(self) -> None:
        for item in self.selectedItems():
            self.takeItem(self.row(item))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragEnterEvent) -> None:  # type: ignore[override]
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if not urls:
            super().dropEvent(event)
            return
        paths: list[Path] = []
        for url in urls:
            path = Path(url.toLocalFile())
            if path.is_dir():
                paths += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in self.suffixes)
            elif path.is_file():
                paths.append(path)
        event.acceptProposedAction()
        self.files_dropped.emit(paths)
