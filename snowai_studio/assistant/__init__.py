"""The voice-assistant dock: speak or type, hear and read the answer, keep the conversation.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.assistant.dock import AssistantDock
    from snowai_studio.context import StudioContext


def create_page(context: StudioContext) -> AssistantDock:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.assistant.dock import AssistantDock

    return AssistantDock(context)


__all__ = ["create_page"]
