"""The voice-conversion page: a voice (built-in or so-vits-svc/RVC), live from the microphone, and files.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext
    from snowai_studio.voice_conversion.page import VoiceConversionPage


def create_page(context: StudioContext) -> VoiceConversionPage:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.voice_conversion.page import VoiceConversionPage

    return VoiceConversionPage(context)


__all__ = ["create_page"]
