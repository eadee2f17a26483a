"""RMVPE as a pitch method: the published network's layout, the salience decoding, a small RMVPE the test
builds loaded through the real loader, and the sentence when the model is not downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workers.errors import UserError

LAYOUTS = Path(__file__).parent / "data" / "svc_train_layouts.json"


def test_network_has_the_layout_of_rvcs_rmvpe() -> None:
    """Key names and shapes of RVC's ``E2E(4, 1, (2, 2))``, the network of the published rmvpe.pt."""
    import torch

    from workers.voice_conversion.rmvpe import RMVPENet, blocks_in

    with torch.device("meta"):
        state = RMVPENet(4).state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == json.loads(LAYOUTS.read_text())["rmvpe"]
    assert blocks_in(state) == 4


def test_salience_decodes_to_the_weighted_bin_frequency() -> None:
    from workers.voice_conversion.rmvpe import CENTS, decode

    salience = np.zeros((3, 360), np.float32)
    salience[0, 100] = 0.9  # one bin: its own frequency
    salience[1, 200:202] = 0.5  # two equal bins: half way between them (10 cents up)
    salience[2, 50] = 0.02  # below the voicing threshold
    f0 = decode(salience)
    assert f0[0] == pytest.approx(10 * 2 ** (CENTS[100] / 1200), rel=1e-5)
    assert f0[1] == pytest.approx(10 * 2 ** ((CENTS[200] + 10) / 1200), rel=1e-5)
    assert f0[2] == 0.0


def test_a_small_rmvpe_loads_and_gives_one_value_per_frame(tmp_path: Path) -> None:
    import torch

    from workers.voice_conversion.rmvpe import RMVPEEstimator, RMVPENet

    torch.manual_seed(0)
    path = tmp_path / "rmvpe.pt"
    torch.save(RMVPENet(1).state_dict(), path)
    estimator = RMVPEEstimator(path)
    t = np.arange(16000) / 16000
    f0 = estimator((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    assert len(f0) == 16000 // 160 + 1 and f0.dtype == np.float32
    assert np.all((f0 == 0) | ((f0 >= 50) & (f0 <= 1100)))
    assert not estimator(np.zeros(8000, np.float32)).any()  # silence stays unvoiced
    (tmp_path / "other.pt").write_bytes(path.read_bytes())
    broken = {k: v for k, v in RMVPENet(1).state_dict().items() if not k.startswith("cnn.")}
    torch.save(broken, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an RMVPE pitch model"):
        RMVPEEstimator(tmp_path / "other.pt")


def test_rmvpe_is_a_pitch_method_that_names_its_download(tmp_path: Path) -> None:
    from workers.models.store import ModelStore
    from workers.voice_conversion.options import F0_METHODS
    from workers.voice_conversion.pitch import make_pitch_estimator

    assert "rmvpe" in F0_METHODS
    with pytest.raises(UserError, match=r"not installed.*models download rmvpe"):
        make_pitch_estimator("rmvpe", store=ModelStore(tmp_path / "store"))
