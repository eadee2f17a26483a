"""A widget that shows the newest video frame, scaled with its aspect ratio kept."""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Slot
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

log = logging.getLogger(__name__)


def bgr_to_qimage(frame: np.ndarray) -> QImage:
    """Wrap a BGR (or grey, or BGRA) uint8 frame in a QImage without copying the pixels.

    The caller keeps ``frame`` alive as long as the image is used.
    """
    if frame.dtype != np.uint8:
        raise ValueError("frames must be uint8")
    if not frame.flags.c_contiguous:
        raise ValueError("frames must be C-contiguous")
    h, w = frame.shape[:2]
    if frame.ndim == 2:
        return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_Grayscale8)
    if frame.shape[2] == 3:
        return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_BGR888)
    if frame.shape[2] == 4:
        return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_ARGB32)
    raise ValueError(f"unsupported frame shape {frame.shape}")


class VideoView(QWidget):
    """Paints the newest BGR frame letterboxed in the widget.

    Call :meth:`show_frame` with each new frame (from the UI thread); the widget repaints only
    then (and on resize). Without a frame it shows :attr:`placeholder`; :meth:`set_overlay`
    draws a small text (fps, latency) in a corner.
    """

    def __init__(self, parent: QWidget | None = None, placeholder: str = "No video") -> None:
        super().__init__(parent)
        self._frame: np.ndarray | None = None
        self._image: QImage | None = None
        self._placeholder = placeholder
        self._overlay = ""
        self.frames_shown = 0
        self.paints = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 90)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    # ---- slots --------------------------------------------------------------------------------------
    @Slot(object)
    def show_frame(self, frame: np.ndarray) -> None:
        """Show a new frame (BGR uint8, HxWx3; grey and BGRA work too)."""
        arr = np.ascontiguousarray(frame)
        try:
            image = bgr_to_qimage(arr)
        except ValueError as exc:
            log.warning("Frame not shown: %s", exc)
            return
        self._frame = arr  # keeps the pixels alive for the image
        self._image = image
        self.frames_shown += 1
        self.update()

    @Slot()
    def clear(self) -> None:
        """Forget the frame and show the placeholder again."""
        self._frame = None
        self._image = None
        self.update()

    @Slot(str)
    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        if self._image is None:
            self.update()

    @Slot(str)
    def set_overlay(self, text: str) -> None:
        if text != self._overlay:
            self._overlay = text
            self.update()

    # ---- state -------------------------------------------------------------------------------------
    @property
    def placeholder(self) -> str:
        return self._placeholder

    @property
    def overlay(self) -> str:
        return self._overlay

    @property
    def frame(self) -> np.ndarray | None:
        return self._frame

    def has_frame(self) -> bool:
        return self._image is not None

    def target_rect(self) -> QRect:
        """Where the frame is drawn: as large as fits, aspect ratio kept, centred."""
        if self._image is None:
            return QRect()
        size = QSize(self._image.width(), self._image.height()).scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        return QRect(x, y, size.width(), size.height())

    def sizeHint(self) -> QSize:
        return QSize(480, 270)

    # ---- painting ----------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        self.paints += 1
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 24))
        if self._image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(
                self.rect().adjusted(12, 12, -12, -12),
                int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
                self._placeholder,
            )
        else:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(self.target_rect(), self._image)
        if self._overlay:
            font = QFont(painter.font())
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
            painter.setFont(font)
            metrics = painter.fontMetrics()
            box = metrics.boundingRect(self._overlay).adjusted(-6, -3, 6, 3)
            box.moveTopLeft(QPoint(8, 8))
            painter.fillRect(box, QColor(0, 0, 0, 150))
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), self._overlay)
        painter.end()
