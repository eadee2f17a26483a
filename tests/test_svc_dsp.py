"""The built-in DSP voice changer on real speech (the shipped Piper voice): the pitch measured by FCPE
moves by the requested semitones, the duration is kept, formant control moves the formants (and not
the pitch), and odd input never breaks it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from svc_speech import speech

from workers.errors import UserError
from workers.media.audio import resample, rms_dbfs
from workers.voice_conversion.converter import Converter, load_converter
from workers.voice_conversion.dsp import PSOLA, DSPVoiceChanger, yin_f0
from workers.voice_conversion.options import VoiceConversionOptions
from workers.voice_conversion.pitch import make_pitch_estimator

RATE = 48000


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    audio, rate = speech()
    return 0.5 * resample(audio[:, None], rate, RATE)[:, 0]


@pytest.fixture(scope="module")
def f0_in(voice: np.ndarray) -> np.ndarray:
    return fcpe(voice)


def fcpe(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    return make_pitch_estimator("fcpe")(resample(np.asarray(audio, np.float32)[:, None], rate, 16000)[:, 0])


def measured_shift(f0_before: np.ndarray, f0_after: np.ndarray) -> float:
    """Median pitch change (semitones) over the frames voiced in both."""
    n = min(len(f0_before), len(f0_after))
    a, b = f0_before[:n], f0_after[:n]
    both = (a > 0) & (b > 0)
    assert both.sum() > 0.3 * n
    return float(np.median(12 * np.log2(b[both] / a[both])))


def formant_tracks(audio: np.ndarray, ceiling: float) -> np.ndarray:
    """F1, F2, F3 (Hz) every 10 ms, shape ``(3, frames)``, by Praat's Burg method.

    Praat's advice is to scale the formant ceiling with the speaker's vocal tract; a voice whose
    formants were moved by r gets a ceiling r times as high.
    """
    import parselmouth

    sound = parselmouth.Sound(np.asarray(audio, np.float64), RATE)
    track = sound.to_formant_burg(time_step=0.01, max_number_of_formants=5, maximum_formant=ceiling)
    times = np.arange(1, len(audio) // (RATE // 100) - 1) * 0.01
    return np.array([[track.get_value_at_time(k, t) for t in times] for k in (1, 2, 3)])


def formant_shift(before: np.ndarray, after: np.ndarray, semitones: float) -> np.ndarray:
    """Median change (semitones) of F1, F2, F3 over the voiced frames, frame by frame."""
    f0 = make_pitch_estimator("harvest")(resample(before[:, None], RATE, 16000)[:, 0])
    tracks_in = formant_tracks(before, 5000)
    tracks_out = formant_tracks(after, 5000 * 2 ** (semitones / 12))
    voiced = f0[1 : 1 + tracks_in.shape[1]] > 0
    return np.nanmedian(12 * np.log2(tracks_out[:, voiced] / tracks_in[:, voiced]), axis=1)


@pytest.mark.parametrize("semitones", [4.0, -4.0, 7.0])
def test_pitch_moves_by_the_requested_semitones_and_duration_is_kept(
    semitones: float, voice: np.ndarray, f0_in: np.ndarray
) -> None:
    changer = DSPVoiceChanger(RATE, pitch=semitones)
    out = changer.convert(voice)
    assert out.dtype == np.float32 and out.shape == voice.shape
    assert measured_shift(f0_in, fcpe(out)) == pytest.approx(semitones, abs=0.3)
    # the loudness stays about the same
    assert abs(rms_dbfs(out) - rms_dbfs(voice)) < 2.0
    # speech stays where it was in time: the level contours line up
    frame = RATE // 100
    env_in = np.sqrt(np.mean(voice[: len(voice) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    env_out = np.sqrt(np.mean(out[: len(out) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    assert np.corrcoef(env_in, env_out)[0, 1] > 0.9


@pytest.mark.parametrize("formant", [3.0, -3.0])
def test_formant_control_moves_the_formants_not_the_pitch(formant: float, voice: np.ndarray, f0_in: np.ndarray) -> None:
    out = DSPVoiceChanger(RATE, formant=formant).convert(voice)
    assert len(out) == len(voice)
    assert measured_shift(f0_in, fcpe(out)) == pytest.approx(0.0, abs=0.3)
    moved = formant_shift(voice, out, formant)
    assert np.all(np.abs(moved - formant) < 0.75), moved
    unmoved = formant_shift(voice, DSPVoiceChanger(RATE, pitch=4.0).convert(voice), 0.0)
    assert np.all(np.abs(unmoved) < 0.75), unmoved  # a pitch shift alone keeps the formants


def test_pitch_and_formant_together(voice: np.ndarray, f0_in: np.ndarray) -> None:
    out = DSPVoiceChanger(RATE, pitch=5.0, formant=3.0).convert(voice)
    assert measured_shift(f0_in, fcpe(out)) == pytest.approx(5.0, abs=0.3)
    moved = formant_shift(voice, out, 3.0)
    assert np.all(np.abs(moved - 3.0) < 0.75), moved


def test_no_shift_is_the_input_and_the_analysis_resynthesis_is_exact(voice: np.ndarray) -> None:
    assert np.array_equal(DSPVoiceChanger(RATE).convert(voice), voice.astype(np.float32))
    psola = PSOLA(RATE)
    marks, voiced = psola.analyse(voice)
    assert voiced.any() and (~voiced).any()
    assert np.all(np.diff(marks) > 0) and marks[0] >= 0 and marks[-1] < len(voice)
    again = psola.synthesise(voice, marks, voiced, 1.0, 1.0)
    assert np.abs(again - voice).max() < 1e-5


def test_pitch_marks_follow_the_period(voice: np.ndarray) -> None:
    psola = PSOLA(RATE)
    marks, voiced = psola.analyse(voice)
    f0, hop = yin_f0(voice, RATE)
    # inside voiced runs, mark spacing equals the tracked period (within 15 %)
    spacing = np.diff(marks)
    both = voiced[:-1] & voiced[1:]
    centre = (marks[:-1] + marks[1:]) // 2
    f0_at = f0[np.clip(centre // hop, 0, len(f0) - 1)]
    ok = both & (f0_at > 0)
    ratio = spacing[ok] * f0_at[ok] / RATE
    assert np.median(np.abs(ratio - 1.0)) < 0.05
    assert np.mean(np.abs(ratio - 1.0) < 0.15) > 0.85


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_any_sample_rate(rate: int, voice: np.ndarray) -> None:
    audio = resample(voice[:, None], RATE, rate)[:, 0]
    changer = DSPVoiceChanger(RATE, pitch=-5.0)
    out = changer.convert_at(audio, rate)
    assert out.shape == audio.shape
    shift = measured_shift(fcpe(audio, rate), fcpe(out, rate))
    assert shift == pytest.approx(-5.0, abs=0.35)


def test_odd_input_never_breaks_it() -> None:
    changer = DSPVoiceChanger(RATE, pitch=3.0, formant=-2.0)
    for audio in (
        np.zeros(0, np.float32),
        np.zeros(5, np.float32),
        np.zeros(RATE, np.float32),
        np.full(RATE // 2, np.nan, np.float32),
        np.random.default_rng(0).uniform(-1, 1, RATE).astype(np.float32),
        np.ones(RATE // 3, np.float32),  # DC
        np.sign(np.sin(2 * np.pi * 150 * np.arange(RATE // 4) / RATE)).astype(np.float32),  # clipped square
    ):
        out = changer.convert(audio)
        assert out.shape == audio.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and np.abs(out).max(initial=0.0) <= 1.0


def test_a_hummed_tone_moves_an_octave() -> None:
    """A harmonic-rich tone (like humming; PSOLA, like the voice, needs more than a pure sine)."""
    t = np.arange(RATE) / RATE
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 30))
    tone = (0.3 * tone / np.abs(tone).max()).astype(np.float32)
    out = DSPVoiceChanger(RATE, pitch=12.0).convert(tone)
    f0 = make_pitch_estimator("harvest")(resample(out[:, None], RATE, 16000)[:, 0])
    assert np.median(f0[10:-10]) == pytest.approx(300.0, abs=3.0)
    assert abs(rms_dbfs(out) - rms_dbfs(tone)) < 4.0


def test_parameters_are_checked_and_unknown_ones_ignored() -> None:
    changer = DSPVoiceChanger(RATE)
    changer.set_params(pitch="3", formant=-1.5, f0_method="fcpe", index_ratio=0.3, speaker=2, auto_pitch=True)
    assert changer.pitch == 3.0 and changer.formant == -1.5
    changer.set_params(pitch=100)
    assert changer.pitch == 24.0
    with pytest.raises(UserError, match="number of semitones"):
        changer.set_params(pitch="high")
    with pytest.raises(UserError):
        changer.set_params(formant=float("nan"))
    assert isinstance(changer, Converter)


def test_load_converter_gives_the_dsp_changer_without_a_model() -> None:
    conv = load_converter(VoiceConversionOptions(pitch=2.0, formant=1.0))
    assert isinstance(conv, DSPVoiceChanger)
    assert conv.pitch == 2.0 and conv.formant == 1.0
    assert conv.input_rate == conv.sample_rate == 48000


def test_load_converter_hands_models_to_the_neural_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    sentinel = object()

    def fake_loader(options: VoiceConversionOptions, *, store: object = None, device: str = "cpu",
                    **_engine: object) -> object:
        seen.update(model=options.model, store=store, device=device)
        return sentinel

    module = types.ModuleType("workers.voice_conversion.neural")
    module.load_neural_converter = fake_loader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workers.voice_conversion.neural", module)
    store = object()
    assert load_converter(VoiceConversionOptions(model="/models/G_100.pth"), store=store, device="cuda") is sentinel
    assert seen == {"model": "/models/G_100.pth", "store": store, "device": "cuda"}
