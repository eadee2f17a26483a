"""Real speech for the voice-conversion tests: the shipped Piper voice reading a sentence (no download).

The voice is synthesised once per test process and kept in memory, without Piper's random noise
(noise scales 0), so every run hears exactly the same speech.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

TEXT = "Hello there. This is a short test of the voice changer, with a few clear words to follow."


@functools.lru_cache(maxsize=4)
def _synth(text: str) -> tuple[bytes, int]:
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    from workers.models.store import ModelStore

    folder = Path(ModelStore().path_of("piper-en-us-joe-medium-shipped"))
    model = folder / "en_US-joe-medium.onnx" if folder.is_dir() else folder
    voice = PiperVoice.load(str(model))
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = voice.synthesize(text, syn_config=config)
    audio = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
    return audio.tobytes(), int(voice.config.sample_rate)


def speech(text: str = TEXT, *, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 speech and its rate (22050 Hz); repeated or cut to ``seconds`` when given."""
    raw, rate = _synth(text)
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    if seconds is not None:
        n = int(seconds * rate)
        audio = np.tile(audio, int(np.ceil(n / len(audio))))[:n]
    return audio, rate


def write_speech(path: Path, *, seconds: float | None = None, rate: int | None = None, channels: int = 1) -> Path:
    """The speech as a sound file (format by the suffix), at ``rate`` and with ``channels``."""
    import soundfile

    from workers.media.audio import resample

    audio, src = speech(seconds=seconds)
    data = audio[:, None]
    if rate and rate != src:
        data = resample(data, src, rate)
        src = rate
    if channels > 1:
        data = np.repeat(data, channels, axis=1) * np.linspace(1.0, 0.8, channels, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, src)
    return path


def _f0(audio: np.ndarray, rate: int) -> np.ndarray:
    from workers.media.audio import resample
    from workers.voice_conversion.pitch import make_pitch_estimator

    mono = np.asarray(audio, dtype=np.float32).reshape(-1)
    return make_pitch_estimator("fcpe")(resample(mono[:, None], rate, 16000)[:, 0])


def pitch_shift(reference: np.ndarray, ref_rate: int, converted: np.ndarray, rate: int, max_lag: float = 0.8) -> float:
    """How many semitones ``converted`` lies above ``reference``, measured with FCPE frame by frame
    (10 ms frames voiced in both), after lining the two up (a live conversion is delayed)."""
    a, b = _f0(reference, ref_rate), _f0(converted, rate)
    best_lag, best_agree = 0, -1
    for lag in range(int(max_lag * 100) + 1):  # frames of 10 ms
        n = min(len(a), len(b) - lag)
        if n <= 0:
            break
        agree = int(np.sum((a[:n] > 0) & (b[lag : lag + n] > 0)))
        if agree > best_agree:
            best_lag, best_agree = lag, agree
    n = min(len(a), len(b) - best_lag)
    ref, out = a[:n], b[best_lag : best_lag + n]
    both = (ref > 0) & (out > 0)
    if not np.any(both):
        return float("nan")
    return float(12.0 * np.median(np.log2(out[both] / ref[both])))
