"""Fault injection: cameras and microphones that fail while they stream.

Fakes (``workers/media/fakes.py``) raise after N frames or blocks, hang inside ``read`` (until closed,
or for good), go quiet (a microphone that hands out nothing) or end. Proved for the media workers and
for the live view of each live tool (face swap, background removal, assistant listening, voice
conversion): one sentence says what happened ("The camera stopped sending pictures." / "The
microphone stopped sending sound."), a Retry button restarts the device and the stream with the same
settings, the other tools keep running, no reader thread is left spinning, and stopping stays prompt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matting_fixtures import build_u2net_like
from page_fixtures import studio_context

from workers import base
from workers.errors import UserError
from workers.media.fakes import (
    ArrayMicrophone,
    FailingCamera,
    FailingMicrophone,
    GeneratedCamera,
    MemorySink,
    StallingCamera,
    StallingMicrophone,
)
from workers.media.watch import CAMERA_STALLED, MICROPHONE_STALLED, DeviceStalled, WatchedSource
from workers.media.worker import CameraWorker, MicrophoneWorker
from workers.models.store import ModelStore

WAIT = 60000


@pytest.fixture(autouse=True)
def quick_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device counts as stalled after 1 s without an item (3 s in the studio)."""
    monkeypatch.setattr(WatchedSource, "stall_seconds", 1.0)
    monkeypatch.setattr(WatchedSource, "first_item_seconds", 3.0)


@pytest.fixture
def workers() -> Iterator[list[base.Worker]]:
    made: list[base.Worker] = []
    yield made
    for w in made:
        assert w.stop(3000)


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith(" reader") and t.is_alive()]


class Seen:
    def __init__(self, worker: base.Worker) -> None:
        self.errors: list[str] = []
        self.halted: list[str] = []
        self.ended = 0
        worker.error.connect(self.errors.append)
        worker.stream_halted.connect(self.halted.append)
        ended = getattr(worker, "ended", None)
        if ended is not None:
            ended.connect(self._end)

    def _end(self) -> None:
        self.ended += 1


# ---- the media workers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "outcome"),
    [
        (lambda: FailingCamera(fail_after=5), "raises"),
        (lambda: StallingCamera(5, "block"), "stalls"),
        (lambda: StallingCamera(5, "end"), "ends"),
    ],
    ids=["raises", "hangs-in-read", "ends"],
)
def test_camera_that_fails_mid_stream(qtbot: Any, workers: list[base.Worker], make: Any, outcome: str) -> None:
    cam = make()
    worker = CameraWorker(lambda: cam)
    workers.append(worker)
    seen = Seen(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.state == "ended", timeout=WAIT)
    assert worker.frames == 5
    assert cam.close_count == 1, "the device is released as soon as it fails"
    if outcome == "ends":
        assert seen.ended == 1 and not seen.errors and not seen.halted
    else:
        assert len(seen.errors) == 1 and len(seen.halted) == 1 and "Traceback" not in seen.errors[0]
        expected = CAMERA_STALLED if outcome == "stalls" else "stopped sending frames"
        assert expected in seen.halted[0]
    assert not readers(), "no reader thread is left"
    t0 = time.monotonic()
    assert worker.stop(3000)
    assert time.monotonic() - t0 < 2.0
    assert cam.close_count == 1


def test_a_camera_stuck_for_good_does_not_keep_stop_waiting(qtbot: Any, workers: list[base.Worker]) -> None:
    cam = StallingCamera(3, "block", release_on_close=False)  # a driver whose read never returns
    worker = CameraWorker(lambda: cam)
    seen = Seen(worker)
    worker.start()
    assert cam.stalled.wait(10)
    # Stopped while the read hangs (before the stall is even noticed): stop still returns promptly.
    t0 = time.monotonic()
    assert worker.stop(5000)
    assert time.monotonic() - t0 < 4.0
    assert cam.close_count == 1 and not worker.thread_running
    assert not seen.errors, "stopping is not a failure"
    assert cam.stall.hanging.is_set()  # the driver is still stuck: its reader thread was left behind
    cam.release()  # the driver comes back at last: the thread ends by itself
    deadline = time.monotonic() + 5
    while readers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not readers()


