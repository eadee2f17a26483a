"""Face restoration (GFPGAN 1.4, GPEN-BFR 512 and 1024, CodeFormer ONNX) applied to one face's crop,
never the whole frame.

The face is aligned by its five key points onto the FFHQ layout these models were trained on (at
their own size: 512 or 1024 px), restored, and pasted back through a feathered oval so that only the
face changes, blended by ``strength``. The models take and return RGB in [-1, 1]; a half-precision
export is fed float16. CodeFormer also takes its fidelity weight (a double: 0 restores the most,
1 stays closest to the input).

onnxruntime is imported when an :class:`Enhancer` is built, on the thread that will use it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from workers.errors import UserError
from workers.face_swap import blend
from workers.face_swap.options import ENHANCERS

if TYPE_CHECKING:
    from workers.face_swap.options import Face
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = ["FFHQ_512", "Enhancer", "choose_providers", "load_enhancer", "session_options", "similarity_transform"]

#: Where the five key points sit in a 512x512 FFHQ-aligned face (eyes, nose tip, mouth corners).
FFHQ_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    np.float32,
)

#: Accelerated onnxruntime providers in order of preference (each used only when installed).
ACCELERATORS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider")


def choose_providers(device: str = "auto", cache_dir: Path | None = None) -> list[Any]:
    """onnxruntime providers for ``device`` ("auto", "cpu", "gpu"/"cuda"): accelerators when installed, CPU last."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    chosen: list[Any] = []
    for name in ACCELERATORS:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            options: dict[str, Any] = {"trt_fp16_enable": True}
            if cache_dir is not None:
                with contextlib.suppress(OSError):
                    cache_dir.mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
            chosen.append((name, options))
        else:
            chosen.append(name)
    if device in ("gpu", "cuda") and not chosen:
        log.warning("a GPU was asked for but onnxruntime offers none here; using the CPU")
    return [*chosen, "CPUExecutionProvider"]


def session_options() -> Any:
    """onnxruntime session options for live work: quiet, and idle threads do not spin.

    Spinning threads would take the cores that tracking, blending and video decoding need
    between two model runs.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) that best maps ``src`` points onto ``dst``.

    Least squares in closed form (Umeyama's method without reflection).
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = float((s0**2).sum() / len(src))
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign)) / max(var_s, 1e-12)
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]]).astype(np.float32)


def paste_region(m_inv: np.ndarray, size: int, shape: tuple[int, ...], pad: int = 2) -> tuple[int, int, int, int]:
    """The frame box (x1, y1, x2, y2) covered by a ``size`` x ``size`` crop mapped back by ``m_inv``."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float32)
    pts = corners @ m_inv.T
    height, width = shape[:2]
    x1 = max(0, int(np.floor(pts[:, 0].min())) - pad)
    y1 = max(0, int(np.floor(pts[:, 1].min())) - pad)
    x2 = min(width, int(np.ceil(pts[:, 0].max())) + pad)
    y2 = min(height, int(np.ceil(pts[:, 1].max())) + pad)
    return x1, y1, x2, y2


