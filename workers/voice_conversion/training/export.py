"""Trained voices in the originals' file formats.

- RVC v2: the small model RVC exports (``assets/weights/<name>.pth``): ``{"weight": fp16 state dict
  without enc_q, "config": the 18 values, "info", "sr": "40k", "f0": 1, "version": "v2"}``, and its
  retrieval index ``added_IVF<n>_Flat_nprobe_1_<name>_v2.index`` built as RVC builds it (the 768-d
  content frames, k-means to 10,000 centres above 200,000 frames: faiss's k-means where RVC uses
  scikit-learn's, ``IVF<n>,Flat`` with ``n = min(16 * sqrt(N), N / 39)``, nprobe 1, added in batches
  of 8192).
- so-vits-svc 4.1: ``G_<step>.pth`` with ``config.json`` beside it (the run's folder is already in that
  layout) and the cluster model ``kmeans_10000.pt`` (per speaker name the k-means centres of its content
  frames, as ``cluster/train_cluster.py`` saves them).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import UserError
from workers.voice_conversion.training.checkpoints import write_atomic
from workers.voice_conversion.training.presets import TrainSpec

log = logging.getLogger(__name__)

RATE_NAMES = {32000: "32k", 40000: "40k", 48000: "48k"}


def rvc_small_model(state: dict[str, Any], spec: TrainSpec, step: int) -> dict[str, Any]:
    """The dict RVC's ``savee`` writes for a trained generator state."""
    import torch

    weight = {k: v.detach().to(torch.float16).cpu().clone() for k, v in state.items() if "enc_q" not in k}
    return {
        "weight": weight,
        "config": spec.rvc_config_list(),
        "info": f"{step} steps",
        "sr": RATE_NAMES[spec.sample_rate],
        "f0": 1,
        "version": "v2",
    }


def build_rvc_index(vectors: np.ndarray, path_folder: Path, name: str) -> Path:
    """RVC's ``train_index``: an IVF flat faiss index of the training content frames."""
    from workers.voice_conversion.index import _import_faiss

    faiss = _import_faiss()
    big = np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    big = big[rng.permutation(len(big))]
    if len(big) > 200_000:
        big = kmeans_centres(big, 10000, iterations=10)
    n_ivf = max(1, min(int(16 * math.sqrt(len(big))), len(big) // 39))
    index = faiss.index_factory(big.shape[1], f"IVF{n_ivf},Flat")
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = 1
    index.train(big)
    for start in range(0, len(big), 8192):
        index.add(big[start : start + 8192])
    path = path_folder / f"added_IVF{n_ivf}_Flat_nprobe_{ivf.nprobe}_{name}_v2.index"
    for old in path_folder.glob(f"added_IVF*_Flat_nprobe_*_{name}_v2.index"):
        old.unlink()
    faiss.write_index(index, str(path))
    return path


def kmeans_centres(points: np.ndarray, k: int, *, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """``k`` k-means centres (float32) of ``points`` by faiss's k-means (random initial centres, at most
    256 sampled points per centre), the same for the same ``seed``."""
    from workers.voice_conversion.index import _import_faiss

    points = np.ascontiguousarray(points, dtype=np.float32)
    k = max(1, min(int(k), len(points)))
    if k == 1:
        return points.mean(axis=0, keepdims=True)
    faiss = _import_faiss()
    # min_points_per_centroid 1: so-vits asks for one centre per 8 frames, which faiss would warn about.
    km = faiss.Kmeans(points.shape[1], k, niter=iterations, seed=seed, verbose=False, min_points_per_centroid=1)
    km.train(points)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def build_cluster_model(vectors: dict[str, np.ndarray], path: Path, clusters: int = 10000) -> Path:
    """so-vits-svc's cluster model: per speaker the k-means centres of its content frames (the fields
    of scikit-learn's KMeans that so-vits-svc saves)."""
    out = {}
    for speaker, feats in vectors.items():
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        centres = kmeans_centres(feats, max(1, min(clusters, len(feats) // 8)))
        out[speaker] = {
            "n_features_in_": int(feats.shape[1]),
            "_n_threads": 1,
            "cluster_centers_": centres,
        }
    write_atomic(path, out)
    return path


def export_voice(
    out: Path, spec: TrainSpec, state: dict[str, Any], step: int, vectors: dict[str, np.ndarray]
) -> list[Path]:
    """Write the voice of ``step`` in the original format; returns the files (model first)."""
    if not vectors:
        raise UserError("There are no training features to build the index from.")
    if spec.family == "rvc":
        name = out.name
        model = out / f"{name}.pth"
        write_atomic(model, rvc_small_model(state, spec, step))
        index = build_rvc_index(np.concatenate(list(vectors.values())), out, name)
        return [model, index]
    config = out / "config.json"
    config.write_text(json.dumps(spec.sovits_config(), indent=2), encoding="utf-8")
    cluster = build_cluster_model(vectors, out / "kmeans_10000.pt")
    return [out / f"G_{step}.pth", config, cluster]
