"""What the voice-conversion page keeps between sessions, in the window's settings file under
``voice_conversion/``: the output folder, format and channels, the devices chosen on the page and the
voices used last. The voice's own options live in the studio's settings (``VoiceConversionOptions``).

Earlier versions kept these in ``voice_conversion.ini``; a value found only there is still used.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

from snowai_studio.panels.page_settings import page_settings, remember, remembered
from workers import paths

TOOL = "voice_conversion"
#: The voices offered again in the list (imported paths, newest first).
MAX_RECENT = 8
#: Where each key was kept before (``voice_conversion.ini``).
_LEGACY_KEYS = {"output": "output_folder", "format": "format", "input_device": "input_device",
                "output_device": "output_device", "recent_models": "recent_models"}


def _legacy() -> QSettings:
    return QSettings(str(paths.config_dir() / "voice_conversion.ini"), QSettings.Format.IniFormat)


def load(key: str, default: str = "") -> str:
    """The text kept under ``voice_conversion/<key>`` (``output``, ``format``, ``channels``...)."""
    value = remembered(TOOL, key)
    if value:
        return value
    old = _LEGACY_KEYS.get(key)
    legacy = _legacy().value(old, "") if old else ""
    return legacy if isinstance(legacy, str) and legacy else default


def save(key: str, value: str) -> None:
    remember(TOOL, key, value)


def recent_models() -> list[str]:
    value = page_settings().value(f"{TOOL}/recent_models")
    if value is None:
        value = _legacy().value("recent_models", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if isinstance(v, str) and v]


def remember_model(model: str) -> None:
    """Put ``model`` first among the recent voices (the built-in changer is not listed)."""
    if not model:
        return
    recent = [m for m in recent_models() if m != model]
    recent.insert(0, model)
    qs = page_settings()
    qs.setValue(f"{TOOL}/recent_models", recent[:MAX_RECENT])
    qs.sync()
