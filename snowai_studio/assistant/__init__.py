"""The voice-assistant dock: speak or type, hear and read the answer, keep the conversation.

Importing this package is cheap; :func:`create_dock` imports the widgets when the dock is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.assistant.dock import AssistantDock
    from snowai_studio.docks import StudioContext


def create_dock(context: StudioContext) -> AssistantDock:
    """Build the dock (the factory registered in :mod:`snowai_studio.docks`)."""
    from snowai_studio.assistant.dock import AssistantDock

    return AssistantDock(context)


__all__ = ["create_dock"]
