"""The main window: menus, dock registry, status bar, layout persistence, themes, shutdown."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QLabel

from snowai_studio import theme, tools
from snowai_studio.app import create_window
from snowai_studio.main_window import MainWindow
from snowai_studio.panels.tool_page import ToolPage
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


class _TestPage(ToolPage):
    tool_id = "test-tool"
    title = "Test tool"

    def __init__(self, context) -> None:
        super().__init__()
        self.context = context
        self.opened = 0
        self.imported: list[str] = []
        self.models_seen = 0
        self.devices_seen = 0
        self.label = QLabel(f"theme={context.settings.theme}")
        self.set_preview(self.label)
        self.open_action = self.action("Open pictures…", self._open, icon_name="open", shortcut="Ctrl+Shift+P")
        self.add_action_button(self.open_action, primary=True)
        self.inspector.add_section("First", QLabel("one"), key="first")
        self.inspector.add_section("Second", QLabel("two"), key="second")

    def _open(self) -> None:
        self.opened += 1

    def models_changed(self) -> None:
        self.models_seen += 1

    def model_imported(self, model_id: str) -> None:
        self.imported.append(model_id)

    def devices_changed(self) -> None:
        self.devices_seen += 1


@pytest.fixture
def extra_tool():
    """Register a test tool through the registry, and remove it afterwards."""
    added: list[str] = []

    def add(spec: tools.ToolSpec) -> None:
        tools.register_tool(spec)
        added.append(spec.id)

    yield add
    tools._REGISTRY[:] = [s for s in tools._REGISTRY if s.id not in added]


def test_window_has_menus_status_bar_and_notifications(make_window, qtbot) -> None:
    w = make_window()
    assert [a.text().replace("&", "") for a in w.menuBar().actions()] == ["File", "View", "Tools", "Help"]
    assert w.notifications_button.text() == "No problems"
    qtbot.waitUntil(lambda: w.compute_info is not None, timeout=20000)
    assert w.compute_label.text().startswith("Compute: ")
    assert w.compute_info.device in ("cpu", "cuda")
    if w.compute_info.device == "cpu":
        assert "CPU" in w.compute_label.text()
    qtbot.waitUntil(lambda: "checking" not in w.devices_label.text(), timeout=20000)
    assert w.devices_label.text()


def test_the_window_opens_on_home_with_a_switcher_of_the_four_tools(make_window) -> None:
    w = make_window()
    assert w.current_page_id() == "home" and w.stack.currentWidget() is w.home
    names = [a.text() for a in w.switcher.actions()]
    assert names == ["Home", "Face swap", "Background", "Assistant", "Voice", "Go live"]
    shortcuts = [a.shortcut().toString() for a in w.switcher.actions()]
    assert shortcuts == ["Ctrl+0", "Ctrl+1", "Ctrl+2", "Ctrl+3", "Ctrl+4", "Ctrl+5"]
    assert all(not a.icon().isNull() for a in w.switcher.actions())
    # The Home page offers each tool with a first step, and its button opens the page.
    assert set(w.home.tool_buttons) == {"face_swap", "matting", "assistant", "voice_conversion", "live"}
    w.home.tool_buttons["matting"].click()
    assert w.current_page_id() == "matting" and w.page_actions["matting"].isChecked()
    # No machine jargon on the first screen: runtime names are only in a tooltip.
    assert "ExecutionProvider" not in w.home.compute_value.text()


def test_ctrl_number_switches_tools(make_window, qtbot) -> None:
    w = make_window()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    for number, page_id in ((1, "face_swap"), (2, "matting"), (3, "assistant"), (4, "voice_conversion"), (0, "home")):
        qtbot.keyClick(w, Qt.Key(int(Qt.Key.Key_0) + number), Qt.KeyboardModifier.ControlModifier)
        assert w.current_page_id() == page_id


def test_registered_tool_appears_as_a_page_with_a_switcher_button(make_window, extra_tool, qtbot) -> None:
    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    assert "test-tool" in w.pages
    page = w.pages["test-tool"]
    assert page.label.text() == "theme=system"
    assert w.page_actions["test-tool"].text() == "Test"
    view = next(a.menu() for a in w.menuBar().actions() if a.text() == "&View")
    assert "Test" in [a.text() for a in view.actions()]
    w.show_page("test-tool")
    assert w.stack.currentWidget() is page
    # The page: a big centre, an action bar of real buttons, the inspector on the right.
    assert page.dockWidgetArea(page.inspector_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    button = page.action_bar.widgetForAction(page.action_bar.actions()[0])
    assert button.property("actionButton") and button.property("primary")
    assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon and not button.icon().isNull()
    qtbot.waitUntil(lambda: page.label.width() > page.inspector.width(), timeout=3000)


def test_a_broken_tool_is_reported_and_the_window_still_opens(make_window, extra_tool, qtbot) -> None:
    def broken(ctx):
        raise RuntimeError("model folder is missing")

    extra_tool(tools.ToolSpec("broken-tool", "Broken tool", broken))
    w = make_window()
    assert "broken-tool" not in w.pages and "broken-tool" not in w.page_actions
    qtbot.waitUntil(
        lambda: any(
            "Broken tool" in n.message and "model folder is missing" in n.message for n in w.notifications.items
        ),
        timeout=3000,
    )
    assert w.isVisible()


def test_layout_page_and_sections_are_saved_and_restored(make_window, extra_tool, qtbot) -> None:
    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    # The offscreen screen is 800x600 (restoreGeometry keeps windows on screen); the pages set the least width.
    size = (max(720, w.minimumSizeHint().width()), 560)
    assert size[0] < 800
    w.resize(*size)
    page = w.pages["test-tool"]
    w.show_page("test-tool")
    page.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, page.inspector_dock)
    page.inspector.sections["second"].set_expanded(False)
    qtbot.wait(10)
    w.close()
    w2 = make_window()
    page2 = w2.pages["test-tool"]
    assert w2.current_page_id() == "test-tool"
    assert page2.dockWidgetArea(page2.inspector_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert page2.inspector.sections["first"].expanded and not page2.inspector.sections["second"].expanded
    assert (w2.width(), w2.height()) == size
    page2.inspector_dock.hide()
    w2.reset_layout()
    assert page2.inspector_dock.isVisible()
    assert page2.dockWidgetArea(page2.inspector_dock) == Qt.DockWidgetArea.RightDockWidgetArea


def test_a_saved_layout_keeps_the_inspector_width_at_the_next_start(make_window, extra_tool, qtbot) -> None:
    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    w.show_page("test-tool")
    page = w.pages["test-tool"]
    qtbot.waitUntil(lambda: page.inspector_dock.width() >= 330, timeout=3000)
    w.close()
    w2 = make_window()
    page2 = w2.pages["test-tool"]
    assert w2.current_page_id() == "test-tool"
    qtbot.waitUntil(lambda: page2.inspector_dock.width() >= 330, timeout=3000)  # not squeezed to its minimum


def test_a_page_opens_in_its_own_window_and_comes_back(make_window, extra_tool, qtbot, monkeypatch) -> None:
    from snowai_studio import tool_dock

    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    page = w.pages["test-tool"]
    w.show_page("test-tool")
    assert w.detach_page("test-tool")
    assert page.isWindow() and page.isVisible() and w.current_page_id() == "home"
    assert w.stack.indexOf(page) == -1
    opened: list[str] = []
    monkeypatch.setattr(w, "open_devices", lambda: opened.append("devices"))
    monkeypatch.setattr(w, "open_model_manager", lambda: opened.append("models"))
    tool_dock.open_devices(page.label)  # a page in its own window still reaches the studio's dialogs
    tool_dock.open_model_manager(page.label, None)
    assert opened == ["devices", "models"]
    page.close()  # closing its window puts it back, the tool still running
    assert not page.isWindow() and w.stack.indexOf(page) >= 0 and w.current_page_id() == "test-tool"


def test_ctrl_o_opens_in_the_page_on_screen_and_f1_lists_every_shortcut(make_window, extra_tool, qtbot,
                                                                       monkeypatch) -> None:
    from snowai_studio.dialogs import shortcuts_dialog

    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    page = w.pages["test-tool"]
    w.show_page("home")
    assert not w.open_action.isEnabled()  # nothing to open on Home
    w.show_page("test-tool")
    assert w.open_action.isEnabled() and w.open_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Open)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    qtbot.keyClick(w, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert page.opened == 1
    shown: list[list[tuple[str, str]]] = []
    monkeypatch.setattr(shortcuts_dialog.ShortcutsDialog, "exec", lambda self: shown.append(self.rows()) or 0)
    qtbot.keyClick(w, Qt.Key.Key_F1)
    assert shown, "F1 opened no shortcuts list"
    rows = dict(shown[0])
    assert rows["Ctrl+1"] == "Face swap" and rows["Ctrl+0"].startswith("The start page")
    assert rows["Ctrl+O"] == "Open" and "F1" in rows and rows["Ctrl+Shift+P"] == "Open pictures"
    assert any("Ctrl+," in keys for keys in rows)


def test_ctrl_comma_opens_the_settings(make_window, qtbot, monkeypatch) -> None:
    from snowai_studio.dialogs import settings_dialog

    w = make_window()
    opened: list[bool] = []
    monkeypatch.setattr(settings_dialog.SettingsDialog, "exec", lambda self: opened.append(True) or 0)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    qtbot.keyClick(w, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    assert opened == [True]


def test_the_window_tells_pages_about_devices_models_and_an_imported_model(make_window, extra_tool) -> None:
    extra_tool(tools.ToolSpec("test-tool", "Test tool", _TestPage, "image", "Test"))
    w = make_window()
    page = w.pages["test-tool"]
    w._on_model_imported("test-tool", "user-my-model")
    assert page.imported == ["user-my-model"] and page.models_seen == 1


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
    qtbot.waitUntil(lambda: w.notifications_button.text() == "1 error", timeout=3000)
    assert "The camera stopped." in w.notification_panel.messages()
    assert w.notifications_button.property("level") == "error"
    w.notifications.warning("The model is slow.", "face_swap")
    w.notifications.warning("The model is slow.", "Face swap worker")
    qtbot.waitUntil(lambda: w.notifications_button.text() == "1 error, 1 warning", timeout=3000)
    # One problem reported twice is one line, counted; one source name per tool.
    assert w.notification_panel.messages() == ["The camera stopped.", "The model is slow. (×2)"]
    assert [n.source for n in w.notifications.items] == ["Devices", "Face swap"]
    assert w.statusBar().currentMessage() == ""  # the status bar does not repeat it


def test_notifications_open_as_a_popover_over_the_status_bar(make_window, qtbot) -> None:
    w = make_window()
    w.notifications.error("The camera stopped.", "camera")
    qtbot.waitUntil(lambda: bool(w.notification_panel.messages()), timeout=3000)
    w.notifications_button.click()
    qtbot.waitUntil(w.notification_popover.isVisible, timeout=3000)
    assert w.notification_popover.windowFlags() & Qt.WindowType.Popup
    popover = w.notification_popover.geometry()
    button = w.notifications_button.mapToGlobal(w.notifications_button.rect().topLeft())
    assert popover.bottom() <= button.y()
    w.notification_popover.hide()


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


def test_the_window_goes_before_the_workers_are_waited_for(make_window, qtbot, monkeypatch) -> None:
    """Closing saves the state, hides the window, then waits for the workers (a start-up probe can
    hold that wait for seconds): the window must not stay on screen meanwhile."""
    import snowai_studio.main_window as main_window

    w = make_window()
    w.show()
    qtbot.waitExposed(w)
    seen = []
    real = main_window.base.shutdown_all

    def watch(grace_ms: int = 0):
        seen.append(w.isVisible())
        return real(grace_ms=grace_ms)

    monkeypatch.setattr(main_window.base, "shutdown_all", watch)
    w.close()
    assert seen == [False]


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
    assert "PortAudio is not installed" in w.home.devices_value.text()
    assert w.isVisible()


def test_the_status_bar_names_a_video_file_that_stands_in_for_the_camera(make_window, qtbot, tmp_path) -> None:
    settings = Settings.load()
    settings.devices.camera = str(tmp_path / "talk.mp4")
    w = make_window(settings)
    qtbot.waitUntil(lambda: "checking" not in w.devices_label.text(), timeout=20000)
    assert w.devices_label.text().startswith("Video file talk.mp4")
    assert "No camera" not in w.devices_label.text()


def test_the_wheel_scrolls_the_page_not_an_unfocused_control(qtbot) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QComboBox, QScrollArea, QSlider, QVBoxLayout, QWidget

    from snowai_studio import wheel_guard

    wheel_guard.install(QApplication.instance())
    area = QScrollArea()
    body = QWidget()
    layout = QVBoxLayout(body)
    combo = QComboBox()
    combo.addItems(["insightface", "classic", "auto"])
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(50)
    layout.addWidget(combo)
    layout.addWidget(slider)
    spacer = QLabel("tall")
    spacer.setMinimumHeight(2000)
    layout.addWidget(spacer)
    area.setWidget(body)
    area.resize(300, 300)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)

    def turn(widget: QWidget) -> None:
        event = QWheelEvent(QPointF(5, 5), QPointF(widget.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(widget, event)

    area.setFocus()
    turn(combo)
    turn(slider)
    assert combo.currentIndex() == 0 and slider.value() == 50
    assert area.verticalScrollBar().value() > 0  # the page scrolled instead
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus, timeout=2000)
    turn(combo)
    assert combo.currentIndex() == 1  # a focused control still takes the wheel


def test_dark_theme_check_boxes_are_visible_when_unchecked(qtbot) -> None:
    from PySide6.QtWidgets import QCheckBox

    app = QApplication.instance()
    theme.apply_theme(app, "dark")
    try:
        box = QCheckBox("Mouth mask")
        qtbot.addWidget(box)
        box.show()
        qtbot.waitExposed(box)
        image = box.grab().toImage()
        background = app.palette().color(QPalette.ColorRole.Window).lightness()
        # The indicator's outline must stand out from the background (Fusion's is almost black here).
        column = [image.pixelColor(x, image.height() // 2).lightness() for x in range(0, 20)]
        assert max(column) - background > 60
    finally:
        theme.apply_theme(app, "light")


def test_home_and_the_model_manager_give_the_same_size(make_window, qtbot) -> None:
    from snowai_studio.dialogs.models_dialog import ModelManagerDialog
    from workers.models.store import CONVERTED_DIR

    w = make_window()
    store = w.context.model_store
    converted = store.root / CONVERTED_DIR / "some-model"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(bytes(300_000))
    w.home.refresh_models()
    dialog = ModelManagerDialog(store, w)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.usage is not None, timeout=10000)
    sentence = store.disk_usage().summary()
    assert sentence in w.home.models_value.text()
    assert dialog.usage_label.text().endswith(sentence)


def test_a_page_restores_its_saved_layout_once_it_has_its_real_size(qtbot) -> None:
    from snowai_studio.context import StudioContext
    from snowai_studio.notifications import NotificationManager

    context = StudioContext(Settings.load(), NotificationManager())
    first = _TestPage(context)
    qtbot.addWidget(first)
    first.resize(1280, 700)
    first.show()
    qtbot.waitUntil(lambda: first.inspector_dock.width() >= 330, timeout=3000)
    state = first.saveState()

    def later_start(restore) -> int:
        page = _TestPage(context)
        qtbot.addWidget(page)
        page.resize(200, 150)  # not laid out yet: the size a page has before its window shows it
        restore(page, state)
        page.resize(1280, 700)
        page.show()
        qtbot.waitExposed(page)
        qtbot.wait(50)
        return page.inspector_dock.width()

    assert later_start(lambda page, s: page.restore_when_shown(s)) >= 330


def test_the_camera_lines_say_what_the_device_scan_found(make_window, qtbot) -> None:
    from types import SimpleNamespace

    from snowai_studio.panels.live_source import describe_camera

    w = make_window()
    qtbot.waitUntil(lambda: w.context.device_report is not None, timeout=20000)
    report = w.context.device_report
    expected = describe_camera(w.settings.devices.camera, report)
    assert w.pages["face_swap"].live.panel.source_label.text() == expected
    assert w.pages["matting"].live_panel.source_label.text() == expected
    # What each scan result reads like.
    none = SimpleNamespace(cameras=[])
    one = SimpleNamespace(cameras=[SimpleNamespace(spec="0", name="USB webcam")])
    assert describe_camera("0", none) == "No camera found: connect one, or choose a video file in Devices"
    assert describe_camera("0", one) == "Camera 0 (USB webcam)"
    assert describe_camera("2", one) == "Camera 2 was not found: choose another in Devices"
    assert describe_camera("0") == "Camera 0"  # before the scan
    assert describe_camera("/clips/take.mp4", none) == "Video file take.mp4"
