"""The classic face engine: dlib detection, 68 landmarks and descriptors, and a triangulated warp.

It needs no download: dlib's HOG face detector (or its CNN detector, on a CUDA build or on
request), the 68-point shape predictor and the 128-d face descriptor ship in the
``face-recognition-models`` package and are found through the model store
(``dlib-face-models``).

A swap warps the source face onto the target's geometry: both faces get their 68 landmarks plus
a few points on the forehead, the source points are triangulated (Delaunay) once, and every
triangle is mapped by its own affine transform onto the matching target triangle (one
``cv2.remap`` over the face's crop). The warped face is recoloured to the target's skin (LAB mean
and spread), masked by the target's outline (eroded and feathered, with the mouth kept from the
target when asked) and blended in, by Poisson cloning or a feathered paste. Only the face's crop
of the frame is touched.

dlib is imported in :meth:`ClassicEngine.load`, on the thread that will use the engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from workers.errors import UserError
from workers.face_swap import blend
from workers.face_swap.engines import prepare_source_faces
from workers.face_swap.options import CLASSIC_MODELS, Face, FaceSwapOptions, SourceFace

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = ["ClassicEngine", "extended_points", "kps_from_68", "yaw_of"]

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"

#: Brow points lifted onto the forehead so the warp covers the whole face.
_FOREHEAD_FROM = (17, 19, 21, 22, 24, 26)
_FOREHEAD_LIFT = 0.28  # of the chin-to-brow distance
_MASK_LIFT = 0.07  # the mask reaches a little above the brows
#: Source faces are kept at most this large (px across the landmarks); bigger photos are shrunk.
SOURCE_FACE_PX = 288
#: dlib's usual same-person limit: descriptor distance 0.6 (unnormalised), which is a cosine of
#: about 0.914 between normalised descriptors. ``similarity`` maps that to the option's scale.
_DLIB_SAME_COS = 0.914
_OPTION_SAME = 0.35


def kps_from_68(landmarks: np.ndarray) -> np.ndarray:
    """insightface's five key points (eyes, nose tip, mouth corners; image left first) from 68 landmarks."""
    lm = np.asarray(landmarks, np.float32)
    return np.stack(
        [lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[30], lm[48], lm[54]],
    ).astype(np.float32)


def _up_vector(lm: np.ndarray) -> tuple[np.ndarray, float]:
    brow_mid = (lm[19] + lm[24]) / 2
    up = brow_mid - lm[8]
    length = float(np.hypot(*up))
    if length < 1e-3:
        return np.array([0.0, -1.0], np.float32), 1.0
    return (up / length).astype(np.float32), length


def extended_points(landmarks: np.ndarray, lift: float = _FOREHEAD_LIFT) -> np.ndarray:
    """68 landmarks plus six forehead points (brow points moved up along the face's axis)."""
    lm = np.asarray(landmarks, np.float32)
    up, length = _up_vector(lm)
    forehead = lm[list(_FOREHEAD_FROM)] + up * (length * lift)
    return np.concatenate([lm, forehead.astype(np.float32)])


def _mask_points(landmarks: np.ndarray) -> np.ndarray:
    """The outline the face mask fills: jaw and brows, the brows lifted a little."""
    lm = np.asarray(landmarks, np.float32)
    up, length = _up_vector(lm)
    brows = lm[17:27] + up * (length * _MASK_LIFT)
    return np.concatenate([lm[0:17], brows])


def yaw_of(landmarks: np.ndarray) -> float:
    """A rough left-right head turn: the nose tip's offset from the eyes' midpoint, in eye distances."""
    lm = np.asarray(landmarks, np.float32)
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-3:
        return 0.0
    return float(np.dot(lm[30] - (left + right) / 2, axis / dist) / dist)


