"""The classic engine with turned, small and grey faces: RetinaFace detection, head pose, the source
view chosen per target face, the sentence for a missing view, colour from the target, mouths."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from face_fixtures import astronaut, second_face
from face_views import SMALL_FACE_BOX, cameraman, posed, small_face_frame, with_mouth

from snowai_studio import cli
from workers.errors import UserError
from workers.face_swap import blend
from workers.face_swap.classic import ClassicEngine
from workers.face_swap.options import Face, FaceSwapOptions
from workers.face_swap.pipeline import FaceSwapPipeline
from workers.face_swap.pose import head_pose, missing_view_sentence, mouth_open_ratio, view_of
from workers.face_swap.retina import decode, nms, priors, read_weights
from workers.face_swap.sources import pick_views
from workers.face_swap.warp import INNER_MOUTH, TEMPLATE, TRIANGLES, extended_points


@pytest.fixture(scope="module")
def engine() -> ClassicEngine:
    eng = ClassicEngine()
    eng.load()
    assert eng.detector == "retinaface"
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def hog() -> ClassicEngine:
    eng = ClassicEngine(detector="hog")
    eng.load()
    yield eng
    eng.close()


def only_face(engine: ClassicEngine, image: np.ndarray) -> Face:
    faces = engine.detect(image)
    assert len(faces) == 1
    return faces[0]


def swap(engine: ClassicEngine, target: np.ndarray, source, *, strict: bool = True, **opts) -> np.ndarray:
    engine.strict_views = strict
    try:
        return engine.swap(target.copy(), only_face(engine, target), source, FaceSwapOptions(**opts))
    finally:
        engine.strict_views = True


# ---- detection ---------------------------------------------------------------------------------
def test_a_small_face_that_hog_misses_is_found_with_landmarks(engine: ClassicEngine, hog: ClassicEngine) -> None:
    frame = small_face_frame()
    assert hog.detect(frame) == []
    face = only_face(engine, frame)
    x1, y1, x2, y2 = SMALL_FACE_BOX
    cx, cy = face.center
    assert x1 < cx < x2 and y1 < cy < y2
    assert face.landmarks is not None and face.landmarks.shape == (68, 2)
    # The landmarks sit on the small face: eyes above the nose, above the mouth.
    lm = face.landmarks
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:60, 1].mean()
    assert 25 < blend.face_size(lm) < 45


def test_a_face_seen_from_the_side_that_hog_misses_is_found(engine: ClassicEngine, hog: ClassicEngine) -> None:
    image = cameraman()
    assert hog.detect(image) == []
    face = only_face(engine, image)
    cx, cy = face.center
    assert 190 < cx < 260 and 110 < cy < 200
    assert face.kps[2, 0] > face.kps[:2, 0].max()  # the nose tip beyond both eyes: a face in profile


def test_the_anchors_and_decoding_follow_the_model_layout() -> None:
    anchors = priors(64, 96)
    assert anchors.shape == ((8 * 12 + 4 * 6 + 2 * 3) * 2, 4)
    assert np.allclose(anchors[0], [4 / 96, 4 / 64, 16 / 96, 16 / 64])
    assert np.allclose(anchors[1], [4 / 96, 4 / 64, 32 / 96, 32 / 64])  # two sizes per cell, cell by cell
    boxes, kps = decode(np.zeros((2, 4), np.float32), np.zeros((2, 10), np.float32), anchors[:2])
    assert np.allclose(boxes[0], [4 / 96 - 8 / 96, 4 / 64 - 8 / 64, 4 / 96 + 8 / 96, 4 / 64 + 8 / 64])
    assert np.allclose(kps[1], np.tile(anchors[1, :2], (5, 1)))
    keep = nms(np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32), np.array([0.9, 0.8, 0.7]), 0.4)
    assert keep == [0, 2]


def test_the_weights_are_read_without_running_the_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.py"
    path.write_text("import os\nos.environ['RAN'] = '1'\nWEIGHTS = b'\\x08\\x06onnx'\n")
    assert read_weights(path) == b"\x08\x06onnx"
    path.write_text("WEIGHTS = compute()\n")
    with pytest.raises(UserError, match="no face detector weights"):
        read_weights(path)


# ---- pose --------------------------------------------------------------------------------------
def test_pose_signs_on_turned_mirrored_and_rotated_faces(engine: ClassicEngine) -> None:
    def pose(image: np.ndarray):
        return head_pose(only_face(engine, image).landmarks)

    front = pose(astronaut())
    assert abs(front.yaw) < 5 and abs(front.pitch) < 6
    right, left = pose(posed(20)), pose(posed(-20))
    assert right.yaw > 10 and left.yaw < -10
    mirrored = pose(np.ascontiguousarray(posed(20)[:, ::-1]))
    assert mirrored.yaw < -10 and abs(mirrored.yaw + right.yaw) < 5
    up, down = pose(posed(0, 15)), pose(posed(0, -15))
    assert up.pitch > front.pitch + 8 and down.pitch < front.pitch - 8
    assert abs(up.yaw) < 5 and abs(down.yaw) < 5
    turn = cv2.getRotationMatrix2D((256, 256), -20, 1.0)  # 20 degrees clockwise, as the picture shows it
    rotated = pose(cv2.warpAffine(astronaut(), turn, (512, 512), borderMode=cv2.BORDER_REFLECT))
    assert 14 < rotated.roll - front.roll < 26
    assert abs(rotated.yaw - front.yaw) < 5 and abs(rotated.pitch - front.pitch) < 6


def test_mouth_open_ratio(engine: ClassicEngine) -> None:
    lm = only_face(engine, astronaut()).landmarks
    opened = mouth_open_ratio(only_face(engine, with_mouth(astronaut(), lm, True)).landmarks)
    closed = mouth_open_ratio(only_face(engine, with_mouth(astronaut(), lm, False)).landmarks)
    assert closed < 0.05 < 0.3 < opened


# ---- choosing the view -------------------------------------------------------------------------
def test_each_target_gets_the_view_turned_like_it(engine: ClassicEngine) -> None:
    source = engine.prepare_source([posed(-20), astronaut(), posed(20)])
    assert source.count == 3 and all(v is not None for v in source.views)
    for target, expected in ((posed(20), 2), (posed(-20), 0), (astronaut(), 1)):
        chosen, notice = engine.pick_view(source, only_face(engine, target).landmarks)
        assert chosen == (expected, False) and notice is None


def test_the_mouth_state_breaks_a_tie_between_views(engine: ClassicEngine) -> None:
    lm = only_face(engine, astronaut()).landmarks
    opened, closed = with_mouth(astronaut(), lm, True), with_mouth(astronaut(), lm, False)
    source = engine.prepare_source([closed, opened])
    assert engine.pick_view(source, only_face(engine, opened).landmarks)[0] == (1, False)
    assert engine.pick_view(source, only_face(engine, closed).landmarks)[0] == (0, False)


def test_a_photo_flipped_left_to_right_serves_a_face_turned_the_other_way(engine: ClassicEngine) -> None:
    source = engine.prepare_source([posed(-30)])
    target = posed(30)
    chosen, notice = engine.pick_view(source, only_face(engine, target).landmarks)
    assert chosen == (0, True) and notice is None
    out = swap(engine, target, source)
    assert not engine.skipped
    assert np.abs(out.astype(int) - target.astype(int)).max(axis=2)[90:170, 190:270].mean() > 4


def test_a_missing_view_is_named_and_the_face_left_alone(engine: ClassicEngine) -> None:
    source = engine.prepare_source([astronaut()])
    target = posed(30)
    out = swap(engine, target, source)
    assert engine.skipped and np.array_equal(out, target)
    assert engine.notice is not None and engine.notice.count(".") == 1  # one sentence
    assert "add a photo looking to the right of the picture" in engine.notice
    lenient = swap(engine, target, source, strict=False)  # live and video: the closest view all the same
    assert not engine.skipped and engine.notice is not None
    assert not np.array_equal(lenient, target)

    downward = engine.prepare_source([posed(0, -15)])
    swap(engine, posed(0, 15), downward)
    assert engine.skipped and "add a photo looking up." in engine.notice


def test_the_missing_view_sentence_reads_well() -> None:
    from workers.face_swap.pose import HeadPose, View, ViewChoice

    choice = ViewChoice(0, False, View(HeadPose(-30, 20, 0), 0.0), View(HeadPose(0, 0, 0), 0.0))
    sentence = missing_view_sentence(choice)
    assert sentence.endswith("add a photo looking up and to the left of the picture.")
    assert "the closest photo looks straight at the camera" in sentence


def test_a_source_with_no_usable_view_is_one_sentence(engine: ClassicEngine) -> None:
    with pytest.raises(UserError) as caught:
        engine.prepare_source([cameraman()])
    text = str(caught.value)
    assert "turned too far" in text and text.count(". ") == 0 and text.endswith(".")
    source = engine.prepare_source([astronaut(), cameraman()])  # the usable photo is kept
    assert source.views[0] is not None and source.views[1] is None
    assert len(source.notes) == 1 and "source photo 2" in source.notes[0]
    with pytest.raises(UserError, match="all 2 source photos"):
        engine.prepare_source([cameraman(), np.ascontiguousarray(cameraman()[:, ::-1])])


# ---- colour and mouths -------------------------------------------------------------------------
def _face_inside(face: Face, shape: tuple[int, ...], shrink: int = 8) -> np.ndarray:
    mask = blend.hull_mask(face.landmarks[:27], shape)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
    return cv2.erode(mask, kernel) > 0


def test_a_grey_source_takes_the_target_skin_colour(engine: ClassicEngine) -> None:
    grey = cv2.cvtColor(cv2.cvtColor(second_face(), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    source = engine.prepare_source([grey])
    target = astronaut()
    inside = _face_inside(only_face(engine, target), target.shape)

    def chroma(bgr: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)[inside].astype(np.float32)
        return lab[:, 1:].mean(axis=0) - 128

    face = only_face(engine, target)
    lips = (blend.polygon_mask(face.landmarks[48:60], target.shape) > 0) & ~(
        blend.polygon_mask(face.landmarks[60:68], target.shape) > 0
    )
    skin = inside & ~(blend.polygon_mask(face.landmarks[48:68], target.shape, grow_px=4) > 0)

    def redder_lips(bgr: np.ndarray) -> float:
        """How much redder the lips are than the skin (LAB a)."""
        a = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)[..., 1].astype(np.float32)
        return float(a[lips].mean() - a[skin].mean())

    goal = chroma(target)
    assert np.linalg.norm(goal) > 10 and redder_lips(target) > 3  # the target's skin and lips are coloured
    for seamless in (True, False):
        engine.seamless = seamless
        try:
            out = swap(engine, target, source)
        finally:
            engine.seamless = True
        assert np.linalg.norm(chroma(out) - goal) < 0.25 * np.linalg.norm(goal)
        # Not one flat skin tone over everything: the lips are coloured as lips.
        assert redder_lips(out) > 0.6 * redder_lips(target)
    engine.seamless = False
    try:
        plain = swap(engine, target, source, color_match=False)
    finally:
        engine.seamless = True
    assert np.linalg.norm(chroma(plain)) < 0.5 * np.linalg.norm(goal)  # without colour matching: grey


def _introduced_dark(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> int:
    """Pixels of ``region`` that were not dark before and are now (LAB lightness below 70)."""
    lb = cv2.cvtColor(before, cv2.COLOR_BGR2LAB)[..., 0]
    la = cv2.cvtColor(after, cv2.COLOR_BGR2LAB)[..., 0]
    return int(((la < 70) & (lb >= 70) & region).sum())


@pytest.mark.parametrize("seamless", [True, False])
def test_no_dark_pixels_come_into_the_mouth_when_mouths_differ(engine: ClassicEngine, seamless: bool) -> None:
    lm = only_face(engine, astronaut()).landmarks
    opened, closed = with_mouth(astronaut(), lm, True), with_mouth(astronaut(), lm, False)
    engine.seamless = seamless
    try:
        for target, source_image in ((closed, opened), (opened, closed)):
            face = only_face(engine, target)
            region = blend.polygon_mask(face.landmarks[48:60], target.shape, grow_px=4) > 0
            source = engine.prepare_source([source_image])
            out = swap(engine, target, source)
            assert not engine.skipped
            assert np.abs(out.astype(int) - target.astype(int))[region].mean() > 2  # the lips were swapped
            assert _introduced_dark(target, out, region) <= 0.01 * region.sum()
    finally:
        engine.seamless = True


def test_the_mesh_keeps_the_inner_lips_as_edges() -> None:
    edges = {tuple(sorted((int(t[a]), int(t[b])))) for t in TRIANGLES for a, b in ((0, 1), (1, 2), (2, 0))}
    ring = [tuple(sorted((60 + i, 60 + (i + 1) % 8))) for i in range(8)]
    assert all(edge in edges for edge in ring)
    assert len(INNER_MOUTH) == 6 and (TRIANGLES[INNER_MOUTH] >= 60).all()
    # The triangles tile the template without overlapping: their areas add up to the hull's.
    pts = extended_points(TEMPLATE).astype(np.float64)
    tri = pts[TRIANGLES]
    areas = ((tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
             - (tri[:, 1, 1] - tri[:, 0, 1]) * (tri[:, 2, 0] - tri[:, 0, 0])) / 2
    assert (areas > 0).all()
    hull = cv2.contourArea(cv2.convexHull(pts.astype(np.float32)))
    assert abs(areas.sum() - hull) < 1e-3 * hull


# ---- the pipeline, a source video and the command line ------------------------------------------
def test_stills_leave_the_face_and_say_why_live_uses_the_closest_view_and_says_so_once(engine: ClassicEngine) -> None:
    pipeline = FaceSwapPipeline(None, FaceSwapOptions(engine="classic", mark=False), engine_factory=lambda n: engine)
    pipeline.load()
    pipeline.set_source([astronaut()])
    target = posed(30)
    result = pipeline.swap_image(target)
    assert result.faces_found == 1 and result.faces_swapped == 0
    assert len(result.notes) == 1 and "to the right of the picture" in result.notes[0]
    assert pipeline.warning == result.notes[0]
    pipeline.warning = None
    out = pipeline.process(target)
    assert not np.array_equal(out, target)
    said = pipeline.warning
    assert said is not None and "meanwhile the video uses the closest photo" in said
    pipeline.warning = None
    pipeline.process(target)
    assert pipeline.warning is None  # said once


def make_video(path: Path, frames: list[np.ndarray], fps: int = 8) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "14"})
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def test_a_short_source_video_gives_several_views(engine: ClassicEngine, tmp_path: Path) -> None:
    frames = [posed(y) for y in (-20, -20, -10, 0, 0, 10, 20, 20)] + [np.full((512, 512, 3), 60, np.uint8)]
    video = make_video(tmp_path / "turning.mp4", frames)
    from workers.face_swap.cli import read_source

    views = read_source(video, FaceSwapPipeline(None, engine_factory=lambda n: engine))
    assert 3 <= len(views) <= 8
    yaws = sorted(head_pose(only_face(engine, v).landmarks).yaw for v in views)
    assert yaws[0] < -10 and yaws[-1] > 10
    assert pick_views(frames[:3], engine.detect, count=8) and len(pick_views(frames, engine.detect, count=2)) == 2


def test_the_command_line_names_the_missing_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target, out = tmp_path / "front.png", tmp_path / "turned.png", tmp_path / "out.png"
    cv2.imwrite(str(source), astronaut())
    cv2.imwrite(str(target), posed(30))
    code = cli.main(["face-swap", "--source", str(source), "--target", str(target), "-o", str(out),
                     "--engine", "classic", "--store", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "add a photo looking to the right of the picture. Nothing was saved." in err


def test_views_of_a_face_map_source(engine: ClassicEngine) -> None:
    """view_of reads the same face the same way at another scale (the pose does not depend on size)."""
    small = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    a, b = view_of(only_face(engine, astronaut()).landmarks), view_of(only_face(engine, small).landmarks)
    assert abs(a.pose.yaw - b.pose.yaw) < 4 and abs(a.pose.pitch - b.pose.pitch) < 4
