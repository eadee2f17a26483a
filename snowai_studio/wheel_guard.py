"""The mouse wheel scrolls the page, not the control that passes under the cursor: a drop-down, a
slider or a number field takes wheel turns only once it has the focus (clicked or tabbed to)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
)


def _guarded(obj: QObject) -> bool:
    return isinstance(obj, QComboBox | QAbstractSpinBox | QAbstractSlider) and not isinstance(obj, QScrollBar)


class WheelGuard(QObject):
    """An application-wide event filter (install once with :func:`install`)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish and _guarded(obj):
            # Wheel focus would hand the focus over on the first turn and defeat the guard.
            if obj.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel and _guarded(obj) and not obj.hasFocus():
            scroller = _scroll_area_of(obj)
            if scroller is not None:
                QApplication.sendEvent(scroller.verticalScrollBar(), event)
            return True
        return False


def _scroll_area_of(widget: QObject) -> QAbstractScrollArea | None:
    parent = widget.parent()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not isinstance(parent, QComboBox):
            return parent
        parent = parent.parent()
    return None


_guard: WheelGuard | None = None


def install(app: QApplication) -> WheelGuard:
    """Install the guard on ``app`` (once)."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(app)
        app.installEventFilter(_guard)
    return _guard