def _delaunay(points: np.ndarray) -> np.ndarray:
    """Triangles (n, 3) of point indices over ``points``."""
    from scipy.spatial import Delaunay

    tris = Delaunay(np.asarray(points, np.float64)).simplices.astype(np.int32)
    # Drop slivers (near-zero area) that would give wild affine maps.
    p = np.asarray(points, np.float64)[tris]
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    area = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) / 2
    return tris[area > 0.5]


def _piecewise_maps(
    src_pts: np.ndarray, dst_pts: np.ndarray, tris: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """remap maps (x, y) for a crop of ``shape``, and where a triangle covers it (bool).

    Every target pixel inside triangle i reads the source at ``A_i @ (x, y, 1)``, where ``A_i``
    maps that target triangle onto its source triangle.
    """
    height, width = shape
    owner = np.zeros((height, width), np.int32)
    coeffs = np.zeros((len(tris) + 1, 6), np.float32)
    src_tris = src_pts[tris].astype(np.float32)
    dst_tris = dst_pts[tris].astype(np.float32)
    for i, (s, d) in enumerate(zip(src_tris, dst_tris, strict=True), start=1):
        d_area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[1, 1] - d[0, 1]) * (d[2, 0] - d[0, 0])
        if abs(d_area) < 0.25:  # degenerate in the target: nothing to fill
            continue
        coeffs[i] = cv2.getAffineTransform(d, s).reshape(6)
        # Sub-pixel vertices (4 fractional bits) so neighbouring triangles meet without gaps.
        cv2.fillConvexPoly(owner, np.round(d * 16).astype(np.int32), i, cv2.LINE_8, 4)
    valid = owner > 0
    c = coeffs[owner]  # (h, w, 6)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    map_x = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
    map_y = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
    map_x[~valid] = -1.0
    map_y[~valid] = -1.0
    return map_x, map_y, valid


