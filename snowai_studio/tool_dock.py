"""What the tool docks share outside their own widgets: default folders, the camera they open and
the way to the model manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QWidget


def pictures_dir() -> str:
    """The user's pictures folder (the home folder when there is none)."""
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return found or str(Path.home())


def videos_dir() -> str:
    """The user's videos folder (the home folder when there is none)."""
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return found or str(Path.home())


def camera_factory(context: Any) -> Callable[[], Any]:
    """What builds the live camera: one injected as ``camera_factory`` in the context's extras, or
    the camera chosen in Settings (opened on the camera worker's thread)."""
    injected = context.extras.get("camera_factory")
    if injected is not None:
        return injected
    devices = context.settings.devices

    def make() -> Any:
        from workers.media.camera import make_frame_source

        return make_frame_source(devices.camera, devices.camera_width, devices.camera_height, devices.camera_fps)

    return make


def open_model_manager(dock: QWidget, store: Any) -> None:
    """Open the window's model manager, or a model manager dialog when the dock stands alone."""
    window = dock.window()
    opener = getattr(window, "open_model_manager", None)
    if callable(opener) and window is not dock:
        opener()
    elif store is not None:
        from snowai_studio.dialogs.models_dialog import ModelManagerDialog

        ModelManagerDialog(store, dock).exec()
