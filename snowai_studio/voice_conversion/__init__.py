"""The voice-conversion dock: a voice (built-in or so-vits-svc/RVC), live from the microphone, and files.

Importing this package is cheap; :func:`create_dock` imports the widgets when the dock is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.docks import StudioContext
    from snowai_studio.voice_conversion.dock import VoiceConversionDock


def create_dock(context: StudioContext) -> VoiceConversionDock:
    """Build the dock (the factory registered in :mod:`snowai_studio.docks`)."""
    from snowai_studio.voice_conversion.dock import VoiceConversionDock

    return VoiceConversionDock(context)


__all__ = ["create_dock"]
