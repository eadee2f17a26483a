"""Fault injection: a worker whose engine raises on every frame (or every other one).

The policy lives in :mod:`workers.base` and every stream worker has it: the first failure is one
``error``; the failures after it go to the log only; after ``max_consecutive_failures`` in a row (or
``max_window_failures`` of the last ``failure_window``) the engine is restarted once, and if the
failures go on the stream is halted with one more ``error`` and one ``stream_halted``. Proved here
with engine workers, with two workers running at once (the healthy one keeps going), and through the
background-removal and face-swap docks, whose live view shows the sentence with a Retry button.
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

from snowai_studio.notifications import NotificationManager
from workers import base
from workers.media.fakes import GeneratedCamera
from workers.media.worker import CameraWorker
from workers.models.store import ModelStore
from workers.queues import StreamItem

WAIT = 30000


class FlakyEngine:
    """An engine that fails on every item (``fail="always"``), on every other one (``"alternate"``),
    or never (``"never"``); ``builds`` counts how many were made by the factory."""

    name = "Flaky"

    def __init__(self, fail: str) -> None:
        self.fail = fail
        self.calls = 0
        self.closed = False

    def load(self) -> None:
        pass

    def process(self, item: Any) -> Any:
        self.calls += 1
        if self.fail == "always" or (self.fail == "alternate" and self.calls % 2 == 0):
            raise ValueError(f"the model produced NaN on frame {self.calls}")
        return item

    def set_param(self, name: str, value: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Factory:
    """Builds engines; ``modes`` says how each successive engine behaves (the last one repeats)."""

    def __init__(self, *modes: str) -> None:
        self.modes = list(modes)
        self.built: list[FlakyEngine] = []

    def __call__(self) -> FlakyEngine:
        mode = self.modes[min(len(self.built), len(self.modes) - 1)]
        engine = FlakyEngine(mode)
        self.built.append(engine)
        return engine


class Watch:
    """Records a worker's errors, halts and results (signals connected directly: any thread)."""

    def __init__(self, worker: base.Worker) -> None:
        self.errors: list[str] = []
        self.halted: list[str] = []
        self.results = 0
        self.lock = threading.Lock()
        worker.error.connect(self._error)
        worker.stream_halted.connect(self._halt)
        worker.result_ready.connect(lambda: self._result(worker))

    def _error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def _halt(self, message: str) -> None:
        with self.lock:
            self.halted.append(message)

    def _result(self, worker: base.Worker) -> None:
        if worker.take_result() is not None:
            with self.lock:
                self.results += 1


@pytest.fixture
def started() -> Iterator[Any]:
    made: list[base.Worker] = []

    def start(worker: base.Worker, **kwargs: Any) -> base.Worker:
        made.append(worker)
        worker.start(**kwargs)
        return worker

    yield start
    for w in made:
        assert w.stop(3000), f"{w.name} did not stop"
    assert not [w for w in made if w.thread_running]


def feed(qtbot: Any, worker: base.Worker, until: Any, limit: int = 400) -> int:
    """Push items one at a time (each after the previous one was handled) until ``until()``."""
    pushed = 0
    while not until() and pushed < limit:
        worker.push(StreamItem(np.zeros((4, 4, 3), np.uint8), seq=pushed))
        pushed += 1
        qtbot.waitUntil(lambda: len(worker._queue) == 0, timeout=WAIT)
        qtbot.wait(2)
    return pushed


