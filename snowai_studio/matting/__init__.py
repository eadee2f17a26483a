"""The background-removal dock: canvas, brush, exports, batches, video and live.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext
    from snowai_studio.matting.dock import MattingDock


def create_page(context: StudioContext) -> MattingDock:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.matting.dock import MattingDock

    return MattingDock(context)


__all__ = ["create_page"]
