"""Small layout helpers the pages share: a widget on the left of a row, widgets centred in a row, and
a combo box that fits the column it is given."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QWidget


def left_aligned(widget: QWidget) -> QWidget:
    """A row holding ``widget`` at its own width, on the left (a secondary button under a list)."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widget)
    layout.addStretch(1)
    return row


def centred_row(*widgets: QWidget) -> QHBoxLayout:
    """``widgets`` side by side in the middle of a row."""
    row = QHBoxLayout()
    row.addStretch(1)
    for widget in widgets:
        row.addWidget(widget)
    row.addStretch(1)
    return row


def fit_combo(combo: QComboBox, characters: int = 10) -> QComboBox:
    """Let ``combo`` take the width it is given instead of its longest entry's, so that an inspector
    column never grows wider than the window; the open list still shows the entries whole."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo
