"""The training loss curves: each loss drawn over the steps on its own scale (its trend is what counts),
with its latest value in the legend. Painted with QPainter; repaints at most a few times a second."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

#: Loss name -> (legend label, colour).
SERIES = {
    "mel": ("mel", "#4fa3ff"),
    "kl": ("KL", "#f5a623"),
    "gen": ("adversarial", "#7ed321"),
    "disc": ("discriminator", "#d0021b"),
}
MAX_POINTS = 600


class LossChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("svcTrainChart")
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in SERIES}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.update)

    def sizeHint(self) -> QSize:
        return QSize(260, 120)

    def clear(self) -> None:
        self.steps.clear()
        for values in self.values.values():
            values.clear()
        self.update()

    def add(self, step: int, losses: dict[str, float]) -> None:
        """One training step's losses (names of :data:`SERIES`; others are ignored)."""
        if self.steps and step <= self.steps[-1]:  # a resumed run: drop what it redoes
            keep = sum(1 for s in self.steps if s < step)
            del self.steps[keep:]
            for values in self.values.values():
                del values[keep:]
        self.steps.append(int(step))
        for name, values in self.values.items():
            values.append(float(losses.get(name, float("nan"))))
        if len(self.steps) > MAX_POINTS:  # keep every other point of the older half
            half = len(self.steps) // 2
            self.steps[:half] = self.steps[:half:2]
            for values in self.values.values():
                values[:half] = values[:half:2]
        if not self._timer.isActive():
            self._timer.start()

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(4, 18, -4, -4)
        painter.setPen(QPen(self.palette().mid().color(), 1))
        painter.drawRect(rect)
        x = 6.0
        for name, (label, colour) in SERIES.items():
            values = self.values[name]
            last = next((v for v in reversed(values) if v == v), None)
            text = f"{label} {last:.3g}" if last is not None else label
            painter.setPen(QColor(colour))
            painter.drawText(QPointF(x, 13), text)
            x += painter.fontMetrics().horizontalAdvance(text) + 10
        if len(self.steps) < 2:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Loss curves appear while training")
            return
        first, last_step = self.steps[0], self.steps[-1]
        span = max(1, last_step - first)
        for name, (_, colour) in SERIES.items():
            points = [(s, v) for s, v in zip(self.steps, self.values[name], strict=True) if v == v]
            if len(points) < 2:
                continue
            low = min(v for _, v in points)
            high = max(v for _, v in points)
            scale = (high - low) or 1.0
            path = QPainterPath()
            for i, (s, v) in enumerate(points):
                px = rect.left() + (s - first) / span * rect.width()
                py = rect.bottom() - (v - low) / scale * (rect.height() - 4) - 2
                if i == 0:
                    path.moveTo(px, py)
                else:
                    path.lineTo(px, py)
            painter.setPen(QPen(QColor(colour), 1.5))
            painter.drawPath(path)
