"""Shared fixtures. Tests never touch the real user folders and never reach the network."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_server import FileServer
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop
from pytestqt.qtbot import QtBot

# Offscreen unless a test opts into a real X server (see tests/test_window_xvfb.py).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _wait(self: QtBot, ms: int) -> None:
    """``qtbot.wait`` (and so ``waitUntil``, which calls it every 10 ms) without a timer connected and
    disconnected on each call, as Qt's own QTest::qWait does it. A disconnect() on this thread holds a
    Qt connection lock while PySide waits for the GIL; a worker thread that holds the GIL and wants the
    same lock (a queued signal, a connect) then hangs both threads for good, and waitUntil never returns."""
    deadline = time.monotonic() + max(0, ms) / 1000
    while True:
        remaining = deadline - time.monotonic()
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, max(0, int(remaining * 1000)))
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(0.005, remaining))


QtBot.wait = _wait  # type: ignore[method-assign]


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
