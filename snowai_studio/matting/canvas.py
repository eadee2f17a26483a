"""The background-removal canvas: before/after view, zoom and pan, and the mask brush.

The canvas shows one image and its alpha. Its pixels live in cached QImages that wrap numpy
buffers: the original (zero-copy), the result (premultiplied, over the chosen background or
transparent over a checkerboard) and the mask itself (zero-copy). A brush stroke changes the alpha
in place, recomposes only the rectangle under the brush and repaints only that part of the
widget, so a 24-megapixel photo stays as responsive as a small one.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from workers.matting.refine import Box, paint_into

log = logging.getLogger(__name__)

VIEW_MODES = {
    "split": "Before / after",
    "result": "Result",
    "original": "Original",
    "mask": "Mask",
}
TOOLS = ("none", "add", "erase")
MIN_ZOOM = 0.02
MAX_ZOOM = 32.0
#: How close (widget pixels) the pointer must be to grab the before/after divider.
DIVIDER_GRAB = 7


@dataclass
class Stroke:
    """One finished brush stroke, in image coordinates."""

    points: list[tuple[float, float]]
    radius: float
    add: bool
    box: Box | None = None


def _checker_brush(cell: int = 10) -> QBrush:
    tile = QPixmap(cell * 2, cell * 2)
    tile.fill(QColor(204, 204, 204))
    p = QPainter(tile)
    dark = QColor(153, 153, 153)
    p.fillRect(0, 0, cell, cell, dark)
    p.fillRect(cell, cell, cell, cell, dark)
    p.end()
    return QBrush(tile)


def compose_preview(
    bgr: np.ndarray, alpha: np.ndarray, layer: np.ndarray | None, out: np.ndarray, box: Box | None = None
) -> None:
    """Write the premultiplied BGRA preview of ``box`` into ``out`` (HxWx4 uint8).

    ``layer`` is the new background (BGR, same size) or None for transparency. OpenCV does the
    arithmetic (a 24-megapixel photo takes well under a tenth of a second).
    """
    h, w = alpha.shape
    x0, y0, x1, y1 = box if box is not None else (0, 0, w, h)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0:y1, x0:x1]
    a3 = cv2.merge([a, a, a])
    rgb = cv2.multiply(bgr[y0:y1, x0:x1], a3, scale=1 / 255)
    if layer is None:
        opacity = a
    else:
        rgb = cv2.add(rgb, cv2.multiply(layer[y0:y1, x0:x1], cv2.bitwise_not(a3), scale=1 / 255))
        opacity = np.full_like(a, 255)
    target = out[y0:y1, x0:x1]
    merged = cv2.merge([*cv2.split(rgb), opacity], dst=target)
    if merged is not target:
        target[...] = merged


class MattingCanvas(QWidget):
    """Shows an image and its cut-out side by side (a draggable divider), with a mask brush.

    Signals: ``stroke_finished(Stroke)`` after each brush stroke (the alpha was already changed in
    place), ``zoom_changed(float)``, ``brush_radius_changed(float)``.
    """

    stroke_finished = Signal(object)
    zoom_changed = Signal(float)
    brush_radius_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._bgr: np.ndarray | None = None
        self._alpha: np.ndarray | None = None
        self._layer: np.ndarray | None = None
        self._result_buf: np.ndarray | None = None
        self._original_img: QImage | None = None
        self._result_img: QImage | None = None
        self._mask_img: QImage | None = None
        self._checker = _checker_brush()
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._fit_mode = True
        self._split = 0.5
        self.view_mode = "split"
        self.tool = "none"
        self.brush_radius = 20.0
        self.editable = True
        self.placeholder = ""
        self.hint = ""
        # interaction state
        self._mouse: QPointF | None = None
        self._space = False
        self._panning: QPointF | None = None
        self._dragging_divider = False
        self._stroke: Stroke | None = None
        # for tests and diagnostics
        self.paints = 0
        self.last_update_rect = QRect()

    # ---- content ---------------------------------------------------------------------------------
    def set_image(self, bgr: np.ndarray | None, alpha: np.ndarray | None = None, *, keep_view: bool = False) -> None:
        """Show ``bgr`` (HxWx3 uint8) with ``alpha`` (HxW uint8, edited in place by the brush)."""
        self._cancel_stroke()
        if bgr is None:
            self._bgr = self._alpha = self._result_buf = None
            self._original_img = self._result_img = self._mask_img = None
            self._layer = None
            self.update()
            return
        bgr = np.ascontiguousarray(bgr)
        same_size = self._bgr is not None and self._bgr.shape == bgr.shape
        self._bgr = bgr
        h, w = bgr.shape[:2]
        self._original_img = QImage(bgr.data, w, h, bgr.strides[0], QImage.Format.Format_BGR888)
        if self._layer is not None and self._layer.shape != bgr.shape:
            self._layer = None
        self._set_alpha(alpha)
        if not (keep_view and same_size):
            self._fit_mode = True
            self._apply_fit()
        self.update()

    def set_alpha(self, alpha: np.ndarray | None) -> None:
        """Replace the whole alpha (a model result, an undo step)."""
        self._cancel_stroke()
        self._set_alpha(alpha)
        self.update()

    def _set_alpha(self, alpha: np.ndarray | None) -> None:
        if alpha is None or self._bgr is None:
            self._alpha = None
            self._result_buf = None
            self._result_img = self._mask_img = None
            return
        if alpha.shape != self._bgr.shape[:2] or alpha.dtype != np.uint8 or not alpha.flags.c_contiguous:
            raise ValueError("the alpha must be a contiguous HxW uint8 array of the image's size")
        self._alpha = alpha
        h, w = alpha.shape
        if self._result_buf is None or self._result_buf.shape[:2] != (h, w):
            self._result_buf = np.empty((h, w, 4), np.uint8)
            self._result_img = QImage(
                self._result_buf.data, w, h, self._result_buf.strides[0], QImage.Format.Format_ARGB32_Premultiplied
            )
        self._mask_img = QImage(alpha.data, w, h, alpha.strides[0], QImage.Format.Format_Grayscale8)
        compose_preview(self._bgr, alpha, self._layer, self._result_buf)

    def set_background_layer(self, layer: np.ndarray | None) -> None:
        """The new background to preview (BGR, the image's size), or None for transparency."""
        if layer is not None and (self._bgr is None or layer.shape != self._bgr.shape):
            raise ValueError("the background layer must have the image's size")
        self._layer = layer
        if self._alpha is not None and self._bgr is not None and self._result_buf is not None:
            compose_preview(self._bgr, self._alpha, layer, self._result_buf)
        self.update()

    def refresh_region(self, box: Box | None = None) -> None:
        """Recompose and repaint ``box`` (image coordinates) after the alpha changed in place."""
        if self._alpha is None or self._bgr is None or self._result_buf is None:
            return
        compose_preview(self._bgr, self._alpha, self._layer, self._result_buf, box)
        if box is None:
            self.update()
        else:
            self._update_rect(self.image_to_widget_rect(box).adjusted(-2, -2, 2, 2))

    @property
    def image_size(self) -> QSize:
        if self._bgr is None:
            return QSize()
        return QSize(self._bgr.shape[1], self._bgr.shape[0])

    @property
    def alpha(self) -> np.ndarray | None:
        return self._alpha

    def has_image(self) -> bool:
        return self._bgr is not None

    def set_view_mode(self, mode: str) -> None:
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}")
        self.view_mode = mode
        self.update()

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self._cancel_stroke()
        self.tool = tool
        self._update_cursor()
        self.update()

    @Slot(float)
    def set_brush_radius(self, radius: float) -> None:
        radius = float(min(max(radius, 1.0), 2000.0))
        if radius != self.brush_radius:
            old = self._cursor_rect()
            self.brush_radius = radius
            self._update_rect(old.united(self._cursor_rect()))
            self.brush_radius_changed.emit(radius)

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def set_hint(self, text: str) -> None:
        if text != self.hint:
            self.hint = text
            self.update()

    @property
    def split(self) -> float:
        return self._split

    def set_split(self, fraction: float) -> None:
        self._split = float(min(max(fraction, 0.0), 1.0))
        self.update()

    # ---- view transform -----------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return self._zoom

    @Slot()
    def fit(self) -> None:
        """Show the whole image (small images are not blown up beyond 100%... unless tiny)."""
        self._fit_mode = True
        self._apply_fit()
        self.update()

    @Slot()
    def actual_size(self) -> None:
        """100%: one image pixel per screen pixel, centred on what was in the middle."""
        centre = QPointF(self.width() / 2, self.height() / 2)
        self.set_zoom(1.0, centre)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (widget coordinates) in place."""
        if self._bgr is None:
            return
        zoom = float(min(max(zoom, MIN_ZOOM), MAX_ZOOM))
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        image_point = self.widget_to_image(anchor)
        self._zoom = zoom
        self._offset = QPointF(anchor.x() - image_point.x() * zoom, anchor.y() - image_point.y() * zoom)
        self._fit_mode = False
        self.zoom_changed.emit(zoom)
        self.update()

    def _apply_fit(self) -> None:
        if self._bgr is None:
            return
        h, w = self._bgr.shape[:2]
        margin = 8
        avail_w = max(1, self.width() - 2 * margin)
        avail_h = max(1, self.height() - 2 * margin)
        zoom = min(avail_w / w, avail_h / h)
        zoom = min(max(zoom, MIN_ZOOM), 4.0)
        self._zoom = zoom
        self._offset = QPointF((self.width() - w * zoom) / 2, (self.height() - h * zoom) / 2)
        self.zoom_changed.emit(zoom)

    def widget_to_image(self, p: QPointF) -> QPointF:
        return QPointF((p.x() - self._offset.x()) / self._zoom, (p.y() - self._offset.y()) / self._zoom)

    def image_to_widget(self, p: QPointF) -> QPointF:
        return QPointF(p.x() * self._zoom + self._offset.x(), p.y() * self._zoom + self._offset.y())

    def image_rect(self) -> QRectF:
        """Where the whole image lies, in widget coordinates."""
        if self._bgr is None:
            return QRectF()
        h, w = self._bgr.shape[:2]
        return QRectF(self._offset.x(), self._offset.y(), w * self._zoom, h * self._zoom)

    def image_to_widget_rect(self, box: Box) -> QRect:
        x0, y0, x1, y1 = box
        a = self.image_to_widget(QPointF(x0, y0))
        b = self.image_to_widget(QPointF(x1, y1))
        return QRectF(a, b).toAlignedRect()

    def divider_x(self) -> float:
        return self._split * self.width()

    def _showing_split(self) -> bool:
        return self.view_mode == "split" and self._alpha is not None

    # ---- painting ---------------------------------------------------------------------------------
    def _update_rect(self, rect: QRect) -> None:
        rect = rect.intersected(self.rect())
        if rect.isEmpty():
            return
        self.last_update_rect = rect
        self.update(rect)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.paints += 1
        painter = QPainter(self)
        dirty = event.rect()
        painter.setClipRect(dirty)
        painter.fillRect(dirty, QColor(32, 33, 38))
        if self._bgr is None or self._original_img is None:
            self._paint_placeholder(painter)
            painter.end()
            return
        smooth = self._zoom < 1.0 and self._stroke is None
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        if self._alpha is None or self.view_mode == "original":
            self._paint_layer(painter, dirty, "original")
        elif self.view_mode == "split":
            x = round(self.divider_x())
            left = QRect(0, 0, x, self.height()).intersected(dirty)
            right = QRect(x, 0, self.width() - x, self.height()).intersected(dirty)
            if not left.isEmpty():
                self._paint_layer(painter, left, "original")
            if not right.isEmpty():
                self._paint_layer(painter, right, "result")
            painter.setClipRect(dirty)
            self._paint_divider(painter, x)
        else:
            self._paint_layer(painter, dirty, self.view_mode)
        painter.setClipRect(dirty)
        if self.hint:
            self._paint_hint(painter)
        self._paint_brush_cursor(painter)
        painter.end()

    def _paint_layer(self, painter: QPainter, clip: QRect, which: str) -> None:
        painter.save()
        painter.setClipRect(clip)
        target = self.image_rect()
        visible = target.intersected(QRectF(clip))
        if visible.isEmpty():
            painter.restore()
            return
        # Only the part of the image under ``clip`` is sampled.
        top_left = self.widget_to_image(visible.topLeft())
        bottom_right = self.widget_to_image(visible.bottomRight())
        source = QRectF(top_left, bottom_right)
        if which == "result":
            if self._layer is None:
                painter.setBrushOrigin(0, 0)
                painter.fillRect(visible, self._checker)
            image = self._result_img
        elif which == "mask":
            image = self._mask_img
        else:
            image = self._original_img
        if image is not None:
            painter.drawImage(visible, image, source)
        painter.restore()

    def _paint_divider(self, painter: QPainter, x: int) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 120), 3))
        painter.drawLine(x, 0, x, self.height())
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        painter.drawLine(x, 0, x, self.height())
        cy = self.height() / 2
        painter.setBrush(QColor(255, 255, 255))
        painter.setPen(QPen(QColor(0, 0, 0, 140), 1))
        painter.drawEllipse(QPointF(x, cy), 11, 11)
        painter.setBrush(QColor(60, 60, 60))
        painter.setPen(Qt.PenStyle.NoPen)
        for direction in (-1, 1):
            path = QPainterPath()
            path.moveTo(x + direction * 8, cy)
            path.lineTo(x + direction * 3, cy - 5)
            path.lineTo(x + direction * 3, cy + 5)
            path.closeSubpath()
            painter.drawPath(path)
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        for text, right_side in (("Before", False), ("After", True)):
            box = metrics.boundingRect(text).adjusted(-6, -3, 6, 3)
            if right_side:
                box.moveTopLeft(QPoint(x + 8, 8))
            else:
                box.moveTopRight(QPoint(x - 8, 8))
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)
            painter.setPen(Qt.PenStyle.NoPen)
        painter.restore()

    def _paint_hint(self, painter: QPainter) -> None:
        painter.save()
        metrics = painter.fontMetrics()
        box = metrics.boundingRect(self.hint).adjusted(-10, -5, 10, 5)
        box.moveCenter(QPoint(self.width() // 2, self.height() - box.height()))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(box, 6, 6)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), self.hint)
        painter.restore()

    def _paint_placeholder(self, painter: QPainter) -> None:
        if not self.placeholder:
            return
        painter.setPen(QColor(210, 210, 210))
        painter.drawText(
            self.rect().adjusted(16, 16, -16, -16),
            int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
            self.placeholder,
        )

    def _brush_active(self) -> bool:
        return self.tool in ("add", "erase") and self._alpha is not None and self.editable

    def _cursor_rect(self) -> QRect:
        if self._mouse is None:
            return QRect()
        r = self.brush_radius * self._zoom + 3
        return QRectF(self._mouse.x() - r, self._mouse.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _paint_brush_cursor(self, painter: QPainter) -> None:
        if self._mouse is None or not self._brush_active() or self._panning is not None or self._dragging_divider:
            return
        if self._near_divider(self._mouse) and self._stroke is None:
            return
        r = max(1.5, self.brush_radius * self._zoom)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0, 170), 3))
        painter.drawEllipse(self._mouse, r, r)
        colour = QColor(90, 220, 120) if self.tool == "add" else QColor(255, 110, 110)
        painter.setPen(QPen(colour, 1.5))
        painter.drawEllipse(self._mouse, r, r)
        painter.restore()

    # ---- interaction ------------------------------------------------------------------------------
    def _near_divider(self, p: QPointF) -> bool:
        return self._showing_split() and abs(p.x() - self.divider_x()) <= DIVIDER_GRAB

    def _update_cursor(self) -> None:
        if self._panning is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._mouse is not None and (self._dragging_divider or self._near_divider(self._mouse)):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        elif self._space or (self.tool == "none" and self._bgr is not None):
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._brush_active():
            self.setCursor(
                Qt.CursorShape.BlankCursor if self.brush_radius * self._zoom >= 4 else Qt.CursorShape.CrossCursor
            )
        else:
            self.setCursor(Qt.CursorShape.ArrowCursor)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._mouse = pos
        button = event.button()
        if self._bgr is None:
            return
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton
            and (self._space or (self.tool == "none" and not self._near_divider(pos)))
        ):
            self._panning = pos
            self._update_cursor()
            return
        if button == Qt.MouseButton.LeftButton and self._near_divider(pos):
            self._dragging_divider = True
            self._update_cursor()
            return
        if button == Qt.MouseButton.LeftButton and self._brush_active():
            p = self.widget_to_image(pos)
            self._stroke = Stroke([(p.x(), p.y())], self.brush_radius, self.tool == "add")
            self._paint_segment([(p.x(), p.y())])

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        old_cursor = self._cursor_rect()
        self._mouse = pos
        if self._panning is not None:
            delta = pos - self._panning
            self._panning = pos
            self._offset += delta
            self._fit_mode = False
            self.update()
            return
        if self._dragging_divider:
            old_x = self.divider_x()
            self._split = min(max(pos.x() / max(1, self.width()), 0.0), 1.0)
            x0, x1 = sorted((old_x, self.divider_x()))
            # Repaint the strip between the old and the new divider, and the labels.
            self._update_rect(QRect(int(x0) - 90, 0, int(x1 - x0) + 180, self.height()))
            return
        if self._stroke is not None:
            p = self.widget_to_image(pos)
            last = self._stroke.points[-1]
            point = (p.x(), p.y())
            if abs(point[0] - last[0]) + abs(point[1] - last[1]) >= 0.5:
                self._stroke.points.append(point)
                self._paint_segment([last, point])
        self._update_cursor()
        if self._brush_active():
            self._update_rect(old_cursor.united(self._cursor_rect()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = None
        elif self._dragging_divider and event.button() == Qt.MouseButton.LeftButton:
            self._dragging_divider = False
        elif self._stroke is not None and event.button() == Qt.MouseButton.LeftButton:
            stroke, self._stroke = self._stroke, None
            self.stroke_finished.emit(stroke)
            self.update()  # smooth sampling again
        self._update_cursor()

    def leaveEvent(self, event: object) -> None:
        old = self._cursor_rect()
        self._mouse = None
        self._update_rect(old)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self._bgr is None:
            return
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        self.set_zoom(self._zoom * (1.2**steps), event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self._update_cursor()
        elif key == Qt.Key.Key_BracketLeft:
            self.set_brush_radius(self.brush_radius / 1.25)
        elif key == Qt.Key.Key_BracketRight:
            self.set_brush_radius(self.brush_radius * 1.25)
        elif key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.actual_size()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._update_cursor()
        else:
            super().keyReleaseEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        if self._fit_mode:
            self._apply_fit()
        super().resizeEvent(event)

    # ---- strokes ------------------------------------------------------------------------------------
    def _paint_segment(self, points: list[tuple[float, float]]) -> None:
        assert self._stroke is not None and self._alpha is not None
        box = paint_into(self._alpha, points, self._stroke.radius, self._stroke.add)
        if box is None:
            return
        s = self._stroke.box
        self._stroke.box = (
            box if s is None else (min(s[0], box[0]), min(s[1], box[1]), max(s[2], box[2]), max(s[3], box[3]))
        )
        self.refresh_region(box)

    def _cancel_stroke(self) -> None:
        """A stroke in progress ends here (the image or tool changed): it is still reported."""
        if self._stroke is not None:
            stroke, self._stroke = self._stroke, None
            self.stroke_finished.emit(stroke)

    def apply_stroke(
        self, points: list[tuple[float, float]], radius: float | None = None, add: bool | None = None
    ) -> Stroke | None:
        """Paint a whole stroke in image coordinates as if drawn with the mouse (scripting, tests)."""
        if self._alpha is None or not points:
            return None
        self._stroke = Stroke(
            [points[0]], float(radius or self.brush_radius), self.tool != "erase" if add is None else add
        )
        self._paint_segment([points[0]])
        for a, b in itertools.pairwise(points):
            self._stroke.points.append(b)
            self._paint_segment([a, b])
        stroke, self._stroke = self._stroke, None
        self.stroke_finished.emit(stroke)
        return stroke

    def cursor_position(self) -> QPointF | None:
        return self._mouse

    def sizeHint(self) -> QSize:
        return QSize(640, 480)
