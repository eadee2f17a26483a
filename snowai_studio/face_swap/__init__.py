"""The face-swap dock: source faces, targets, live camera, image and video files, responsible use.

Importing this package is cheap; :func:`create_dock` imports the widgets when the dock is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snowai_studio.docks import StudioContext
    from snowai_studio.face_swap.dock import FaceSwapDock


def create_dock(context: StudioContext) -> FaceSwapDock:
    """Build the dock (the factory registered in :mod:`snowai_studio.docks`)."""
    from snowai_studio.face_swap.dock import FaceSwapDock

    return FaceSwapDock(context)


__all__ = ["create_dock"]
