"""Small widgets of the face-swap page: the face thumbnails and the face map editor."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QWidget,
)

from snowai_studio.widgets.video_view import bgr_to_qimage


def bgr_pixmap(bgr: np.ndarray) -> QPixmap:
    """A BGR uint8 array as a pixmap (the pixels are copied)."""
    return QPixmap.fromImage(bgr_to_qimage(np.ascontiguousarray(bgr)).copy())


class FaceStrip(QListWidget):
    """A row of face thumbnails (the faces found in the source photos)."""

    def __init__(self, icon_size: int = 56, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(icon_size, icon_size))
        self.setGridSize(QSize(icon_size + 56, icon_size + 26))
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setFixedHeight(icon_size + 40)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)

    def set_faces(self, faces: list[tuple[np.ndarray, str, str]]) -> None:
        """``(thumbnail BGR, caption, tooltip)`` for each face."""
        self.clear()
        for thumb, caption, tip in faces:
            item = QListWidgetItem(QIcon(bgr_pixmap(thumb)), caption)
            item.setToolTip(tip)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)


class FaceMapEditor(QWidget):
    """Which target face each source photo's face goes onto (several people in one picture).

    Each row pairs a source thumbnail with a target face number (counted left to right, from 1 on
    screen); "auto" leaves that source out of the map. ``map_changed`` carries ``{source: target}``
    with zero-based numbers.
    """

    map_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._spins: list[QSpinBox] = []

    def set_sources(self, thumbs: list[np.ndarray], names: list[str], current: dict[int, int]) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self._spins = []
        head = QLabel("Source face → target face (left to right)")
        head.setWordWrap(True)
        self._grid.addWidget(head, 0, 0, 1, 3)
        for i, (thumb, name) in enumerate(zip(thumbs, names, strict=False)):
            icon = QLabel()
            icon.setPixmap(bgr_pixmap(thumb).scaled(32, 32, Qt.AspectRatioMode.KeepAspectRatio))
            icon.setToolTip(name)
            text = QLabel(f"{i + 1}. {name}")
            text.setToolTip(name)
            spin = QSpinBox()
            spin.setRange(0, 20)
            spin.setSpecialValueText("auto")
            spin.setPrefix("face ")
            spin.setToolTip("The target face this source goes onto (auto: the usual choice of target)")
            spin.setValue(current[i] + 1 if i in current else 0)
            spin.valueChanged.connect(lambda _v: self.map_changed.emit(self.face_map()))
            self._grid.addWidget(icon, i + 1, 0)
            self._grid.addWidget(text, i + 1, 1)
            self._grid.addWidget(spin, i + 1, 2)
            self._spins.append(spin)
        self._grid.setColumnStretch(1, 1)

    def face_map(self) -> dict[int, int]:
        return {i: spin.value() - 1 for i, spin in enumerate(self._spins) if spin.value() > 0}

    def set_target(self, source: int, target: int | None) -> None:
        """Map one source (zero-based) onto a target face (zero-based; None for auto)."""
        self._spins[source].setValue(0 if target is None else target + 1)

    @property
    def rows(self) -> int:
        return len(self._spins)
