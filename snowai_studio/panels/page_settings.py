"""Small choices a page keeps between sessions (an output folder, a recordings folder).

They live in the window's settings file (``window.ini`` in the config folder) under
``<tool_id>/<key>``; the studio's typed settings keep what every tool shares.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from workers import paths


def page_settings() -> QSettings:
    """The window's settings file (the same one that keeps the pages' layouts)."""
    return QSettings(str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat)


def remembered(tool_id: str, key: str, default: str = "") -> str:
    """The text kept under ``<tool_id>/<key>``, or ``default``."""
    value = page_settings().value(f"{tool_id}/{key}")
    return value if isinstance(value, str) and value else default


def remember(tool_id: str, key: str, value: str) -> None:
    qs = page_settings()
    qs.setValue(f"{tool_id}/{key}", value)
    qs.sync()


def remembered_folder(tool_id: str, key: str, default: str) -> str:
    """A folder kept under ``<tool_id>/<key>`` while it still exists, else ``default``."""
    folder = remembered(tool_id, key)
    return folder if folder and Path(folder).is_dir() else default
