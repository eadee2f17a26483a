"""One contract for every face swapper model, so that a new swapper is a manifest entry plus a
:class:`SwapperSpec` here (no Qt).

A swapper takes the target face aligned by its five key points onto a template (``arcface_128``,
``arcface_112_v1``, ``ffhq_512``) at its crop size, normalised by its mean and standard deviation,
and the source identity in the form the model was trained with:

- ``emap``: the normalised ArcFace embedding projected by the matrix stored as the model's last
  initializer, normalised again (inswapper);
- ``embedding``: the normalised ArcFace embedding itself (HyperSwap);
- ``converter``: the raw ArcFace embedding turned into the model's own identity space by a small
  converter model that is a manifest entry of its own (SimSwap), normalised again when the spec says;
- ``image``: the source face aligned on the same template (UniFace).

Its output is the new face in RGB, either in 0..1 or normalised like its input. Pixel boost runs a
swapper of crop size S on a crop of ``k*S`` pixels: the crop is split into its ``k*k`` interleaved
sub-images (every k-th pixel, each a whole face shifted by a fraction of a pixel), each is swapped,
and the results are interleaved back, so a 128-px model paints a 256- or 384-px face.

onnxruntime (and onnx, for the projection matrix) are imported when a swapper is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    from workers.face_swap.options import SourceFace

log = logging.getLogger(__name__)

#: Where the five key points (eyes, nose tip, mouth corners) sit in each alignment, as fractions of
#: the crop's side (the layouts the published swappers and restorers were trained with).
TEMPLATES: dict[str, np.ndarray] = {
    "arcface_112_v1": np.array(
        [
            [0.35473214, 0.45658929],
            [0.64526786, 0.45658929],
            [0.50000000, 0.61154464],
            [0.37913393, 0.77687500],
            [0.62086607, 0.77687500],
        ],
        np.float32,
    ),
    "arcface_112_v2": np.array(
        [
            [0.34191607, 0.46157411],
            [0.65653393, 0.45983393],
            [0.50022500, 0.64050536],
            [0.37097589, 0.82469196],
            [0.63151696, 0.82325089],
        ],
        np.float32,
    ),
    "arcface_128": np.array(
        [
            [0.36167656, 0.40387734],
            [0.63696719, 0.40235469],
            [0.50019687, 0.56044219],
            [0.38710391, 0.72160547],
            [0.61507734, 0.72034453],
        ],
        np.float32,
    ),
    "ffhq_512": np.array(
        [
            [0.37691676, 0.46864664],
            [0.62285697, 0.46912813],
            [0.50123859, 0.61331904],
            [0.39308822, 0.72541100],
            [0.61150205, 0.72490465],
        ],
        np.float32,
    ),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Pixel boost factors a user can pick: 1 (off), 2 (2x2 sub-images) and 3 (3x3).
BOOST_FACTORS = (1, 2, 3)


@dataclass(frozen=True)
class SwapperSpec:
    """How a swapper model is fed and read (see the module's docstring)."""

    template: str
    size: int
    source: str  # "emap", "embedding", "converter" or "image"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: True when the output is normalised like the input (undo mean/std); False: RGB in 0..1.
    output_normalised: bool = False
    #: The manifest id of the identity converter (``source == "converter"``).
    converter: str | None = None
    #: Normalise the converter's output (SimSwap) or not.
    normalise_identity: bool = True

    def cost(self, boost: int) -> str:
        """What pixel boost costs, in words."""
        runs = boost * boost
        if runs == 1:
            return f"{self.size} px face, one swapper run per face"
        return f"{self.size * boost} px face, {runs} swapper runs per face (about {runs}x the swap time)"


#: Every swapper the studio can drive, by manifest id.
SWAPPER_SPECS: dict[str, SwapperSpec] = {
    "inswapper-128": SwapperSpec("arcface_128", 128, "emap"),
    "inswapper-128-fp16": SwapperSpec("arcface_128", 128, "emap"),
    "hyperswap-1a-256": SwapperSpec("arcface_128", 256, "embedding", (0.5,) * 3, (0.5,) * 3, True),
    "hyperswap-1b-256": SwapperSpec("arcface_128", 256, "embedding", (0.5,) * 3, (0.5,) * 3, True),
    "hyperswap-1c-256": SwapperSpec("arcface_128", 256, "embedding", (0.5,) * 3, (0.5,) * 3, True),
    "simswap-256": SwapperSpec(
        "arcface_112_v1", 256, "converter", IMAGENET_MEAN, IMAGENET_STD, converter="crossface-simswap"
    ),
    "simswap-unofficial-512": SwapperSpec("arcface_112_v1", 512, "converter", converter="crossface-simswap"),
    "uniface-256": SwapperSpec("ffhq_512", 256, "image", (0.5,) * 3, (0.5,) * 3, True),
}


def align(kps: np.ndarray, template: str, size: int) -> np.ndarray:
    """The 2x3 similarity transform that puts the five key points onto ``template`` at ``size`` px."""
    from workers.face_swap.enhancer import similarity_transform

    dst = TEMPLATES[template] * float(size)
    return similarity_transform(np.asarray(kps, np.float32).reshape(5, 2), dst).astype(np.float32)


def implode(crop: np.ndarray, k: int) -> np.ndarray:
    """``(k*S, k*S, C)`` -> ``(k*k, S, S, C)``: the interleaved sub-images ``crop[a::k, b::k]``."""
    size = crop.shape[0] // k
    tiles = crop.reshape(size, k, size, k, -1).transpose(1, 3, 0, 2, 4)
    return tiles.reshape(k * k, size, size, -1)


def explode(tiles: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`implode`."""
    size = tiles.shape[1]
    grid = tiles.reshape(k, k, size, size, -1).transpose(2, 0, 3, 1, 4)
    return grid.reshape(size * k, size * k, -1)


class OnnxSwapper:
    """A loaded swapper (and its converter, when it has one) with its spec."""

    def __init__(
        self,
        model_id: str,
        path: Path,
        *,
        converter_path: Path | None = None,
        providers: list[Any] | None = None,
        session_options: Any = None,
    ) -> None:
        spec = SWAPPER_SPECS.get(model_id)
        if spec is None:
            raise UserError(f"{model_id} is not a face swapper the studio knows how to drive.")
        import onnxruntime as ort

        providers = providers or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
        except Exception as exc:  # a damaged or foreign file
            raise UserError(f"The face swapper {Path(path).name} could not be loaded ({_short(exc)}).") from exc
        self.model_id = model_id
        self.spec = spec
        self.path = Path(path)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self._check_inputs(inputs)
        first = next(iter(inputs.values()))
        self.dtype = np.float16 if "float16" in first.type else np.float32
        self.target_name, self.source_name = self._input_names(inputs)
        self.output_name = self.session.get_outputs()[0].name
        self.emap: np.ndarray | None = self._read_emap() if spec.source == "emap" else None
        self.converter: Any = None
        if spec.source == "converter":
            if converter_path is None:
                raise UserError(f"{self.path.name} needs its identity converter ({spec.converter}).")
            try:
                self.converter = ort.InferenceSession(
                    str(converter_path), sess_options=session_options, providers=providers
                )
            except Exception as exc:
                raise UserError(f"The identity converter {Path(converter_path).name} could not be loaded.") from exc
        self._identities: dict[bytes, np.ndarray] = {}

    # ---- checking ---------------------------------------------------------------------------------
    def _check_inputs(self, inputs: dict[str, Any]) -> None:
        size = self.spec.size
        images = [i for i in inputs.values() if len(i.shape) == 4]
        if len(inputs) != 2 or not images:
            raise UserError(f"{self.path.name} is not a face swapper: it does not take a face and an identity.")
        side = images[0].shape[2]
        if isinstance(side, int) and side != size:
            raise UserError(
                f"{self.path.name} takes {side} px faces, but this slot is for a {size} px swapper; "
                "import it as the swapper it is."
            )

    def _input_names(self, inputs: dict[str, Any]) -> tuple[str, str]:
        names = list(inputs)
        if "target" in inputs and "source" in inputs:
            return "target", "source"
        # The target face is the 4-D input of the crop size (UniFace's source is 4-D too: the first one).
        return names[0], names[1]

    def _read_emap(self) -> np.ndarray:
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
            emap = numpy_helper.to_array(graph.initializer[-1]).astype(np.float32)
        except Exception as exc:
            raise UserError(f"{self.path.name} could not be read as an inswapper model ({_short(exc)}).") from exc
        if emap.ndim != 2 or emap.shape[0] != emap.shape[1]:
            raise UserError(f"{self.path.name} has no identity projection; it is not an inswapper model.")
        return emap

    # ---- identity -----------------------------------------------------------------------------------
    def identity(self, source: SourceFace) -> np.ndarray:
        """The model's source input for ``source`` (cached per source)."""
        spec = self.spec
        if spec.source == "image":
            return self._source_image(source)
        if source.embedding is None:
            raise UserError("This face swapper needs an identity from the source photo; choose another photo.")
        vector = np.asarray(source.embedding, np.float32).reshape(1, -1)
        key = spec.source.encode() + vector.tobytes()
        cached = self._identities.get(key)
        if cached is not None:
            return cached
        if spec.source == "emap":
            assert self.emap is not None
            vector = vector @ self.emap
            vector /= max(float(np.linalg.norm(vector)), 1e-12)
        elif spec.source == "converter":
            raw = source.raw_embedding if source.raw_embedding is not None else source.embedding
            feed = np.asarray(raw, np.float32).reshape(1, -1)
            name = self.converter.get_inputs()[0].name
            vector = np.asarray(self.converter.run(None, {name: feed})[0], np.float32).reshape(1, -1)
            if spec.normalise_identity:
                vector /= max(float(np.linalg.norm(vector)), 1e-12)
        result = vector.astype(self.dtype)
        if len(self._identities) > 16:
            self._identities.clear()
        self._identities[key] = result
        return result

    def _source_image(self, source: SourceFace) -> np.ndarray:
        if not source.images or not source.faces or source.faces[0].kps is None:
            raise UserError("This face swapper needs the source photo's face; choose another photo.")
        index = max(range(len(source.faces)), key=lambda i: source.faces[i].area)
        m = align(source.faces[index].kps, self.spec.template, self.spec.size)
        crop = cv2.warpAffine(
            source.images[index], m, (self.spec.size, self.spec.size), borderMode=cv2.BORDER_REPLICATE
        )
        return self._blob(crop)

    # ---- swapping -----------------------------------------------------------------------------------
    def _blob(self, bgr: np.ndarray) -> np.ndarray:
        rgb = bgr[:, :, ::-1].astype(np.float32) * (1.0 / 255.0)
        rgb = (rgb - np.asarray(self.spec.mean, np.float32)) / np.asarray(self.spec.std, np.float32)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=self.dtype)

    def _run(self, crop: np.ndarray, identity: np.ndarray) -> np.ndarray:
        feeds = {self.target_name: self._blob(crop), self.source_name: identity}
        out = np.asarray(self.session.run([self.output_name], feeds)[0][0], np.float32).transpose(1, 2, 0)
        if self.spec.output_normalised:
            out = out * np.asarray(self.spec.std, np.float32) + np.asarray(self.spec.mean, np.float32)
        return np.clip(out[:, :, ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def swap_crop(
        self, frame: np.ndarray, kps: np.ndarray, identity: np.ndarray, boost: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The new face (BGR, ``size * boost`` px square) for the face at ``kps``, and the frame ->
        crop matrix."""
        boost = boost if boost in BOOST_FACTORS else 1
        side = self.spec.size * boost
        m = align(kps, self.spec.template, side)
        crop = cv2.warpAffine(frame, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        if boost == 1:
            return np.ascontiguousarray(self._run(crop, identity)), m
        tiles = implode(crop, boost)
        out = np.stack([self._run(np.ascontiguousarray(tile), identity) for tile in tiles])
        return np.ascontiguousarray(explode(out, boost)), m


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
