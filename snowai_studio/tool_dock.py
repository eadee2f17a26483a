"""What the tool docks share outside their own widgets: default folders, the camera, microphone and
speaker they open and the way to the model manager."""

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


def microphone_factory(context: Any) -> Callable[[], Any]:
    """What builds the microphone: one injected as ``microphone_factory`` in the context's extras, or
    the microphone chosen in Settings, unopened (the worker that uses it opens it on its own thread):
    an :class:`~workers.media.audio.AudioInput` for a device, or a
    :class:`~workers.media.microphone.FileMicrophone` (looped, at real-time pace) for a sound file."""
    injected = context.extras.get("microphone_factory")
    if injected is not None:
        return injected
    devices = context.settings.devices

    def make() -> Any:
        from workers.media.microphone import make_microphone

        blocksize = max(256, min(int(devices.block_size or 1024), 2048))
        return make_microphone(devices.microphone, devices.sample_rate, blocksize, channels=1)

    return make


def microphone_available(context: Any) -> bool:
    """Whether a page has a microphone to listen to: one injected as ``microphone_factory``, the
    sound file chosen in Devices (when it exists), or any capture device present. A page disables
    its "Start listening" when this is False."""
    if context.extras.get("microphone_factory") is not None:
        return True
    from workers.media.microphone import microphone_available as available

    return available(context.settings.devices.microphone)


def speaker_factory(context: Any) -> Callable[[], Any]:
    """What builds the speaker: one injected as ``speaker_factory`` in the context's extras, or the
    speaker chosen in Settings (an unopened :class:`~workers.media.audio.AudioOutput` with a short buffer,
    so that stopping an answer is heard at once)."""
    injected = context.extras.get("speaker_factory")
    if injected is not None:
        return injected
    devices = context.settings.devices

    def make() -> Any:
        from workers.media.audio import AudioOutput

        return AudioOutput(devices.speaker, devices.sample_rate, 512, channels=1, buffer_seconds=0.25)

    return make


def studio_window(widget: QWidget) -> QWidget:
    """The studio's main window for a widget of a page, also while the page stands in its own window."""
    owner: Any = widget
    while owner is not None:
        studio = getattr(owner, "studio", None)
        if isinstance(studio, QWidget):
            return studio
        owner = owner.parentWidget()
    return widget.window()


def open_model_manager(dock: QWidget, store: Any) -> None:
    """Open the window's model manager, or a model manager dialog when the dock stands alone."""
    window = studio_window(dock)
    opener = getattr(window, "open_model_manager", None)
    if callable(opener) and window is not dock:
        opener()
    elif store is not None:
        from snowai_studio.dialogs.models_dialog import ModelManagerDialog

        ModelManagerDialog(store, dock).exec()


def open_devices(dock: QWidget) -> None:
    """Open the window's Devices dialog (a page standing alone, in a test, has none)."""
    window = studio_window(dock)
    opener = getattr(window, "open_devices", None)
    if callable(opener) and window is not dock:
        opener()
