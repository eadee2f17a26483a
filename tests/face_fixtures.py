"""Face photos and small face models built by the tests themselves (nothing is downloaded).

Images: ``astronaut()`` is scikit-image's bundled portrait of Eileen Collins (NASA, public domain);
``second_face()`` is a different-looking face made from it (mirrored, reshaped around the nose,
mouth and eyes, stretched, recoloured): dlib's HOG detector finds it and its dlib descriptor lies
about 0.63 from the original's (over dlib's 0.6 "same person" line). ``two_faces()`` puts both in
one 640x320 frame.

Models: ONNX graphs with the inputs and outputs insightface's model router and model classes
expect, so that the real insightface code loads and runs them:

- ``build_scrfd_like``: a SCRFD detector (dynamic ``1x3xHxW`` input, 9 outputs: scores, boxes and
  5 keypoints at strides 8/16/32 with 2 anchors). It reports known faces given in coordinates
  relative to the image (0..1), wherever the letterboxed image lies in the input, each only where
  its region is textured and looks like the face it was made from (mean and spread of each
  colour): the default detector finds the right faces in the three images above, and none in a
  flat frame.
- ``build_arcface_like``: a recognition model (``1x3x112x112`` -> ``1x512``), a fixed random
  projection of the pooled crop less a "mean face": the same face seen shifted or scaled keeps a
  cosine similarity above 0.9, the astronaut and the second face come out opposite.
- ``build_landmark_like``: a 2d-106 landmark model (``1x3x192x192`` -> ``1x212``), a fixed shape.
- ``build_inswapper_like``: inputs ``target`` ``1x3x128x128`` and ``source`` ``1x512``, output
  ``1x3x128x128``: the target crop mixed half and half with green (:data:`SWAP_TINT_RGB`), a
  little shifted by the source latent; the 512x512 ``emap`` is the last initializer.
- ``build_enhancer_like``: a GFPGAN/GPEN-shaped model (``1x3x512x512`` in [-1, 1] in and out)
  that brightens its input by :data:`ENHANCE_SHIFT`.

``install_face_models(root)`` writes all of them into a model store folder in the layout the
studio uses (the buffalo packs unpacked by the store's own code) and returns a
:class:`~workers.models.store.ModelStore` whose manifest carries the fixtures' sizes and checksums.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

# ---- images ----------------------------------------------------------------------------------

#: dlib HOG's box of the face in :func:`astronaut` (x1, y1, x2, y2).
ASTRONAUT_BOX = (175, 76, 265, 166)
#: A detector-style box (a little taller than dlib's) and five keypoints (eyes, nose tip, mouth
#: corners, as the viewer sees them left to right) of the face in :func:`astronaut`.
ASTRONAUT_FACE_BOX = (172.0, 60.0, 270.0, 178.0)
ASTRONAUT_KPS = ((203.2, 101.5), (246.5, 104.2), (225.0, 127.0), (201.0, 139.0), (246.0, 141.0))
#: The same for :func:`second_face` (512x512).
SECOND_BOX = (223, 68, 330, 175)
SECOND_FACE_BOX = (220.0, 55.0, 333.0, 183.0)
SECOND_KPS = ((251.0, 103.8), (296.3, 101.2), (275.0, 121.0), (249.0, 142.0), (305.0, 140.0))


@cache
def _astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait as BGR uint8 (512x512); one face at about (175,76)-(265,166)."""
    return np.ascontiguousarray(_astronaut_rgb()[:, :, ::-1])