class ClassicEngine:
    """Face detection, landmarks, identity and swapping with dlib and OpenCV (CPU, no download)."""

    #: HOG needs faces of ~80 px or more: the live pipeline re-detects in crops around the
    #: faces it follows, scaled to a good size, instead of on a downscaled whole frame.
    redetect_around_faces = True

    name = "classic"

    def __init__(
        self,
        store: ModelStore | None = None,
        *,
        detector: str = "auto",
        upsample: int | None = None,
        min_score: float = 0.2,
        models_dir: str | Path | None = None,
    ) -> None:
        """``detector``: "hog", "cnn" (slow without a GPU) or "auto" (CNN on a CUDA build of dlib).

        ``upsample``: how often dlib doubles the image before detecting (finds smaller faces, costs
        four times as much per step); None retries once doubled on small images that show no face.
        """
        if detector not in ("auto", "hog", "cnn"):
            raise UserError(f"The face detector must be hog, cnn or auto, not {detector!r}.")
        self.store = store
        self.detector_kind = detector
        self.upsample = upsample
        self.min_score = float(min_score)
        self.models_dir = Path(models_dir) if models_dir is not None else None
        #: Poisson blending (slower, seamless) or a feathered paste (fast, for live video).
        self.seamless = True
        self._dlib: Any = None
        self._hog: Any = None
        self._cnn: Any = None
        self._predictor: Any = None
        self._descriptor: Any = None
        self._tris: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---- loading ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    def _folder(self) -> Path:
        if self.models_dir is not None:
            return self.models_dir
        store = self.store
        if store is None:
            from workers.models.store import ModelStore

            store = self.store = ModelStore()
        return Path(store.path_of(CLASSIC_MODELS))

    def load(self) -> None:
        if self.loaded:
            return
        try:
            import dlib
        except ImportError:
            raise UserError("The classic face engine needs dlib; run: pip install dlib-bin.") from None
        folder = self._folder()
        for name in (PREDICTOR_68, DESCRIPTOR):
            if not (folder / name).is_file():
                raise UserError(
                    f"The dlib face model {name} is missing from {folder}; run: pip install face-recognition-models."
                )
        self._dlib = dlib
        use_cnn = self.detector_kind == "cnn" or (
            self.detector_kind == "auto" and bool(getattr(dlib, "DLIB_USE_CUDA", False))
        )
        if use_cnn and (folder / CNN_DETECTOR).is_file():
            self._cnn = dlib.cnn_face_detection_model_v1(str(folder / CNN_DETECTOR))
        elif use_cnn and self.detector_kind == "cnn":
            raise UserError(f"The CNN face detector {CNN_DETECTOR} is missing from {folder}.")
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(folder / PREDICTOR_68))
        self._descriptor = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR))
        log.info("classic face engine loaded from %s (%s detector)", folder, "CNN" if self._cnn else "HOG")

    def close(self) -> None:
        self._hog = self._cnn = self._predictor = self._descriptor = None
        self._tris.clear()

    def _need(self) -> None:
        if not self.loaded:
            self.load()

    # ---- detection and landmarks -----------------------------------------------------------------
    @staticmethod
    def _rgb(bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        if bgr.shape[2] == 4:
            return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _rect(self, bbox: np.ndarray) -> Any:
        x1, y1, x2, y2 = (round(float(v)) for v in bbox)
        return self._dlib.rectangle(x1, y1, max(x1 + 1, x2), max(y1 + 1, y2))

    def _detect_rgb(self, rgb: np.ndarray, upsample: int) -> list[tuple[Any, float]]:
        if self._cnn is not None:
            found = self._cnn(rgb, upsample)
            return [(d.rect, float(d.confidence)) for d in found]
        rects, scores, _kinds = self._hog.run(rgb, upsample, 0.0)
        return [(r, float(s)) for r, s in zip(rects, scores, strict=True) if s >= self.min_score]

    def _face(self, rgb: np.ndarray, rect: Any, score: float) -> Face:
        shape = self._predictor(rgb, rect)
        lm = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        bbox = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
        return Face(bbox=bbox, kps=kps_from_68(lm), landmarks=lm, embedding=None, score=score)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        self._need()
        rgb = self._rgb(bgr)
        if self.upsample is not None:
            found = self._detect_rgb(rgb, self.upsample)
        else:
            found = self._detect_rgb(rgb, 0)
            if not found and max(rgb.shape[:2]) <= 640:
                found = self._detect_rgb(rgb, 1)
        return [self._face(rgb, rect, score) for rect, score in found]

    def landmarks(self, bgr: np.ndarray, faces: list[Face]) -> list[Face]:
        self._need()
        if not faces:
            return []
        rgb = self._rgb(bgr)
        out = []
        for face in faces:
            fresh = self._face(rgb, self._rect(face.bbox), face.score)
            fresh.bbox = np.asarray(face.bbox, np.float32).copy()
            fresh.embedding = face.embedding
            out.append(fresh)
        return out

    # ---- identity --------------------------------------------------------------------------------
    def _shape_of(self, face: Face) -> Any:
        dlib = self._dlib
        if face.landmarks is None or len(face.landmarks) != 68:
            raise ValueError("68 landmarks are needed")
        points = dlib.points()
        for x, y in face.landmarks:
            points.append(dlib.point(round(float(x)), round(float(y))))
        return dlib.full_object_detection(self._rect(face.bbox), points)

    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray | None:
        self._need()
        rgb = self._rgb(bgr)
        if face.landmarks is None or len(face.landmarks) != 68:
            face = self.landmarks(bgr, [face])[0]
        vector = np.asarray(self._descriptor.compute_face_descriptor(rgb, self._shape_of(face)), np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """How alike two descriptors are, on the scale of ``FaceSwapOptions.reference_similarity``.

        dlib descriptors of different people are still close in angle; their cosine is stretched
        so that dlib's usual same-person limit lands on the option's default (0.35) and 1 stays 1.
        """
        cos = float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
        score = 1.0 - (1.0 - cos) * (1.0 - _OPTION_SAME) / (1.0 - _DLIB_SAME_COS)
        return float(max(-1.0, min(1.0, score)))

    # ---- the source face -------------------------------------------------------------------------
    def prepare_source(self, images: list[np.ndarray]) -> SourceFace:
        self._need()
        return prepare_source_faces(
            images,
            as_bgr=lambda im: im if im.ndim == 3 and im.shape[2] == 3 else self._bgr(im),
            detect=self.detect,
            embed=self.embed,
            crop=self._source_crop,
            need_embedding=False,
        )

    @staticmethod
    def _bgr(image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)

    @staticmethod
    def _source_crop(bgr: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
        """A crop around the face (forehead included), shrunk to at most SOURCE_FACE_PX across."""
        assert face.landmarks is not None
        pts = extended_points(face.landmarks, _FOREHEAD_LIFT * 1.3)
        size = blend.face_size(face.landmarks)
        x1, y1, x2, y2 = blend.crop_box(pts, bgr.shape, margin=size * 0.15 + 4)
        crop = bgr[y1:y2, x1:x2]
        factor = min(1.0, SOURCE_FACE_PX / size)
        if factor < 1.0:
            crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        else:
            crop = crop.copy()
        local = face.scaled(1.0, (-x1, -y1)).scaled(factor)
        return crop, local

    # ---- swapping --------------------------------------------------------------------------------
    def _triangles(self, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        key = id(crop)
        cached = self._tris.get(key)
        if cached is not None and cached[0] is crop:
            return cached[1]
        tris = _delaunay(points)
        if len(self._tris) > 32:
            self._tris.clear()
        self._tris[key] = (crop, tris)
        return tris

    def _pick_source(self, source: SourceFace, target_lm: np.ndarray) -> int:
        """The source photo whose head turn is closest to the target's."""
        if len(source.faces) == 1:
            return 0
        yaw = yaw_of(target_lm)
        turns = [abs(yaw_of(f.landmarks) - yaw) if f.landmarks is not None else 9.0 for f in source.faces]
        return int(np.argmin(turns))

    def swap(self, frame: np.ndarray, target: Face, source: SourceFace, options: FaceSwapOptions) -> np.ndarray:
        self._need()
        opacity = float(options.opacity)
        if opacity <= 0.0 or not source.faces:
            return frame
        if target.landmarks is None or len(target.landmarks) != 68:
            target = self.landmarks(frame, [target])[0]
        assert target.landmarks is not None
        index = self._pick_source(source, target.landmarks)
        src_face, src_img = source.faces[index], source.images[index]
        if src_face.landmarks is None:
            return frame
        src_pts = extended_points(src_face.landmarks)
        dst_all = extended_points(target.landmarks)
        size = blend.face_size(target.landmarks)
        blur_px = blend.scaled_px(options.mask_blur, size)
        erode_px = blend.scaled_px(options.mask_erode, size)
        x1, y1, x2, y2 = blend.crop_box(dst_all, frame.shape, margin=4)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return frame
        offset = np.array([x1, y1], np.float32)
        crop = frame[y1:y2, x1:x2]
        tris = self._triangles(src_img, src_pts)
        map_x, map_y, valid = _piecewise_maps(src_pts, dst_all - offset, tris, crop.shape[:2])
        warped = cv2.remap(src_img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = blend.hull_mask(_mask_points(target.landmarks) - offset, crop.shape)
        mask[~valid] = 0
        if options.color_match:
            core = mask
            if erode_px > 0:
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
                core = cv2.erode(mask, kernel)
            warped = blend.match_color_lab(warped, crop, core)
        alpha = blend.feather(mask, erode_px, blur_px)
        if options.mouth_mask:
            polygon = blend.mouth_polygon(target.landmarks - offset)
            if polygon is not None:
                alpha *= 1.0 - blend.mouth_alpha(polygon, crop.shape, size)
        if opacity < 1.0:
            alpha *= opacity
        if self.seamless:
            inner = (alpha > 0.02).astype(np.uint8) * 255
            warped = blend.seamless(crop, warped, inner)
        frame[y1:y2, x1:x2] = blend.alpha_blend(crop, warped, alpha)
        return frame
