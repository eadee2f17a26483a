"""RVC (Retrieval-based Voice Conversion) v1/v2 synthesizers for inference, with and without F0.

v1 takes 256-d content (HuBERT layer 9 + final projection), v2 768-d (layer 12). Content frames (100 per
second, two per HuBERT frame) are embedded (``enc_p.emb_phone``, plus ``enc_p.emb_pitch`` of the coarse
F0 for pitch models), scaled by sqrt(hidden), passed through a leaky ReLU and a relative-position
transformer, then the reversed coupling flow and a HiFi-GAN decoder (NSF for pitch models) conditioned on
the speaker embedding ``emb_g``. The posterior encoder ``enc_q`` is dropped from released ``.pth`` files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workers.voice_conversion.models import vocoder
from workers.voice_conversion.models.layers import (
    CouplingFlow,
    PosteriorEncoder,
    RelativeEncoder,
    WaveNet,
    full_mask,
)
from workers.voice_conversion.models.vocoder import BodyRunner, HiFiGAN, generator_fields

#: The noise scale RVC's inference always uses for the prior latent.
RVC_NOISE_SCALE = 0.66666
#: Order of the positional ``config`` list saved in RVC ``.pth`` files.
CONFIG_FIELDS = (
    "spec_channels", "segment_size", "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers",
    "kernel_size", "p_dropout", "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates",
    "upsample_initial_channel", "upsample_kernel_sizes", "spk_embed_dim", "gin_channels", "sr",
)
SAMPLE_RATES = {"32k": 32000, "40k": 40000, "48k": 48000}
F0_MIN = 50.0
F0_MAX = 1100.0
#: Frames before a tail's decoder margin that the reversed flow also runs on (its WaveNets see 4 x 3 x 2
#: frames around each).
FLOW_MARGIN = 24


@dataclass
class RVCConfig:
    version: str  # "v1" or "v2"
    f0: bool
    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]
    upsample_rates: list[int]
    upsample_initial_channel: int
    upsample_kernel_sizes: list[int]
    spk_embed_dim: int
    gin_channels: int
    sr: int

    @property
    def content_dim(self) -> int:
        return 256 if self.version == "v1" else 768

    @classmethod
    def from_list(cls, values: list[Any], *, version: str, f0: bool) -> RVCConfig:
        if len(values) != len(CONFIG_FIELDS):
            raise ValueError(f"the config list has {len(values)} entries instead of {len(CONFIG_FIELDS)}")
        named = dict(zip(CONFIG_FIELDS, values, strict=True))
        sr = named["sr"]
        sr = SAMPLE_RATES[sr] if isinstance(sr, str) else int(sr)
        return cls(
            version=version,
            f0=f0,
            spec_channels=int(named["spec_channels"]),
            segment_size=int(named["segment_size"]),
            inter_channels=int(named["inter_channels"]),
            hidden_channels=int(named["hidden_channels"]),
            filter_channels=int(named["filter_channels"]),
            n_heads=int(named["n_heads"]),
            n_layers=int(named["n_layers"]),
            kernel_size=int(named["kernel_size"]),
            p_dropout=float(named["p_dropout"]),
            **generator_fields(named),
            spk_embed_dim=int(named["spk_embed_dim"]),
            gin_channels=int(named["gin_channels"]),
            sr=sr,
        )

    def as_list(self) -> list[Any]:
        return [getattr(self, name) for name in CONFIG_FIELDS]

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)


def f0_to_coarse(f0: torch.Tensor) -> torch.Tensor:
    """F0 in Hz -> pitch embedding index 1..255 (mel scale, 50..1100 Hz), computed in float64 like RVC."""
    f0_64 = f0.detach().to(torch.float64).cpu().numpy()
    mel_min = 1127 * np.log(1 + F0_MIN / 700)
    mel_max = 1127 * np.log(1 + F0_MAX / 700)
    mel = 1127 * np.log(1 + f0_64 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - mel_min) * 254 / (mel_max - mel_min) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return torch.from_numpy(np.rint(mel).astype(np.int64)).to(f0.device)


class RVCPriorEncoder(nn.Module):
    """``enc_p``: content (+ coarse-F0) embedding, relative transformer, mean/log-std projection."""

    def __init__(self, cfg: RVCConfig) -> None:
        super().__init__()
        self.hidden_channels = cfg.hidden_channels
        self.out_channels = cfg.inter_channels
        self.emb_phone = nn.Linear(cfg.content_dim, cfg.hidden_channels)
        if cfg.f0:
            self.emb_pitch = nn.Embedding(256, cfg.hidden_channels)
        self.encoder = RelativeEncoder(
            cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers, cfg.kernel_size, window_size=10
        )
        self.proj = nn.Conv1d(cfg.hidden_channels, cfg.inter_channels * 2, 1)

    def forward(self, phone: torch.Tensor, pitch: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1)
        x = x.transpose(1, -1)
        mask = full_mask(x)
        x = self.encoder(x * mask, mask)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, mask


class RVCSynthesizer(nn.Module):
    def __init__(self, cfg: RVCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_p = RVCPriorEncoder(cfg)
        self.dec = HiFiGAN(
            cfg.inter_channels, cfg.resblock, cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
            cfg.upsample_rates, cfg.upsample_initial_channel, cfg.upsample_kernel_sizes, cfg.gin_channels, cfg.sr,
            flavour="rvc", nsf=cfg.f0,
        )
        self.flow = CouplingFlow(
            cfg.inter_channels, cfg.hidden_channels, 4,
            lambda: WaveNet(cfg.hidden_channels, 5, 1, 3, cfg.gin_channels),
        )
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)

    def training_parts(self) -> dict[str, nn.Module]:
        cfg = self.cfg
        return {
            "enc_q": PosteriorEncoder(
                cfg.spec_channels, cfg.inter_channels, cfg.hidden_channels, 5, 1, 16, cfg.gin_channels
            )
        }

    @torch.no_grad()
    def infer(
        self, phone: torch.Tensor, pitch: torch.Tensor | None, nsff0: torch.Tensor | None, sid: torch.Tensor,
        *, noise_scale: float = RVC_NOISE_SCALE, generator: torch.Generator | None = None,
        tail: int | None = None, body: BodyRunner | None = None,
    ) -> torch.Tensor:
        """``phone`` [B, T, C], ``pitch`` [B, T] coarse F0 (pitch models), ``nsff0`` [B, T] Hz (0 unvoiced),
        ``sid`` [B] -> audio [B, 1, T * hop]; with ``tail``, only the last ``tail`` frames' audio (the
        prior still hears the whole window; the flow and the decoder run on the tail and a margin, as RVC's
        own realtime path does). ``body`` runs the decoder's generator instead of torch (an ONNX session)."""
        g = self.emb_g(sid).unsqueeze(-1)
        m_p, logs_p, mask = self.enc_p(phone, pitch if self.cfg.f0 else None)
        noise = torch.randn(m_p.shape, generator=generator, dtype=m_p.dtype, device=m_p.device)
        z_p = (m_p + torch.exp(logs_p) * noise * noise_scale) * mask
        f0 = nsff0 if self.cfg.f0 else None
        if tail is None:
            z = self.flow.reverse(z_p, mask, g)
            return self.dec(z * mask, f0, g, generator=generator)
        head = max(0, z_p.shape[-1] - int(tail) - vocoder.DECODER_MARGIN - FLOW_MARGIN)
        z = self.flow.reverse(z_p[:, :, head:], mask[:, :, head:], g)
        return self.dec.decode_tail(z, f0, g, int(tail), generator=generator, body=body)
