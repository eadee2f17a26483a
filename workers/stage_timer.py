"""Per-stage milliseconds and items per second of a worker, for its ``stats`` signal (no Qt)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class StageTimer:
    """Collects per-stage milliseconds and items per second for the ``stats`` signal."""

    def __init__(self, window: int = 30) -> None:
        self._stamps: deque[float] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = {}
        self._latency: deque[float] = deque(maxlen=window)
        self._window = window

    def add_stage(self, name: str, ms: float) -> None:
        self._stages.setdefault(name, deque(maxlen=self._window)).append(ms)

    def add_item(self, latency_ms: float | None = None) -> None:
        self._stamps.append(time.monotonic())
        if latency_ms is not None:
            self._latency.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        fps = 0.0
        if len(self._stamps) >= 2:
            span = self._stamps[-1] - self._stamps[0]
            fps = (len(self._stamps) - 1) / span if span > 0 else 0.0
        out: dict[str, Any] = {
            "fps": round(fps, 2),
            "stages_ms": {k: round(sum(v) / len(v), 2) for k, v in self._stages.items() if v},
        }
        if self._latency:
            out["latency_ms"] = round(sum(self._latency) / len(self._latency), 2)
        return out
