"""The recordings to convert: a list that takes files dropped from a file manager, with Add, Remove
and Clear under it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QFont, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.panels.tool_page import push_button


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


class FilesPanel(QFrame):
    """'Recordings to convert': the list (:attr:`file_list`) and its buttons. ``add_requested`` asks
    the page for files; ``files_dropped`` carries files dropped on the list; ``changed`` follows
    every change of the list or its selection."""

    add_requested = Signal()
    files_dropped = Signal(list)
    changed = Signal()

    def __init__(self, suffixes: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("svcFilesPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        title = QLabel("Recordings to convert")
        font = QFont(title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        title.setFont(font)
        self.count_label = QLabel()
        self.count_label.setProperty("hint", True)
        self.file_list = AudioFileList(suffixes, "Drop WAV, FLAC, MP3 or OGG files here, or press Add files…")
        self.file_list.setObjectName("svcFiles")
        self.file_list.setToolTip("Sound files to convert with the voice on the right (drop files here)")
        self.file_list.setMinimumHeight(72)
        self.file_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.file_list.files_dropped.connect(self.files_dropped)
        self.file_list.itemSelectionChanged.connect(self.changed)
        self.add_button = push_button("Add files…", "open", tip="Add sound files to the list")
        self.add_button.setObjectName("svcAddFiles")
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button = push_button("Remove", tip="Take the selected files off the list (nothing is deleted)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = push_button("Clear", tip="Empty the list (nothing is deleted)")
        self.clear_button.clicked.connect(self.clear)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.count_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        layout.addLayout(head)
        layout.addWidget(self.file_list, 1)
        layout.addLayout(buttons)
        self.show_count()

    def add_paths(self, paths: list[Path]) -> int:
        added = self.file_list.add_paths(paths)
        if added:
            self.show_count()
            self.changed.emit()
        return added

    def remove_selected(self) -> None:
        self.file_list.remove_selected()
        self.show_count()
        self.changed.emit()

    def clear(self) -> None:
        self.file_list.clear()
        self.show_count()
        self.changed.emit()

    def paths(self) -> list[Path]:
        return self.file_list.paths()

    def show_count(self) -> None:
        n = self.file_list.count()
        self.count_label.setText(f"{n} file{'s' if n != 1 else ''}" if n else "")

    def set_busy(self, busy: bool) -> None:
        """While files convert the list stays as it is."""
        has_files = self.file_list.count() > 0
        self.add_button.setEnabled(not busy)
        self.remove_button.setEnabled(bool(self.file_list.selectedItems()) and not busy)
        self.clear_button.setEnabled(has_files and not busy)
