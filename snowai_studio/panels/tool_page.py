"""The frame of every tool page: primary actions as real buttons on top, a big preview in the middle,
the inspector on the right.

A page is a small main window of its own: the inspector is a dock that the user may move to the
other side, float on a second screen or hide (the window saves where it is), while the default
layout works untouched at 1280x720.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.icons import icon
from snowai_studio.panels.inspector import INSPECTOR_WIDTH, Inspector

#: The colour of a primary action's icon (drawn on the accent background).
PRIMARY_ICON_COLOR = "#ffffff"


def shortcut_text(shortcut: str | QKeySequence) -> str:
    return QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)


def make_action(
    owner: QWidget,
    text: str,
    slot: Callable[[], Any] | None = None,
    *,
    icon_name: str = "",
    tip: str = "",
    shortcut: str | QKeySequence = "",
    checkable: bool = False,
    primary: bool = False,
) -> QAction:
    """An action of ``owner`` with an icon, a tooltip that names its shortcut, and a shortcut that
    works while ``owner`` (or a child) has the focus or is the visible page."""
    action = QAction(text, owner)
    if icon_name:
        action.setIcon(icon(icon_name, PRIMARY_ICON_COLOR if primary else None))
    action.setCheckable(checkable)
    tip = tip or text.rstrip("…")
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        tip = f"{tip} ({shortcut_text(shortcut)})"
        owner.addAction(action)
    action.setToolTip(tip)
    action.setProperty("primary", primary)
    if slot is not None:
        if checkable:
            action.toggled.connect(lambda _on: slot())
        else:
            action.triggered.connect(lambda _checked=False: slot())
    return action


def action_button(action: QAction, *, primary: bool = False) -> QToolButton:
    """A button for ``action`` that looks like one: framed, icon beside the text."""
    button = QToolButton()
    button.setDefaultAction(action)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setIconSize(QSize(18, 18))
    button.setProperty("actionButton", True)
    button.setProperty("primary", primary or bool(action.property("primary")))
    button.setObjectName(f"button.{action.text().rstrip('…').replace(' ', '')}")
    return button


def push_button(text: str, icon_name: str = "", *, primary: bool = False, tip: str = "") -> QPushButton:
    """A plain push button with one of the studio's icons (white on the accent when primary)."""
    button = QPushButton(text)
    if icon_name:
        button.setIcon(icon(icon_name, PRIMARY_ICON_COLOR if primary else None))
    button.setProperty("primary", primary)
    if tip:
        button.setToolTip(tip)
    return button