def test_stopping_a_camera_that_is_still_opening_is_prompt_and_releases_it_later(
    qtbot: Any, workers: list[base.Worker]
) -> None:
    class SlowToOpen(GeneratedCamera):
        def open(self) -> None:
            time.sleep(2.0)  # a driver that takes its time
            super().open()

    cam = SlowToOpen(64, 48, 30)
    worker = CameraWorker(lambda: cam)
    seen = Seen(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.state == "loading", timeout=WAIT)
    t0 = time.monotonic()
    assert worker.stop(5000)
    assert time.monotonic() - t0 < 1.8, "stop waited for the driver"
    assert not seen.errors, "stopping is not a failure"
    deadline = time.monotonic() + 5
    while (readers() or cam.close_count == 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cam.open_count == 1 and cam.close_count == 1 and not cam.is_open  # released once it opened
    assert not readers()


@pytest.mark.parametrize(
    ("make", "outcome"),
    [
        (lambda: FailingMicrophone(fail_after=4, paced=False), "raises"),
        (lambda: StallingMicrophone(4, "silent", paced=False), "stalls"),
        (lambda: StallingMicrophone(4, "block", paced=False), "stalls"),
        (lambda: StallingMicrophone(4, "end", paced=False), "ends"),
    ],
    ids=["raises", "goes-quiet", "hangs-in-read", "ends"],
)
def test_microphone_that_fails_mid_stream(qtbot: Any, workers: list[base.Worker], make: Any, outcome: str) -> None:
    mic = make()
    worker = MicrophoneWorker(lambda: mic)
    workers.append(worker)
    seen = Seen(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.state == "ended", timeout=WAIT)
    assert worker.blocks == 4
    assert mic.close_count == 1
    if outcome == "ends":
        assert seen.ended == 1 and not seen.errors
    else:
        assert len(seen.errors) == 1 and len(seen.halted) == 1
        expected = MICROPHONE_STALLED if outcome == "stalls" else "stopped sending sound"
        assert expected in seen.halted[0]
    assert not readers()


def test_a_device_that_returns_at_once_does_not_make_the_reader_spin() -> None:
    class Instant:
        samplerate, channels, blocksize, ended = 16000, 1, 512, False

        def __init__(self) -> None:
            self.reads = 0

        def open(self) -> None:
            pass

        def read(self, timeout: float | None = None) -> None:
            self.reads += 1
            return None  # no block, at once, forever

        def close(self) -> None:
            pass

    inner = Instant()
    source = WatchedSource(inner, "microphone", stall_seconds=5.0)
    source.open()
    try:
        time.sleep(1.0)
        assert inner.reads < 60, f"{inner.reads} reads in one second: the reader spins"
    finally:
        source.close()
    assert not source.reader_alive


def test_watched_source_says_stalled_in_a_sentence() -> None:
    source = WatchedSource(StallingMicrophone(2, "silent", paced=False), "microphone", stall_seconds=0.3)
    failures: list[str] = []
    source.on_failure = failures.append
    source.open()
    got = 0
    with pytest.raises(DeviceStalled) as info:
        while True:
            if source.read(0.05) is not None:
                got += 1
    source.close()
    assert got == 2
    assert str(info.value) == MICROPHONE_STALLED and failures == [MICROPHONE_STALLED]
    assert isinstance(info.value, UserError)


def test_a_device_that_cannot_open_is_one_sentence(qtbot: Any, workers: list[base.Worker]) -> None:
    worker = CameraWorker(lambda: FailingCamera(fail_on_open=True, message="The camera is busy."))
    workers.append(worker)
    seen = Seen(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.state == "failed", timeout=WAIT)
    assert seen.errors == ["Camera could not start: The camera is busy."]
    assert not readers()


# ---- the live views ----------------------------------------------------------------------------------


class Cameras:
    """A camera factory: the first camera is the broken one, the ones made after it work."""

    def __init__(self, broken: Any) -> None:
        self.broken = broken
        self.made: list[Any] = []

    def __call__(self) -> Any:
        cam = self.broken() if not self.made else GeneratedCamera(64, 48, 30)
        self.made.append(cam)
        return cam


class FakeFacePipeline:
    engine_name = "test"
    warning = None

    def __init__(self, *_args: Any) -> None:
        self.timings: dict[str, float] = {}

    def load(self) -> None:
        pass

    def process(self, frame: np.ndarray) -> np.ndarray:
        return frame

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


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        (lambda: StallingCamera(8, "block", paced=True), "The camera stopped sending pictures."),
        (lambda: StallingCamera(8, "end", paced=True), "The camera stopped sending pictures."),
        (lambda: FailingCamera(fail_after=8, paced=True), "The camera stopped sending frames."),
    ],
    ids=["hangs", "ends", "raises"],
)
def test_matting_live_view_says_the_camera_stopped_and_retry_restarts_it(
    qtbot: Any, tmp_path: Path, broken: Any, said: str
) -> None:
    from snowai_studio.matting.page import MattingPage

    store = ModelStore(tmp_path / "models")
    store.import_file(build_u2net_like(tmp_path / "src" / "m.onnx"), "matting", name="Test model")
    cameras = Cameras(broken)
    ctx = studio_context(store, {"camera_factory": cameras})
    dock = MattingPage(ctx)
    qtbot.addWidget(dock)
    dock.resize(800, 600)
    dock.show()
    try:
        assert dock.start_live()
        qtbot.waitUntil(lambda: dock.live_problem.active, timeout=WAIT)
        assert dock.live_problem.text.startswith(said)
        assert dock.live_problem.retry_button.isVisibleTo(dock)
        assert dock.stack.currentWidget() is dock.live_page and not dock.live_running
        assert cameras.made[0].close_count == 1
        assert dock.last_level == "error" and "Traceback" not in dock.last_message
        assert not [w for w in base.live_workers() if w.name == "Camera"], "the camera's thread was joined"
        assert not readers()
        dock.live_problem.retry_button.click()
        assert dock.live_running and not dock.live_problem.active
        shown = dock.live_view.frames_shown
        qtbot.waitUntil(lambda: dock.live_view.frames_shown >= shown + 3, timeout=WAIT)
        assert len(cameras.made) == 2
        dock.stop_live()
        assert dock.stack.currentWidget() is not dock.live_page
    finally:
        dock.shutdown()
        ctx.notifications.uninstall_hooks()
    assert all(c.close_count == 1 for c in cameras.made)


