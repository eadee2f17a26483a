"""The studio's main window: menus, tool docks, notifications panel, status bar."""

from __future__ import annotations

import logging
import platform
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QToolButton,
    QWidget,
)

from snowai_studio import __version__, theme
from snowai_studio.docks import DockSpec, StudioContext, registered_docks
from snowai_studio.notifications import Notification, NotificationPanel
from snowai_studio.overview import OverviewPage
from workers import base, compute, paths
from workers.errors import describe_exception
from workers.logs import log_file

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.settings = context.settings
        self.notifications = context.notifications
        self.setObjectName("SnowAIStudioMainWindow")
        self.setWindowTitle("SnowAI Studio")
        icon = paths.resources_dir() / "icons" / "snowai.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1280, 800)
        self.setDockNestingEnabled(True)
        self.docks: dict[str, QDockWidget] = {}
        self.compute_info: compute.ComputeInfo | None = None
        self.device_report: Any = None
        self._closing = False

        self.overview = OverviewPage(context, self)
        self.setCentralWidget(self.overview)
        self.overview.devices_requested.connect(self.open_devices)
        self.overview.models_requested.connect(self.open_model_manager)

        self._build_notifications_dock()
        self._build_tool_docks()
        self._build_menus()
        self._build_status_bar()
        self._default_state = self.saveState()
        self._restore_window_state()
        self._start_probes()

    # ---- construction ------------------------------------------------------------------------
    def _build_notifications_dock(self) -> None:
        self.notification_panel = NotificationPanel(self.notifications)
        dock = QDockWidget("Notifications", self)
        dock.setObjectName("dock.notifications")
        dock.setWidget(self.notification_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.resizeDocks([dock], [170], Qt.Orientation.Vertical)
        self.docks["notifications"] = dock
        self.notifications.notified.connect(self._on_notification)

    def _build_tool_docks(self) -> None:
        first_in_area: dict[Qt.DockWidgetArea, QDockWidget] = {}
        last_in_area: dict[Qt.DockWidgetArea, QDockWidget] = {}
        for spec in registered_docks():
            dock = self._make_dock(spec)
            if dock is None:
                continue
            self.addDockWidget(spec.area, dock)
            previous = last_in_area.get(spec.area)
            if spec.tabbed and previous is not None:
                self.tabifyDockWidget(previous, dock)
            first_in_area.setdefault(spec.area, dock)
            last_in_area[spec.area] = dock
            dock.setVisible(spec.visible)
        # A fresh layout opens on the first tool of each tab group, not the last one added.
        for dock in first_in_area.values():
            dock.raise_()

    def _make_dock(self, spec: DockSpec) -> QDockWidget | None:
        try:
            widget = spec.factory(self.context)
        except Exception as exc:  # one broken tool must not take the studio down
            log.error("%s", describe_exception(exc, f"The {spec.title} tool could not be opened"), exc_info=exc)
            return None
        dock = QDockWidget(spec.title, self)
        dock.setObjectName(f"dock.{spec.id}")
        dock.setWidget(widget)
        self.docks[spec.id] = dock
        return dock

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.settings_action = file_menu.addAction("&Settings…", self.open_settings)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        view_menu = bar.addMenu("&View")
        for dock_id, dock in self.docks.items():
            action = dock.toggleViewAction()
            action.setObjectName(f"view.{dock_id}")
            view_menu.addAction(action)
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
        self.devices_action = tools_menu.addAction("&Devices…", self.open_devices)
        self.models_action = tools_menu.addAction("&Model manager…", self.open_model_manager)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Open the &log file", self.open_log_file)
        help_menu.addAction("Open the data &folder", lambda: self._open_path(paths.data_dir()))
        help_menu.addSeparator()
        help_menu.addAction("&About SnowAI Studio", self.show_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.compute_label = QLabel("Compute: detecting…")
        self.compute_label.setObjectName("computeLabel")
        self.devices_label = QLabel("Devices: checking…")
        self.devices_label.setObjectName("devicesLabel")
        self.notifications_button = QToolButton()
        self.notifications_button.setAutoRaise(True)
        self.notifications_button.setToolTip("Show the notifications panel")
        self.notifications_button.clicked.connect(self.show_notifications)
        bar.addPermanentWidget(self.devices_label)
        bar.addPermanentWidget(self.compute_label)
        bar.addPermanentWidget(self.notifications_button)
        self._update_notification_button()

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
            self.overview.set_compute(result)
        elif job_id == self._devices_job:
            from workers.media.devices import devices_summary

            self.device_report = result
            summary = devices_summary(result)
            self.devices_label.setText(summary)
            self.overview.set_devices_summary(summary)

    # ---- notifications -----------------------------------------------------------------------
    @Slot(object)
    def _on_notification(self, n: Notification) -> None:
        self._update_notification_button()
        if n.level in ("error", "warning"):
            self.statusBar().showMessage(n.message, 8000)

    def _update_notification_button(self) -> None:
        c = self.notifications.counts()
        style = self.style()
        if c["error"]:
            self.notifications_button.setIcon(style.standardIcon(style.StandardPixmap.SP_MessageBoxCritical))
            self.notifications_button.setText(f" {c['error']} errors")
        elif c["warning"]:
            self.notifications_button.setIcon(style.standardIcon(style.StandardPixmap.SP_MessageBoxWarning))
            self.notifications_button.setText(f" {c['warning']} warnings")
        else:
            self.notifications_button.setIcon(style.standardIcon(style.StandardPixmap.SP_MessageBoxInformation))
            self.notifications_button.setText(" No problems")
        self.notifications_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)

    @Slot()
    def show_notifications(self) -> None:
        dock = self.docks["notifications"]
        dock.show()
        dock.raise_()

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
            self._devices_job = self.probe_worker.submit(lambda ctx: _scan_devices())

    @Slot()
    def open_model_manager(self) -> None:
        from snowai_studio.dialogs.models_dialog import ModelManagerDialog

        dialog = ModelManagerDialog(self.context.model_store, self)
        dialog.exec()
        self.overview.refresh_models()

    @Slot()
    def open_settings(self) -> None:
        from snowai_studio.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self._save_settings()
            self.set_theme(self.settings.theme)
            self.context.model_store = _reopen_store(self.context.model_store, self.settings)
            self.overview.refresh_models()

    @Slot()
    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.show()

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
        state = qs.value("state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        if isinstance(state, QByteArray | bytes):
            self.restoreState(QByteArray(state))

    def save_window_state(self) -> None:
        qs = self.window_settings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
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
            self.save_window_state()
            self._save_settings()
            for dock in self.docks.values():
                widget = dock.widget()
                shutdown = getattr(widget, "shutdown", None)
                if callable(shutdown):
                    shutdown()
            stuck = base.shutdown_all()
            if stuck:
                log.warning("These workers did not stop in time: %s", ", ".join(stuck))
        event.accept()


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
