"""``Name [-----o----] value``: labelled sliders that report a value when the user lets go.

:class:`ValueSlider` covers a decimal range in steps (seconds, semitones, dB); :class:`LabeledSlider`
is the same for whole numbers. Both emit ``value_changed`` when the user releases the handle or steps
it with the keyboard, not on every pixel of a drag. The underlying ``QSlider`` position is
``value / step``, so for :class:`LabeledSlider` the position is the value itself.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


class ValueSlider(QWidget):
    """A slider over ``low..high`` in steps of ``step``, with its name and its value shown."""

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
        value_width: int = 64,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._step, self._fmt = float(step), fmt
        self.label = QLabel(name)
        self.label.setMinimumWidth(label_width)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(low / step), round(high / step))
        self.slider.setPageStep(max(1, (self.slider.maximum() - self.slider.minimum()) // 10))
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(value_width)
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
        self.slider.setValue(round(float(value) / self._step))

    @Slot(int)
    def _on_moved(self, _position: int) -> None:
        self.value_label.setText(self._fmt(self.value()))
        if not self.slider.isSliderDown():
            self.value_changed.emit(self.value())

    def value(self) -> float:
        return round(self.slider.value() * self._step, 6)

    def set_value(self, value: float, *, quiet: bool = False) -> None:
        """Set the value from code; ``quiet`` shows it without emitting ``value_changed``."""
        if quiet:
            self.slider.blockSignals(True)
            self._set_position(value)
            self.slider.blockSignals(False)
            self.value_label.setText(self._fmt(self.value()))
        else:
            self._set_position(value)


class LabeledSlider(ValueSlider):
    """A :class:`ValueSlider` of whole numbers (``value_changed(int)``)."""

    value_changed = Signal(int)

    def __init__(
        self,
        name: str,
        low: int,
        high: int,
        value: int,
        *,
        fmt: Callable[[int], str] = str,
        tip: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(name, low, high, 1, value, fmt=fmt, tip=tip, label_width=78, value_width=42, parent=parent)

    def value(self) -> int:  # type: ignore[override]
        return self.slider.value()
