"""The microphone's clean-up before conversion: RNNoise noise suppression (workers/media/rnnoise.py)
and a noise gate.

:class:`NoiseGate` mutes what stays under a threshold: it opens within ``attack`` when the level
rises above it, stays open ``hold`` after it falls back, then closes over ``release``.

No Qt here.
"""

from __future__ import annotations

import numpy as np

from workers.media.rnnoise import NoiseSuppressor

__all__ = ["NoiseGate", "NoiseSuppressor"]


class NoiseGate:
    """Mutes a mono stream while it stays under ``threshold_db`` (dBFS), with attack, hold and release."""

    def __init__(
        self,
        samplerate: int,
        threshold_db: float = -45.0,
        *,
        attack: float = 0.005,
        hold: float = 0.15,
        release: float = 0.08,
    ) -> None:
        self.samplerate = int(samplerate)
        self.threshold_db = float(threshold_db)
        self.attack, self.hold, self.release = float(attack), float(hold), float(release)
        self.gain = 0.0
        self._held = 0.0
        self._chunk = max(1, self.samplerate // 200)  # 5 ms

    @property
    def is_open(self) -> bool:
        return self.gain > 0.5

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, np.float32).reshape(-1)
        out = np.empty_like(x)
        threshold = 10.0 ** (self.threshold_db / 20.0)
        step = self._chunk / self.samplerate
        for start in range(0, len(x), self._chunk):
            seg = x[start : start + self._chunk]
            rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0
            if rms >= threshold:
                target, self._held = 1.0, self.hold
            elif self._held > 0:
                target, self._held = 1.0, self._held - step
            else:
                target = 0.0
            rate = step / max(self.attack if target > self.gain else self.release, 1e-4)
            new = min(target, self.gain + rate) if target > self.gain else max(target, self.gain - rate)
            out[start : start + len(seg)] = seg * np.linspace(self.gain, new, len(seg), dtype=np.float32)
            self.gain = new
        return out
