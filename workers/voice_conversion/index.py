"""Timbre retrieval: pull the input's content features towards the target speaker's training features.

- RVC ``.index`` (a faiss index of the training features, read with ``faiss.read_index``): each frame's 8
  nearest training vectors, weighted by 1 / distance², replace ``index_ratio`` of the frame.
- so-vits-svc cluster model (``kmeans_10000.pt``: per speaker name, the k-means ``cluster_centers_``):
  each frame's nearest centre replaces ``index_ratio`` of it.
- so-vits-svc feature index (``feature_and_index.pkl``: per speaker id, a pickled faiss index): read
  without unpickling any object (only the serialized faiss bytes are taken out), then used like RVC's.

All run on numpy/faiss on the CPU; features are ``[1, frames, dim]`` torch tensors at 50 frames a second.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Neighbours per frame (as RVC and so-vits-svc search).
NEIGHBOURS = 8


class Retrieval(Protocol):
    dim: int

    def apply(self, feats: torch.Tensor, ratio: float, speaker: int = 0) -> torch.Tensor: ...


def _blend(feats: torch.Tensor, target: np.ndarray, ratio: float) -> torch.Tensor:
    import torch

    retrieved = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).to(feats.device)[None]
    return retrieved * ratio + (1 - ratio) * feats


def _weighted_neighbours(index: Any, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    k = max(1, min(NEIGHBOURS, int(index.ntotal)))
    scores, ids = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
    valid = ids >= 0
    weight = np.square(1.0 / np.maximum(scores, 1e-12)) * valid
    total = weight.sum(axis=1, keepdims=True)
    weight = np.where(total > 0, weight / np.maximum(total, 1e-30), 0.0)
    picked = vectors[np.clip(ids, 0, len(vectors) - 1)]
    return np.sum(picked * weight[..., None], axis=1)


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise UserError("Feature indexes need the faiss-cpu package; install it or clear the index.") from exc
    return faiss


class FeatureIndex:
    """An RVC ``.index`` file (faiss) with the training vectors it holds."""

    def __init__(self, index: Any, path: Path) -> None:
        self.index = index
        self.path = path
        self.dim = int(index.d)
        if int(index.ntotal) == 0:
            raise UserError(f"The index {path.name} is empty.")
        self.vectors = np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The index file {path} was not found.")
        faiss = _import_faiss()
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, MemoryError) as exc:
            log.info("faiss could not read %s: %s", path, exc)
            raise UserError(f"{path.name} is damaged or is not a faiss index (.index) file.") from None
        try:
            return cls(index, path)
        except RuntimeError as exc:
            raise UserError(f"The vectors of the index {path.name} cannot be read back ({exc}).") from None

    def apply(self, feats: torch.Tensor, ratio: float, speaker: int = 0) -> torch.Tensor:
        if ratio <= 0 or feats.shape[1] == 0:
            return feats
        query = feats[0].detach().float().cpu().numpy()
        return _blend(feats, _weighted_neighbours(self.index, self.vectors, query), ratio)


class ClusterModel:
    """A so-vits-svc k-means cluster model: per speaker name, the cluster centres."""

    def __init__(self, centers: dict[str, np.ndarray], path: Path, speakers: dict[str, int] | None = None) -> None:
        if not centers:
            raise UserError(f"The cluster model {path.name} holds no speakers.")
        self.centers = centers
        self.path = path
        dims = {c.shape[1] for c in centers.values()}
        if len(dims) != 1:
            raise UserError(f"The cluster model {path.name} mixes feature sizes {sorted(dims)}.")
        self.dim = dims.pop()
        self.by_id = {sid: name for name, sid in (speakers or {}).items()}

    @classmethod
    def load(cls, path: str | Path, speakers: dict[str, int] | None = None) -> ClusterModel:
        from workers.voice_conversion.checkpoints import torch_load

        path = Path(path)
        obj = torch_load(path, safe_globals=_numpy_globals())
        if not isinstance(obj, dict) or not all(isinstance(v, dict) and "cluster_centers_" in v for v in obj.values()):
            raise UserError(f"{path.name} is not a so-vits-svc cluster model (no cluster_centers_ per speaker).")
        centers: dict[str, np.ndarray] = {}
        for name, entry in obj.items():
            arr = entry["cluster_centers_"]
            arr = arr.detach().cpu().numpy() if hasattr(arr, "detach") else np.asarray(arr)
            if arr.ndim != 2 or not np.isfinite(arr).all():
                raise UserError(f"The cluster model {path.name} has invalid centres for speaker {name}.")
            centers[str(name)] = arr.astype(np.float32)
        return cls(centers, path, speakers)

    def _centers_for(self, speaker: int) -> np.ndarray:
        name = self.by_id.get(speaker)
        if name in self.centers:
            return self.centers[name]
        if str(speaker) in self.centers:
            return self.centers[str(speaker)]
        if len(self.centers) == 1:
            return next(iter(self.centers.values()))
        raise UserError(f"The cluster model {self.path.name} has no centres for speaker {name or speaker}.")

    def apply(self, feats: torch.Tensor, ratio: float, speaker: int = 0) -> torch.Tensor:
        if ratio <= 0 or feats.shape[1] == 0:
            return feats
        centers = self._centers_for(speaker)
        x = feats[0].detach().float().cpu().numpy()
        # nearest centre by Euclidean distance (what KMeans.predict does)
        dist = (x * x).sum(1, keepdims=True) - 2 * x @ centers.T + (centers * centers).sum(1)[None]
        return _blend(feats, centers[np.argmin(dist, axis=1)], ratio)


class SpeakerFeatureIndex:
    """so-vits-svc's ``feature_and_index.pkl``: a faiss index per speaker id."""

    def __init__(self, indexes: dict[int, FeatureIndex], path: Path) -> None:
        self.indexes = indexes
        self.path = path
        self.dim = next(iter(indexes.values())).dim

    @classmethod
    def load(cls, path: str | Path) -> SpeakerFeatureIndex:
        path = Path(path)
        faiss = _import_faiss()
        try:
            raw = _FaissStateUnpickler(io.BytesIO(path.read_bytes())).load()
        except FileNotFoundError:
            raise UserError(f"The index file {path} was not found.") from None
        except UserError:
            raise
        except Exception as exc:
            log.info("Reading %s failed: %s", path, exc)
            raise UserError(f"{path.name} is damaged or is not a so-vits-svc feature index.") from None
        if not isinstance(raw, dict) or not raw:
            raise UserError(f"{path.name} is not a so-vits-svc feature index (no speakers).")
        indexes = {}
        for sid, state in raw.items():
            if not isinstance(state, _FaissState) or state.data is None:
                raise UserError(f"{path.name} is not a so-vits-svc feature index.")
            try:
                index = faiss.deserialize_index(np.frombuffer(state.data, dtype=np.uint8))
            except RuntimeError:
                raise UserError(f"{path.name} holds a damaged faiss index.") from None
            indexes[int(sid)] = FeatureIndex(index, path)
        return cls(indexes, path)

    def apply(self, feats: torch.Tensor, ratio: float, speaker: int = 0) -> torch.Tensor:
        index = self.indexes.get(int(speaker))
        if index is None:
            if len(self.indexes) != 1:
                raise UserError(f"The feature index {self.path.name} has nothing for speaker {speaker}.")
            index = next(iter(self.indexes.values()))
        return index.apply(feats, ratio, speaker)


