"""What the face-swap tool can be asked to do, and the plain data its engines exchange.

The Qt dock imports this module on the UI thread, so it imports neither dlib, onnxruntime nor
insightface: only numpy and the model store's status (which reads files, never loads a model).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

ENGINES = ("auto", "insightface", "classic")
TARGETS = ("all", "largest", "reference", "index")
PRESETS = ("cpu", "gpu")

#: Manifest ids of the models each engine uses.
CLASSIC_MODELS = "dlib-face-models"
INSIGHTFACE_PACKS = ("insightface-buffalo-l", "insightface-buffalo-s")
SWAPPERS = (
    "inswapper-128",
    "inswapper-128-fp16",
    "hyperswap-1a-256",
    "hyperswap-1b-256",
    "hyperswap-1c-256",
    "simswap-256",
    "simswap-unofficial-512",
    "uniface-256",
)
ENHANCERS = ("gfpgan-1.4", "gpen-bfr-512", "gpen-bfr-1024", "codeformer")

#: What each preset sets: the live detection cadence and size, and the swapper build tried first
#: (half precision pays off on a GPU; on a CPU it is slower than the full-precision build).
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "cpu": {"detect_every": 3, "detect_size": 320},
    "gpu": {"detect_every": 1, "detect_size": 640},
}
SWAPPER_PREFERENCE: dict[str, tuple[str, ...]] = {
    "cpu": ("inswapper-128", "inswapper-128-fp16"),
    "gpu": ("inswapper-128-fp16", "inswapper-128"),
}


@dataclass
class FaceSwapOptions:
    """Every setting of a face swap; each one can be changed live."""

    #: "auto" (insightface when its models are installed, else classic), "insightface" or "classic".
    engine: str = "auto"
    #: Which faces of a frame are replaced: "all", "largest", "reference" (the faces that look like
    #: the reference photo) or "index" (``target_index``, faces counted left to right).
    target: str = "all"
    target_index: int = 0
    #: Cosine similarity a face needs with the reference face to count as the same person.
    reference_similarity: float = 0.35
    #: Several people: source face i goes onto target face j (targets counted left to right).
    #: Empty: every chosen target gets source face 0.
    face_map: dict[int, int] = field(default_factory=dict)
    opacity: float = 1.0
    #: Feathering of the face mask's edge, in pixels at a face size of 256.
    mask_blur: int = 15
    #: How far the face mask is pulled in from the face's outline, in pixels at a face size of 256.
    mask_erode: int = 4
    #: Keep the target's own mouth (speech and expressions stay natural).
    mouth_mask: bool = False
    #: Match the swapped face's colours to the target's skin and light.
    color_match: bool = True
    #: Keep what covers the target's face (hands, hair, glasses) in front of the swap (XSeg model).
    occlusion_mask: bool = False
    #: Swap only these face regions ("skin, nose, lips"...; BiSeNet model); "" swaps the whole face.
    face_regions: str = ""
    #: Manifest id of the swapper (inswapper, HyperSwap, SimSwap, UniFace); None: the one the preset
    #: prefers among those installed.
    swapper: str | None = None
    #: Pixel boost: 1 (off), 2 or 3 (the swapper paints a face 2 or 3 times its own size).
    pixel_boost: int = 1
    #: Manifest id of a face enhancer (GFPGAN 1.4, GPEN-BFR 512/1024, CodeFormer), on face crops only.
    enhancer: str | None = None
    #: How much of the enhanced face is blended in (0..1).
    enhancer_blend: float = 0.8
    #: CodeFormer's fidelity weight: 0 restores most, 1 keeps the face closest to its input.
    enhancer_fidelity: float = 0.5
    #: Live video: the enhancer runs on every N-th frame of a face and its detail follows the face in
    #: between; 0 means at the detection interval.
    enhance_every: int = 0
    #: Live video: a full detection every N frames, tracking in between.
    detect_every: int = 3
    #: Live video: longest side of the downscaled frame used for detection.
    detect_size: int = 320
    #: Draw the visible "AI-generated" mark on every result.
    mark: bool = True
    #: "cpu" or "gpu": sets ``detect_every``, ``detect_size`` and the swapper precision tried first.
    preset: str = "cpu"

    def copy(self) -> FaceSwapOptions:
        return dataclasses.replace(self, face_map=dict(self.face_map))

    def with_preset(self, preset: str) -> FaceSwapOptions:
        """A copy with the preset's values applied."""
        preset = coerce_option("preset", preset)
        return dataclasses.replace(self.copy(), preset=preset, **PRESET_VALUES[preset])

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> FaceSwapOptions:
        """Options with a preset's defaults, then ``overrides`` on top."""
        options = cls().with_preset(preset)
        for name, value in overrides.items():
            setattr(options, name, coerce_option(name, value))
        return options


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(FaceSwapOptions))
_BOOLS = ("mouth_mask", "color_match", "mark", "occlusion_mask")
#: Whole-number options and their allowed range.
_INTS = {
    "target_index": (0, 1000),
    "mask_blur": (0, 100),
    "mask_erode": (0, 100),
    "detect_every": (1, 1000),
    "detect_size": (64, 4096),
    "pixel_boost": (1, 3),
    "enhance_every": (0, 30),
}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def coerce_option(name: str, value: Any) -> Any:
    """Check one option's value and bring it to its type; a UserError sentence when it does not fit."""
    if name not in OPTION_NAMES:
        raise UserError(f"Face swap has no setting called {name!r}.")
    if name in ("engine", "target", "preset"):
        text = str(value or "").strip().lower()
        allowed = {"engine": ENGINES, "target": TARGETS, "preset": PRESETS}[name]
        if text not in allowed:
            raise UserError(f"The face-swap {name} must be one of {', '.join(allowed)}, not {value!r}.")
        return text
    if name in _BOOLS:
        return _as_bool(value)
    if name in ("enhancer", "swapper"):
        text = str(value).strip() if value is not None else ""
        return text or None
    if name == "face_map":
        return _coerce_face_map(value)
    if name == "face_regions":
        from workers.face_swap.masks import parse_regions

        return ", ".join(parse_regions(value))
    if name in ("opacity", "reference_similarity", "enhancer_blend", "enhancer_fidelity"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"The setting {name} needs a number, not {value!r}.") from None
        low = -1.0 if name == "reference_similarity" else 0.0
        if not low <= number <= 1.0:
            raise UserError(f"The setting {name} must lie between {low:g} and 1.")
        return number
    try:
        whole = int(value)
    except (TypeError, ValueError):
        raise UserError(f"The setting {name} needs a whole number, not {value!r}.") from None
    low, high = _INTS[name]
    if not low <= whole <= high:
        raise UserError(f"The setting {name} must lie between {low} and {high}.")
    return whole


