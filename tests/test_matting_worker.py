"""The background-removal worker end to end: a generated camera feeding the real engine on a small
U²-Net-shaped model imported through the model store (nothing is downloaded)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image
from PySide6.QtCore import Qt

from workers.base import Worker
from workers.matting.compose import Background
from workers.matting.options import MaskResult, MattingOptions
from workers.matting.worker import MattingWorker
from workers.media.fakes import GeneratedCamera
from workers.media.imageio import LoadedImage
from workers.media.worker import CameraWorker
from workers.models.store import ModelStore
from workers.queues import StreamResult

GREEN = Background(kind="color", color=(0, 255, 0))  # RGB; the same in BGR
W, H = 96, 72


@pytest.fixture
def workers() -> Any:
    """Workers made by a test; each is stopped (thread joined) at the end even if the test fails."""
    made: list[Worker] = []
    yield made
    for w in reversed(made):
        w.stop()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def import_model(store: ModelStore, folder: Path, name: str, gain: float = 3.0) -> str:
    """A fixture model in the store: gain > 0 calls bright pixels foreground, gain < 0 dark ones."""
    path = build_u2net_like(folder / f"{name}.onnx", gain=gain)
    return store.import_file(path, "matting", name=name).id


@pytest.fixture
def bright(store: ModelStore, tmp_path: Path) -> str:
    return import_model(store, tmp_path / "src", "bright")


def watch(signal: Any) -> list[tuple[Any, ...]]:
    """Record every emission of a worker signal (on the worker's thread; list appends are thread-safe)."""
    seen: list[tuple[Any, ...]] = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def collect(worker: MattingWorker) -> list[StreamResult]:
    """Every stream result the worker posts, taken from its mailbox as a preview would."""
    results: list[StreamResult] = []

    def take() -> None:
        result = worker.take_result()
        if result is not None:
            results.append(result)

    worker.result_ready.connect(take)
    return results


def every_seq(worker: MattingWorker) -> list[int]:
    """The frame number of every stream result, in order: each is taken from the mailbox on the
    worker's thread as it is posted, so none is replaced by a newer one first."""
    seqs: list[int] = []

    def take() -> None:
        result = worker.take_result()
        if result is not None:
            seqs.append(result.seq)

    worker.result_ready.connect(take, Qt.ConnectionType.DirectConnection)
    return seqs


class SlowEngine:
    """The real engine, made slower than the camera (a big model on a small machine)."""

    def __init__(self, engine: Any, delay: float) -> None:
        self._engine = engine
        self._delay = delay

    def predict_mask(self, bgr: np.ndarray) -> np.ndarray:
        time.sleep(self._delay)
        return self._engine.predict_mask(bgr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def slow_factory(delay: float) -> Callable[..., Any]:
    def make(store: ModelStore, options: MattingOptions, device: str) -> Any:
        from workers.matting.engine import MattingEngine

        return SlowEngine(MattingEngine(store, options, device=device), delay)

    return make


def start(qtbot: Any, workers: list[Worker], matting: MattingWorker, camera: GeneratedCamera | None = None) -> Any:
    """Start the matting worker (and a camera feeding it); returns the camera worker or None."""
    workers.append(matting)
    matting.start()
    qtbot.waitUntil(lambda: matting.state == "ready", timeout=20000)
    if camera is None:
        return None
    cam = CameraWorker(lambda: camera)
    workers.append(cam)
    cam.add_subscriber(matting)
    cam.start()
    return cam


def run_job(qtbot: Any, matting: MattingWorker, submit: Callable[[], int], timeout: int = 30000) -> Any:
    """Submit a job and wait for its result (a failure fails the test with its sentence)."""
    finished = watch(matting.job_finished)
    failed = watch(matting.job_failed)
    job = submit()
    qtbot.waitUntil(lambda: any(j == job for j, _ in finished + failed), timeout=timeout)
    assert not [m for j, m in failed if j == job]
    return next(r for j, r in finished if j == job)


def pattern_frame(seq: int) -> np.ndarray:
    cam = GeneratedCamera(W, H, 30)
    cam.open()
    return cam.render(seq)


def regions(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inside the dark sweeping box, and inside the white bar (both shrunk away from their edges)."""
    kernel = np.ones((5, 5), np.uint8)
    dark = cv2.erode(np.all(src == 32, axis=2).astype(np.uint8), kernel) > 0
    white = cv2.erode(np.all(src == 255, axis=2).astype(np.uint8), kernel) > 0
    assert dark.sum() > 10 and white.sum() > 10
    return dark, white


def write_clip(path: Path, frames: int) -> Path:
    """A small H.264 clip of the bright ellipse on a dark background."""
    bgr, _ = subject_image(48, 64)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=15)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---- live stream ------------------------------------------------------------------------------


def test_live_frames_come_out_with_the_background_replaced(qtbot: Any, workers: list, store, bright: str) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    matting.set_param("background", GREEN)
    results = collect(matting)
    stats = watch(matting.stats)
    errors = watch(matting.error)
    start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 4, timeout=20000)
    for result in results[-2:]:
        frame = result.payload
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        src = pattern_frame(result.seq)
        dark, white = regions(src)
        assert np.abs(frame[dark].astype(int) - (0, 255, 0)).max() < 12  # background: the chosen colour
        assert np.abs(frame[white].astype(int) - 255).max() < 12  # subject: kept
        assert {"mask_ms", "compose_ms", "alpha_ms", "fps"} <= result.meta.keys()
        assert result.meta["mask_ms"] > 0
    qtbot.waitUntil(
        lambda: any(s[0]["fps"] > 0 and {"mask", "compose"} <= s[0]["stages_ms"].keys() for s in stats), timeout=20000
    )
    snap = next(s[0] for s in stats if s[0]["fps"] > 0 and "mask" in s[0]["stages_ms"])
    assert snap["stages_ms"]["mask"] > 0 and snap["recording"] is False
    assert errors == []


def test_transparent_background_is_shown_on_a_checkerboard_and_mask_only_as_grey(
    qtbot: Any, workers: list, store, bright: str
) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    results = collect(matting)
    start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 2, timeout=20000)
    result = results[-1]
    dark, _ = regions(pattern_frame(result.seq))
    assert result.payload.shape == (H, W, 3)
    assert set(np.unique(result.payload[dark])) <= set(range(148, 210))  # checkerboard greys
    matting.set_param("mask_only", True)
    n = len(results)
    qtbot.waitUntil(lambda: len(results) > n + 1, timeout=20000)
    result = results[-1]
    dark, white = regions(pattern_frame(result.seq))
    assert result.payload[dark].max() < 10 and result.payload[white].min() > 245


def test_a_slow_model_drops_frames_instead_of_queueing(qtbot: Any, workers: list, store, bright: str) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright), engine_factory=slow_factory(0.03))
    results = collect(matting)
    total = 40
    cam = start(qtbot, workers, matting, GeneratedCamera(64, 48, 30, paced=False, frames=total))
    qtbot.waitUntil(lambda: cam.state == "ended", timeout=20000)
    qtbot.waitUntil(lambda: matting.processed + matting.dropped == total, timeout=20000)
    assert matting.dropped > 0
    assert matting.processed < total
    assert len(matting._queue) == 0
    # and the newest frames were shown (their results reach this thread through the event loop)
    qtbot.waitUntil(lambda: bool(results) and max(r.seq for r in results) >= total - 2, timeout=20000)


def test_live_uses_a_fast_model_when_the_chosen_one_cannot_keep_up_measured_once_per_machine(
    qtbot: Any, workers: list, store, tmp_path: Path
) -> None:
    """A slow stand-in (a stack of convolutions) and a fast one; "keeping up" is set high enough that
    only the fast one does. Live uses the fast one, jobs keep the chosen one; the frame times are
    measured once and written to the store's cache, which the next live start reads instead."""
    from workers.matting.live_speed import CACHE_NAME

    fast = import_model(store, tmp_path / "src", "fast")
    slow = store.import_file(build_u2net_like(tmp_path / "src" / "slow.onnx", compute=4), "matting",
                             name="slow").id
    live = {"fast_model": fast, "min_fps": 150.0}
    matting = MattingWorker(store, MattingOptions(model=slow), **live)
    plans = watch(matting.live_plan)
    measuring = watch(matting.live_measuring)
    results = collect(matting)
    cam = start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 3, timeout=30000)
    plan = plans[0][0]
    assert plan.chosen == slow and plan.used == fast and plan.switched and not plan.chosen_keeps_up
    assert plan.chosen_ms > plan.used_ms > 0 and plan.size == (W, H)
    assert set(plan.measured) == {slow, fast} and {m for (m,) in measuring} == {"slow", "fast"}
    assert results[-1].meta["model"] == "fast"
    cache = store.root / CACHE_NAME
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 2 and {e["model"] for e in entries.values()} == {"slow", "fast"}
    stamp = cache.stat().st_mtime_ns
    # A job still uses the chosen model.
    bgr, _ = subject_image(48, 64)
    assert run_job(qtbot, matting, lambda: matting.remove(LoadedImage(bgr=bgr))).model == "slow"
    cam.stop()
    matting.stop()

    # The next start (a new worker, as after a restart of the studio) knows at once: nothing is measured.
    again = MattingWorker(store, MattingOptions(model=slow), **live)
    plans = watch(again.live_plan)
    results = collect(again)
    start(qtbot, workers, again, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 2, timeout=30000)
    assert plans[0][0].used == fast and plans[0][0].measured == () and again.measured == []
    assert cache.stat().st_mtime_ns == stamp
    # "Use it anyway": live takes the chosen model, still without measuring.
    again.set_param("live_policy", "chosen")
    qtbot.waitUntil(lambda: len(plans) >= 2, timeout=30000)
    anyway = plans[-1][0]
    assert anyway.used == slow and anyway.anyway and anyway.fast_ms == pytest.approx(plan.used_ms, abs=0.01)
    n = len(results)
    qtbot.waitUntil(lambda: len(results) >= n + 2, timeout=30000)
    assert results[-1].meta["model"] == "slow" and again.measured == []


def test_recording_the_composited_stream(qtbot: Any, workers: list, store, bright: str, tmp_path: Path) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    matting.set_param("background", GREEN)
    saved = watch(matting.recording_saved)
    seqs = every_seq(matting)
    total = 20
    path = tmp_path / "out" / "live.mp4"
    matting.start_recording(path)
    assert matting.recording
    cam = start(qtbot, workers, matting, GeneratedCamera(W, H, 60, frames=total))
    qtbot.waitUntil(lambda: cam.state == "ended", timeout=20000)
    qtbot.waitUntil(lambda: matting.processed + matting.dropped == total, timeout=20000)
    assert not path.exists()  # written under a temporary name until stopped
    assert matting.stop_recording() == path
    assert not matting.recording
    qtbot.waitUntil(lambda: saved == [(str(path),)], timeout=5000)
    frames = count_frames(path)
    assert 1 <= frames <= total
    assert frames == matting.processed
    with av.open(str(path)) as c:
        first = next(iter(c.decode(video=0))).to_ndarray(format="bgr24")
        assert c.streams.video[0].codec_context.name == "h264"
    assert len(seqs) == matting.processed
    # The first frame recorded is the first one processed (frames that came while the worker was busy
    # were dropped as stale, so it need not be the camera's first).
    dark, _ = regions(pattern_frame(seqs[0]))
    assert np.abs(first[dark].astype(int) - (0, 255, 0)).mean() < 20  # the composited frames were recorded
    assert [p.name for p in path.parent.iterdir()] == ["live.mp4"]
    assert matting.stop_recording() is None


def test_a_recording_left_running_is_saved_when_the_worker_stops(
    qtbot: Any, workers: list, store, bright: str, tmp_path: Path
) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    saved = watch(matting.recording_saved)
    start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: matting.processed >= 1, timeout=20000)
    path = tmp_path / "late.mp4"
    matting.start_recording(path)
    qtbot.waitUntil(lambda: matting.recorded_frames >= 2, timeout=20000)
    assert matting.stop()
    qtbot.waitUntil(lambda: saved == [(str(path),)], timeout=5000)
    assert count_frames(path) >= 2


def test_model_switch_live(qtbot: Any, workers: list, store, bright: str, tmp_path: Path) -> None:
    dark_model = import_model(store, tmp_path / "src", "dark", gain=-3.0)
    matting = MattingWorker(store, MattingOptions(model=bright))
    matting.set_param("background", GREEN)
    results = collect(matting)
    errors = watch(matting.error)
    start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 2, timeout=20000)
    first_label = results[-1].meta["model"]
    thread = matting.thread()
    matting.set_param("model", dark_model)
    qtbot.waitUntil(lambda: results[-1].meta["model"] != first_label and len(results) >= 4, timeout=20000)
    result = results[-1]
    frame = result.payload
    dark, white = regions(pattern_frame(result.seq))
    assert np.abs(frame[dark].astype(int) - 32).max() < 12  # now the dark box is the subject
    assert np.abs(frame[white].astype(int) - (0, 255, 0)).max() < 12  # and the white bar the background
    assert matting.thread() is thread and matting.thread_running and matting.state in ("ready", "busy")
    assert errors == []


