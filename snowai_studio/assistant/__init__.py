"""The voice-assistant page: speak or type, hear and read the answer, keep the conversation.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.assistant.page import AssistantPage
    from snowai_studio.context import StudioContext


def create_page(context: StudioContext) -> AssistantPage:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.assistant.page import AssistantPage

    return AssistantPage(context)


__all__ = ["create_page"]
