"""Building blocks of the VITS-family voice models (so-vits-svc, RVC): weight-normalised convolutions,
relative-position transformer encoders, WaveNet-style coupling flows and HiFi-GAN residual blocks.

Parameter names and shapes follow the published checkpoints (``weight_g``/``weight_v`` for weight norm,
``gamma``/``beta`` for layer norm, ``emb_rel_k``/``emb_rel_v`` for relative attention); the arithmetic
follows the published networks step by step so that outputs agree with them to float rounding.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: Negative slope of the leaky ReLUs inside the HiFi-GAN blocks.
LRELU_SLOPE = 0.1


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution."""
    return (kernel_size * dilation - dilation) // 2


def full_mask(x: torch.Tensor) -> torch.Tensor:
    """The ``[B, 1, T]`` mask of an unpadded batch (every frame valid)."""
    return torch.ones(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)


def gated_tanh(a: torch.Tensor, b: torch.Tensor, channels: int) -> torch.Tensor:
    """WaveNet gate: ``tanh(first half) * sigmoid(second half)`` of ``a + b``."""
    summed = a + b
    return torch.tanh(summed[:, :channels, :]) * torch.sigmoid(summed[:, channels:, :])


# ---- weight norm ------------------------------------------------------------------------------------


def _norm_weight(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    fused = getattr(torch, "_weight_norm", None)
    if fused is not None:
        return fused(v, g, 0)
    return v * (g / torch.norm_except_dim(v, 2, 0))


class _WeightNorm:
    """Mixin for a conv layer whose weight is ``weight_v * weight_g / ||weight_v||`` (norm over every
    dimension but the first), stored as the two parameters the original checkpoints hold."""

    _parameters: dict[str, nn.Parameter | None]

    def _split_weight(self) -> None:
        module: nn.Module = self  # type: ignore[assignment]
        weight = module.weight.detach()
        del module.weight
        module.weight_g = nn.Parameter(torch.norm_except_dim(weight, 2, 0))
        module.weight_v = nn.Parameter(weight.clone())

    def _weight(self) -> torch.Tensor:
        if "weight_v" in self._parameters:
            return _norm_weight(self.weight_v, self.weight_g)  # type: ignore[attr-defined]
        return self.weight  # type: ignore[attr-defined]

    def fuse(self) -> None:
        """Replace ``weight_g``/``weight_v`` by the plain weight they describe (for inference)."""
        if "weight_v" not in self._parameters:
            return
        module: nn.Module = self  # type: ignore[assignment]
        with torch.no_grad():
            weight = _norm_weight(module.weight_v, module.weight_g).detach().clone()
        del module.weight_g
        del module.weight_v
        module.weight = nn.Parameter(weight, requires_grad=False)


class WNConv1d(nn.Conv1d, _WeightNorm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._weight(), self.bias)


class WNConvTranspose1d(nn.ConvTranspose1d, _WeightNorm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.conv_transpose1d(
            x, self._weight(), self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )


def fuse_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-normalised layer of ``module`` into a plain weight (after loading a checkpoint)."""
    for sub in module.modules():
        if isinstance(sub, _WeightNorm):
            sub.fuse()
    return module


class SeparableConv1d(nn.Module):
    """Depthwise-separable convolution (so-vits-svc 4.1 ``use_depthwise_conv``): a per-channel conv
    (``depth_conv``) then a 1x1 mix (``point_conv``), each optionally weight-normalised."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, dilation: int = 1, padding: int = 0,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        conv = WNConv1d if weight_norm else nn.Conv1d
        self.depth_conv = conv(in_channels, in_channels, kernel_size, groups=in_channels, dilation=dilation,
                               padding=padding)
        self.point_conv = conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


def init_normal(module: nn.Module, std: float = 0.01) -> None:
    """HiFi-GAN's initialisation (normal, small std) for every conv weight under ``module``."""
    for sub in module.modules():
        if isinstance(sub, _WeightNorm) and "weight_v" in sub._parameters:
            with torch.no_grad():
                sub.weight_v.normal_(0.0, std)  # type: ignore[attr-defined]
                sub.weight_g.copy_(torch.norm_except_dim(sub.weight_v, 2, 0))  # type: ignore[attr-defined]
        elif isinstance(sub, (nn.Conv1d, nn.ConvTranspose1d)):
            with torch.no_grad():
                sub.weight.normal_(0.0, std)


# ---- normalisation and attention ----------------------------------------------------------------------


class LayerNorm(nn.Module):
    """Layer norm over the channel axis of a ``[B, C, T]`` tensor."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``[B, C, T]`` tensors, with optional relative-position embeddings
    (a shared window of ``2 * window_size + 1`` positions for keys and values, as in VITS)."""

    def __init__(self, channels: int, out_channels: int, n_heads: int, *, window_size: int | None = None) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError("channels must be a multiple of n_heads")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def _relative(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """Embeddings for the relative positions ``-(length-1) .. length-1`` (zero outside the window)."""
        assert self.window_size is not None
        offsets = torch.arange(2 * length - 1, device=table.device) - (length - 1)
        inside = (offsets.abs() <= self.window_size).to(table.dtype)
        rows = (offsets + self.window_size).clamp(0, 2 * self.window_size)
        return table[:, rows] * inside[None, :, None]

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.conv_q(x)
        k = self.conv_k(c)
        v = self.conv_v(c)
        b, d, t_s = k.shape
        t_t = q.shape[2]
        h, kc = self.n_heads, self.k_channels
        q = q.view(b, h, kc, t_t).transpose(2, 3)
        k = k.view(b, h, kc, t_s).transpose(2, 3)
        v = v.view(b, h, kc, t_s).transpose(2, 3)
        scaled = q / math.sqrt(kc)
        scores = torch.matmul(scaled, k.transpose(-2, -1))
        if self.window_size is not None:
            length = t_s
            rel_k = self._relative(self.emb_rel_k, length)  # [1, 2L-1, kc]
            rel_logits = torch.matmul(scaled, rel_k.unsqueeze(0).transpose(-2, -1))  # [b, h, L, 2L-1]
            # score of query i against key j sits at relative column (L - 1) + j - i
            pos = torch.arange(length, device=x.device)
            cols = (length - 1) + pos[None, :] - pos[:, None]
            scores = scores + rel_logits.gather(-1, cols.expand(b, h, length, length))
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        weights = F.softmax(scores, dim=-1)
        out = torch.matmul(weights, v)
        if self.window_size is not None:
            length = t_s
            pos = torch.arange(length, device=x.device)
            keys = pos[:, None] + torch.arange(2 * length - 1, device=x.device)[None, :] - (length - 1)
            valid = ((keys >= 0) & (keys < length)).to(weights.dtype)
            rel_weights = weights.gather(-1, keys.clamp(0, length - 1).expand(b, h, length, 2 * length - 1))
            rel_weights = rel_weights * valid
            rel_v = self._relative(self.emb_rel_v, length)
            out = out + torch.matmul(rel_weights, rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(b, d, t_t)
        return self.conv_o(out)


class FFN(nn.Module):
    """Position-wise feed-forward block of two convolutions (same or causal padding)."""

    def __init__(
        self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int, *, causal: bool = False
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.causal = causal
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return x
        if self.causal:
            return F.pad(x, (self.kernel_size - 1, 0))
        return F.pad(x, ((self.kernel_size - 1) // 2, self.kernel_size // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * mask)))
        x = self.conv_2(self._pad(x * mask))
        return x * mask


class RelativeEncoder(nn.Module):
    """Post-norm transformer encoder with relative-position self-attention (VITS ``attentions.Encoder``)."""

    def __init__(
        self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
        *, window_size: int,
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(int(n_layers)):
            self.attn_layers.append(
                MultiHeadAttention(hidden_channels, hidden_channels, n_heads, window_size=window_size)
            )
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size))
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + attn(x, x, attn_mask))
            x = norm_2(x + ffn(x, mask))
        return x * mask


class CausalTransformer(nn.Module):
    """Causal self-attention stack (so-vits-svc ``attentions.FFT``): used by the F0 predictor and, with a
    speaker condition (``cond_pre``/``cond_layer``), as the coupling network of transformer flows."""

    def __init__(
        self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
        *, gin_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conditioned = gin_channels is not None
        if gin_channels is not None:
            self.cond_pre = nn.Conv1d(hidden_channels, 2 * hidden_channels, 1)
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        self.self_attn_layers = nn.ModuleList()
        self.norm_layers_0 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        for _ in range(n_layers):
            self.self_attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads))
            self.norm_layers_0.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, causal=True))
            self.norm_layers_1.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        if g is not None:
            g = self.cond_layer(g)
        length = mask.shape[2]
        causal = torch.tril(torch.ones(length, length, dtype=x.dtype, device=x.device))[None, None]
        x = x * mask
        h = self.hidden_channels
        for i, (attn, norm_0, ffn, norm_1) in enumerate(
            zip(self.self_attn_layers, self.norm_layers_0, self.ffn_layers, self.norm_layers_1, strict=True)
        ):
            if g is not None:
                x = gated_tanh(self.cond_pre(x), g[:, i * 2 * h : (i + 1) * 2 * h, :], h)
            x = norm_0(x + attn(x, x, causal))
            x = norm_1(x + ffn(x, mask))
        return x * mask


# ---- WaveNet and flows ----------------------------------------------------------------------------------


class WaveNet(nn.Module):
    """Non-causal WaveNet of gated dilated convolutions with a global (speaker) condition (VITS ``WN``)."""

    def __init__(
        self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int = 0,
        *, separable: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        if gin_channels:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = same_padding(kernel_size, dilation)
            if separable:
                layer: nn.Module = SeparableConv1d(
                    hidden_channels, 2 * hidden_channels, kernel_size, dilation=dilation, padding=padding
                )
            else:
                layer = WNConv1d(hidden_channels, 2 * hidden_channels, kernel_size, dilation=dilation, padding=padding)
            self.in_layers.append(layer)
            out = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, out, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden_channels
        output = torch.zeros_like(x)
        if g is not None:
            g = self.cond_layer(g)
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            x_in = in_layer(x)
            g_l = g[:, i * 2 * h : (i + 1) * 2 * h, :] if g is not None else torch.zeros_like(x_in)
            acts = res_skip(gated_tanh(x_in, g_l, h))
            if i < self.n_layers - 1:
                x = (x + acts[:, :h, :]) * mask
                output = output + acts[:, h:, :]
            else:
                output = output + acts
        return output * mask


class CouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half of the channels is shifted by a network of the first."""

    def __init__(self, channels: int, hidden_channels: int, net: nn.Module) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden_channels, 1)
        self.enc = net
        self.post = nn.Conv1d(hidden_channels, self.half, 1)

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], 1)
        h = self.enc(self.pre(x0) * mask, mask, g=g)
        m = self.post(h) * mask
        x1 = (x1 - m) * mask
        return torch.cat([x0, x1], 1)


class Flip(nn.Module):
    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """``n_flows`` coupling layers, each followed by a channel flip; run in reverse at inference.

    With ``shared`` one coupling network (``wn``) serves every layer, as so-vits-svc 4.1's
    ``flow_share_parameter`` does (its weights then appear under ``wn`` and under every layer)."""

    def __init__(self, channels: int, hidden_channels: int, n_flows: int, make_net, *, shared: bool = False) -> None:
        super().__init__()
        self.wn = make_net() if shared else None
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            net = self.wn if self.wn is not None else make_net()
            self.flows.append(CouplingLayer(channels, hidden_channels, net))
            self.flows.append(Flip())

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for flow in reversed(self.flows):
            x = flow.reverse(x, mask, g)
        return x


class PosteriorEncoder(nn.Module):
    """The training-only spectrogram encoder (``enc_q``): built only to know its checkpoint keys and
    shapes (on the meta device) and for test fixtures; inference never runs it."""

    def __init__(
        self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int,
        n_layers: int, gin_channels: int = 0, *, separable: bool = False,
    ) -> None:
        super().__init__()
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels, separable=separable)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)


# ---- HiFi-GAN residual blocks ---------------------------------------------------------------------------


class ResBlock1(nn.Module):
    """Three pairs of (dilated, plain) convolutions with leaky-ReLU pre-activation and residuals."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation[:3]
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=1, padding=same_padding(kernel_size, 1))
            for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """Two dilated convolutions with leaky-ReLU pre-activation and residuals."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation[:2]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


def make_resblock(kind: str, channels: int, kernel_size: int, dilation: list[int] | tuple[int, ...]) -> nn.Module:
    return ResBlock1(channels, kernel_size, tuple(dilation)) if str(kind) == "1" else ResBlock2(
        channels, kernel_size, tuple(dilation)
    )
