"""The k-means of trained voices' retrieval index and cluster model (faiss's, not scikit-learn's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.voice_conversion.training import export


def _blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (6, 16)).astype(np.float32)
    points = np.concatenate([c + rng.normal(0, 0.3, (400, 16)) for c in centres]).astype(np.float32)
    return centres, points[rng.permutation(len(points))]


def test_kmeans_finds_the_blobs_and_repeats_itself() -> None:
    centres, points = _blobs()
    found = export.kmeans_centres(points, 6)
    assert found.shape == (6, 16) and found.dtype == np.float32
    # Each true centre has a found centre next to it (within the blobs' own spread).
    gaps = np.linalg.norm(centres[:, None, :] - found[None, :, :], axis=-1).min(axis=1)
    assert gaps.max() < 0.5, gaps
    np.testing.assert_array_equal(export.kmeans_centres(points, 6), found)


def test_kmeans_small_inputs() -> None:
    _centres, points = _blobs()
    np.testing.assert_allclose(export.kmeans_centres(points[:5], 1)[0], points[:5].mean(axis=0), rtol=1e-6)
    assert export.kmeans_centres(points[:4], 10).shape == (4, 16)  # never more centres than points


def test_cluster_model_has_so_vits_fields(tmp_path: Path) -> None:
    import torch

    _centres, points = _blobs(1)
    path = export.build_cluster_model({"alice": points[:800], "bob": points[800:]}, tmp_path / "kmeans_10000.pt")
    model = torch.load(path, weights_only=False)
    assert set(model) == {"alice", "bob"}
    assert model["alice"]["cluster_centers_"].shape == (100, 16)  # one centre per 8 frames
    assert model["bob"]["cluster_centers_"].shape == (200, 16)
    for entry in model.values():
        assert entry["n_features_in_"] == 16 and entry["_n_threads"] == 1
