"""The face-swap pipeline with the classic engine: targets, face map, reference, live tracking, the mark."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from face_fixtures import astronaut, moving_frames, second_face, two_faces

from workers.engine import Engine
from workers.errors import UserError
from workers.face_swap.classic import ClassicEngine
from workers.face_swap.mark import mark_geometry
from workers.face_swap.options import (
    Face,
    FaceSwapOptions,
    SourceFace,
    coerce_option,
    engine_status,
)
from workers.face_swap.pipeline import STAGES, FaceSwapPipeline
from workers.models.store import ModelStore


class Spy:
    """A face engine that counts detections and records swaps, doing the real work with ``inner``."""

    def __init__(self, inner: ClassicEngine) -> None:
        self.inner = inner
        self.name = inner.name
        self.detects = 0
        self.swaps: list[tuple[Face, SourceFace]] = []
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def seamless(self) -> bool:
        return self.inner.seamless

    @seamless.setter
    def seamless(self, value: bool) -> None:
        self.inner.seamless = value

    def load(self) -> None:
        self.inner.load()

    def detect(self, bgr: np.ndarray) -> list[Face]:
        self.detects += 1
        return self.inner.detect(bgr)

    def swap(self, frame: np.ndarray, target: Face, source: SourceFace, options: FaceSwapOptions) -> np.ndarray:
        self.swaps.append((target, source))
        return self.inner.swap(frame, target, source, options)

    def close(self) -> None:
        self.closed = True  # the shared engine stays loaded for the other tests


@pytest.fixture(scope="module")
def classic() -> ClassicEngine:
    engine = ClassicEngine()
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def embeddings(classic: ClassicEngine) -> dict[str, np.ndarray]:
    return {
        "astronaut": classic.prepare_source([astronaut()]).embedding,
        "second": classic.prepare_source([second_face()]).embedding,
    }


@pytest.fixture
def spy(classic: ClassicEngine) -> Spy:
    return Spy(classic)


def make_pipeline(spy: Spy, **options: Any) -> FaceSwapPipeline:
    options.setdefault("engine", "classic")
    pipeline = FaceSwapPipeline(None, FaceSwapOptions(**options), engine_factory=lambda name: spy)
    pipeline.load()
    return pipeline


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 0


def identity_of(source: SourceFace, embeddings: dict[str, np.ndarray], classic: ClassicEngine) -> str:
    return max(embeddings, key=lambda k: classic.similarity(source.embedding, embeddings[k]))


# ---- basics ------------------------------------------------------------------------------------
def test_pipeline_follows_the_engine_protocol(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    assert isinstance(pipeline, Engine)
    assert pipeline.engine_name == "classic"


def test_no_source_returns_the_frame_untouched(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    frame = astronaut()
    before = frame.copy()
    out = pipeline.process(frame)
    assert out is frame
    assert np.array_equal(out, before)
    assert spy.detects == 0 and not spy.swaps
    assert pipeline.timings == dict.fromkeys(STAGES, 0.0)
    with pytest.raises(UserError, match="face to use"):
        pipeline.swap_image(frame)


def test_clearing_the_source_stops_the_swap(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    assert pipeline.set_source([second_face()]) is not None
    frame = astronaut()
    assert pipeline.process(frame) is not frame
    pipeline.set_source([])
    assert pipeline.source is None
    assert pipeline.process(frame) is frame


def test_swap_image_swaps_the_face_and_marks_the_result(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    source = pipeline.set_source([second_face(), np.ascontiguousarray(second_face()[:, ::-1])])
    assert source is not None and source.count == 2
    image = astronaut()
    result = pipeline.swap_image(image)
    assert result.faces_found == 1 and result.faces_swapped == 1 and result.engine == "classic"
    assert set(STAGES) <= set(result.ms) and result.ms["detect"] > 0 and result.ms["swap"] > 0
    assert np.array_equal(image, astronaut())  # the input is not written to
    diff = changed(result.image, image)
    assert diff[100:150, 190:250].mean() > 0.5  # the face
    x1, y1, x2, y2 = mark_geometry(512, 512)
    assert diff[y1:y2, x1:x2].mean() > 0.2  # the mark (dark box, white letters)
    assert (result.image[y1:y2, x1:x2] > 200).all(axis=2).sum() > 30
    assert not diff[:, :120].any() and not diff[300:470].any()  # far from both


def test_mark_can_be_turned_off(spy: Spy) -> None:
    pipeline = make_pipeline(spy, mark=False)
    pipeline.set_source([second_face()])
    image = astronaut()
    result = pipeline.swap_image(image)
    x1, y1, x2, y2 = mark_geometry(512, 512)
    assert not changed(result.image, image)[y1:y2, x1:x2].any()
    assert result.ms["mark"] == 0


def test_detect_orders_faces_left_to_right(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    faces = pipeline.detect(two_faces())
    assert len(faces) == 2
    assert faces[0].center[0] < 320 < faces[1].center[0]


# ---- choosing targets --------------------------------------------------------------------------
def test_face_map_puts_each_source_on_its_target(spy: Spy, classic, embeddings) -> None:
    pipeline = make_pipeline(spy, face_map={0: 1, 1: 0})
    pipeline.set_source([astronaut(), second_face()])
    frame = two_faces()
    result = pipeline.swap_image(frame)
    assert result.faces_found == 2 and result.faces_swapped == 2
    by_side = sorted(spy.swaps, key=lambda pair: pair[0].center[0])
    # Source 0 (the astronaut's photo) goes onto target 1 (the right face), source 1 onto target 0.
    assert identity_of(by_side[0][1], embeddings, classic) == "second"
    assert identity_of(by_side[1][1], embeddings, classic) == "astronaut"
    diff = changed(result.image, frame)
    assert diff[90:150, 150:200].mean() > 0.5 and diff[90:150, 450:510].mean() > 0.5


def test_face_map_ignores_missing_faces(spy: Spy) -> None:
    pipeline = make_pipeline(spy, face_map={0: 5})
    pipeline.set_source([second_face()])
    result = pipeline.swap_image(two_faces())
    assert result.faces_found == 2 and result.faces_swapped == 0


def test_every_target_gets_the_averaged_source_without_a_map(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    source = pipeline.set_source([astronaut(), second_face()])
    result = pipeline.swap_image(two_faces())
    assert result.faces_swapped == 2
    assert all(s is source for _t, s in spy.swaps)


@pytest.mark.parametrize(
    ("target", "index", "side"), [("largest", 0, "right"), ("index", 0, "left"), ("index", 1, "right")]
)
def test_largest_and_index_targets(spy: Spy, target: str, index: int, side: str) -> None:
    pipeline = make_pipeline(spy, target=target, target_index=index)
    pipeline.set_source([second_face()])
    result = pipeline.swap_image(two_faces())
    assert result.faces_swapped == 1
    x = spy.swaps[0][0].center[0]
    assert (x < 320) == (side == "left")


def test_index_past_the_last_face_swaps_nothing(spy: Spy) -> None:
    pipeline = make_pipeline(spy, target="index", target_index=3)
    pipeline.set_source([second_face()])
    assert pipeline.swap_image(two_faces()).faces_swapped == 0


def test_reference_target_swaps_only_that_person(spy: Spy) -> None:
    pipeline = make_pipeline(spy, target="reference")
    pipeline.set_source([astronaut()])
    assert pipeline.swap_image(two_faces()).faces_swapped == 0  # no reference yet: nobody
    pipeline.set_reference(second_face())
    result = pipeline.swap_image(two_faces())
    assert result.faces_swapped == 1 and spy.swaps[-1][0].center[0] > 320
    pipeline.set_reference(np.ascontiguousarray(astronaut()[:, ::-1]))  # the same person, mirrored
    result = pipeline.swap_image(two_faces())
    assert result.faces_swapped == 1 and spy.swaps[-1][0].center[0] < 320
    with pytest.raises(UserError, match="reference photo"):
        pipeline.set_reference(np.full((100, 100, 3), 50, np.uint8))


def test_reference_works_on_the_live_path_and_is_measured_once_per_face(spy: Spy, monkeypatch) -> None:
    pipeline = make_pipeline(spy, target="reference", detect_every=2, mark=False)
    pipeline.set_source([astronaut()])
    pipeline.set_reference(second_face())
    calls = []
    real_embed = spy.inner.embed
    monkeypatch.setattr(spy.inner, "embed", lambda bgr, face: calls.append(1) or real_embed(bgr, face))
    frame = two_faces()
    for _ in range(4):
        pipeline.process(frame)
    assert len(spy.swaps) == 4 and all(t.center[0] > 320 for t, _s in spy.swaps)
    assert len(calls) == 2  # one per face, carried by the tracker


# ---- live path ---------------------------------------------------------------------------------
def test_live_path_detects_every_n_frames_and_tracks_in_between(spy: Spy, classic: ClassicEngine) -> None:
    pipeline = make_pipeline(spy, detect_every=3, detect_size=320, mark=False)
    pipeline.set_source([second_face()])
    detections = []
    for i, (frame, _shift) in enumerate(moving_frames(9, 640, 480, step=3.0)):
        before = frame.copy()
        out = pipeline.process(frame)
        assert np.array_equal(frame, before) and out is not frame
        detections.append(spy.detects)
        timings = pipeline.timings
        assert set(STAGES) <= set(timings)
        assert timings["swap"] > 0
        if i % 3:
            assert timings["track"] > 0 and timings["detect"] == 0
        (tracked,) = pipeline.faces
        fresh = classic.detect(frame)[0]  # full resolution, for comparison only
        size = fresh.width
        assert np.linalg.norm(tracked.landmarks - fresh.landmarks, axis=1).mean() < 2.0
        assert np.abs(tracked.bbox - fresh.bbox).max() < 0.2 * size
        assert changed(out, frame)[int(fresh.bbox[1]) + 20 : int(fresh.bbox[3]) - 10].any()
    assert detections == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # every third frame only
    assert pipeline.detections == 3


def test_classic_live_path_redetects_around_followed_faces(classic: ClassicEngine) -> None:
    """Between full-frame scans, the HOG engine looks again only in a crop around each face."""
    pipeline = FaceSwapPipeline(
        None, FaceSwapOptions(engine="classic", detect_every=2, mark=False), engine_factory=lambda name: classic
    )
    pipeline.load()
    pipeline.set_source([second_face()])
    for frame, _shift in moving_frames(16, 640, 480, step=3.0):
        out = pipeline.process(frame)
        (tracked,) = pipeline.faces
        fresh = classic.detect(frame)[0]
        assert np.linalg.norm(tracked.landmarks - fresh.landmarks, axis=1).mean() < 2.0
        assert changed(out, frame)[int(fresh.bbox[1]) + 20 : int(fresh.bbox[3]) - 10].any()
    assert pipeline.detections == 8
    assert pipeline.full_scans == 2  # the first detection and every fourth one scan the whole frame


def test_live_path_detects_again_when_the_face_is_lost(spy: Spy) -> None:
    pipeline = make_pipeline(spy, detect_every=10, detect_size=320, mark=False)
    pipeline.set_source([second_face()])
    frames = [f for f, _ in moving_frames(3, 640, 480)]
    for frame in frames[:2]:
        pipeline.process(frame)
    assert pipeline.detections == 1
    blank = np.full_like(frames[0], 60)
    out = pipeline.process(blank)
    assert pipeline.detections == 2 and pipeline.faces == []  # tracking failed: detected at once
    assert np.array_equal(out, blank)
    pipeline.process(frames[2])
    assert pipeline.detections == 3 and len(pipeline.faces) == 1


def test_live_frames_carry_the_mark(spy: Spy) -> None:
    pipeline = make_pipeline(spy)
    pipeline.set_source([second_face()])
    frame = np.full((240, 320, 3), 70, np.uint8)  # no face: only the mark changes
    out = pipeline.process(frame)
    x1, y1, x2, y2 = mark_geometry(320, 240)
    diff = changed(out, frame)
    assert diff[y1:y2, x1:x2].mean() > 0.3
    diff[y1:y2, x1:x2] = False
    assert not diff.any()
    assert pipeline.timings["mark"] > 0


# ---- settings ----------------------------------------------------------------------------------
def test_settings_change_live(spy: Spy) -> None:
    pipeline = make_pipeline(spy, mark=False)
    pipeline.set_source([second_face()])
    pipeline.set_param("opacity", 0)
    frame = astronaut()
    assert np.array_equal(pipeline.process(frame), frame)
    pipeline.set_param("preset", "gpu")
    assert pipeline.options.detect_every == 1 and pipeline.options.detect_size == 640
    pipeline.set_param("face_map", "0:1, 1:0")
    assert pipeline.options.face_map == {0: 1, 1: 0}
    with pytest.raises(UserError):
        pipeline.set_param("opacity", 3)
    with pytest.raises(UserError):
        pipeline.set_param("colour", 1)


def test_switching_engine_prepares_the_source_again(classic: ClassicEngine) -> None:
    built: list[Spy] = []

    def factory(name: str) -> Spy:
        built.append(Spy(classic))
        return built[-1]

    pipeline = FaceSwapPipeline(None, FaceSwapOptions(engine="classic"), engine_factory=factory)
    pipeline.load()
    first = pipeline.set_source([second_face()])
    pipeline.set_param("engine", "auto")  # no store: auto means classic, built afresh
    assert len(built) == 2 and built[0].closed and pipeline.source is not first
    assert pipeline.source is not None
    pipeline.close()
    assert built[1].closed and not pipeline.loaded


def test_missing_enhancer_is_a_warning_not_a_failure(spy: Spy, tmp_path) -> None:
    pipeline = FaceSwapPipeline(
        ModelStore(tmp_path), FaceSwapOptions(engine="classic", enhancer="gfpgan-1.4"), engine_factory=lambda n: spy
    )
    pipeline.load()
    pipeline.set_source([second_face()])
    result = pipeline.swap_image(astronaut())
    assert result.faces_swapped == 1
    assert pipeline.warning is not None and "enhancer" in pipeline.warning.lower()


# ---- engine choice -----------------------------------------------------------------------------
class ReadyStore:
    """A store that says every model is installed (for engine_status only)."""

    def state(self, model_id: str) -> SimpleNamespace:
        return SimpleNamespace(usable=True)

    def get(self, model_id: str) -> SimpleNamespace:
        return SimpleNamespace(name=model_id)


def test_engine_status_without_insightface_models(tmp_path) -> None:
    status = engine_status(ModelStore(tmp_path))
    assert status.active == "classic" and not status.insightface_ready
    assert status.missing == ["insightface-buffalo-l", "inswapper-128"]
    assert "download" in status.note
    assert engine_status(ModelStore(tmp_path), preset="gpu").missing[1] == "inswapper-128-fp16"
    ready = engine_status(ReadyStore())  # type: ignore[arg-type]
    assert ready.active == "insightface" and ready.insightface_ready and ready.missing == []


def test_auto_falls_back_to_classic_when_insightface_fails(classic: ClassicEngine) -> None:
    asked: list[str] = []

    def factory(name: str) -> Spy:
        asked.append(name)
        if name == "insightface":
            raise UserError("The InsightFace engine needs inswapper 128: download it in the model manager.")
        return Spy(classic)

    pipeline = FaceSwapPipeline(ReadyStore(), FaceSwapOptions(), engine_factory=factory)  # type: ignore[arg-type]
    pipeline.load()
    assert asked == ["insightface", "classic"]
    assert pipeline.engine_name == "classic"
    assert pipeline.warning and "classic engine" in pipeline.warning and "inswapper" in pipeline.warning
    strict = FaceSwapPipeline(ReadyStore(), FaceSwapOptions(engine="insightface"), engine_factory=factory)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="InsightFace"):
        strict.load()


def test_auto_without_models_uses_classic(tmp_path) -> None:
    pipeline = FaceSwapPipeline(ModelStore(tmp_path), FaceSwapOptions())
    pipeline.load()
    try:
        assert pipeline.engine_name == "classic" and pipeline.warning is None
    finally:
        pipeline.close()


# ---- options -----------------------------------------------------------------------------------
def test_options_are_checked_and_coerced() -> None:
    assert coerce_option("face_map", "0:1; 2=0") == {0: 1, 2: 0}
    assert coerce_option("face_map", [(1, 0)]) == {1: 0}
    assert coerce_option("mouth_mask", "yes") is True
    assert coerce_option("enhancer", " ") is None
    assert coerce_option("engine", "Classic") == "classic"
    for name, value in [("target", "everyone"), ("detect_every", 0), ("face_map", "0-1"), ("opacity", "x")]:
        with pytest.raises(UserError):
            coerce_option(name, value)
    gpu = FaceSwapOptions.for_preset("gpu", opacity=0.5)
    assert (gpu.preset, gpu.detect_every, gpu.detect_size, gpu.opacity) == ("gpu", 1, 640, 0.5)
    original = FaceSwapOptions(face_map={0: 1})
    copy = original.copy()
    copy.face_map[1] = 0
    assert original.face_map == {0: 1}


def test_compute_setting_reaches_the_insightface_engine(monkeypatch) -> None:
    import workers.face_swap.insight as insight

    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, store: Any, **kwargs: Any) -> None:
            seen.update(kwargs)
            raise UserError("stop here")

    monkeypatch.setattr(insight, "InsightEngine", Recorder)
    pipeline = FaceSwapPipeline(None, FaceSwapOptions(engine="insightface"), device="cpu")
    with pytest.raises(UserError, match="stop here"):
        pipeline.load()
    assert seen["device"] == "cpu"
