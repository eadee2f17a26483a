"""The background-removal dock: canvas, brush, exports, batches, video and live.

Importing this package is cheap; :func:`create_dock` imports the widgets when the dock is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.docks import StudioContext
    from snowai_studio.matting.dock import MattingDock


def create_dock(context: StudioContext) -> MattingDock:
    """Build the dock (the factory registered in :mod:`snowai_studio.docks`)."""
    from snowai_studio.matting.dock import MattingDock

    return MattingDock(context)


__all__ = ["create_dock"]
