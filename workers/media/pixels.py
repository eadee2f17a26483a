"""Pixel arithmetic that every tool shares: a single-channel mask checked against an image, and
alpha blending of two BGR images. numpy only (no Qt, no model runtime).
"""

from __future__ import annotations

import numpy as np


def mask2d(alpha: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An HxW uint8 mask for an image of ``shape``: a trailing channel dropped, values clipped to 0..255.

    ValueError when the mask and the image differ in size.
    """
    if alpha.ndim == 3:
        alpha = alpha[..., 0]
    if alpha.shape != shape[:2]:
        raise ValueError(f"the mask is {alpha.shape[1]}x{alpha.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if alpha.dtype != np.uint8:
        alpha = np.clip(alpha, 0, 255).astype(np.uint8)
    return alpha


def blend(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``fg * a + bg * (1 - a)`` for BGR uint8 images of the same size, rounded."""
    alpha = mask2d(alpha, fg.shape)
    a = alpha[..., None].astype(np.uint16)
    out = fg.astype(np.uint16) * a
    out += bg.astype(np.uint16) * (255 - a)
    # Exact rounding of out / 255 in 16 bits: (t + (t >> 8)) >> 8 with t = out + 128.
    out += 128
    out += out >> 8
    out >>= 8
    return out.astype(np.uint8)