def test_failing_on_every_frame_restarts_the_engine_once_then_halts_with_one_error(qtbot: Any, started: Any) -> None:
    manager = NotificationManager()
    manager.install_hooks()
    try:
        factory = Factory("always")
        worker = base.EngineWorker(factory, name="Flaky model")
        watch = Watch(worker)
        started(worker)
        qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
        pushed = feed(qtbot, worker, lambda: bool(watch.halted))
        qtbot.waitUntil(lambda: bool(watch.halted), timeout=WAIT)
        # Restarted once (a second engine was built and loaded), then halted.
        assert len(factory.built) == 2 and factory.built[0].closed
        failures = sum(e.calls for e in factory.built)
        assert failures == worker.max_consecutive_failures * 2 and pushed == failures
        # Exactly one halt; two errors in all (the first failure, then the halt), not one per frame.
        assert len(watch.halted) == 1
        assert watch.halted[0].startswith("Flaky model: The live stream stopped after 5 failures")
        assert "the model produced NaN" in watch.halted[0] and "Traceback" not in watch.halted[0]
        assert len(watch.errors) == 2 and watch.errors[1] == watch.halted[0]
        assert worker.halted == watch.halted[0]
        # Nothing more is processed: later frames are dropped until the stream is resumed.
        for i in range(30):
            worker.push(StreamItem(np.zeros((4, 4, 3), np.uint8), seq=1000 + i))
        qtbot.wait(200)
        assert sum(e.calls for e in factory.built) == failures
        qtbot.waitUntil(lambda: sum(1 for n in manager.items if n.source == "Flaky model") >= 2, timeout=WAIT)
        qtbot.wait(100)
        errors = [n for n in manager.items if n.source == "Flaky model" and n.level == "error"]
        assert len(errors) == 2, [n.message for n in errors]
        # Jobs still work on a halted stream.
        with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as done:
            worker.submit(lambda ctx: 42)
        assert done.args[1] == 42
    finally:
        manager.uninstall_hooks()


def test_an_engine_that_works_again_after_the_restart_keeps_streaming(qtbot: Any, started: Any) -> None:
    factory = Factory("always", "never")
    worker = base.EngineWorker(factory, name="Recovering model")
    watch = Watch(worker)
    started(worker)
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    feed(qtbot, worker, lambda: watch.results >= 10)
    assert watch.results >= 10 and not watch.halted and worker.halted is None
    assert len(factory.built) == 2 and factory.built[0].calls == worker.max_consecutive_failures
    assert len(watch.errors) == 1  # the first failure only


def test_every_other_frame_failing_halts_by_rate(qtbot: Any, started: Any) -> None:
    factory = Factory("alternate")
    worker = base.EngineWorker(factory, name="Half broken")
    watch = Watch(worker)
    started(worker)
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    pushed = feed(qtbot, worker, lambda: bool(watch.halted))
    assert watch.halted, f"not halted after {pushed} frames"
    assert len(factory.built) == 2  # one restart first
    assert len(watch.errors) == 2 and len(watch.halted) == 1
    assert "stopped after 10 failures" in watch.halted[0]


def test_resume_after_a_halt_takes_frames_again(qtbot: Any, started: Any) -> None:
    factory = Factory("always", "always", "never")
    worker = base.EngineWorker(factory, name="Retry model")
    watch = Watch(worker)
    started(worker)
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    feed(qtbot, worker, lambda: bool(watch.halted))
    assert watch.results == 0
    worker.resume_stream()  # what the Retry button does: a fresh count and one more restart allowed
    feed(qtbot, worker, lambda: watch.results >= 5)
    assert watch.results >= 5 and worker.halted is None
    assert len(factory.built) == 3


def test_two_workers_at_once_the_healthy_one_keeps_running(qtbot: Any, started: Any) -> None:
    bad_factory, good_factory = Factory("always"), Factory("never")
    bad = base.EngineWorker(bad_factory, name="Broken tool")
    good = base.EngineWorker(good_factory, name="Healthy tool")
    bad_watch, good_watch = Watch(bad), Watch(good)
    started(bad)
    started(good)
    cams = [GeneratedCamera(64, 48, 60), GeneratedCamera(64, 48, 60)]
    cam_bad = CameraWorker(lambda: cams[0], name="Camera A")
    cam_good = CameraWorker(lambda: cams[1], name="Camera B")
    cam_bad.add_subscriber(bad)
    cam_good.add_subscriber(good)
    started(cam_bad)
    started(cam_good)
    qtbot.waitUntil(lambda: bool(bad_watch.halted), timeout=WAIT)
    at_halt = good_watch.results
    qtbot.waitUntil(lambda: good_watch.results >= at_halt + 20, timeout=WAIT)
    assert not good_watch.errors and good.halted is None
    assert len(bad_watch.errors) == 2 and len(bad_watch.halted) == 1
    # The halted worker drops what its camera keeps sending: nothing piles up, nothing is processed.
    calls = sum(e.calls for e in bad_factory.built)
    qtbot.wait(300)
    assert sum(e.calls for e in bad_factory.built) == calls and len(bad._queue) == 0
    # Stopping everything is prompt and leaves no reader thread behind.
    t0 = time.monotonic()
    for w in (cam_bad, cam_good, bad, good):
        assert w.stop(3000)
    assert time.monotonic() - t0 < 10
    assert all(c.close_count == 1 for c in cams)
    assert not [t for t in threading.enumerate() if t.name.endswith(" reader") and t.is_alive()]


