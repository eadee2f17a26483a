"""The face-swap worker on its thread: source photos, image and video jobs, the live stream,
recording, the virtual camera, live settings, and errors as sentences. The classic (dlib) engine
runs for real on photos made from scikit-image's astronaut."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from face_fixtures import ASTRONAUT_BOX, astronaut, second_face

from workers import base
from workers.face_swap.mark import read_generated_label
from workers.face_swap.options import OPTION_NAMES, FaceSwapOptions
from workers.face_swap.worker import FaceSwapWorker, ImageJobResult, SourceSummary, StillResult, VideoJobResult
from workers.models.store import ModelStore
from workers.queues import StreamItem

WAIT = 30000
SIZE = 256  # the astronaut at half size: face at about (88,38)-(132,83)
FACE = tuple(v // 2 for v in ASTRONAUT_BOX)


def half(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def face_diff(a: np.ndarray, b: np.ndarray, box: tuple[int, ...] = FACE) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).mean())


def corner_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean difference in the bottom-right corner, where the "AI-generated" mark goes."""
    h, w = a.shape[:2]
    return float(
        np.abs(a[int(h * 0.9) :, int(w * 0.6) :].astype(int) - b[int(h * 0.9) :, int(w * 0.6) :].astype(int)).mean()
    )


def make_face_video(path: Path, frames: int = 8, fps: int = 12, *, audio: bool = True) -> Path:
    """A small H.264 MP4 of the astronaut (moving a little) with a 440 Hz AAC track as long as the video."""
    src = half(astronaut())
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "12"})
        vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "yuv420p"
        aus = out.add_stream("aac", rate=48000) if audio else None
        if aus is not None:
            aus.layout = "mono"
        for i in range(frames):
            m = np.float32([[1, 0, i % 3], [0, 1, 0]])
            frame = cv2.warpAffine(src, m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if aus is not None:
            t = np.arange(int(frames / fps * 48000)) / 48000
            sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(sine), 1024):
                af = av.AudioFrame.from_ndarray(sine[None, k : k + 1024], format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = {
        "source": folder / "second.png",
        "target": folder / "astronaut.png",
        "small": folder / "astronaut-small.jpg",
        "noface": folder / "wall.png",
        "broken": folder / "broken.jpg",
    }
    cv2.imwrite(str(paths["source"]), second_face())
    cv2.imwrite(str(paths["target"]), astronaut())
    cv2.imwrite(str(paths["small"]), half(astronaut()), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(paths["noface"]), np.full((120, 160, 3), 90, np.uint8))
    paths["broken"].write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return paths


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


class Jobs:
    """Collects a worker's job outcomes by id."""

    def __init__(self, worker: FaceSwapWorker) -> None:
        self.done: dict[int, Any] = {}
        self.failed: dict[int, str] = {}
        self.cancelled: set[int] = set()
        worker.job_finished.connect(lambda i, r: self.done.__setitem__(i, r))
        worker.job_failed.connect(lambda i, m: self.failed.__setitem__(i, m))
        worker.job_cancelled.connect(self.cancelled.add)

    def ended(self, job: int) -> bool:
        return job in self.done or job in self.failed or job in self.cancelled


@pytest.fixture
def make_worker(qtbot: Any, store: ModelStore) -> Iterator[Callable[..., tuple[FaceSwapWorker, Jobs]]]:
    made: list[FaceSwapWorker] = []

    def make(**kwargs: Any) -> tuple[FaceSwapWorker, Jobs]:
        worker = FaceSwapWorker(kwargs.pop("store", store), **kwargs)
        jobs = Jobs(worker)
        made.append(worker)
        worker.start()
        return worker, jobs

    yield make
    for worker in made:
        assert worker.stop()
    assert not [w.name for w in base.live_workers() if w.name == "Face swap"]


def wait_job(qtbot: Any, jobs: Jobs, job: int) -> None:
    qtbot.waitUntil(lambda: jobs.ended(job), timeout=WAIT)


def finished(qtbot: Any, jobs: Jobs, job: int) -> Any:
    wait_job(qtbot, jobs, job)
    assert job in jobs.done, jobs.failed.get(job, "cancelled")
    return jobs.done[job]


def failure(qtbot: Any, jobs: Jobs, job: int) -> str:
    wait_job(qtbot, jobs, job)
    assert job in jobs.failed, "the job should have failed"
    return jobs.failed[job]


def stream(qtbot: Any, worker: FaceSwapWorker, frame: np.ndarray, count: int = 1) -> Any:
    """Push ``count`` frames one after another and return the last result."""
    result = None
    for i in range(count):
        before = worker.processed
        worker.push(StreamItem(frame.copy(), seq=i))
        qtbot.waitUntil(lambda before=before: worker.processed > before, timeout=WAIT)
        got = worker.take_result()
        result = got if got is not None else result
    return result


def test_source_summary_and_sentences_for_bad_photos(make_worker: Any, qtbot: Any, photos: dict[str, Path]) -> None:
    worker, jobs = make_worker()
    summary = finished(qtbot, jobs, worker.set_source([photos["source"], photos["target"]]))
    assert isinstance(summary, SourceSummary)
    assert summary.count == 2 and summary.faces_per_image == [1, 1]
    assert summary.engine == "classic"
    assert [t.shape for t in summary.thumbnails] == [(96, 96, 3), (96, 96, 3)]
    assert "2 photos" in summary.describe()
    assert worker.has_source

    message = failure(qtbot, jobs, worker.set_source([photos["source"], photos["noface"]]))
    assert "No face was found in wall.png" in message and "Traceback" not in message
    message = failure(qtbot, jobs, worker.set_source([photos["broken"]]))
    assert "broken.jpg could not be read" in message
    message = failure(qtbot, jobs, worker.set_source([photos["source"].with_name("gone.png")]))
    assert "gone.png" in message
    assert worker.has_source  # the source chosen before is kept


def test_image_job_swaps_marks_and_never_overwrites(make_worker: Any, qtbot: Any, photos: dict[str, Path]) -> None:
    worker, jobs = make_worker()
    message = failure(qtbot, jobs, worker.swap_image(photos["target"], photos["target"].with_name("out.png")))
    assert "Choose a source face first" in message
    finished(qtbot, jobs, worker.set_source([photos["source"]]))

    out = photos["target"].with_name("astronaut-swapped.png")
    result = finished(qtbot, jobs, worker.swap_image(photos["target"], out))
    assert isinstance(result, ImageJobResult)
    assert result.path == out and result.faces_found == 1 and result.faces_swapped == 1
    assert result.engine == "classic" and result.marked
    saved = cv2.imread(str(out))
    original = astronaut()
    assert face_diff(saved, original, ASTRONAUT_BOX) > 4  # the face changed
    assert corner_diff(saved, original) > 10  # the visible mark
    assert np.abs(saved[300:400, 0:100].astype(int) - original[300:400, 0:100].astype(int)).mean() < 1
    assert read_generated_label(out) is not None  # and the metadata says so

    message = failure(qtbot, jobs, worker.swap_image(photos["target"], photos["target"]))
    assert "save the result under another name" in message
    message = failure(qtbot, jobs, worker.swap_image(photos["noface"], photos["noface"].with_name("x.png")))
    assert "No face was found in wall.png" in message
    assert not photos["noface"].with_name("x.png").exists()

    worker.set_param("mark", False)
    plain = photos["target"].with_name("plain.jpg")
    result = finished(qtbot, jobs, worker.swap_image(photos["target"], plain))
    assert not result.marked
    assert read_generated_label(plain) is None
    assert corner_diff(cv2.imread(str(plain)), original) < 4


def test_a_still_is_rendered_without_writing_and_saved_with_its_mark(
    make_worker: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    worker, jobs = make_worker()
    message = failure(qtbot, jobs, worker.render_image(photos["target"]))
    assert "Choose a source face first" in message
    finished(qtbot, jobs, worker.set_source([photos["source"]]))
    folder = photos["target"].parent
    before = sorted(p.name for p in folder.iterdir())
    still = finished(qtbot, jobs, worker.render_image(photos["target"]))
    assert isinstance(still, StillResult) and sorted(p.name for p in folder.iterdir()) == before
    original = astronaut()
    assert np.array_equal(still.original, original) and still.faces_swapped == 1 and still.marked
    assert face_diff(still.image, original, ASTRONAUT_BOX) > 4 and corner_diff(still.image, original) > 10
    # Again from the picture already read, with other settings: the file is not read again.
    worker.set_param("mark", False)
    photos["target"].unlink()
    plain = finished(qtbot, jobs, worker.render_image(photos["target"], still.original))
    assert not plain.marked and corner_diff(plain.image, original) < 4
    message = failure(qtbot, jobs, worker.render_image(photos["noface"]))
    assert "No face was found in wall.png" in message

    message = failure(qtbot, jobs, worker.save_still(still, photos["target"]))
    assert "never overwritten" in message and not photos["target"].exists()
    out = folder / "astronaut-swapped.webp"
    saved = finished(qtbot, jobs, worker.save_still(still, out))
    assert isinstance(saved, ImageJobResult) and saved.path == out and saved.marked
    assert read_generated_label(out) is not None
    plain_out = finished(qtbot, jobs, worker.save_still(plain, folder / "plain.png")).path
    assert read_generated_label(plain_out) is None


def test_video_round_trip_keeps_rate_audio_and_tags(
    make_worker: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path
) -> None:
    src = make_face_video(tmp_path / "clip.mp4", frames=8, fps=12)
    worker, jobs = make_worker()
    finished(qtbot, jobs, worker.set_source([photos["source"]]))
    progress: list[tuple[int, int]] = []
    worker.progress.connect(lambda d, t: progress.append((d, t)))
    dst = tmp_path / "clip-swapped.mp4"
    result = finished(qtbot, jobs, worker.swap_video(src, dst))
    assert isinstance(result, VideoJobResult)
    assert result.path == dst and result.frames == 8 and result.marked
    assert progress and progress[-1] == (8, 8)

    with av.open(str(dst)) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}
        vs = c.streams.video[0]
        assert vs.average_rate == Fraction(12)
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(vs)]
    with av.open(str(dst)) as c:
        a = c.streams.audio[0]
        seconds = sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate
    assert tags.get("ai_generated") == "true" and "generated" in tags.get("comment", "").lower()
    assert len(frames) == 8
    assert seconds == pytest.approx(8 / 12, abs=0.06)
    with av.open(str(src)) as c:
        originals = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert face_diff(frames[0], originals[0]) > 4
    assert corner_diff(frames[0], originals[0]) > 10

    message = failure(qtbot, jobs, worker.swap_video(src, src))
    assert "another name" in message
    message = failure(qtbot, jobs, worker.swap_video(src, tmp_path / "clip.avi"))
    assert "extension" in message


