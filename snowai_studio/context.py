"""What a tool page may use: settings, notifications and the model store, never a model directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snowai_studio.notifications import NotificationManager
    from workers.settings import Settings


@dataclass
class StudioContext:
    """What a page may use: never a model directly, only workers built from these."""

    settings: Settings
    notifications: NotificationManager
    model_store: Any = None
    #: Extra injectables (camera/microphone factories in tests, for example).
    extras: dict[str, Any] = field(default_factory=dict)
    #: The last scan of cameras, microphones and speakers (a workers.media.devices.DeviceReport), or None.
    device_report: Any = None
