"""Mel filter banks for the voice models' spectrogram front ends, in numpy.

:func:`mel_filter_bank` gives the matrix that projects the ``1 + n_fft // 2`` bins of a one-sided FFT
onto ``n_mels`` triangular mel bands: band ``i`` rises from mel point ``i`` to a peak at point ``i + 1``
and falls to zero at point ``i + 2``, the ``n_mels + 2`` points evenly spaced on the mel scale from
``fmin`` to ``fmax``. Its values are those of the filter banks the published RVC, RMVPE and
so-vits-svc models were trained with (librosa's ``filters.mel`` with ``norm="slaney"``), float32:

- the mel scale is Slaney's (linear below 1 kHz at 200/3 Hz per mel, logarithmic above with 27 mels
  per factor 6.4) or, with ``htk=True``, HTK's ``2595 * log10(1 + f / 700)``;
- each triangle is scaled by ``2 / (upper edge - lower edge)`` in Hz, so every band has about the
  same area (Slaney's normalisation).
"""

from __future__ import annotations

import math

import numpy as np

#: Slaney's scale: linear up to 1 kHz (200/3 Hz per mel), then 27 mels per factor 6.4 in frequency.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Frequencies in Hz on the mel scale (Slaney's, or HTK's with ``htk=True``)."""
    f = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    high = f >= _BREAK_HZ
    logs = np.log(np.where(high, f, _BREAK_HZ) / _BREAK_HZ)
    return np.where(high, _BREAK_MEL + logs / _LOG_STEP, f / _LINEAR_HZ_PER_MEL)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    high = m >= _BREAK_MEL
    return np.where(high, _BREAK_HZ * np.exp(_LOG_STEP * (m - _BREAK_MEL)), _LINEAR_HZ_PER_MEL * m)


def mel_filter_bank(
    *,
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
) -> np.ndarray:
    """The ``(n_mels, 1 + n_fft // 2)`` float32 mel filter bank, area-normalised (Slaney); ``fmax`` defaults
    to the Nyquist frequency ``sr / 2``."""
    if fmax is None:
        fmax = float(sr) / 2
    n_mels = int(n_mels)
    bins = np.fft.rfftfreq(int(n_fft), d=1.0 / sr)
    points = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    widths = np.diff(points)
    offsets = points[:, None] - bins[None, :]  # (n_mels + 2, bins): how far each point lies above each bin
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    # rounded to float32 before the area scaling, as the reference banks were
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    scale = 2.0 / (points[2:] - points[:-2])
    return (triangles * scale[:, None]).astype(np.float32)
