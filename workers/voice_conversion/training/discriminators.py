"""The multi-period discriminator with its scale discriminator, as RVC v2 (``MultiPeriodDiscriminatorV2``:
periods 2, 3, 5, 7, 11, 17, 23, 37) and so-vits-svc 4.1 (periods 2, 3, 5, 7, 11) train with it.

Key names and shapes are the originals' (``discriminators.<i>.convs.<j>.weight_g/weight_v/bias``,
``conv_post``), so a published ``D_0.pth`` / ``f0D*.pth`` loads into the full-width network. Smaller
sizes divide every width by ``divisor`` (the grouped convolutions keep as many groups as still divide).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from workers.voice_conversion.models.layers import LRELU_SLOPE, WNConv1d, _WeightNorm

#: Scale discriminator: (in, out, kernel, stride, groups, padding) of the originals' convs.
_SCALE = (
    (1, 16, 15, 1, 1, 7),
    (16, 64, 41, 4, 4, 20),
    (64, 256, 41, 4, 16, 20),
    (256, 1024, 41, 4, 64, 20),
    (1024, 1024, 41, 4, 256, 20),
    (1024, 1024, 5, 1, 1, 2),
)
_PERIOD_WIDTHS = (1, 32, 128, 512, 1024, 1024)


class WNConv2d(nn.Conv2d, _WeightNorm):
    """2-D convolution with its weight stored as ``weight_g``/``weight_v`` (weight norm over dim 0)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._weight(), self.bias)


def _width(channels: int, divisor: int) -> int:
    return channels if channels == 1 else max(1, channels // divisor)


class ScaleDiscriminator(nn.Module):
    def __init__(self, divisor: int = 1) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for c_in, c_out, k, s, groups, pad in _SCALE:
            i, o = _width(c_in, divisor), _width(c_out, divisor)
            g = math.gcd(math.gcd(groups, i), o)
            self.convs.append(WNConv1d(i, o, k, s, groups=g, padding=pad))
        self.conv_post = WNConv1d(_width(1024, divisor), 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, divisor: int = 1, kernel_size: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        widths = [_width(c, divisor) for c in _PERIOD_WIDTHS]
        pad = (kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            WNConv2d(widths[i], widths[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), padding=(pad, 0))
            for i in range(5)
        )
        self.conv_post = WNConv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            extra = self.period - t % self.period
            x = F.pad(x, (0, extra), "reflect")
            t += extra
        x = x.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """A scale discriminator followed by one period discriminator per period."""

    def __init__(self, periods: tuple[int, ...], divisor: int = 1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [ScaleDiscriminator(divisor), *(PeriodDiscriminator(p, divisor) for p in periods)]
        )

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        real_out, fake_out, real_maps, fake_maps = [], [], [], []
        for disc in self.discriminators:
            r, r_map = disc(real)
            f, f_map = disc(fake)
            real_out.append(r)
            fake_out.append(f)
            real_maps.append(r_map)
            fake_maps.append(f_map)
        return real_out, fake_out, real_maps, fake_maps
