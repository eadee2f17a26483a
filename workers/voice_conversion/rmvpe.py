"""RMVPE pitch estimation (robust vocal pitch from polyphonic or noisy audio), the ``rmvpe.pt`` RVC ships.

The network is the published E2E model: a deep U-Net of residual conv blocks over a 128-band log-mel
spectrogram (16 kHz, 1024-sample window, 10 ms hop, 30-8000 Hz HTK mel bands, centred frames), a 3-channel
conv, a bidirectional GRU and a linear layer to 360 pitch bins of 20 cents (sigmoid salience). The F0 of
a frame is the salience-weighted mean of the 9 bins around its strongest bin, unvoiced where that
bin's salience is 0.03 or less. Parameter names and shapes are the checkpoint's, so ``rmvpe.pt`` loads
with strict key matching (``torch.load(weights_only=True)``); the number of residual blocks per stage is
read from the weights (4 in the published file).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workers.errors import UserError

log = logging.getLogger(__name__)

N_MELS = 128
N_CLASSES = 360
HOP = 160
WINDOW = 1024
THRESHOLD = 0.03
CENTS = 20 * np.arange(N_CLASSES) + 1997.3794084376191


class ConvBlockRes(nn.Module):
    """Two 3x3 conv + batch norm + ReLU layers with a residual (a 1x1 conv when the widths differ)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
        )
        if in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x) if hasattr(self, "shortcut") else x
        return self.conv(x) + skip


class ResBlocks(nn.Module):
    """``n_blocks`` residual blocks, then (in the encoder) a 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.ModuleList(
            ConvBlockRes(in_channels if i == 0 else out_channels, out_channels) for i in range(n_blocks)
        )
        self.pool = nn.AvgPool2d(2) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            ConvBlockRes(out_channels * 2 if i == 0 else out_channels, out_channels) for i in range(n_blocks)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class _Stage(nn.Module):
    """A container whose children are numbered ``layers.<i>`` (the checkpoint's names)."""

    def __init__(self, layers: list[nn.Module], bn_channels: int | None = None) -> None:
        super().__init__()
        if bn_channels is not None:
            self.bn = nn.BatchNorm2d(bn_channels, momentum=0.01)
        self.layers = nn.ModuleList(layers)


class UNet(nn.Module):
    def __init__(self, n_blocks: int, depth: int = 5, inter: int = 4, base: int = 16) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth)]  # 16 .. 256
        self.encoder = _Stage(
            [ResBlocks(1 if i == 0 else widths[i - 1], widths[i], n_blocks, True) for i in range(depth)], 1
        )
        top = widths[-1] * 2
        self.intermediate = _Stage(
            [ResBlocks(widths[-1] if i == 0 else top, top, n_blocks, False) for i in range(inter)]
        )
        ups = []
        channels = top
        for _ in range(depth):
            ups.append(UpBlock(channels, channels // 2, n_blocks))
            channels //= 2
        self.decoder = _Stage(ups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        x = self.encoder.bn(x)
        for layer in self.encoder.layers:
            x = layer(x)
            skips.append(x)
            x = layer.pool(x)
        for layer in self.intermediate.layers:
            x = layer(x)
        for layer, skip in zip(self.decoder.layers, reversed(skips), strict=True):
            x = layer(x, skip)
        return x


class BiGRU(nn.Module):
    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RMVPENet(nn.Module):
    """Log-mel ``[B, 128, T]`` (T a multiple of 32) -> salience ``[B, T, 360]``."""

    def __init__(self, n_blocks: int = 4) -> None:
        super().__init__()
        self.unet = UNet(n_blocks)
        self.cnn = nn.Conv2d(16, 3, 3, padding=1)
        self.fc = nn.Sequential(BiGRU(3 * N_MELS, 256), nn.Linear(512, N_CLASSES), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.unet(mel.transpose(-1, -2).unsqueeze(1))
        x = self.cnn(x).transpose(1, 2).flatten(-2)
        return self.fc(x)


def blocks_in(state: dict[str, Any]) -> int:
    """Residual blocks per stage of an RMVPE state dict (from the first encoder stage's keys)."""
    found = {int(m.group(1)) for k in state if (m := re.match(r"unet\.encoder\.layers\.0\.conv\.(\d+)\.", k))}
    if not found:
        raise UserError("The file is not an RMVPE pitch model (no U-Net encoder weights).")
    return max(found) + 1


def decode(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Salience ``[T, 360]`` -> F0 in Hz per frame (0 where the strongest bin is at or under ``threshold``)."""
    salience = np.asarray(salience, dtype=np.float64)
    centre = np.argmax(salience, axis=1)
    padded = np.pad(salience, ((0, 0), (4, 4)))
    cents = np.pad(CENTS, (4, 4))
    idx = centre[:, None] + np.arange(9)[None]  # the 9 bins around the peak, in padded coordinates
    weights = np.take_along_axis(padded, idx, axis=1)
    local = (weights * cents[idx]).sum(1) / np.maximum(weights.sum(1), 1e-12)
    f0 = 10 * 2 ** (local / 1200)
    f0[salience.max(axis=1) <= threshold] = 0.0
    return f0.astype(np.float32)


class RMVPEEstimator:
    """RMVPE as one of the studio's pitch estimators (16 kHz in, one F0 per 10 ms frame)."""

    name = "rmvpe"

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from workers.voice_conversion.checkpoints import torch_load
        from workers.voice_conversion.mel_filters import mel_filter_bank

        path = Path(path)
        state = torch_load(path)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise UserError(f"{path.name} is not an RMVPE pitch model.")
        net = RMVPENet(blocks_in(state))
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unknown = sorted(set(state) - set(expected))
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unknown or wrong:
            example = (missing or unknown or wrong)[0]
            raise UserError(f"{path.name} is not an RMVPE pitch model its loader knows ({example} does not fit).")
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        self.net = net.eval().to(device)
        self.device = device
        basis = mel_filter_bank(sr=16000, n_fft=WINDOW, n_mels=N_MELS, fmin=30, fmax=8000, htk=True)
        self.mel_basis = torch.from_numpy(basis).float().to(device)
        self.window = torch.hann_window(WINDOW).to(device)
        self._lock = threading.Lock()

    def mel(self, audio16k: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))[None].to(self.device)
        spec = torch.stft(
            x, WINDOW, hop_length=HOP, win_length=WINDOW, window=self.window, center=True, return_complex=True
        )
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=1e-5))

    def salience(self, audio16k: np.ndarray) -> np.ndarray:
        mel = self.mel(audio16k)
        frames = mel.shape[-1]
        pad = 32 * ((frames - 1) // 32 + 1) - frames
        if pad:
            mel = F.pad(mel, (0, pad))
        with self._lock, torch.inference_mode():
            hidden = self.net(mel)
        return hidden[0, :frames].float().cpu().numpy()

    def __call__(self, audio16k: np.ndarray, *, fmin: float = 50.0, fmax: float = 1100.0) -> np.ndarray:
        from workers.voice_conversion.pitch import _check_range, _clean, _prepare, frame_levels_db, n_frames

        fmin, fmax = _check_range(fmin, fmax)
        audio = _prepare(audio16k)
        count = n_frames(len(audio))
        if len(audio) < WINDOW // 2 + 1:
            audio = np.pad(audio, (0, WINDOW // 2 + 1 - len(audio)))
        f0 = decode(self.salience(audio))
        f0 = _clean(f0, count, fmin, fmax)
        levels = frame_levels_db(audio)[:count]
        from workers.voice_conversion.pitch import SILENCE_DB

        f0[: len(levels)][levels < SILENCE_DB] = 0.0
        return f0