def _bulge(img: np.ndarray, cx: float, cy: float, radius: float, k: float) -> np.ndarray:
    """Magnify (k > 0) or shrink (k < 0) the disc of ``radius`` around (cx, cy)."""
    import cv2

    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    d = np.sqrt(dx * dx + dy * dy) / radius
    f = np.where(d < 1, 1 - k * (1 - d) ** 2, 1.0).astype(np.float32)
    return cv2.remap(img, cx + dx * f, cy + dy * f, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _shift_hue(img: np.ndarray, hue: int, saturation: float) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


@cache
def _second_face_wide() -> np.ndarray:
    import cv2

    mirrored = np.ascontiguousarray(astronaut()[:, ::-1])
    img = _bulge(mirrored, 289, 137, 45, 0.6)  # bigger nose and mouth
    img = _bulge(img, 289, 103, 40, -0.5)  # eyes closer together
    img = cv2.resize(img, None, fx=1.1, fy=1.0, interpolation=cv2.INTER_AREA)  # a wider face
    img = _shift_hue(img, -5, 1.15)
    img.setflags(write=False)
    return img


def second_face() -> np.ndarray:
    """A different face made from the astronaut (BGR uint8, 512x512), face at about (223,68)-(330,175)."""
    return np.ascontiguousarray(_second_face_wide()[:, 40:552])


def two_faces() -> np.ndarray:
    """Both faces in one BGR frame (640x320): the astronaut left, the second face right."""
    left = astronaut()[:320, 50:370]
    right = _second_face_wide()[:320, 160:480]
    return np.ascontiguousarray(np.hstack([left, right]))


def _shift(points: Sequence[Sequence[float]], dx: float, dy: float) -> list[tuple[float, float]]:
    return [(float(x) + dx, float(y) + dy) for x, y in points]


def two_faces_layout() -> list[tuple[tuple[float, float, float, float], list[tuple[float, float]]]]:
    """The (box, 5 keypoints) of each face in :func:`two_faces`, in pixels, left to right."""
    a = ASTRONAUT_FACE_BOX
    s = SECOND_FACE_BOX
    # second_face() is columns 40.. of the wide image; two_faces() takes columns 160.. of it.
    sdx = 320 - 160 + 40
    return [
        ((a[0] - 50, a[1], a[2] - 50, a[3]), _shift(ASTRONAUT_KPS, -50, 0)),
        ((s[0] + sdx, s[1], s[2] + sdx, s[3]), _shift(SECOND_KPS, sdx, 0)),
    ]


def astronaut_layout() -> list[tuple[tuple[float, float, float, float], list[tuple[float, float]]]]:
    return [(ASTRONAUT_FACE_BOX, [tuple(p) for p in ASTRONAUT_KPS])]


def second_face_layout() -> list[tuple[tuple[float, float, float, float], list[tuple[float, float]]]]:
    return [(SECOND_FACE_BOX, [tuple(p) for p in SECOND_KPS])]


def moving_frames(count: int, width: int = 640, height: int = 480, step: float = 2.0, seed: int = 0):
    """``count`` BGR frames of ``width`` x ``height`` with the astronaut's face drifting a few pixels
    per frame (a slow circle plus a small zoom), like a webcam picture of someone who moves a little.

    Yields (frame, (dx, dy)) where (dx, dy) is the shift of the photo in that frame.
    """
    import cv2

    src = astronaut()
    scale = min(width, height) / 512.0 * 0.9
    base_x = (width - 512 * scale) / 2
    base_y = (height - 512 * scale) / 2
    radius = step * count / (2 * np.pi) if count > 1 else 0.0
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 80, size=(height, width, 3), dtype=np.uint8)
    for i in range(count):
        angle = 2 * np.pi * i / max(count, 1)
        dx = radius * np.cos(angle)
        dy = radius * np.sin(angle)
        zoom = 1.0 + 0.02 * np.sin(angle)
        s = scale * zoom
        m = np.array([[s, 0, base_x + dx], [0, s, base_y + dy]], dtype=np.float32)
        frame = cv2.warpAffine(src, m, (width, height), borderMode=cv2.BORDER_TRANSPARENT, dst=background.copy())
        yield frame, (float(dx), float(dy))


# ---- ONNX models -----------------------------------------------------------------------------

#: RGB colour (0..1) the fixture swapper mixes into the face crop, half and half.
SWAP_TINT_RGB = (0.1, 0.9, 0.1)
#: How much the fixture enhancer brightens its input (in its [-1, 1] range: 0.4 is about 51 levels).
ENHANCE_SHIFT = 0.4
#: The embedding width of the fixture recognition model and swapper latent.
EMBEDDING_SIZE = 512


def _save(model, path: Path) -> Path:
    import onnx

    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _model(graph):
    from onnx import helper

    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="snowai-tests")


@dataclasses.dataclass(frozen=True)
class DetectorFace:
    """One face the fixture detector reports, in coordinates relative to the image (0..1).

    ``signature``: the mean and spread of each RGB channel of the face's region (normalised as
    SCRFD feeds it); the face is reported only in images whose region matches it, so one detector
    can serve several test images. None: reported in any image where the region is textured.
    """

    box: tuple[float, float, float, float]
    kps: tuple[tuple[float, float], ...]
    signature: tuple[float, ...] | None = None


def region_signature(bgr: np.ndarray, box: Sequence[float]) -> tuple[float, ...]:
    """Mean and standard deviation of R, G, B inside ``box`` (pixels), as the detector input holds them."""
    x = (bgr[:, :, ::-1].astype(np.float32) - 127.5) / 128.0
    x1, y1, x2, y2 = (int(v) for v in box)
    region = x[max(0, y1) : max(y2, y1 + 1), max(0, x1) : max(x2, x1 + 1)]
    return tuple(float(v) for v in np.concatenate([region.mean(axis=(0, 1)), region.std(axis=(0, 1))]))


def detector_faces(
    bgr: np.ndarray,
    layout: Iterable[tuple[Sequence[float], Sequence[Sequence[float]]]],
    *,
    signature: bool = True,
) -> list[DetectorFace]:
    """The faces of ``layout`` (pixel boxes and keypoints in ``bgr``) as the fixture detector's faces."""
    height, width = bgr.shape[:2]
    out = []
    for box, kps in layout:
        rbox = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
        rkps = tuple((float(x) / width, float(y) / height) for x, y in kps)
        out.append(DetectorFace(rbox, rkps, region_signature(bgr, box) if signature else None))
    return out


def default_detector_faces() -> list[DetectorFace]:
    """The faces of :func:`astronaut`, :func:`second_face` and :func:`two_faces`, each gated by its signature."""
    return (
        detector_faces(astronaut(), astronaut_layout())
        + detector_faces(second_face(), second_face_layout())
        + detector_faces(two_faces(), two_faces_layout())
    )