def test_video_cancel_leaves_nothing(make_worker: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path) -> None:
    src = make_face_video(tmp_path / "clip.mp4", frames=30, fps=12, audio=False)
    worker, jobs = make_worker()
    finished(qtbot, jobs, worker.set_source([photos["source"]]))
    worker.progress.connect(lambda done, total: worker.cancel() if done >= 2 else None)
    job = worker.swap_video(src, tmp_path / "out.mp4")
    wait_job(qtbot, jobs, job)
    assert job in jobs.cancelled
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["clip.mp4"]  # no output, no partial file


def test_stream_untouched_without_source_then_swapped_with_stage_timings(
    make_worker: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    worker, jobs = make_worker()
    frame = half(astronaut())
    result = stream(qtbot, worker, frame)
    assert np.array_equal(result.payload, frame)  # no source: the camera picture as it is
    assert result.meta["swapping"] is False

    finished(qtbot, jobs, worker.set_source([photos["source"]]))
    stats: list[dict] = []
    worker.stats.connect(stats.append)
    result = stream(qtbot, worker, frame, count=4)
    out = result.payload
    assert out.shape == frame.shape
    assert face_diff(out, frame) > 4
    assert corner_diff(out, frame) > 10  # the mark is on by default
    assert {"detect", "track", "swap", "mark"} <= set(result.meta["stages_ms"])
    assert result.meta["engine"] == "classic" and result.meta["swapping"] is True
    assert result.latency_ms >= 0

    worker.set_param("mark", False)
    worker.set_param("opacity", 0.0)
    out = stream(qtbot, worker, frame, count=2).payload
    assert corner_diff(out, frame) < 4
    assert face_diff(out, frame) < 3  # opacity 0: nothing of the new face shows

    def stats_came() -> bool:
        stream(qtbot, worker, frame)  # stats go out with frames, a few times a second
        return any("swap" in s.get("stages_ms", {}) for s in stats)

    qtbot.waitUntil(stats_came, timeout=WAIT)
    snap = stats[-1]
    assert snap["engine"] == "classic" and "fps" in snap and "latency_ms" in snap


def test_every_option_changes_live_and_bad_values_are_sentences(make_worker: Any, qtbot: Any) -> None:
    worker, _ = make_worker()
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    values = {
        "engine": "classic",
        "target": "largest",
        "target_index": 2,
        "reference_similarity": 0.5,
        "face_map": "0:1",
        "opacity": 0.8,
        "mask_blur": 9,
        "mask_erode": 2,
        "mouth_mask": True,
        "color_match": False,
        "enhancer": None,
        "enhancer_blend": 0.6,
        "enhancer_fidelity": 0.3,
        "enhance_every": 2,
        "swapper": None,
        "pixel_boost": 2,
        "occlusion_mask": False,
        "face_regions": "skin, nose",
        "detect_every": 5,
        "detect_size": 256,
        "mark": False,
        "preset": "gpu",
    }
    assert set(values) == set(OPTION_NAMES)
    errors: list[str] = []
    worker.error.connect(errors.append)
    for name, value in values.items():
        worker.set_param(name, value)
    qtbot.waitUntil(lambda: worker.options.preset == "gpu", timeout=WAIT)
    assert not errors
    assert worker.options.face_map == {0: 1} and worker.options.mark is False
    assert worker.options.detect_every == 1  # the gpu preset's own value
    assert worker.pipeline.options.opacity == pytest.approx(0.8)
    assert worker.pipeline.options.pixel_boost == 2 and worker.pipeline.options.face_regions == "skin, nose"

    worker.set_param("opacity", 3)
    worker.set_param("no_such_setting", 1)
    worker.set_param("face_regions", "skin, ears")
    worker.set_param("pixel_boost", 4)
    qtbot.waitUntil(lambda: len(errors) >= 4, timeout=WAIT)
    assert "opacity must lie between 0 and 1" in errors[0]
    assert "no setting called 'no_such_setting'" in errors[1]
    assert "Unknown face region 'ears'" in errors[2]
    assert "pixel_boost must lie between 1 and 3" in errors[3]
    assert not any("Traceback" in e for e in errors)


def test_recording_the_swapped_stream(make_worker: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path) -> None:
    worker, jobs = make_worker()
    finished(qtbot, jobs, worker.set_source([photos["source"]]))
    saved: list[str] = []
    worker.recording_saved.connect(saved.append)
    worker.start_recording(tmp_path / "live.mp4")
    assert worker.recording
    stream(qtbot, worker, half(astronaut()), count=5)
    assert worker.recorded_frames == 5
    path = worker.stop_recording()
    assert path == tmp_path / "live.mp4"
    qtbot.waitUntil(lambda: saved == [str(path)])
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 5
    assert corner_diff(frames[-1], half(astronaut())) > 10  # what was recorded is the swapped picture
    assert not worker.recording and worker.stop_recording() is None


class FakeVirtualCamera:
    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.device = "/dev/video-test"
        self.frames: list[np.ndarray] = []
        self.closed = False

    def send(self, frame: np.ndarray) -> None:
        assert frame.shape == (self.height, self.width, 3)
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


def test_virtual_camera_gets_frames_and_missing_ones_are_sentences(
    make_worker: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cams: list[FakeVirtualCamera] = []

    def factory(w: int, h: int, fps: float) -> FakeVirtualCamera:
        cams.append(FakeVirtualCamera(w, h, fps))
        return cams[-1]

    worker, _ = make_worker(virtual_camera_factory=factory)
    changes: list[tuple[bool, str]] = []
    worker.virtual_camera_changed.connect(lambda on, text: changes.append((on, text)))
    worker.start_virtual_camera()
    stream(qtbot, worker, half(astronaut()), count=3)
    assert len(cams) == 1 and len(cams[0].frames) == 3
    qtbot.waitUntil(lambda: changes == [(True, "/dev/video-test")])
    worker.stop_virtual_camera()
    assert cams[0].closed
    qtbot.waitUntil(lambda: changes[-1] == (False, ""))

    # No pyvirtualcam installed, and no virtual camera device (this machine has none).
    plain, _ = make_worker()
    errors: list[str] = []
    plain.error.connect(errors.append)
    changes.clear()
    plain.virtual_camera_changed.connect(lambda on, text: changes.append((on, text)))
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    plain.start_virtual_camera()
    stream(qtbot, plain, half(astronaut()))
    qtbot.waitUntil(lambda: bool(changes))
    assert changes[0][0] is False and "pyvirtualcam" in changes[0][1]
    assert not plain.virtual_camera

    monkeypatch.delitem(sys.modules, "pyvirtualcam")
    pytest.importorskip("pyvirtualcam")
    changes.clear()
    plain.start_virtual_camera()
    stream(qtbot, plain, half(astronaut()))
    qtbot.waitUntil(lambda: bool(changes))
    assert changes[0][0] is False and "virtual camera" in changes[0][1]
    assert all("Traceback" not in e for e in errors)


def test_missing_insightface_models_are_a_sentence_and_classic_brings_it_back(
    make_worker: Any, qtbot: Any, photos: dict[str, Path]
) -> None:
    worker, jobs = make_worker(options=FaceSwapOptions(engine="insightface"))
    errors: list[str] = []
    worker.error.connect(errors.append)
    qtbot.waitUntil(lambda: worker.state == "failed", timeout=WAIT)
    message = failure(qtbot, jobs, worker.set_source([photos["source"]]))
    assert message.startswith("Face swap could not start:")
    assert "model manager" in message or "download" in message.lower()
    assert "Traceback" not in message
    worker.set_param("engine", "classic")
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    assert worker.engine_name == "classic"
    assert finished(qtbot, jobs, worker.set_source([photos["source"]])).count == 1


class BrokenPipeline:
    engine_name = "classic"
    timings: dict[str, float] = {}
    warning = None

    def __init__(self, store: Any, options: FaceSwapOptions) -> None:
        self.options = options

    def load(self) -> None:
        pass

    def set_param(self, name: str, value: Any) -> None:
        pass

    def process(self, frame: np.ndarray) -> np.ndarray:
        raise RuntimeError("the swapper exploded\nwith a second line")

    def close(self) -> None:
        pass


def test_stream_errors_are_one_sentence(make_worker: Any, qtbot: Any) -> None:
    worker, _ = make_worker(pipeline_factory=BrokenPipeline)
    errors: list[str] = []
    worker.error.connect(errors.append)
    worker.push(StreamItem(half(astronaut())))
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT)
    assert errors == ["Face swap: the swapper exploded. (details in the log)"]
    assert worker.take_result() is None


def test_a_missing_source_view_reaches_the_page_as_a_warning(
    make_worker: Any, qtbot: Any, photos: dict[str, Path], tmp_path: Path
) -> None:
    """A target face turned away from every source photo: the still is left as it is, the worker warns
    with the one sentence that names the photo to add, and Save writes nothing."""
    from face_views import posed

    worker, jobs = make_worker(options=FaceSwapOptions(engine="classic"))
    warnings: list[str] = []
    worker.warning.connect(warnings.append)
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=WAIT)
    front = tmp_path / "front.png"
    cv2.imwrite(str(front), astronaut())
    finished(qtbot, jobs, worker.set_source([front]))
    turned = tmp_path / "turned.png"
    cv2.imwrite(str(turned), posed(30))
    still = finished(qtbot, jobs, worker.render_image(turned))
    assert still.faces_found == 1 and still.faces_swapped == 0
    qtbot.waitUntil(lambda: any("add a photo looking to the right of the picture" in w for w in warnings), timeout=WAIT)
    message = failure(qtbot, jobs, worker.swap_image(turned, tmp_path / "out.png"))
    assert "add a photo looking to the right of the picture" in message and "Nothing was saved" in message
    assert not (tmp_path / "out.png").exists()
