"""The studio's typed settings, saved as JSON under the user config folder.

The file is ``<config dir>/settings.json``; the folder follows ``SNOWAI_CONFIG_DIR`` or
``SNOWAI_HOME`` (see :mod:`workers.paths`), and ``SNOWAI_SETTINGS_FILE`` names the file itself.
A missing, unreadable or partly wrong file never stops the studio: bad values fall back to their
defaults and the problems are reported in :attr:`Settings.load_warnings`.
Window geometry and dock layout are not kept here but in QSettings (see the main window).

Each tool keeps its own options in a section of the file (``"assistant"``, ``"voice_conversion"``...)
without this module knowing the tool: the tool's options dataclass names its section in a
``SETTINGS_SECTION`` class variable and reads or replaces it with :meth:`Settings.options` and
:meth:`Settings.set_options`::

    options = settings.options(AssistantOptions)   # typed, checked, the same object each time
    settings.set_options(replace(options, speed=1.2))
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from workers import paths

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")
COMPUTE = ("auto", "cpu", "cuda")


class SectionOptions(Protocol):
    """A tool's options dataclass: its fields have defaults, and it names its section of the file."""

    SETTINGS_SECTION: ClassVar[str]


OptionsT = TypeVar("OptionsT")


def section_name(cls: type[Any]) -> str:
    """The settings section an options dataclass is saved in (its ``SETTINGS_SECTION``)."""
    name = getattr(cls, "SETTINGS_SECTION", None)
    if not isinstance(name, str) or not name or not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a settings section: give the dataclass a SETTINGS_SECTION name")
    if name in _CORE_FIELDS:
        raise TypeError(f"{cls.__name__} names the section {name!r}, which the studio itself uses")
    return name


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


@dataclass(eq=False)
class Settings:
    theme: str = "system"
    #: None means the default store (see :func:`workers.paths.models_dir`).
    model_store: str | None = None
    compute: str = "auto"
    devices: DeviceSettings = field(default_factory=DeviceSettings)
    face_swap: FaceSwapSettings = field(default_factory=FaceSwapSettings)
    #: The tools' own sections by name: the group as read from the file (a dict, kept as it is, also
    #: for tools this version does not know) until the tool asks for it, then its options dataclass.
    sections: dict[str, Any] = field(default_factory=dict)
    load_warnings: list[str] = field(default_factory=list, repr=False)

    def models_dir(self) -> Path:
        return Path(self.model_store).expanduser() if self.model_store else paths.models_dir()

    # ---- the tools' sections ------------------------------------------------------------------
    def options(self, cls: type[OptionsT]) -> OptionsT:
        """A tool's options (``cls`` names its section): read from the file the first time, with wrong
        values back at their defaults (each one a sentence in :attr:`load_warnings` and the log), then
        the same object each time, so that changing it changes what :meth:`save` writes."""
        name = section_name(cls)
        current = self.sections.get(name)
        if isinstance(current, cls):
            return current
        options = cls()
        problems: list[str] = []
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            current = dataclasses.asdict(current)  # set by another build of the same options
        if isinstance(current, dict):
            _fill(options, current, problems, prefix=f"{name}.")
        elif current is not None:
            problems.append(f"Setting {name} should be a group of settings; default kept.")
        for msg in problems:
            log.warning("%s", msg)
        self.load_warnings.extend(problems)
        self.sections[name] = options
        return options

    def set_options(self, options: Any) -> None:
        """Replace a tool's options (saved by the next :meth:`save`)."""
        self.sections[section_name(type(options))] = options

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
        settings.sections = {key: value for key, value in raw.items() if key not in _CORE_FIELDS}
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
        """What is saved: the studio's own settings, then each tool's section."""
        data = {name: _plain(getattr(self, name)) for name in _CORE_FIELDS}
        for name, value in self.sections.items():
            data[name] = _plain(value)
        return data

    def __eq__(self, other: object) -> bool:
        """Equal when they would be saved alike (a section read by its tool or not yet)."""
        if not isinstance(other, Settings):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def save(self, path: Path | None = None) -> Path:
        """Write atomically (temp file, then rename) so a crash never leaves half a file."""
        from workers.files import write_atomic

        path = path or self.path()
        return write_atomic(path, json.dumps(self.to_dict(), indent=2).encode("utf-8"))


#: The top-level keys the studio itself owns; every other key of the file is a tool's section.
_CORE_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in ("sections", "load_warnings"))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return copy.deepcopy(value)


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
        if f.name in ("load_warnings", "sections") or f.name not in raw:
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