def test_switching_to_a_missing_model_is_a_sentence_and_the_stream_recovers(
    qtbot: Any, workers: list, store, bright: str
) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    results = collect(matting)
    errors = watch(matting.error)
    start(qtbot, workers, matting, GeneratedCamera(W, H, 30))
    qtbot.waitUntil(lambda: len(results) >= 1, timeout=20000)
    matting.set_param("model", "u2net")  # in the manifest, not downloaded
    qtbot.waitUntil(lambda: len(errors) >= 1, timeout=20000)
    message = errors[0][0]
    assert "Download" in message and "Traceback" not in message
    matting.set_param("model", bright)
    n = len(results)
    qtbot.waitUntil(lambda: len(results) > n + 1, timeout=20000)
    assert matting.thread_running


# ---- jobs -------------------------------------------------------------------------------------


def test_remove_job_gives_a_mask_result(qtbot: Any, workers: list, store, bright: str) -> None:
    matting = MattingWorker(store, MattingOptions(model=bright))
    start(qtbot, workers, matting)
    bgr, truth = subject_image(120, 160)
    image = LoadedImage(bgr=bgr)
    result = run_job(qtbot, matting, lambda: matting.remove(image))
    assert isinstance(result, MaskResult)
    assert result.image is image and result.alpha.shape == truth.shape and result.ms > 0
    assert iou(result.alpha, truth) > 0.9


