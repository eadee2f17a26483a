"""Fault injection: the disk fills up while a file is being written.

The low-level write each exporter uses is replaced by one that writes part of the data and then
raises ``OSError(ENOSPC)``: ``os.fdopen`` files for the atomic writer (image exports, batches,
face-swap images, conversations, transcripts, spoken WAVs), the PyAV container's ``mux`` for videos
and live recordings, ``soundfile.write`` for converted audio, ``Path.write_text`` for the settings.
Every exporter must then say "The disk is full: …" in one sentence, leave nothing half-written under
the final name (it writes a temporary file in the same folder and renames it when complete; the
temporary file is removed on failure) and keep the previous file of that name as it was.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matting_fixtures import build_u2net_like, subject_image
from page_fixtures import shown, studio_context

from snowai_studio.context import StudioContext
from snowai_studio.notifications import NotificationManager
from workers import base
from workers.files import disk_full_sentence, is_disk_full, save_bytes
from workers.media.fakes import GeneratedCamera
from workers.models.store import ModelStore
from workers.settings import Settings

WAIT = 60000
OLD = b"the previous file, kept as it was"


def enospc(path: Any = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path else None)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` other than ``keep``: temporaries or half-written outputs."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


class _HalfFile:
    """A file object that writes half of the first write that would fill the disk, then fails."""

    def __init__(self, inner: Any, budget: int) -> None:
        self._inner = inner
        self._budget = budget

    def write(self, data: bytes) -> int:
        if len(data) > self._budget:
            self._inner.write(data[: self._budget])
            self._inner.flush()
            self._budget = 0
            raise enospc()
        self._budget -= len(data)
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _HalfFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``full_disk(folder, budget=100)``: files opened through ``os.fdopen`` in ``folder`` take
    ``budget`` bytes, then fail with ENOSPC part-way through a write."""

    def arm(folder: Path, budget: int = 100) -> None:
        real = os.fdopen
        where = str(Path(folder).resolve())

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            handle = real(fd, *args, **kwargs)
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return handle
            if target.startswith(where) and "w" in (args[0] if args else kwargs.get("mode", "r")):
                return _HalfFile(handle, budget)
            return handle

        monkeypatch.setattr(os, "fdopen", fdopen)

    return arm


class _FullContainer:
    """A PyAV output container whose disk fills up after ``packets`` muxed packets; from then on every
    write fails, the file's trailer (written by ``close``) included."""

    def __init__(self, inner: Any, packets: int, path: str) -> None:
        self._inner = inner
        self._left = packets
        self._path = path
        self.full = False

    def _error(self) -> Exception:
        import av

        self.full = True
        return av.error.OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    def mux(self, packets: Any) -> None:
        items = list(packets) if isinstance(packets, list | tuple) else [packets]
        for packet in items:
            if self._left <= 0:
                raise self._error()
            self._left -= 1
            self._inner.mux(packet)

    def close(self) -> None:
        self._inner.close()
        if self.full:
            raise self._error()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FullContainer:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._inner.close()
        if self.full and exc_type is None:
            raise self._error()