def warp_back(
    crop: np.ndarray, m: np.ndarray, box: tuple[int, int, int, int], flags: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """``crop`` (aligned by ``m``: frame -> crop) drawn into the frame region ``box`` only."""
    x1, y1, x2, y2 = box
    m_inv = cv2.invertAffineTransform(m)
    m_inv[:, 2] -= (x1, y1)
    return cv2.warpAffine(crop, m_inv, (x2 - x1, y2 - y1), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _oval_mask(size: int) -> np.ndarray:
    """A uint8 mask of the face in an FFHQ-aligned crop: an oval from the brows to the chin."""
    mask = np.zeros((size, size), np.uint8)
    s = size / 512.0
    cv2.ellipse(mask, (round(256 * s), round(300 * s)), (round(170 * s), round(215 * s)), 0, 0, 360, 255, -1)
    return mask


class Enhancer:
    """One loaded face-restoration model. ``enhance`` changes only the face's region of the frame."""

    def __init__(self, path: str | Path, *, providers: list[Any] | None = None, strength: float = 1.0) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The face enhancer model {path.name} is missing; download it again in the model manager.")
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options(), providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # a damaged or foreign file
            raise UserError(f"The face enhancer {path.name} could not be loaded ({exc}).") from exc
        inputs = self.session.get_inputs()
        images = [i for i in inputs if len(i.shape) == 4]
        if not images:
            raise UserError(f"{path.name} is not a face enhancer: it takes no image.")
        inp = images[0]
        #: CodeFormer's scalar fidelity input, when the model has one.
        self.weight_name = next((i.name for i in inputs if i is not inp and len(i.shape) <= 1), None)
        self.fidelity = 0.5
        shape = inp.shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else 512
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.path = path
        self.strength = float(strength)
        #: Per face (a coarse position key): frames since the model last ran, and the detail it added.
        self._details: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        #: How many enhancements reused the last detail instead of running the model (for the stats).
        self.reused = 0
        self._template = FFHQ_512 * (self.size / 512.0)
        self._mask = _oval_mask(self.size)

    def _restore(self, crop: np.ndarray, key: tuple[int, int] | None, every: int) -> np.ndarray:
        if key is None or every <= 1:
            return self.run(crop)
        cached = self._details.get(key)
        if cached is not None and cached[0] % every != 0:
            self._details[key] = (cached[0] + 1, cached[1])
            self.reused += 1
            return np.clip(crop.astype(np.int16) + cached[1], 0, 255).astype(np.uint8)
        restored = self.run(crop)
        if len(self._details) > 32:
            self._details.clear()
        self._details[key] = (1, restored.astype(np.int16) - crop.astype(np.int16))
        return restored

    def run(self, crop: np.ndarray) -> np.ndarray:
        """Restore one aligned BGR crop (``size`` x ``size``); returns BGR uint8 of the same size."""
        rgb = crop[:, :, ::-1].astype(np.float32) * (2.0 / 255.0) - 1.0
        blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=self.dtype)
        feeds = {self.input_name: blob}
        if self.weight_name is not None:
            feeds[self.weight_name] = np.array([min(1.0, max(0.0, self.fidelity))], np.float64)
        out = self.session.run([self.output_name], feeds)[0][0].astype(np.float32)
        out = np.clip((out.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out[:, :, ::-1])

    def enhance(
        self, bgr: np.ndarray, face: Face, *, key: tuple[int, int] | None = None, every: int = 1
    ) -> np.ndarray:
        """``bgr`` with ``face`` restored; pixels outside the face's feathered oval are untouched.

        Live video (``key``: where the face is; ``every`` > 1): the model runs on every ``every``-th
        frame of that face, and the frames in between get the detail it added last time (the
        difference between its output and its input, kept in the aligned crop, so it moves with the
        face) on their own crop: the face keeps its motion and expressions, and the enhancer's cost
        is divided by ``every``. The frame passed in is modified and returned.
        """
        if self.strength <= 0.0 or face.kps is None:
            return bgr
        m = similarity_transform(face.kps, self._template)
        crop = cv2.warpAffine(bgr, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        restored = self._restore(crop, key, every)
        box = paste_region(cv2.invertAffineTransform(m), self.size, bgr.shape)
        x1, y1, x2, y2 = box
        if x2 - x1 < 2 or y2 - y1 < 2:
            return bgr
        region = bgr[y1:y2, x1:x2]
        new = warp_back(restored, m, box)
        mask = warp_back(self._mask, m, box, flags=cv2.INTER_NEAREST)
        face_px = float(np.sqrt(abs(np.linalg.det(m[:, :2])))) or 1.0
        face_px = self.size / face_px * (340 / 512.0)  # the oval's width in frame pixels
        alpha = blend.feather(mask, blend.scaled_px(2, face_px), blend.scaled_px(12, face_px))
        if self.strength < 1.0:
            alpha *= self.strength
        bgr[y1:y2, x1:x2] = blend.alpha_blend(region, new, alpha)
        return bgr


def load_enhancer(
    store: ModelStore, model_id: str, *, providers: list[Any] | None = None, strength: float = 1.0
) -> Enhancer:
    """The enhancer ``model_id`` (GFPGAN 1.4, GPEN-BFR 512/1024 or CodeFormer) from the model store.

    A UserError sentence names the model to download when it is not installed.
    """
    if model_id not in ENHANCERS and model_id not in {m.id for m in store.models()}:
        raise UserError(
            f"There is no face enhancer called {model_id!r}; choose GFPGAN 1.4, GPEN-BFR 512 or 1024, or CodeFormer."
        )
    state = store.state(model_id)
    if not state.usable:
        raise UserError(
            f"The face enhancer {state.model.name} is not installed; download it in the model manager "
            f"(Models, or: snowai-studio models download {model_id}), or turn the enhancer off."
        )
    return Enhancer(store.path_of(model_id), providers=providers, strength=strength)
