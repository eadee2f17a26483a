"""The inspector on the right of a tool page: collapsible sections in a scroll area."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QLayout, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

#: The inspector's width (px): room for a label and a control side by side, and no more.
INSPECTOR_WIDTH = 340


class Section(QFrame):
    """A titled group that folds: a header button with an arrow, and a body widget."""

    toggled = Signal(bool)

    def __init__(self, title: str, body: QWidget | QLayout | None = None, *, expanded: bool = True,
                 object_name: str = "") -> None:
        super().__init__()
        self.setObjectName(object_name or "inspectorSection")
        self.setProperty("section", True)
        self.header = QToolButton()
        self.header.setObjectName("sectionHeader")
        self.header.setText(title.replace("&", "&&"))  # "Engine & enhancer" is text, not a mnemonic
        self.header.setCheckable(True)
        self.header.setChecked(expanded)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.header.setAutoRaise(True)
        self.header.toggled.connect(self.set_expanded)
        self.body = QWidget()
        self.body.setObjectName("sectionBody")
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(8, 2, 4, 8)
        self.body_layout.setSpacing(6)
        if isinstance(body, QLayout):
            self.body_layout.addLayout(body)
        elif body is not None:
            self.body_layout.addWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        self.set_expanded(expanded)

    @property
    def title(self) -> str:
        return self.header.text().replace("&&", "&")

    @property
    def expanded(self) -> bool:
        return self.header.isChecked()

    def set_expanded(self, on: bool) -> None:
        if self.header.isChecked() != on:
            self.header.setChecked(on)  # comes back here through toggled
            return
        self.header.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.body.setVisible(on)
        self.toggled.emit(on)

    def add(self, item: QWidget | QLayout, stretch: int = 0) -> QWidget | QLayout:
        """Add a widget or a layout to the section's body; returns it."""
        if isinstance(item, QLayout):
            self.body_layout.addLayout(item, stretch)
        else:
            self.body_layout.addWidget(item, stretch)
        return item


class Inspector(QScrollArea):
    """Sections stacked top to bottom; scrolls when they are taller than the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspector")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(260)
        self.sections: dict[str, Section] = {}
        body = QWidget()
        body.setObjectName("inspectorBody")
        self._layout = QVBoxLayout(body)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.setSpacing(4)
        self._layout.addStretch(1)
        self.setWidget(body)

    def add_widget(self, widget: QWidget) -> QWidget:
        """A widget above the sections' stretch, not folded (a primary button, a status line)."""
        self._layout.insertWidget(self._layout.count() - 1, widget)
        return widget

    def add_section(self, title: str, body: QWidget | QLayout | None = None, *, expanded: bool = True,
                    key: str = "") -> Section:
        section = Section(title, body, expanded=expanded, object_name=f"section.{key}" if key else "")
        self._layout.insertWidget(self._layout.count() - 1, section)
        self.sections[key or title] = section
        return section

    def section_states(self) -> dict[str, bool]:
        return {key: s.expanded for key, s in self.sections.items()}

    def restore_section_states(self, states: dict) -> None:
        for key, on in states.items():
            if key in self.sections and isinstance(on, bool):
                self.sections[key].set_expanded(on)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(INSPECTOR_WIDTH)
        return hint
