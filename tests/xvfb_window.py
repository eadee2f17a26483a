"""Open the real studio window on an X server, visit its dialogs and take screenshots.

Run by tests/test_window_xvfb.py in a subprocess (the platform plugin is chosen once per process):

    python tests/xvfb_window.py OUT_DIR

Writes OUT_DIR/main.png, devices.png, models.png and report.json; exits 0 when all went well.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "xcb"

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog

from snowai_studio import theme
from snowai_studio.app import create_window
from workers import base


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([sys.argv[0]])
    theme.apply_theme(app, os.environ.get("SNOWAI_THEME", "system"))
    window = create_window()
    window.show()
    report: dict = {"platform": app.platformName(), "steps": []}

    def grab(name: str) -> None:
        app.processEvents()
        pixmap = app.primaryScreen().grabWindow(0)
        path = out / f"{name}.png"
        pixmap.save(str(path))
        report["steps"].append(name)

    def wait(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.02)

    def run() -> None:
        try:
            wait(15, lambda: window.compute_info is not None and "checking" not in window.devices_label.text())
            wait(0.5)
            report["visible"] = window.isVisible() and not window.isMinimized()
            report["title"] = window.windowTitle()
            report["menus"] = [a.text().replace("&", "") for a in window.menuBar().actions()]
            report["status"] = [window.compute_label.text(), window.devices_label.text()]
            report["pages"] = sorted(window.pages)
            report["switcher"] = [a.text() for a in window.switcher.actions()]
            grab("main")
            for page_id in window.pages:
                window.show_page(page_id)
                wait(0.5)
                grab(f"page-{page_id}")
            window.show_page("home")

            from snowai_studio.dialogs.devices_dialog import DevicesDialog

            dialog: QDialog = DevicesDialog(window.settings, window)
            dialog.show()
            wait(2.0)
            grab("devices")
            dialog.reject()
            wait(0.3)

            from snowai_studio.dialogs.models_dialog import ModelManagerDialog

            models = ModelManagerDialog(window.context.model_store, window)
            models.resize(1100, 650)
            models.show()
            wait(1.0)
            grab("models")
            models.reject()
            wait(0.3)
            report["still_up"] = window.isVisible()
            report["notifications"] = [f"{n.level}: {n.message}" for n in window.notifications.items]
        except Exception as exc:  # reported, and the exit code says it failed
            import traceback

            report["exception"] = "".join(traceback.format_exception(exc))
        finally:
            window.close()
            app.quit()

    QTimer.singleShot(100, run)
    app.exec()
    report["live_workers_after_close"] = [w.name for w in base.live_workers()]
    (out / "report.json").write_text(json.dumps(report, indent=2))
    ok = (
        "exception" not in report
        and report.get("visible")
        and report.get("still_up")
        and not report["live_workers_after_close"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
