"""Typed settings: defaults, round trip, tolerant loading, isolated folders."""

from __future__ import annotations

import json
from pathlib import Path

from workers import paths
from workers.settings import Settings


def test_paths_follow_the_isolated_home(isolated_home: Path) -> None:
    assert paths.config_dir() == isolated_home / "config"
    assert paths.models_dir() == isolated_home / "models"
    assert paths.log_dir() == isolated_home / "logs"
    assert Settings.path() == isolated_home / "config" / "settings.json"


def test_specific_variables_win(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SNOWAI_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("SNOWAI_SETTINGS_FILE", str(tmp_path / "s.json"))
    assert paths.models_dir() == tmp_path / "m"
    assert Settings.path() == tmp_path / "s.json"


def test_round_trip() -> None:
    s = Settings()
    s.theme = "dark"
    s.model_store = "/tmp/somewhere"
    s.devices.camera = "clip.mp4"
    s.devices.sample_rate = 44100
    path = s.save()
    again = Settings.load()
    assert again == s
    assert again.models_dir() == Path("/tmp/somewhere")
    assert json.loads(path.read_text())["devices"]["camera"] == "clip.mp4"
    assert not path.with_name("settings.json.tmp").exists()


def test_missing_file_gives_defaults() -> None:
    s = Settings.load()
    assert s == Settings() and s.load_warnings == []


def test_corrupt_file_gives_defaults_and_a_warning() -> None:
    path = Settings.path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\xffnot json")
    s = Settings.load()
    assert s == Settings()
    assert "could not be read" in s.load_warnings[0]


def test_wrong_values_fall_back_one_by_one() -> None:
    path = Settings.path()
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "theme": "neon",
                "compute": "cpu",
                "devices": {"camera_fps": "fast", "block_size": 512, "microphone": 3},
                "unknown": 1,
            }
        )
    )
    s = Settings.load()
    assert s.theme == "system" and s.compute == "cpu"
    assert s.devices.camera_fps == 30 and s.devices.block_size == 512 and s.devices.microphone is None
    text = " ".join(s.load_warnings)
    assert "neon" in text and "camera_fps" in text and "microphone" in text


# ---- the tools' sections ----------------------------------------------------------------------------------
def test_settings_know_no_tool() -> None:
    """The settings module imports no tool package; a tool's options name their own section."""
    import ast

    import workers.settings as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    tools = ("assistant", "voice_conversion", "face_swap", "matting")
    assert not [name for name in imported if any(name.startswith(f"workers.{tool}") for tool in tools)]


def test_tool_options_are_typed_sections_with_defaults() -> None:
    from workers.assistant.options import AssistantOptions
    from workers.voice_conversion.options import VoiceConversionOptions

    s = Settings()
    assert s.options(AssistantOptions) == AssistantOptions()
    assert s.options(VoiceConversionOptions) == VoiceConversionOptions()
    # The same object each time: changing it changes what is saved.
    s.options(AssistantOptions).speed = 1.25
    s.set_options(VoiceConversionOptions(pitch=3.0, f0_method="harvest"))
    path = s.save()
    saved = json.loads(path.read_text())
    assert saved["assistant"]["speed"] == 1.25 and saved["voice_conversion"]["pitch"] == 3.0
    assert "SETTINGS_SECTION" not in saved["assistant"]
    again = Settings.load()
    assert again == s and again.load_warnings == []
    assert again.options(AssistantOptions).speed == 1.25
    assert again.options(VoiceConversionOptions).f0_method == "harvest"


def test_an_existing_settings_file_still_loads() -> None:
    """A file written before the sections (the same JSON groups) reads back the same, wrong values
    falling back one by one with a warning each, and unknown groups kept on save."""
    from workers.assistant.options import AssistantOptions
    from workers.voice_conversion.options import VoiceConversionOptions

    path = Settings.path()
    path.parent.mkdir(parents=True)
    old = {
        "theme": "dark",
        "model_store": None,
        "compute": "auto",
        "devices": {"camera": "0", "microphone": "USB mic"},
        "face_swap": {"consent_accepted": True},
        "assistant": {"llm_backend": "openai", "speed": "fast", "memory_tokens": 512, "mode": "ptt"},
        "voice_conversion": {"pitch": 5, "speaker": "two", "model": "my-voice"},
        "later_tool": {"x": 1},
    }
    path.write_text(json.dumps(old))
    s = Settings.load()
    assert s.theme == "dark" and s.devices.microphone == "USB mic" and s.face_swap.consent_accepted
    assistant = s.options(AssistantOptions)
    assert (assistant.llm_backend, assistant.memory_tokens, assistant.mode) == ("openai", 512, "ptt")
    assert assistant.speed == AssistantOptions().speed
    vc = s.options(VoiceConversionOptions)
    assert (vc.pitch, vc.model, vc.speaker) == (5, "my-voice", 0)
    text = " ".join(s.load_warnings)
    assert "assistant.speed" in text and "'fast'" in text and "voice_conversion.speaker" in text
    s.save()
    saved = json.loads(path.read_text())
    assert saved["later_tool"] == {"x": 1}
    assert saved["assistant"]["llm_backend"] == "openai" and saved["assistant"]["speed"] == 1.0
    assert set(saved) >= {"theme", "devices", "face_swap", "assistant", "voice_conversion"}


def test_a_section_that_is_not_a_group_gives_defaults_and_a_warning() -> None:
    from workers.assistant.options import AssistantOptions

    path = Settings.path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"assistant": 5}))
    s = Settings.load()
    assert s.options(AssistantOptions) == AssistantOptions()
    assert "Setting assistant should be a group of settings" in " ".join(s.load_warnings)


def test_only_dataclasses_that_name_a_section_are_sections() -> None:
    import dataclasses

    import pytest

    @dataclasses.dataclass
    class Nameless:
        x: int = 0

    @dataclasses.dataclass
    class Clash:
        SETTINGS_SECTION = "devices"
        x: int = 0

    with pytest.raises(TypeError, match="SETTINGS_SECTION"):
        Settings().options(Nameless)
    with pytest.raises(TypeError, match="devices"):
        Settings().options(Clash)
