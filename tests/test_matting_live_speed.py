"""Which model live uses: the measure, the cache of frame times and the choice (no Qt, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workers.errors import Cancelled, UserError
from workers.matting.live_speed import LIVE_MIN_FPS, SpeedCache, measure_frame_ms, plan_live

LABELS = {"isnet": "IS-Net", "u2netp": "U2-Net lite", "u2net": "U2-Net"}


def plan(times: dict[str, float], chosen: str, **kwargs: object):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def frame_ms(model: str) -> float:
        asked.append(model)
        if model not in times:
            raise UserError(f"{model} is not installed")
        return times[model]

    result = plan_live(chosen, label=lambda m: LABELS.get(m, m), frame_ms=frame_ms, fast="u2netp", **kwargs)
    return result, asked


def test_on_a_cpu_a_slow_model_gives_way_to_the_fast_one() -> None:
    result, asked = plan({"isnet": 380.0, "u2netp": 41.0}, "isnet")
    assert result.switched and result.used == "u2netp" and result.used_label == "U2-Net lite"
    assert result.chosen_ms == 380.0 and result.used_ms == 41.0 and not result.chosen_keeps_up
    assert asked == ["isnet", "u2netp"]


def test_a_model_that_keeps_up_is_used_and_the_fast_one_is_not_measured() -> None:
    result, asked = plan({"u2net": 1000.0 / (LIVE_MIN_FPS + 1), "u2netp": 20.0}, "u2net")
    assert not result.switched and result.used == "u2net" and result.chosen_keeps_up
    assert asked == ["u2net"]


def test_anyway_keeps_the_chosen_model_and_still_knows_the_alternative() -> None:
    result, _ = plan({"isnet": 380.0, "u2netp": 41.0}, "isnet", anyway=True)
    assert result.used == "isnet" and result.anyway and result.fast_ms == 41.0 and result.fast_label == "U2-Net lite"


def test_on_a_gpu_the_chosen_model_is_used_without_measuring() -> None:
    result, asked = plan({"isnet": 380.0, "u2netp": 41.0}, "isnet", gpu=True)
    assert result.used == "isnet" and result.gpu and asked == [] and result.chosen_keeps_up


def test_without_the_fast_model_or_when_it_is_slower_the_chosen_one_stays() -> None:
    result, _ = plan({"isnet": 380.0}, "isnet")
    assert result.used == "isnet" and result.fast_ms is None
    result, _ = plan({"isnet": 380.0, "u2netp": 500.0}, "isnet")
    assert result.used == "isnet" and result.fast_ms == 500.0
    result, asked = plan({"u2netp": 400.0}, "u2netp")
    assert result.used == "u2netp" and asked == ["u2netp"]


def test_the_measure_warms_up_then_takes_the_median_and_stops_early_for_a_slow_model() -> None:
    now = [0.0]
    sizes: list[tuple[int, ...]] = []

    def run(frame: np.ndarray, cost: float) -> None:
        sizes.append(frame.shape)
        now[0] += cost

    ms = measure_frame_ms(lambda f: run(f, 0.05), (640, 360), warmup=1, frames=5, clock=lambda: now[0])
    assert ms == pytest.approx(50.0) and len(sizes) == 6 and sizes[0] == (360, 640, 3)
    sizes.clear()
    ms = measure_frame_ms(lambda f: run(f, 3.0), (640, 360), warmup=1, frames=5, budget_s=2.0, clock=lambda: now[0])
    assert ms == pytest.approx(3000.0) and len(sizes) == 2  # warm-up + one timed frame
    with pytest.raises(Cancelled):
        measure_frame_ms(lambda f: run(f, 0.01), (64, 36), stop=lambda: True)


def test_the_cache_is_keyed_by_the_file_device_threads_and_size(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x" * 10)
    cache = SpeedCache(tmp_path / "store" / "live-speed.json")
    key = SpeedCache.key(model, "cpu", 4, (640, 360))
    assert cache.get(key) is None
    cache.put(key, 123.4, model="Model")
    assert cache.get(key) == pytest.approx(123.4)
    data = json.loads(cache.path.read_text())
    assert data["version"] == 1 and next(iter(data["entries"].values()))["model"] == "Model"
    for other in (SpeedCache.key(model, "cuda", 4, (640, 360)), SpeedCache.key(model, "cpu", 2, (640, 360)),
                  SpeedCache.key(model, "cpu", 4, (1280, 720))):
        assert other != key and cache.get(other) is None
    model.write_bytes(b"y" * 11)  # the file changed: measured again
    assert cache.get(SpeedCache.key(model, "cpu", 4, (640, 360))) is None
    assert SpeedCache.key(tmp_path / "missing.onnx", "cpu", 4, (640, 360)) is None
    cache.path.write_text("{not json")
    assert cache.get(key) is None  # a damaged file costs only a new measure
    cache.put(key, 5.0)
    assert cache.get(key) == 5.0