def _coerce_face_map(value: Any) -> dict[int, int]:
    """A face map from a dict, pairs, or text such as ``"0:1, 1:0"``."""
    if value is None or value == "":
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for item in value.replace(";", ",").split(","):
            if not item.strip():
                continue
            left, sep, right = item.partition(":")
            if not sep:
                left, sep, right = item.partition("=")
            if not sep:
                raise UserError(f"Write the face map as source:target pairs such as 0:1, not {value!r}.")
            pairs.append((left, right))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        try:
            pairs = [tuple(p) for p in value]  # type: ignore[misc]
        except TypeError:
            raise UserError("The face map must pair source faces with target faces.") from None
    out: dict[int, int] = {}
    for src, dst in pairs:
        try:
            i, j = int(str(src).strip()), int(str(dst).strip())
        except ValueError:
            raise UserError(f"The face map pairs face numbers; {src!r}:{dst!r} is not a pair of numbers.") from None
        if i < 0 or j < 0:
            raise UserError("Face numbers in the face map start at 0.")
        out[i] = j
    return out


# ---- the data engines exchange ----------------------------------------------------------------
@dataclass
class Face:
    """One detected face, in the coordinates of the image it was found in.

    ``kps`` are the five points insightface uses (left eye, right eye, nose tip, left and right
    mouth corners, in image order: "left" is the smaller x); ``landmarks`` are the detector's
    dense points (68 for dlib, 106 for insightface) when it has them.
    """

    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2
    kps: np.ndarray  # (5, 2) float32
    landmarks: np.ndarray | None = None  # (68, 2) or (106, 2) float32
    embedding: np.ndarray | None = None  # identity vector, L2-normalised
    score: float = 1.0

    @property
    def width(self) -> float:
        return float(self.bbox[2] - self.bbox[0])

    @property
    def height(self) -> float:
        return float(self.bbox[3] - self.bbox[1])

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return float(self.bbox[0] + self.bbox[2]) / 2, float(self.bbox[1] + self.bbox[3]) / 2

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> Face:
        """The same face in another image's coordinates: ``point * factor + offset``."""
        shift = np.asarray(offset, np.float32)

        def move(points: np.ndarray | None) -> np.ndarray | None:
            if points is None:
                return None
            return (np.asarray(points, np.float32) * np.float32(factor) + shift).astype(np.float32)

        bbox = np.asarray(self.bbox, np.float32) * np.float32(factor) + np.tile(shift, 2)
        kps = move(self.kps)
        assert kps is not None
        return Face(bbox.astype(np.float32), kps, move(self.landmarks), self.embedding, self.score)


