"""Shared fixtures. Tests never touch the real user folders and never reach the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_server import FileServer

# Offscreen unless a test opts into a real X server (see tests/test_window_xvfb.py).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every studio folder (config, data, models, logs) at a fresh temporary folder."""
    home = tmp_path_factory.mktemp("snowai-home")
    monkeypatch.setenv("SNOWAI_HOME", str(home))
    for var in ("SNOWAI_CONFIG_DIR", "SNOWAI_DATA_DIR", "SNOWAI_MODELS_DIR", "SNOWAI_LOG_DIR", "SNOWAI_SETTINGS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Each test's fresh model store would otherwise have the 8-bit copy of every matting model it
    # loads made in the background; the tests of the copies ask for them (MattingOptions(int8=True)).
    monkeypatch.setenv("SNOWAI_INT8_COPIES", "0")
    return home


@pytest.fixture
def server() -> Iterator[FileServer]:
    """A local HTTP file server on 127.0.0.1 (tests/model_server.py), stopped after the test."""
    srv = FileServer().start()
    yield srv
    srv.stop()
