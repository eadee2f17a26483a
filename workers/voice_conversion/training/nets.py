"""The training-time passes of the VITS-family voice models, on the studio's own inference modules.

Inference runs the coupling flow in reverse and never the posterior encoder; training needs
``enc_q`` (linear spectrogram -> latent ``z``), the flow forward (``z`` -> ``z_p`` for the KL term)
and the decoder on a random segment of ``z``. The arithmetic follows VITS as RVC and so-vits-svc train
it: mean-only couplings, the posterior sampled with the reparameterisation trick, the segment's F0
taken at the same frames. The spectrogram and mel transforms are the originals' (reflect padding of
``(n_fft - hop) / 2`` on each side, no centring, magnitude with a small floor under the root, Slaney
mel filters (:mod:`workers.voice_conversion.mel_filters`), natural log clipped at 1e-5).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workers.voice_conversion.mel_filters import mel_filter_bank
from workers.voice_conversion.models.layers import (
    CouplingFlow,
    CouplingLayer,
    Flip,
    PosteriorEncoder,
    init_normal,
)
from workers.voice_conversion.training.presets import TrainSpec

_windows: dict[tuple[int, str, str], torch.Tensor] = {}
_mel_bases: dict[tuple[int, int, int, float | None, str, str], torch.Tensor] = {}


# ---- transforms ---------------------------------------------------------------------------------------


def spectrogram(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Linear magnitude spectrogram ``[B, n_fft/2+1, len/hop]`` of audio ``[B, N]`` (``N`` a multiple of hop)."""
    key = (n_fft, str(y.dtype), str(y.device))
    window = _windows.get(key)
    if window is None:
        window = _windows[key] = torch.hann_window(n_fft, dtype=y.dtype, device=y.device)
    pad = (n_fft - hop) // 2
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)


def spec_to_mel(spec: torch.Tensor, n_fft: int, n_mels: int, rate: int, fmax: float | None) -> torch.Tensor:
    key = (n_fft, n_mels, rate, fmax, str(spec.dtype), str(spec.device))
    basis = _mel_bases.get(key)
    if basis is None:
        matrix = mel_filter_bank(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=fmax)
        basis = _mel_bases[key] = torch.from_numpy(matrix).to(dtype=spec.dtype, device=spec.device)
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))


def mel_spectrogram(y: torch.Tensor, spec: TrainSpec) -> torch.Tensor:
    """Log-mel ``[B, n_mels, frames]`` of audio ``[B, N]`` with the model's analysis settings."""
    linear = spectrogram(y.float(), spec.filter_length, spec.hop_length)
    return spec_to_mel(linear, spec.filter_length, spec.n_mels, spec.sample_rate, spec.mel_fmax)


# ---- building ----------------------------------------------------------------------------------------


def build_generator(spec: TrainSpec) -> tuple[nn.Module, PosteriorEncoder]:
    """The synthesizer (the studio's inference network, trained in place) and its posterior encoder,
    initialised as the originals initialise them (HiFi-GAN convs N(0, 0.01), coupling outputs at zero)."""
    if spec.family == "rvc":
        from workers.voice_conversion.models.rvc import RVCConfig, RVCSynthesizer

        cfg = RVCConfig.from_list(spec.rvc_config_list(), version="v2", f0=True)
        net: nn.Module = RVCSynthesizer(cfg)
        separable = False
        gin, inter, hidden, spec_channels = cfg.gin_channels, cfg.inter_channels, cfg.hidden_channels, cfg.spec_channels
    else:
        from workers.voice_conversion.models.sovits import SoVitsConfig, SoVitsSynthesizer

        scfg = SoVitsConfig.from_json(spec.sovits_config())
        net = SoVitsSynthesizer(scfg)
        separable = scfg.use_depthwise_conv
        gin, inter, hidden, spec_channels = (
            scfg.gin_channels,
            scfg.inter_channels,
            scfg.hidden_channels,
            scfg.spec_channels,
        )
    enc_q = PosteriorEncoder(spec_channels, inter, hidden, 5, 1, 16, gin, separable=separable)
    init_normal(net.dec)  # type: ignore[arg-type]
    for layer in net.flow.flows:  # type: ignore[union-attr]
        if isinstance(layer, CouplingLayer):
            nn.init.zeros_(layer.post.weight)
            nn.init.zeros_(layer.post.bias)
    return net, enc_q


def generator_state(net: nn.Module, enc_q: nn.Module) -> dict[str, torch.Tensor]:
    """The generator's checkpoint state dict: the synthesizer's keys plus ``enc_q.*`` (as the originals save)."""
    state = dict(net.state_dict())
    state.update({f"enc_q.{k}": v for k, v in enc_q.state_dict().items()})
    return state


def load_generator_state(net: nn.Module, enc_q: nn.Module, state: dict[str, Any], *, strict: bool = True) -> list[str]:
    """Load a generator state (``enc_q.*`` included); returns the keys skipped for a shape mismatch when
    not ``strict`` (a pretrained base with another speaker table)."""
    own = {k: v for k, v in state.items() if not k.startswith("enc_q.")}
    post = {k[len("enc_q.") :]: v for k, v in state.items() if k.startswith("enc_q.")}
    skipped: list[str] = []
    for module, part, prefix in ((net, own, ""), (enc_q, post, "enc_q.")):
        if strict:
            module.load_state_dict({k: v.float() for k, v in part.items()}, strict=True)
            continue
        target = module.state_dict()
        usable = {}
        for key, value in part.items():
            if key in target and tuple(target[key].shape) == tuple(value.shape):
                usable[key] = value.float()
            else:
                skipped.append(prefix + key)
        module.load_state_dict(usable, strict=False)
    return skipped


