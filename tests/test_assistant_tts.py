"""Text to speech: the shipped Piper voice (real speech) and Bark (a tiny model built by the test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from assistant_fixtures import (
    make_tiny_bark,
    piper_voice_fixture,  # noqa: F401  (the piper_voice fixture)
    shipped_store,
    speech_bounds,
    transcriber_fixture,  # noqa: F401  (the transcriber fixture)
    words,
)

from workers.assistant.asr import Transcriber
from workers.assistant.tts import (
    DEFAULT_VOICE_ID,
    BarkTTS,
    PiperTTS,
    Voice,
    _resolve_piper,
    list_voices,
    load_voice,
    render,
)
from workers.errors import UserError
from workers.media.audio import resample

SENTENCES = "The sun is a star. It is very hot. Plants need its light."


def test_piper_speaks_each_sentence_as_its_own_chunk(piper_voice: PiperTTS) -> None:
    assert isinstance(piper_voice, Voice)
    assert piper_voice.sample_rate == 22050
    assert "Joe" in piper_voice.name
    chunks = list(piper_voice.synthesize(SENTENCES))
    assert len(chunks) == 3
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1
        assert 0.4 < len(chunk) / 22050 < 4.0
        assert np.all(np.isfinite(chunk)) and np.abs(chunk).max() <= 1.0
        assert np.abs(chunk).max() > 0.3  # speech, not silence
    assert list(piper_voice.synthesize("")) == []
    assert list(piper_voice.synthesize("   \n ")) == []


def test_piper_speech_is_understood_by_whisper(piper_voice: PiperTTS, transcriber: Transcriber) -> None:
    text = "Turn off the lights in the kitchen, please."
    audio = render(piper_voice, text)
    heard = transcriber.transcribe(resample(audio[:, None], 22050, 16000)[:, 0])
    assert words(heard.text) == words(text)


def test_speed_changes_the_speaking_rate(piper_voice: PiperTTS) -> None:
    text = "Speaking faster makes the same words shorter."

    def spoken_seconds(speed: float) -> float:
        # Without Piper's duration noise (the same take every time) the rate alone changes the length.
        piper_voice.speed = speed
        on, off = speech_bounds(render(piper_voice, text), 22050)
        return off - on

    varied = piper_voice.varied
    piper_voice.varied = False
    try:
        normal, fast, slow = spoken_seconds(1.0), spoken_seconds(1.5), spoken_seconds(0.75)
        assert fast / normal == pytest.approx(1 / 1.5, rel=0.15)
        assert slow / normal == pytest.approx(1 / 0.75, rel=0.15)
        piper_voice.set_speed(9.0)
        assert piper_voice.speed == 2.0  # clamped
        with pytest.raises(UserError, match="positive"):
            piper_voice.speed = 0
    finally:
        piper_voice.speed = 1.0
        piper_voice.varied = varied


def test_cancel_stops_between_chunks(piper_voice: PiperTTS) -> None:
    assert list(piper_voice.synthesize(SENTENCES, cancel=lambda: True)) == []
    got: list[np.ndarray] = []
    for chunk in piper_voice.synthesize(SENTENCES, cancel=lambda: len(got) >= 1):
        got.append(chunk)
    assert len(got) == 1


def test_a_voice_from_a_file_a_folder_or_an_id(tmp_path: Path) -> None:
    shipped = shipped_store().path_of(DEFAULT_VOICE_ID)
    onnx = next(shipped.glob("*.onnx"))
    by_file = PiperTTS(onnx)
    assert by_file.name == "en_US-joe-medium" and by_file.sample_rate == 22050
    assert _resolve_piper(shipped, None) == (onnx, "en_US-joe-medium")  # a folder holding one voice
    voice = load_voice("piper", DEFAULT_VOICE_ID, store=shipped_store(), speed=1.2)
    assert isinstance(voice, PiperTTS) and voice.speed == 1.2
    assert len(render(voice, "Hello.")) > 0


def test_broken_voices_are_clear_errors(tmp_path: Path) -> None:
    shipped = shipped_store().path_of(DEFAULT_VOICE_ID)
    onnx = next(shipped.glob("*.onnx"))

    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "voice.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match=r"\.onnx\.json"):
        PiperTTS(lonely)
    with pytest.raises(UserError, match=r"\.onnx\.json"):
        PiperTTS(lonely / "voice.onnx")

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "voice.onnx").write_bytes(b"\x08\x01" * 500)
    shutil.copy(f"{onnx}.json", damaged / "voice.onnx.json")
    with pytest.raises(UserError, match="could not be loaded"):
        PiperTTS(damaged)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no Piper voice"):
        PiperTTS(empty)
    with pytest.raises(UserError, match="not found"):
        PiperTTS(tmp_path / "missing.onnx")
    with pytest.raises(UserError):
        PiperTTS("no-such-voice", store=shipped_store())
    with pytest.raises(UserError, match="piper or bark"):
        load_voice("espeak", DEFAULT_VOICE_ID)
    with pytest.raises(UserError, match="Bark model folder"):
        load_voice("bark", DEFAULT_VOICE_ID)


def test_list_voices_shows_usable_piper_voices() -> None:
    voices = dict(list_voices(shipped_store()))
    assert DEFAULT_VOICE_ID in voices
    assert "Joe" in voices[DEFAULT_VOICE_ID]
    assert "piper-en-us-lessac-medium" not in voices  # not downloaded
    assert all("whisper" not in model_id for model_id in voices)


# ---- Bark ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return make_tiny_bark(tmp_path_factory.mktemp("bark") / "tiny-bark")


def test_bark_from_a_model_folder(tiny_bark: Path) -> None:
    voice = load_voice("bark", tiny_bark, device="cpu")
    assert isinstance(voice, BarkTTS) and isinstance(voice, Voice)
    assert voice.sample_rate == 24000
    assert voice.device == "cpu"
    assert voice.name == "tiny-bark"
    chunks = list(voice.synthesize("hello world. hello again!"))
    assert len(chunks) == 2  # one per sentence
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1 and len(chunk) > 0
        assert np.all(np.isfinite(chunk)) and np.abs(chunk).max() <= 1.0
    assert list(voice.synthesize("hello. world.", cancel=lambda: True)) == []


def test_a_broken_bark_folder_is_a_clear_error(tmp_path: Path, tiny_bark: Path) -> None:
    with pytest.raises(UserError, match=r"config\.json is missing"):
        BarkTTS(tmp_path)
    with pytest.raises(UserError, match="was not found"):
        BarkTTS(tmp_path / "nowhere")
    broken = tmp_path / "broken-bark"
    shutil.copytree(tiny_bark, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 128)
    with pytest.raises(UserError, match="could not be loaded"):
        BarkTTS(broken, device="cpu")


def test_bark_as_the_model_manager_downloads_it(tmp_path: Path, tiny_bark: Path) -> None:
    """suno/bark-small comes as its weights, configs, tokenizer.json and vocab.txt, without the
    processor files: the voice makes its tokenizer from those and speaks."""
    from transformers import BertTokenizerFast

    folder = tmp_path / "bark-small"
    shutil.copytree(tiny_bark, folder)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).backend_tokenizer.save(
        str(folder / "tokenizer.json")
    )
    for name in ("tokenizer_config.json", "special_tokens_map.json", "speaker_embeddings_path.json"):
        (folder / name).unlink(missing_ok=True)
    kept = sorted(p.name for p in folder.iterdir())
    assert "tokenizer_config.json" not in kept and "tokenizer.json" in kept and "vocab.txt" in kept
    voice = BarkTTS(folder, device="cpu")
    assert type(voice._processor).__name__ == "BarkProcessor"
    (chunk,) = list(voice.synthesize("hello world."))
    assert chunk.dtype == np.float32 and len(chunk) > 0 and np.all(np.isfinite(chunk))
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").unlink()
    with pytest.raises(UserError, match="no tokenizer"):
        BarkTTS(folder, device="cpu")
