"""A one-line text progress bar for the command line (no Qt)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


def count_text(done: int, total: int) -> str:
    return f"{done}/{total}"


class ProgressBar:
    """``label [#####-----] <detail>`` on one line, redrawn at most ten times a second.

    Callable as ``bar(done, total)`` from any thread; ``detail`` formats the numbers
    (a count by default; see :func:`workers.models.store.human_size` for bytes).
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        width: int = 30,
        detail: Callable[[int, int], str] = count_text,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.detail = detail
        self._last = 0.0
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            if 0 < done < total and now - self._last < 0.1:
                return
            self._last = now
            frac = min(1.0, done / total) if total else 1.0
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.detail(done, total)}")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False
