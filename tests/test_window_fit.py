"""The main window's first size fits the screen it opens on (snowai_studio/window_fit.py)."""

from __future__ import annotations

from PySide6.QtCore import QRect

from snowai_studio.window_fit import DEFAULT_SIZE, FRAME_ALLOWANCE, first_geometry


def test_a_large_screen_gets_the_default_size_centred() -> None:
    screen = QRect(0, 0, 1920, 1040)  # 1920x1080 less a 40 px panel
    rect = first_geometry(screen)
    assert rect.size() == DEFAULT_SIZE
    assert rect.center() == screen.center()


def test_a_small_screen_gets_a_window_that_fits_with_room_for_a_frame() -> None:
    for screen in (QRect(0, 0, 1280, 720), QRect(0, 27, 1366, 741), QRect(1920, 0, 1024, 600)):
        rect = first_geometry(screen)
        assert screen.contains(rect), (screen, rect)
        assert rect.height() == min(DEFAULT_SIZE.height(), screen.height() - FRAME_ALLOWANCE.height())
        assert rect.width() == min(DEFAULT_SIZE.width(), screen.width() - FRAME_ALLOWANCE.width())
        assert rect.center() == screen.center()
