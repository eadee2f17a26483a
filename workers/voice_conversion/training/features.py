"""Content and pitch features of the training pieces, cached in the run's folder.

Per piece: ContentVec/HuBERT layer 12 (768-d, 50 frames a second, as RVC v2 and so-vits-svc 4.1
"vec768l12" read it) from the encoder in the model store or a folder the user names, F0 every 10 ms
from the chosen estimator (FCPE, CREPE or RMVPE), both brought to the model's frame rate: RVC repeats
each content frame twice (100 frames a second), so-vits-svc takes the nearest content frame per hop.
The model-rate audio is cut to a whole number of frames. A cache file per piece (``features/*.npz``)
is reused while the encoder and the pitch method stay the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workers.errors import Cancelled, UserError
from workers.voice_conversion.training.dataset import Piece
from workers.voice_conversion.training.presets import TrainSpec

if TYPE_CHECKING:
    from workers.models.store import ModelStore
    from workers.voice_conversion.content import ContentEncoder

log = logging.getLogger(__name__)

#: Content encoders tried in order when none is named (both give 768-d layer-12 features).
ENCODER_IDS = {"rvc": ("hubert-base-rvc", "contentvec-best"), "sovits": ("contentvec-best", "hubert-base-rvc")}


@dataclass
class Item:
    """A piece ready for training: audio at the model's rate and its frame features."""

    name: str
    speaker: int
    audio: np.ndarray  # [frames * hop] float32
    content: np.ndarray  # [frames, 768] at the model's frame rate
    content50: np.ndarray  # [frames50, 768] as the encoder gave it (for the index)
    f0: np.ndarray  # [frames] Hz, 0 unvoiced

    @property
    def frames(self) -> int:
        return len(self.f0)


def load_encoder(
    spec: TrainSpec, encoder: str | Path | None, store: ModelStore | None, device: str = "cpu"
) -> ContentEncoder:
    """The content encoder a run uses: ``encoder`` (an id or a folder) or the first one installed."""
    from workers.voice_conversion.neural import shared_content_encoder

    candidates = [encoder] if encoder else list(ENCODER_IDS[spec.family])
    first: UserError | None = None
    for candidate in candidates:
        try:
            found = shared_content_encoder(candidate, store=store, device=device)  # type: ignore[arg-type]
        except UserError as exc:
            first = first or exc
            continue
        if spec.content_dim != found.hidden_size:
            raise UserError(
                f"The content encoder {found.folder.name} gives {found.hidden_size}-d features; "
                f"{spec.arch} trains on {spec.content_dim}-d ContentVec/HuBERT features."
            )
        return found
    assert first is not None
    if encoder:
        raise first
    raise UserError(
        f"Training needs a content encoder and none is installed; open Models and download ContentVec "
        f"(or run: snowai-studio models download {ENCODER_IDS[spec.family][1]}), or name a folder with --encoder."
    )


def _to_frames(
    item_audio: np.ndarray, content50: np.ndarray, f0_100: np.ndarray, spec: TrainSpec
) -> tuple[np.ndarray, ...]:
    from workers.voice_conversion.pitch import interpolate_f0

    hop = spec.hop_length
    frames = len(item_audio) // hop
    if spec.family == "rvc":
        content = np.repeat(content50, 2, axis=0)
    else:
        idx = np.minimum((np.arange(frames) * len(content50) / max(frames, 1)).astype(int), len(content50) - 1)
        content = content50[idx]
    frames = min(frames, len(content))
    f0 = f0_100[:frames] if spec.family == "rvc" and len(f0_100) >= frames else interpolate_f0(f0_100, frames)
    return item_audio[: frames * hop], content[:frames], f0[:frames].astype(np.float32)


def extract_features(
    pieces: list[Piece],
    spec: TrainSpec,
    encoder: ContentEncoder,
    folder: Path,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[Item]:
    """Features of every piece (from the cache where it still fits)."""
    from workers.media.audio import resample
    from workers.voice_conversion.pitch import make_pitch_estimator

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "features.json"
    key = {"encoder": str(encoder.folder.resolve()), "f0": spec.f0_method, "rate": spec.sample_rate, "arch": spec.arch}
    try:
        fresh = json.loads(marker.read_text(encoding="utf-8")) == key
    except (OSError, ValueError):
        fresh = False
    if not fresh:
        for old in folder.glob("*.npz"):
            old.unlink()
        marker.write_text(json.dumps(key), encoding="utf-8")
    estimator = make_pitch_estimator(spec.f0_method, device=device)
    items: list[Item] = []
    for done, piece in enumerate(pieces):
        if cancelled is not None and cancelled():
            raise Cancelled()
        cache = folder / f"{piece.name}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                content50, f0_100 = data["content50"], data["f0"]
        else:
            audio16 = resample(piece.audio.reshape(-1, 1), piece.rate, 16000)[:, 0]
            content50 = encoder.encode(audio16, dim=spec.content_dim, layer=12)[0].cpu().numpy().astype(np.float32)
            f0_100 = np.asarray(estimator(audio16), np.float32)
            np.savez(cache, content50=content50, f0=f0_100)
        audio, content, f0 = _to_frames(piece.audio, content50, f0_100, spec)
        items.append(Item(piece.name, spec.speakers[piece.speaker], audio, content, content50, f0))
        if progress is not None:
            progress(done + 1, len(pieces))
    return items
