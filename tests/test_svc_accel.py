"""Live voice conversion on a CPU: synthesising only what a block keeps, and the ONNX Runtime engine.

- ``convert(window, keep_seconds=...)`` gives, in the kept part, what a whole-window conversion gives there
  (the prior hears the whole window; the flow and the decoder run on the tail and a margin);
- the decoder and the content encoder exported to ONNX give torch's numbers (fp32) or close to them
  (int8), are exported once per model into the studio's data folder (nothing next to the user's files),
  and exported again when the model changes;
- the ``engine`` option picks what runs: "auto" (live blocks on int8 ONNX, files on torch), "torch",
  "onnx", "onnx-int8".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import svc_fixtures
from svc_speech import speech

from workers.media.audio import resample
from workers.voice_conversion.neural import NeuralConverter, load_neural_converter
from workers.voice_conversion.options import VoiceConversionOptions
from workers.voice_conversion.realtime import BlockConverter


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("accel-models")
    return {
        "sovits": svc_fixtures.make_sovits_checkpoint(root / "sovits41", "4.1")[0].parent,
        "rvc": svc_fixtures.make_rvc_checkpoint(root / "rvc-v2.pth", "v2"),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return svc_fixtures.fixture_store(tmp_path_factory.mktemp("accel-store"))


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    audio, rate = speech()
    return resample(audio[:, None], rate, 16000)[:, 0]


def _converter(models: dict[str, Path], store: Any, kind: str, engine: str = "torch") -> NeuralConverter:
    options = VoiceConversionOptions(model=str(models[kind]), f0_method="harvest", pitch=2.0, engine=engine)
    converter = load_neural_converter(options, store=store)
    assert isinstance(converter, NeuralConverter)
    return converter


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(1e-9, float(np.linalg.norm(b))))


@pytest.mark.parametrize("kind", ["sovits", "rvc"])
def test_a_tail_is_what_the_whole_window_gives_there(
    models: dict[str, Path], store: Any, speech16k: np.ndarray, kind: str
) -> None:
    converter = _converter(models, store, kind)
    window = speech16k[:40000]  # 2.5 s: the flow and the decoder start well inside the window
    whole = converter.convert(window)
    keep = 0.4
    tail = converter.convert(window, keep_seconds=keep)
    assert len(tail) == len(whole)
    kept = int(keep * converter.sample_rate)
    assert np.abs(whole[-kept:]).max() > 1e-3
    np.testing.assert_allclose(tail[-kept:], whole[-kept:], atol=1e-5)
    # what was not synthesised is silence, not stale audio
    assert not np.any(tail[: len(tail) - kept - int(0.05 * converter.sample_rate)])


def test_live_blocks_synthesise_only_what_they_keep(models: dict[str, Path], store: Any, speech16k: np.ndarray) -> None:
    converter = _converter(models, store, "rvc")
    calls: list[float | None] = []
    convert = converter.convert

    def spy(audio: np.ndarray, keep_seconds: float | None = None) -> np.ndarray:
        calls.append(keep_seconds)
        return convert(audio, keep_seconds=keep_seconds)

    converter.convert = spy  # type: ignore[method-assign]
    block = BlockConverter(converter, samplerate=16000, block_seconds=0.3, crossfade_seconds=0.05, extra_seconds=0.5)
    out = np.concatenate([block.process(speech16k[i : i + 4800]) for i in range(0, 4800 * 6, 4800)])
    assert np.isfinite(out).all() and np.abs(out).max() > 1e-3
    assert calls and all(k is not None for k in calls)
    # block + crossfade + search + the resampler's margin, far less than the 0.86 s window
    assert calls[-1] == pytest.approx(0.3 + 0.05 + 0.01 + 0.02, abs=1e-6)


@pytest.mark.parametrize("kind", ["sovits", "rvc"])
def test_onnx_engine_matches_torch_and_is_cached_once_per_model(
    models: dict[str, Path], store: Any, speech16k: np.ndarray, kind: str
) -> None:
    from workers.voice_conversion import accel

    window = speech16k[:16000]
    reference = _converter(models, store, kind).convert(window, keep_seconds=0.4)
    fp32 = _converter(models, store, kind, engine="onnx")
    assert fp32.precision(live=True) == "fp32" and fp32.precision(live=False) == "fp32"
    out = fp32.convert(window, keep_seconds=0.4)
    assert _relative(out, reference) < 1e-3
    int8 = _converter(models, store, kind, engine="onnx-int8")
    out8 = int8.convert(window, keep_seconds=0.4)
    assert np.isfinite(out8).all() and _relative(out8, reference) < 0.35

    model_path = Path(models[kind])
    cache = accel.cache_folder(model_path)
    assert not (model_path if model_path.is_dir() else model_path.parent).joinpath(".snowai-onnx").exists()
    stem = (model_path / "G_100.pth" if model_path.is_dir() else model_path).stem
    decoders = sorted(cache.glob(f"{stem}-*decoder*.onnx"))
    assert len(decoders) == 2  # fp32 and int8
    stamps = {p: p.stat().st_mtime_ns for p in decoders}
    again = _converter(models, store, kind, engine="onnx-int8")
    again.prepare()
    assert {p: p.stat().st_mtime_ns for p in decoders} == stamps  # read from the cache, not exported again

    # a changed model file is exported again (its key changes)
    weights = model_path / "G_100.pth" if model_path.is_dir() else model_path
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    if kind == "rvc":
        changed = _converter(models, store, kind, engine="onnx")
        changed.prepare()
        assert len(list(cache.glob(f"{stem}-*decoder.onnx"))) == 2


def test_auto_runs_live_blocks_on_int8_and_files_on_torch(
    models: dict[str, Path], store: Any, speech16k: np.ndarray
) -> None:
    converter = _converter(models, store, "rvc", engine="auto")
    assert converter.precision(live=True) == "int8"
    assert converter.precision(live=False) is None
    window = speech16k[:16000]
    whole = converter.convert(window)
    assert converter.model.decoder_body is None  # a file: torch, the reference
    np.testing.assert_array_equal(whole, _converter(models, store, "rvc").convert(window))
    converter.convert(window, keep_seconds=0.3)
    assert converter.model.decoder_body is not None and converter.model.decoder_body.precision == "int8"
    torch_only = _converter(models, store, "rvc", engine="torch")
    assert torch_only.precision(live=True) is None


def test_the_engine_is_chosen_on_the_page_and_reloads_the_voice(qtbot: Any, tmp_path: Path) -> None:
    from test_svc_page import WAIT, make_dock  # noqa: F401  (the page fixture)
    from test_svc_worker import fixture_model

    from snowai_studio.context import StudioContext
    from snowai_studio.notifications import NotificationManager
    from snowai_studio.voice_conversion import create_page
    from workers.settings import Settings

    model, fixture = fixture_model(svc_fixtures, tmp_path, "rvc-v2")
    context = StudioContext(Settings.load(), NotificationManager(), fixture, {})
    page = create_page(context)
    qtbot.addWidget(page)
    try:
        with qtbot.waitSignal(page.model_changed, timeout=WAIT):
            page.set_model(model)
        combo = page.live_settings.engine_combo
        assert [combo.itemData(i) for i in range(combo.count())] == ["auto", "torch", "onnx", "onnx-int8"]
        assert combo.currentData() == "auto"
        combo.setCurrentIndex(combo.findData("torch"))
        combo.activated.emit(combo.currentIndex())
        assert page.options.engine == "torch"
        # the voice is loaded again on the new engine
        qtbot.waitUntil(lambda: getattr(page._worker.converter, "engine", None) == "torch", timeout=WAIT)
        page.set_option("engine", "quantum")  # refused with a sentence; the engine stays
        assert page.options.engine == "torch" and "quantum" in page.last_message
    finally:
        page.shutdown()
