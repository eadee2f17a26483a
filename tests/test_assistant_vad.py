"""Silero VAD streamed frame by frame, and the endpointer that finds turns in real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from assistant_fixtures import (
    QUESTIONS,
    noise,
    padded,
    silero_vad_fixture,  # noqa: F401  (the silero_vad fixture)
    speech_16k,
    speech_bounds,
    utterance_16k,
)

from workers.assistant.vad import FRAME_SAMPLES, SAMPLE_RATE, Endpointer, SileroVAD, VadEvent
from workers.errors import UserError


def feed_blocks(ep: Endpointer, audio: np.ndarray, block: int = 480) -> list[VadEvent]:
    """Feed like a microphone does: blocks of 30 ms that do not line up with the 32 ms frames."""
    events: list[VadEvent] = []
    for i in range(0, len(audio), block):
        events.extend(ep.feed(audio[i : i + block]))
    return events


def turns(events: list[VadEvent]) -> list[tuple[float, float]]:
    return [(e.speech_start, e.speech_end) for e in events if e.kind == "end"]


def test_streamed_probabilities_equal_faster_whispers_batched_ones(silero_vad: SileroVAD) -> None:
    from faster_whisper.vad import SileroVADModel

    audio = utterance_16k(QUESTIONS[0], lead_s=0.5, tail_s=0.5)
    audio = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES]
    batched = SileroVADModel(str(silero_vad.model_path))(audio).reshape(-1)
    streamed = silero_vad.probs(audio)
    assert streamed.shape == batched.shape
    assert np.allclose(streamed, batched, atol=1e-5)
    assert streamed.max() > 0.8  # the question is speech
    assert streamed[:10].max() < 0.2  # the leading silence is not

    silero_vad.reset()
    assert silero_vad.probs(audio)[5] == pytest.approx(streamed[5], abs=1e-6)  # reset restarts the state
    with pytest.raises(ValueError):
        silero_vad.prob(np.zeros(100, np.float32))


def test_finds_start_and_end_of_a_spoken_question(silero_vad: SileroVAD) -> None:
    audio = utterance_16k(QUESTIONS[0], lead_s=1.0, tail_s=1.5)
    voice_on, voice_off = speech_bounds(audio, SAMPLE_RATE)
    ep = Endpointer(silero_vad, threshold=0.5, min_silence_ms=400, min_speech_ms=200, speech_pad_ms=200)

    events: list[VadEvent] = []
    states = []
    for i in range(0, len(audio), 480):
        events.extend(ep.feed(audio[i : i + 480]))
        states.append((ep.time, ep.in_speech))

    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert abs(start.speech_start - voice_on) < 0.15
    # "start" comes once speech lasted min_speech_ms (plus at most one frame), not at the end.
    assert 0.2 <= start.time - start.speech_start <= 0.2 + 2 * FRAME_SAMPLES / SAMPLE_RATE
    assert abs(end.speech_end - voice_off) < 0.25
    assert end.speech_start == start.speech_start
    # "end" comes after min_silence_ms of silence, promptly.
    assert 0.4 <= end.time - end.speech_end <= 0.4 + 2 * FRAME_SAMPLES / SAMPLE_RATE
    assert end.audio is not None and end.audio.dtype == np.float32
    assert len(end.audio) / SAMPLE_RATE == pytest.approx(end.duration + 0.4, abs=0.01)
    # The utterance's audio is the stream's own samples.
    first = round((end.speech_start - 0.2) * SAMPLE_RATE)
    assert np.array_equal(end.audio[:1000], audio[first : first + 1000])
    assert any(in_speech for t, in_speech in states if start.time <= t < end.time)
    assert not ep.in_speech
    assert ep.time == pytest.approx(len(audio) / SAMPLE_RATE)
    assert ep.flush() == []


def test_min_silence_decides_whether_a_pause_ends_the_turn(silero_vad: SileroVAD) -> None:
    gap = np.zeros(int(0.45 * SAMPLE_RATE), np.float32)
    two = padded(np.concatenate([speech_16k(QUESTIONS[0]) * 0.5, gap, speech_16k(QUESTIONS[1]) * 0.5]), SAMPLE_RATE)

    short = Endpointer(silero_vad, min_silence_ms=150)
    found = turns(feed_blocks(short, two) + short.flush())
    assert len(found) == 2
    assert found[0][1] < found[1][0]

    long = Endpointer(silero_vad, min_silence_ms=1000)
    found = turns(feed_blocks(long, two) + long.flush())
    assert len(found) == 1


def test_threshold_is_honoured(silero_vad: SileroVAD) -> None:
    audio = utterance_16k(QUESTIONS[1])
    probs = silero_vad.probs(audio)
    silero_vad.reset()

    low = Endpointer(silero_vad, threshold=0.3)
    low_turns = turns(feed_blocks(low, audio) + low.flush())
    assert len(low_turns) == 1

    high = Endpointer(silero_vad, threshold=0.9)
    high_turns = turns(feed_blocks(high, audio) + high.flush())
    assert high_turns and high_turns[0][0] >= low_turns[0][0]

    if probs.max() < 0.99:  # no frame reaches the threshold: no turn at all
        above = Endpointer(silero_vad, threshold=float(min(0.995, probs.max() + 0.004)))
        assert feed_blocks(above, audio) + above.flush() == []


def test_silence_and_noise_give_no_turn(silero_vad: SileroVAD) -> None:
    for audio in (np.zeros(3 * SAMPLE_RATE, np.float32), noise(3.0, dbfs=-25), noise(3.0, dbfs=-50)):
        ep = Endpointer(silero_vad)
        assert feed_blocks(ep, audio) + ep.flush() == []
        assert not ep.in_speech
        assert ep.last_prob < 0.5


def test_a_click_shorter_than_min_speech_is_ignored(silero_vad: SileroVAD) -> None:
    voice = speech_16k(QUESTIONS[0]) * 0.5
    on, _ = speech_bounds(voice, SAMPLE_RATE)
    burst = voice[int((on + 0.3) * SAMPLE_RATE) : int((on + 0.42) * SAMPLE_RATE)]  # 120 ms of a vowel
    audio = padded(burst, SAMPLE_RATE, 1.0, 1.0)

    strict = Endpointer(silero_vad, min_speech_ms=300)
    assert feed_blocks(strict, audio) + strict.flush() == []

    lax = Endpointer(silero_vad, min_speech_ms=32, min_silence_ms=200)
    probs = silero_vad.probs(audio)
    silero_vad.reset()
    if probs.max() >= 0.5:  # Silero heard the burst as speech
        assert len(turns(feed_blocks(lax, audio) + lax.flush())) == 1


def test_flush_ends_an_utterance_in_progress(silero_vad: SileroVAD) -> None:
    voice = utterance_16k(QUESTIONS[0], lead_s=0.5, tail_s=0.0)
    cut = voice[: int(len(voice) * 0.8)]  # push-to-talk released mid-word
    ep = Endpointer(silero_vad)
    events = feed_blocks(ep, cut, block=1000)
    assert [e.kind for e in events] == ["start"]
    assert ep.in_speech

    tail = ep.flush()
    assert [e.kind for e in tail] == ["end"]
    end = tail[0]
    assert end.audio is not None
    assert end.speech_end == pytest.approx(len(cut) / SAMPLE_RATE, abs=FRAME_SAMPLES / SAMPLE_RATE + 1e-6)
    assert len(end.audio) / SAMPLE_RATE == pytest.approx(end.speech_end - end.speech_start + 0.2, abs=0.04)
    assert not ep.in_speech
    assert ep.flush() == []


def test_max_speech_cuts_a_very_long_turn(silero_vad: SileroVAD) -> None:
    long = padded(np.concatenate([speech_16k(q) * 0.5 for q in QUESTIONS]), SAMPLE_RATE, 0.5, 1.0)
    ep = Endpointer(silero_vad, max_speech_s=1.5, min_silence_ms=600)
    ends = [e for e in feed_blocks(ep, long) + ep.flush() if e.kind == "end"]
    assert len(ends) >= 2
    assert all(e.duration <= 1.5 + 0.05 for e in ends)


def test_configure_reset_and_bad_settings(silero_vad: SileroVAD) -> None:
    ep = Endpointer(silero_vad)
    ep.feed(np.zeros(4000, np.float32))
    assert ep.time == pytest.approx(0.25)
    ep.configure(threshold=0.7, min_silence_ms=250)
    assert (ep.threshold, ep.min_silence_ms) == (0.7, 250)
    assert ep.neg_threshold == pytest.approx(0.55)
    with pytest.raises(TypeError):
        ep.configure(silence=3)
    with pytest.raises(ValueError):
        ep.configure(threshold=1.5)
    with pytest.raises(ValueError):
        ep.configure(min_speech_ms=-1)
    ep.reset()
    assert ep.time == 0.0 and not ep.in_speech


def test_a_broken_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "silero_vad.onnx"
    bad.write_bytes(b"not an onnx model at all")
    with pytest.raises(UserError, match="not a usable Silero"):
        SileroVAD(bad)
    with pytest.raises(UserError, match="not found"):
        SileroVAD(tmp_path / "missing.onnx")