# ---- through the docks -------------------------------------------------------------------------------


class BrokenMatting:
    """A background-removal engine whose model fails on every frame (or works, when ``works``)."""

    works = False
    built = 0

    def __init__(self, *_args: Any, **_kw: Any) -> None:
        BrokenMatting.built += 1
        self.model_label = "Broken test model"

    def load(self) -> None:
        pass

    def predict_mask(self, bgr: np.ndarray) -> np.ndarray:
        if not BrokenMatting.works:
            raise RuntimeError("onnxruntime: Non-zero status code returned while running Conv node")
        return np.full(bgr.shape[:2], 255, np.uint8)

    def set_param(self, name: str, value: Any) -> None:
        pass

    def close(self) -> None:
        pass


class FakeFacePipeline:
    """A face-swap pipeline that hands the camera picture back (enough for the live path)."""

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


def test_matting_dock_shows_the_halt_with_retry_and_face_swap_keeps_running(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowai_studio.face_swap.page import FaceSwapPage
    from snowai_studio.matting.page import MattingPage

    store = ModelStore(tmp_path / "models")
    model = store.import_file(build_u2net_like(tmp_path / "src" / "m.onnx"), "matting", name="Test model")
    monkeypatch.setattr("workers.matting.worker._default_engine", BrokenMatting)
    BrokenMatting.works, BrokenMatting.built = False, 0
    cams: list[GeneratedCamera] = []

    def camera() -> GeneratedCamera:
        cams.append(GeneratedCamera(64, 48, 30))
        return cams[-1]

    matting_ctx = studio_context(store, {"camera_factory": camera})
    face_cams: list[GeneratedCamera] = []

    def face_camera() -> GeneratedCamera:
        face_cams.append(GeneratedCamera(64, 48, 30))
        return face_cams[-1]

    face_ctx = studio_context(
        ModelStore(tmp_path / "face-models"),
        {
            "camera_factory": face_camera,
            "face_swap_pipeline_factory": FakeFacePipeline,
            "face_swap_consent": lambda parent: True,
        },
    )
    matting = MattingPage(matting_ctx)
    face = FaceSwapPage(face_ctx)
    for dock in (matting, face):
        qtbot.addWidget(dock)
        dock.resize(800, 600)
        dock.show()
    try:
        matting.options.model = model.id
        assert face.start_live()
        qtbot.waitUntil(lambda: face.preview.frames_shown >= 3, timeout=WAIT)
        assert matting.start_live()
        qtbot.waitUntil(lambda: matting.live_problem.active, timeout=WAIT)
        text = matting.live_problem.text
        assert text.startswith("The live stream stopped after 5 failures:") and "Non-zero status" in text
        assert matting.live_problem.retry_button.isVisibleTo(matting) and matting.live_problem.retry_button.isEnabled()
        assert matting.stack.currentWidget() is matting.live_page  # the live view says what happened
        assert not matting.live_running and cams[0].close_count == 1  # the camera was released
        assert BrokenMatting.built == 2  # restarted once before it gave up
        errors = [n for n in matting_ctx.notifications.items if n.level == "error"]
        assert len(errors) <= 2, [n.message for n in errors]
        # The face swap went on all along.
        shown = face.preview.frames_shown
        qtbot.waitUntil(lambda: face.preview.frames_shown >= shown + 10, timeout=WAIT)
        assert face.live_running and not face.live_problem.active
        # Retry (the model works now): the camera and the stream start again with the same settings.
        BrokenMatting.works = True
        matting.live_problem.retry_button.click()
        assert not matting.live_problem.active and matting.live_running
        qtbot.waitUntil(lambda: matting.live_view.frames_shown >= 3, timeout=WAIT)
        assert len(cams) == 2 and matting.matting_worker.halted is None
    finally:
        for dock in (matting, face):
            dock.shutdown()
        for ctx in (matting_ctx, face_ctx):
            ctx.notifications.uninstall_hooks()
    assert all(c.close_count == 1 for c in cams + face_cams)
    assert not [w.name for w in base.live_workers() if w.name in ("Camera", "Background removal", "Face swap")]


def test_face_swap_page_shows_a_failing_swap_with_retry(qtbot: Any, tmp_path: Path) -> None:
    from snowai_studio.face_swap.page import FaceSwapPage

    class Failing(FakeFacePipeline):
        def process(self, frame: np.ndarray) -> np.ndarray:
            raise ValueError("the swapper returned an empty picture")

    ctx = studio_context(
        ModelStore(tmp_path / "models"),
        {
            "camera_factory": lambda: GeneratedCamera(64, 48, 30),
            "face_swap_pipeline_factory": Failing,
            "face_swap_consent": lambda parent: True,
        },
    )
    dock = FaceSwapPage(ctx)
    qtbot.addWidget(dock)
    dock.show()
    try:
        assert dock.start_live()
        qtbot.waitUntil(lambda: dock.live_problem.active, timeout=WAIT)
        assert "stopped after 5 failures" in dock.live_problem.text
        assert "empty picture" in dock.live_problem.text
        assert not dock.live_running and not dock.live_button.isChecked()
        assert dock.last_level == "error"
        dock.stop_live()
        assert not dock.live_problem.active
    finally:
        dock.shutdown()
        ctx.notifications.uninstall_hooks()


def test_voice_conversion_whose_voice_fails_on_every_block_stops_with_one_error(qtbot: Any) -> None:
    from workers.media.fakes import ArrayMicrophone, MemorySink
    from workers.voice_conversion.worker import VoiceConversionWorker

    class FailingVoice:
        name = "Broken voice"
        sample_rate = input_rate = 16000

        def __init__(self) -> None:
            self.calls = 0

        def set_params(self, **_kw: Any) -> None:
            pass

        def convert_at(self, window: np.ndarray, rate: int) -> np.ndarray:
            self.calls += 1
            raise RuntimeError("the synthesizer produced NaN")

    voice = FailingVoice()
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(16000 * 20) / 16000)).astype(np.float32)
    mics: list[ArrayMicrophone] = []

    def source(*_args: Any) -> ArrayMicrophone:
        mics.append(ArrayMicrophone(tone, 16000, 16000, 512))
        return mics[-1]

    worker = VoiceConversionWorker(
        converter_factory=lambda *_a: voice,
        source_factory=source,
        sink_factory=lambda *_a: MemorySink(16000),
    )
    watch = Watch(worker)
    changes: list[tuple[bool, str, str]] = []
    worker.realtime_changed.connect(lambda *args: changes.append(args))
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=WAIT):
            worker.start()
        worker.start_realtime()
        qtbot.waitUntil(lambda: any(not running for running, _t, _l in changes), timeout=WAIT)
        qtbot.wait(300)
        assert voice.calls == 1, "the stream stopped at the first failing block"
        assert len(watch.errors) == 1 and len(watch.halted) == 1
        assert "the synthesizer produced NaN" in watch.halted[0]
        stopped = [c for c in changes if not c[0]][-1]
        assert stopped[2] == "error" and stopped[1].startswith("Realtime conversion stopped:")
        assert not worker.realtime_running and mics[0].close_count >= 1
        names = ("svc-realtime", "Microphone reader")
        assert not [t for t in threading.enumerate() if t.name in names and t.is_alive()]
    finally:
        assert worker.stop()
