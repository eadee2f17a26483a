"""The face-swap page: source faces, targets, live camera, image and video files, responsible use.

Importing this package is cheap; :func:`create_page` imports the widgets when the page is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext
    from snowai_studio.face_swap.page import FaceSwapPage


def create_page(context: StudioContext) -> FaceSwapPage:
    """Build the page (the factory registered in :mod:`snowai_studio.tools`)."""
    from snowai_studio.face_swap.page import FaceSwapPage

    return FaceSwapPage(context)


__all__ = ["create_page"]