def test_face_swap_live_view_says_the_camera_stopped_and_retry_restarts_it(qtbot: Any, tmp_path: Path) -> None:
    from snowai_studio.face_swap.page import FaceSwapPage

    cameras = Cameras(lambda: StallingCamera(6, "block", paced=True))
    ctx = studio_context(
        ModelStore(tmp_path / "models"),
        {
            "camera_factory": cameras,
            "face_swap_pipeline_factory": FakeFacePipeline,
            "face_swap_consent": lambda p: True,
        },
    )
    dock = FaceSwapPage(ctx)
    qtbot.addWidget(dock)
    dock.show()
    try:
        assert dock.start_live()
        qtbot.waitUntil(lambda: dock.live_problem.active, timeout=WAIT)
        assert dock.live_problem.text == CAMERA_STALLED
        assert not dock.live_running and not dock.live_button.isChecked()
        assert dock.preview.frames_shown >= 1  # the last picture stays
        assert cameras.made[0].close_count == 1 and not readers()
        t0 = time.monotonic()
        dock.live_problem.retry_button.click()
        assert dock.live_running and dock.live_button.isChecked()
        shown = dock.preview.frames_shown
        qtbot.waitUntil(lambda: dock.preview.frames_shown >= shown + 3, timeout=WAIT)
        dock.stop_live()
        assert time.monotonic() - t0 < WAIT / 1000
    finally:
        dock.shutdown()
        ctx.notifications.uninstall_hooks()
    assert all(c.close_count == 1 for c in cameras.made)


