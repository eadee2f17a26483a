"""The background-removal page: canvas, brush, exports, batches, video and live.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext
    from snowai_studio.matting.page import MattingPage


def create_page(context: StudioContext) -> MattingPage:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.matting.page import MattingPage

    return MattingPage(context)


__all__ = ["create_page"]
