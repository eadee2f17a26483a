"""The studio's typed settings, saved as JSON under the user config folder.

The file is ``<config dir>/settings.json``; the folder follows ``SNOWAI_CONFIG_DIR`` or
``SNOWAI_HOME`` (see :mod:`workers.paths`), and ``SNOWAI_SETTINGS_FILE`` names the file itself.
A missing, unreadable or partly wrong file never stops the studio: bad values fall back to their
defaults and the problems are reported in :attr:`Settings.load_warnings`.
Window geometry and dock layout are not kept here but in QSettings (see the main window).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers import paths
from workers.assistant.options import AssistantOptions
from workers.voice_conversion.options import VoiceConversionOptions

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")
COMPUTE = ("auto", "cpu", "cuda")


@dataclass
class DeviceSettings:
    #: A camera index ("0") or a video file path used as a camera.
    camera: str = "0"
    camera_width: int = 1280
    camera_height: int = 720
    camera_fps: int = 30
    #: Device names; None means the system default.
    microphone: str | None = None
    speaker: str | None = None
    #: None means the device's native rate.
    sample_rate: int | None = None
    block_size: int = 1024


@dataclass
class FaceSwapSettings:
    #: The user accepted the responsible-use terms shown before the first swap.
    consent_accepted: bool = False
    #: Draw the visible "AI-generated" mark on swapped images, videos and the live picture.
    mark: bool = True
    #: "auto", "insightface" or "classic".
    engine: str = "auto"
    #: The source face photos chosen last, reopened with the dock.
    last_source: list[str] = field(default_factory=list)


@dataclass
class Settings:
    theme: str = "system"
    #: None means the default store (see :func:`workers.paths.models_dir`).
    model_store: str | None = None
    compute: str = "auto"
    devices: DeviceSettings = field(default_factory=DeviceSettings)
    face_swap: FaceSwapSettings = field(default_factory=FaceSwapSettings)
    assistant: AssistantOptions = field(default_factory=AssistantOptions)
    voice_conversion: VoiceConversionOptions = field(default_factory=VoiceConversionOptions)
    load_warnings: list[str] = field(default_factory=list, repr=False, compare=False)

    def models_dir(self) -> Path:
        return Path(self.model_store).expanduser() if self.model_store else paths.models_dir()

    # ---- persistence ----------------------------------------------------------------------
    @staticmethod
    def path() -> Path:
        override = os.environ.get("SNOWAI_SETTINGS_FILE")
        return Path(override).expanduser() if override else paths.config_dir() / "settings.json"

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or cls.path()
        settings = cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return settings
        except (OSError, ValueError) as exc:
            settings.load_warnings.append(f"The settings file {path} could not be read ({exc}); defaults are used.")
            return settings
        if not isinstance(raw, dict):
            settings.load_warnings.append(f"The settings file {path} is not a JSON object; defaults are used.")
            return settings
        _fill(settings, raw, settings.load_warnings, prefix="")
        if settings.theme not in THEMES:
            settings.load_warnings.append(f"Unknown theme {settings.theme!r}; using the system theme.")
            settings.theme = "system"
        if settings.compute not in COMPUTE:
            settings.load_warnings.append(f"Unknown compute device {settings.compute!r}; using auto.")
            settings.compute = "auto"
        for msg in settings.load_warnings:
            log.warning("%s", msg)
        return settings

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("load_warnings", None)
        return data

    def save(self, path: Path | None = None) -> Path:
        """Write atomically (temp file, then rename) so a crash never leaves half a file."""
        from workers.files import write_atomic

        path = path or self.path()
        return write_atomic(path, json.dumps(self.to_dict(), indent=2).encode("utf-8"))


def _accepts(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _fill(obj: Any, raw: dict[str, Any], warnings: list[str], prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name == "load_warnings" or f.name not in raw:
            continue
        value = raw[f.name]
        current = getattr(obj, f.name)
        if dataclasses.is_dataclass(current):
            if isinstance(value, dict):
                _fill(current, value, warnings, prefix=f"{prefix}{f.name}.")
            else:
                warnings.append(f"Setting {prefix}{f.name} should be a group of settings; default kept.")
            continue
        if _accepts(hints[f.name], value):
            setattr(obj, f.name, value)
        else:
            warnings.append(f"Setting {prefix}{f.name} has an invalid value {value!r}; default kept.")