# ---- training passes ----------------------------------------------------------------------------------


def flow_forward(flow: CouplingFlow, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """The coupling flow run forward (``z`` -> ``z_p``): each mean-only coupling adds the shift its network
    computes from the first half, then the channels flip."""
    for layer in flow.flows:
        if isinstance(layer, Flip):
            x = torch.flip(x, [1])
            continue
        assert isinstance(layer, CouplingLayer)
        x0, x1 = torch.split(x, [layer.half, layer.half], 1)
        h = layer.enc(layer.pre(x0) * mask, mask, g=g)
        m = layer.post(h) * mask
        x = torch.cat([x0, m + x1 * mask], 1)
    return x


def posterior(
    enc_q: PosteriorEncoder, spec: torch.Tensor, mask: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """``enc_q`` on a linear spectrogram: (sampled z, mean, log-std)."""
    x = enc_q.pre(spec) * mask
    x = enc_q.enc(x, mask, g=g)
    stats = enc_q.proj(x) * mask
    m, logs = torch.split(stats, stats.shape[1] // 2, dim=1)
    z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
    return z, m, logs


def random_segments(x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of ``size`` frames per batch item (the same start for every channel)."""
    b, _, t = x.shape
    starts = torch.randint(0, max(1, t - size + 1), (b,), device=x.device)
    idx = starts[:, None] + torch.arange(size, device=x.device)[None]
    return x.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1)), starts


def take_segments(x: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """The windows ``starts .. starts + size`` of ``x`` ``[B, C, T]`` or ``[B, T]``."""
    squeeze = x.dim() == 2
    if squeeze:
        x = x[:, None]
    idx = starts[:, None] + torch.arange(size, device=x.device)[None]
    out = x.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))
    return out[:, 0] if squeeze else out


def generator_pass(
    net: nn.Module, enc_q: PosteriorEncoder, batch: dict[str, torch.Tensor], spec: TrainSpec
) -> dict[str, Any]:
    """One training forward of the synthesizer on a batch of equal-length windows.

    ``batch``: ``content`` [B, T, 768], ``f0`` [B, T] Hz (0 unvoiced), ``spec`` [B, n_fft/2+1, T],
    ``speaker`` [B]. Returns the decoded segment ``audio`` [B, 1, S*hop], its ``starts``, the latents
    for the KL term and, for so-vits-svc, the F0 predictor's output and target."""
    content, f0, linear, speaker = batch["content"], batch["f0"], batch["spec"], batch["speaker"]
    mask = torch.ones(content.shape[0], 1, content.shape[1], dtype=linear.dtype, device=linear.device)
    out: dict[str, Any] = {}
    if spec.family == "rvc":
        from workers.voice_conversion.models.rvc import f0_to_coarse

        g = net.emb_g(speaker).unsqueeze(-1)
        m_p, logs_p, _ = net.enc_p(content, f0_to_coarse(f0))
    else:
        from workers.voice_conversion.models.sovits import f0_to_coarse as sovits_coarse

        cfg = net.cfg
        g = net.emb_g(speaker[:, None]).transpose(1, 2)
        uv = (f0 > 0).to(linear.dtype)
        filled = batch["f0_filled"]
        x = net.pre(content.transpose(1, 2)) * mask + net.emb_uv(uv.long()).transpose(1, 2)
        if cfg.use_automatic_f0_prediction:
            lf0 = 2595.0 * torch.log10(1.0 + filled.unsqueeze(1) / 700.0) / 500
            voiced = uv.sum(dim=1, keepdim=True).clamp(min=1)
            means = (lf0[:, 0, :] * uv).sum(dim=1, keepdim=True) / voiced
            factor = torch.empty(lf0.shape[0], 1, device=lf0.device).uniform_(0.8, 1.2)
            norm_lf0 = (lf0 - means.unsqueeze(-1)) * factor.unsqueeze(-1) * mask
            out["pred_lf0"] = net.f0_decoder(x, norm_lf0, mask, g)
            out["lf0"] = lf0
        enc_p = net.enc_p
        h = x + enc_p.f0_emb(sovits_coarse(filled, cfg.version)).transpose(1, 2)
        h = enc_p.enc_(h * mask, mask)
        stats = enc_p.proj(h) * mask
        m_p, logs_p = torch.split(stats, enc_p.out_channels, dim=1)
        f0 = filled
    z, _m_q, logs_q = posterior(enc_q, linear, mask, g)
    z_p = flow_forward(net.flow, z, mask, g)
    size = spec.segment_frames
    z_slice, starts = random_segments(z, size)
    pitch = take_segments(f0, starts, size)
    out["audio"] = net.dec(z_slice, pitch, g)
    out.update(starts=starts, z_p=z_p, logs_q=logs_q, m_p=m_p, logs_p=logs_p, mask=mask)
    return out


def fill_f0(f0: np.ndarray) -> np.ndarray:
    """so-vits-svc's training F0: unvoiced frames interpolated between voiced neighbours (held at the ends)."""
    f0 = np.asarray(f0, np.float32)
    voiced = np.nonzero(f0 > 0)[0]
    if len(voiced) == 0:
        return np.zeros_like(f0)
    return np.interp(np.arange(len(f0)), voiced, f0[voiced]).astype(np.float32)


def param_count(*modules: nn.Module) -> int:
    return sum(int(math.prod(p.shape)) for m in modules for p in m.parameters())
