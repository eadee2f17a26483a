"""Settings → Local API and the window's local API: the server runs as a child process while the
window is open, the status bar says where it serves and what it holds, and a server that cannot
start says why in one sentence."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from PySide6.QtWidgets import QApplication, QMainWindow

from snowai_studio.dialogs.settings_dialog import SettingsDialog
from snowai_studio.local_api import LocalApiServer
from snowai_studio.notifications import NotificationManager
from workers.api.options import ApiOptions
from workers.settings import Settings


def test_settings_section_saves_the_api_and_the_face_swap_terms(qtbot) -> None:
    settings = Settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    section = dialog.local_api
    assert not section.enabled.isChecked() and section.port.value() == 8765
    assert 'api_key="none"' in section.example.toPlainText() and "Authorization" not in section.example.toPlainText()
    section.enabled.setChecked(True)
    section.port.setValue(9123)
    section.new_key_button.click()
    key = section.key.text()
    assert key.startswith("sk-snowai-") and len(key) > 40
    example = section.example.toPlainText()
    assert "http://127.0.0.1:9123/v1" in example and f"Bearer {key}" in example and f'api_key="{key}"' in example
    section.copy_button.click()
    assert QApplication.clipboard().text() == example
    section.consent.setChecked(True)
    dialog.accept()
    options = settings.options(ApiOptions)
    assert (options.enabled, options.port, options.api_key, options.host) == (True, 9123, key, "127.0.0.1")
    assert settings.face_swap.consent_accepted
    saved = Settings.load(settings.save())
    assert saved.options(ApiOptions).port == 9123


def test_other_computers_need_a_key(qtbot) -> None:
    settings = Settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.local_api.enabled.setChecked(True)
    dialog.local_api.network.setChecked(True)
    dialog.accept()
    assert "needs an API key" in dialog.message.text()
    assert not settings.options(ApiOptions).enabled  # nothing was taken over
    dialog.local_api.key.setText("sk-mine")
    dialog.accept()
    assert settings.options(ApiOptions).host == "0.0.0.0" and settings.options(ApiOptions).api_key == "sk-mine"


@pytest.fixture
def host_window(qtbot):
    window = QMainWindow()
    window.notifications = NotificationManager()
    qtbot.addWidget(window)
    return window


def _settings(tmp_path: Path, **api: object) -> Settings:
    settings = Settings(model_store=str(tmp_path / "models"))
    settings.set_options(ApiOptions(enabled=True, **api))
    return settings


def test_the_window_serves_while_open_and_says_what_the_server_holds(qtbot, host_window, tmp_path) -> None:
    from snowai_studio import local_api

    host_window.settings = _settings(tmp_path, port=0)
    server = local_api.attach(host_window, host_window.statusBar())
    indicator = host_window.local_api_indicator
    qtbot.waitUntil(lambda: server.state == "serving", timeout=120_000)
    assert indicator.isVisibleTo(host_window) and indicator.text().startswith("API: serving on 127.0.0.1:")
    assert "No model is loaded yet" in indicator.toolTip() and "Only this computer" in indicator.toolTip()
    spoken = requests.post(f"{server.url}/audio/speech", json={"input": "Hello.", "voice": "default"}, timeout=120)
    assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF"
    indicator.refresh()
    qtbot.waitUntil(lambda: "piper-en-us-joe-medium-shipped" in indicator.toolTip(), timeout=30_000)
    assert "It holds no GPU." in indicator.toolTip()
    host_window.settings.options(ApiOptions).enabled = False
    server.apply()  # as after Settings → OK
    qtbot.waitUntil(lambda: server.state == "off", timeout=60_000)
    assert not indicator.isVisibleTo(host_window)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/models", timeout=5)


def test_a_server_that_cannot_start_says_why(qtbot, host_window, tmp_path) -> None:
    from snowai_studio import local_api

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        host_window.settings = _settings(tmp_path, port=port)
        with qtbot.waitSignal(host_window.notifications.notified, timeout=120_000) as blocker:
            server = local_api.attach(host_window, host_window.statusBar())
        assert f"Port {port} on 127.0.0.1 is already in use" in blocker.args[0].message
    assert server.state == "failed" and not host_window.local_api_indicator.isVisibleTo(host_window)
    failures: list[str] = []
    lonely = LocalApiServer(_settings(tmp_path, host="0.0.0.0"))
    lonely.failed.connect(failures.append)
    assert not lonely.start()
    assert failures and "needs an API key" in failures[0]