@dataclass
class SourceFace:
    """The face that replaces targets, prepared once from one or several photos.

    ``embedding`` is the normalised average of every photo's identity vector. ``images`` holds one
    BGR crop around the face per photo and ``faces`` the face found in each crop, in that crop's
    coordinates (the classic engine warps pixels from them, choosing per target face the photo whose
    head pose and mouth fit best: ``views``).
    """

    embedding: np.ndarray | None
    faces: list[Face]
    images: list[np.ndarray]
    count: int
    #: Per face, what it shows (the classic engine's head pose and mouth state), or None for a face
    #: turned too far to be used; empty until an engine fills it.
    views: list[Any] = field(default_factory=list)
    #: Sentences about photos that were left out (turned too far), for the user.
    notes: list[str] = field(default_factory=list)
    #: The average of the photos' identity vectors before normalisation (identity converters such as
    #: SimSwap's were trained on those); None when the engine has none.
    raw_embedding: np.ndarray | None = None


@dataclass
class SwapResult:
    """The answer to one image job."""

    image: np.ndarray  # BGR
    faces_found: int
    faces_swapped: int
    engine: str
    ms: dict[str, float] = field(default_factory=dict)
    #: Sentences about faces left alone or swapped from a poorly fitting photo (which photo to add).
    notes: list[str] = field(default_factory=list)


@dataclass
class EngineStatus:
    """Which engine "auto" would use now, and what the user could download for the better one."""

    active: str  # "insightface" | "classic"
    insightface_ready: bool
    missing: list[str]  # model ids to download for the insightface engine
    note: str


def _usable(store: ModelStore, model_id: str) -> bool:
    try:
        return store.state(model_id).usable
    except UserError:
        return False


def ready_pack(store: ModelStore) -> str | None:
    """The first installed insightface model pack (buffalo_l before buffalo_s), or None."""
    return next((m for m in INSIGHTFACE_PACKS if _usable(store, m)), None)


def ready_swapper(store: ModelStore, preset: str = "cpu") -> str | None:
    """The installed swapper the preset prefers (inswapper first, then the others), or None."""
    order = SWAPPER_PREFERENCE.get(preset, SWAPPERS)
    order = (*order, *(m for m in SWAPPERS if m not in order))
    return next((m for m in order if _usable(store, m)), None)


def engine_status(store: ModelStore, preset: str = "cpu") -> EngineStatus:
    """What "auto" picks with the models on this machine. Reads the store only; loads nothing."""
    pack = ready_pack(store)
    swapper = ready_swapper(store, preset)
    missing = []
    if pack is None:
        missing.append(INSIGHTFACE_PACKS[0])
    if swapper is None:
        missing.append(SWAPPER_PREFERENCE.get(preset, SWAPPERS)[0])
    if not missing:
        note = f"Using InsightFace ({pack} with {swapper})."
        return EngineStatus("insightface", True, [], note)
    names = []
    for model_id in missing:
        try:
            names.append(store.get(model_id).name)
        except UserError:
            names.append(model_id)
    note = (
        "Using the classic engine (dlib landmarks and a triangulated warp), which works offline. "
        f"For a much more convincing swap, download {' and '.join(names)} in the model manager."
    )
    if not _usable(store, CLASSIC_MODELS):
        note += " The classic engine needs the dlib face models: run pip install face-recognition-models."
    return EngineStatus("classic", False, missing, note)
