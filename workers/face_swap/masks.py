"""Face masks that decide where the swapped face shows, computed on the aligned face crop (no Qt).

- Occlusion (XSeg): what covers the face (a hand, hair, glasses, a microphone) is kept from the
  target, so the swap stays behind it. The model takes the crop at 256 px (BGR, 0..1, NHWC) and
  gives the probability that each pixel is visible face.
- Regions (BiSeNet face parser): the swap covers only the chosen parts (skin, brows, eyes, nose,
  lips, mouth, glasses). The model takes the crop at 512 px (RGB, ImageNet-normalised, NCHW) and
  gives 19 class scores per pixel (the CelebAMask-HQ classes).

Both are smoothed the same way (a Gaussian blur, then the upper half of the range stretched to 0..1)
and combine with the box and mouth masks by multiplication. On live video a mask is computed at the
detection interval and reused in between: it lives in the crop's coordinates, so it follows the
tracked face.

onnxruntime is imported when a masker is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workers.errors import UserError

log = logging.getLogger(__name__)

#: The BiSeNet classes a user can choose, by name.
REGIONS: dict[str, tuple[int, ...]] = {
    "skin": (1,),
    "brows": (2, 3),
    "eyes": (4, 5),
    "glasses": (6,),
    "nose": (10,),
    "mouth": (11,),
    "lips": (12, 13),
}
#: The region masker's model and the occlusion masker's, by manifest id.
REGION_MODEL = "bisenet-resnet-34"
OCCLUSION_MODEL = "xseg-1"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def face_key(face: Any) -> tuple[int, int]:
    """Where a face is, coarsely (its centre on a grid of a quarter of its width): the key under
    which what is computed for it at a detection (a mask, an enhancer's detail) is reused between
    detections."""
    cx, cy = face.center
    step = max(8.0, face.width / 4.0)
    return round(cx / step), round(cy / step)


def parse_regions(value: Any) -> tuple[str, ...]:
    """Region names from text ("skin, nose") or a list; "" or "all": every region (the mask is off)."""
    if value is None:
        return ()
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if names in (["all"], []):
        return ()
    unknown = [n for n in names if n not in REGIONS]
    if unknown:
        raise UserError(f"Unknown face region {unknown[0]!r}; choose from {', '.join(REGIONS)}.")
    return tuple(dict.fromkeys(names))


def smooth(mask: np.ndarray) -> np.ndarray:
    """Soft edges: a Gaussian blur, then 0.5..1 stretched to 0..1 (so a mask's rim fades out)."""
    blurred = cv2.GaussianBlur(np.clip(mask, 0.0, 1.0).astype(np.float32), (0, 0), 5)
    return np.clip((np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0, 0.0, 1.0)


class _OnnxMasker:
    kind = ""
    model_size = 256

    def __init__(self, path: Path, *, providers: list[Any] | None = None, session_options: Any = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The {self.kind} mask model {path.name} is missing; download it again in Models.")
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise UserError(f"The {self.kind} mask model {path.name} could not be loaded.") from exc
        self.path = path
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise UserError(f"{path.name} is not {article} {self.kind} mask model: it does not take one image.")
        self.input_name = inputs[0].name
        self._check(inputs[0].shape, self.session.get_outputs()[0].shape)
        self._cache: dict[tuple[int, int], tuple[int, np.ndarray]] = {}

    def _check(self, input_shape: list[Any], output_shape: list[Any]) -> None:
        """Refuse a model whose shapes do not fit this slot (one sentence)."""

    def _predict(self, crop: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mask(self, crop: np.ndarray, *, key: tuple[int, int] | None = None, every: int = 1) -> np.ndarray:
        """The mask (float32 0..1, the crop's size) for a BGR face crop. With ``key`` (where the face
        is) and ``every`` > 1, the mask is computed every ``every`` calls and reused in between."""
        if crop.size == 0:
            raise UserError(f"The {self.kind} mask needs a face, and this crop is empty.")
        if key is not None and every > 1:
            cached = self._cache.get(key)
            if cached is not None and cached[0] % every != 0 and cached[1].shape[:2] == crop.shape[:2]:
                self._cache[key] = (cached[0] + 1, cached[1])
                return cached[1]
        side = crop.shape[0]
        small = cv2.resize(crop, (self.model_size, self.model_size), interpolation=cv2.INTER_AREA)
        raw = self._predict(small)
        result = smooth(cv2.resize(raw, (side, side), interpolation=cv2.INTER_LINEAR))
        if key is not None and every > 1:
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = (1, result)
        return result


class OcclusionMasker(_OnnxMasker):
    """XSeg: 1 where the face is visible, 0 where something covers it."""

    kind = "occlusion"
    model_size = 256

    def _check(self, input_shape: list[Any], output_shape: list[Any]) -> None:
        channels_last = input_shape[-1]
        if isinstance(channels_last, int) and channels_last != 3:
            raise UserError(f"{self.path.name} is not an XSeg occlusion model (it does not take 256x256x3 images).")

    def _predict(self, crop: np.ndarray) -> np.ndarray:
        blob = (crop.astype(np.float32) / 255.0)[None]
        out = np.asarray(self.session.run(None, {self.input_name: blob})[0], np.float32)
        return np.clip(out.reshape(self.model_size, self.model_size), 0.0, 1.0)


class RegionMasker(_OnnxMasker):
    """BiSeNet: 1 on the chosen regions of the face."""

    kind = "face region"
    model_size = 512

    def __init__(self, path: Path, regions: tuple[str, ...] = ("skin",), **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.regions = regions

    def _check(self, input_shape: list[Any], output_shape: list[Any]) -> None:
        classes = output_shape[1] if len(output_shape) == 4 else None
        if isinstance(classes, int) and classes != 19:
            raise UserError(f"{self.path.name} is not a BiSeNet face parser (it gives {classes} classes, not 19).")

    def _predict(self, crop: np.ndarray) -> np.ndarray:
        rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
        blob = np.ascontiguousarray(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None])
        scores = np.asarray(self.session.run(None, {self.input_name: blob})[0][0], np.float32)
        labels = scores.argmax(axis=0)
        wanted = [index for name in self.regions for index in REGIONS[name]]
        return np.isin(labels, wanted).astype(np.float32)
