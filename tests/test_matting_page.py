"""The background-removal page end to end: a small U²-Net-shaped model imported into the model
store, the real worker and engine, the canvas, the brush, GrabCut, exports, batches and live."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from snowai_studio.context import StudioContext
from snowai_studio.matting.page import MattingPage
from snowai_studio.notifications import NotificationManager
from snowai_studio.tools import registered_tools
from workers import base
from workers.matting.compose import Background
from workers.media.fakes import GeneratedCamera
from workers.models.store import ModelStore
from workers.settings import Settings

H, W = 96, 128
WAIT = 20000


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def model_id(store: ModelStore, tmp_path: Path) -> str:
    path = build_u2net_like(tmp_path / "src" / "bright.onnx")
    return store.import_file(path, "matting", name="Bright subjects").id


@pytest.fixture
def make_dock(qtbot: Any, store: ModelStore) -> Iterator[Any]:
    made: list[MattingPage] = []
    managers: list[NotificationManager] = []

    def make(model_store: Any = store, extras: dict | None = None) -> MattingPage:
        notifications = NotificationManager()
        notifications.install_hooks()
        managers.append(notifications)
        context = StudioContext(Settings.load(), notifications, model_store, extras or {})
        dock = MattingPage(context)
        qtbot.addWidget(dock)
        dock.resize(900, 700)
        dock.show()
        made.append(dock)
        return dock

    yield make
    for dock in made:
        dock.shutdown()
    for manager in managers:
        manager.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name.startswith("Background removal")]


@pytest.fixture
def subject_png(tmp_path: Path) -> tuple[Path, np.ndarray]:
    bgr, truth = subject_image(H, W)
    path = tmp_path / "photos" / "subject.png"
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), bgr)
    return path, truth


def open_and_wait(qtbot: Any, dock: MattingPage, path: Path) -> None:
    dock.open_images([path])
    qtbot.waitUntil(lambda: dock.current is not None and dock.current.image is not None, timeout=WAIT)


def remove_and_wait(qtbot: Any, dock: MattingPage) -> None:
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "remove"):
        assert dock.remove_background() is not None
    assert dock.current is not None and dock.current.alpha is not None


def test_dock_is_registered_and_shows_an_empty_state(make_dock: Any) -> None:
    assert any(spec.id == "matting" and spec.title == "Background removal" for spec in registered_tools())
    dock = make_dock(ModelStore(Path(os.environ["SNOWAI_HOME"]) / "empty-store"))
    assert dock.stack.currentWidget() is dock.empty_page
    texts = " ".join(label.text() for label in dock.empty_page.findChildren(type(dock.model_status)))
    assert "Drop images here or Open" in texts
    # No model is ready: the status names the default model and points at the model manager.
    assert "is not downloaded: open the model manager" in dock.model_status.text()
    assert dock.model_manager_button.isVisibleTo(dock)
    picker = dock.model_picker
    combo = picker.combo
    assert len(picker.choices) >= 5 and len(dock.choices) == len(picker.choices)
    assert not any(c.ready for c in dock.choices) and not any(c.ready for c in picker.choices)
    item = combo.model().item(0)
    assert not item.isEnabled()  # the heading "Can be downloaded"
    listed = [combo.itemText(i) for i in range(combo.count()) if combo.itemData(i)]
    assert len(listed) == len(picker.choices) and all("(not downloaded)" in text for text in listed)
    # The model shown is not usable: "Get it…" leads to the model manager, and it is not chosen.
    assert picker.get_button.isVisibleTo(dock) and "model manager" in picker.get_button.toolTip()
    assert all(combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count()) if combo.itemData(i))
    # Remove background with no image, then with a missing model: sentences, no crash.
    assert dock.remove_background() is None
    assert "Open an image first" in dock.last_message


def test_missing_model_gives_a_sentence(make_dock: Any, qtbot: Any, subject_png: Any) -> None:
    dock = make_dock(ModelStore(Path(os.environ["SNOWAI_HOME"]) / "empty-store"))
    open_and_wait(qtbot, dock, subject_png[0])
    assert dock.remove_background() is None
    assert "is not downloaded: open the model manager" in dock.last_message
    assert dock.last_level == "warning"
    qtbot.waitUntil(lambda: any("not downloaded" in n.message for n in dock.context.notifications.items))


def test_remove_brush_undo_redo_refine_export(make_dock: Any, qtbot: Any, model_id: str, subject_png: Any) -> None:
    path, truth = subject_png
    dock = make_dock()
    assert dock.current_choice() is not None and dock.current_choice().id == model_id
    assert "ready" in dock.model_status.text()
    open_and_wait(qtbot, dock, path)
    assert dock.stack.currentWidget() is dock.canvas
    assert "Remove background" in dock.canvas.hint

    remove_and_wait(qtbot, dock)
    entry = dock.current
    assert iou(entry.alpha, truth) > 0.9
    assert dock.canvas.alpha is entry.alpha
    assert dock.export_action.isEnabled() and dock.refine_action.isEnabled()
    model_alpha = entry.alpha.copy()

    # Erase a patch of the subject with the brush, through the canvas (image coordinates).
    dock.set_tool("erase")
    dock.brush_size.setValue(6)
    centre = (W / 2, H / 2)
    dock.canvas.apply_stroke([(centre[0] - 8, centre[1]), (centre[0] + 8, centre[1])])
    cy, cx = int(centre[1]), int(centre[0])
    assert entry.alpha[cy - 3 : cy + 4, cx - 8 : cx + 9].max() == 0
    assert dock.undo_action.isEnabled()
    # Only the part under the brush was repainted.
    rect = dock.canvas.last_update_rect
    assert 0 < rect.width() < dock.canvas.width() and rect.height() < dock.canvas.height()

    assert dock.undo()
    assert np.array_equal(entry.alpha, model_alpha)
    assert dock.canvas.alpha is entry.alpha
    assert dock.redo_action.isEnabled()
    assert dock.redo()
    assert entry.alpha[cy - 3 : cy + 4, cx - 8 : cx + 9].max() == 0
    # The keyboard shortcut works too.
    dock.undo_action.trigger()
    assert np.array_equal(entry.alpha, model_alpha)
    dock.redo_action.trigger()

    # Refine keeps the erased patch (a sure-background stroke) and the subject.
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "refine"):
        assert dock.refine_edges() is not None
    assert entry.alpha[cy - 3 : cy + 4, cx - 8 : cx + 9].max() == 0
    assert iou(entry.alpha, truth) > 0.85
    assert dock.undo()  # one undo brings the pre-refine mask back
    assert entry.alpha[cy - 3 : cy + 4, cx - 8 : cx + 9].max() == 0
    assert dock.redo()

    # Export a PNG with alpha; the input file is untouched.
    before = path.read_bytes()
    out = path.parent / "subject-cut.png"
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "export"):
        dock.export_image(out)
    assert "Saved subject-cut.png" in dock.last_message
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        alpha = np.asarray(im)[:, :, 3]
    assert np.array_equal(alpha, entry.alpha)
    assert alpha[cy, cx] == 0
    assert path.read_bytes() == before
    assert not entry.unsaved

    # Exporting over the input is refused; JPEG gets a background.
    assert dock.export_image(path) is None
    assert "never overwritten" in dock.last_message
    assert path.read_bytes() == before
    jpg = path.parent / "subject.jpg"
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "export"):
        dock.export_image(jpg)
    with Image.open(jpg) as im:
        assert im.mode == "RGB"
        assert np.asarray(im)[5, 5].min() > 240  # transparent became white


def test_mouse_stroke_paints_in_image_coordinates(make_dock: Any, qtbot: Any, model_id: str, subject_png: Any) -> None:
    dock = make_dock()
    open_and_wait(qtbot, dock, subject_png[0])
    remove_and_wait(qtbot, dock)
    canvas = dock.canvas
    canvas.set_split(0.02)  # the divider out of the way
    dock.set_tool("add")
    dock.brush_size.setValue(4)
    # A patch of background (top-left corner of the image) painted in with the mouse.
    start = canvas.image_to_widget(QPointF(10, 10)).toPoint()
    end = canvas.image_to_widget(QPointF(30, 10)).toPoint()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas, end)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    entry = dock.current
    assert entry.alpha[10, 12:29].min() == 255
    assert entry.alpha[30, 20] < 50
    assert entry.history.can_undo
    assert entry.seeds[10, 20] != 0  # remembered as a sure-subject seed for Refine

    # Wheel zoom keeps the point under the cursor; fit and 100% work.
    before = canvas.zoom
    anchor = QPointF(canvas.width() / 2, canvas.height() / 2)
    point = canvas.widget_to_image(anchor)
    canvas.set_zoom(before * 2, anchor)
    after = canvas.widget_to_image(anchor)
    assert abs(after.x() - point.x()) < 1e-6 and abs(after.y() - point.y()) < 1e-6
    canvas.actual_size()
    assert canvas.zoom == 1.0
    canvas.fit()
    assert abs(canvas.zoom - before) < 1e-6


def test_each_image_keeps_its_mask_and_history(
    make_dock: Any, qtbot: Any, model_id: str, subject_png: Any, tmp_path: Path
) -> None:
    path, _ = subject_png
    other = path.parent / "other.png"
    bgr, _ = subject_image(H, W, seed=3)
    cv2.imwrite(str(other), bgr)
    dock = make_dock()
    dock.open_images([path, other])
    qtbot.waitUntil(lambda: dock.current is not None and dock.current.image is not None, timeout=WAIT)
    assert dock.thumbs.isVisibleTo(dock) and dock.thumbs.count() == 2
    first = dock.current
    remove_and_wait(qtbot, dock)
    dock.set_tool("erase")
    dock.canvas.apply_stroke([(20.0, 20.0)], radius=5)
    edited = first.alpha.copy()

    dock.thumbs.setCurrentRow(1)
    second = dock.current
    assert second is not first and second.path.name == "other.png"
    qtbot.waitUntil(lambda: second.image is not None, timeout=WAIT)
    assert dock.canvas.alpha is None and not dock.undo_action.isEnabled()

    dock.thumbs.setCurrentRow(0)
    assert dock.current is first
    assert np.array_equal(dock.canvas.alpha, edited)
    assert dock.undo()
    assert not np.array_equal(first.alpha, edited)


def test_corrupt_file_gives_a_message(make_dock: Any, qtbot: Any, model_id: str, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really an image")
    dock = make_dock()
    dock.open_images([bad])
    qtbot.waitUntil(lambda: dock.current is not None and bool(dock.current.error), timeout=WAIT)
    assert "broken.png could not be read" in dock.last_message
    assert dock.last_level == "error"
    assert dock.canvas.placeholder.startswith("broken.png could not be read")
    assert dock.remove_background() is None
    assert "broken.png could not be read" in dock.last_message
    qtbot.waitUntil(lambda: any("broken.png" in n.message for n in dock.context.notifications.items))
    # Something that is not an image at all.
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    dock.add_paths([text])
    assert "Not an image the studio can open: notes.txt" in dock.last_message
    assert len(dock.entries) == 1


def test_failed_export_keeps_the_edits(make_dock: Any, qtbot: Any, model_id: str, subject_png: Any) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    path, _ = subject_png
    dock = make_dock()
    open_and_wait(qtbot, dock, path)
    remove_and_wait(qtbot, dock)
    dock.set_tool("erase")
    dock.canvas.apply_stroke([(20.0, 20.0)], radius=5)
    locked = path.parent / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "export"):
            dock.export_image(locked / "out.png")
    finally:
        locked.chmod(stat.S_IRWXU)
    assert dock.last_level == "error" and "edits are kept" in dock.last_message
    assert dock.current.unsaved and dock.current.history.can_undo


def test_export_failure_in_a_missing_folder_is_a_sentence(
    make_dock: Any, qtbot: Any, model_id: str, subject_png: Any
) -> None:
    path, _ = subject_png
    dock = make_dock()
    open_and_wait(qtbot, dock, path)
    remove_and_wait(qtbot, dock)
    target = path.parent / "not-a-folder.txt"
    target.write_text("x")
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "export"):
        dock.export_image(target / "out.png")
    assert dock.last_level == "error"
    assert "Traceback" not in dock.last_message and "edits are kept" in dock.last_message
    assert dock.current.alpha is not None and dock.current.unsaved


def test_drop_urls_loads_images_and_folders(make_dock: Any, qtbot: Any, model_id: str, subject_png: Any) -> None:
    path, _ = subject_png
    second = path.parent / "second.png"
    cv2.imwrite(str(second), subject_image(H, W, seed=5)[0])
    dock = make_dock()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path.parent))])
    pos = QPoint(50, 50)
    enter = QDragEnterEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(dock, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(dock, drop)
    assert sorted(e.name for e in dock.entries) == ["second.png", "subject.png"]
    qtbot.waitUntil(lambda: dock.current is not None and dock.current.image is not None, timeout=WAIT)
    # Dropping the same file again adds nothing.
    mime2 = QMimeData()
    mime2.setUrls([QUrl.fromLocalFile(str(path))])
    QApplication.sendEvent(
        dock,
        QDropEvent(
            QPointF(pos), Qt.DropAction.CopyAction, mime2, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        ),
    )
    assert len(dock.entries) == 2


def test_batch_through_the_dock_lists_skipped_files(make_dock: Any, qtbot: Any, model_id: str, tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.png"), subject_image(H, W, seed=i)[0])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg at all")
    out = tmp_path / "out"
    dock = make_dock()
    dock.set_background(Background(kind="color", color=(0, 255, 0)))
    with qtbot.waitSignal(dock.job_done, timeout=WAIT * 2, check_params_cb=lambda kind, ok: kind == "batch"):
        assert dock.batch_folder(folder, out) is not None
        assert dock.job_runner.progress_row.isVisibleTo(dock)
    report = dock.last_report
    assert len(report.done) == 3 and len(report.failed) == 1
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}-nobg.png" for i in range(3)]
    assert "3 images saved" in dock.last_message and "1 skipped" in dock.last_message
    assert dock.skipped.isVisibleTo(dock)
    assert dock.skipped.list.count() == 1 and "corrupt.jpg" in dock.skipped.list.item(0).text()
    assert not dock.job_runner.progress_row.isVisibleTo(dock)
    # The coloured background went into the files (no transparency left).
    with Image.open(out / "img0-nobg.png") as im:
        rgb = np.asarray(im.convert("RGBA"))
    assert rgb[2, 2, 3] == 255 and rgb[2, 2, 1] > 200 and rgb[2, 2, 0] < 60


def test_live_with_an_injected_camera(make_dock: Any, qtbot: Any, model_id: str, tmp_path: Path) -> None:
    cameras: list[GeneratedCamera] = []

    def factory() -> GeneratedCamera:
        camera = GeneratedCamera(W, H, fps=30, paced=True)
        cameras.append(camera)
        return camera

    dock = make_dock(extras={"camera_factory": factory})
    assert dock.start_live()
    assert dock.stack.currentWidget() is dock.live_page
    qtbot.waitUntil(lambda: dock.live_view.frames_shown >= 3, timeout=WAIT)
    assert dock.live_view.frame.shape[:2] == (H, W)
    qtbot.waitUntil(lambda: "fps" in dock.live_view.overlay and "latency" in dock.live_view.overlay, timeout=WAIT)
    # Record a few frames to MP4.
    video = tmp_path / "live.mp4"
    assert dock.toggle_recording(video)
    shown = dock.live_view.frames_shown
    qtbot.waitUntil(lambda: dock.live_view.frames_shown >= shown + 5, timeout=WAIT)
    with qtbot.waitSignal(dock.matting_worker.recording_saved, timeout=WAIT):
        assert dock.toggle_recording() is False
    assert video.is_file() and video.stat().st_size > 0
    dock.stop_live()
    assert not dock.live_running
    assert cameras and cameras[0].close_count == 1
    assert dock.stack.currentWidget() is dock.empty_page


def test_video_file_through_the_dock(make_dock: Any, qtbot: Any, model_id: str, tmp_path: Path) -> None:
    import av

    src = tmp_path / "clip.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(subject_image(H, W, seed=i)[0], format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    dock = make_dock()
    assert dock.open_video(src, src) is None
    assert "never overwritten" in dock.last_message
    dst = tmp_path / "clip-nobg.webm"
    with qtbot.waitSignal(dock.job_done, timeout=WAIT * 2, check_params_cb=lambda kind, ok: kind == "video"):
        assert dock.open_video(src, dst) is not None
    assert dst.is_file() and "Video saved" in dock.last_message
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9")


def test_canvas_divider_pan_and_partial_repaints(qtbot: Any) -> None:
    from snowai_studio.matting.canvas import MattingCanvas

    canvas = MattingCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 300)
    canvas.show()
    qtbot.waitExposed(canvas)
    bgr, truth = subject_image(600, 800)
    alpha = truth.copy()
    canvas.set_image(bgr, alpha)
    assert canvas.zoom < 1.0  # fitted

    # Drag the before/after divider.
    x = round(canvas.divider_x())
    y = canvas.height() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.mouseMove(canvas, QPoint(x + 60, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x + 60, y))
    assert abs(canvas.split - (x + 60) / canvas.width()) < 0.01

    # Middle-button pan moves the image, not the mask.
    before = canvas.image_rect().topLeft()
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(130, 120))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(130, 120))
    after = canvas.image_rect().topLeft()
    assert (after.x() - before.x(), after.y() - before.y()) == (30, 20)
    assert np.array_equal(alpha, truth)

    # A stroke changes only the pixels under the brush and asks to repaint only that part.
    canvas.set_tool("erase")
    stroke = canvas.apply_stroke([(400.0, 300.0), (420.0, 300.0)], radius=10)
    assert stroke is not None and stroke.box is not None
    x0, y0, x1, y1 = stroke.box
    changed = np.argwhere(alpha != truth)
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1
    rect = canvas.last_update_rect
    assert rect.width() < canvas.width() / 4 and rect.height() < canvas.height() / 4
    # Mask view shows the alpha itself.
    canvas.set_view_mode("mask")
    canvas.repaint()


def test_background_choices_preview(
    make_dock: Any, qtbot: Any, model_id: str, subject_png: Any, tmp_path: Path
) -> None:
    dock = make_dock()
    open_and_wait(qtbot, dock, subject_png[0])
    remove_and_wait(qtbot, dock)
    dock.set_background(Background(kind="color", color=(0, 0, 255)))
    layer = dock.canvas._layer
    assert layer is not None and tuple(layer[0, 0]) == (255, 0, 0)  # BGR
    assert dock.background_combo.currentData() == "color"
    dock.set_background(Background(kind="blur", blur=15))
    qtbot.waitUntil(lambda: dock.canvas._layer is not None and dock.canvas._layer[0, 0, 0] != 255, timeout=WAIT)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    assert not dock.set_background_image(bad)
    assert "bad.jpg" in dock.last_message and dock.background_combo.currentData() == "blur"
    good = tmp_path / "bg.png"
    cv2.imwrite(str(good), np.full((20, 30, 3), (0, 200, 0), np.uint8))
    assert dock.set_background_image(good)
    qtbot.waitUntil(lambda: dock.canvas._layer is not None and dock.canvas._layer[0, 0, 1] == 200, timeout=WAIT)
    dock.set_background(Background())
    assert dock.canvas._layer is None


def test_live_camera_from_settings_that_fails_gives_a_sentence(
    make_dock: Any, qtbot: Any, model_id: str, tmp_path: Path
) -> None:
    dock = make_dock()
    dock.context.settings.devices.camera = str(tmp_path / "missing-camera.mp4")
    assert dock.start_live()
    qtbot.waitUntil(lambda: not dock.live_running, timeout=WAIT)
    assert "missing-camera.mp4 was not found" in dock.last_message
    assert dock.last_level == "error"
    assert dock.stack.currentWidget() is dock.empty_page
    assert not dock.live_action.isChecked()
