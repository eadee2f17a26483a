"""The InsightFace engine on small ONNX models built by the tests, loaded by the real insightface code
from a model store laid out as the studio's (nothing is downloaded: every download path fails)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_fixtures import (
    ASTRONAUT_BOX,
    ASTRONAUT_FACE_BOX,
    ASTRONAUT_KPS,
    ENHANCE_SHIFT,
    SECOND_FACE_BOX,
    SECOND_KPS,
    SWAP_TINT_RGB,
    astronaut,
    install_face_models,
    second_face,
    two_faces,
)

from workers.errors import UserError
from workers.face_swap.enhancer import Enhancer, load_enhancer, paste_region
from workers.face_swap.insight import InsightEngine, align_matrix, kps_from_106
from workers.face_swap.options import Face, FaceSwapOptions, engine_status
from workers.face_swap.swappers import OnnxSwapper

pytest.importorskip("insightface")


class DownloadAttempted(AssertionError):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise DownloadAttempted(f"a download was attempted: {args!r}")


def _block_downloads(mp: pytest.MonkeyPatch) -> None:
    import importlib
    import urllib.request

    import requests

    # insightface.utils re-exports functions named like its modules: import the modules by name.
    download = importlib.import_module("insightface.utils.download")
    storage = importlib.import_module("insightface.utils.storage")
    face_analysis = importlib.import_module("insightface.app.face_analysis")
    model_zoo = importlib.import_module("insightface.model_zoo.model_zoo")

    mp.setattr(download, "download_file", _refuse)
    mp.setattr(storage, "download_file", _refuse)
    mp.setattr(storage, "download", _refuse)
    mp.setattr(storage, "ensure_available", _refuse)
    mp.setattr(face_analysis, "ensure_available", _refuse)
    mp.setattr(model_zoo, "download_onnx", _refuse)
    mp.setattr(requests, "get", _refuse)
    mp.setattr(requests.Session, "request", _refuse)
    mp.setattr(urllib.request, "urlopen", _refuse)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_downloads(monkeypatch)


@pytest.fixture(scope="module")
def face_store(tmp_path_factory: pytest.TempPathFactory):
    return install_face_models(tmp_path_factory.mktemp("face-models") / "models")


@pytest.fixture(scope="module")
def engine(face_store) -> Iterator[InsightEngine]:
    with pytest.MonkeyPatch.context() as mp:
        _block_downloads(mp)
        eng = InsightEngine(face_store, device="cpu")
        eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def source(engine: InsightEngine):
    return engine.prepare_source([second_face()])


def _iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def _changed(a: np.ndarray, b: np.ndarray, threshold: int = 2) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > threshold


# ---- the fixtures themselves -----------------------------------------------------------------------
def test_fixture_faces_are_found_by_dlib() -> None:
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    rgb = np.ascontiguousarray(astronaut()[:, :, ::-1])
    boxes, _scores, _ = detector.run(rgb, 1, 0.5)
    assert len(boxes) == 1
    r = boxes[0]
    assert _iou((r.left(), r.top(), r.right(), r.bottom()), ASTRONAUT_BOX) > 0.9
    boxes, _, _ = detector.run(np.ascontiguousarray(second_face()[:, :, ::-1]), 1, 0.3)
    assert len(boxes) == 1
    boxes, _, _ = detector.run(np.ascontiguousarray(two_faces()[:, :, ::-1]), 1, 0.3)
    assert len(boxes) == 2


def test_store_resolves_every_face_model(face_store) -> None:
    for model_id in ("insightface-buffalo-l", "insightface-buffalo-s", "inswapper-128", "inswapper-128-fp16"):
        assert face_store.state(model_id).usable, model_id
    pack = Path(face_store.path_of("insightface-buffalo-l"))
    assert pack == face_store.root / "insightface-buffalo-l"
    assert {p.name for p in pack.glob("*.onnx")} == {"det_10g.onnx", "w600k_r50.onnx", "2d106det.onnx"}
    assert face_store.path_of("inswapper-128").name == "inswapper_128.onnx"
    assert face_store.path_of("gfpgan-1.4").name == "gfpgan_1.4.onnx"
    status = engine_status(face_store)
    assert status.active == "insightface" and status.insightface_ready


def test_real_insightface_classes_load_the_fixtures(engine: InsightEngine) -> None:
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.inswapper import INSwapper
    from insightface.model_zoo.landmark import Landmark
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(engine._det, SCRFD)
    assert engine._det.use_kps and engine._det.fmc == 3
    assert isinstance(engine._rec, ArcFaceONNX)
    assert isinstance(engine._lmk, Landmark) and engine._lmk.taskname == "landmark_2d_106"
    assert isinstance(engine._swapper, OnnxSwapper) and engine._swapper.spec.template == "arcface_128"
    assert engine._swapper.emap is not None and engine._swapper.emap.shape == (512, 512)
    assert engine.providers == ["CPUExecutionProvider"]
    # The swapper contract gives what insightface's own inswapper class gives for the same face.
    reference = INSwapper(str(engine.store.path_of("inswapper-128")))
    img = astronaut()
    face = engine.detect(img)[0]
    source = engine.prepare_source([second_face()])
    from insightface.app.common import Face as InsightFace

    ref_fake, ref_m = reference.get(
        img, InsightFace(kps=face.kps), InsightFace(embedding=source.embedding), paste_back=False
    )
    ours, m = engine.swap_crop(img, face.kps, source)
    assert np.allclose(m, ref_m, atol=1e-3)
    assert np.allclose(engine.latent(source.embedding), _ref_latent(reference, source), atol=1e-5)
    inner = (slice(16, 112), slice(16, 112))  # the borders differ by how the crop's outside is filled
    assert np.abs(ours[inner].astype(int) - ref_fake[inner].astype(int)).mean() < 2.0


# ---- detection, landmarks, identity ---------------------------------------------------------------
def _ref_latent(reference, source) -> np.ndarray:
    latent = source.embedding.reshape(1, -1) @ reference.emap
    return latent / np.linalg.norm(latent)


def test_detects_the_fixture_face(engine: InsightEngine) -> None:
    faces = engine.detect(astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert np.allclose(face.bbox, ASTRONAUT_FACE_BOX, atol=1.0)
    assert np.allclose(face.kps, ASTRONAUT_KPS, atol=1.0)
    assert _iou(face.bbox, ASTRONAUT_BOX) > 0.6
    assert face.score == pytest.approx(0.9)
    assert face.landmarks is not None and face.landmarks.shape == (106, 2)
    assert np.allclose(kps_from_106(face.landmarks)[:3], ASTRONAUT_KPS[:3], atol=2.0)


def test_detection_scales_with_the_image_and_det_size(face_store) -> None:
    eng = InsightEngine(face_store, device="cpu", det_size=320)
    eng.load()
    big = cv2.resize(astronaut(), (1024, 1024))
    faces = eng.detect(big)
    assert len(faces) == 1
    assert np.allclose(faces[0].bbox, np.array(ASTRONAUT_FACE_BOX) * 2, atol=3.0)
    assert len(eng.detect(two_faces())) == 2
    assert eng.detect(np.full((240, 320, 3), 120, np.uint8)) == []
    eng.close()


def test_landmarks_follow_a_moved_box(engine: InsightEngine) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    shift = np.float32([[1, 0, 7], [0, 1, -4]])
    moved = cv2.warpAffine(img, shift, (512, 512))
    tracked = face.scaled(1.0, (7.0, -4.0))
    refreshed = engine.landmarks(moved, [tracked])
    assert len(refreshed) == 1
    assert np.allclose(refreshed[0].kps, np.asarray(ASTRONAUT_KPS) + np.array([7, -4]), atol=0.6)
    assert refreshed[0].landmarks is not None and refreshed[0].landmarks.shape == (106, 2)
    # A face without dense landmarks (from another engine) gets its key points from the 106.
    bare = Face(tracked.bbox, tracked.kps)
    assert np.allclose(
        engine.landmarks(moved, [bare])[0].kps[:3], np.asarray(ASTRONAUT_KPS[:3]) + np.array([7, -4]), atol=2
    )


def test_embeddings_are_normalised_and_tell_faces_apart(engine: InsightEngine) -> None:
    img = astronaut()
    a = engine.embed(img, engine.detect(img)[0])
    assert a is not None and a.shape == (512,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    big = cv2.resize(img, (700, 700))
    a2 = engine.embed(big, engine.detect(big)[0])
    assert engine.similarity(a, a2) > 0.9
    other = second_face()
    b = engine.embed(other, engine.detect(other)[0])
    assert engine.similarity(a, b) < 0.35


def test_prepare_source_averages_and_refuses_a_photo_without_face(engine: InsightEngine) -> None:
    one = engine.prepare_source([second_face()])
    two = engine.prepare_source([second_face(), cv2.resize(second_face(), (400, 400))])
    assert two.count == 2 and len(two.faces) == 2 and len(two.images) == 2
    assert np.linalg.norm(two.embedding) == pytest.approx(1.0, abs=1e-5)
    assert engine.similarity(one.embedding, two.embedding) > 0.95
    face = two.faces[0]
    crop = two.images[0]
    assert 0 <= face.bbox[0] < crop.shape[1] and 0 <= face.bbox[1] < crop.shape[0]
    with pytest.raises(UserError, match="No face was found in source photo 2"):
        engine.prepare_source([second_face(), np.full((200, 200, 3), 90, np.uint8)])


# ---- swapping ----------------------------------------------------------------------------------
def test_swap_changes_only_the_face_region_by_the_swappers_tint(engine: InsightEngine, source) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    out = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False))
    changed = _changed(out, img)
    assert changed.sum() > 3000
    # Nothing changes outside the region the 128 crop maps back to.
    m = align_matrix(face.kps, 128)
    x1, y1, x2, y2 = paste_region(cv2.invertAffineTransform(m), 128, img.shape)
    outside = np.ones(changed.shape, bool)
    outside[y1:y2, x1:x2] = False
    assert not changed[outside].any()
    ys, xs = np.nonzero(changed)
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE_BOX
    grow = 0.3 * (fx2 - fx1)
    assert fx1 - grow < xs.min() and xs.max() < fx2 + grow and fy1 - grow < ys.min() and ys.max() < fy2 + grow
    # In the middle of the face the swapper's output is pasted whole: half the face, half the tint.
    cx, cy = (int(v) for v in np.asarray(ASTRONAUT_KPS).mean(axis=0))
    patch = (slice(cy - 6, cy + 6), slice(cx - 6, cx + 6))
    before = img[patch].astype(np.float32).mean(axis=(0, 1))
    after = out[patch].astype(np.float32).mean(axis=(0, 1))
    expected = 0.5 * before + 0.5 * 255 * np.asarray(SWAP_TINT_RGB[::-1])
    assert np.allclose(after, expected, atol=15), (before, after, expected)
    assert after[1] > before[1] + 5 and after[2] < before[2] - 40  # greener, much less red


def test_swap_depends_on_the_source_face(engine: InsightEngine, source) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    opts = FaceSwapOptions(color_match=False)
    own = engine.prepare_source([astronaut()])
    a = engine.swap(img.copy(), face, source, opts)
    b = engine.swap(img.copy(), face, own, opts)
    assert np.abs(a.astype(int) - b.astype(int)).max() > 3


def test_opacity_mask_and_mouth(engine: InsightEngine, source) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    full = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False))
    none = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False, opacity=0.0))
    assert np.array_equal(none, img)
    half = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False, opacity=0.5))
    d_full = np.abs(full.astype(int) - img).sum()
    d_half = np.abs(half.astype(int) - img).sum()
    assert 0.4 * d_full < d_half < 0.6 * d_full
    # A wider blur and erosion change fewer pixels at full strength.
    soft = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False, mask_blur=40, mask_erode=20))
    assert (np.abs(soft.astype(int) - img).max(axis=2) > 60).sum() < (
        np.abs(full.astype(int) - img).max(axis=2) > 60
    ).sum()
    # The mouth mask keeps the target's own mouth.
    mouthy = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False, mouth_mask=True))
    mx, my = (int(v) for v in (np.asarray(ASTRONAUT_KPS[3]) + np.asarray(ASTRONAUT_KPS[4])) / 2)
    mouth = (slice(my - 3, my + 4), slice(mx - 8, mx + 9))
    assert (
        np.abs(mouthy[mouth].astype(int) - img[mouth]).mean()
        < 0.3 * np.abs(full[mouth].astype(int) - img[mouth]).mean()
    )


def test_colour_match_pulls_the_new_face_towards_the_target(engine: InsightEngine, source) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    raw = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=False))
    matched = engine.swap(img.copy(), face, source, FaceSwapOptions(color_match=True))
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE_BOX)
    region = (slice(y1 + 20, y2 - 20), slice(x1 + 20, x2 - 20))
    target_mean = img[region].reshape(-1, 3).mean(axis=0)
    assert (
        np.abs(matched[region].reshape(-1, 3).mean(axis=0) - target_mean).sum()
        < 0.5 * np.abs(raw[region].reshape(-1, 3).mean(axis=0) - target_mean).sum()
    )


def test_swaps_each_face_of_two(engine: InsightEngine, source) -> None:
    img = two_faces()
    faces = sorted(engine.detect(img), key=lambda f: f.center[0])
    assert len(faces) == 2
    out = img.copy()
    for face in faces:
        out = engine.swap(out, face, source, FaceSwapOptions(color_match=False))
    changed = _changed(out, img)
    assert changed[:, :320].sum() > 2000 and changed[:, 320:].sum() > 2000
    assert not changed[:, 300:340].any() or changed[:, 300:340].sum() < 50


def test_half_precision_swapper(face_store, source) -> None:
    eng = InsightEngine(face_store, swapper="inswapper-128-fp16", device="cpu")
    eng.load()
    assert eng._swap_dtype == np.float16
    img = astronaut()
    face = eng.detect(img)[0]
    out16 = eng.swap(img.copy(), face, source, FaceSwapOptions(color_match=False))
    eng.close()
    fp32 = InsightEngine(face_store, device="cpu")
    out32 = fp32.swap(img.copy(), face, source, FaceSwapOptions(color_match=False))
    assert _changed(out16, img).sum() > 3000
    assert np.abs(out16.astype(int) - out32.astype(int)).max() <= 3


def test_gpu_preset_prefers_the_half_precision_build(face_store) -> None:
    eng = InsightEngine(face_store, preset="gpu", device="cpu")
    eng.load()
    assert eng.swapper_id == "inswapper-128-fp16"
    eng.close()


def test_pack_zipped_in_a_subfolder(tmp_path: Path) -> None:
    store = install_face_models(
        tmp_path / "models", models=["insightface-buffalo-s", "inswapper-128"], pack_subfolder=True
    )
    eng = InsightEngine(store, device="cpu")
    eng.load()
    assert eng.pack == "insightface-buffalo-s"
    assert eng.pack_folder is not None and eng.pack_folder.name == "buffalo_s"
    assert len(eng.detect(astronaut())) == 1


# ---- the enhancer --------------------------------------------------------------------------------
def test_enhancer_changes_the_face_crop_only(engine: InsightEngine) -> None:
    img = astronaut()
    face = engine.detect(img)[0]
    enhancer = engine.enhancer("gfpgan-1.4")
    assert isinstance(enhancer, Enhancer) and enhancer.size == 512
    assert engine.enhancer("gfpgan-1.4") is enhancer
    out = enhancer.enhance(img.copy(), face)
    changed = _changed(out, img)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 3000
    x1, y1, x2, y2 = ASTRONAUT_FACE_BOX
    w, h = x2 - x1, y2 - y1
    assert xs.min() > x1 - 0.4 * w and xs.max() < x2 + 0.4 * w
    assert ys.min() > y1 - 0.4 * h and ys.max() < y2 + 0.4 * h
    cx, cy = (int(v) for v in np.asarray(ASTRONAUT_KPS).mean(axis=0))
    lift = out[cy - 5 : cy + 5, cx - 5 : cx + 5].astype(int) - img[cy - 5 : cy + 5, cx - 5 : cx + 5]
    assert abs(float(np.median(lift)) - ENHANCE_SHIFT * 127.5) < 8


def test_gpen_enhancer_through_the_store(face_store) -> None:
    enhancer = load_enhancer(face_store, "gpen-bfr-512")
    img = second_face()
    face = Face(np.asarray(SECOND_FACE_BOX, np.float32), np.asarray(SECOND_KPS, np.float32))
    out = enhancer.enhance(img.copy(), face)
    assert _changed(out, img).sum() > 3000


# ---- missing models --------------------------------------------------------------------------------
def test_missing_models_name_what_to_download(tmp_path: Path) -> None:
    store = install_face_models(tmp_path / "models", models=[])
    eng = InsightEngine(store, device="cpu")
    with pytest.raises(UserError) as info:
        eng.load()
    text = str(info.value)
    assert "buffalo_l" in text and "inswapper 128" in text and "model manager" in text
    assert "\n" not in text and "Traceback" not in text
    with pytest.raises(UserError, match=r"GFPGAN 1\.4 face enhancer is not installed"):
        load_enhancer(store, "gfpgan-1.4")


def test_missing_swapper_only(tmp_path: Path) -> None:
    store = install_face_models(tmp_path / "models", models=["insightface-buffalo-l"])
    with pytest.raises(UserError, match=r"needs inswapper 128: download it in the model manager"):
        InsightEngine(store, device="cpu").load()


# ---- through the pipeline ----------------------------------------------------------------------------
def test_pipeline_uses_the_insightface_engine(face_store) -> None:
    from workers.face_swap.pipeline import FaceSwapPipeline

    pipeline = FaceSwapPipeline(face_store, FaceSwapOptions(engine="insightface", mark=False, color_match=False))
    pipeline.load()
    try:
        assert pipeline.engine_name == "insightface"
        pipeline.set_source([second_face()])
        result = pipeline.swap_image(astronaut())
        assert result.engine == "insightface"
        assert result.faces_found == 1 and result.faces_swapped == 1
        assert _changed(result.image, astronaut()).sum() > 3000
    finally:
        pipeline.close()
