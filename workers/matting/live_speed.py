"""Which model live background removal uses, so that the live picture keeps up.

A big model (IS-Net, BiRefNet at 1024 px) cuts out a photo well but takes a second or more a frame on
a laptop's CPU. Live therefore measures how long a frame takes with each model, once per machine:

- :func:`measure_frame_ms`: a few frames at the live size, after a warm-up, on the device the model
  runs on (median milliseconds);
- :class:`SpeedCache`: the figures in a small JSON file in the model store folder
  (``live-speed.json``), keyed by the model file (name, size and modification time), the device, the
  threads and the frame size, so the next live start knows at once;
- :func:`plan_live`: on a CPU, live uses the chosen model when it keeps up (``LIVE_MIN_FPS``) and
  otherwise the fast one (U2-Net lite, which ships with the studio) when that is faster; the user may
  ask for the chosen model anyway. On a GPU, the chosen model.

No Qt here: the worker calls these on its thread; tests and benchmarks call them directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import Cancelled, UserError
from workers.matting.options import DEFAULT_MODEL

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_NAME",
    "FAST_MODEL",
    "LIVE_MIN_FPS",
    "LivePlan",
    "SpeedCache",
    "measure_frame_ms",
    "plan_live",
    "sample_frame",
]

#: Frames per second a live picture must reach on a CPU for a model to count as keeping up.
LIVE_MIN_FPS = 12.0
#: The model live falls back to on a CPU: small, fast, and installed with the studio.
FAST_MODEL = DEFAULT_MODEL
#: The cache of measured frame times, in the model store folder.
CACHE_NAME = "live-speed.json"
_CACHE_VERSION = 1

#: ``measure(model, run, size)``: milliseconds a frame of ``size`` (width, height) takes with
#: ``run(frame)``. The default is :func:`measure_frame_ms`; tests pass their own.
Measure = Callable[[str, Callable[[np.ndarray], Any], tuple[int, int]], float]


def sample_frame(width: int, height: int) -> np.ndarray:
    """A BGR frame of ``width`` x ``height`` that looks like a webcam picture to a model: a person-like
    bright shape on a textured background (the figures do not depend on the content, but a flat frame
    could take shortcuts in some kernels)."""
    import cv2

    rng = np.random.default_rng(7)
    frame = cv2.resize(rng.integers(20, 90, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8),
                       (width, height), interpolation=cv2.INTER_LINEAR)
    centre = (width // 2, height * 5 // 8)
    cv2.ellipse(frame, centre, (width // 6, height * 3 // 8), 0, 0, 360, (170, 190, 220), -1)
    cv2.circle(frame, (width // 2, height // 4), max(4, height // 8), (150, 170, 210), -1)
    return frame


def measure_frame_ms(
    run: Callable[[np.ndarray], Any],
    size: tuple[int, int],
    *,
    warmup: int = 1,
    frames: int = 5,
    budget_s: float = 2.0,
    clock: Callable[[], float] = time.perf_counter,
    stop: Callable[[], bool] | None = None,
) -> float:
    """The median milliseconds ``run(frame)`` takes on a frame of ``size`` (width, height).

    ``warmup`` untimed calls come first (the first run allocates), then up to ``frames`` timed ones;
    a slow model stops after ``budget_s`` seconds of timed runs (at least one), so that measuring a
    1024 px model on a small CPU costs a few seconds, once. ``stop()`` is asked between runs; when it
    says yes, :class:`~workers.errors.Cancelled` ends the measure (a closing window)."""
    frame = sample_frame(*size)

    def check() -> None:
        if stop is not None and stop():
            raise Cancelled()

    for _ in range(max(0, warmup)):
        check()
        run(frame)
    times: list[float] = []
    spent = 0.0
    while len(times) < max(1, frames):
        check()
        start = clock()
        run(frame)
        took = clock() - start
        times.append(took)
        spent += took
        if spent >= budget_s:
            break
    return statistics.median(times) * 1000.0


class SpeedCache:
    """Measured frame times in a JSON file; unreadable or unwritable files only cost a new measure."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @staticmethod
    def key(model_file: Path, device: str, threads: int, size: tuple[int, int]) -> str | None:
        """The file's name, size and modification time, the device, the threads and the frame size
        (None when the file cannot be read)."""
        try:
            st = Path(model_file).stat()
        except OSError:
            return None
        return f"{Path(model_file).name}|{st.st_size}|{st.st_mtime_ns}|{device}|{threads}|{size[0]}x{size[1]}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.info("ignoring the live speed cache %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str | None) -> float | None:
        if key is None:
            return None
        entry = self._read().get(key)
        ms = entry.get("ms") if isinstance(entry, dict) else None
        return float(ms) if isinstance(ms, (int, float)) and ms > 0 else None

    def put(self, key: str | None, ms: float, **extra: Any) -> None:
        if key is None:
            return
        entries = self._read()
        entries[key] = {"ms": round(float(ms), 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        data = {"version": _CACHE_VERSION, "entries": entries}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.info("could not write the live speed cache %s: %s", self.path, exc)
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class LivePlan:
    """The model live uses and why: the chosen model, its frame time, the model used and its own.

    Times are milliseconds a frame at the live size (None: not measured, as on a GPU)."""

    chosen: str
    chosen_label: str
    used: str
    used_label: str
    chosen_ms: float | None = None
    used_ms: float | None = None
    #: The fast model's id, label and time when it was considered (the alternative offered).
    fast: str = ""
    fast_label: str = ""
    fast_ms: float | None = None
    gpu: bool = False
    #: The user asked for the chosen model even though it does not keep up.
    anyway: bool = False
    min_fps: float = LIVE_MIN_FPS
    size: tuple[int, int] = (0, 0)
    #: Models measured for this plan (the others came from the cache).
    measured: tuple[str, ...] = field(default=())

    @property
    def switched(self) -> bool:
        return self.used != self.chosen

    @property
    def chosen_keeps_up(self) -> bool:
        return self.gpu or (self.chosen_ms is not None and 1000.0 / self.chosen_ms >= self.min_fps)


def fps_of(ms: float | None) -> float:
    return 1000.0 / ms if ms else 0.0


def plan_live(
    chosen: str,
    *,
    label: Callable[[str], str],
    frame_ms: Callable[[str], float],
    gpu: bool = False,
    fast: str | None = FAST_MODEL,
    anyway: bool = False,
    min_fps: float = LIVE_MIN_FPS,
    size: tuple[int, int] = (0, 0),
) -> LivePlan:
    """Choose the live model. ``frame_ms(model)`` measures (or looks up) a model's frame time and may
    raise :class:`UserError` for a model that cannot run (the fast one not installed, say)."""
    chosen_label = label(chosen)
    if gpu:
        return LivePlan(chosen, chosen_label, chosen, chosen_label, gpu=True, min_fps=min_fps, size=size)
    chosen_ms = frame_ms(chosen)
    plan = LivePlan(chosen, chosen_label, chosen, chosen_label, chosen_ms, chosen_ms, min_fps=min_fps, size=size,
                    anyway=anyway)
    if fast == chosen:
        return dataclasses.replace(plan, fast=chosen, fast_label=chosen_label, fast_ms=chosen_ms)
    if not fast or plan.chosen_keeps_up:
        return plan
    try:
        fast_ms = frame_ms(fast)
        fast_label = label(fast)
    except UserError as exc:
        log.info("live keeps %s: the fast model cannot run (%s)", chosen, exc)
        return plan
    faster = fast_ms < chosen_ms
    if anyway or not faster:
        return LivePlan(chosen, chosen_label, chosen, chosen_label, chosen_ms, chosen_ms, fast, fast_label, fast_ms,
                        anyway=anyway, min_fps=min_fps, size=size)
    return LivePlan(chosen, chosen_label, fast, fast_label, chosen_ms, fast_ms, fast, fast_label, fast_ms,
                    min_fps=min_fps, size=size)
