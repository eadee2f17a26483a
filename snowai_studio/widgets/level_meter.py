"""A horizontal audio level meter in dBFS with a peak-hold marker."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class LevelMeter(QWidget):
    """Shows a level between ``floor_dbfs`` and 0 dBFS; the peak is held for ``hold_seconds``
    and then falls at ``fall_db_per_s``. Feed it with :meth:`set_level` (UI thread)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        floor_dbfs: float = -60.0,
        hold_seconds: float = 1.0,
        fall_db_per_s: float = 20.0,
    ) -> None:
        super().__init__(parent)
        self.floor_dbfs = floor_dbfs
        self.hold_seconds = hold_seconds
        self.fall_db_per_s = fall_db_per_s
        self._level = floor_dbfs
        self._peak = floor_dbfs
        self._peak_at = 0.0
        self._last_decay = time.monotonic()
        self.updates = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(120)
        # Lets the peak marker fall back when the levels stop coming.
        self._decay_timer = QTimer(self)
        self._decay_timer.setInterval(50)
        self._decay_timer.timeout.connect(self._decay)

    @property
    def level(self) -> float:
        return self._level

    @property
    def peak(self) -> float:
        return self._peak

    def _clamp(self, dbfs: float) -> float:
        if math.isnan(dbfs):
            return self.floor_dbfs
        return max(self.floor_dbfs, min(0.0, float(dbfs)))

    @Slot(float)
    def set_level(self, dbfs: float) -> None:
        """A new level in dBFS (anything below the floor shows as empty)."""
        now = time.monotonic()
        self._level = self._clamp(dbfs)
        self._apply_decay(now)
        if self._level >= self._peak:
            self._peak = self._level
            self._peak_at = now
        self.updates += 1
        if not self._decay_timer.isActive():
            self._decay_timer.start()
        self.update()

    @Slot()
    def reset(self) -> None:
        self._level = self._peak = self.floor_dbfs
        self._decay_timer.stop()
        self.update()

    def _apply_decay(self, now: float) -> None:
        dt = now - self._last_decay
        self._last_decay = now
        if now - self._peak_at > self.hold_seconds:
            self._peak = max(self._level, self._peak - self.fall_db_per_s * dt)

    @Slot()
    def _decay(self) -> None:
        self._apply_decay(time.monotonic())
        if self._peak <= self._level:
            self._decay_timer.stop()
        self.update()

    def fraction(self, dbfs: float) -> float:
        return (self._clamp(dbfs) - self.floor_dbfs) / -self.floor_dbfs

    def sizeHint(self) -> QSize:
        return QSize(240, 18)

    def minimumSizeHint(self) -> QSize:
        return QSize(80, 12)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.fillRect(rect, QColor(30, 30, 34))
        grad = QLinearGradient(rect.topLeft(), rect.topRight())
        grad.setColorAt(0.0, QColor(40, 170, 80))
        grad.setColorAt(self.fraction(-12.0), QColor(200, 200, 40))
        grad.setColorAt(self.fraction(-3.0), QColor(220, 60, 40))
        grad.setColorAt(1.0, QColor(220, 60, 40))
        filled = QRectF(rect.left(), rect.top(), rect.width() * self.fraction(self._level), rect.height())
        painter.fillRect(filled, grad)
        if self._peak > self.floor_dbfs:
            x = rect.left() + rect.width() * self.fraction(self._peak)
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.drawLine(int(x), int(rect.top()), int(x), int(rect.bottom()))
        painter.setPen(QColor(90, 90, 96))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        painter.end()