def test_batch_job_writes_cutouts(qtbot: Any, workers: list, store, bright: str, tmp_path: Path) -> None:
    from workers.media.imageio import load_image, save_image

    inputs = []
    for i in range(3):
        bgr, _ = subject_image(60, 80, seed=i)
        inputs.append(save_image(tmp_path / "in" / f"img{i}.png", bgr))
    matting = MattingWorker(store, MattingOptions(model=bright))
    progress = watch(matting.progress)
    start(qtbot, workers, matting)
    report = run_job(qtbot, matting, lambda: matting.batch(inputs, tmp_path / "out", Background(), "png"))
    assert len(report.done) == 3 and not report.failed and not report.cancelled
    assert progress[-1] == (3, 3)
    out = load_image(report.done[0][1])
    assert out.alpha is not None


def test_video_job_with_progress(qtbot: Any, workers: list, store, bright: str, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "clip.mp4", 12)
    matting = MattingWorker(store, MattingOptions(model=bright))
    progress = watch(matting.progress)
    start(qtbot, workers, matting)
    dst = tmp_path / "out" / "clip.mov"
    assert run_job(qtbot, matting, lambda: matting.video(src, dst, Background())) == dst
    assert progress[-1] == (12, 12) and len(progress) >= 2
    _, truth = subject_image(48, 64)
    with av.open(str(dst)) as c:
        frames = [f.to_ndarray(format="bgra") for f in c.decode(video=0)]
    assert len(frames) == 12
    assert iou(frames[5][:, :, 3], truth) > 0.85  # the alpha of the cut-out, kept by ProRes 4444


