"""The InsightFace engine: SCRFD detection, ArcFace identity, 2d-106 landmarks and the inswapper swap.

Models come from the model manager only: a buffalo pack (``insightface-buffalo-l`` or ``-s``,
unpacked in the store) read by insightface's ``FaceAnalysis`` from that folder, and the inswapper
ONNX file (full or half precision) read by ``insightface.model_zoo.get_model``. insightface is never
asked to fetch anything: it is always given a folder or file that exists, and a missing model is a
sentence naming what to download in the model manager.

A swap aligns the target face by its five key points onto the swapper's 128x128 layout, runs the
swapper with the source identity (the ArcFace embedding projected by the model's ``emap``), and
pastes the new face back into the frame's face region only, through our own mask: the crop's
outline pulled in and feathered (sizes scale with the face), the target's mouth kept when asked,
the colours matched to the target's skin, and the opacity applied.

insightface and onnxruntime are imported in :meth:`InsightEngine.load`, on the thread that will
use the engine.
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
from workers.face_swap.enhancer import (
    Enhancer,
    choose_providers,
    load_enhancer,
    paste_region,
    session_options,
    similarity_transform,
    warp_back,
)
from workers.face_swap.options import (
    INSIGHTFACE_PACKS,
    SWAPPER_PREFERENCE,
    SWAPPERS,
    Face,
    FaceSwapOptions,
    SourceFace,
    ready_pack,
    ready_swapper,
)
from workers.face_swap.swappers import SWAPPER_SPECS, OnnxSwapper, SwapperSpec

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = [
    "ARCFACE_112",
    "Enhancer",
    "InsightEngine",
    "align_matrix",
    "kps_from_106",
    "load_enhancer",
]

#: Where ArcFace expects the five key points in a 112x112 crop (eyes, nose tip, mouth corners).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)
#: The pack's models the engine uses (the others in a pack, gender/age and 3d-68, are skipped).
PACK_MODULES = ("detection", "recognition", "landmark_2d_106")
#: Detector input sizes (square): an image is detected at the smallest one that holds it, up to det_size.
DET_BUCKETS = (160, 256, 320, 416, 512, 640, 800, 960, 1280)
#: The 2d-106 layout: contour 0-32, one eye 33-42, mouth 52-71, nose 72-86, the other eye 87-96.
EYE_A_106 = slice(33, 43)
EYE_B_106 = slice(87, 97)
MOUTH_106 = slice(52, 72)
NOSE_106 = slice(72, 87)
#: Points that move with the face but not with the jaw (eyes, brows, nose), for tracking.
RIGID_106 = np.r_[33:52, 72:106]


def align_matrix(kps: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity that puts five key points where an ArcFace-style model of ``size`` wants them.

    insightface's layouts: 112 (and multiples) scale the 112 template; 128 (and multiples) scale it
    by size/128 and move it 8/128 of the width to the right.
    """
    if size % 112 == 0:
        dst = ARCFACE_112 * (size / 112.0)
    else:
        ratio = size / 128.0
        dst = ARCFACE_112 * ratio
        dst[:, 0] += 8.0 * ratio
    return similarity_transform(np.asarray(kps, np.float32), dst)


