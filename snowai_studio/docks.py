"""The dock registry: every tool adds its dock here, in one place.

A tool registers a :class:`DockSpec` whose factory builds the dock's widget from the
:class:`StudioContext` (settings, model store, notifications). The main window creates every
registered dock, adds it to the View menu, and saves/restores its place with the window state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from snowai_studio.notifications import NotificationManager
    from workers.settings import Settings


@dataclass
class StudioContext:
    """What a dock may use: never a model directly, only workers built from these."""

    settings: Settings
    notifications: NotificationManager
    model_store: Any = None
    #: Extra injectables (camera/microphone factories in tests, for example).
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DockSpec:
    #: Stable id; also the QDockWidget objectName used by saveState/restoreState.
    id: str
    title: str
    factory: Callable[[StudioContext], QWidget]
    area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea
    #: Tab the dock with the previous dock of the same area.
    tabbed: bool = True
    visible: bool = True
    shortcut: str = ""


_REGISTRY: list[DockSpec] = []


def register_dock(spec: DockSpec) -> DockSpec:
    """Add (or replace, by id) a dock specification."""
    for i, existing in enumerate(_REGISTRY):
        if existing.id == spec.id:
            _REGISTRY[i] = spec
            return spec
    _REGISTRY.append(spec)
    return spec


def registered_docks() -> list[DockSpec]:
    _register_builtin_docks()
    return list(_REGISTRY)


_builtin_done = False


def _register_builtin_docks() -> None:
    """The studio's own docks. Each tool adds one line here when it lands."""
    global _builtin_done
    if _builtin_done:
        return
    _builtin_done = True
    from snowai_studio.assistant import create_dock as assistant_dock
    from snowai_studio.face_swap import create_dock as face_swap_dock
    from snowai_studio.matting import create_dock as matting_dock
    from snowai_studio.voice_conversion import create_dock as voice_conversion_dock

    register_dock(DockSpec("matting", "Background removal", matting_dock, area=Qt.DockWidgetArea.RightDockWidgetArea))
    register_dock(DockSpec("face_swap", "Face swap", face_swap_dock, area=Qt.DockWidgetArea.RightDockWidgetArea))
    right = Qt.DockWidgetArea.RightDockWidgetArea
    register_dock(DockSpec("assistant", "Voice assistant", assistant_dock, area=right))
    register_dock(DockSpec("voice_conversion", "Voice conversion", voice_conversion_dock, area=right))
