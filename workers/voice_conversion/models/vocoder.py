"""HiFi-GAN decoders with a neural-source-filter (NSF) excitation, as so-vits-svc and RVC use them.

The NSF source turns the frame F0 into a sine excitation (plus noise where unvoiced) at the audio rate;
strided convolutions (``noise_convs``) add it into every upsampling stage of the HiFi-GAN generator.
so-vits-svc builds its sine at sample level with 8 overtones; RVC accumulates the phase frame by frame
with the fundamental only. Every random draw (initial overtone phases, excitation noise) comes from the
``torch.Generator`` passed in, in the order the original networks draw them, so a fixed seed gives a
fixed output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from workers.voice_conversion.models.layers import (
    LRELU_SLOPE,
    WNConv1d,
    WNConvTranspose1d,
    make_resblock,
)

SINE_AMP = 0.1
NOISE_STD = 0.003
#: Latent frames generated before a tail (see :meth:`HiFiGAN.decode_tail`) so that the kept frames see the
#: same neighbourhood as in a whole-window decode (the generator's receptive field is about 6 frames).
DECODER_MARGIN = 8

#: Runs a generator body: (latent [B, C, T], excitation [B, 1, N] or None, speaker [B, G, 1] or None) -> audio.
BodyRunner = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


def generator_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The HiFi-GAN generator's settings, typed, from a so-vits-svc or RVC model config (same names)."""
    return {
        "resblock": str(config["resblock"]),
        "resblock_kernel_sizes": [int(k) for k in config["resblock_kernel_sizes"]],
        "resblock_dilation_sizes": [[int(d) for d in ds] for ds in config["resblock_dilation_sizes"]],
        "upsample_rates": [int(u) for u in config["upsample_rates"]],
        "upsample_initial_channel": int(config["upsample_initial_channel"]),
        "upsample_kernel_sizes": [int(k) for k in config["upsample_kernel_sizes"]],
    }


