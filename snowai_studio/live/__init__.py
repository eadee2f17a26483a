"""The Go live page: face swap and voice conversion together, as a virtual camera and a virtual microphone.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext
    from snowai_studio.live.page import LivePage


def create_page(context: StudioContext) -> LivePage:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.live.page import LivePage

    return LivePage(context)


__all__ = ["create_page"]
