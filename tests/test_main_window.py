"""The main window: menus, dock registry, status bar, layout persistence, themes, shutdown."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from snowai_studio import docks, theme
from snowai_studio.app import create_window
from snowai_studio.main_window import MainWindow
from workers import base
from workers.settings import Settings


@pytest.fixture
def make_window(qtbot):
    made: list[MainWindow] = []

    def make(settings: Settings | None = None) -> MainWindow:
        window = create_window(settings or Settings.load())
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        return window

    yield make
    for w in made:
        w.close()
        w.notifications.uninstall_hooks()
    base.shutdown_all()


@pytest.fixture
def extra_dock():
    """Register a test dock through the registry, and remove it afterwards."""
    added: list[str] = []

    def add(spec: docks.DockSpec) -> None:
        docks.register_dock(spec)
        added.append(spec.id)

    yield add
    docks._REGISTRY[:] = [s for s in docks._REGISTRY if s.id not in added]


def test_window_has_menus_status_bar_and_notifications(make_window, qtbot) -> None:
    w = make_window()
    assert [a.text().replace("&", "") for a in w.menuBar().actions()] == ["File", "View", "Tools", "Help"]
    assert "notifications" in w.docks
    qtbot.waitUntil(lambda: w.compute_info is not None, timeout=20000)
    assert w.compute_label.text().startswith("Compute: ")
    assert w.compute_info.device in ("cpu", "cuda")
    if w.compute_info.device == "cpu":
        assert "CPU" in w.compute_label.text()
    qtbot.waitUntil(lambda: "checking" not in w.devices_label.text(), timeout=20000)
    assert w.devices_label.text()


def test_registered_dock_appears_in_window_and_view_menu(make_window, extra_dock) -> None:
    extra_dock(docks.DockSpec("test-tool", "Test tool", lambda ctx: QLabel(f"theme={ctx.settings.theme}")))
    w = make_window()
    assert "test-tool" in w.docks
    assert w.docks["test-tool"].widget().text() == "theme=system"
    view = next(a.menu() for a in w.menuBar().actions() if a.text() == "&View")
    assert "Test tool" in [a.text() for a in view.actions()]


def test_a_broken_dock_is_reported_and_the_window_still_opens(make_window, extra_dock, qtbot) -> None:
    def broken(ctx):
        raise RuntimeError("model folder is missing")

    extra_dock(docks.DockSpec("broken-tool", "Broken tool", broken))
    w = make_window()
    assert "broken-tool" not in w.docks
    qtbot.waitUntil(
        lambda: any(
            "Broken tool" in n.message and "model folder is missing" in n.message for n in w.notifications.items
        ),
        timeout=3000,
    )
    assert w.isVisible()


def test_layout_and_geometry_are_saved_and_restored(make_window, qtbot) -> None:
    w = make_window()
    w.resize(720, 560)  # the offscreen screen is 800x600; restoreGeometry keeps windows on screen
    dock = w.docks["notifications"]
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    dock.hide()
    qtbot.wait(10)
    w.close()
    w2 = make_window()
    assert w2.dockWidgetArea(w2.docks["notifications"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert not w2.docks["notifications"].isVisible()
    assert (w2.width(), w2.height()) == (720, 560)
    w2.reset_layout()
    assert w2.docks["notifications"].isVisible()
    assert w2.dockWidgetArea(w2.docks["notifications"]) == Qt.DockWidgetArea.BottomDockWidgetArea


def test_theme_switch_applies_and_is_saved(make_window) -> None:
    w = make_window()
    app = QApplication.instance()
    w.set_theme("dark")
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert Settings.load().theme == "dark"
    w.set_theme("light")
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180
    w.set_theme("system")
    assert theme.effective_mode("system") in ("light", "dark")


def test_notification_button_counts_errors(make_window, qtbot) -> None:
    w = make_window()
    w.notifications.error("The camera stopped.", "camera")
    qtbot.waitUntil(lambda: "1 errors" in w.notifications_button.text(), timeout=3000)
    assert "The camera stopped." in w.notification_panel.messages()


class _Device:
    def __init__(self) -> None:
        self.open = False


class _Source(base.Worker):
    name = "Test camera"

    def __init__(self, device: _Device) -> None:
        super().__init__()
        self.device = device

    def load(self) -> None:
        self.device.open = True

    def unload(self) -> None:
        self.device.open = False

    def step(self) -> bool:
        time.sleep(0.01)
        return True


def test_closing_the_window_stops_workers_and_releases_devices(make_window, qtbot) -> None:
    w = make_window()
    device = _Device()
    src = _Source(device)
    src.start(loop=True)
    busy = base.Worker()
    busy.start()
    busy.submit(lambda ctx: ctx.sleep(60))
    qtbot.waitUntil(lambda: device.open and busy.state == "busy", timeout=3000)
    w.close()
    assert not device.open
    assert not src.thread_running and not busy.thread_running
    assert base.live_workers() == []


def test_settings_dialog_changes_theme_and_store(make_window, qtbot, tmp_path, monkeypatch) -> None:
    from snowai_studio.dialogs import settings_dialog

    w = make_window()
    store_dir = tmp_path / "my-models"

    def fake_exec(self) -> int:
        self.theme.setCurrentIndex(2)  # dark
        self.store.setText(str(store_dir))
        self.accept()
        return 1

    monkeypatch.setattr(settings_dialog.SettingsDialog, "exec", fake_exec)
    w.open_settings()
    saved = Settings.load()
    assert saved.theme == "dark" and saved.models_dir() == store_dir
    assert w.context.model_store.root == store_dir


def test_window_starts_without_portaudio_and_says_so(make_window, qtbot, monkeypatch) -> None:
    import builtins
    import sys

    real_import = builtins.__import__
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    w = make_window()
    qtbot.waitUntil(lambda: "PortAudio is not installed" in w.devices_label.text(), timeout=20000)
    assert "PortAudio is not installed" in w.overview.devices_value.text()
    assert w.isVisible()