def _excitation_noise(uv: torch.Tensor, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise: small where voiced, about the sine's amplitude where unvoiced."""
    amplitude = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3
    return amplitude * torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class SampleSineSource(nn.Module):
    """so-vits-svc's NSF source: F0 repeated to the audio rate, a sine per harmonic (phase accumulated
    sample by sample with wrap-around), random initial phases for the overtones, merged by ``l_linear``."""

    def __init__(self, sample_rate: int, harmonics: int = 8) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.dim = harmonics + 1
        self.l_linear = nn.Linear(self.dim, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None) -> torch.Tensor:
        """``f0`` [B, T] (frame rate) -> excitation [B, 1, T * upp]."""
        f0 = f0[:, None].repeat_interleave(upp, dim=2).transpose(1, 2)  # [B, N, 1]
        factors = torch.arange(1, self.dim + 1, dtype=f0.dtype, device=f0.device)[None, None, :]
        harmonics = f0 * factors  # [B, N, dim]
        step = (harmonics / self.sample_rate) % 1
        phase0 = torch.rand(f0.shape[0], self.dim, generator=generator, dtype=f0.dtype, device=f0.device)
        phase0[:, 0] = 0
        step[:, 0, :] = step[:, 0, :] + phase0
        # subtract 1 wherever the running phase wraps, so that the cumulative sum stays small
        wrapped = torch.cumsum(step, 1) % 1
        drops = (wrapped[:, 1:, :] - wrapped[:, :-1, :]) < 0
        shift = torch.zeros_like(step)
        shift[:, 1:, :] = drops * -1.0
        sines = torch.sin(torch.cumsum(step + shift, dim=1) * 2 * math.pi) * SINE_AMP
        uv = (f0 > 0).to(f0.dtype)
        noise = _excitation_noise(uv, sines, generator)
        source = sines * uv + noise
        return torch.tanh(self.l_linear(source)).transpose(1, 2)


class FrameSineSource(nn.Module):
    """RVC's NSF source: the phase advances by ``f0 / sr`` per sample inside a frame and the frame-end
    phases are accumulated (wrapped to [-0.5, 0.5)) across frames; fundamental only."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None) -> torch.Tensor:
        f0 = f0.unsqueeze(-1)  # [B, T, 1]
        within = torch.arange(1, upp + 1, dtype=f0.dtype, device=f0.device)
        phase = f0 / self.sample_rate * within  # [B, T, upp]
        frame_end = torch.fmod(phase[:, :-1, -1:].float() + 0.5, 1.0) - 0.5
        carried = frame_end.cumsum(dim=1).fmod(1.0).to(f0)
        phase = phase + F.pad(carried, (0, 0, 1, 0))
        phase = phase.reshape(f0.shape[0], -1, 1)
        # the fundamental has no random initial phase; the draw keeps the random stream in step
        torch.rand(1, 1, 1, generator=generator, dtype=f0.dtype, device=f0.device)
        sines = torch.sin(2 * math.pi * phase) * SINE_AMP
        uv = (f0 > 0).to(f0.dtype).repeat_interleave(upp, dim=1)
        noise = _excitation_noise(uv, sines, generator)
        source = sines * uv + noise
        return torch.tanh(self.l_linear(source.to(self.l_linear.weight.dtype))).transpose(1, 2)


class HiFiGAN(nn.Module):
    """HiFi-GAN generator from latent frames to audio, optionally with an NSF source (``m_source`` and
    ``noise_convs``) and a speaker condition (``cond``).

    ``flavour`` picks the small differences of the published decoders:
    ``"sovits-4.0"`` / ``"sovits-4.1"`` (weight-normalised ``conv_pre``/``conv_post``, 9-harmonic sample
    source, final leaky ReLU of slope 0.01; 4.1 rounds odd paddings up) and ``"rvc"`` (plain
    ``conv_pre``, bias-free ``conv_post``, frame source)."""

    def __init__(
        self, initial_channel: int, resblock: str, resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]], upsample_rates: list[int], upsample_initial_channel: int,
        upsample_kernel_sizes: list[int], gin_channels: int, sample_rate: int, *, flavour: str, nsf: bool = True,
    ) -> None:
        super().__init__()
        self.flavour = flavour
        self.nsf = nsf
        self.num_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        sovits = flavour.startswith("sovits")
        round_up = flavour == "sovits-4.1"
        if nsf:
            self.m_source: nn.Module = (
                SampleSineSource(sample_rate, harmonics=8) if sovits else FrameSineSource(sample_rate)
            )
            self.noise_convs = nn.ModuleList()
        conv_pre = WNConv1d if sovits else nn.Conv1d
        self.conv_pre = conv_pre(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            c_in = upsample_initial_channel // (2**i)
            ch = upsample_initial_channel // (2 ** (i + 1))
            padding = (k - u + 1) // 2 if round_up else (k - u) // 2
            self.ups.append(WNConvTranspose1d(c_in, ch, k, u, padding=padding))
            if nsf:
                if i + 1 < len(upsample_rates):
                    stride = math.prod(upsample_rates[i + 1 :])
                    pad = (stride + 1) // 2 if round_up else stride // 2
                    self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=stride * 2, stride=stride, padding=pad))
                else:
                    self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=1))
            for k_r, d_r in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(make_resblock(resblock, ch, k_r, d_r))
        if sovits:
            self.conv_post: nn.Module = WNConv1d(ch, 1, 7, 1, padding=3)
        else:
            self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.final_slope = 0.01
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(
        self, x: torch.Tensor, f0: torch.Tensor | None = None, g: torch.Tensor | None = None,
        *, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``x`` [B, C, T] latent frames, ``f0`` [B, T] Hz -> audio [B, 1, T * upp] in [-1, 1]."""
        return self.body(x, self.excitation(f0, generator), g)

    def excitation(self, f0: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The NSF source [B, 1, T * upp] for ``f0`` [B, T] (None for a decoder without one)."""
        if not self.nsf:
            return None
        if f0 is None:
            raise ValueError("this decoder needs F0")
        return self.m_source(f0, self.upp, generator)

    def body(self, x: torch.Tensor, source: torch.Tensor | None, g: torch.Tensor | None) -> torch.Tensor:
        """The convolutional generator: latent frames (+ excitation, speaker) -> audio."""
        x = self.conv_pre(x)
        if g is not None and hasattr(self, "cond"):
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if source is not None:
                x = x + self.noise_convs[i](source)
            total = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                total = y if total is None else total + y
            assert total is not None
            x = total / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, self.final_slope))
        return torch.tanh(x)

    def decode_tail(
        self, z: torch.Tensor, f0: torch.Tensor | None, g: torch.Tensor | None, tail: int, *,
        generator: torch.Generator | None = None, body: BodyRunner | None = None,
    ) -> torch.Tensor:
        """Audio of only the last ``tail`` frames (what a live block keeps), as :meth:`forward` gives it
        there. ``z`` may hold only the window's last frames; ``f0`` covers the whole window, so that the
        excitation's phase and noise stay those of a whole-window decode. The generator runs on the tail
        plus :data:`DECODER_MARGIN` frames before it."""
        source = self.excitation(f0, generator)
        total = f0.shape[-1] if f0 is not None else z.shape[-1]
        first = total - z.shape[-1]  # the window frame z starts at
        start = max(first, total - int(tail) - DECODER_MARGIN)
        z = z[:, :, start - first :]
        if source is not None:
            source = source[:, :, start * self.upp :]
        audio = (body or self.body)(z, source, g)
        return audio[:, :, (total - start - min(int(tail), total)) * self.upp :]