def kps_from_106(landmarks: np.ndarray) -> np.ndarray:
    """Five key points (image-left eye first) from 106 landmarks: eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks, np.float32)
    eyes = sorted((lm[EYE_A_106].mean(axis=0), lm[EYE_B_106].mean(axis=0)), key=lambda p: float(p[0]))
    mouth = lm[MOUTH_106]
    left = mouth[int(np.argmin(mouth[:, 0]))]
    right = mouth[int(np.argmax(mouth[:, 0]))]
    nose = lm[NOSE_106]
    tip = nose[-1] if len(nose) else (eyes[0] + eyes[1]) / 2
    return np.stack([eyes[0], eyes[1], tip, left, right]).astype(np.float32)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def _swap_mask(size: int) -> np.ndarray:
    """The face in a swapper crop (uint8 0/255): an oval from the hairline to the chin, cheek to cheek.

    In insightface's 128 layout the eyes sit at y 52 and the mouth at y 92; the oval leaves out
    the hair, ears and background that the crop's corners hold.
    """
    mask = np.zeros((size, size), np.uint8)
    s = size / 128.0
    cv2.ellipse(mask, (round(64 * s), round(72 * s)), (round(44 * s), round(48 * s)), 0, 0, 360, 255, -1)
    return mask


class InsightEngine:
    """Face detection, identity and swapping with InsightFace models from the model manager."""

    name = "insightface"

    def __init__(
        self,
        store: ModelStore | None = None,
        *,
        pack: str | None = None,
        swapper: str | None = None,
        preset: str = "cpu",
        device: str = "auto",
        det_size: int = 640,
        det_thresh: float = 0.5,
        dense_landmarks: bool = True,
        providers: list[Any] | None = None,
    ) -> None:
        """``pack``/``swapper``: model ids (None: the first installed, the swapper build the preset prefers).

        ``det_size``: the largest detector input (square); smaller images are detected at a smaller
        size (never upscaled to it). ``device``: "auto", "cpu" or "gpu"; ``providers`` overrides it.
        ``dense_landmarks``: compute the 106 landmarks at each detection (mouth mask, tracking).
        """
        self.store = store
        self.pack = pack
        self.swapper_id = swapper
        self.preset = preset
        self.device = device
        self.det_size = _multiple_of_32(det_size)
        self.det_thresh = float(det_thresh)
        self.dense_landmarks = dense_landmarks
        self._providers_override = providers
        self.providers: list[Any] = []
        self.pack_folder: Path | None = None
        self._app: Any = None
        self._det: Any = None
        self._rec: Any = None
        self._lmk: Any = None
        self._swapper: Any = None
        self._swap_dtype: Any = np.float32
        self._emap: np.ndarray | None = None
        self._latents: dict[bytes, np.ndarray] = {}
        self._enhancers: dict[str, Enhancer] = {}
        self._maskers: dict[str, Any] = {}
        self._mask_failed: set[str] = set()
        #: A sentence for the user when a mask could not be used (the pipeline passes it on once).
        self.mask_problem: str | None = None
        #: Live video: masks are computed every N frames and reused in between (the pipeline sets it
        #: to the detection interval).
        self.mask_every = 1
        self._mask128 = _swap_mask(128)

    # ---- loading ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._det is not None and self._swapper is not None

    def _store(self) -> ModelStore:
        if self.store is None:
            from workers.models.store import ModelStore

            self.store = ModelStore()
        return self.store

    def _resolve(self) -> tuple[str, str]:
        """The pack and swapper ids to load; a UserError naming what to download when one is missing."""
        store = self._store()
        pack = self.pack or ready_pack(store)
        swapper = self.swapper_id or ready_swapper(store, self.preset)
        missing: list[str] = []
        if pack is None or not store.state(pack).usable:
            missing.append(pack or INSIGHTFACE_PACKS[0])
        if swapper is None or not store.state(swapper).usable:
            missing.append(swapper or SWAPPER_PREFERENCE.get(self.preset, SWAPPERS)[0])
        if missing:
            names = []
            for model_id in missing:
                try:
                    names.append(store.get(model_id).name)
                except UserError:
                    names.append(model_id)
            commands = " and ".join(f"snowai-studio models download {m}" for m in missing)
            raise UserError(
                f"The InsightFace engine needs {' and '.join(names)}: download "
                f"{'them' if len(names) > 1 else 'it'} in the model manager (Models, or run {commands}), "
                "or use the classic engine."
            )
        assert pack is not None and swapper is not None
        return pack, swapper

    @staticmethod
    def _onnx_folder(folder: Path, name: str) -> Path:
        """The folder of a pack that holds its ONNX files (some zips wrap them in a subfolder)."""
        if any(folder.glob("*.onnx")):
            return folder
        subs = [p for p in sorted(folder.iterdir()) if p.is_dir() and any(p.glob("*.onnx"))]
        if subs:
            return subs[0]
        raise UserError(f"The model pack {name} holds no ONNX models; remove it and download it again in Models.")

    def load(self) -> None:
        if self.loaded:
            return
        pack, swapper = self._resolve()
        store = self._store()
        try:
            import onnxruntime  # noqa: F401
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise UserError(
                f"The InsightFace engine needs insightface and onnxruntime ({exc.name} is missing)."
            ) from None
        pack_name = store.get(pack).name
        folder = self._onnx_folder(Path(store.path_of(pack)), pack_name)
        from workers.models.store import TENSORRT_CACHE_DIR

        cache = store.root / TENSORRT_CACHE_DIR
        self.providers = self._providers_override or choose_providers(self.device, cache)
        on_gpu = any((p if isinstance(p, str) else p[0]) != "CPUExecutionProvider" for p in self.providers)
        opts = session_options()
        try:
            # An existing folder is used as it is: FaceAnalysis never looks for (or fetches) a pack.
            app = FaceAnalysis(
                name=str(folder),
                root=str(folder.parent),
                allowed_modules=list(PACK_MODULES),
                providers=self.providers,
                sess_options=opts,
            )
        except AssertionError:
            raise UserError(
                f"The model pack {pack_name} has no face detector; remove it and download it again in Models."
            ) from None
        app.prepare(ctx_id=0 if on_gpu else -1, det_thresh=self.det_thresh, det_size=(self.det_size, self.det_size))
        if "recognition" not in app.models:
            raise UserError(f"The model pack {pack_name} has no face recogniser; remove it and download it again.")
        swap_path = Path(store.path_of(swapper))
        spec = SWAPPER_SPECS.get(swapper)
        converter_path = None
        if spec is not None and spec.converter:
            if not store.state(spec.converter).usable:
                name = store.get(spec.converter).name
                raise UserError(
                    f"{store.get(swapper).name} needs {name}: download it in the model manager "
                    f"(snowai-studio models download {spec.converter})."
                )
            converter_path = Path(store.path_of(spec.converter))
        model = OnnxSwapper(
            swapper, swap_path, converter_path=converter_path, providers=self.providers, session_options=opts
        )
        self._app = app
        self._det = app.det_model
        self._rec = app.models["recognition"]
        self._lmk = app.models.get("landmark_2d_106")
        self._swapper = model
        self._emap = model.emap
        self._swap_dtype = model.dtype
        self.pack_folder = folder
        self.pack, self.swapper_id = pack, swapper
        log.info(
            "insightface engine loaded: %s from %s, swapper %s (%s), providers %s",
            pack,
            folder,
            swapper,
            np.dtype(self._swap_dtype).name,
            [p if isinstance(p, str) else p[0] for p in self.providers],
        )

    def close(self) -> None:
        self._app = self._det = self._rec = self._lmk = self._swapper = None
        self._emap = None
        self._latents.clear()
        self._enhancers.clear()
        self._maskers.clear()
        self._mask_failed.clear()

    def _need(self) -> None:
        if not self.loaded:
            self.load()

    def set_det_size(self, size: int) -> None:
        """The largest detector input from now on (live video uses a smaller one)."""
        self.det_size = _multiple_of_32(size)

    def enhancer(self, model_id: str, strength: float = 1.0) -> Enhancer:
        """The face enhancer ``model_id``, loaded once with the engine's providers."""
        cached = self._enhancers.get(model_id)
        if cached is None:
            cached = load_enhancer(self._store(), model_id, providers=self.providers or None, strength=strength)
            self._enhancers[model_id] = cached
        cached.strength = float(strength)
        return cached

    # ---- detection and landmarks -----------------------------------------------------------------
    def _input_size(self, shape: tuple[int, ...]) -> int:
        longest = max(shape[0], shape[1])
        fits = [b for b in DET_BUCKETS if b >= longest and b <= self.det_size]
        return fits[0] if fits else self.det_size

    def _landmarks_106(self, bgr: np.ndarray, bbox: np.ndarray) -> np.ndarray | None:
        if self._lmk is None:
            return None
        from insightface.app.common import Face as InsightFace

        return np.asarray(self._lmk.get(bgr, InsightFace(bbox=np.asarray(bbox, np.float32))), np.float32)[:, :2]

    def detect(self, bgr: np.ndarray) -> list[Face]:
        self._need()
        size = self._input_size(bgr.shape)
        boxes, kpss = self._det.detect(bgr, input_size=(size, size), max_num=0, metric="default")
        faces: list[Face] = []
        for i in range(boxes.shape[0]):
            bbox = boxes[i, :4].astype(np.float32)
            dense = self._landmarks_106(bgr, bbox) if (self.dense_landmarks or kpss is None) else None
            if kpss is not None:
                kps = np.asarray(kpss[i], np.float32)
            elif dense is not None:
                kps = kps_from_106(dense)
            else:
                continue
            faces.append(Face(bbox=bbox, kps=kps, landmarks=dense, score=float(boxes[i, 4])))
        return faces

    def landmarks(self, bgr: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces with 106 landmarks and key points refreshed around their (tracked) boxes.

        With the pack's 106-point model, the key points follow the motion of the rigid landmarks
        (eyes, brows, nose) since the face's last landmarks; without it, the detector runs on a
        small crop around each box.
        """
        self._need()
        out = []
        for face in faces:
            if self._lmk is not None:
                new = self._landmarks_106(bgr, face.bbox)
                assert new is not None
                if face.landmarks is not None and len(face.landmarks) == 106 and face.kps is not None:
                    m = similarity_transform(face.landmarks[RIGID_106], new[RIGID_106])
                    kps = _apply(m, face.kps)
                else:
                    kps = kps_from_106(new)
                out.append(Face(np.asarray(face.bbox, np.float32), kps, new, face.embedding, face.score))
            else:
                out.append(self._redetect(bgr, face))
        return out

    def _redetect(self, bgr: np.ndarray, face: Face) -> Face:
        """The face found by the detector in a crop twice its box's size, or the face unchanged."""
        cx, cy = face.center
        half = max(face.width, face.height)
        height, width = bgr.shape[:2]
        x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
        x2, y2 = min(width, int(cx + half)), min(height, int(cy + half))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return face
        crop = bgr[y1:y2, x1:x2]
        size = DET_BUCKETS[0]
        boxes, kpss = self._det.detect(crop, input_size=(size, size), max_num=0, metric="default")
        if boxes.shape[0] == 0 or kpss is None:
            return face
        centres = (boxes[:, :2] + boxes[:, 2:4]) / 2 + (x1, y1)
        best = int(np.argmin(np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)))
        offset = np.array([x1, y1], np.float32)
        bbox = boxes[best, :4].astype(np.float32) + np.tile(offset, 2)
        return Face(bbox, np.asarray(kpss[best], np.float32) + offset, None, face.embedding, float(boxes[best, 4]))

    # ---- identity --------------------------------------------------------------------------------
    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray | None:
        self._need()
        size = int(self._rec.input_size[0])
        m = align_matrix(face.kps, size)
        crop = cv2.warpAffine(bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
        vector = np.asarray(self._rec.get_feat(crop), np.float32).ravel()
        norm = float(np.linalg.norm(vector))
        return (vector / norm).astype(np.float32) if norm > 0 else None

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two identity vectors (the scale of ``reference_similarity``)."""
        return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))

    def prepare_source(self, images: list[np.ndarray]) -> SourceFace:
        self._need()
        source = prepare_source_faces(
            images, as_bgr=_as_bgr, detect=self.detect, embed=self.embed, crop=_face_crop, need_embedding=True
        )
        raws = [self._raw_embedding(img, face) for img, face in zip(source.images, source.faces, strict=True)]
        found = [r for r in raws if r is not None]
        if found:
            source.raw_embedding = np.mean(found, axis=0).astype(np.float32)
        return source

    def _raw_embedding(self, bgr: np.ndarray, face: Face) -> np.ndarray | None:
        """The identity vector before normalisation (what identity converters were trained on)."""
        if face.kps is None:
            return None
        size = int(self._rec.input_size[0])
        crop = cv2.warpAffine(bgr, align_matrix(face.kps, size), (size, size), flags=cv2.INTER_LINEAR)
        return np.asarray(self._rec.get_feat(crop), np.float32).ravel()

    # ---- swapping --------------------------------------------------------------------------------
    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """The swapper's identity input for a normalised embedding (cached per embedding)."""
        self._need()
        return self._swapper.identity(SourceFace(embedding=embedding, faces=[], images=[], count=1))

    def swap_crop(
        self, frame: np.ndarray, kps: np.ndarray, embedding: np.ndarray | SourceFace, boost: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The swapper's new face (BGR, its crop size times ``boost``) for the face at ``kps``, and
        the frame -> crop matrix. ``embedding``: a source face, or a normalised identity vector."""
        self._need()
        source = embedding if isinstance(embedding, SourceFace) else SourceFace(embedding, [], [], 1)
        return self._swapper.swap_crop(frame, kps, self._swapper.identity(source), boost)

    def masker(self, kind: str, regions: tuple[str, ...] = ()) -> Any:
        """The occlusion ("occlusion") or region ("regions") masker, loaded once from the store."""
        from workers.face_swap import masks

        model_id = masks.OCCLUSION_MODEL if kind == "occlusion" else masks.REGION_MODEL
        cached = self._maskers.get(kind)
        if cached is None:
            store = self._store()
            state = store.state(model_id)
            if not state.usable:
                raise UserError(
                    f"The {'occlusion' if kind == 'occlusion' else 'face region'} mask needs {state.model.name}: "
                    f"download it in the model manager (snowai-studio models download {model_id})."
                )
            cls = masks.OcclusionMasker if kind == "occlusion" else masks.RegionMasker
            cached = cls(Path(store.path_of(model_id)), providers=self.providers or None)
            self._maskers[kind] = cached
        if kind == "regions":
            cached.regions = regions
        return cached

    def _face_mask(
        self, frame: np.ndarray, target: Face, m: np.ndarray, size: int, options: FaceSwapOptions
    ) -> np.ndarray | None:
        """The occlusion and region masks multiplied, in the crop's coordinates (None: neither is on)."""
        from workers.face_swap.masks import face_key, parse_regions

        regions = parse_regions(options.face_regions)
        if not options.occlusion_mask and not regions:
            return None
        crop = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        key, every = face_key(target), max(1, int(self.mask_every))
        out = np.ones((size, size), np.float32)
        for kind, wanted in (("occlusion", options.occlusion_mask), ("regions", bool(regions))):
            if not wanted or kind in self._mask_failed:
                continue
            try:
                out *= self.masker(kind, regions).mask(crop, key=key, every=every)
            except UserError as exc:  # the mask is off from now on; the swap goes on without it
                self._mask_failed.add(kind)
                self.mask_problem = str(exc)
                log.warning("the %s mask is off: %s", kind, exc)
        return out

    @property
    def swapper_spec(self) -> SwapperSpec | None:
        return self._swapper.spec if self._swapper is not None else None

    def swap(self, frame: np.ndarray, target: Face, source: SourceFace, options: FaceSwapOptions) -> np.ndarray:
        self._need()
        opacity = float(options.opacity)
        needs_vector = self._swapper is None or self._swapper.spec.source != "image"
        if opacity <= 0.0 or (needs_vector and source.embedding is None) or target.kps is None:
            return frame
        fake, m = self.swap_crop(frame, target.kps, source, int(getattr(options, "pixel_boost", 1) or 1))
        size = fake.shape[0]
        box = paste_region(cv2.invertAffineTransform(m), size, frame.shape)
        x1, y1, x2, y2 = box
        if x2 - x1 < 4 or y2 - y1 < 4:
            return frame
        region = frame[y1:y2, x1:x2]
        new = warp_back(fake, m, box)
        mask128 = self._mask128 if size == 128 else _swap_mask(size)
        mask = warp_back(mask128, m, box, flags=cv2.INTER_NEAREST)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2])))) or 1.0
        face_px = size / scale
        erode_px = blend.scaled_px(options.mask_erode, face_px)
        blur_px = blend.scaled_px(options.mask_blur, face_px)
        if options.color_match:
            core = mask
            if erode_px > 0:
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
                core = cv2.erode(mask, kernel)
            new = blend.match_color_lab(new, region, core)
        alpha = blend.feather(mask, erode_px, blur_px)
        face_mask = self._face_mask(frame, target, m, size, options)
        if face_mask is not None:
            alpha *= warp_back(face_mask, m, box)
        if options.mouth_mask:
            polygon = _mouth_polygon(target)
            if polygon is not None:
                alpha *= 1.0 - blend.mouth_alpha(polygon - (x1, y1), region.shape, face_px)
        if opacity < 1.0:
            alpha *= opacity
        frame[y1:y2, x1:x2] = blend.alpha_blend(region, new, alpha)
        return frame


