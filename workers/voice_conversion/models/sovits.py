"""so-vits-svc 4.0 and 4.1 synthesizer (``SynthesizerTrn``) for inference.

Content features (ContentVec 256 or 768 dims, one frame per hop of the model's audio) pass a
convolution (``pre``), get the voiced/unvoiced embedding (``emb_uv``), optionally a loudness embedding
(``emb_vol``, 4.1), and the coarse-F0 embedding inside the prior encoder (``enc_p``: a relative-position
transformer). The prior latent goes through the reversed coupling flow (``flow``) and the NSF-HiFiGAN
decoder (``dec``) with the speaker embedding (``emb_g``). 4.1 may add a transformer flow, shared flow
weights and depthwise-separable WaveNet convolutions; ``f0_decoder`` predicts F0 from the content
("auto predict F0"). The posterior encoder ``enc_q`` is training-only and is not built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workers.voice_conversion.models import vocoder
from workers.voice_conversion.models.layers import (
    CausalTransformer,
    CouplingFlow,
    PosteriorEncoder,
    RelativeEncoder,
    WaveNet,
    full_mask,
)
from workers.voice_conversion.models.vocoder import BodyRunner, HiFiGAN, generator_fields

F0_BINS = 256
F0_MIN = 50.0
F0_MAX = 1100.0
F0_MEL_MIN = 1127 * math.log(1 + F0_MIN / 700)
F0_MEL_MAX = 1127 * math.log(1 + F0_MAX / 700)

#: so-vits-svc 4.1 speech encoders this studio can feed: name -> (ContentVec layer, projected to 256).
SPEECH_ENCODERS = {
    "vec768l12": (12, False),
    "vec768l12-onnx": (12, False),
    "vec256l9": (9, True),
    "vec256l9-onnx": (9, True),
    "vec256l12-onnx": (12, True),
    "vec768l9-onnx": (9, False),
}
#: Model fields that only so-vits-svc 4.1 configs have.
V41_FIELDS = (
    "speech_encoder", "vol_embedding", "vocoder_name", "use_depthwise_conv", "use_automatic_f0_prediction",
    "flow_share_parameter", "n_flow_layer", "n_layers_trans_flow", "use_transformer_flow", "speaker_embedding",
)


@dataclass
class SoVitsConfig:
    """The model part of a so-vits-svc ``config.json`` plus the data fields inference needs."""

    version: str  # "4.0" or "4.1"
    spec_channels: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock: str
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]
    upsample_rates: list[int]
    upsample_initial_channel: int
    upsample_kernel_sizes: list[int]
    gin_channels: int
    ssl_dim: int
    n_speakers: int
    sampling_rate: int
    hop_length: int
    vol_embedding: bool = False
    vocoder_name: str = "nsf-hifigan"
    use_depthwise_conv: bool = False
    use_automatic_f0_prediction: bool = True
    flow_share_parameter: bool = False
    n_flow_layer: int = 4
    n_layers_trans_flow: int = 3
    use_transformer_flow: bool = False
    speech_encoder: str = "vec256l9"
    unit_interpolate_mode: str = "left"
    speakers: dict[str, int] = field(default_factory=dict)
    #: so-vits-svc-fork's decoder choice (``type_``); the original networks are "hifi-gan".
    decoder_type: str = "hifi-gan"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoVitsConfig:
        """Read a parsed ``config.json``; raises KeyError/TypeError/ValueError on a malformed one."""
        model = data["model"]
        data_part = data["data"]
        version = "4.1" if any(name in model for name in V41_FIELDS) else "4.0"
        ssl_dim = int(model.get("ssl_dim", 256))
        if version == "4.1":
            encoder = str(model.get("speech_encoder", "vec768l12"))
        else:
            # 4.0 used ContentVec layer 9 + final projection (256); 768-d 4.0 variants use the last layer
            encoder = "vec256l9" if ssl_dim == 256 else "vec768l12"
        mode = data_part.get("unit_interpolate_mode") or "left"
        return cls(
            version=version,
            spec_channels=int(data_part["filter_length"]) // 2 + 1,
            inter_channels=int(model["inter_channels"]),
            hidden_channels=int(model["hidden_channels"]),
            filter_channels=int(model["filter_channels"]),
            n_heads=int(model["n_heads"]),
            n_layers=int(model["n_layers"]),
            kernel_size=int(model["kernel_size"]),
            **generator_fields(model),
            gin_channels=int(model["gin_channels"]),
            ssl_dim=ssl_dim,
            n_speakers=int(model["n_speakers"]),
            sampling_rate=int(data_part["sampling_rate"]),
            hop_length=int(data_part["hop_length"]),
            vol_embedding=bool(model.get("vol_embedding", False)),
            vocoder_name=str(model.get("vocoder_name", "nsf-hifigan")),
            use_depthwise_conv=bool(model.get("use_depthwise_conv", False)),
            use_automatic_f0_prediction=bool(model.get("use_automatic_f0_prediction", True)),
            flow_share_parameter=bool(model.get("flow_share_parameter", False)),
            n_flow_layer=int(model.get("n_flow_layer", 4)),
            n_layers_trans_flow=int(model.get("n_layers_trans_flow", 3)),
            use_transformer_flow=bool(model.get("use_transformer_flow", False)),
            speech_encoder=encoder,
            unit_interpolate_mode=str(mode),
            speakers={str(k): int(v) for k, v in (data.get("spk") or {}).items()},
            decoder_type=str(model.get("type_", "hifi-gan")),
        )


def f0_to_coarse(f0: torch.Tensor, version: str) -> torch.Tensor:
    """F0 in Hz -> embedding index 1..255 on a mel scale between 50 and 1100 Hz (0 Hz -> 1).

    4.0 rounds half up; 4.1 rounds half to even (``torch.round``)."""
    f0_mel = 1127 * (1 + f0 / 700).log()
    if version == "4.0":
        f0_mel = f0_mel.clone()
        voiced = f0_mel > 0
        f0_mel[voiced] = (f0_mel[voiced] - F0_MEL_MIN) * (F0_BINS - 2) / (F0_MEL_MAX - F0_MEL_MIN) + 1
        f0_mel[f0_mel <= 1] = 1
        f0_mel[f0_mel > F0_BINS - 1] = F0_BINS - 1
        return (f0_mel + 0.5).long()
    scale = (F0_BINS - 2) / (F0_MEL_MAX - F0_MEL_MIN)
    offset = F0_MEL_MIN * scale - 1.0
    f0_mel = torch.where(f0_mel > 0, f0_mel * scale - offset, f0_mel)
    coarse = torch.round(f0_mel).long()
    coarse = coarse * (coarse > 0)
    coarse = coarse + (coarse < 1) * 1
    coarse = coarse * (coarse < F0_BINS)
    return coarse + (coarse >= F0_BINS) * (F0_BINS - 1)


class PriorEncoder(nn.Module):
    """``enc_p``: adds the coarse-F0 embedding, runs the relative transformer, projects to mean/log-std."""

    def __init__(self, cfg: SoVitsConfig) -> None:
        super().__init__()
        self.out_channels = cfg.inter_channels
        self.proj = nn.Conv1d(cfg.hidden_channels, cfg.inter_channels * 2, 1)
        self.f0_emb = nn.Embedding(F0_BINS, cfg.hidden_channels)
        self.enc_ = RelativeEncoder(
            cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers, cfg.kernel_size, window_size=4
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor, noise_scale: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        x = x + self.f0_emb(coarse).transpose(1, 2)
        x = self.enc_(x * mask, mask)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        noise = torch.randn(m.shape, generator=generator, dtype=m.dtype, device=m.device)
        return (m + noise * torch.exp(logs) * noise_scale) * mask


class F0Decoder(nn.Module):
    """Predicts normalised log-F0 from the content, the speaker and the input's normalised log-F0."""

    def __init__(self, cfg: SoVitsConfig) -> None:
        super().__init__()
        h = cfg.hidden_channels
        self.prenet = nn.Conv1d(h, h, 3, padding=1)
        self.decoder = CausalTransformer(h, cfg.filter_channels, cfg.n_heads, cfg.n_layers, cfg.kernel_size)
        self.proj = nn.Conv1d(h, 1, 1)
        self.f0_prenet = nn.Conv1d(1, h, 3, padding=1)
        self.cond = nn.Conv1d(cfg.gin_channels, h, 1)

    def forward(self, x: torch.Tensor, norm_f0: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x = x + self.cond(g)
        x = x + self.f0_prenet(norm_f0)
        x = self.prenet(x) * mask
        x = self.decoder(x * mask, mask)
        return self.proj(x) * mask


class SoVitsSynthesizer(nn.Module):
    def __init__(self, cfg: SoVitsConfig) -> None:
        super().__init__()
        if cfg.vocoder_name not in ("nsf-hifigan",):
            raise ValueError(f"unsupported vocoder {cfg.vocoder_name}")
        self.cfg = cfg
        self.emb_g = nn.Embedding(cfg.n_speakers, cfg.gin_channels)
        if cfg.vol_embedding:
            self.emb_vol = nn.Linear(1, cfg.hidden_channels)
        self.pre = nn.Conv1d(cfg.ssl_dim, cfg.hidden_channels, kernel_size=5, padding=2)
        self.enc_p = PriorEncoder(cfg)
        self.dec = HiFiGAN(
            cfg.inter_channels, cfg.resblock, cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
            cfg.upsample_rates, cfg.upsample_initial_channel, cfg.upsample_kernel_sizes, cfg.gin_channels,
            cfg.sampling_rate, flavour=f"sovits-{cfg.version}",
        )
        if cfg.use_transformer_flow:
            def make_net() -> nn.Module:
                return CausalTransformer(
                    cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers_trans_flow, 5,
                    gin_channels=cfg.gin_channels,
                )
            self.flow = CouplingFlow(
                cfg.inter_channels, cfg.hidden_channels, cfg.n_flow_layer, make_net, shared=cfg.flow_share_parameter
            )
        else:
            def make_net() -> nn.Module:
                return WaveNet(
                    cfg.hidden_channels, 5, 1, cfg.n_flow_layer, cfg.gin_channels, separable=cfg.use_depthwise_conv
                )
            self.flow = CouplingFlow(cfg.inter_channels, cfg.hidden_channels, 4, make_net,
                                     shared=cfg.flow_share_parameter)
        if cfg.use_automatic_f0_prediction:
            self.f0_decoder = F0Decoder(cfg)
        self.emb_uv = nn.Embedding(2, cfg.hidden_channels)

    def training_parts(self) -> dict[str, nn.Module]:
        """Checkpoint parts used only in training: ``enc_q`` (build it on the meta device for its keys)."""
        cfg = self.cfg
        return {
            "enc_q": PosteriorEncoder(
                cfg.spec_channels, cfg.inter_channels, cfg.hidden_channels, 5, 1, 16, cfg.gin_channels,
                separable=cfg.use_depthwise_conv,
            )
        }

    @torch.no_grad()
    def infer(
        self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, sid: torch.Tensor, *, noise_scale: float = 0.0,
        predict_f0: bool = False, vol: torch.Tensor | None = None, generator: torch.Generator | None = None,
        tail: int | None = None, body: BodyRunner | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``c`` [B, ssl_dim, T], ``f0`` [B, T] (unvoiced frames filled in), ``uv`` [B, T] 0/1, ``sid`` [B, 1]
        -> (audio [B, 1, T * hop], the F0 used [B, T])."""
        g = self.emb_g(sid).transpose(1, 2)
        mask = full_mask(c)
        x = self.pre(c) * mask + self.emb_uv(uv.long()).transpose(1, 2)
        if vol is not None and self.cfg.vol_embedding:
            x = x + self.emb_vol(vol[:, :, None]).transpose(1, 2)
        if predict_f0 and self.cfg.use_automatic_f0_prediction:
            lf0 = 2595.0 * torch.log10(1.0 + f0.unsqueeze(1) / 700.0) / 500
            voiced = uv.sum(dim=1, keepdim=True)
            voiced[voiced == 0] = 9999
            means = (lf0[:, 0, :] * uv).sum(dim=1, keepdim=True) / voiced
            norm_lf0 = (lf0 - means.unsqueeze(-1)) * mask
            pred_lf0 = self.f0_decoder(x, norm_lf0, mask, g)
            f0 = (700 * (torch.pow(10, pred_lf0 * 500 / 2595) - 1)).squeeze(1)
        z_p = self.enc_p(x, mask, f0_to_coarse(f0, self.cfg.version), noise_scale, generator)
        if tail is None:
            z = self.flow.reverse(z_p, mask, g)
            return self.dec(z * mask, f0, g, generator=generator), f0
        # only the last ``tail`` frames' audio: the flow runs on the tail and a margin (all of it when the
        # flow is a transformer, which sees every frame), the decoder on the tail (see HiFiGAN.decode_tail)
        margin = vocoder.DECODER_MARGIN + 8 * self.cfg.n_flow_layer  # 4 flows x n layers x 2 frames each side
        head = 0 if self.cfg.use_transformer_flow else max(0, z_p.shape[-1] - int(tail) - margin)
        z = self.flow.reverse(z_p[:, :, head:], mask[:, :, head:], g)
        return self.dec.decode_tail(z, f0, g, int(tail), generator=generator, body=body), f0
