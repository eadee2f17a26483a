"""The middle of the background-removal page: the drop zone shown before any image is open, the
touch-up bar over the canvas, the strip of thumbnails under it, and the list of files a batch skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.matting.canvas import VIEW_MODES
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.rows import centred_row

EMPTY_TEXT = "Drop images here or Open…"


class EmptyState(QFrame):
    """A dashed drop zone: what the tool does, Open images / Open folder, and the model's state."""

    open_images_requested = Signal()
    open_folder_requested = Signal()
    models_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mattingEmpty")
        self.setStyleSheet(
            "#mattingEmpty { border: 2px dashed palette(mid); border-radius: 14px; }"
            '#mattingEmpty[dropping="true"] { border-color: palette(highlight); }'
        )
        title = QLabel(EMPTY_TEXT)
        title.setObjectName("mattingEmptyTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        explain = QLabel(
            "Drag photos or whole folders onto this panel. The subject is cut out on this computer; "
            "touch up the edges with the brush, pick a new background, and export a PNG or WebP with "
            "transparency (the original file is never changed)."
        )
        explain.setWordWrap(True)
        explain.setAlignment(Qt.AlignmentFlag.AlignCenter)
        explain.setMinimumWidth(380)
        explain.setMaximumWidth(560)
        open_images = push_button("Open images…", "open", primary=True, tip="Open one or more image files")
        open_images.clicked.connect(self.open_images_requested)
        open_folder = push_button("Open folder…", "folder", tip="Open every image of a folder")
        open_folder.clicked.connect(self.open_folder_requested)
        self.model_status = QLabel("Checking the models…")
        self.model_status.setObjectName("mattingModelStatus")
        self.model_status.setWordWrap(True)
        self.model_status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_manager_button = push_button("Open the model manager", "models")
        self.model_manager_button.clicked.connect(self.models_requested)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addSpacing(8)
        layout.addLayout(centred_row(explain))
        layout.addSpacing(12)
        layout.addLayout(centred_row(open_images, open_folder))
        layout.addSpacing(18)
        layout.addWidget(self.model_status)
        layout.addLayout(centred_row(self.model_manager_button))
        layout.addStretch(3)

    def set_dropping(self, on: bool) -> None:
        self.setProperty("dropping", on)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_model_status(self, text: str, *, problem: bool) -> None:
        self.model_status.setText(text)
        self.model_manager_button.setVisible(problem)


class EditBar(QFrame):
    """The slim bar over the canvas: brush add/erase and its size, Refine edges, Undo/Redo, what the
    canvas shows, Fit and 100%. Plain buttons in a row: nothing folds away behind a chevron."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mattingEditBar")
        self.brush_size = QSpinBox()
        self.brush_size.setObjectName("mattingBrushSize")
        self.brush_size.setRange(1, 1000)
        self.brush_size.setValue(20)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush radius in image pixels ([ and ] change it)")
        self.view_combo = QComboBox()
        self.view_combo.setObjectName("mattingView")
        for mode, label in VIEW_MODES.items():
            self.view_combo.addItem(label, mode)
        self.view_combo.setToolTip("What the canvas shows")
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(4)
        self.buttons: dict[str, QToolButton] = {}

    def add_action(self, action: QAction, *, text: bool = True) -> QToolButton:
        button = QToolButton()
        button.setDefaultAction(action)
        button.setAutoRaise(True)
        button.setIconSize(QSize(18, 18))
        style = Qt.ToolButtonStyle.ToolButtonTextBesideIcon if text else Qt.ToolButtonStyle.ToolButtonIconOnly
        button.setToolButtonStyle(style if not action.icon().isNull() else Qt.ToolButtonStyle.ToolButtonTextOnly)
        self._row.addWidget(button)
        self.buttons[action.text()] = button
        return button

    def add_widget(self, widget: QWidget) -> None:
        self._row.addWidget(widget)

    def add_separator(self) -> None:
        line = QFrame()
        line.setFrameShape(QFrame.Shape.VLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        self._row.addWidget(line)

    def add_stretch(self) -> None:
        self._row.addStretch(1)


class ThumbnailStrip(QListWidget):
    """The open images side by side under the canvas; each item carries its image's key."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mattingThumbnails")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(56, 56))
        self.setGridSize(QSize(104, 80))
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setFixedHeight(98)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.hide()

    def add(self, key: str, name: str, tip: str) -> QListWidgetItem:
        item = QListWidgetItem(name)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setToolTip(tip)
        item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.addItem(item)
        return item

    def item_of(self, key: str) -> QListWidgetItem | None:
        for i in range(self.count()):
            item = self.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                return item
        return None

    def select_quietly(self, key: str) -> None:
        item = self.item_of(key)
        if item is not None and self.currentItem() is not item:
            self.blockSignals(True)
            self.setCurrentItem(item)
            self.blockSignals(False)

    @staticmethod
    def set_picture(item: QListWidgetItem, rgb: np.ndarray) -> None:
        """Show an RGB thumbnail, centred on a square so that the names line up."""
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
        side = max(w, h)
        square = QPixmap(side, side)
        square.fill(Qt.GlobalColor.transparent)
        painter = QPainter(square)
        painter.drawImage((side - w) // 2, (side - h) // 2, image)
        painter.end()
        item.setIcon(QIcon(square))


class SkippedFiles(QWidget):
    """The files a batch skipped, each with why; hidden until a batch skips one."""

    def __init__(self, warning_icon: QIcon, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.warning_icon = warning_icon
        self.list = QListWidget()
        self.list.setObjectName("mattingReport")
        self.list.setMaximumHeight(110)
        self.list.setAlternatingRowColors(True)
        self.title = QLabel()
        hide = QPushButton("Hide")
        hide.clicked.connect(self.hide)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(hide)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.list)
        self.hide()

    def show_skipped(self, failed: list[tuple[Path, str]]) -> None:
        self.list.clear()
        for path, reason in failed:
            item = QListWidgetItem(f"{Path(path).name}: {reason}")
            item.setToolTip(str(path))
            item.setIcon(self.warning_icon)
            self.list.addItem(item)
        self.title.setText(f"Skipped files ({len(failed)})")
        self.setVisible(bool(failed))