@pytest.fixture
def full_disk_video(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``full_disk_video(folder, packets=3)``: PyAV files written in ``folder`` fail with ENOSPC after
    ``packets`` packets (what FFmpeg raises when the disk fills up)."""

    def arm(folder: Path, packets: int = 3) -> None:
        import av

        import workers.media.video as video

        where = str(Path(folder).resolve())

        class Av:
            def __getattr__(self, name: str) -> Any:
                return getattr(av, name)

            def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
                container = av.open(file, mode, *args, **kwargs)
                if "w" in mode and str(Path(str(file)).resolve()).startswith(where):
                    return _FullContainer(container, packets, str(file))
                return container

        monkeypatch.setattr(video, "_av", lambda: Av())

    return arm


def make_clip(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(subject_image(h, w, seed=i)[0], format="bgr24")
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def assert_disk_full_sentence(message: str) -> None:
    assert "The disk is full" in message, message
    assert "Traceback" not in message and "Errno" not in message and "\n" not in message.strip()


# ---- the helpers themselves ---------------------------------------------------------------------------------


def test_save_bytes_keeps_the_old_file_and_says_the_disk_is_full(tmp_path: Path, full_disk: Any) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(OLD)
    full_disk(tmp_path, budget=10)
    with pytest.raises(Exception) as info:
        save_bytes(target, b"x" * 5000)
    assert_disk_full_sentence(str(info.value))
    assert str(info.value).startswith("The disk is full: out.png could not be saved in")
    assert target.read_bytes() == OLD and leftovers(tmp_path, {"out.png"}) == []


def test_disk_full_is_recognised_through_the_libraries_wrappers() -> None:
    import av

    from workers.errors import UserError

    try:
        try:
            raise av.error.OSError(errno.ENOSPC, "No space left on device", "x.mp4")
        except av.FFmpegError:
            raise UserError("clip.mp4 could not be converted to MP4: no space left on device.") from None
    except UserError as exc:
        assert is_disk_full(exc)
        assert disk_full_sentence(str(exc)) == (
            "The disk is full: clip.mp4 could not be converted to MP4. Free some space and try again."
        )
    assert not is_disk_full(ValueError("nothing to do with disks"))


# ---- background removal -----------------------------------------------------------------------------------


@pytest.fixture
def matting_dock(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    from snowai_studio.matting.page import MattingPage

    store = ModelStore(tmp_path / "models")
    store.import_file(build_u2net_like(tmp_path / "src" / "m.onnx"), "matting", name="Test model")
    ctx = studio_context(store, {"camera_factory": lambda: GeneratedCamera(64, 48, 30)})
    dock = shown(qtbot, MattingPage(ctx), 800, 600)
    yield dock
    dock.shutdown()
    ctx.notifications.uninstall_hooks()


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_matting_export_on_a_full_disk(
    qtbot: Any, tmp_path: Path, matting_dock: Any, full_disk: Any, suffix: str
) -> None:
    import cv2

    dock = matting_dock
    photo = tmp_path / "photos" / "subject.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), subject_image(48, 64)[0])
    dock.open_images([photo])
    qtbot.waitUntil(lambda: dock.current is not None and dock.current.image is not None, timeout=WAIT)
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "remove"):
        dock.remove_background()
    out = tmp_path / "exports"
    out.mkdir()
    target = out / f"subject-nobg{suffix}"
    target.write_bytes(OLD)
    full_disk(out)
    with qtbot.waitSignal(dock.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "export") as done:
        dock.export_image(target)
    assert done.args == ["export", False]
    assert_disk_full_sentence(dock.last_message)
    assert dock.last_message.startswith(f"The disk is full: subject-nobg{suffix} could not be saved")
    assert target.read_bytes() == OLD and leftovers(out, {target.name}) == []


def test_matting_batch_on_a_full_disk(qtbot: Any, tmp_path: Path, full_disk: Any) -> None:
    import cv2

    from workers.matting.compose import Background
    from workers.matting.options import MattingOptions
    from workers.matting.worker import MattingWorker

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.png"), subject_image(48, 64, seed=i)[0])
    out = tmp_path / "photos-nobg"
    out.mkdir()
    (out / "img0-nobg.png").write_bytes(OLD)
    model = build_u2net_like(tmp_path / "m.onnx")
    worker = MattingWorker(ModelStore(tmp_path / "store"), MattingOptions(model=str(model)))
    try:
        with qtbot.waitSignal(worker.ready, timeout=WAIT):
            worker.start()
        full_disk(out)
        with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as done:
            worker.batch(sorted(folder.iterdir()), out, Background(), "png")
        report = done.args[1]
    finally:
        worker.stop()
    assert not report.done and len(report.failed) == 3
    for _src, message in report.failed:
        assert_disk_full_sentence(message)
    assert report.stopped.startswith("The disk is full")  # the batch stops instead of trying every image
    assert (out / "img0-nobg.png").read_bytes() == OLD
    assert leftovers(out, {"img0-nobg.png"}) == []


def test_matting_video_export_on_a_full_disk(
    qtbot: Any, tmp_path: Path, matting_dock: Any, full_disk_video: Any
) -> None:
    dock = matting_dock
    src = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "videos"
    out.mkdir()
    dst = out / "clip-nobg.mp4"
    dst.write_bytes(OLD)
    full_disk_video(out, packets=2)
    with qtbot.waitSignal(dock.job_done, timeout=WAIT * 2, check_params_cb=lambda kind, ok: kind == "video") as done:
        dock.open_video(src, dst)
    assert done.args == ["video", False]
    assert_disk_full_sentence(dock.last_message)
    assert dst.read_bytes() == OLD and leftovers(out, {dst.name}) == []


def test_live_recording_on_a_full_disk(qtbot: Any, tmp_path: Path, matting_dock: Any, full_disk_video: Any) -> None:
    dock = matting_dock
    out = tmp_path / "recordings"
    out.mkdir()
    target = out / "live.mp4"
    target.write_bytes(OLD)
    full_disk_video(out, packets=5)
    assert dock.start_live()
    qtbot.waitUntil(lambda: dock.live_view.frames_shown >= 2, timeout=WAIT)
    failed: list[str] = []
    dock.matting_worker.recording_failed.connect(failed.append)
    assert dock.toggle_recording(target)
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT)
    qtbot.waitUntil(lambda: not dock.record_button.isChecked(), timeout=WAIT)
    assert_disk_full_sentence(failed[0])
    assert "recording stopped" in failed[0]
    assert not dock.matting_worker.recording
    # The live view goes on; the recording left no half file and the old one is intact.
    shown = dock.live_view.frames_shown
    qtbot.waitUntil(lambda: dock.live_view.frames_shown >= shown + 5, timeout=WAIT)
    assert dock.live_running and not dock.live_problem.active
    assert target.read_bytes() == OLD and leftovers(out, {target.name}) == []
    dock.stop_live()


# ---- face swap ----------------------------------------------------------------------------------------------


class SwapAll:
    """A face-swap pipeline that 'swaps' by inverting the picture and reports one face."""

    engine_name = "test"
    warning = None
    timings: dict[str, float] = {}

    def __init__(self, *_args: Any) -> None:
        pass

    def load(self) -> None:
        pass

    def swap_image(self, image: np.ndarray) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(
            image=255 - image, faces_found=1, faces_swapped=1, engine="test", ms={}, warning=None
        )

    def process(self, frame: np.ndarray) -> np.ndarray:
        return 255 - frame

    def set_source(self, images: Any) -> None:
        pass

    def set_reference(self, image: Any) -> None:
        pass

    def detect(self, image: Any) -> list[Any]:
        return []

    def set_param(self, name: str, value: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def face_worker(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    from workers.face_swap.worker import FaceSwapWorker

    worker = FaceSwapWorker(ModelStore(tmp_path / "store"), pipeline_factory=SwapAll)
    with qtbot.waitSignal(worker.ready, timeout=WAIT):
        worker.start()
    worker._source_images = [np.zeros((8, 8, 3), np.uint8)]  # a source face, as set_source leaves it
    yield worker
    assert worker.stop()


def test_face_swap_image_export_on_a_full_disk(qtbot: Any, tmp_path: Path, face_worker: Any, full_disk: Any) -> None:
    import cv2

    src = tmp_path / "target.png"
    cv2.imwrite(str(src), subject_image(48, 64)[0])
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "swapped.png"
    dst.write_bytes(OLD)
    full_disk(out)
    with qtbot.waitSignal(face_worker.job_failed, timeout=WAIT) as failed:
        face_worker.swap_image(src, dst)
    assert failed.args[1].startswith("Face swap: The disk is full: swapped.png could not be saved")
    assert_disk_full_sentence(failed.args[1])
    assert dst.read_bytes() == OLD and leftovers(out, {dst.name}) == []


def test_face_swap_video_export_on_a_full_disk(
    qtbot: Any, tmp_path: Path, face_worker: Any, full_disk_video: Any
) -> None:
    src = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "swapped.mp4"
    dst.write_bytes(OLD)
    full_disk_video(out, packets=4)
    with qtbot.waitSignal(face_worker.job_failed, timeout=WAIT) as failed:
        face_worker.swap_video(src, dst)
    assert failed.args[1].startswith("Face swap: The disk is full:")
    assert_disk_full_sentence(failed.args[1])
    assert dst.read_bytes() == OLD and leftovers(out, {dst.name}) == []


def test_face_swap_recording_on_a_full_disk(qtbot: Any, tmp_path: Path, face_worker: Any, full_disk_video: Any) -> None:
    from workers.media.worker import CameraWorker

    out = tmp_path / "rec"
    out.mkdir()
    target = out / "take.mp4"
    target.write_bytes(OLD)
    full_disk_video(out, packets=3)
    failed: list[str] = []
    face_worker.recording_failed.connect(failed.append)
    results: list[Any] = []
    face_worker.result_ready.connect(lambda: results.append(face_worker.take_result()))
    camera = CameraWorker(lambda: GeneratedCamera(64, 48, 30))
    camera.add_subscriber(face_worker)
    camera.start()
    try:
        face_worker.start_recording(target)
        qtbot.waitUntil(lambda: bool(failed), timeout=WAIT)
        shown = len(results)
        qtbot.waitUntil(lambda: len(results) >= shown + 5, timeout=WAIT)  # the live picture goes on
    finally:
        assert camera.stop()
    assert_disk_full_sentence(failed[0])
    assert target.read_bytes() == OLD and leftovers(out, {target.name}) == []


# ---- voice conversion ---------------------------------------------------------------------------------------


def test_svc_file_conversion_on_a_full_disk(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile
    from svc_speech import write_speech

    from workers.voice_conversion.worker import VoiceConversionWorker

    src = write_speech(tmp_path / "take.wav", seconds=0.5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "take-converted.wav").write_bytes(OLD)
    real = soundfile.SoundFile.write
    where = str(out.resolve())

    def half_write(self: Any, data: Any) -> None:
        # The converted audio streams into the file: the disk fills up half way through a chunk.
        if str(Path(str(self.name)).resolve()).startswith(where):
            real(self, np.asarray(data)[: len(data) // 2])
            raise enospc(self.name)
        real(self, data)

    monkeypatch.setattr(soundfile.SoundFile, "write", half_write)
    worker = VoiceConversionWorker()
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=WAIT):
            worker.start()
        # Into the folder that already holds take-converted.wav: a new name, and the disk fills up.
        with qtbot.waitSignal(worker.job_failed, timeout=WAIT) as failed:
            worker.convert_files([src], out, "wav")
        assert_disk_full_sentence(failed.args[1])
        assert failed.args[1].startswith("Voice conversion: The disk is full: take-converted-2.wav could not be saved")
        # Over an existing file named as the target: the old one stays.
        with qtbot.waitSignal(worker.job_failed, timeout=WAIT) as failed:
            worker.convert_file(src, out / "take-converted.wav")
        assert_disk_full_sentence(failed.args[1])
    finally:
        worker.stop()
    assert (out / "take-converted.wav").read_bytes() == OLD
    assert leftovers(out, {"take-converted.wav"}) == []


# ---- the assistant ------------------------------------------------------------------------------------------


def test_assistant_conversation_save_on_a_full_disk(qtbot: Any, tmp_path: Path, full_disk: Any) -> None:
    from assistant_fixtures import shipped_store

    from snowai_studio.assistant.page import AssistantPage
    from workers.assistant.conversation import Conversation

    conversation = Conversation()
    turn = conversation.new_turn("What is the capital of France?", "text")
    turn.assistant = "Paris."
    saved = conversation.save(tmp_path / "saved.json")
    notifications = NotificationManager()
    ctx = StudioContext(Settings.load(), notifications, shipped_store(), {})
    dock = AssistantPage(ctx)
    qtbot.addWidget(dock)
    try:
        assert dock.load_conversation(saved)
        out = tmp_path / "chats"
        out.mkdir()
        for name in ("chat.json", "chat.md"):
            (out / name).write_bytes(OLD)
        full_disk(out)
        for name in ("chat.json", "chat.md"):
            assert dock.save_conversation(out / name) is None
            assert dock.last_level == "error"
            assert_disk_full_sentence(dock.last_message)
            assert dock.last_message.startswith(f"The disk is full: {name} could not be saved")
            assert (out / name).read_bytes() == OLD
        assert leftovers(out, {"chat.json", "chat.md"}) == []
    finally:
        dock.shutdown()


def test_assistant_transcribe_and_say_on_a_full_disk(
    tmp_path: Path, full_disk: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from svc_speech import write_speech

    from snowai_studio import cli

    wav = write_speech(tmp_path / "question.wav", seconds=1.0)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("text.txt", "hello.wav"):
        (out / name).write_bytes(OLD)
    full_disk(out, budget=4)
    assert cli.main(["transcribe", str(wav), "-o", str(out / "text.txt")]) == 1
    err = capsys.readouterr().err
    assert "disk is full" in err.lower() and "Traceback" not in err, err
    assert cli.main(["say", "Hello there.", "-o", str(out / "hello.wav")]) == 1
    err = capsys.readouterr().err
    assert "disk is full" in err.lower() and "Traceback" not in err, err
    for name in ("text.txt", "hello.wav"):
        assert (out / name).read_bytes() == OLD
    assert leftovers(out, {"text.txt", "hello.wav"}) == []


# ---- settings -----------------------------------------------------------------------------------------------


def fill_settings_disk(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Writes in the settings folder fail part-way, through ``Path.write_text`` (what Settings.save
    uses now) and through ``os.fdopen`` (what the atomic writer uses)."""
    real_write_text = Path.write_text
    real_fdopen = os.fdopen

    def half_write(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if self.parent == folder:
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise enospc(self)
        return real_write_text(self, data, *args, **kwargs)

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return handle
        return _HalfFile(handle, 10) if Path(target).parent == folder else handle

    monkeypatch.setattr(Path, "write_text", half_write)
    monkeypatch.setattr(os, "fdopen", fdopen)


def test_settings_save_on_a_full_disk_keeps_the_old_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load()
    path = settings.save()
    before = path.read_bytes()
    settings.theme = "dark"
    fill_settings_disk(monkeypatch, path.parent)
    with pytest.raises(OSError) as info:
        settings.save()
    assert is_disk_full(info.value)
    assert base.Worker().describe_error(info.value, "The settings could not be saved").startswith(
        "The settings could not be saved: The disk is full"
    )
    assert path.read_bytes() == before and json.loads(before)


def test_settings_save_on_a_full_disk_leaves_no_temporary_file(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load()
    path = settings.save()
    fill_settings_disk(monkeypatch, path.parent)
    with pytest.raises(OSError):
        settings.save()
    assert [p.name for p in path.parent.iterdir() if path.stem in p.name and p != path] == []
