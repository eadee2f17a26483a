"""Closed-form alpha matting (Levin, Lischinski and Weiss, 2008) in numpy and SciPy, and a fast
estimate of the foreground colours (Forte and Pitié's blur fusion, 2021) in OpenCV.

The trimap comes from the model's mask as rembg makes it: sure foreground above one threshold, sure
background below another, both eroded by a square; the rest is unknown. Only the unknown pixels are
solved for: the matting Laplacian is built for the 3x3 windows that touch an unknown pixel (all of
them at once, in blocks, with numpy's batched 3x3 inverse), the known pixels are fixed at 0 or 1, and
the sparse system ``L_UU a_U = -L_UK a_K`` is solved directly (:func:`_solve`). Nothing is
compiled on first use, so the first cut-out with alpha matting costs what every later one costs.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The Laplacian's regularisation (rembg and pymatting use the same): larger values smooth the alpha.
EPSILON = 1e-7
#: Windows per block when the Laplacian is built (about 80 MB of temporary arrays per block).
_BLOCK = 40_000
#: The 3x3 window's offsets (rows, then columns), in the order of the window's pixels.
_DY, _DX = np.divmod(np.arange(9), 3)
_DY, _DX = _DY - 1, _DX - 1


class NothingToSolve(ValueError):
    """The trimap has no unknown pixel, or no sure foreground or background to anchor the alpha."""


def trimap_from_mask(mask: np.ndarray, foreground_threshold: int, background_threshold: int, erode: int) -> np.ndarray:
    """rembg's trimap: 255 where the mask is above ``foreground_threshold``, 0 below
    ``background_threshold``, both regions eroded by an ``erode`` x ``erode`` square, 128 elsewhere."""
    sure_fg = (mask > foreground_threshold).astype(np.uint8)
    sure_bg = (mask < background_threshold).astype(np.uint8)
    size = max(int(erode), 0)
    # No size: one step of a plus-shaped element (SciPy's binary_erosion default, as rembg calls it).
    kernel = np.ones((size, size), np.uint8) if size > 0 else cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    # The foreground erodes against a background border, the background against a foreground one.
    sure_fg = cv2.erode(sure_fg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    sure_bg = cv2.erode(sure_bg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    trimap = np.full(mask.shape, 128, np.uint8)
    trimap[sure_fg > 0] = 255
    trimap[sure_bg > 0] = 0
    return trimap


def _window_centres(unknown: np.ndarray) -> np.ndarray:
    """Flat indices of the interior pixels whose 3x3 window holds at least one unknown pixel."""
    touched = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    touched[0, :] = touched[-1, :] = False
    touched[:, 0] = touched[:, -1] = False
    return np.flatnonzero(touched)


def _laplacian_blocks(image: np.ndarray, centres: np.ndarray, epsilon: float):
    """For blocks of window centres: the 9 flat pixel indices of each window and the 9x9 Laplacian
    entries it adds (``delta_ij - (1 + (I_i - mu)^T (Sigma + eps/9)^-1 (I_j - mu)) / 9``)."""
    w = image.shape[1]
    flat = image.reshape(-1, 3)
    offsets = (_DY * w + _DX).astype(np.int64)
    eye3 = np.eye(3) * (epsilon / 9.0)
    eye9 = np.eye(9)
    for start in range(0, len(centres), _BLOCK):
        idx = centres[start : start + _BLOCK, None] + offsets[None, :]  # (n, 9)
        colours = flat[idx]  # (n, 9, 3)
        centred = colours - colours.mean(axis=1, keepdims=True)
        cov = np.matmul(centred.transpose(0, 2, 1), centred) / 9.0 + eye3
        projected = np.matmul(np.matmul(centred, np.linalg.inv(cov)), centred.transpose(0, 2, 1))
        yield idx, eye9 - (1.0 + projected) / 9.0


def estimate_alpha(image: np.ndarray, trimap: np.ndarray, *, epsilon: float = EPSILON) -> np.ndarray:
    """Alpha (float64, 0..1) for an RGB/BGR ``image`` scaled to 0..1 and a uint8 trimap
    (0 background, 255 foreground, anything else unknown)."""
    from scipy import sparse

    h, w = trimap.shape
    fg = trimap >= 230  # pymatting's split at 0.9 and 0.1 of the 0..1 trimap
    bg = trimap <= 25
    unknown = ~(fg | bg)
    n_unknown = int(unknown.sum())
    if n_unknown == 0:
        raise NothingToSolve("the mask has no uncertain edge to refine")
    if not fg.any() or not bg.any():
        raise NothingToSolve("the mask has no sure foreground or no sure background")
    # Unknown pixels get rows 0..n-1; a known pixel is -1 (foreground) or -2 (background).
    slot = np.where(fg, -1, -2).ravel().astype(np.int32)
    slot[unknown.ravel()] = np.arange(n_unknown, dtype=np.int32)
    rows, cols, vals = [], [], []
    rhs = np.zeros(n_unknown)
    for idx, values in _laplacian_blocks(image.astype(np.float64, copy=False), _window_centres(unknown), epsilon):
        where = slot[idx]  # (n, 9)
        row = np.repeat(where, 9, axis=1).ravel()
        col = np.tile(where, (1, 9)).ravel()
        val = values.ravel()
        keep = row >= 0
        row, col, val = row[keep], col[keep], val[keep]
        inside = col >= 0
        rows.append(row[inside])
        cols.append(col[inside])
        vals.append(val[inside])
        to_fg = col == -1
        rhs -= np.bincount(row[to_fg], weights=val[to_fg], minlength=n_unknown)
    matrix = sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_unknown, n_unknown)
    ).tocsc()
    del rows, cols, vals
    alpha = fg.astype(np.float64).ravel()
    alpha[unknown.ravel()] = _solve(matrix, rhs)
    return np.clip(alpha, 0.0, 1.0).reshape(h, w)


def _solve(matrix, rhs: np.ndarray) -> np.ndarray:
    """``matrix x = rhs`` for the unknown block, solved directly. The block is symmetric positive
    definite and the unknown pixels form a thin band along the edge, so a sparse LU in symmetric mode
    (minimum-degree ordering, no pivoting) stays small; unlike conjugate gradients on an incomplete
    factor it cannot stall on a large image."""
    from scipy.sparse import linalg

    factor = linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return factor.solve(rhs)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The foreground colours (0..1, the image's channel order) behind ``alpha``: two passes of blur
    fusion, a wide one that finds the background's colours and a narrow one that sharpens."""
    img = image.astype(np.float32, copy=False)
    a = alpha.astype(np.float32, copy=False)[..., None]
    fg, bg = _blur_fusion(img, img, img, a, 91)
    fg, _ = _blur_fusion(img, fg, bg, a, 7)
    return fg


def _blur_fusion(image, fg, bg, alpha, size):
    blurred_alpha = cv2.blur(alpha, (size, size))[..., None]
    blurred_fg = cv2.blur(fg * alpha, (size, size)) / (blurred_alpha + 1e-5)
    blurred_bg = cv2.blur(bg * (1.0 - alpha), (size, size)) / ((1.0 - blurred_alpha) + 1e-5)
    fg = blurred_fg + alpha * (image - alpha * blurred_fg - (1.0 - alpha) * blurred_bg)
    return np.clip(fg, 0.0, 1.0), blurred_bg
