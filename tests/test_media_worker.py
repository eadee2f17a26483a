"""The Qt media workers driven by file-backed and generated devices."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile

from workers.base import Worker
from workers.media.camera import CameraSource
from workers.media.fakes import FailingCamera, GeneratedCamera, MemorySink, WavMicrophone
from workers.media.worker import CameraWorker, MicrophoneWorker, TonePlayer
from workers.queues import StreamItem


@pytest.fixture
def workers() -> Any:
    """Workers made by a test; each is stopped (thread joined) at the end even if the test fails."""
    made: list[Worker] = []
    yield made
    for w in made:
        w.stop()


def watch(signal: Any) -> list[tuple[Any, ...]]:
    """Record every emission of a worker signal (called on the worker's thread; list appends are
    thread-safe), to wait on with ``qtbot.waitUntil``."""
    seen: list[tuple[Any, ...]] = []

    def record(*args: Any) -> None:
        seen.append(args)

    signal.connect(record)
    return seen


class Recorder:
    """A subscriber that just records what it was given (thread-safe)."""

    def __init__(self) -> None:
        self.items: list[StreamItem] = []
        self.lock = threading.Lock()

    def push(self, item: StreamItem) -> int:
        with self.lock:
            self.items.append(item)
        return 0


class SlowModel(Worker):
    """A stream worker that takes 30 ms per frame, much slower than the camera."""

    name = "Slow model"

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.max_queued = 0

    def process(self, item: StreamItem) -> Any:
        self.max_queued = max(self.max_queued, len(self._queue))
        time.sleep(0.03)
        self.seen += 1
        return item.payload.shape


def test_camera_worker_publishes_frames_and_stats(qtbot: Any, workers: list[Worker]) -> None:
    cam = GeneratedCamera(64, 48, 60)
    worker = CameraWorker(lambda: cam)
    workers.append(worker)
    frames: list[np.ndarray] = []
    stats: list[dict[str, Any]] = []
    opened: list[Any] = []

    def take() -> None:
        result = worker.take_result()
        if result is not None:
            frames.append(result.payload)

    worker.result_ready.connect(take)
    worker.stats.connect(stats.append)
    worker.opened.connect(opened.append)
    worker.start(loop=True)
    qtbot.waitUntil(lambda: len(frames) >= 10 and any(s.get("fps", 0) > 0 for s in stats), timeout=5000)
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert opened and opened[0].width == 64
    fps = max(s["fps"] for s in stats)
    assert 5 < fps < 90, f"a 60 fps pattern measured {fps} fps"
    assert stats[-1]["width"] == 64 and stats[-1]["height"] == 48

    assert worker.stop()
    assert not worker.thread_running
    assert cam.close_count == 1 and not cam.is_open
    assert worker.state == "stopped"


def test_camera_worker_forwards_and_slow_consumer_drops(qtbot: Any, workers: list[Worker]) -> None:
    cam = GeneratedCamera(32, 24, 200, paced=False)
    camera = CameraWorker(lambda: cam)
    model = SlowModel()
    recorder = Recorder()
    workers += [camera, model]
    camera.add_subscriber(model)
    camera.add_subscriber(recorder)
    model.start()
    camera.start()  # nobody takes the preview mailbox either
    qtbot.waitUntil(lambda: camera.frames >= 200 and model.seen >= 5, timeout=10000)
    assert model.dropped > 0, "the slow model must lose stale frames"
    assert len(model._queue) <= model.queue_size and model.max_queued <= model.queue_size
    assert camera.latest.overwritten > 0  # the preview keeps only the newest frame
    with recorder.lock:
        seqs = [it.seq for it in recorder.items]
    assert seqs == list(range(len(seqs))), "subscribers get every frame in order"
    camera.remove_subscriber(model)
    assert camera.stop() and model.stop()
    assert cam.close_count == 1


def test_failing_camera_reports_error_and_ends(qtbot: Any, workers: list[Worker]) -> None:
    cam = FailingCamera(fail_after=5)
    worker = CameraWorker(lambda: cam)
    workers.append(worker)
    errors: list[str] = []
    worker.error.connect(errors.append)
    worker.start()
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    message = errors[0]
    assert "stopped sending frames" in message and "Traceback" not in message
    qtbot.waitUntil(lambda: worker.state == "ended", timeout=2000)
    assert worker.frames == 5
    assert cam.close_count == 1, "the device is released as soon as it fails"
    assert worker.thread_running  # the thread stays usable until stop()
    assert worker.stop() and not worker.thread_running
    assert cam.close_count == 1


def test_camera_that_cannot_open_reports_a_sentence(qtbot: Any, workers: list[Worker]) -> None:
    worker = CameraWorker(lambda: CameraSource(63, 640, 480, 30))
    workers.append(worker)
    errors: list[str] = []
    worker.error.connect(errors.append)
    worker.start()
    qtbot.waitUntil(lambda: worker.state == "failed", timeout=5000)
    assert len(errors) == 1
    assert "Camera could not start" in errors[0]
    assert "No camera found at index 63" in errors[0]
    assert worker.stop()


def test_video_file_camera_worker_ends(qtbot: Any, workers: list[Worker], tmp_path: Path) -> None:
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 24))
    for i in range(4):
        writer.write(np.full((24, 32, 3), i * 40, np.uint8))
    writer.release()
    worker = CameraWorker(lambda: CameraSource(str(path), paced=False))
    workers.append(worker)
    ended = watch(worker.ended)
    worker.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert worker.frames == 4
    assert worker.stop()


def write_tone(path: Path, rate: int = 16000, seconds: float = 0.5, amp: float = 0.5) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(str(path), amp * np.sin(2 * np.pi * 440 * t), rate)
    return path


def test_microphone_worker_publishes_levels_and_forwards(qtbot: Any, workers: list[Worker], tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "tone.wav")
    mic = WavMicrophone(wav, samplerate=16000, blocksize=400, paced=True)
    worker = MicrophoneWorker(lambda: mic)
    recorder = Recorder()
    worker.add_subscriber(recorder)
    workers.append(worker)
    levels: list[float] = []

    def take() -> None:
        result = worker.take_result()
        if result is not None:
            levels.append(result.payload)

    worker.result_ready.connect(take)
    ended = watch(worker.ended)
    worker.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert len(recorder.items) == 20  # 0.5 s in blocks of 25 ms
    assert recorder.items[0].payload.shape == (400, 1)
    assert levels and max(levels) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)
    assert worker.stop()
    assert mic.close_count == 1


def test_microphone_worker_stops_promptly_while_waiting(qtbot: Any, workers: list[Worker], tmp_path: Path) -> None:
    wav = write_tone(tmp_path / "long.wav", seconds=5.0)
    mic = WavMicrophone(wav, samplerate=16000, blocksize=1600, paced=True, loop=True)
    worker = MicrophoneWorker(lambda: mic, forward=False)
    workers.append(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.blocks >= 2, timeout=3000)
    start = time.monotonic()
    assert worker.stop()
    assert time.monotonic() - start < 0.5
    assert mic.close_count == 1


def test_tone_player_writes_into_a_sink(qtbot: Any, workers: list[Worker]) -> None:
    sink = MemorySink(8000, channels=2)
    player = TonePlayer(lambda: sink)
    workers.append(player)
    player.start()
    finished = watch(player.job_finished)
    player.play(0.5, 440.0)
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert finished[0][1] == 4000
    data = sink.data
    assert data.shape == (4000, 2)
    assert np.abs(data).max() == pytest.approx(0.2, abs=0.01)
    assert sink.close_count == 1


def test_tone_player_reports_a_broken_output(qtbot: Any, workers: list[Worker]) -> None:
    from workers.errors import UserError

    def broken() -> MemorySink:
        raise UserError("The speaker “Nope” is not connected. Choose another one in Devices.")

    player = TonePlayer()
    workers.append(player)
    player.start()
    failed = watch(player.job_failed)
    player.play(0.1, output_factory=broken)
    qtbot.waitUntil(lambda: bool(failed), timeout=5000)
    assert "“Nope” is not connected" in failed[0][1]
