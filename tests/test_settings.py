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
