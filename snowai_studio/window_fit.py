"""The main window's first size: 1280x800, or less on a smaller screen, centred on it.

A saved window state (``window.ini``) replaces it; this is the size of a first start and of a start
after the state was reset. On a 1280x720 or 1366x768 screen the window would otherwise open taller
than the screen, with its status bar and the bottom of each tool below the edge.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

#: The first size where the screen has room for it.
DEFAULT_SIZE = QSize(1280, 800)
#: Room left on the screen for a window manager's title bar and borders.
FRAME_ALLOWANCE = QSize(16, 48)


def first_geometry(available: QRect, preferred: QSize = DEFAULT_SIZE) -> QRect:
    """The window's inner rectangle: ``preferred``, shrunk to fit ``available`` (a screen's area
    without panels) with room for a frame, centred on it."""
    width = min(preferred.width(), available.width() - FRAME_ALLOWANCE.width())
    height = min(preferred.height(), available.height() - FRAME_ALLOWANCE.height())
    rect = QRect(0, 0, max(width, 1), max(height, 1))
    rect.moveCenter(available.center())
    return rect


def fit_to_screen(window: QWidget) -> None:
    """Give ``window`` its first size on the screen it opens on (the default size where there is no
    real screen: the offscreen platform's is a nominal 800x600)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() == "offscreen":
        window.resize(DEFAULT_SIZE)
        return
    window.setGeometry(first_geometry(screen.availableGeometry()))