def test_video_job_cancel_leaves_no_file(qtbot: Any, workers: list, store, bright: str, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "clip.mp4", 60)
    matting = MattingWorker(store, MattingOptions(model=bright), engine_factory=slow_factory(0.02))
    cancelled = watch(matting.job_cancelled)
    start(qtbot, workers, matting)
    dst = tmp_path / "out" / "clip.webm"
    fired = threading.Event()

    def on_progress(done: int, total: int) -> None:
        if not fired.is_set():
            fired.set()
            matting.cancel()

    matting.progress.connect(on_progress)
    job = matting.video(src, dst, GREEN)
    qtbot.waitUntil(lambda: cancelled == [(job,)], timeout=30000)
    assert not dst.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_model_is_an_error_sentence(qtbot: Any, workers: list, store) -> None:
    matting = MattingWorker(store, MattingOptions(model="u2net"))
    errors = watch(matting.error)
    failed = watch(matting.job_failed)
    workers.append(matting)
    matting.start()
    qtbot.waitUntil(lambda: matting.state == "failed", timeout=20000)
    assert len(errors) == 1
    message = errors[0][0]
    assert message.startswith("Background removal could not start:")
    assert "Download" in message and "Traceback" not in message
    job = matting.remove(LoadedImage(bgr=np.zeros((8, 8, 3), np.uint8)))
    qtbot.waitUntil(lambda: failed == [(job, message)], timeout=20000)
    assert not any((store.root).rglob("*.onnx"))  # nothing was downloaded


def test_choosing_an_installed_model_after_a_failed_start_recovers(
    qtbot: Any, workers: list, store, bright: str
) -> None:
    matting = MattingWorker(store, MattingOptions(model="u2net"))
    errors = watch(matting.error)
    results = collect(matting)
    cam = CameraWorker(lambda: GeneratedCamera(W, H, 30))
    workers.extend([matting, cam])
    matting.start()
    qtbot.waitUntil(lambda: matting.state == "failed", timeout=20000)
    cam.add_subscriber(matting)
    cam.start()
    matting.set_param("model", bright)
    qtbot.waitUntil(lambda: len(results) >= 2, timeout=20000)
    assert matting.state in ("ready", "busy") and len(errors) == 1
