"""Small widgets of the voice-conversion dock: a slider for a decimal value, a file list that takes drops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSlider, QWidget


class ValueSlider(QWidget):
    """``Name [-----o----] 0.25 s``: a slider over ``low..high`` in steps of ``step``, showing its value
    and emitting ``value_changed(float)`` when the user lets go (or steps it with the keyboard), not on
    every pixel of a drag."""

    value_changed = Signal(float)

    def __init__(
        self,
        name: str,
        low: float,
        high: float,
        step: float,
        value: float,
        *,
        fmt: Callable[[float], str] = lambda v: f"{v:g}",
        tip: str = "",
        label_width: int = 92,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._low, self._step, self._fmt = float(low), float(step), fmt
        self.label = QLabel(name)
        self.label.setMinimumWidth(label_width)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round((high - low) / step))
        self.slider.setPageStep(max(1, self.slider.maximum() // 10))
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(64)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if tip:
            for widget in (self.label, self.slider, self.value_label):
                widget.setToolTip(tip)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        self._set_position(value)
        self.value_label.setText(fmt(self.value()))
        self.slider.valueChanged.connect(self._on_moved)
        self.slider.sliderReleased.connect(lambda: self.value_changed.emit(self.value()))

    def _set_position(self, value: float) -> None:
        self.slider.setValue(round((float(value) - self._low) / self._step))

    @Slot(int)
    def _on_moved(self, _position: int) -> None:
        self.value_label.setText(self._fmt(self.value()))
        if not self.slider.isSliderDown():
            self.value_changed.emit(self.value())

    def value(self) -> float:
        return round(self._low + self.slider.value() * self._step, 6)

    def set_value(self, value: float, *, quiet: bool = False) -> None:
        """Set the value from code; ``quiet`` shows it without emitting ``value_changed``."""
        if quiet:
            self.slider.blockSignals(True)
            self._set_position(value)
            self.slider.blockSignals(False)
            self.value_label.setText(self._fmt(self.value()))
        else:
            self._set_position(value)


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