def build_scrfd_like(
    path: Path,
    faces: Sequence[DetectorFace] | None = None,
    *,
    score: float = 0.9,
    min_texture: float = 0.03,
    tolerance: float = 0.05,
) -> Path:
    """A SCRFD-shaped detector that reports ``faces`` (up to six; default :func:`default_detector_faces`).

    The image's extent inside the letterboxed input is measured from the input itself (SCRFD pads
    with black to the bottom right), so the faces come out right for any image size and det_size.
    Face ``k`` is carried by the stride ``(32, 16, 8)[k % 3]`` level, anchor ``k // 3``, at the cell
    under its centre. It is reported (with ``score``) when its region is textured (standard
    deviation at least ``min_texture``) and, if it has a signature, when the region's signature
    is within ``tolerance`` of it: a flat frame has no face.
    """
    from onnx import TensorProto, helper, numpy_helper

    faces = list(faces) if faces is not None else default_detector_faces()
    if not 1 <= len(faces) <= 6:
        raise ValueError("the fixture detector carries one to six faces")
    strides = (8, 16, 32)
    level_of = (32, 16, 8)
    nodes: list = []
    inits: list = []

    def const(name: str, value, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    x = "input.1"
    # Extent of the real image inside the padded input: rows / columns that are not pure padding.
    pad_level = (0.0 - 127.5) / 128.0
    const("pad_thr", pad_level + 0.004)
    node("ReduceMax", [x], "col_max", axes=[0, 1, 2], keepdims=0)  # (W,)
    node("ReduceMax", [x], "row_max", axes=[0, 1, 3], keepdims=0)  # (H,)
    node("Greater", ["col_max", "pad_thr"], "col_on")
    node("Greater", ["row_max", "pad_thr"], "row_on")
    node("Cast", ["col_on"], "col_onf", to=TensorProto.FLOAT)
    node("Cast", ["row_on"], "row_onf", to=TensorProto.FLOAT)
    node("ReduceSum", ["col_onf", const("axis0", [0], np.int64)], "ext_w", keepdims=1)  # (1,)
    node("ReduceSum", ["row_onf", "axis0"], "ext_h", keepdims=1)
    node("Concat", ["ext_w", "ext_h", "ext_w", "ext_h"], "ext4", axis=0)  # (4,)
    node("Concat", ["ext_w", "ext_h"] * 5, "ext10", axis=0)  # (10,)
    node("Shape", [x], "in_shape")
    node("Gather", ["in_shape", const("i2", 2, np.int64)], "in_h", axis=0)
    node("Gather", ["in_shape", const("i3", 3, np.int64)], "in_w", axis=0)
    const("zero_i", 0, np.int64)
    const("one_i", 1, np.int64)
    const("two_i", 2, np.int64)
    const("ax1", [1], np.int64)
    const("zero_f", 0.0)
    const("crop_axes", [2, 3], np.int64)
    const("pick_start", [1, 0], np.int64)
    const("pick_end", [3, 2], np.int64)
    const("min0", [0, 0], np.int64)
    const("min1", [1, 1], np.int64)
    const("b0", [0], np.int64)
    const("b2", [2], np.int64)
    const("b4", [4], np.int64)
    const("rep2", [1, 2], np.int64)
    const("rep5", [1, 5], np.int64)
    const("min_var", min_texture**2)
    const("tolerance", tolerance)
    const("score", score)

    outputs: dict[str, list] = {"score": [], "bbox": [], "kps": []}
    for stride in strides:
        s = f"s{stride}"
        # Anchor centres of this level: index n -> cell n // 2 -> (row, col).
        node("Div", ["in_h", const(f"{s}_si", stride, np.int64)], f"{s}_h")
        node("Div", ["in_w", f"{s}_si"], f"{s}_w")
        node("Mul", [f"{s}_h", f"{s}_w"], f"{s}_cells")
        node("Mul", [f"{s}_cells", "two_i"], f"{s}_n")
        node("Range", ["zero_i", f"{s}_n", "one_i"], f"{s}_idx")
        node("Div", [f"{s}_idx", "two_i"], f"{s}_cell")
        node("Div", [f"{s}_cell", f"{s}_w"], f"{s}_row")
        node("Mod", [f"{s}_cell", f"{s}_w"], f"{s}_col")
        node("Cast", [f"{s}_row"], f"{s}_rowf", to=TensorProto.FLOAT)
        node("Cast", [f"{s}_col"], f"{s}_colf", to=TensorProto.FLOAT)
        node("Mul", [f"{s}_colf", const(f"{s}_sf", float(stride))], f"{s}_ax")
        node("Mul", [f"{s}_rowf", f"{s}_sf"], f"{s}_ay")
        node("Unsqueeze", [f"{s}_ax", "ax1"], f"{s}_axc")  # (N,1)
        node("Unsqueeze", [f"{s}_ay", "ax1"], f"{s}_ayc")
        node("Concat", [f"{s}_axc", f"{s}_ayc"], f"{s}_centre", axis=1)  # (N,2)
        node("Tile", [f"{s}_centre", "rep2"], f"{s}_c4")  # (N,4): x y x y
        node("Tile", [f"{s}_centre", "rep5"], f"{s}_c10")  # (N,10)
        node("Mul", [f"{s}_axc", "zero_f"], f"{s}_zcol")  # (N,1) zeros
        score_acc, box_acc, kps_acc = f"{s}_zcol", f"{s}_c4", f"{s}_c10"
        const(f"{s}_sign", [1.0 / stride, 1.0 / stride, -1.0 / stride, -1.0 / stride])
        const(f"{s}_inv", 1.0 / stride)
        const(f"{s}_half_s", 0.5 / stride)
        for k, face in enumerate(faces):
            if level_of[k % 3] != stride:
                continue
            f = f"{s}_f{k}"
            anchor = (k // 3) % 2
            node("Mul", [const(f"{f}_box_rel", np.asarray(face.box, np.float32)), "ext4"], f"{f}_box")
            node("Mul", [const(f"{f}_kps_rel", np.asarray(face.kps, np.float32).reshape(10)), "ext10"], f"{f}_kpsp")
            # Distances from every anchor centre, in units of the stride.
            node("Sub", [f"{s}_c4", f"{f}_box"], f"{f}_d_raw")  # cx-x1, cy-y1, cx-x2, cy-y2
            node("Mul", [f"{f}_d_raw", f"{s}_sign"], f"{f}_d")
            node("Sub", [f"{f}_kpsp", f"{s}_c10"], f"{f}_kd_raw")
            node("Mul", [f"{f}_kd_raw", f"{s}_inv"], f"{f}_kd")
            # The one anchor that carries the face: the cell under its centre.
            node("Slice", [f"{f}_box", "b0", "b2"], f"{f}_xy1")
            node("Slice", [f"{f}_box", "b2", "b4"], f"{f}_xy2")
            node("Add", [f"{f}_xy1", f"{f}_xy2"], f"{f}_sum")
            node("Mul", [f"{f}_sum", f"{s}_half_s"], f"{f}_cc")
            node("Floor", [f"{f}_cc"], f"{f}_ccf")
            node("Cast", [f"{f}_ccf"], f"{f}_cci", to=TensorProto.INT64)  # (2,): col, row
            node("Gather", [f"{f}_cci", "zero_i"], f"{f}_tc")
            node("Gather", [f"{f}_cci", "one_i"], f"{f}_tr")
            node("Mul", [f"{f}_tr", f"{s}_w"], f"{f}_trw")
            node("Add", [f"{f}_trw", f"{f}_tc"], f"{f}_tcell")
            node("Mul", [f"{f}_tcell", "two_i"], f"{f}_tidx0")
            node("Add", [f"{f}_tidx0", const(f"{f}_anchor", anchor, np.int64)], f"{f}_tidx")
            node("Equal", [f"{s}_idx", f"{f}_tidx"], f"{f}_hit")  # (N,)
            node("Unsqueeze", [f"{f}_hit", "ax1"], f"{f}_hitc")  # (N,1)
            # Is the face there? Texture and (optionally) the signature of its region.
            node("Cast", [f"{f}_box"], f"{f}_boxi", to=TensorProto.INT64)
            node("Gather", [f"{f}_boxi", "pick_start"], f"{f}_start")  # y1, x1
            node("Gather", [f"{f}_boxi", "pick_end"], f"{f}_end")  # y2, x2
            node("Max", [f"{f}_start", "min0"], f"{f}_start0")
            node("Add", [f"{f}_start0", "min1"], f"{f}_start1")
            node("Max", [f"{f}_end", f"{f}_start1"], f"{f}_end1")
            node("Slice", [x, f"{f}_start0", f"{f}_end1", "crop_axes"], f"{f}_crop")
            node("ReduceMean", [f"{f}_crop"], f"{f}_mean", axes=[0, 2, 3], keepdims=0)  # (3,)
            node("Mul", [f"{f}_crop", f"{f}_crop"], f"{f}_sq")
            node("ReduceMean", [f"{f}_sq"], f"{f}_msq", axes=[0, 2, 3], keepdims=0)
            node("Mul", [f"{f}_mean", f"{f}_mean"], f"{f}_m2")
            node("Sub", [f"{f}_msq", f"{f}_m2"], f"{f}_var_raw")
            node("Max", [f"{f}_var_raw", "zero_f"], f"{f}_var")
            node("ReduceMean", [f"{f}_var"], f"{f}_var_all", axes=[0], keepdims=0)
            node("Greater", [f"{f}_var_all", "min_var"], f"{f}_textured")
            present = f"{f}_textured"
            if face.signature is not None:
                node("Sqrt", [f"{f}_var"], f"{f}_std")
                node("Concat", [f"{f}_mean", f"{f}_std"], f"{f}_sig", axis=0)
                node("Sub", [f"{f}_sig", const(f"{f}_expect", np.asarray(face.signature, np.float32))], f"{f}_sd")
                node("Abs", [f"{f}_sd"], f"{f}_sda")
                node("ReduceMax", [f"{f}_sda"], f"{f}_sdm", axes=[0], keepdims=0)
                node("Less", [f"{f}_sdm", "tolerance"], f"{f}_match")
                present = node("And", [f"{f}_textured", f"{f}_match"], f"{f}_present")
            node("Cast", [present], f"{f}_presentf", to=TensorProto.FLOAT)
            node("Mul", [f"{f}_presentf", "score"], f"{f}_sc")
            node("Cast", [f"{f}_hitc"], f"{f}_hitf", to=TensorProto.FLOAT)
            node("Mul", [f"{f}_hitf", f"{f}_sc"], f"{f}_s")
            score_acc = node("Max", [score_acc, f"{f}_s"], f"{f}_score_acc")
            box_acc = node("Where", [f"{f}_hitc", f"{f}_d", box_acc], f"{f}_box_acc")
            kps_acc = node("Where", [f"{f}_hitc", f"{f}_kd", kps_acc], f"{f}_kps_acc")
        node("Identity", [score_acc], f"score_{stride}")
        node("Identity", [box_acc], f"bbox_{stride}")
        node("Identity", [kps_acc], f"kps_{stride}")
        outputs["score"].append(helper.make_tensor_value_info(f"score_{stride}", TensorProto.FLOAT, [f"n{stride}", 1]))
        outputs["bbox"].append(helper.make_tensor_value_info(f"bbox_{stride}", TensorProto.FLOAT, [f"n{stride}", 4]))
        outputs["kps"].append(helper.make_tensor_value_info(f"kps_{stride}", TensorProto.FLOAT, [f"n{stride}", 10]))

    graph = helper.make_graph(
        nodes,
        "scrfd_like",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs["score"] + outputs["bbox"] + outputs["kps"],
        initializer=inits,
    )
    return _save(_model(graph), path)


def _pooled_face(bgr: np.ndarray, kps: Sequence[Sequence[float]], size: int, cells: int) -> np.ndarray:
    """What the fixture recogniser sees of a face before its projection (mean removed, flattened)."""
    import cv2

    from workers.face_swap.insight import align_matrix

    crop = cv2.warpAffine(bgr, align_matrix(np.asarray(kps, np.float32), size), (size, size), borderValue=0.0)
    x = (crop[:, :, ::-1].astype(np.float32) - 127.5) / 127.5
    k = size // cells
    pooled = x.reshape(cells, k, cells, k, 3).mean(axis=(1, 3)).transpose(2, 0, 1).ravel()
    return pooled - pooled.mean()


def build_arcface_like(path: Path, seed: int = 7, size: int = 112) -> Path:
    """An ArcFace-shaped recogniser: 8x8 average pool, mean removed, a "mean face" removed, and a
    fixed random projection to 512 values.

    The mean face is the average of the astronaut's and the second face's pooled crops, so those
    two identities point in opposite directions, while the same face seen a little shifted or
    scaled keeps a cosine similarity above 0.9.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    cells = 8
    proj = rng.standard_normal((3 * cells * cells, EMBEDDING_SIZE)).astype(np.float32)
    mean_face = (
        _pooled_face(astronaut(), ASTRONAUT_KPS, size, cells) + _pooled_face(second_face(), SECOND_KPS, size, cells)
    ) / 2
    kernel = size // cells
    nodes = [
        helper.make_node(
            "AveragePool", ["input.1"], ["pooled"], kernel_shape=[kernel, kernel], strides=[kernel, kernel]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centred"], name="centre_crop"),
        helper.make_node("Sub", ["centred", "mean_face"], ["features"], name="remove_mean_face"),
        helper.make_node("MatMul", ["features", "proj"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_SIZE])],
        initializer=[
            numpy_helper.from_array(mean_face.astype(np.float32).reshape(1, -1), "mean_face"),
            numpy_helper.from_array(proj, "proj"),
        ],
    )
    return _save(_model(graph), path)


def landmark_106_template() -> np.ndarray:
    """106 points (x, y) in the landmark model's [-1, 1] crop frame, laid out like insightface's 2d-106
    markup (contour 0-32, one eye 33-42, its brow 43-51, mouth 52-71, nose 72-86, the other eye
    87-96, its brow 97-105), placed where the astronaut's features are relative to her face box.
    """
    box = np.asarray(ASTRONAUT_FACE_BOX, np.float32)
    centre = (box[:2] + box[2:]) / 2
    half = 0.75 * float(max(box[2] - box[0], box[3] - box[1]))  # insightface crops 1.5x the box
    kps = (np.asarray(ASTRONAUT_KPS, np.float32) - centre) / half

    def ring(c: np.ndarray, rx: float, ry: float, n: int) -> list[tuple[float, float]]:
        return [(c[0] + rx * np.cos(t), c[1] + ry * np.sin(t)) for t in np.linspace(0, 2 * np.pi, n, endpoint=False)]

    def brow(eye: np.ndarray) -> list[tuple[float, float]]:
        return [(eye[0] + 0.13 * t, eye[1] - 0.12 - 0.04 * (1 - t * t)) for t in np.linspace(-1, 1, 9)]

    contour = [(0.5 * np.cos(t), 0.02 + 0.6 * np.sin(t)) for t in np.linspace(np.pi * 0.02, np.pi * 0.98, 33)]
    mouth_c = (kps[3] + kps[4]) / 2
    mouth_r = float(np.linalg.norm(kps[4] - kps[3])) / 2
    mouth = ring(mouth_c, mouth_r, 0.25 * mouth_r, 10) + ring(mouth_c, 0.7 * mouth_r, 0.12 * mouth_r, 10)
    # Nose: a ridge from between the eyes down to the tip, and the nostrils around the tip.
    top = (kps[0] + kps[1]) / 2
    nose = [tuple(top + (kps[2] - top) * t) for t in np.linspace(0.1, 0.9, 8)]
    nose += [(kps[2][0] + dx, kps[2][1] + 0.02) for dx in (-0.1, -0.06, -0.03, 0.03, 0.06, 0.1)]
    nose += [tuple(kps[2])]
    pts = (
        contour
        + ring(kps[0], 0.08, 0.03, 10)
        + brow(kps[0])
        + mouth
        + nose
        + ring(kps[1], 0.08, 0.03, 10)
        + brow(kps[1])
    )
    arr = np.asarray(pts, np.float32)
    assert arr.shape == (106, 2), arr.shape
    return arr


def build_landmark_like(path: Path, size: int = 192) -> Path:
    """A 2d-106 landmark model: returns :func:`landmark_106_template` (plus 0 x the input)."""
    from onnx import TensorProto, helper, numpy_helper

    template = landmark_106_template().reshape(1, 212)
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Unsqueeze", ["z", "ax1"], ["z2"]),
        helper.make_node("Add", ["template", "z2"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "landmark_106_like",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])],
        initializer=[
            numpy_helper.from_array(template, "template"),
            numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        ],
    )
    return _save(_model(graph), path)


def build_inswapper_like(path: Path, *, fp16: bool = False, seed: int = 11) -> Path:
    """An inswapper-shaped swapper: ``0.5 * target + 0.5 * tint + 0.05 * tanh(source @ W)`` per channel.

    ``target`` is RGB in [0, 1] (insightface divides by 255); the output is RGB in [0, 1].
    The last initializer is the 512x512 ``emap`` (identity here). With ``fp16`` every input,
    output and weight is float16, like a half-precision export.
    """
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.float16 if fp16 else np.float32
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((EMBEDDING_SIZE, 3)) * 0.5).astype(dtype)
    tint = np.asarray(SWAP_TINT_RGB, np.float32).reshape(1, 3, 1, 1) * 0.5
    nodes = [
        helper.make_node("MatMul", ["source", "w_src"], ["src3"]),
        helper.make_node("Tanh", ["src3"], ["src3t"]),
        helper.make_node("Mul", ["src3t", "k_src"], ["src3s"]),
        helper.make_node("Reshape", ["src3s", "shape4"], ["src4"]),
        helper.make_node("Mul", ["target", "half"], ["t_half"]),
        helper.make_node("Add", ["t_half", "tint"], ["t_tint"]),
        helper.make_node("Add", ["t_tint", "src4"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(w, "w_src"),
        numpy_helper.from_array(np.array([0.05], dtype), "k_src"),
        numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "shape4"),
        numpy_helper.from_array(np.array([0.5], dtype), "half"),
        numpy_helper.from_array(tint.astype(dtype), "tint"),
        numpy_helper.from_array(np.eye(EMBEDDING_SIZE, dtype=dtype), "emap"),  # must stay last
    ]
    graph = helper.make_graph(
        nodes,
        "inswapper_like",
        [
            helper.make_tensor_value_info("target", elem, [1, 3, 128, 128]),
            helper.make_tensor_value_info("source", elem, [1, EMBEDDING_SIZE]),
        ],
        [helper.make_tensor_value_info("output", elem, [1, 3, 128, 128])],
        initializer=inits,
    )
    return _save(_model(graph), path)


def build_enhancer_like(path: Path, size: int = 512) -> Path:
    """A GFPGAN/GPEN-shaped enhancer: RGB in [-1, 1] in and out, brightened by :data:`ENHANCE_SHIFT`."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Add", ["input", "shift"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "enhancer_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        initializer=[
            numpy_helper.from_array(np.array([ENHANCE_SHIFT], np.float32), "shift"),
            numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        ],
    )
    return _save(_model(graph), path)


# ---- a model store holding the fixtures -----------------------------------------------------

PACK_FILES = {"det": "det_10g.onnx", "rec": "w600k_r50.onnx", "lmk": "2d106det.onnx"}
FACE_MODEL_IDS = (
    "insightface-buffalo-l",
    "insightface-buffalo-s",
    "inswapper-128",
    "inswapper-128-fp16",
    "gfpgan-1.4",
    "gpen-bfr-512",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_pack(folder: Path, faces: Sequence[DetectorFace] | None = None) -> Path:
    """A buffalo-style folder: detector (reporting ``faces``), recogniser and 2d-106 landmarks."""
    folder = Path(folder)
    build_scrfd_like(folder / PACK_FILES["det"], faces)
    build_arcface_like(folder / PACK_FILES["rec"])
    build_landmark_like(folder / PACK_FILES["lmk"])
    return folder


def install_face_models(
    root: Path,
    *,
    faces: Sequence[DetectorFace] | None = None,
    models: Iterable[str] = FACE_MODEL_IDS,
    pack_subfolder: bool = False,
):
    """Build the fixture models into ``root`` (a model store folder) and return a ModelStore on it.

    The manifest is the studio's own with the face-swap entries' sizes and checksums replaced by
    the fixtures' (sources dropped, so nothing could be downloaded). The buffalo packs are zipped
    and unpacked by the store's own ``unpack`` like a verified download; ``pack_subfolder`` puts the
    pack's files in a ``buffalo_l/`` folder inside the zip, as some published zips do.
    ``faces`` are what the detector reports (default: the faces of :func:`astronaut`,
    :func:`second_face` and :func:`two_faces`, each only in its own image).
    """
    from workers.models.manifest import Manifest, load_manifest
    from workers.models.store import ModelStore

    root = Path(root)
    wanted = set(models)
    base = load_manifest()
    staging = root.parent / (root.name + "-fixtures")
    staging.mkdir(parents=True, exist_ok=True)
    builders = {
        "inswapper-128": lambda p: build_inswapper_like(p),
        "inswapper-128-fp16": lambda p: build_inswapper_like(p, fp16=True),
        "gfpgan-1.4": build_enhancer_like,
        "gpen-bfr-512": build_enhancer_like,
        **EXTRA_BUILDERS,
    }
    replaced = []
    unpack_jobs = []
    built_pack: Path | None = None
    for model in base.models:
        known = model.id in FACE_MODEL_IDS or model.id in EXTRA_BUILDERS
        if not known or model.id not in wanted:
            if known:
                # Keep the entry (so it is "not installed") but with no way to download it.
                model = dataclasses.replace(model, files=tuple(dataclasses.replace(f, sources=()) for f in model.files))
            replaced.append(model)
            continue
        spec = model.files[0]
        if model.id.startswith("insightface-buffalo"):
            pack_name = spec.name.removesuffix(".zip")
            if built_pack is None:
                built_pack = build_pack(staging / "pack", faces)
            pack = built_pack
            archive = staging / spec.name
            with zipfile.ZipFile(archive, "w") as zf:
                for f in sorted(pack.glob("*.onnx")):
                    zf.write(f, f"{pack_name}/{f.name}" if pack_subfolder else f.name)
            new_spec = dataclasses.replace(spec, size=archive.stat().st_size, sha256=_sha256(archive), sources=())
            unpack_jobs.append((model.id, new_spec, archive))
        else:
            target = root / model.id / spec.name
            builders[model.id](target)
            new_spec = dataclasses.replace(spec, size=target.stat().st_size, sha256=_sha256(target), sources=())
        replaced.append(dataclasses.replace(model, files=(new_spec,)))
    manifest = Manifest(replaced, base.path)
    store = ModelStore(root, manifest)
    for model_id, spec, archive in unpack_jobs:
        store.unpack(store.get(model_id), spec, archive, spec.sha256)
    return store


# ---- stand-ins for the other swappers, the identity converter, masks and CodeFormer -------------------


def _tint_swapper_graph(
    name: str,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    output_normalised: bool,
    source_image: bool = False,
    seed: int = 13,
):
    """A swapper with the real model's inputs: the output (in the model's own output range) is half
    the target's RGB, half :data:`SWAP_TINT_RGB`, shifted a little by the source (a 512-d identity
    through ``tanh(source @ W)``, or the source face's mean colour for an image-taking swapper)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    mean4 = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std4 = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    tint = np.asarray(SWAP_TINT_RGB, np.float32).reshape(1, 3, 1, 1) * 0.5
    nodes = [
        helper.make_node("Mul", ["target", "std"], ["t_std"]),
        helper.make_node("Add", ["t_std", "mean"], ["t_rgb"]),  # back to RGB in 0..1
        helper.make_node("Mul", ["t_rgb", "half"], ["t_half"]),
        helper.make_node("Add", ["t_half", "tint"], ["t_tint"]),
    ]
    inits = [
        numpy_helper.from_array(std4, "std"),
        numpy_helper.from_array(mean4, "mean"),
        numpy_helper.from_array(np.array([0.5], np.float32), "half"),
        numpy_helper.from_array(tint, "tint"),
        numpy_helper.from_array(np.array([0.05], np.float32), "k_src"),
    ]
    if source_image:
        nodes += [
            helper.make_node("ReduceMean", ["source"], ["src_mean"], axes=[2, 3], keepdims=1),
            helper.make_node("Mul", ["src_mean", "k_src"], ["src4"]),
        ]
        source_info = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 3, size, size])
    else:
        w = (rng.standard_normal((EMBEDDING_SIZE, 3)) * 0.5).astype(np.float32)
        nodes += [
            helper.make_node("MatMul", ["source", "w_src"], ["src3"]),
            helper.make_node("Tanh", ["src3"], ["src3t"]),
            helper.make_node("Mul", ["src3t", "k_src"], ["src3s"]),
            helper.make_node("Reshape", ["src3s", "shape4"], ["src4"]),
        ]
        inits += [
            numpy_helper.from_array(w, "w_src"),
            numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "shape4"),
        ]
        source_info = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, EMBEDDING_SIZE])
    if output_normalised:
        nodes += [
            helper.make_node("Add", ["t_tint", "src4"], ["rgb_out"]),
            helper.make_node("Sub", ["rgb_out", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["output"]),
        ]
    else:
        nodes.append(helper.make_node("Add", ["t_tint", "src4"], ["output"]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, size, size]), source_info],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        initializer=inits,
    )
    return graph


def build_swapper_like(path: Path, model_id: str) -> Path:
    """A stand-in for ``model_id`` with its real inputs and outputs (see :func:`_tint_swapper_graph`)."""
    from workers.face_swap.swappers import SWAPPER_SPECS

    spec = SWAPPER_SPECS[model_id]
    graph = _tint_swapper_graph(
        model_id.replace("-", "_"),
        spec.size,
        spec.mean,
        spec.std,
        output_normalised=spec.output_normalised,
        source_image=spec.source == "image",
    )
    return _save(_model(graph), path)


def build_converter_like(path: Path, seed: int = 17) -> Path:
    """SimSwap's identity converter: a (N, 512) -> (N, 512) linear map, like the real one's shape."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((EMBEDDING_SIZE, EMBEDDING_SIZE)))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["output"])],
        "converter_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", EMBEDDING_SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", EMBEDDING_SIZE])],
        initializer=[numpy_helper.from_array(q.astype(np.float32), "w")],
    )
    return _save(_model(graph), path)


def build_xseg_like(path: Path) -> Path:
    """XSeg's shape (1x256x256x3 BGR in 0..1 -> 1x256x256x1): visible face is 1, and a strongly green
    pixel (an occluder in the tests) is 0: ``clip(0.5 + 4 B - 8 G + 4 R)``."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([4.0, -8.0, 4.0], np.float32).reshape(1, 3, 1, 1)  # B, G, R
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["score"]),
        helper.make_node("Clip", ["score", "lo", "hi"], ["visible"]),
        helper.make_node("Transpose", ["visible"], ["output"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "xseg_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 256, 256, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 256, 256, 1])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.array([0.5], np.float32), "b"),
            numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        ],
    )
    return _save(_model(graph), path)


def build_bisenet_like(path: Path) -> Path:
    """BiSeNet's shape (1x3x512x512 normalised RGB -> 1x19x512x512 class scores): a reddish pixel
    scores highest as skin (class 1), a bluish one as nose (class 10), the rest as background."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.full((19, 3, 1, 1), 0.0, np.float32)
    bias = np.full(19, -50.0, np.float32)
    bias[0] = 0.0  # background
    weight[1, :, 0, 0] = (4.0, -4.0, -4.0)  # skin: R above G and B
    bias[1] = -1.0
    weight[10, :, 0, 0] = (-4.0, -4.0, 4.0)  # nose: B above R and G
    bias[10] = -1.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"])],
        "bisenet_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 19, 512, 512])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return _save(_model(graph), path)


def build_codeformer_like(path: Path, size: int = 512) -> Path:
    """CodeFormer's shape: ``input`` (RGB in [-1, 1]) and ``weight`` (a double, the fidelity); the
    face is brightened by :data:`ENHANCE_SHIFT` times (1 - weight), so fidelity 1 changes nothing."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["weight"], ["w32"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "w32"], ["amount"]),
        helper.make_node("Mul", ["amount", "shift"], ["delta"]),
        helper.make_node("Add", ["input", "delta"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "codeformer_like",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size]),
            helper.make_tensor_value_info("weight", TensorProto.DOUBLE, [1]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        initializer=[
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
            numpy_helper.from_array(np.array([ENHANCE_SHIFT], np.float32), "shift"),
            numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        ],
    )
    return _save(_model(graph), path)


#: Builders for every face-swap model of the manifest that has a stand-in.
EXTRA_BUILDERS = {
    "hyperswap-1a-256": lambda p: build_swapper_like(p, "hyperswap-1a-256"),
    "hyperswap-1b-256": lambda p: build_swapper_like(p, "hyperswap-1b-256"),
    "hyperswap-1c-256": lambda p: build_swapper_like(p, "hyperswap-1c-256"),
    "simswap-256": lambda p: build_swapper_like(p, "simswap-256"),
    "simswap-unofficial-512": lambda p: build_swapper_like(p, "simswap-unofficial-512"),
    "uniface-256": lambda p: build_swapper_like(p, "uniface-256"),
    "crossface-simswap": build_converter_like,
    "xseg-1": build_xseg_like,
    "bisenet-resnet-34": build_bisenet_like,
    "codeformer": build_codeformer_like,
    "gpen-bfr-1024": lambda p: build_enhancer_like(p, size=1024),
}
