"""The face swap from frame to result: engine choice, target choice, live tracking, timings, the mark.

:class:`FaceSwapPipeline` follows the :class:`workers.engine.Engine` contract: ``load`` once on the
thread that will use it, ``process`` one live frame at a time, ``set_param`` to change a setting
live, ``close``. Images (and the frames of an exported video) go through :meth:`swap_image`,
which detects at full quality on every call; the live path (:meth:`process`) detects on a small
copy of the frame every few frames and follows the faces with optical flow in between
(:mod:`workers.face_swap.tracking`), refreshing their landmarks on the tracked boxes, and swaps
on face crops only.

The engine is insightface when its models are installed (or asked for), else the classic dlib
engine; insightface's module is imported only when that engine is built.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from workers.errors import UserError, describe_exception
from workers.face_swap.engines import FaceEngine
from workers.face_swap.mark import draw_mark
from workers.face_swap.masks import face_key
from workers.face_swap.options import (
    Face,
    FaceSwapOptions,
    SourceFace,
    SwapResult,
    coerce_option,
    engine_status,
)
from workers.face_swap.tracking import FaceTracker, TrackResult

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

#: Builds an engine by name ("classic" or "insightface").
EngineFactory = Callable[[str], FaceEngine]
STAGES = ("detect", "track", "swap", "enhance", "mark")
#: Still images larger than this (longest side, px) are detected on a smaller copy; landmarks
#: are then refined at full resolution.
STILL_DETECT_SIDE = 1600
#: For engines whose detector needs big faces (dlib's HOG finds nothing under ~80 px, so a
#: downscaled frame misses faces and a full-size one is slow; ``redetect_around_faces = True``),
#: live re-detection between full-frame scans looks only around the faces being followed: a crop
#: ROI_MARGIN face sizes each side of the face's centre, scaled so the face is ROI_FACE_SIDE px.
ROI_MARGIN = 1.1
ROI_FACE_SIDE = 112
#: Every FULL_SCAN_EVERY-th live detection scans the whole frame (to find faces that came in).
FULL_SCAN_EVERY = 4


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def left_to_right(faces: list[Face]) -> list[Face]:
    """Faces ordered by the centre of their box, left to right (then top to bottom)."""
    return sorted(faces, key=lambda f: (round(f.center[0]), f.center[1]))


class FaceSwapPipeline:
    """Swaps the source face onto the chosen faces of images and live frames."""

    name = "Face swap"

    def __init__(
        self,
        store: ModelStore | None,
        options: FaceSwapOptions | None = None,
        *,
        engine_factory: EngineFactory | None = None,
        device: str = "auto",
    ) -> None:
        self.store = store
        #: "auto", "cpu" or "cuda" (Settings → Compute device) for the ONNX models.
        self.device = device
        self.options = options.copy() if options is not None else FaceSwapOptions()
        self._factory = engine_factory
        self.engine: FaceEngine | None = None
        #: A sentence for the user when the pipeline had to settle for less (engine or enhancer).
        self.warning: str | None = None
        #: Poisson blending in the live path (slower); stills always use it where the engine has it.
        self.live_seamless = False
        #: Stills: a target face that no source view fits is left as it is, and :attr:`warning`
        #: names the photo to add. Cleared for exported videos, which (like live frames) use the
        #: closest view and say so once.
        self.strict_views = True
        self._said: set[str] = set()
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.frames = 0
        self.detections = 0
        #: Live detections that scanned the whole frame (the others looked around known faces).
        self.full_scans = 0
        self._lock = threading.RLock()
        self._source_images: list[np.ndarray] = []
        self._source: SourceFace | None = None
        self._per_image: dict[int, SourceFace] = {}
        self._reference_image: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._tracker = FaceTracker()
        self._since_detect = 0
        self._since_full_scan = 0
        self._detect_next = True
        self._enhancer: Any = None
        self._enhancer_id: str | None = None
        self._enhancer_failed: str | None = None

    # ---- engine ----------------------------------------------------------------------------------
    @property
    def engine_name(self) -> str:
        return self.engine.name if self.engine is not None else ""

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    def _build(self, name: str) -> FaceEngine:
        if self._factory is not None:
            return self._factory(name)
        if name == "classic":
            from workers.face_swap.classic import ClassicEngine

            return ClassicEngine(self.store)
        from workers.face_swap.insight import InsightEngine

        return InsightEngine(
            self.store, swapper=self.options.swapper, preset=self.options.preset, device=self.device
        )

    def _choose(self) -> str:
        wanted = self.options.engine
        if wanted != "auto":
            return wanted
        if self.store is None:
            return "classic"
        return engine_status(self.store, self.options.preset).active

    def load(self) -> None:
        """Build and load the engine the options ask for (falling back to classic from "auto")."""
        with self._lock:
            if self.engine is not None:
                return
            self.warning = None
            name = self._choose()
            engine: FaceEngine | None = None
            try:
                engine = self._build(name)
                engine.load()
            except Exception as exc:
                if name == "classic" or self.options.engine != "auto":
                    if engine is not None:
                        _close_quietly(engine)
                    raise
                log.warning("the insightface engine could not start; using the classic engine", exc_info=True)
                if engine is not None:
                    _close_quietly(engine)
                self.warning = describe_exception(exc, "InsightFace could not start, so the classic engine is used")
                engine = self._build("classic")
                engine.load()
            self.engine = engine
            log.info("face swap engine: %s", engine.name)
            note = getattr(engine, "detector_note", None)
            if note and not self.warning:
                self.warning = str(note)
            if self._source_images:
                self._source = engine.prepare_source(self._source_images)
            if self._reference_image is not None:
                self._reference = self._embed_reference(self._reference_image)

    def _need(self) -> FaceEngine:
        if self.engine is None:
            self.load()
        assert self.engine is not None
        return self.engine

    def close(self) -> None:
        with self._lock:
            engine, self.engine = self.engine, None
            if engine is not None:
                _close_quietly(engine)
            self._enhancer, self._enhancer_id = None, None
            self._source = None
            self._per_image.clear()
            self._reference = None
            self._tracker.reset()

    # ---- settings --------------------------------------------------------------------------------
    def set_param(self, name: str, value: Any) -> None:
        """Change one option live; changing the engine reloads it and prepares the source again."""
        value = coerce_option(name, value)
        with self._lock:
            if name == "preset":
                self.options = self.options.with_preset(value)
            else:
                setattr(self.options, name, value)
            if name in ("detect_every", "detect_size", "preset"):
                self._detect_next = True
            if self.engine is None:
                return
            if name == "engine":
                if self._choose() != self.engine.name or self.options.engine == "auto":
                    self._swap_engine()
            elif name == "preset" and getattr(self.engine, "preset", value) != value:
                self._swap_engine()  # the preset picks the swapper build (half precision on a GPU)
            elif name == "swapper" and self.engine.name == "insightface":
                self._swap_engine()
            elif name in ("occlusion_mask", "face_regions") and hasattr(self.engine, "_mask_failed"):
                self.engine._mask_failed.clear()  # type: ignore[attr-defined]  # try the models again
            elif name == "enhancer" and value != self._enhancer_id:
                self._enhancer_failed = None
            elif name == "face_map":
                for index in sorted(value):  # prepare each mapped photo now, not on a live frame
                    self._source_for(index)

    def _swap_engine(self) -> None:
        old = self.engine
        self.engine = None
        self._enhancer, self._enhancer_id, self._enhancer_failed = None, None, None
        self._per_image.clear()
        self._tracker.reset()
        self._detect_next = True
        try:
            self.load()
        except BaseException:
            self.engine = old  # keep working with the engine we had
            raise
        if old is not None and old is not self.engine:
            _close_quietly(old)

    # ---- source and reference --------------------------------------------------------------------
    @property
    def source(self) -> SourceFace | None:
        return self._source

    def set_source(self, images: list[np.ndarray]) -> SourceFace | None:
        """The face to put onto targets, from one or several photos of one person (identities averaged).

        An empty list forgets the source (live frames then pass through untouched). A photo
        without a face is a UserError sentence, and the previous source stays.
        """
        with self._lock:
            if not images:
                self.clear_source()
                return None
            engine = self._need()
            copies = [np.ascontiguousarray(_as_bgr(img)) for img in images]
            source = engine.prepare_source(copies)
            self._source_images = copies
            self._source = source
            self._per_image.clear()
            self._said.clear()
            notes = getattr(source, "notes", None)
            if notes:
                self.warning = " ".join(notes)
            return source

    def clear_source(self) -> None:
        with self._lock:
            self._source_images = []
            self._source = None
            self._per_image.clear()

    def _source_for(self, index: int) -> SourceFace | None:
        """Source face ``index`` of the face map: the photo of that number on its own."""
        if self._source is None:
            return None
        if len(self._source_images) <= 1:
            return self._source if index == 0 else None
        if index >= len(self._source_images):
            return None
        cached = self._per_image.get(index)
        if cached is None:
            cached = self._need().prepare_source([self._source_images[index]])
            self._per_image[index] = cached
        return cached

    def set_reference(self, image: np.ndarray | None) -> None:
        """The person to replace when the target is "reference" (None forgets it)."""
        with self._lock:
            if image is None:
                self._reference_image = None
                self._reference = None
                return
            bgr = np.ascontiguousarray(_as_bgr(image))
            embedding = self._embed_reference(bgr)
            self._reference_image = bgr
            self._reference = embedding
            for track in self._tracker.tracks:
                track.similarity = None

    def _embed_reference(self, bgr: np.ndarray) -> np.ndarray:
        engine = self._need()
        faces = engine.detect(bgr)
        if not faces:
            raise UserError("No face was found on the reference photo; choose a photo of the person to replace.")
        face = max(faces, key=lambda f: f.area)
        vector = face.embedding if face.embedding is not None else engine.embed(bgr, face)
        if vector is None:
            raise UserError("This face engine cannot tell people apart; choose another target than reference.")
        return np.asarray(vector, np.float32)

    def _similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        measure = getattr(self.engine, "similarity", None)
        if callable(measure):
            return float(measure(a, b))
        return cosine(a, b)

    # ---- detection -------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, max_side: int | None = STILL_DETECT_SIDE) -> list[Face]:
        """Every face of an image (full-resolution coordinates), left to right."""
        engine = self._need()
        bgr = _as_bgr(image)
        return left_to_right(self._detect_scaled(engine, bgr, max_side))

    @staticmethod
    def _detect_scaled(engine: FaceEngine, bgr: np.ndarray, max_side: int | None) -> list[Face]:
        height, width = bgr.shape[:2]
        longest = max(height, width)
        if max_side is None or longest <= max_side:
            return engine.detect(bgr)
        factor = max_side / longest
        small = cv2.resize(
            bgr, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA
        )
        faces = [f.scaled(1.0 / factor) for f in engine.detect(small)]
        return engine.landmarks(bgr, faces) if faces else []

    @staticmethod
    def _detect_around(engine: FaceEngine, bgr: np.ndarray, known: list[Face]) -> list[Face] | None:
        """Detect again only around the faces being followed: a crop about twice the face,
        scaled so the face is ``ROI_FACE_SIDE`` pixels wide (every detector finds such a face in
        one pass). Far cheaper than a full-frame scan; returns None when a face is not found
        again, so that the caller scans the whole frame instead."""
        height, width = bgr.shape[:2]
        found: list[Face] = []
        for face in known:
            side = max(face.width, face.height, 8.0)
            cx, cy = face.center
            x1, y1 = max(0, int(cx - side * ROI_MARGIN)), max(0, int(cy - side * ROI_MARGIN))
            x2, y2 = min(width, int(cx + side * ROI_MARGIN)), min(height, int(cy + side * ROI_MARGIN))
            if x2 - x1 < 16 or y2 - y1 < 16:
                return None
            factor = min(2.0, ROI_FACE_SIDE / side)
            crop = bgr[y1:y2, x1:x2]
            if abs(factor - 1.0) > 0.05:
                size = (max(1, round((x2 - x1) * factor)), max(1, round((y2 - y1) * factor)))
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
            else:
                factor = 1.0
            candidates = [f.scaled(1.0 / factor, (x1, y1)) for f in engine.detect(crop)]
            if not candidates:
                return None
            found.append(max(candidates, key=lambda f: _overlap(f.bbox, face.bbox)))
        return engine.landmarks(bgr, found)

    # ---- choosing targets ------------------------------------------------------------------------
    def _needs_identity(self) -> bool:
        return self.options.target == "reference" and not self.options.face_map and self._reference is not None

    def _pairs(self, faces: list[Face], similarities: list[float | None]) -> list[tuple[Face, SourceFace]]:
        """(target, source) pairs for faces ordered left to right."""
        opts = self.options
        if self._source is None or not faces:
            return []
        if opts.face_map:
            pairs = []
            for src_index, dst_index in sorted(opts.face_map.items()):
                source = self._source_for(src_index)
                if source is not None and 0 <= dst_index < len(faces):
                    pairs.append((faces[dst_index], source))
            return pairs
        if opts.target == "largest":
            chosen = [max(faces, key=lambda f: f.area)]
        elif opts.target == "index":
            chosen = [faces[opts.target_index]] if opts.target_index < len(faces) else []
        elif opts.target == "reference":
            if self._reference is None:
                chosen = []  # nobody to look for yet: swap no one rather than everyone
            else:
                chosen = [
                    f
                    for f, s in zip(faces, similarities, strict=True)
                    if s is not None and s >= opts.reference_similarity
                ]
        else:
            chosen = list(faces)
        return [(f, self._source) for f in chosen]

    def _similarities(self, bgr: np.ndarray, faces: list[Face]) -> list[float | None]:
        if not self._needs_identity():
            return [None] * len(faces)
        engine = self._need()
        assert self._reference is not None
        out: list[float | None] = []
        for face in faces:
            vector = face.embedding
            if vector is None:
                vector = engine.embed(bgr, face)
                face.embedding = vector
            out.append(self._similarity(vector, self._reference) if vector is not None else None)
        return out

    # ---- swapping --------------------------------------------------------------------------------
    def _set_seamless(self, engine: FaceEngine, value: bool) -> None:
        if hasattr(engine, "seamless"):
            engine.seamless = value  # type: ignore[attr-defined]

    def _swap_all(
        self, out: np.ndarray, pairs: list[tuple[Face, SourceFace]], ms: dict[str, float], *, strict: bool
    ) -> tuple[np.ndarray, int, list[str]]:
        """The frame with every pair swapped; how many faces were swapped, and the engine's sentences
        about source photos that are missing (faces left alone when ``strict``)."""
        engine = self._need()
        opts = self.options
        if hasattr(engine, "strict_views"):
            engine.strict_views = strict  # type: ignore[attr-defined]
        if hasattr(engine, "mask_every"):  # stills: a fresh mask per face; video: at detection intervals
            engine.mask_every = 1 if strict else max(1, int(opts.detect_every))  # type: ignore[attr-defined]
        # The enhancer runs here, once per swapped face, whatever the engine.
        swap_opts = opts.copy()
        swap_opts.enhancer = None
        enhancer = self._enhancer_for(opts.enhancer)
        swapped = 0
        notes: list[str] = []
        for target, source in pairs:
            t0 = time.perf_counter()
            out = engine.swap(out, target, source, swap_opts)
            t1 = time.perf_counter()
            ms["swap"] += (t1 - t0) * 1000
            problem = getattr(engine, "mask_problem", None)
            if problem:
                self.warning = str(problem)
                engine.mask_problem = None  # type: ignore[attr-defined]
            notice = getattr(engine, "notice", None)
            if notice and notice not in notes:
                notes.append(str(notice))
            if getattr(engine, "skipped", False):
                continue
            swapped += 1
            if enhancer is not None:
                enhancer.strength = float(opts.enhancer_blend)
                enhancer.fidelity = float(opts.enhancer_fidelity)
                every = 1 if strict else max(1, int(opts.enhance_every or opts.detect_every))
                try:
                    out = enhancer.enhance(out, target, key=face_key(target), every=every)
                except Exception as exc:
                    self._drop_enhancer(exc)
                    enhancer = None
                ms["enhance"] += (time.perf_counter() - t1) * 1000
        if notes:
            self._tell(notes, strict)
        return out, swapped, notes

    def _tell(self, notes: list[str], strict: bool) -> None:
        """Pass the engine's sentences on as the warning: each time for stills; once each for video,
        which goes on with the closest source photo."""
        if strict:
            self.warning = " ".join(notes)
            return
        fresh = [n for n in notes if n not in self._said]
        if fresh:
            self._said.update(fresh)
            self.warning = " ".join(f"{n[:-1]}; meanwhile the video uses the closest photo." for n in fresh)

    def _enhancer_for(self, model_id: str | None) -> Any:
        if model_id is None:
            return None
        if model_id == self._enhancer_id and self._enhancer is not None:
            return self._enhancer
        if self._enhancer_failed == model_id:
            return None
        try:
            own = getattr(self.engine, "enhancer", None)
            if callable(own):
                enhancer = own(model_id)  # shares the engine's execution providers
            else:
                from workers.face_swap.enhancer import load_enhancer

                if self.store is None:
                    raise UserError("No model store is available for the face enhancer.")
                enhancer = load_enhancer(self.store, model_id)
        except Exception as exc:
            self._enhancer_failed = model_id
            self.warning = describe_exception(exc, "The face enhancer is off")
            log.warning("face enhancer %s could not start: %s", model_id, exc)
            return None
        self._enhancer, self._enhancer_id = enhancer, model_id
        return enhancer

    def _drop_enhancer(self, exc: Exception) -> None:
        log.warning("the face enhancer failed; it is off from now on", exc_info=True)
        self._enhancer_failed = self._enhancer_id
        self._enhancer, self._enhancer_id = None, None
        self.warning = describe_exception(exc, "The face enhancer is off")

    def _mark(self, out: np.ndarray, ms: dict[str, float]) -> np.ndarray:
        if self.options.mark:
            t0 = time.perf_counter()
            out = draw_mark(out, inplace=True)
            ms["mark"] = (time.perf_counter() - t0) * 1000
        return out

    def swap_image(self, image: np.ndarray) -> SwapResult:
        """Swap the chosen faces of one image (full detection, no tracking; Poisson blending)."""
        with self._lock:
            engine = self._need()
            if self._source is None:
                raise UserError("Choose a photo of the face to use first.")
            ms = dict.fromkeys(STAGES, 0.0)
            bgr = _as_bgr(image)
            t0 = time.perf_counter()
            faces = left_to_right(self._detect_scaled(engine, bgr, STILL_DETECT_SIDE))
            similarities = self._similarities(bgr, faces)
            ms["detect"] = (time.perf_counter() - t0) * 1000
            pairs = self._pairs(faces, similarities)
            out = bgr.copy()
            self._set_seamless(engine, True)
            out, swapped, notes = self._swap_all(out, pairs, ms, strict=self.strict_views)
            out = self._mark(out, ms)
            self.timings = ms
            return SwapResult(out, len(faces), swapped, engine.name, dict(ms), notes)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One live frame: the swapped frame (a new array), or ``frame`` itself when no source is set."""
        with self._lock:
            if self._source is None:
                self.timings = dict.fromkeys(STAGES, 0.0)
                return frame
            engine = self._need()
            ms = dict.fromkeys(STAGES, 0.0)
            bgr = _as_bgr(frame)
            faces = self._live_faces(engine, bgr, ms)
            similarities: list[float | None] = [None] * len(faces)
            if self._needs_identity():
                t0 = time.perf_counter()
                similarities = self._live_similarities(bgr, faces)
                ms["detect"] += (time.perf_counter() - t0) * 1000
            pairs = self._pairs(faces, similarities)
            out = bgr.copy()
            self._set_seamless(engine, self.live_seamless)
            out, _swapped, _notes = self._swap_all(out, pairs, ms, strict=False)
            out = self._mark(out, ms)
            self.frames += 1
            self.timings = ms
            return out

    @property
    def faces(self) -> list[Face]:
        """The faces of the last live frame, left to right (for overlays)."""
        return left_to_right(self._tracker.faces)

    def _live_faces(self, engine: FaceEngine, bgr: np.ndarray, ms: dict[str, float]) -> list[Face]:
        opts = self.options
        due = self._detect_next or self._since_detect + 1 >= opts.detect_every or not self._tracker.tracks
        if not due:
            t0 = time.perf_counter()
            result: TrackResult = self._tracker.track(bgr)
            if result.ok and result.faces:
                faces = engine.landmarks(bgr, result.faces)
                self._tracker.refresh(faces)
                ms["track"] = (time.perf_counter() - t0) * 1000
                self._since_detect += 1
                self._detect_next = result.moved_a_lot
                return left_to_right(faces)
            ms["track"] = (time.perf_counter() - t0) * 1000
            log.debug("tracking lost a face (kept %s); detecting again", result.kept)
        t0 = time.perf_counter()
        if due and self._tracker.tracks:
            # Carry the faces into this frame first, so a face the detector misses is not dropped.
            tracked = self._tracker.track(bgr)
            ms["track"] = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            if not tracked.ok:
                for track in self._tracker.tracks:
                    track.followed = False
        faces = None
        roi = getattr(engine, "redetect_around_faces", False)
        if roi and self._tracker.tracks and self._since_full_scan + 1 < FULL_SCAN_EVERY:
            faces = self._detect_around(engine, bgr, [t.face for t in self._tracker.tracks])
        if faces is None:
            faces = self._detect_scaled(engine, bgr, opts.detect_size)
            self._since_full_scan = 0
            self.full_scans += 1
        else:
            self._since_full_scan += 1
        tracks = self._tracker.start(bgr, faces)
        kept = [t for t in tracks if t.misses]
        if kept:
            self._tracker.refresh([*faces, *engine.landmarks(bgr, [t.face for t in kept])])
        self.detections += 1
        self._since_detect = 0
        self._detect_next = False
        ms["detect"] = (time.perf_counter() - t0) * 1000
        return left_to_right(self._tracker.faces)

    def _live_similarities(self, bgr: np.ndarray, faces: list[Face]) -> list[float | None]:
        """Similarity to the reference, measured once per tracked face and carried along."""
        if not self._needs_identity():
            return [None] * len(faces)
        by_face = {id(t.face): t for t in self._tracker.tracks}
        out: list[float | None] = []
        for face in faces:
            track = by_face.get(id(face))
            if track is not None and track.similarity is not None:
                out.append(track.similarity)
                continue
            value = self._similarities(bgr, [face])[0]
            if track is not None:
                track.similarity = value
            out.append(value)
        return out


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _close_quietly(thing: Any) -> None:
    try:
        thing.close()
    except Exception:  # closing must never hide the real outcome
        log.debug("closing %r failed", thing, exc_info=True)
