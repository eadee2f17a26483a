"""What the background-removal tool can be asked to do, as plain data (no model runtime here).

The Qt dock imports this module on the UI thread, so it imports neither rembg nor onnxruntime.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    from workers.media.imageio import LoadedImage
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

DEFAULT_MODEL = "u2netp"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Set to 0 (or off) to make the models run as they are unless a run asks for the 8-bit copy.
INT8_ENV = "SNOWAI_INT8_COPIES"


def int8_default() -> bool:
    """Whether runs use the checked 8-bit copy unless told otherwise: yes, unless ``SNOWAI_INT8_COPIES``
    says 0, off, no or false."""
    return os.environ.get(INT8_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


@dataclass
class MattingOptions:
    """Every setting of a background-removal run; each one can be changed live."""

    #: A manifest model id (``u2netp`` or ``rembg-u2netp``), a user-imported model id, or an .onnx path.
    model: str = DEFAULT_MODEL
    alpha_matting: bool = False
    foreground_threshold: int = 240
    background_threshold: int = 10
    erode_size: int = 10
    post_process: bool = False
    mask_only: bool = False
    #: Live pictures and videos: the mask is steadied between frames (see :mod:`workers.matting.steady`).
    steady: bool = True
    #: The model runs from its checked 8-bit copy when the check finds its masks match the model's
    #: (U²-Net lite and IS-Net about 1.5x as fast on a CPU; see :mod:`workers.matting.int8`).
    int8: bool = field(default_factory=int8_default)

    def copy(self) -> MattingOptions:
        return dataclasses.replace(self)


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(MattingOptions))


def coerce_option(name: str, value: Any) -> Any:
    """Check one option's value and bring it to its type; a UserError sentence when it does not fit."""
    if name not in OPTION_NAMES:
        raise UserError(f"Background removal has no setting called {name!r}.")
    if name == "model":
        text = str(value).strip() if value is not None else ""
        if not text:
            raise UserError("Choose a background-removal model.")
        return text
    if name in ("alpha_matting", "post_process", "mask_only", "steady", "int8"):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"The setting {name} needs a whole number, not {value!r}.") from None
    if name in ("foreground_threshold", "background_threshold") and not 0 <= number <= 255:
        raise UserError(f"The setting {name} must lie between 0 and 255.")
    if name == "erode_size" and not 0 <= number <= 100:
        raise UserError("The erode size must lie between 0 and 100 pixels.")
    return number


@dataclass(frozen=True)
class ModelSpec:
    """How rembg feeds one of its models: session name, input size, normalisation, output."""

    key: str  # the short name, also rembg's session name
    manifest_id: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool = False  # BiRefNet returns logits


#: The manifest's matting models and the way rembg's own sessions preprocess them.
MODEL_SPECS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("u2net", "rembg-u2net", 320, IMAGENET_MEAN, IMAGENET_STD),
        ModelSpec("u2netp", "rembg-u2netp", 320, IMAGENET_MEAN, IMAGENET_STD),
        ModelSpec("u2net_human_seg", "rembg-u2net-human-seg", 320, IMAGENET_MEAN, IMAGENET_STD),
        ModelSpec("silueta", "rembg-silueta", 320, IMAGENET_MEAN, IMAGENET_STD),
        ModelSpec("isnet-general-use", "rembg-isnet-general-use", 1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
        ModelSpec("isnet-anime", "rembg-isnet-anime", 1024, IMAGENET_MEAN, (1.0, 1.0, 1.0)),
        ModelSpec("birefnet-general", "rembg-birefnet-general", 1024, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True),
        ModelSpec(
            "birefnet-general-lite", "rembg-birefnet-general-lite", 1024, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True
        ),
    )
}
_BY_MANIFEST_ID = {spec.manifest_id: spec for spec in MODEL_SPECS.values()}


def spec_for(model: str) -> ModelSpec | None:
    """The spec of a manifest model named by its short name or its manifest id."""
    return MODEL_SPECS.get(model) or _BY_MANIFEST_ID.get(model)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model menu."""

    id: str
    name: str
    ready: bool
    note: str


def available_models(store: ModelStore) -> list[ModelChoice]:
    """Every matting model the studio knows (the manifest's, then the user's imports), with its status.

    Manifest models are listed by their short name (``u2netp``), the value ``MattingOptions.model`` takes.
    """
    choices: list[ModelChoice] = []
    for model in store.models():
        if model.tool != "matting":
            continue
        try:
            state = store.state(model.id)
        except UserError as exc:
            choices.append(ModelChoice(model.id, model.name, False, str(exc)))
            continue
        spec = _BY_MANIFEST_ID.get(model.id)
        note = "Your own model. " + state.message if model.user else state.message
        choices.append(ModelChoice(spec.key if spec else model.id, model.name, state.usable, note))
    return choices


@dataclass
class MaskResult:
    """The answer to one image: the image, its alpha (HxW uint8), the model that made it, the time taken."""

    image: LoadedImage
    alpha: np.ndarray
    model: str
    ms: float

    @property
    def path(self) -> Path | None:
        return self.image.path
