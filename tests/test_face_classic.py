"""The classic face engine on real photos with the real dlib models (shipped in face-recognition-models)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from face_fixtures import ASTRONAUT_BOX, astronaut, second_face

from workers.errors import UserError
from workers.face_swap import blend
from workers.face_swap.classic import ClassicEngine, extended_points, kps_from_68
from workers.face_swap.engines import FaceEngine
from workers.face_swap.options import Face, FaceSwapOptions
from workers.models.store import ModelStore


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> ClassicEngine:
    store = ModelStore(tmp_path_factory.mktemp("models"))
    eng = ClassicEngine(store)
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def target(engine: ClassicEngine) -> tuple[np.ndarray, Face]:
    image = astronaut()
    faces = engine.detect(image)
    assert len(faces) == 1
    return image, faces[0]


@pytest.fixture(scope="module")
def other_source(engine: ClassicEngine):
    return engine.prepare_source([second_face()])


def _face_alpha(face: Face, shape: tuple[int, ...], shrink: int = 6) -> np.ndarray:
    """The inside of a face's jaw-and-brow outline, pulled in by ``shrink`` px (bool)."""
    assert face.landmarks is not None
    mask = blend.hull_mask(face.landmarks[:27], shape)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
    return cv2.erode(mask, kernel) > 0


def _swap(engine: ClassicEngine, target, source, *, seamless: bool = True, **opts) -> np.ndarray:
    image, face = target
    engine.seamless = seamless
    try:
        return engine.swap(image.copy(), face, source, FaceSwapOptions(**opts))
    finally:
        engine.seamless = True


def test_follows_the_face_engine_protocol(engine: ClassicEngine) -> None:
    assert isinstance(engine, FaceEngine)
    assert engine.name == "classic"


def test_detect_finds_the_astronaut_with_68_landmarks(target) -> None:
    _image, face = target
    assert np.abs(face.bbox - np.array(ASTRONAUT_BOX, np.float32)).max() < 12
    assert face.landmarks is not None and face.landmarks.shape == (68, 2)
    assert face.kps.shape == (5, 2)
    # Key points in image order: left eye, right eye, nose, left and right mouth corners.
    left_eye, right_eye, nose, mouth_l, mouth_r = face.kps
    assert left_eye[0] < nose[0] < right_eye[0]
    assert mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    x1, y1, x2, _y2 = face.bbox
    inside = (face.landmarks[:, 0] > x1 - 10) & (face.landmarks[:, 0] < x2 + 10) & (face.landmarks[:, 1] > y1 - 20)
    assert inside.all()


def test_detect_finds_no_face_on_a_flat_picture(engine: ClassicEngine) -> None:
    assert engine.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_landmarks_refresh_on_a_given_box(engine: ClassicEngine, target) -> None:
    image, face = target
    moved = Face(face.bbox + np.float32(2), face.kps, None, None, face.score)
    (fresh,) = engine.landmarks(image, [moved])
    assert fresh.landmarks is not None and fresh.landmarks.shape == (68, 2)
    assert np.abs(fresh.bbox - moved.bbox).max() == 0
    assert np.linalg.norm(fresh.landmarks - face.landmarks, axis=1).mean() < 3


def test_embeddings_tell_the_two_faces_apart(engine: ClassicEngine, target, other_source) -> None:
    image, face = target
    mine = engine.embed(image, face)
    assert mine is not None and mine.shape == (128,)
    assert abs(float(np.linalg.norm(mine)) - 1) < 1e-4
    mirrored = np.ascontiguousarray(image[:, ::-1])
    again = engine.embed(mirrored, engine.detect(mirrored)[0])
    assert engine.similarity(mine, again) > 0.6  # the same person
    assert engine.similarity(mine, other_source.embedding) < FaceSwapOptions().reference_similarity


def test_prepare_source_averages_and_keeps_crops(engine: ClassicEngine) -> None:
    photos = [astronaut(), np.ascontiguousarray(astronaut()[:, ::-1])]
    source = engine.prepare_source(photos)
    assert source.count == 2 and len(source.faces) == 2 and len(source.images) == 2
    assert source.embedding is not None and abs(float(np.linalg.norm(source.embedding)) - 1) < 1e-4
    for crop, face in zip(source.images, source.faces, strict=True):
        assert face.landmarks is not None
        h, w = crop.shape[:2]
        assert max(h, w) < 512  # a crop, not the whole photo
        assert (face.landmarks >= 0).all() and (face.landmarks[:, 0] < w).all() and (face.landmarks[:, 1] < h).all()


def test_prepare_source_without_a_face_is_a_sentence(engine: ClassicEngine) -> None:
    with pytest.raises(UserError, match="No face was found in source photo 2"):
        engine.prepare_source([astronaut(), np.full((200, 200, 3), 90, np.uint8)])
    with pytest.raises(UserError):
        engine.prepare_source([])


