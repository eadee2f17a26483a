"""The VITS losses RVC and so-vits-svc train with: least-squares GAN, feature matching, mel L1, KL."""

from __future__ import annotations

import torch


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real outputs pushed to 1, generated ones to 0, summed over the discriminators."""
    total = torch.zeros((), device=real[0].device)
    for r, f in zip(real, fake, strict=True):
        total = total + torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2)
    return total


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN for the generator: its outputs judged as real (1)."""
    total = torch.zeros((), device=fake[0].device)
    for f in fake:
        total = total + torch.mean((1 - f.float()) ** 2)
    return total


def feature_loss(real_maps: list[list[torch.Tensor]], fake_maps: list[list[torch.Tensor]]) -> torch.Tensor:
    """Feature matching: L1 between the discriminators' inner activations on real and generated audio (x2)."""
    total = torch.zeros((), device=real_maps[0][0].device)
    for reals, fakes in zip(real_maps, fake_maps, strict=True):
        for r, f in zip(reals, fakes, strict=True):
            total = total + torch.mean(torch.abs(r.float().detach() - f.float()))
    return total * 2


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """KL between the posterior (pushed through the flow) and the prior, per valid frame."""
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)