class Microphones:
    """A microphone factory: the first one is broken, later ones play a tone for a long time."""

    def __init__(self, broken: Any, rate: int = 16000) -> None:
        self.broken = broken
        self.rate = rate
        self.made: list[Any] = []

    def __call__(self, *_args: Any) -> Any:
        if not self.made:
            mic = self.broken()
        else:
            t = np.arange(self.rate * 30) / self.rate
            mic = ArrayMicrophone((0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), self.rate, self.rate, 512)
        self.made.append(mic)
        return mic


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        (lambda: StallingMicrophone(6, "silent"), MICROPHONE_STALLED),
        (lambda: FailingMicrophone(fail_after=6), "The microphone stopped sending sound. It may have been unplugged."),
    ],
    ids=["goes-quiet", "raises"],
)
def test_voice_conversion_live_says_the_microphone_stopped_and_retry_restarts(
    qtbot: Any, tmp_path: Path, broken: Any, said: str
) -> None:
    from snowai_studio.voice_conversion import create_page

    mics = Microphones(broken)
    sinks: list[MemorySink] = []

    def speaker(*_args: Any) -> MemorySink:
        sinks.append(MemorySink(16000, 1))
        return sinks[-1]

    ctx = studio_context(ModelStore(tmp_path / "models"), {"microphone_factory": mics, "speaker_factory": speaker})
    dock = create_page(ctx)
    qtbot.addWidget(dock)
    dock.show()
    # Another tool listening at the same time: a healthy microphone worker keeps going.
    other_mic = ArrayMicrophone(np.zeros(16000 * 60, np.float32), 16000, 16000, 512, loop=True)
    other = MicrophoneWorker(lambda: other_mic, name="Other microphone")
    other.start()
    try:
        dock.apply_preset("gpu")
        assert dock.start_live()
        qtbot.waitUntil(lambda: dock.live_problem.active, timeout=WAIT)
        assert said in dock.live_problem.text
        assert not dock.live_running and dock.start_button.text() == "Start live"
        assert mics.made[0].close_count >= 1 and sinks[0].close_count >= 1
        assert not readers() or [t.name for t in readers()] == ["Other microphone reader"]
        blocks = other.blocks
        qtbot.waitUntil(lambda: other.blocks > blocks + 5, timeout=WAIT)
        assert other.state == "ready" and other.halted is None
        with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT) as started:
            dock.live_problem.retry_button.click()
        assert started.args == [True] and dock.live_running and not dock.live_problem.active
        qtbot.waitUntil(lambda: sinks[-1].frames > 16000 // 4, timeout=WAIT)
        dock.stop_live()
    finally:
        assert other.stop(3000)
        dock.shutdown()
        ctx.notifications.uninstall_hooks()
    assert all(m.close_count >= 1 for m in mics.made)
    assert not readers()


class QuickASR:
    """Speech recognition that hears one fixed sentence (the live path needs no real Whisper)."""

    name = "Test recogniser"

    def transcribe(self, audio: Any, language: Any = None) -> Any:
        from workers.assistant.asr import Transcript

        return Transcript("Hello there.", duration=len(audio) / 16000, seconds=0.01)


class QuietVoice:
    """A voice that speaks silence quickly."""

    name = "Test voice"
    sample_rate = 16000

    def synthesize(self, text: str, cancel: Any = None) -> Iterator[np.ndarray]:
        yield np.zeros(1600, np.float32)


class ScriptedLLM:
    name = "Scripted test model"
    backend = "test"
    note = ""

    def stream(self, messages: Any, **_kw: Any) -> Iterator[str]:
        yield from ("Paris ", "is ", "the ", "capital.")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def quick_components(options: Any, **kw: Any) -> Any:
    from assistant_fixtures import shipped_store

    from workers.assistant.pipeline import Components
    from workers.assistant.vad import SileroVAD

    return Components(SileroVAD(store=shipped_store()), QuickASR(), ScriptedLLM(), QuietVoice())


def test_assistant_listening_says_the_microphone_stopped_and_retry_reopens_it(qtbot: Any) -> None:
    from assistant_fixtures import shipped_store

    from snowai_studio.assistant.page import AssistantPage
    from workers.media.fakes import PacedSpeaker

    mics = Microphones(lambda: StallingMicrophone(10, "block"))
    out = PacedSpeaker(48000, buffer_seconds=0.1)
    ctx = studio_context(
        shipped_store(),
        {
            "assistant_components_factory": quick_components,
            "speaker_factory": lambda: out,
            "microphone_factory": mics,
        },
    )
    dock = AssistantPage(ctx)
    qtbot.addWidget(dock)
    dock.show()
    try:
        assert dock.start_listening()
        qtbot.waitUntil(lambda: dock.live_problem.active, timeout=WAIT)
        assert dock.live_problem.text == MICROPHONE_STALLED
        assert MICROPHONE_STALLED not in dock.message_line.label.text()  # said once, on the microphone line
        assert not dock.listening and not dock.listen_button.isChecked()
        qtbot.waitUntil(lambda: mics.made[0].close_count == 1, timeout=WAIT)  # released, the hung read broken
        # Typed questions still work while the microphone is away.
        assert dock.send_text("What is the capital of France?")
        qtbot.waitUntil(lambda: any(e.kind == "done" for e in dock.events), timeout=WAIT)
        dock.live_problem.retry_button.click()
        assert dock.listening and not dock.live_problem.active
        qtbot.waitUntil(lambda: len(mics.made) == 2 and mics.made[1].open_count == 1, timeout=WAIT)
        qtbot.waitUntil(lambda: dock.level_meter.updates > 2, timeout=WAIT)
        dock.stop_listening()
        qtbot.waitUntil(lambda: mics.made[1].close_count == 1, timeout=WAIT)
    finally:
        dock.shutdown()
        ctx.notifications.uninstall_hooks()
    assert not readers()
    assert not [w.name for w in base.live_workers() if w.name == "Assistant"]
