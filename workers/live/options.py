"""Going live: options saved in the settings' ``live`` group, presets pairing a face and a voice, hotkeys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

#: The streamer controls a hotkey can trigger, with their default keys (pynput's notation).
HOTKEY_ACTIONS = {
    "toggle_live": "<ctrl>+<alt>+l",
    "passthrough": "<ctrl>+<alt>+p",
    "mute": "<ctrl>+<alt>+m",
    "next_preset": "<ctrl>+<alt>+n",
}
HOTKEY_LABELS = {
    "toggle_live": "Go live / stop",
    "passthrough": "Voice passthrough",
    "mute": "Mute the microphone",
    "next_preset": "Next face and voice preset",
}


@dataclass
class LivePreset:
    """A face and a voice that go together (a character)."""

    name: str = "Preset"
    #: Photos of the face (empty: the picture is sent unswapped).
    faces: list[str] = field(default_factory=list)
    #: "" is the built-in voice changer; else a voice model id or checkpoint path.
    voice: str = ""
    pitch: float = 0.0
    formant: float = 0.0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LivePreset:
        return cls(
            name=str(raw.get("name", "Preset")),
            faces=[str(p) for p in raw.get("faces", []) or []],
            voice=str(raw.get("voice", "") or ""),
            pitch=float(raw.get("pitch", 0.0) or 0.0),
            formant=float(raw.get("formant", 0.0) or 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "faces": list(self.faces),
            "voice": self.voice,
            "pitch": self.pitch,
            "formant": self.formant,
        }


@dataclass
class LiveOptions:
    SETTINGS_SECTION: ClassVar[str] = "live"

    #: The face and voice in use (the current preset's, or chosen by hand).
    faces: list[str] = field(default_factory=list)
    voice: str = ""
    pitch: float = 0.0
    formant: float = 0.0
    #: Voice blocks: shorter is sooner; the built-in voice changer keeps up with 0.1 s on any CPU.
    block_seconds: float = 0.1
    crossfade_seconds: float = 0.03
    extra_seconds: float = 0.1
    silence_db: float = -50.0
    noise_suppression: bool = True
    noise_gate: bool = True
    gate_db: float = -45.0
    passthrough: bool = False
    muted: bool = False
    #: Hear the converted voice on headphones (the speaker chosen in Devices).
    monitor: bool = False
    virtual_camera: bool = True
    virtual_microphone: bool = True
    #: Milliseconds the voice leaves after the picture (negative: before).
    offset_ms: float = 0.0
    hotkeys: dict[str, str] = field(default_factory=lambda: dict(HOTKEY_ACTIONS))
    #: Presets as plain dicts (see :class:`LivePreset`) and the one in use.
    presets: list[dict[str, Any]] = field(default_factory=list)
    preset_index: int = -1

    def preset_list(self) -> list[LivePreset]:
        return [LivePreset.from_dict(p) for p in self.presets if isinstance(p, dict)]

    def apply_preset(self, index: int) -> LivePreset | None:
        """Take the face and voice of preset ``index`` (wrapping around); the preset, or None when there is none."""
        presets = self.preset_list()
        if not presets:
            return None
        self.preset_index = index % len(presets)
        preset = presets[self.preset_index]
        self.faces, self.voice = list(preset.faces), preset.voice
        self.pitch, self.formant = preset.pitch, preset.formant
        return preset
