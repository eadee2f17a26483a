"""The virtual camera (pyvirtualcam): what the face swap and Go live send their picture to. No Qt here."""

from __future__ import annotations

import logging
from typing import Any

from workers.errors import UserError

log = logging.getLogger(__name__)


def open_virtual_camera(width: int, height: int, fps: float, *, meanwhile: str = "then try again") -> Any:
    """A pyvirtualcam camera taking BGR frames, or a UserError sentence with the fix when there is none;
    ``meanwhile`` ends the sentence (what to do next, or what goes on without the camera)."""
    try:
        import pyvirtualcam
    except ImportError:
        raise UserError(
            f"The virtual camera needs the pyvirtualcam package: install it with "
            f"pip install 'snowai-studio[virtualcam]', {meanwhile}."
        ) from None
    try:
        return pyvirtualcam.Camera(
            width=int(width), height=int(height), fps=float(fps or 30.0), fmt=pyvirtualcam.PixelFormat.BGR
        )
    except Exception as exc:
        log.info("pyvirtualcam could not open a camera: %s", exc)
        raise UserError(
            "No virtual camera device was found: install OBS Studio and start its virtual camera once "
            f"(Windows, macOS) or load v4l2loopback (Linux: sudo modprobe v4l2loopback exclusive_caps=1), {meanwhile}."
        ) from None
