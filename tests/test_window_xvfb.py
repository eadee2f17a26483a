"""The real window on a real X server (xcb), not only the offscreen platform."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.xvfb
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def x_display():
    """The DISPLAY of xvfb-run, or a private Xvfb started here; skipped if neither exists."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        pytest.skip("no X server: run the tests under xvfb-run (scripts/test.sh does)")
    for number in range(91, 120):
        if not Path(f"/tmp/.X11-unix/X{number}").exists():
            break
    proc = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(5)


def _image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not a readable image"
    return img


def test_real_window_opens_with_menus_status_and_dialogs(x_display: str, tmp_path: Path, isolated_home) -> None:
    env = dict(os.environ, DISPLAY=x_display, QT_QPA_PLATFORM="xcb")
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    proc = subprocess.run(
        [sys.executable, str(HERE / "xvfb_window.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    report_path = tmp_path / "report.json"
    assert report_path.exists(), f"no report; stderr:\n{proc.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    assert proc.returncode == 0, json.dumps(report, indent=2) + proc.stderr[-3000:]
    assert report["platform"] == "xcb"
    assert report["title"] == "SnowAI Studio"
    assert report["menus"] == ["File", "View", "Tools", "Help"]
    assert report["status"][0].startswith("Compute: ")
    assert {"face_swap", "matting", "assistant", "voice_conversion"} <= set(report["pages"])
    assert report["switcher"][0] == "Home" and len(report["switcher"]) == 6
    assert report["live_workers_after_close"] == []
    for name in ("main", "devices", "models"):
        img = _image(tmp_path / f"{name}.png")
        assert img.shape[0] >= 600 and img.shape[1] >= 800
        assert img.std() > 10, f"{name}.png looks blank"
    target = os.environ.get("SNOWAI_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for name in ("main", "devices", "models"):
            shutil.copy(tmp_path / f"{name}.png", Path(target) / f"{name}.png")


# A child that runs the studio's real start-up (snowai_studio.app.run_gui) and signals itself at one
# moment: while the window is being built, or once it is shown but before the event loop runs.
_SIGNAL_CHILD = """
import os, signal, sys
import snowai_studio.app as app

moment = sys.argv[1]
build = app.create_window

def create_window(settings=None, extras=None):
    if moment == "building":
        os.kill(os.getpid(), signal.SIGTERM)
    window = build(settings, extras)
    if moment == "shown":
        show = window.show

        def show_then_signal():
            show()
            os.kill(os.getpid(), signal.SIGTERM)

        window.show = show_then_signal
    return window

app.create_window = create_window
sys.exit(app.run_gui([]))
"""


@pytest.mark.parametrize("moment", ["building", "shown"])
def test_sigterm_before_the_event_loop_still_closes_the_studio(
    x_display: str, isolated_home: Path, moment: str
) -> None:
    """A logout's SIGTERM that comes before the event loop runs closes the studio the normal way
    (window closed, settings saved, exit 0) instead of leaving a process with no window."""
    env = dict(os.environ, DISPLAY=x_display, QT_QPA_PLATFORM="xcb")
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SIGNAL_CHILD, moment], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the studio was still running 120 s after SIGTERM ({moment})") from exc
    assert proc.returncode == 0, proc.stderr[-3000:]
    log_text = "\n".join(p.read_text() for p in isolated_home.rglob("snowai-studio.log"))
    assert "signal 15: closing the studio" in log_text
    saved = list(isolated_home.rglob("settings.json"))
    assert saved, f"the settings were not saved: {sorted(p.name for p in isolated_home.rglob('*'))}"


_FIT_CHILD = """
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from snowai_studio.app import create_window
window = create_window()
window.show()
for _ in range(20):
    app.processEvents()
geometry = window.geometry()
status = window.statusBar()
bottom = status.mapTo(window, status.rect().bottomLeft()).y() + geometry.y()
screen = window.screen().availableGeometry()
print(json.dumps({"window": [geometry.x(), geometry.y(), geometry.width(), geometry.height()],
                  "status_bottom": bottom, "screen": [screen.width(), screen.height()]}))
window.close()
"""


def test_first_start_on_a_1280x720_screen_fits_the_window(isolated_home: Path) -> None:
    """The first window on a 1280x720 screen (no window manager) lies on the screen, status bar included."""
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        pytest.skip("no Xvfb")
    for number in range(141, 180):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = dict(os.environ, DISPLAY=f":{number}", QT_QPA_PLATFORM="xcb")
        env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
        done = subprocess.run([sys.executable, "-c", _FIT_CHILD], env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    x, y, width, height = report["window"]
    assert report["screen"] == [1280, 720]
    assert x >= 0 and y >= 0 and x + width <= 1280 and y + height <= 720, report
    assert report["status_bottom"] <= 720, report
