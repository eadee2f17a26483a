"""Start the studio's window: logging, QApplication, theme, notifications, main window."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from workers.logs import setup_logging
from workers.settings import Settings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)


def display_problem() -> str | None:
    """A sentence when no screen can be opened (instead of Qt aborting the process)."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return (
                "No display was found (DISPLAY and WAYLAND_DISPLAY are unset). Start SnowAI Studio from a "
                "desktop session, or use the command-line tools: snowai-studio --help."
            )
    return None


def create_window(settings: Settings | None = None, extras: dict | None = None):
    """Build the context and the main window (the QApplication must exist)."""
    from snowai_studio.context import StudioContext
    from snowai_studio.main_window import MainWindow
    from snowai_studio.notifications import NotificationManager
    from workers.models.store import ModelStore

    settings = settings or Settings.load()
    notifications = NotificationManager()
    notifications.install_hooks()
    for warning in settings.load_warnings:
        notifications.warning(warning, "settings")
    try:
        store = ModelStore(settings.models_dir())
    except Exception as exc:
        from workers.errors import describe_exception

        notifications.error(describe_exception(exc, "The model store could not be opened"), "models")
        store = None
    context = StudioContext(settings=settings, notifications=notifications, model_store=store, extras=extras or {})
    return MainWindow(context)


def _close_on_signals(app: QApplication) -> None:
    """Ctrl+C in the terminal or a logout's SIGTERM closes the window the normal way
    (workers stopped, devices released, layout saved) instead of killing the process."""
    import signal

    from PySide6.QtCore import QTimer

    def close_now() -> None:
        app.closeAllWindows()
        app.quit()

    def close(signum: int, _frame: object) -> None:
        # The signal can come before the event loop runs (while the window is being built or shown),
        # when quit() does nothing and the process would stay on with no window: close from the loop.
        log.info("signal %d: closing the studio", signum)
        QTimer.singleShot(0, close_now)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    # Python runs signal handlers only between bytecodes: wake the interpreter a few times a second.
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def run_gui(argv: list[str] | None = None) -> int:
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    log_path = setup_logging()
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from snowai_studio import theme
    from snowai_studio.main_window import CLOSE_GRACE_MS
    from workers import base, paths

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("SnowAI Studio")
    app.setOrganizationName("SnowAI")
    app.setDesktopFileName("snowai-studio")
    icon = paths.resources_dir() / "icons" / "snowai.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    _close_on_signals(app)
    settings = Settings.load()
    theme.apply_theme(app, settings.theme)
    window = create_window(settings)
    window.show()
    log.info("SnowAI Studio started (log: %s)", log_path)
    code = app.exec()
    stuck = base.shutdown_all(grace_ms=CLOSE_GRACE_MS)
    window.notifications.uninstall_hooks()
    if stuck:
        # A worker still inside a model load or a driver call cannot be joined; letting the interpreter
        # tear its thread down would abort the process. Settings and window state are saved by now.
        log.warning("Leaving while these workers are still busy: %s", ", ".join(stuck))
        logging.shutdown()
        os._exit(int(code))
    return int(code)
