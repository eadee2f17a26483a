"""Torch inference networks of so-vits-svc 4.0/4.1 and RVC v1/v2 voice models (no Qt).

The modules keep the parameter names and shapes the published checkpoints use, so an original
``G_*.pth`` (so-vits-svc) or ``.pth`` (RVC) state dict loads into them with strict key matching.
Weight-normalised convolutions store ``weight_g``/``weight_v`` like ``torch.nn.utils.weight_norm``
does in those checkpoints; :func:`fuse_weight_norm` folds them into plain weights after loading.
"""

from __future__ import annotations

from workers.voice_conversion.models.layers import fuse_weight_norm

__all__ = ["fuse_weight_norm"]
