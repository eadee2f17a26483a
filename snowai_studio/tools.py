"""The tool registry: every tool adds its page here, in one place.

A tool registers a :class:`ToolSpec` whose factory builds its page from the :class:`StudioContext`
(settings, model store, notifications). The main window puts every registered page in its tool
switcher (Ctrl+1, Ctrl+2... in registration order) and saves each page's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import QWidget

from snowai_studio.context import StudioContext


@dataclass(frozen=True)
class ToolSpec:
    #: Stable id; also the key of the page's saved layout.
    id: str
    title: str
    factory: Callable[[StudioContext], QWidget]
    #: An icon of resources/icons/ui and the short name under it in the switcher.
    icon: str = ""
    short_title: str = ""
    #: One sentence for the Home page: what the tool is for.
    blurb: str = ""


_REGISTRY: list[ToolSpec] = []


def register_tool(spec: ToolSpec) -> ToolSpec:
    """Add (or replace, by id) a tool."""
    for i, existing in enumerate(_REGISTRY):
        if existing.id == spec.id:
            _REGISTRY[i] = spec
            return spec
    _REGISTRY.append(spec)
    return spec


def registered_tools() -> list[ToolSpec]:
    _register_builtin_tools()
    return list(_REGISTRY)


_builtin_done = False


def _register_builtin_tools() -> None:
    """The studio's own tools, in the switcher's order."""
    global _builtin_done
    if _builtin_done:
        return
    _builtin_done = True
    from snowai_studio.assistant import create_page as assistant_page
    from snowai_studio.face_swap import create_page as face_swap_page
    from snowai_studio.live import create_page as live_page
    from snowai_studio.matting import create_page as matting_page
    from snowai_studio.voice_conversion import create_page as voice_conversion_page

    register_tool(ToolSpec(
        "face_swap", "Face swap", face_swap_page, "face_swap", "Face swap",
        "Put a face from your photos on a webcam, a video or an image.",
    ))
    register_tool(ToolSpec(
        "matting", "Background removal", matting_page, "matting", "Background",
        "Cut out the subject of photos, a video or the camera, and give it a new background.",
    ))
    register_tool(ToolSpec(
        "assistant", "Voice assistant", assistant_page, "assistant", "Assistant",
        "Talk to a local assistant that answers out loud, sentence by sentence.",
    ))
    register_tool(ToolSpec(
        "voice_conversion", "Voice conversion", voice_conversion_page, "voice_conversion", "Voice",
        "Speak or convert recordings with another voice (so-vits-svc and RVC models).",
    ))
    register_tool(ToolSpec(
        "live", "Go live", live_page, "live", "Go live",
        "Your swapped face and converted voice together, in sync, as a virtual camera and microphone.",
    ))
