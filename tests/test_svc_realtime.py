"""Realtime conversion: block joins without clicks (SOLA + crossfade) on a sine and on real speech,
the latency it reports and really has, passthrough, silence, gains, live changes, and the
microphone → converter → speaker session with the fake devices."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from svc_speech import speech

from workers.errors import UserError
from workers.media.audio import resample, rms_dbfs
from workers.media.fakes import ArrayMicrophone, MemorySink
from workers.voice_conversion.dsp import DSPVoiceChanger
from workers.voice_conversion.pitch import make_pitch_estimator
from workers.voice_conversion.realtime import SEARCH_SECONDS, BlockConverter, RealtimeSession, sola_offset

RATE = 48000


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    audio, rate = speech()
    return 0.5 * resample(audio[:, None], rate, RATE)[:, 0]


def stream(bc: BlockConverter, audio: np.ndarray) -> np.ndarray:
    n = bc.block
    return np.concatenate([bc.process(audio[i : i + n]) for i in range(0, len(audio) - n + 1, n)])


def join_jumps(out: np.ndarray, block: int, skip: int = 2) -> np.ndarray:
    """At each block join: the largest second difference right at the join divided by the largest
    one in the 5 ms around it. A click makes this large; a smooth join keeps it near or below 1."""
    d2 = np.abs(np.diff(out, 2))
    ratios = []
    for j in range(block * skip, len(out) - block, block):
        at = d2[j - 3 : j + 2].max()
        around = np.concatenate([d2[j - 240 : j - 3], d2[j + 2 : j + 240]]).max()
        ratios.append(at / max(around, 1e-4))
    return np.array(ratios)


class Jittery:
    """A converter at other rates whose output lands up to 3 ms late, differently on every call (as a
    model's frame rounding can): the joins must line it up again."""

    name = "jittery"
    input_rate = 16000
    sample_rate = 40000

    def __init__(self) -> None:
        self.rng = np.random.default_rng(1)
        self.calls = 0
        self.params: dict[str, Any] = {}

    def set_params(self, **params: Any) -> None:
        self.params.update(params)

    def convert(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        delay = int(self.rng.integers(0, 48))
        late = np.concatenate([np.zeros(delay, np.float32), audio[: len(audio) - delay]])
        return resample(late[:, None], 16000, 40000)[:, 0]


class Counting(DSPVoiceChanger):
    def __init__(self, **kw: Any) -> None:
        super().__init__(RATE, **kw)
        self.calls = 0

    def convert_at(self, audio: np.ndarray, rate: int) -> np.ndarray:
        self.calls += 1
        return super().convert_at(audio, rate)


class Failing(DSPVoiceChanger):
    def convert_at(self, audio: np.ndarray, rate: int) -> np.ndarray:
        raise RuntimeError("the model fell over")


# ---- joins -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pitch", "block"), [(4.0, 0.1), (-5.0, 0.1), (4.0, 0.25)])
def test_no_clicks_at_block_joins_on_speech(pitch: float, block: float, voice: np.ndarray) -> None:
    changer = DSPVoiceChanger(RATE, pitch=pitch)
    bc = BlockConverter(changer, samplerate=RATE, block_seconds=block, crossfade_seconds=0.05, extra_seconds=0.5)
    out = stream(bc, voice)
    assert len(out) == len(voice) // bc.block * bc.block
    assert join_jumps(out, bc.block).max() < 1.5
    # the measure does see clicks: the same blocks converted one by one and butted together click
    n, context = bc.block, int(DSPVoiceChanger.context_seconds * RATE)
    butted = np.concatenate(
        [changer.convert(voice[max(0, i - context) : i + n])[-n:] for i in range(0, len(voice) - n + 1, n)]
    )
    assert (join_jumps(butted, n) > 3.0).sum() >= 3


@pytest.mark.parametrize("converter", [DSPVoiceChanger(RATE, pitch=4.0), Jittery()], ids=["dsp", "jittery"])
def test_no_clicks_at_block_joins_on_a_sine(converter: Any) -> None:
    t = np.arange(3 * RATE) / RATE
    sine = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    bc = BlockConverter(converter, samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.04, extra_seconds=0.3)
    out = stream(bc, sine)
    natural = 0.5 * (2 * np.pi * 220 / RATE) ** 2  # the largest second difference of the sine itself
    assert np.abs(np.diff(out[2 * bc.block :], 2)).max() < 2.0 * natural
    assert join_jumps(out, bc.block).max() < 1.5


def test_sola_finds_the_offset_that_lines_the_waveforms_up() -> None:
    t = np.arange(4000)
    wave = np.sin(2 * np.pi * t / 97.0) + 0.3 * np.sin(2 * np.pi * t / 31.0)
    reference = wave[1000:1500]
    assert sola_offset(wave[1000 - 37 :], reference, 60) == 37
    assert sola_offset(np.zeros(600), reference, 60) == 0


# ---- latency, passthrough, silence, gains ----------------------------------------------------------


@pytest.mark.parametrize("block", [0.1, 0.25, 0.5])
def test_latency_is_block_plus_crossfade_plus_search(block: float) -> None:
    bc = BlockConverter(
        DSPVoiceChanger(RATE), samplerate=RATE, block_seconds=block, crossfade_seconds=0.05, extra_seconds=0.5
    )
    assert bc.latency_seconds == pytest.approx(block + 0.05 + SEARCH_SECONDS, abs=1e-4)
    assert bc.latency_seconds <= 2 * block + 0.05 + 0.02  # the target, with room for the device buffers
    assert bc.window_seconds == pytest.approx(DSPVoiceChanger.context_seconds + 0.05 + SEARCH_SECONDS + block, abs=1e-4)


def test_passthrough_is_the_input_delayed_by_the_held_back_audio(voice: np.ndarray) -> None:
    bc = BlockConverter(
        DSPVoiceChanger(RATE, pitch=4.0),
        samplerate=RATE,
        block_seconds=0.1,
        crossfade_seconds=0.05,
        extra_seconds=0.5,
        passthrough=True,
    )
    out = stream(bc, voice)
    held = bc.crossfade + bc.search  # the block's own duration is the rest of latency_seconds
    assert held == round(bc.latency_seconds * RATE) - bc.block
    assert np.allclose(out[bc.block :], voice[bc.block - held : len(out) - held], atol=1e-6)


def test_converted_audio_has_the_same_delay(voice: np.ndarray) -> None:
    bc = BlockConverter(
        DSPVoiceChanger(RATE, pitch=4.0), samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.5
    )
    out = stream(bc, voice)
    frame = RATE // 1000  # 1 ms level contours

    def contour(x: np.ndarray) -> np.ndarray:
        x = x[: len(out) // frame * frame]
        return np.sqrt(np.mean(x.reshape(-1, frame) ** 2, axis=1))

    a, b = contour(voice), contour(out)
    lags = np.arange(0, 120)
    score = [np.corrcoef(a[: len(a) - lag], b[lag:])[0, 1] for lag in lags]
    expected_ms = (bc.crossfade + bc.search) / RATE * 1000
    assert abs(lags[int(np.argmax(score))] - expected_ms) <= 12


def test_switching_passthrough_live_does_not_click(voice: np.ndarray) -> None:
    bc = BlockConverter(
        DSPVoiceChanger(RATE, pitch=-4.0), samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.5
    )
    out = []
    for k, i in enumerate(range(0, len(voice) - bc.block + 1, bc.block)):
        if k % 7 == 3:
            bc.configure(passthrough=not bc.passthrough)
        out.append(bc.process(voice[i : i + bc.block]))
    assert join_jumps(np.concatenate(out), bc.block).max() < 1.5


def test_silent_blocks_are_not_converted_and_fade_cleanly(voice: np.ndarray) -> None:
    changer = Counting(pitch=4.0)
    bc = BlockConverter(
        changer, samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.5, silence_db=-50
    )
    silence = np.zeros(RATE, np.float32)
    assert not stream(bc, silence).any() and changer.calls == 0 and bc.silent_blocks == 10
    quiet = (10 ** (-60 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE)).astype(np.float32)
    assert not stream(bc, quiet).any() and changer.calls == 0  # -60 dBFS is under the -50 dB threshold
    bc.configure(silence_db=-70.0)
    assert stream(bc, quiet).any() and changer.calls > 0
    # speech, then silence, then speech: the cuts fade through the crossfade, no click
    bc.configure(silence_db=-50.0)
    gap = np.concatenate([voice[:RATE], np.zeros(RATE // 2, np.float32), voice[RATE : 2 * RATE]])
    out = stream(bc, gap)
    assert join_jumps(out, bc.block).max() < 1.5
    assert rms_dbfs(out[int(1.3 * RATE) : int(1.45 * RATE)]) == -120.0


def test_gains_and_clipping() -> None:
    tone = (0.2 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)).astype(np.float32)
    bc = BlockConverter(
        DSPVoiceChanger(RATE),
        samplerate=RATE,
        block_seconds=0.1,
        crossfade_seconds=0.02,
        extra_seconds=0.1,
        passthrough=True,
        input_gain_db=6.0,
    )
    out = stream(bc, tone)[bc.block :]
    assert np.abs(out).max() == pytest.approx(0.2 * 10 ** (6 / 20), rel=0.01)
    bc.configure(input_gain_db=0.0, output_gain_db=-6.0)
    out = stream(bc, tone)[bc.block :]
    assert np.abs(out).max() == pytest.approx(0.2 * 10 ** (-6 / 20), rel=0.01)
    bc.configure(output_gain_db=30.0)
    assert np.abs(stream(bc, tone)).max() <= 1.0


def test_live_changes_and_checks() -> None:
    conv = Jittery()
    bc = BlockConverter(conv, samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.3)
    bc.configure(pitch=3.0, formant=1.0, f0_method="harvest", index_ratio=0.2, speaker=1, auto_pitch=True)
    assert conv.params == {
        "pitch": 3.0,
        "formant": 1.0,
        "f0_method": "harvest",
        "index_ratio": 0.2,
        "speaker": 1,
        "auto_pitch": True,
    }
    with pytest.raises(UserError, match="no setting"):
        bc.configure(reverb=1)
    tone = (0.3 * np.sin(2 * np.pi * 180 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    first = stream(bc, tone[:RATE])
    bc.configure(block_seconds=0.2, crossfade_seconds=0.03)
    assert bc.block == int(0.2 * RATE) and bc.latency_seconds == pytest.approx(0.2 + 0.03 + SEARCH_SECONDS)
    second = stream(bc, tone[RATE:])
    assert join_jumps(np.concatenate([first, second]), int(0.1 * RATE), skip=3)[:5].max() < 1.5
    # a block of another length still gives as many samples back
    assert len(bc.process(tone[:1000])) == 1000 and len(bc.process(tone[: 3 * bc.block])) == 3 * bc.block
    with pytest.raises(UserError):
        BlockConverter(conv, samplerate=0, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.1)


def test_extra_context_is_capped_by_what_the_converter_uses() -> None:
    dsp = BlockConverter(
        DSPVoiceChanger(RATE), samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=1.0
    )
    neural = BlockConverter(Jittery(), samplerate=RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=1.0)
    assert dsp.extra == int(DSPVoiceChanger.context_seconds * RATE)
    assert neural.extra == RATE


# ---- the session ------------------------------------------------------------------------------------


def make_factory(converter: Any, block: float = 0.1, **kw: Any) -> Any:
    def factory(rate: int) -> BlockConverter:
        return BlockConverter(
            converter, samplerate=rate, block_seconds=block, crossfade_seconds=0.05, extra_seconds=0.5, **kw
        )

    return factory


def test_session_converts_speech_from_a_microphone_to_a_speaker(voice: np.ndarray) -> None:
    mic = ArrayMicrophone(voice, RATE, RATE, blocksize=1024, paced=False)
    sink = MemorySink(RATE)
    stats: list[dict[str, float]] = []
    session = RealtimeSession(
        make_factory(DSPVoiceChanger(RATE, pitch=4.0)), mic, sink, on_stats=stats.append, stats_interval=0.0
    )
    session.start()
    assert session.wait(60)
    session.stop()
    out = sink.data[:, 0]
    bc = session.block_converter
    assert bc is not None and session.error is None
    held = bc.crossfade + bc.search
    assert len(out) >= len(voice) + held  # everything came out, the held-back tail included
    aligned = out[held : held + len(voice)]
    f0 = make_pitch_estimator("fcpe")
    a = f0(resample(voice[:, None], RATE, 16000)[:, 0])
    b = f0(resample(aligned[:, None], RATE, 16000)[:, 0])
    both = (a > 0) & (b > 0)
    assert np.median(12 * np.log2(b[both] / a[both])) == pytest.approx(4.0, abs=0.3)
    assert stats and set(stats[-1]) >= {"infer_ms", "latency_ms", "rtf", "dropped", "input_dbfs", "output_dbfs"}
    assert stats[-1]["latency_ms"] >= 1000 * bc.latency_seconds
    assert stats[-1]["dropped"] == 0
    assert mic.close_count == 1 and sink.close_count == 1


def test_session_in_real_time_keeps_up_and_resamples_for_the_speaker(voice: np.ndarray) -> None:
    clip = voice[: 2 * RATE]
    mic = ArrayMicrophone(clip, RATE, RATE, blocksize=480, paced=True)
    sink = MemorySink(44100)
    session = RealtimeSession(make_factory(DSPVoiceChanger(RATE, pitch=-3.0), block=0.1), mic, sink)
    session.start()
    assert session.wait(30)
    session.stop()
    assert session.error is None and session.dropped_blocks == 0
    expected = (len(clip) + 0.1 * RATE) * 44100 / RATE
    assert abs(len(sink.data) - expected) < 0.25 * 44100
    assert session.stats["rtf"] < 1.0  # realtime with room to spare (the functional requirement)


def test_session_reports_a_failing_converter_and_stops(voice: np.ndarray) -> None:
    errors: list[BaseException] = []
    mic = ArrayMicrophone(voice, RATE, RATE, blocksize=1024, paced=False)
    sink = MemorySink(RATE)
    session = RealtimeSession(make_factory(Failing(RATE, pitch=2.0)), mic, sink, on_error=errors.append)
    session.start()
    assert session.wait(10)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert session.error and "fell over" in session.error
    session.stop()
    assert mic.close_count == 1 and sink.close_count == 1


def test_a_device_that_cannot_open_raises_at_start_and_releases_the_other() -> None:
    class BrokenSink(MemorySink):
        def open(self) -> None:
            raise UserError("The speaker “USB” could not be opened.")

    mic = ArrayMicrophone(np.zeros(RATE, np.float32), RATE, RATE, paced=False)
    session = RealtimeSession(make_factory(DSPVoiceChanger(RATE)), mic, BrokenSink(RATE))
    with pytest.raises(UserError, match="USB"):
        session.start()
    assert mic.close_count == 1 and not session.running


def test_stop_is_prompt_and_live_changes_reach_the_running_session(voice: np.ndarray) -> None:
    mic = ArrayMicrophone(voice, RATE, RATE, blocksize=1024, paced=True, loop=True)
    sink = MemorySink(RATE)
    settings = {"block": 0.1}
    converter = DSPVoiceChanger(RATE)

    def factory(rate: int) -> BlockConverter:
        return BlockConverter(
            converter, samplerate=rate, block_seconds=settings["block"], crossfade_seconds=0.05, extra_seconds=0.5
        )

    session = RealtimeSession(factory, mic, sink)
    session.start()
    time.sleep(0.4)
    session.configure(pitch=5.0, output_gain_db=-3.0)
    assert converter.pitch == 5.0
    settings["block"] = 0.2
    session.rebuild()
    assert session.block_converter is not None and session.block_converter.block == int(0.2 * RATE)
    time.sleep(0.5)
    start = time.monotonic()
    session.stop(timeout=3.0)
    assert time.monotonic() - start < 1.0
    assert not session.running and mic.close_count == 1 and sink.close_count == 1
    assert sink.frames > 0.4 * RATE