class ToolPage(QMainWindow):
    """A tool page. Subclasses build their preview with :meth:`set_preview`, put their primary actions
    on :attr:`action_bar` with :meth:`add_action_button` and their settings in :attr:`inspector`."""

    #: Stable id of the tool ("matting", "face_swap"...) and its title.
    tool_id = ""
    title = ""

    #: The page stands in its own window and the user closed that window: put it back.
    attach_requested = Signal()
    #: The user asked for the tool's recommended models (the banner's "Get started…").
    get_started_requested = Signal()
    #: The user hid the "Get started" banner for good.
    get_started_dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlags(Qt.WindowType.Widget)
        self.setObjectName(f"page.{self.tool_id}" if self.tool_id else "toolPage")
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        #: The action that opens the page's input (File → Open, Ctrl+O, calls it).
        self.open_action: QAction | None = None

        self.action_bar = QToolBar(f"{self.title} actions")
        self.action_bar.setObjectName("pageActions")
        self.action_bar.setMovable(False)
        self.action_bar.setFloatable(False)
        self.action_bar.setIconSize(QSize(18, 18))
        self.action_bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.action_bar.toggleViewAction().setEnabled(False)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.action_bar)

        self.inspector = Inspector()
        self.inspector_dock = QDockWidget(f"{self.title} settings" if self.title else "Settings", self)
        self.inspector_dock.setObjectName("inspectorDock")
        self.inspector_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        sides = Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        self.inspector_dock.setAllowedAreas(sides)
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.resizeDocks([self.inspector_dock], [INSPECTOR_WIDTH], Qt.Orientation.Horizontal)

        from snowai_studio.panels.starter_banner import StarterBanner  # it uses this module's buttons

        # The "Get started" banner sits above whatever the page puts in its centre.
        self.starter_banner = StarterBanner()
        self.starter_banner.open_requested.connect(self.get_started_requested)
        self.starter_banner.dismissed.connect(self.get_started_dismissed)
        self.center = QWidget()
        self.center.setObjectName("pageCenter")
        self.center_layout = QVBoxLayout(self.center)
        self.center_layout.setContentsMargins(8, 6, 8, 6)
        self.center_layout.setSpacing(6)
        holder = QWidget()
        outer = QVBoxLayout(holder)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        banner_row = QVBoxLayout()
        banner_row.setContentsMargins(8, 6, 8, 0)
        banner_row.addWidget(self.starter_banner)
        outer.addLayout(banner_row)
        outer.addWidget(self.center, 1)
        self.setCentralWidget(holder)
        self._default_state: QByteArray | None = None
        self._layout_restored = False
        self._pending_state: QByteArray | None = None
        #: The studio's main window, also while the page stands in a window of its own.
        self.studio: QWidget | None = None
        self._shown_before = False

    # ---- building -----------------------------------------------------------------------------
    def action(self, text: str, slot: Callable[[], Any] | None = None, **kwargs: Any) -> QAction:
        """:func:`make_action` owned by this page."""
        return make_action(self, text, slot, **kwargs)

    def add_action_button(self, action: QAction, *, primary: bool = False) -> QToolButton:
        button = action_button(action, primary=primary)
        self.action_bar.addWidget(button)
        return button

    def add_action_spacer(self) -> None:
        """Push the next buttons to the right end of the action bar."""
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.action_bar.addWidget(spacer)

    def set_preview(self, widget: QWidget, stretch: int = 1) -> QWidget:
        """The big thing in the middle (canvas, video, transcript): it takes the room that is left."""
        self.center_layout.insertWidget(0, widget, stretch)
        return widget

    def add_below_preview(self, widget: QWidget) -> QWidget:
        self.center_layout.addWidget(widget)
        return widget

    # ---- state ----------------------------------------------------------------------------------
    def remember_default_layout(self) -> None:
        self._default_state = self.saveState()

    def restoreState(self, state: QByteArray | bytes, version: int = 0) -> bool:
        restored = super().restoreState(state, version)
        self._layout_restored = self._layout_restored or restored
        return restored

    def restore_when_shown(self, state: QByteArray | bytes) -> None:
        """Restore a saved layout once the page has its real size (restored while the page is still
        small, the inspector would come back squeezed to its narrowest width)."""
        if self._shown_before:
            self.restoreState(state)
        else:
            self._pending_state = QByteArray(state)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_before:
            self._shown_before = True
            pending, self._pending_state = self._pending_state, None
            if pending is not None:
                self.restoreState(pending)
            if not self._layout_restored:
                # Laid out while it was small, the inspector would keep its narrowest width: it gets its
                # own once the page has its real size (a saved layout keeps the user's width).
                self.resizeDocks([self.inspector_dock], [INSPECTOR_WIDTH], Qt.Orientation.Horizontal)

    def reset_layout(self) -> None:
        if self._default_state is not None:
            self.restoreState(self._default_state)
        self.inspector_dock.setFloating(False)
        self.inspector_dock.show()

    def page_shortcuts(self) -> list[tuple[str, str]]:
        """(shortcut, what it does) for this page's actions, for the shortcuts list."""
        found = []
        for action in self.actions():
            if not action.shortcut().isEmpty():
                what = action.toolTip().split(" (")[0] or action.text().replace("&", "")
                found.append((shortcut_text(action.shortcut()), what))
        return found

    # ---- what the window tells every page ---------------------------------------------------------
    def devices_changed(self) -> None:
        """The camera, microphone or speaker chosen in Devices changed."""

    def models_changed(self) -> None:
        """The model manager closed: models may have been downloaded, imported or removed."""

    def model_imported(self, model_id: str) -> None:
        """The user imported ``model_id`` for this tool: select it."""

    def use_recommended(self, model_ids: list[str]) -> None:
        """The tool's recommended models are ready ("Get started"): select each where it belongs."""
        self.models_changed()
        for model_id in model_ids:
            self.model_imported(model_id)

    def shutdown(self) -> None:
        """Stop the page's workers and release its devices (the window calls it on close)."""

    def studio_window(self) -> QWidget:
        """The main window (the one with Devices and the model manager), even when detached."""
        return self.studio if self.studio is not None else self.window()

    @property
    def detached(self) -> bool:
        return bool(self.windowFlags() & Qt.WindowType.Window) and self.parent() is None

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.detached:
            # Closing a page's own window puts the page back into the studio; the tool keeps running.
            event.ignore()
            self.attach_requested.emit()
            return
        super().closeEvent(event)
