"""The studio's main window: a slim tool switcher on the left, the Home page and one page per tool in
the middle, and a status bar with the devices, the compute device and the notifications popover."""

from __future__ import annotations

import logging
import platform
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QUrl, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QToolButton,
    QWidget,
)

from snowai_studio import __version__, theme, wheel_guard
from snowai_studio.context import StudioContext
from snowai_studio.home import HomePage
from snowai_studio.icons import icon
from snowai_studio.notifications import Notification, NotificationPopover
from snowai_studio.panels.live_source import describe_camera, describe_microphone
from snowai_studio.panels.tool_page import ToolPage
from snowai_studio.starter_offers import StarterOffers
from snowai_studio.tools import ToolSpec, registered_tools
from snowai_studio.window_fit import fit_to_screen
from workers import base, compute, paths
from workers.errors import describe_exception
from workers.logs import log_file

log = logging.getLogger(__name__)

HOME = "home"


class MainWindow(QMainWindow):
    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.settings = context.settings
        self.notifications = context.notifications
        self.setObjectName("SnowAIStudioMainWindow")
        self.setWindowTitle("SnowAI Studio")
        icon_path = paths.resources_dir() / "icons" / "snowai.svg"
        if icon_path.is_file():
            self.setWindowIcon(QIcon(str(icon_path)))
        fit_to_screen(self)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            wheel_guard.install(app)
        #: The tool pages by id (a page that failed to open is left out and reported).
        self.pages: dict[str, QWidget] = {}
        self.page_actions: dict[str, QAction] = {}
        self.compute_info: compute.ComputeInfo | None = None
        self.device_report: Any = None
        self._closing = False

        self.stack = QStackedWidget()
        self.stack.setObjectName("pages")
        self.setCentralWidget(self.stack)
        specs = registered_tools()
        self.home = HomePage(context, specs, self)
        self.home.devices_requested.connect(self.open_devices)
        self.home.models_requested.connect(self.open_model_manager)
        self.home.tool_requested.connect(self.show_page)
        self.stack.addWidget(self.home)
        self._build_switcher()
        for spec in specs:
            self._add_page(spec)
        self.starters = StarterOffers(context, self.pages, self)
        self.home.get_started_requested.connect(self.open_get_started)
        self.starters.refresh()

        self._build_menus()
        self._build_status_bar()
        self._restore_window_state()
        self._start_probes()

    # ---- construction ------------------------------------------------------------------------
    def _build_switcher(self) -> None:
        bar = QToolBar("Tools")
        bar.setObjectName("toolSwitcher")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.setIconSize(QSize(26, 26))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        bar.toggleViewAction().setEnabled(False)
        self.addToolBar(Qt.ToolBarArea.LeftToolBarArea, bar)
        self.switcher = bar
        self.switcher_group = QActionGroup(self)
        self.switcher_group.setExclusive(True)
        self._add_switcher_action(HOME, "Home", "home", "Ctrl+0", "The start page: the tools, devices and models")

    def _add_switcher_action(self, page_id: str, text: str, icon_name: str, shortcut: str, tip: str) -> QAction:
        action = QAction(icon(icon_name), text, self)
        action.setObjectName(f"switch.{page_id}")
        action.setCheckable(True)
        action.setShortcut(QKeySequence(shortcut))
        keys = QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({keys})")
        action.triggered.connect(lambda _checked=False, pid=page_id: self.show_page(pid))
        self.switcher_group.addAction(action)
        self.switcher.addAction(action)
        button = self.switcher.widgetForAction(action)
        if isinstance(button, QToolButton):
            button.setObjectName(f"switcher.{page_id}")
        self.page_actions[page_id] = action
        return action

    def _add_page(self, spec: ToolSpec) -> None:
        try:
            page = spec.factory(self.context)
        except Exception as exc:  # one broken tool must not take the studio down
            log.error("%s", describe_exception(exc, f"The {spec.title} tool could not be opened"), exc_info=exc)
            return
        page.setObjectName(page.objectName() or f"page.{spec.id}")
        self.pages[spec.id] = page
        self.stack.addWidget(page)
        number = len(self.pages)
        self._add_switcher_action(
            spec.id,
            spec.short_title or spec.title,
            spec.icon or "home",
            f"Ctrl+{number}" if number < 10 else "",
            spec.title,
        )
        if isinstance(page, ToolPage):
            page.studio = self
            page.remember_default_layout()
            page.attach_requested.connect(lambda pid=spec.id: self.attach_page(pid))

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_action = file_menu.addAction(icon("open"), "&Open…", self.open_in_page)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Open a file in the tool on screen")
        file_menu.addSeparator()
        self.settings_action = file_menu.addAction(icon("settings"), "&Settings…", self.open_settings)
        self.settings_action.setShortcuts(
            [QKeySequence("Ctrl+,"), *QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)]
        )
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcuts([QKeySequence("Ctrl+Q"), *QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)])

        view_menu = bar.addMenu("&View")
        for action in self.page_actions.values():
            view_menu.addAction(action)
        view_menu.addSeparator()
        self.inspector_actions: dict[str, QAction] = {}
        for page_id, page in self.pages.items():
            if isinstance(page, ToolPage):
                toggle = page.inspector_dock.toggleViewAction()
                toggle.setText(f"{page.title} settings panel")
                toggle.setObjectName(f"view.inspector.{page_id}")
                view_menu.addAction(toggle)
                self.inspector_actions[page_id] = toggle
        view_menu.addSeparator()
        detach_menu = view_menu.addMenu("Open in its own &window")
        for page_id, page in self.pages.items():
            if isinstance(page, ToolPage):
                detach = detach_menu.addAction(page.title, lambda pid=page_id: self.detach_page(pid))
                detach.setObjectName(f"view.detach.{page_id}")
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for mode, label in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            action = theme_menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(self.settings.theme == mode)
            action.triggered.connect(lambda _checked=False, m=mode: self.set_theme(m))
            group.addAction(action)
            self.theme_actions[mode] = action
        view_menu.addAction("&Reset layout", self.reset_layout)

        tools_menu = bar.addMenu("&Tools")
        self.devices_action = tools_menu.addAction(icon("camera"), "&Devices…", self.open_devices)
        self.models_action = tools_menu.addAction(icon("models"), "&Model manager…", self.open_model_manager)
        self.models_action.setShortcut(QKeySequence("Ctrl+M"))
        starter_menu = tools_menu.addMenu(icon("download"), "&Get started")
        store = self.context.model_store
        starters = store.manifest.starters if store is not None else {}
        for spec in registered_tools():
            if spec.id in self.pages and spec.id in starters:  # tools with a recommended set (not Go live)
                starter_menu.addAction(spec.title + "…", lambda tool=spec.id: self.open_get_started(tool))

        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = help_menu.addAction(icon("help"), "&Keyboard shortcuts", self.show_shortcuts)
        self.shortcuts_action.setShortcut(QKeySequence("F1"))
        help_menu.addAction("Open the &log file", self.open_log_file)
        help_menu.addAction("Open the data &folder", lambda: self._open_path(paths.data_dir()))
        help_menu.addSeparator()
        help_menu.addAction("&About SnowAI Studio", self.show_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.devices_label = QLabel("Devices: checking…")
        self.devices_label.setObjectName("devicesLabel")
        self.compute_label = QLabel("Compute: detecting…")
        self.compute_label.setObjectName("computeLabel")
        self.notifications_button = QToolButton()
        self.notifications_button.setObjectName("notificationsButton")
        self.notifications_button.setAutoRaise(True)
        self.notifications_button.setIcon(icon("bell"))
        self.notifications_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.notifications_button.setToolTip("Errors and warnings of every tool")
        self.notifications_button.clicked.connect(self.show_notifications)
        bar.addPermanentWidget(self.devices_label)
        bar.addPermanentWidget(self.compute_label)
        from snowai_studio import local_api

        self.local_api = local_api.attach(self, bar)
        bar.addPermanentWidget(self.notifications_button)
        self.notification_popover = NotificationPopover(self.notifications, self)
        self.notification_panel = self.notification_popover.panel
        self.notifications.notified.connect(self._on_notification)
        self.notifications.repeated.connect(lambda _i, _n: self._update_notification_button())
        self._update_notification_button()

    # ---- pages -------------------------------------------------------------------------------------
    @Slot(str)
    def show_page(self, page_id: str) -> None:
        """Bring the Home page or a tool page to the front."""
        widget = self.home if page_id == HOME else self.pages.get(page_id)
        if widget is None:
            return
        if isinstance(widget, ToolPage) and widget.detached:
            widget.raise_()
            widget.activateWindow()
            return
        self.stack.setCurrentWidget(widget)
        action = self.page_actions.get(page_id)
        if action is not None:
            action.setChecked(True)
        self.open_action.setEnabled(self._page_open_action() is not None)

    def detach_page(self, page_id: str) -> bool:
        """Move a tool page into a window of its own (beside the studio, on a second screen); its
        switcher button brings that window forward, and closing it puts the page back."""
        page = self.pages.get(page_id)
        if not isinstance(page, ToolPage) or page.detached:
            return False
        was_current = self.stack.currentWidget() is page
        self.stack.removeWidget(page)
        page.setParent(None)
        page.setWindowFlags(Qt.WindowType.Window)
        page.setWindowTitle(f"{page.title} · SnowAI Studio")
        page.resize(max(960, self.width() * 3 // 4), max(600, self.height() * 3 // 4))
        page.show()
        if was_current:
            self.show_page(HOME)
        return True

    def attach_page(self, page_id: str) -> bool:
        page = self.pages.get(page_id)
        if not isinstance(page, ToolPage) or not page.detached:
            return False
        page.hide()
        page.setWindowFlags(Qt.WindowType.Widget)
        order = list(self.pages)
        index = 1 + sum(1 for pid in order[: order.index(page_id)] if not getattr(self.pages[pid], "detached", False))
        self.stack.insertWidget(index, page)
        page.show()
        self.show_page(page_id)
        return True

    def current_page_id(self) -> str:
        widget = self.stack.currentWidget()
        return next((pid for pid, page in self.pages.items() if page is widget), HOME)

    def _page_open_action(self) -> QAction | None:
        page = self.stack.currentWidget()
        action = getattr(page, "open_action", None)
        return action if isinstance(action, QAction) else None

    @Slot()
    def open_in_page(self) -> None:
        """File → Open (Ctrl+O): what the page on screen opens (images, a face photo, a recording)."""
        action = self._page_open_action()
        if action is not None and action.isEnabled():
            action.trigger()

    def shortcut_groups(self) -> dict[str, list[tuple[str, str]]]:
        def keys(action: QAction) -> str:
            return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())

        def in_page(action: QAction) -> bool:
            owner = action.parent()
            while owner is not None and owner is not self:
                if isinstance(owner, ToolPage):
                    return True
                owner = owner.parent()
            return False

        window_rows: list[tuple[str, str]] = []
        for action in self.findChildren(QAction):
            if action.shortcuts() and not in_page(action):
                what = action.toolTip().split(" (")[0] if action.objectName().startswith("switch.") else ""
                window_rows.append((keys(action), what or action.text().replace("&", "").rstrip("…")))
        groups = {"Everywhere": sorted(set(window_rows))}
        for page_id, page in self.pages.items():
            if isinstance(page, ToolPage):
                groups[page.title or page_id] = page.page_shortcuts()
        return groups

    @Slot()
    def show_shortcuts(self) -> None:
        from snowai_studio.dialogs.shortcuts_dialog import ShortcutsDialog

        ShortcutsDialog(self.shortcut_groups(), self).exec()

    # ---- start-up probes (off the UI thread) ---------------------------------------------
    def _start_probes(self) -> None:
        self.probe_worker = base.Worker()
        self.probe_worker.name = "Start-up checks"
        self.probe_worker.job_finished.connect(self._on_probe_done)
        self.probe_worker.start()
        self._compute_job = self.probe_worker.submit(lambda ctx: compute.probe())
        self._devices_job = self.probe_worker.submit(lambda ctx: _scan_devices())

    @Slot(int, object)
    def _on_probe_done(self, job_id: int, result: Any) -> None:
        if job_id == self._compute_job:
            self.compute_info = result
            self.compute_label.setText(f"Compute: {result.label()}")
            self.compute_label.setToolTip(result.details())
            self.home.set_compute(result)
        elif job_id == self._devices_job:
            from workers.media.devices import devices_summary

            self.device_report = self.context.device_report = result
            self.home.set_devices_summary(devices_summary(result))
            self._show_devices()
            for page in self.pages.values():
                if isinstance(page, ToolPage):
                    page.devices_changed()  # the pages' camera lines name what the scan found

    def _show_devices(self) -> None:
        """The chosen camera and microphone (a file standing in for one is named as such), or what
        the scan found when nothing is chosen."""
        from workers.media.devices import devices_summary

        devices = self.settings.devices
        report = self.device_report
        if report is None:
            return
        parts = devices_summary(report).split(" · ")
        camera = devices.camera or "0"
        if not camera.strip().isdigit():
            parts = [describe_camera(camera)] + [p for p in parts if "camera" not in p.lower()]
        if devices.microphone and any(sep in devices.microphone for sep in "/\\"):
            parts = [p for p in parts if "microphone" not in p.lower()]
            parts.insert(1, describe_microphone(devices.microphone))
        self.devices_label.setText(" · ".join(parts))

    # ---- notifications -----------------------------------------------------------------------
    @Slot(object)
    def _on_notification(self, _n: Notification) -> None:
        self._update_notification_button()

    def _update_notification_button(self) -> None:
        c = self.notifications.counts()
        self.notifications_button.setText(self.notifications.summary())
        level = "error" if c["error"] else "warning" if c["warning"] else ""
        self.notifications_button.setProperty("level", level)
        self.notifications_button.style().unpolish(self.notifications_button)
        self.notifications_button.style().polish(self.notifications_button)

    @Slot()
    def show_notifications(self) -> None:
        self.notification_popover.show_at(self.notifications_button)

    # ---- actions ------------------------------------------------------------------------
    def set_theme(self, mode: str) -> None:
        self.settings.theme = mode
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, mode)
        self.theme_actions[mode].setChecked(True)
        self._save_settings()

    @Slot()
    def open_devices(self) -> None:
        from snowai_studio.dialogs.devices_dialog import DevicesDialog

        options = {"devices": self.device_report, **self.context.extras.get("devices_dialog", {})}
        dialog = DevicesDialog(self.settings, self, **options)
        if dialog.exec():
            self._save_settings()
            self._show_devices()
            self._devices_job = self.probe_worker.submit(lambda ctx: _scan_devices())
            for page in self.pages.values():
                if isinstance(page, ToolPage):
                    page.devices_changed()

    @Slot()
    def open_model_manager(self) -> None:
        from snowai_studio.dialogs.models_dialog import ModelManagerDialog

        dialog = ModelManagerDialog(self.context.model_store, self)
        imported = getattr(dialog, "model_imported", None)
        if imported is not None:
            imported.connect(self._on_model_imported)
        dialog.exec()
        self.home.refresh_models()
        for page in self.pages.values():
            if isinstance(page, ToolPage):
                page.models_changed()
        self.starters.refresh()

    @Slot(str)
    def open_get_started(self, tool: str) -> bool:
        """The recommended models of ``tool`` in one step; its page selects them when they are ready."""
        used = self.starters.open(tool)
        self.home.refresh_models()
        return used

    @Slot(str, str)
    def _on_model_imported(self, tool: str, model_id: str) -> None:
        """A model just imported is selected in its tool's page."""
        page = self.pages.get(tool)
        if isinstance(page, ToolPage):
            page.models_changed()
            page.model_imported(model_id)

    @Slot()
    def open_settings(self) -> None:
        from snowai_studio.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self._save_settings()
            self.set_theme(self.settings.theme)
            self.context.model_store = _reopen_store(self.context.model_store, self.settings)
            self.home.refresh_models()
            self.local_api.apply()

    @Slot()
    def reset_layout(self) -> None:
        for page in self.pages.values():
            if isinstance(page, ToolPage):
                page.reset_layout()

    def open_log_file(self) -> None:
        self._open_path(log_file())

    def _open_path(self, path: Any) -> None:
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self.notifications.warning(f"Could not open {path}; it may not exist yet.", "studio")

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About SnowAI Studio",
            f"<h3>SnowAI Studio {__version__}</h3>"
            "<p>An offline AI studio for creators: face swap, background removal, a voice assistant "
            "and voice conversion, every model on your own machine.</p>"
            f"<p>Python {platform.python_version()} · Qt {_qt_version()}<br>"
            f"Log: {log_file()}</p>",
        )

    # ---- state -------------------------------------------------------------------------------
    @staticmethod
    def window_settings() -> QSettings:
        return QSettings(str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat)

    def _restore_window_state(self) -> None:
        qs = self.window_settings()
        geometry = qs.value("geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        for page_id, page in self.pages.items():
            if not isinstance(page, ToolPage):
                continue
            state = qs.value(f"pages/{page_id}/state")
            if isinstance(state, QByteArray | bytes):
                page.restore_when_shown(QByteArray(state))
            sections = qs.value(f"pages/{page_id}/sections")
            if isinstance(sections, str):
                page.inspector.restore_section_states(_parse_sections(sections))
        current = qs.value("page")
        self.show_page(current if isinstance(current, str) and (current in self.pages or current == HOME) else HOME)

    def save_window_state(self) -> None:
        qs = self.window_settings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("page", self.current_page_id())
        for page_id, page in self.pages.items():
            if isinstance(page, ToolPage):
                qs.setValue(f"pages/{page_id}/state", page.saveState())
                states = page.inspector.section_states()
                qs.setValue(f"pages/{page_id}/sections", ",".join(f"{k}={int(v)}" for k, v in states.items()))
        qs.sync()

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.notifications.error(describe_exception(exc, "Settings could not be saved"), "studio")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop every worker (cancel, join, release devices), then save state."""
        if not self._closing:
            self._closing = True
            current = self.current_page_id()
            for page_id in list(self.pages):
                self.attach_page(page_id)
            self.show_page(current)
            self.save_window_state()
            self._save_settings()
            # The state is saved: the window goes now, while the workers stop (up to a few seconds
            # when one is inside a call that cannot be cancelled, such as the start-up probe).
            self.hide()
            for widget in self.pages.values():
                shutdown = getattr(widget, "shutdown", None)
                if callable(shutdown):
                    shutdown()
            self.local_api.stop()
            stuck = base.shutdown_all(grace_ms=CLOSE_GRACE_MS)
            if stuck:
                log.warning("These workers did not stop in time: %s", ", ".join(stuck))
        event.accept()


#: How long closing waits for a worker busy in a call that cannot be cancelled (a start-up probe importing
#: torch from a cold disk) once it missed its 3 s to stop. The window is gone by then; a worker still
#: busy after this is left running and the process ends without tearing its thread down
#: (snowai_studio/app.py), so nothing aborts and settings are already saved.
CLOSE_GRACE_MS = 5000


def _parse_sections(text: str) -> dict[str, bool]:
    out = {}
    for part in text.split(","):
        key, _, value = part.rpartition("=")
        if key and value in ("0", "1"):
            out[key] = value == "1"
    return out


def _scan_devices() -> Any:
    from workers.media.devices import scan_devices

    return scan_devices()


def _reopen_store(store: Any, settings: Any) -> Any:
    from workers.models.store import ModelStore

    root = settings.models_dir()
    if store is not None and getattr(store, "root", None) == root:
        return store
    return ModelStore(root)


def _qt_version() -> str:
    from PySide6 import QtCore

    return QtCore.qVersion()