def _mouth_polygon(face: Face) -> np.ndarray | None:
    """The target's mouth: its 106-point lips when they sit between the mouth corners, else an ellipse."""
    if face.landmarks is not None and len(face.landmarks) == 106 and face.kps is not None:
        lips = np.asarray(face.landmarks[MOUTH_106], np.float32)
        centre = (np.asarray(face.kps[3]) + np.asarray(face.kps[4])) / 2
        width = float(np.linalg.norm(np.asarray(face.kps[4]) - np.asarray(face.kps[3])))
        if width > 2 and float(np.linalg.norm(lips.mean(axis=0) - centre)) < 0.5 * width:
            return lips
    return blend.mouth_polygon(None, face.kps)


def _multiple_of_32(size: int) -> int:
    """A detector input side: SCRFD's strides need a multiple of 32 (at least the smallest bucket)."""
    return max(DET_BUCKETS[0], round(int(size) / 32.0) * 32)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _face_crop(bgr: np.ndarray, face: Face, margin: float = 0.35) -> tuple[np.ndarray, Face]:
    """A copy of the region around a face and the face in that crop's coordinates."""
    pad = margin * max(face.width, face.height)
    x1, y1, x2, y2 = blend.crop_box(np.asarray(face.bbox, np.float32).reshape(2, 2), bgr.shape, pad)
    return bgr[y1:y2, x1:x2].copy(), face.scaled(1.0, (-x1, -y1))
