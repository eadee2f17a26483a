"""Screenshots of the real window with real content, for docs/screenshots/ and for looking at the pages.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py docs/screenshots

Opens the studio on an X server (xcb) in a fresh home folder, fills each page the way a creator would
(a photo cut out with the model that comes with the studio, a face photo swapped onto a portrait, a
typed question answered by the shipped language model, a recording ready to convert) and saves every
page, light and dark, at 1280x720 and 1920x1080: ``<page>-<theme>-<width>x<height>.png``. The window
has no frame on a bare X server, so it takes the whole size. Writes ``report.json`` beside them with
what each page showed, and exits non-zero when a page failed to fill.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ["QT_QPA_PLATFORM"] = "xcb"
if "SNOWAI_HOME" not in os.environ:
    os.environ["SNOWAI_HOME"] = tempfile.mkdtemp(prefix="snowai-shots-")
    atexit.register(shutil.rmtree, os.environ["SNOWAI_HOME"], ignore_errors=True)

SIZES = ((1280, 720), (1920, 1080))
THEMES = ("light", "dark")


def main(out: Path) -> int:
    import cv2
    import face_fixtures
    from PySide6.QtWidgets import QApplication

    from snowai_studio import theme
    from snowai_studio.app import create_window
    from workers import base
    from workers.settings import Settings

    out.mkdir(parents=True, exist_ok=True)
    media = Path(os.environ["SNOWAI_HOME"]) / "media"
    media.mkdir(parents=True, exist_ok=True)
    portrait = media / "portrait.png"
    cv2.imwrite(str(portrait), face_fixtures.astronaut())
    face = media / "face-photo.png"
    cv2.imwrite(str(face), face_fixtures.second_face())
    voice = media / "my-voice.wav"
    import svc_speech

    svc_speech.write_speech(voice, seconds=4.0, rate=44100, channels=2)

    app = QApplication([sys.argv[0]])
    settings = Settings.load()
    settings.face_swap.consent_accepted = True  # the first-use terms were accepted earlier
    settings.save()
    theme.apply_theme(app, "light")
    window = create_window(Settings.load())
    window.move(0, 0)
    window.resize(*SIZES[0])
    window.show()
    report: dict = {"pages": {}, "notifications": []}

    def wait(seconds: float, until=lambda: False) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until():
                return True
            time.sleep(0.02)
        return until()

    wait(15, lambda: window.compute_info is not None and "checking" not in window.devices_label.text())

    # Background removal: a portrait, cut out by the model that comes with the studio.
    matting = window.pages["matting"]
    window.show_page("matting")
    done: list[tuple[str, bool]] = []
    matting.job_done.connect(lambda kind, ok: done.append((kind, ok)))
    matting.open_images([portrait])
    wait(60, lambda: matting.current is not None and matting.current.image is not None)
    matting.remove_background()
    report["pages"]["matting"] = wait(120, lambda: ("remove", True) in done)

    # Face swap: a face photo onto the portrait, shown in the preview before anything is saved.
    swap = window.pages["face_swap"]
    window.show_page("face_swap")
    swap_done: list[tuple[str, bool]] = []
    swap.job_done.connect(lambda kind, ok: swap_done.append((kind, ok)))
    swap.choose_source([face], remember=False)
    wait(120, lambda: any(kind == "source" for kind, _ok in swap_done))
    swap.open_image(portrait)
    report["pages"]["face_swap"] = wait(180, lambda: any(ok and kind != "source" for kind, ok in swap_done))

    # Voice assistant: a typed question, answered by the language model that comes with the studio.
    assistant = window.pages["assistant"]
    window.show_page("assistant")
    assistant.send_text("What is the capital of France?")

    def answered() -> bool:
        turns = assistant.conversation().turns
        return any(turn.assistant.strip() for turn in turns) and assistant.state not in ("thinking", "speaking")

    report["pages"]["assistant"] = wait(300, answered)

    # Voice conversion: a recording waiting to be converted with the built-in voice changer.
    conversion = window.pages["voice_conversion"]
    window.show_page("voice_conversion")
    report["pages"]["voice_conversion"] = conversion.add_files([voice]) == 1
    wait(2)

    for theme_name in THEMES:
        window.set_theme(theme_name)
        for width, height in SIZES:
            window.resize(width, height)
            for page in ("home", "face_swap", "matting", "assistant", "voice_conversion", "live"):
                window.show_page(page)
                wait(0.8)
                shot = app.primaryScreen().grabWindow(0, 0, 0, width, height)
                shot.save(str(out / f"{page}-{theme_name}-{width}x{height}.png"))
    # "Get started" for the assistant: its recommended set, sizes and the free disk, before any download.
    from snowai_studio.dialogs.get_started_dialog import GetStartedDialog

    window.set_theme("dark")
    window.resize(*SIZES[-1])
    dialog = GetStartedDialog(window.context.model_store, "assistant", window)
    dialog.show()
    wait(0.8)
    dialog.grab().save(str(out / "get-started-assistant-dark.png"))
    dialog.shutdown()
    dialog.close()
    # Training a voice: the Voice conversion page with its "Train a voice" section open.
    window.show_page("voice_conversion")
    conversion.inspector.restore_section_states({"output": False, "train": True})
    wait(0.5)
    conversion.inspector.ensureWidgetVisible(conversion.inspector.sections["train"], 0, 0)
    wait(0.5)
    app.primaryScreen().grabWindow(0, 0, 0, *SIZES[-1]).save(str(out / "voice_conversion-train-dark.png"))
    # Settings with the Local API section.
    from snowai_studio.dialogs.settings_dialog import SettingsDialog

    settings_dialog = SettingsDialog(window.context.settings, window)
    settings_dialog.show()
    wait(0.8)
    settings_dialog.grab().save(str(out / "settings-local-api-dark.png"))
    settings_dialog.close()
    window.set_theme("system")
    report["notifications"] = [f"{n.level}: {n.source}: {n.message}" for n in window.notifications.items]
    window.close()
    base.shutdown_all()
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if all(report["pages"].values()) else 1


if __name__ == "__main__":
    try:
        code = main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
    except Exception:
        import traceback

        traceback.print_exc()
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()  # os._exit skips them: the fresh home (models, caches: over 1 GB) goes here
    os._exit(code)  # workers still inside a model load must not abort the interpreter's teardown
