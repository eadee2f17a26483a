"""The microphone's clean-up (RNNoise, the noise gate) and the streamer controls (mute, passthrough,
presets, hotkeys) on the live path."""

from __future__ import annotations

import time

import numpy as np
import pytest
from svc_speech import speech

from workers.live.cleanup import NoiseGate, NoiseSuppressor
from workers.live.hotkeys import GlobalHotkeys, check_hotkey, from_qt_sequence, global_capture_problem, qt_sequence
from workers.live.options import LiveOptions, LivePreset
from workers.live.session import LiveSession
from workers.live.virtual_mic import VirtualMicrophone
from workers.media.audio import resample, rms_dbfs
from workers.media.fakes import ArrayMicrophone, MemorySink

RATE = 48000


def _db(x: np.ndarray) -> float:
    return rms_dbfs(x)


def test_rnnoise_removes_the_noise_and_keeps_the_voice() -> None:
    voice, rate = speech(seconds=3.0)
    clean = resample(voice[:, None], rate, RATE)[:, 0]
    clean = np.concatenate([np.zeros(RATE // 2, np.float32), clean])  # half a second of noise only first
    noise = (0.03 * np.random.default_rng(0).standard_normal(len(clean))).astype(np.float32)
    suppressor = NoiseSuppressor(RATE)
    out = np.concatenate([suppressor.process((clean + noise)[i : i + 480]) for i in range(0, len(clean), 480)])
    lag = round(suppressor.latency_seconds * RATE)
    assert lag == 1440  # one buffered frame and RNNoise's own two: 30 ms
    aligned = out[lag:]
    reference = clean[: len(aligned)]
    noise_only = slice(RATE // 10, RATE * 4 // 10)
    assert _db(aligned[noise_only]) < _db(noise[noise_only]) - 20  # the hiss is gone
    speaking = np.abs(reference) > 0.05
    kept = _db(aligned[speaking]) - _db(reference[speaking])
    assert kept > -4.0  # the voice is kept
    corr = float(np.corrcoef(aligned[RATE:], reference[RATE:])[0, 1])
    noisy = float(np.corrcoef((clean + noise)[RATE : len(aligned)], reference[RATE:])[0, 1])
    assert corr > noisy and corr > 0.8
    suppressor.close()


def test_rnnoise_at_another_rate_keeps_the_length() -> None:
    suppressor = NoiseSuppressor(16000)
    x = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    out = [suppressor.process(x[i : i + 512]) for i in range(0, len(x), 512)]
    assert [len(o) for o in out] == [len(x[i : i + 512]) for i in range(0, len(x), 512)]


@pytest.mark.parametrize(("rate", "block"), [(44100, 441), (44100, 512), (16000, 160), (32000, 512)])
def test_rnnoise_states_its_latency_exactly_at_other_rates(rate: int, block: int) -> None:
    """With a microphone at another rate the resamplers hold samples back at first; the latency the
    live sync reads includes that, to the millisecond (it was short by 30 ms at 44.1 kHz)."""
    from scipy.signal import correlate

    voice, voice_rate = speech(seconds=3.0)
    x = resample(voice[:, None], voice_rate, rate)[:, 0].astype(np.float32)
    suppressor = NoiseSuppressor(rate)
    out = np.concatenate([suppressor.process(x[i : i + block]) for i in range(0, len(x), block)])
    shift = int(np.argmax(correlate(out, x, mode="full", method="fft"))) - (len(x) - 1)
    assert abs(shift / rate - suppressor.latency_seconds) <= 0.003
    suppressor.close()


def test_the_noise_gate_mutes_what_stays_under_its_threshold() -> None:
    gate = NoiseGate(RATE, -40.0, hold=0.1, release=0.02)
    quiet = np.full(RATE // 5, 0.003, np.float32)  # -50 dBFS
    loud = np.full(RATE // 5, 0.3, np.float32)
    out = gate.process(np.concatenate([quiet, loud, quiet, quiet]))
    n = len(quiet)
    assert np.all(out[:n] == 0.0)
    assert np.allclose(out[n + RATE // 100 : 2 * n], 0.3)  # open within the attack
    assert np.all(out[2 * n : 2 * n + RATE // 20] > 0.002)  # held open a while
    assert np.all(out[3 * n :] == 0.0) and not gate.is_open


def _voice(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(150 + 3 * np.sin(2 * np.pi * 5 * t)) / RATE
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


def _peak(x: np.ndarray) -> float:
    n = min(len(x), RATE)
    spectrum = np.abs(np.fft.rfft(x[-n:] * np.hanning(n)))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    band = (freqs > 100) & (freqs < 400)
    return float(freqs[band][np.argmax(spectrum[band])])


class Capture:
    """The virtual microphone as a memory sink whose samples can be taken in turns."""

    def __init__(self) -> None:
        self.sink = MemorySink(RATE)
        self.taken = 0

    def make(self) -> VirtualMicrophone:
        self.sink.open()
        return VirtualMicrophone(self.sink, "Memory")

    def since(self, seconds: float) -> np.ndarray:
        time.sleep(seconds)
        data = self.sink.data[:, 0]
        out, self.taken = data[self.taken :], len(data)
        return out


def test_mute_passthrough_and_a_preset_change_the_voice_live() -> None:
    capture = Capture()
    session = LiveSession(
        LiveOptions(pitch=5.0, noise_suppression=False, virtual_camera=False),
        camera=None,
        microphone=ArrayMicrophone(_voice(), RATE, blocksize=480, loop=True),
        virtual_microphone=capture.make,
    )
    session.start()
    try:
        converted = capture.since(1.2)
        assert 190 < _peak(converted) < 210  # 150 Hz up 5 semitones
        session.set_muted(True)
        capture.since(0.3)
        assert _db(capture.since(0.6)) < -100  # silence goes out
        session.set_muted(False)
        session.set_passthrough(True)
        capture.since(0.4)
        assert 145 < _peak(capture.since(1.2)) < 155  # your own voice
        session.set_passthrough(False)
        preset = LivePreset("Low", [], "", -5.0, 0.0)
        session.set_voice_params(pitch=preset.pitch, formant=preset.formant)
        capture.since(0.4)
        assert 108 < _peak(capture.since(1.2)) < 117  # 150 Hz down 5 semitones
    finally:
        session.stop()


def test_presets_pair_a_face_and_a_voice_and_wrap_around() -> None:
    options = LiveOptions(
        presets=[LivePreset("A", ["a.png"], "", 3.0).to_dict(), LivePreset("B", [], "m1", -2.0).to_dict()]
    )
    assert options.apply_preset(0).name == "A" and options.faces == ["a.png"] and options.pitch == 3.0
    assert options.apply_preset(options.preset_index + 1).name == "B" and options.voice == "m1" and options.faces == []
    assert options.apply_preset(options.preset_index + 1).name == "A"
    assert LiveOptions().apply_preset(0) is None


def test_hotkeys_are_written_in_one_notation_and_shown_in_the_other() -> None:
    assert qt_sequence("<ctrl>+<alt>+l") == "Ctrl+Alt+L"
    assert qt_sequence("<shift>+<f9>") == "Shift+F9"
    assert from_qt_sequence("Ctrl+Alt+L") == "<ctrl>+<alt>+l"
    assert from_qt_sequence(qt_sequence("<ctrl>+<shift>+m")) == "<ctrl>+<shift>+m"
    assert check_hotkey("<ctrl>+<alt>+l") is None
    problem = check_hotkey("<ctrl>+<nokey>+l")
    assert problem is not None and "<ctrl>+<alt>+l" in problem


def test_without_an_x_server_the_hotkeys_say_they_are_window_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    problem = global_capture_problem()
    assert problem is not None and "Wayland" in problem and "focus" in problem
    keys = GlobalHotkeys({"mute": "<ctrl>+<alt>+m"}, lambda name: None)
    assert keys.start() == problem and not keys.active
