"""The face-swap page end to end: the consent gate, the classic (dlib) engine swapping a face from a
photo onto a fake camera's live picture, the mark and its confirmation, image and video jobs, the
engine line, and errors as sentences in the page and the notifications."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from face_fixtures import ASTRONAUT_BOX, astronaut, install_face_models, second_face
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QToolButton

from snowai_studio.context import StudioContext
from snowai_studio.face_swap.consent import ConsentDialog
from snowai_studio.face_swap.page import IDLE_TEXT, READY_TEXT, FaceSwapPage
from snowai_studio.notifications import NotificationManager
from snowai_studio.tools import registered_tools
from workers import base
from workers.errors import UserError
from workers.face_swap.mark import read_generated_label
from workers.media.fakes import VideoFileCamera
from workers.models.store import ModelStore
from workers.settings import Settings

WAIT = 30000
SIZE = 256
FACE = tuple(v // 2 for v in ASTRONAUT_BOX)


def half(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def region_diff(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).mean())


def face_diff(a: np.ndarray, b: np.ndarray) -> float:
    return region_diff(a, b, FACE)  # type: ignore[arg-type]


def mark_diff(a: np.ndarray, b: np.ndarray) -> float:
    h, w = a.shape[:2]
    return region_diff(a, b, (int(w * 0.6), int(h * 0.9), w, h))


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """An MP4 of the astronaut (still) played as a camera, and its first frame as decoded."""
    path = tmp_path_factory.mktemp("camera") / "astronaut.mp4"
    frame = half(astronaut())
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=15, options={"qp": "0"})
        vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "yuv420p"
        for i in range(10):
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read()
    cap.release()
    assert ok
    return path, first


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = {
        "source": folder / "second.png",
        "target": folder / "astronaut.png",
        "noface": folder / "wall.png",
    }
    cv2.imwrite(str(paths["source"]), second_face())
    cv2.imwrite(str(paths["target"]), astronaut())
    cv2.imwrite(str(paths["noface"]), np.full((120, 160, 3), 90, np.uint8))
    return paths


class Answers:
    """What the dialogs answer in a test (and how often they were asked)."""

    def __init__(self, consent: bool = True, mark_off: bool = True) -> None:
        self.consent = consent
        self.mark_off = mark_off
        self.consent_asked = 0
        self.mark_asked = 0

    def ask_consent(self, parent: Any) -> bool:
        self.consent_asked += 1
        return self.consent

    def confirm_mark_off(self, parent: Any) -> bool:
        self.mark_asked += 1
        return self.mark_off


@pytest.fixture
def make_page(qtbot: Any, tmp_path: Path, camera_clip: tuple[Path, np.ndarray]) -> Iterator[Callable[..., Any]]:
    made: list[FaceSwapPage] = []
    managers: list[NotificationManager] = []

    def make(
        answers: Answers | None = None,
        store: Any = None,
        settings: Settings | None = None,
        camera: bool = True,
    ) -> FaceSwapPage:
        answers = answers or Answers()
        notifications = NotificationManager()
        notifications.install_hooks()
        managers.append(notifications)
        extras: dict[str, Any] = {
            "face_swap_consent": answers.ask_consent,
            "face_swap_confirm_mark_off": answers.confirm_mark_off,
        }
        if camera:
            extras["camera_factory"] = lambda: VideoFileCamera(camera_clip[0], loop=True)
        context = StudioContext(
            settings or Settings.load(),
            notifications,
            store if store is not None else ModelStore(tmp_path / "models"),
            extras,
        )
        page = FaceSwapPage(context)
        page.answers = answers  # type: ignore[attr-defined]
        qtbot.addWidget(page)
        page.resize(1000, 700)
        page.show()
        made.append(page)
        return page

    yield make
    for page in made:
        page.shutdown()
    for manager in managers:
        manager.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name in ("Face swap", "Camera")]


def job_ok(qtbot: Any, page: FaceSwapPage, kind: str, start: Callable[[], Any]) -> None:
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == kind) as blocker:
        assert start() is not None
    assert blocker.args[1], page.last_message


def live_frame(qtbot: Any, page: FaceSwapPage, ready: Callable[[np.ndarray], bool]) -> np.ndarray:
    """Wait for a preview frame that passes ``ready``."""
    seen: list[np.ndarray] = []

    def check() -> bool:
        frame = page.preview.frame
        if frame is not None and ready(frame):
            seen.append(frame)
            return True
        return False

    qtbot.waitUntil(check, timeout=WAIT)
    return seen[-1]


def test_page_is_registered_next_to_background_removal() -> None:
    specs = {spec.id: spec for spec in registered_tools()}
    assert specs["face_swap"].title == "Face swap"
    order = [spec.id for spec in registered_tools()]
    assert order.index("face_swap") + 1 == order.index("matting")
    assert specs["face_swap"].icon and specs["matting"].icon


def test_consent_gate_locks_until_accepted_and_is_saved(make_page: Any, photos: dict[str, Path]) -> None:
    answers = Answers(consent=False)
    page = make_page(answers)
    assert page.open_image(photos["target"]) is None
    assert answers.consent_asked == 1
    assert page.locked and page.lock_banner.isVisibleTo(page)
    assert "locked" in page.last_message and page.last_level == "warning"
    assert page.worker is None  # nothing was loaded, nothing swapped
    assert not page.image_button.isEnabled() and not page.live_button.isEnabled()
    # Locked: the tool says so without asking again, until the terms are reviewed.
    assert page.choose_source([photos["source"]]) is None
    assert not page.start_live()
    assert answers.consent_asked == 1
    assert not Settings.load().face_swap.consent_accepted

    answers.consent = True
    assert page.review_terms()
    assert not page.locked and not page.lock_banner.isVisibleTo(page)
    assert Settings.load().face_swap.consent_accepted
    assert page.image_button.isEnabled()
    # Accepted once: never asked again, in this page or a new one.
    again = make_page(answers)
    assert again.ensure_consent() and answers.consent_asked == 2


def test_consent_dialog_needs_the_tick(qtbot: Any) -> None:
    dialog = ConsentDialog()
    qtbot.addWidget(dialog)
    assert "consent" in dialog.check.text().lower()
    assert not dialog.accept_button.isEnabled()
    dialog.accept()
    assert dialog.result() == 0
    dialog.check.setChecked(True)
    assert dialog.accept_button.isEnabled()
    dialog.accept()
    assert dialog.result() == 1


def test_live_untouched_without_source_then_swapped_and_marked(
    make_page: Any, qtbot: Any, photos: dict[str, Path], camera_clip: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    camera_frame = camera_clip[1]
    answers = Answers()
    page = make_page(answers)
    assert page.start_live()
    assert answers.consent_asked == 1
    frame = live_frame(qtbot, page, lambda f: f.shape == camera_frame.shape)
    # No source: the camera picture as it is, no mark, and a hint saying why.
    assert face_diff(frame, camera_frame) < 2 and mark_diff(frame, camera_frame) < 2
    assert page.live_hint.isVisibleTo(page)
    qtbot.waitUntil(lambda: "fps" in page.preview.overlay and "latency" in page.preview.overlay, timeout=WAIT)

    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    assert not page.live_hint.isVisibleTo(page)
    assert page.source_section.faces.count() == 1 and "1 photo" in page.source_section.label.text()
    assert Settings.load().face_swap.last_source == [str(photos["source"])]
    frame = live_frame(qtbot, page, lambda f: face_diff(f, camera_frame) > 4)
    assert mark_diff(frame, camera_frame) > 10  # the mark is on by default
    qtbot.waitUntil(lambda: "swap" in page.preview.overlay and "ms" in page.preview.overlay, timeout=WAIT)
    stats = page.live_panel.stats_label
    qtbot.waitUntil(lambda: "fps" in stats.text() and "end to end" in stats.text(), timeout=WAIT)

    # Before/after shows the camera picture itself.
    page.before_button.click()
    assert page.showing_before
    frame = live_frame(qtbot, page, lambda f: face_diff(f, camera_frame) < 2)
    assert mark_diff(frame, camera_frame) < 2
    page.before_button.click()
    live_frame(qtbot, page, lambda f: face_diff(f, camera_frame) > 4)

    # Turning the mark off asks first; "No" keeps it.
    answers.mark_off = False
    assert page.set_mark(False) is True
    assert answers.mark_asked == 1 and page.mark_check.isChecked()
    answers.mark_off = True
    assert page.set_mark(False) is False
    assert answers.mark_asked == 2 and not page.mark_check.isChecked()
    assert not Settings.load().face_swap.mark
    assert page.last_level == "warning" and "mark is off" in page.last_message
    frame = live_frame(qtbot, page, lambda f: mark_diff(f, camera_frame) < 2 and face_diff(f, camera_frame) > 4)

    # Record a few swapped frames.
    recording = tmp_path / "live.mp4"
    assert page.toggle_recording(recording)
    assert page.record_button.isChecked()
    qtbot.waitUntil(lambda: page.worker.recorded_frames >= 3, timeout=WAIT)
    page.record_button.click()
    qtbot.waitUntil(lambda: "Recording saved" in page.last_message, timeout=WAIT)
    assert recording.is_file() and not page.record_button.isChecked()

    # This machine has no virtual camera device: the button says so and turns itself off.
    page.vcam_button.click()
    qtbot.waitUntil(lambda: not page.vcam_button.isChecked(), timeout=WAIT)
    qtbot.waitUntil(lambda: "virtual camera" in page.last_message.lower(), timeout=WAIT)
    assert page.last_level == "error" and "Traceback" not in page.last_message

    # Clearing the source gives the untouched camera back.
    job_ok(qtbot, page, "clear", lambda: page.clear_source())
    live_frame(qtbot, page, lambda f: face_diff(f, camera_frame) < 2)
    assert page.live_hint.isVisibleTo(page)
    page.stop_live()
    assert not page.live_running and page.preview.placeholder


def test_a_new_page_keeps_the_mark_setting_and_the_last_source(
    make_page: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    settings = Settings.load()
    settings.face_swap.consent_accepted = True
    settings.face_swap.mark = False
    settings.face_swap.last_source = [str(photos["source"]), str(photos["source"].with_name("gone.png"))]
    settings.save()
    page = make_page(camera=False)
    assert not page.mark_check.isChecked() and page.options.mark is False
    qtbot.waitUntil(lambda: page.source_summary is not None, timeout=WAIT)  # reopened (the missing photo left out)
    assert page.source_summary.count == 1
    assert page.answers.consent_asked == 0
    assert page.set_mark(True) and Settings.load().face_swap.mark
    assert page.answers.mark_asked == 0  # turning it on asks nothing


def test_image_job_saves_a_marked_copy_and_never_overwrites(
    make_page: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    page = make_page(camera=False)
    assert page.open_image(photos["target"]) is None
    assert "Choose a source face first" in page.last_message
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    job_ok(qtbot, page, "image", lambda: page.open_image(photos["target"]))
    assert page.save_image(photos["target"]) is None
    assert "never overwritten" in page.last_message
    assert not list(photos["target"].parent.glob("*swapped*"))  # opening shows the result, it writes nothing

    out = photos["target"].with_name("astronaut-swapped.png")
    job_ok(qtbot, page, "save", lambda: page.save_image(out))
    assert out.is_file() and read_generated_label(out)
    assert "swapped 1 of 1 face" in page.last_message and "classic" in page.last_message
    assert page.preview.frame is not None and page.preview.frame.shape == (512, 512, 3)
    assert region_diff(cv2.imread(str(out)), astronaut(), ASTRONAUT_BOX) > 4


def test_video_job_with_progress_and_cancel(
    make_page: Any, qtbot: Any, photos: dict[str, Path], camera_clip: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    page = make_page(camera=False)
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    dst = tmp_path / "clip-swapped.mp4"
    assert page.swap_video_file(camera_clip[0], tmp_path / "clip.avi") is None
    assert ".mp4, .mov or .webm" in page.last_message
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == "video") as blocker:
        assert page.swap_video_file(camera_clip[0], dst) is not None
        assert page.runner.progress_row.isVisibleTo(page) and not page.video_button.isEnabled()
        assert page.runner.cancel_button.isVisibleTo(page) and "clip-swapped.mp4" in page.runner.label.text()
    assert blocker.args[1], page.last_message
    assert dst.is_file() and "Video saved" in page.last_message and "10 frames" in page.last_message
    assert not page.runner.progress_row.isVisibleTo(page)

    # Cancel as soon as the progress bar moves (a slot on the UI thread, like a click on Cancel).
    page.runner.bar.valueChanged.connect(lambda value: page.cancel() if value > 0 else None)
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == "video") as blocker:
        assert page.swap_video_file(camera_clip[0], tmp_path / "cancelled.mp4") is not None
    assert blocker.args[1] is False
    assert "no video file was written" in page.last_message
    assert not (tmp_path / "cancelled.mp4").exists()


def test_errors_are_sentences_in_the_page_and_the_notifications(
    make_page: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    page = make_page(camera=False)
    with qtbot.waitSignal(page.job_done, timeout=WAIT) as blocker:
        page.choose_source([photos["noface"]])
    assert blocker.args == ["source", False]
    assert page.last_level == "error"
    assert page.last_message.startswith("No face was found in wall.png")
    assert "Traceback" not in page.last_message
    qtbot.waitUntil(
        lambda: any("No face was found in wall.png" in n.message for n in page.context.notifications.items),
        timeout=WAIT,
    )
    assert page.source_section.label.text() == "No source face chosen."
    assert page.choose_source([photos["source"].with_name("missing.png")]) is None
    assert "was not found" in page.last_message and page.last_level == "warning"
    # A camera that cannot be opened.
    page.context.extras["camera_factory"] = lambda: VideoFileCamera(photos["source"].with_name("nothing.mp4"))
    assert page.start_live()
    qtbot.waitUntil(lambda: not page.live_running, timeout=WAIT)
    assert "nothing.mp4" in page.last_message and page.last_level == "error"


def test_several_sources_show_the_face_map(make_page: Any, qtbot: Any, photos: dict[str, Path]) -> None:
    page = make_page(camera=False)
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"], photos["target"]]))
    assert page.source_section.faces.count() == 2
    assert page.source_section.face_map.isVisibleTo(page) and page.source_section.face_map.rows == 2
    page.source_section.face_map.set_target(1, 0)
    assert page.options.face_map == {1: 0}
    qtbot.waitUntil(lambda: page.worker.options.face_map == {1: 0}, timeout=WAIT)
    page.target_section.combo.setCurrentIndex(page.target_section.combo.findData("index"))
    assert page.target_section.index_row.isVisibleTo(page) and not page.target_section.reference_row.isVisibleTo(page)
    page.target_section.index_spin.setValue(2)
    assert page.options.target == "index" and page.options.target_index == 1
    page.target_section.combo.setCurrentIndex(page.target_section.combo.findData("reference"))
    assert page.target_section.reference_row.isVisibleTo(page)
    job_ok(qtbot, page, "reference", lambda: page.choose_reference(photos["target"]))
    assert "astronaut.png" in page.target_section.reference_label.text()
    page.blending.opacity.set_value(40)
    page.blending.mouth_mask.setChecked(True)
    qtbot.waitUntil(lambda: page.worker.options.opacity == pytest.approx(0.4) and page.worker.options.mouth_mask)


def test_engine_line_and_enhancers_follow_the_installed_models(make_page: Any, tmp_path: Path) -> None:
    page = make_page(store=ModelStore(Path(os.environ["SNOWAI_HOME"]) / "empty-store"), camera=False)
    engine = page.engine_section
    assert engine.engine_label.text() == "Engine: Classic (dlib) — offline default"
    assert engine.models_button.isVisibleTo(page) and engine.models_button.text() == "Get insightface models…"
    # No enhancer is installed: each one can only be downloaded, and choosing it changes nothing.
    enhancers = engine.enhancer_picker
    assert [c.key for c in enhancers.choices if c.ready] == ["none"]
    assert enhancers.select("gfpgan-1.4")
    assert page.options.enhancer is None and enhancers.get_button.isVisibleTo(page)

    store = install_face_models(tmp_path / "face-models")
    ready = make_page(store=store, camera=False)
    engine = ready.engine_section
    assert engine.engine_label.text() == "Engine: insightface"
    assert not engine.models_button.isVisibleTo(ready)
    gfpgan = next(c for c in engine.enhancer_picker.choices if c.key == "gfpgan-1.4")
    assert gfpgan.ready
    assert engine.enhancer_picker.select("gfpgan-1.4")
    assert ready.options.enhancer == "gfpgan-1.4" and not engine.enhancer_picker.get_button.isVisibleTo(ready)
    assert engine.engine_picker.select("classic")
    assert engine.engine_label.text() == "Engine: Classic (dlib) — offline default"
    assert Settings.load().face_swap.engine == "classic"


# ---- the page's layout and its new behaviour ------------------------------------------------------------------


def test_every_action_is_a_button_on_top_and_nothing_overflows_at_1280x720(make_page: Any, qtbot: Any) -> None:
    page = make_page(camera=False)
    page.resize(1180, 640)  # what the page gets of a 1280x720 window (the tool switcher, menus, status bar)
    qtbot.waitUntil(lambda: page.action_bar.width() >= 1100)
    bar = page.action_bar
    buttons = [page.choose_button, page.image_button, page.video_button, page.live_button, page.before_button,
               page.save_button]
    assert [b.text() for b in buttons] == [
        "Choose face photos", "Open image", "Open video", "Live", "Before/after", "Save image"]
    for button in buttons:
        assert button.isVisibleTo(page) and not button.icon().isNull(), button.text()
        assert bar.rect().contains(button.geometry()), f"{button.text()} is cut off"
    extension = bar.findChild(QToolButton, "qt_toolbar_ext_button")
    assert extension is None or not extension.isVisibleTo(page), "actions hidden behind the overflow chevron"
    assert page.live_button.property("primary") is True
    assert page.open_action is page.choose_action and "Ctrl+O" in page.choose_action.toolTip()
    assert page.save_action.shortcut() == QKeySequence("Ctrl+S")
    # The preview takes the middle; the settings are inspector sections, which scroll when they are taller.
    assert page.centralWidget().width() > page.inspector.width() * 2
    titles = [section.title for section in page.inspector.sections.values()]
    assert titles == ["Source faces", "Live camera", "Faces to replace", "Blending", "Engine & enhancer",
                      "Swapper, boost & masks", "Output & mark"]
    for section in page.inspector.sections.values():  # "&" shows as itself, not as a shortcut's underline
        assert QKeySequence.mnemonic(section.header.text()).isEmpty(), section.title
    assert page.inspector.verticalScrollBar().maximum() > 0


def test_an_image_shows_swapped_in_the_preview_rerenders_and_saves(
    make_page: Any, qtbot: Any, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[str] = []
    answer = {"save": ""}

    def save_dialog(*_args: Any, **_kwargs: Any) -> tuple[str, str]:
        saves.append(answer["save"])
        return answer["save"], ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    page = make_page(camera=False)
    assert not page.save_action.isEnabled() and not page.before_action.isEnabled()
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    original = astronaut()
    job_ok(qtbot, page, "image", lambda: page.open_image(photos["target"]))
    # Opening shows the result in the middle; nothing asks where to save, nothing is written.
    assert not saves and not list(photos["target"].parent.glob("*swapped*"))
    swapped = page.preview.frame.copy()
    assert region_diff(swapped, original, ASTRONAUT_BOX) > 4 and "astronaut.png" in page.preview.overlay
    assert page.save_action.isEnabled() and page.before_action.isEnabled()

    # Blending changes render the still again on the worker, once the sliders rest (one render for three moves).
    kinds: list[str] = []
    page.job_done.connect(lambda kind, ok: kinds.append(kind))
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == "render" and ok):
        for value in (80, 60, 40):
            page.blending.opacity.set_value(value)
        assert page.still.rendering and not page.save_action.isEnabled()
        assert page.preview.frame is not None and np.array_equal(page.preview.frame, swapped)  # not on the UI thread
    assert kinds == ["render"] and not page.still.rendering
    softer = page.preview.frame.copy()
    assert region_diff(softer, swapped, ASTRONAUT_BOX) > 1
    assert region_diff(softer, original, ASTRONAUT_BOX) < region_diff(swapped, original, ASTRONAUT_BOX)

    # Before/after works for a still: the picture as it was, then the swapped one again.
    page.before_button.click()
    assert page.showing_before and region_diff(page.preview.frame, original, ASTRONAUT_BOX) < 1
    page.before_button.click()
    assert not page.showing_before and np.array_equal(page.preview.frame, softer)

    # Save (Ctrl+S) never writes over the input, and keeps the mark and the generated-image label.
    answer["save"] = str(photos["target"])
    assert page.save_image() is None and "never overwritten" in page.last_message
    out = photos["target"].with_name("astronaut-softer.jpg")
    answer["save"] = str(out)
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == "save") as saved:
        page.mark_check.setFocus()
        qtbot.keyClick(page.mark_check, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert saved.args[1], page.last_message
    assert out.is_file() and read_generated_label(out) and f"Saved {out.name}" in page.last_message
    written = cv2.imread(str(out))
    assert region_diff(written, softer, ASTRONAUT_BOX) < 4 and mark_diff(written, original) > 10
    assert cv2.imread(str(photos["target"])).shape == original.shape  # the input is as it was


def test_the_preview_says_what_to_do_next_once_a_face_is_chosen(
    make_page: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    page = make_page()
    assert page.preview.placeholder == IDLE_TEXT
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    assert page.preview.placeholder == READY_TEXT and "Choose a face photo" not in page.preview.placeholder
    assert page.start_live()
    live_frame(qtbot, page, lambda f: True)
    page.stop_live()
    assert not page.preview.has_frame() and page.preview.placeholder == READY_TEXT  # not the stale first step
    job_ok(qtbot, page, "clear", lambda: page.clear_source())
    assert page.preview.placeholder == IDLE_TEXT


def test_live_panel_starts_records_into_the_chosen_folder_and_remembers_it(
    make_page: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path
) -> None:
    page = make_page()
    panel = page.live_panel
    assert panel.folder is not None and panel.record_button is not None
    assert not page.vcam_button.isEnabled() and not panel.record_button.isEnabled()
    assert not panel.start_button.isVisibleTo(page)  # one Live button: the one on top
    page.live_button.click()
    assert page.live_running and panel.running and page.live_action.isChecked()
    assert page.live_button.text() == "Stop live" and page.vcam_button.isEnabled()
    qtbot.waitUntil(lambda: "fps" in panel.stats_label.text(), timeout=WAIT)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    panel.folder.choose(str(recordings))
    panel.record_button.click()
    assert page.worker.recording and panel.record_button.isChecked()
    qtbot.waitUntil(lambda: page.worker.recorded_frames >= 3, timeout=WAIT)
    panel.record_button.click()
    qtbot.waitUntil(lambda: "Recording saved" in page.last_message, timeout=WAIT)
    assert [p.suffix for p in recordings.iterdir()] == [".mp4"]
    page.live_button.click()  # the Live button on top stops it as well
    assert not page.live_running and not panel.running and page.live_button.text() == "Live"
    # A new page (the next session) records into the same folder.
    again = make_page(camera=False)
    assert again.live_panel.folder.folder == str(recordings)


def test_a_camera_problem_is_shown_once_with_retry(make_page: Any, qtbot: Any, photos: dict[str, Path]) -> None:
    page = make_page()
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    working = page.context.extras["camera_factory"]
    page.context.extras["camera_factory"] = lambda: VideoFileCamera(photos["source"].with_name("nothing.mp4"))
    assert page.start_live()
    assert page.message_line.label.text().startswith("Live:")
    qtbot.waitUntil(lambda: page.live_problem.active, timeout=WAIT)
    text = page.live_problem.text
    assert "nothing.mp4" in text and not text.startswith("Camera:") and not page.live_running
    assert not page.live_action.isChecked() and page.last_level == "error"
    assert page.message_line.label.text() == ""  # once on the page (the live panel's bar), no stale "Live: …"
    qtbot.waitUntil(lambda: any("nothing.mp4" in n.message for n in page.context.notifications.items), timeout=WAIT)
    assert sum("nothing.mp4" in n.message for n in page.context.notifications.items) == 1
    page.context.extras["camera_factory"] = working
    page.live_problem.retry_button.click()
    assert page.live_running and not page.live_problem.active
    live_frame(qtbot, page, lambda f: True)


def test_a_late_signal_of_a_camera_stopped_before_retry_leaves_the_new_one_alone(
    make_page: Any, qtbot: Any
) -> None:
    page = make_page()
    assert page.start_live()
    old = page.camera
    page.live.problem("The camera stopped sending pictures.")
    assert not page.live_running
    page.live_problem.retry_button.click()
    assert page.live_running and page.camera is not old
    old.stream_halted.emit("Camera: the old camera's last word")  # queued before Retry, delivered after it
    old.error.emit("Camera: the old camera's last word")
    assert page.live_running and not page.live_problem.active
    live_frame(qtbot, page, lambda f: True)


def test_an_imported_enhancer_is_selected_and_a_locked_page_offers_nothing(
    make_page: Any, tmp_path: Path, photos: dict[str, Path]
) -> None:
    page = make_page(store=install_face_models(tmp_path / "face-models"), camera=False)
    assert page.options.enhancer is None
    page.model_imported("gpen-bfr-512")
    assert page.options.enhancer == "gpen-bfr-512"
    assert page.engine_section.enhancer_picker.current_key() == "gpen-bfr-512"

    locked = make_page(Answers(consent=False), camera=False)
    assert locked.choose_source([photos["source"]]) is None and locked.locked
    for action in (locked.choose_action, locked.image_action, locked.video_action, locked.live_action):
        assert not action.isEnabled(), action.text()
    assert not locked.live_panel.start_button.isEnabled()


class BrokenPipeline:
    """A face-swap pipeline whose model cannot be read."""

    def __init__(self, *_args: Any) -> None:
        pass

    def load(self) -> None:
        raise UserError("The swapper model is damaged; download it again in the model manager.")

    def close(self) -> None:
        pass


def test_a_swap_that_cannot_start_stops_live_once_and_retry_builds_it_again(make_page: Any, qtbot: Any) -> None:
    page = make_page()
    page.context.extras["face_swap_pipeline_factory"] = BrokenPipeline
    assert page.start_live()
    qtbot.waitUntil(lambda: page.live_problem.active, timeout=WAIT)
    assert "swapper model is damaged" in page.live_problem.text and not page.live_running
    assert "damaged" not in page.message_line.label.text()  # said once, on the live panel's bar
    broken = page.worker
    del page.context.extras["face_swap_pipeline_factory"]  # the model is there again
    page.live_problem.retry_button.click()
    assert page.live_running and page.worker is not broken
    live_frame(qtbot, page, lambda f: True)


def test_models_changed_and_imported_refresh_the_engine_and_enhancer_pickers(make_page: Any, tmp_path: Path) -> None:
    page = make_page(store=ModelStore(tmp_path / "empty-store"), camera=False)
    engine = page.engine_section
    insight = next(c for c in engine.engine_picker.choices if c.key == "insightface")
    assert not insight.ready and engine.models_button.isVisibleTo(page)
    page.context.model_store = install_face_models(tmp_path / "face-models")  # downloaded in the model manager
    page.models_changed()
    insight = next(c for c in engine.engine_picker.choices if c.key == "insightface")
    assert insight.ready and not engine.models_button.isVisibleTo(page)
    assert engine.engine_label.text() == "Engine: insightface"
    page.model_imported("gfpgan-1.4")
    assert page.options.enhancer == "gfpgan-1.4" and engine.enhancer_picker.current_key() == "gfpgan-1.4"


def test_a_render_dropped_with_its_worker_does_not_block_save(
    make_page: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path
) -> None:
    page = make_page(camera=False)
    job_ok(qtbot, page, "source", lambda: page.choose_source([photos["source"]]))
    job_ok(qtbot, page, "image", lambda: page.open_image(photos["target"]))
    page.blending.mask_blur.set_value(30)
    qtbot.waitUntil(lambda: page.still.rendering and not page.still.timer.isActive(), timeout=WAIT)  # on the worker
    old = page.worker
    page.context.model_store = ModelStore(tmp_path / "other-models")  # the models folder changed in Settings
    with qtbot.waitSignal(page.job_done, timeout=WAIT, check_params_cb=lambda k, ok: k == "render") as dropped:
        page.choose_reference(photos["target"])  # the next job needs a worker on the new store
    assert dropped.args[1] is False and page.worker is not old
    assert not page.still.rendering and page.save_action.isEnabled()
    # The new worker got the source face again: the still renders with it.
    job_ok(qtbot, page, "image", lambda: page.open_image(photos["target"]))
    assert page.still.result.faces_swapped == 1


def test_swapper_boost_masks_and_enhancer_blend_from_the_inspector(make_page, qtbot) -> None:
    page = make_page()
    quality = page.quality
    # Every swapper is listed; one that is not downloaded offers "Get it".
    keys = [c.key for c in quality.swapper_picker.choices]
    assert keys[0] == "auto" and "hyperswap-1a-256" in keys and "simswap-unofficial-512" in keys
    assert not next(c for c in quality.swapper_picker.choices if c.key == "uniface-256").ready
    # Pixel boost says what it costs, and the page's options follow each control.
    quality.boost_combo.setCurrentIndex(quality.boost_combo.findData(3))
    assert page.options.pixel_boost == 3
    assert quality.boost_cost.text() == "384 px face, 9 swapper runs per face (about 9x the swap time)."
    quality.occlusion_check.setChecked(True)
    quality.region_checks["skin"].setChecked(True)
    quality.region_checks["lips"].setChecked(True)
    assert page.options.occlusion_mask and page.options.face_regions == "skin, lips"
    assert "XSeg occlusion mask" in quality.mask_note.text() and "BiSeNet" in quality.mask_note.text()
    quality.blend_slider.slider.setValue(40)
    assert page.options.enhancer_blend == 0.4
    assert quality.fidelity_slider.isHidden()
    quality.set_enhancer("codeformer")
    assert not quality.fidelity_slider.isHidden()
    quality.fidelity_slider.slider.setValue(25)
    assert page.options.enhancer_fidelity == 0.25