def test_swap_changes_the_face_and_nothing_far_from_it(engine: ClassicEngine, target, other_source) -> None:
    image, face = target
    out = _swap(engine, target, other_source)
    assert out.shape == image.shape and out.dtype == np.uint8
    inside = _face_alpha(face, image.shape)
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    assert diff[inside].mean() > 8
    # Pixels beyond the face and forehead are the original's, bit for bit.
    x1, y1, x2, y2 = blend.crop_box(extended_points(face.landmarks), image.shape, margin=6)
    far = np.ones(image.shape[:2], bool)
    far[y1:y2, x1:x2] = False
    assert far.sum() > 0.8 * far.size
    assert diff[far].max() == 0


def test_swapped_face_keeps_the_target_geometry(engine: ClassicEngine, target, other_source) -> None:
    _image, face = target
    out = _swap(engine, target, other_source)
    found = engine.detect(out)
    assert len(found) == 1
    size = blend.face_size(face.landmarks)
    error = np.linalg.norm(found[0].landmarks - face.landmarks, axis=1)
    assert error.mean() < 0.05 * size

    # The source's own layout (relative to its eyes) differs more from the target than the result does.
    def layout(lm: np.ndarray) -> np.ndarray:
        kps = kps_from_68(lm)
        eye_dist = np.linalg.norm(kps[1] - kps[0])
        return (lm - kps[:2].mean(axis=0)) / eye_dist

    src_lm = other_source.faces[0].landmarks
    assert (
        np.abs(layout(found[0].landmarks) - layout(face.landmarks)).mean()
        < np.abs(layout(src_lm) - layout(face.landmarks)).mean()
    )


def test_mouth_mask_keeps_the_target_mouth(engine: ClassicEngine, target, other_source) -> None:
    image, face = target
    mouth = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(face.landmarks[60:68]).astype(np.int32)], 255)
    mouth = cv2.erode(mouth, np.ones((3, 3), np.uint8)) > 0
    assert mouth.sum() > 20
    kept = _swap(engine, target, other_source, mouth_mask=True)
    swapped = _swap(engine, target, other_source, mouth_mask=False)
    kept_diff = np.abs(kept.astype(np.int16) - image.astype(np.int16))[mouth]
    swapped_diff = np.abs(swapped.astype(np.int16) - image.astype(np.int16))[mouth]
    assert kept_diff.max() <= 2
    assert swapped_diff.mean() > 5 * max(kept_diff.mean(), 0.5)


def test_color_match_moves_face_colours_toward_the_target(engine: ClassicEngine, target) -> None:
    image, face = target
    hsv = cv2.cvtColor(second_face(), cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 60) % 180  # a strongly green-blue face
    odd = engine.prepare_source([cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)])
    inside = _face_alpha(face, image.shape, shrink=10)

    def lab_mean(bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)[inside].astype(np.float32).mean(axis=0)

    goal = lab_mean(image)
    matched = lab_mean(_swap(engine, target, odd, seamless=False, color_match=True))
    plain = lab_mean(_swap(engine, target, odd, seamless=False, color_match=False))
    assert np.linalg.norm(matched - goal) < 0.5 * np.linalg.norm(plain - goal)


def test_opacity_zero_returns_the_original(engine: ClassicEngine, target, other_source) -> None:
    image, _face = target
    assert np.array_equal(_swap(engine, target, other_source, opacity=0.0), image)
    half = _swap(engine, target, other_source, opacity=0.5, seamless=False).astype(np.int16)
    full = _swap(engine, target, other_source, opacity=1.0, seamless=False).astype(np.int16)
    inside = _face_alpha(target[1], image.shape)
    to_full = np.abs(full - image)[inside].mean()
    to_half = np.abs(half - image)[inside].mean()
    assert 0.3 * to_full < to_half < 0.7 * to_full


def test_mask_settings_scale_the_blended_area(engine: ClassicEngine, target, other_source) -> None:
    image, _face = target

    def changed(**opts) -> int:
        out = _swap(engine, target, other_source, seamless=False, **opts)
        return int((np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2) > 0).sum())

    assert changed(mask_erode=30, mask_blur=0) < changed(mask_erode=0, mask_blur=0)


def test_face_partly_outside_the_frame_is_swapped_without_error(engine: ClassicEngine, other_source) -> None:
    image = astronaut()[60:, 185:]  # the face's top-left corner cut off
    faces = engine.detect(np.ascontiguousarray(image)) or engine.landmarks(
        image, [Face(np.array([-10, 16, 80, 106], np.float32), np.zeros((5, 2), np.float32))]
    )
    out = engine.swap(np.ascontiguousarray(image).copy(), faces[0], other_source, FaceSwapOptions())
    assert out.shape == image.shape


def test_missing_models_are_a_sentence(tmp_path: Path) -> None:
    eng = ClassicEngine(models_dir=tmp_path)
    with pytest.raises(UserError, match="face-recognition-models"):
        eng.load()
    with pytest.raises(UserError):
        ClassicEngine(detector="nonsense")