class _FaissState:
    """Stands in for a pickled faiss index: keeps only its serialized bytes."""

    def __init__(self, *args: object) -> None:
        self.data: bytes | None = None

    def __setstate__(self, state: Any) -> None:
        data = state.get("this") if isinstance(state, dict) else None
        if isinstance(data, (bytes, bytearray)):
            self.data = bytes(data)


class _FaissStateUnpickler(pickle.Unpickler):
    """Unpickles only dicts/ints/bytes and faiss index classes (as :class:`_FaissState`): no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "faiss" and name.startswith("Index"):
            return _FaissState
        raise UserError(
            f"The feature index holds Python objects ({module}.{name}) besides faiss indexes, so it was not opened."
        )


def _numpy_globals() -> list[Any]:
    core = getattr(np, "_core", None) or np.core
    reconstruct = core.multiarray._reconstruct
    allowed: list[Any] = [
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in ("Float32DType", "Float64DType", "Int64DType") if hasattr(dtypes, n)]
    return allowed


def load_index(path: str | Path, *, content_dim: int, speakers: dict[str, int] | None = None) -> Retrieval:
    """Open an RVC ``.index``, a so-vits-svc cluster model (``.pt``/``.pth``) or feature index (``.pkl``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"The index file {path} was not found.")
    suffix = path.suffix.lower()
    retrieval: Retrieval
    if suffix == ".index":
        retrieval = FeatureIndex.load(path)
    elif suffix in (".pt", ".pth"):
        retrieval = ClusterModel.load(path, speakers)
    elif suffix == ".pkl":
        retrieval = SpeakerFeatureIndex.load(path)
    else:
        raise UserError(
            f"{path.name} is not an index the studio can use; choose an RVC .index file or a so-vits-svc cluster "
            "model (.pt) or feature index (.pkl)."
        )
    if retrieval.dim != content_dim:
        raise UserError(
            f"The index {path.name} holds {retrieval.dim}-d features but the voice model uses {content_dim}-d; "
            "choose the index made for this model."
        )
    return retrieval
