"""Speech recognition with the shipped Whisper tiny.en, on speech made by the shipped Piper voice."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from assistant_fixtures import (
    QUESTIONS,
    noise,
    question_wav,
    shipped_store,
    speech_16k,
    transcriber_fixture,  # noqa: F401  (the transcriber fixture)
    utterance_16k,
    words,
)

from workers.assistant.asr import (
    SAMPLE_RATE,
    Segment,
    Transcriber,
    Transcript,
    format_transcript,
    read_audio_16k,
)
from workers.errors import Cancelled, UserError


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, words(a), words(b)).ratio()


def test_tiny_en_transcribes_spoken_questions_word_for_word(transcriber: Transcriber) -> None:
    assert transcriber.name.startswith("Whisper tiny.en")
    assert not transcriber.multilingual
    assert transcriber.languages == ["en"]
    assert (transcriber.device, transcriber.compute_type) == ("cpu", "int8")
    for question in QUESTIONS:
        t = transcriber.transcribe(utterance_16k(question, lead_s=0.3, tail_s=0.3))
        assert similarity(t.text, question) >= 0.85, (t.text, question)
        assert t.language == "en"
        assert t.duration == pytest.approx(len(utterance_16k(question, 0.3, 0.3)) / SAMPLE_RATE)
        assert t.seconds > 0 and t.real_time_factor > 0
        assert t.segments and t.segments[0].text
    first = transcriber.transcribe(utterance_16k(QUESTIONS[0], 0.3, 0.3))
    assert words(first.text) == words(QUESTIONS[0])


def test_the_short_clip_path_gives_the_words_of_the_full_window(transcriber: Transcriber) -> None:
    audio = utterance_16k(QUESTIONS[1], 0.2, 0.2)
    fast = transcriber.transcribe(audio, language="en")
    saved = transcriber.short_window
    try:
        transcriber.short_window = 0.0
        full = transcriber.transcribe(audio, language="en")
    finally:
        transcriber.short_window = saved
    assert words(fast.text) == words(full.text)


def test_silence_and_noise_give_no_words(transcriber: Transcriber) -> None:
    assert transcriber.transcribe(np.zeros(SAMPLE_RATE, np.float32)).text == ""
    assert transcriber.transcribe(np.zeros(100, np.float32)).text == ""
    hiss = transcriber.transcribe(noise(1.5, dbfs=-45))
    assert len(words(hiss.text)) <= 2  # Whisper may mumble "you" on hiss, never a sentence


def test_language_choice(transcriber: Transcriber) -> None:
    audio = utterance_16k(QUESTIONS[0], 0.2, 0.2)
    assert transcriber.transcribe(audio, language="en").language == "en"
    assert transcriber.transcribe(audio, language="auto").language == "en"  # tiny.en: auto means English
    with pytest.raises(UserError, match="English only"):
        transcriber.transcribe(audio, language="de")


def test_a_wav_at_an_odd_rate_and_channel_count(transcriber: Transcriber, tmp_path: Path) -> None:
    for rate, channels in ((44100, 2), (8000, 1), (48000, 6)):
        wav = question_wav(tmp_path, QUESTIONS[0], rate=rate, channels=channels)
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels) == (rate, channels)
        audio = read_audio_16k(wav)
        assert audio.ndim == 1 and audio.dtype == np.float32
        assert len(audio) / SAMPLE_RATE == pytest.approx(info.duration, abs=0.01)
        t = transcriber.transcribe_file(wav)
        assert similarity(t.text, QUESTIONS[0]) >= 0.85, (rate, channels, t.text)
        assert t.duration == pytest.approx(info.duration, abs=0.01)


def test_a_compressed_file_is_read_through_pyav(transcriber: Transcriber, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    voice = speech_16k(QUESTIONS[1])
    path = tmp_path / "question.m4a"
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=22050, layout="stereo")
            from workers.media.audio import resample

            stereo = np.repeat(resample(voice[:, None] * 0.5, SAMPLE_RATE, 22050), 2, axis=1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo.T), format="fltp", layout="stereo")
            frame.sample_rate = 22050
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except Exception as exc:  # an FFmpeg build without an AAC encoder
        pytest.skip(f"cannot write AAC here: {exc}")
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # soundfile cannot read it: the PyAV path is the one under test
    t = transcriber.transcribe_file(path)
    assert similarity(t.text, QUESTIONS[1]) >= 0.85, t.text


def test_transcribe_file_reports_progress_and_cancels(transcriber: Transcriber, tmp_path: Path) -> None:
    wav = question_wav(tmp_path, QUESTIONS[2], rate=16000, channels=1)
    seen: list[tuple[int, int]] = []
    t = transcriber.transcribe_file(wav, progress=lambda done, total: seen.append((done, total)))
    assert t.text
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    with pytest.raises(Cancelled):
        transcriber.transcribe_file(wav, cancel=lambda: True)


def test_formats() -> None:
    t = Transcript(
        "Hello there. How are you?",
        [Segment(0.0, 1.25, "Hello there."), Segment(61.5, 3723.042, "How are you?")],
        "en",
        3724.0,
        1.0,
    )
    assert format_transcript(t, "txt") == "Hello there. How are you?\n"
    assert format_transcript(t, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:01:01,500 --> 01:02:03,042\nHow are you?\n"
    )
    assert format_transcript(t, "VTT") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n00:01:01.500 --> 01:02:03.042\nHow are you?\n"
    )
    empty = Transcript("", [], "en", 2.0, 0.1)
    assert format_transcript(empty, "txt") == ""
    assert format_transcript(empty, "vtt") == "WEBVTT\n\n"
    with pytest.raises(UserError, match="txt, srt or vtt"):
        format_transcript(t, "docx")


def test_srt_of_a_real_file(transcriber: Transcriber, tmp_path: Path) -> None:
    wav = question_wav(tmp_path, QUESTIONS[0], rate=22050, channels=1, lead_s=1.0)
    srt = format_transcript(transcriber.transcribe_file(wav), "srt")
    lines = srt.splitlines()
    assert lines[0] == "1"
    assert " --> " in lines[1] and lines[1].startswith("00:00:0")
    assert similarity(lines[2], QUESTIONS[0]) >= 0.85


def test_unreadable_files_are_clear_errors(transcriber: Transcriber, tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is not sound", encoding="utf-8")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "zero.wav"
    sf.write(str(silent), np.zeros((0, 2), np.float32), 44100)
    for bad, message in (
        (text, "could not be read as sound"),
        (empty, "could not be read as sound"),
        (silent, "holds no sound"),
        (tmp_path / "missing.wav", "not found"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(UserError, match=message):
            read_audio_16k(bad)
        with pytest.raises(UserError):
            transcriber.transcribe_file(bad)


def test_broken_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"model\.bin and config\.json are missing"):
        Transcriber(tmp_path, warmup=False)
    shipped = shipped_store().path_of("whisper-tiny-en-shipped")
    broken = tmp_path / "broken-whisper"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(shipped / name, broken / name)
    (broken / "model.bin").write_bytes(b"\x00" * 4096)
    with pytest.raises(UserError, match="could not be loaded"):
        Transcriber(broken, warmup=False)
    with pytest.raises(UserError, match="is a file"):
        Transcriber(broken / "model.bin", warmup=False)
    with pytest.raises(UserError, match="does not exist"):
        Transcriber(tmp_path / "nowhere", warmup=False)
    with pytest.raises(UserError):
        Transcriber("no-such-model-id", store=shipped_store(), warmup=False)
    with pytest.raises(UserError, match="Unknown compute device"):
        Transcriber(shipped, device="tpu", warmup=False)


@pytest.fixture(scope="module")
def base_transcriber() -> Transcriber:
    """The shipped multilingual Whisper base (skipped where its two packages are not installed)."""
    try:
        return Transcriber("whisper-base-shipped", store=shipped_store(), device="cpu")
    except UserError as exc:
        pytest.skip(f"the shipped Whisper base is not installed: {exc}")


def test_a_multilingual_model_finds_the_language_on_the_short_clip_path(
    base_transcriber: Transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert base_transcriber.multilingual and "de" in base_transcriber.languages
    audio = utterance_16k(QUESTIONS[0], 0.2, 0.2)
    chosen = base_transcriber.transcribe(audio, language="en")
    found: list[str | None] = []
    detect = base_transcriber._detect_language

    def spy(encoded: object) -> str | None:
        found.append(detect(encoded))
        return found[-1]

    monkeypatch.setattr(base_transcriber, "_detect_language", spy)
    heard = base_transcriber.transcribe(audio, language="auto")
    assert found == ["en"]  # found once, on the short clip's own encoding
    assert heard.language == "en"
    assert similarity(heard.text, QUESTIONS[0]) >= 0.85 and similarity(chosen.text, QUESTIONS[0]) >= 0.85


def test_an_unsure_language_guess_falls_back_to_the_full_window(
    base_transcriber: Transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = utterance_16k(QUESTIONS[1], 0.2, 0.2)
    monkeypatch.setattr(base_transcriber, "_detect_language", lambda _encoded: None)
    t = base_transcriber.transcribe(audio, language="auto")
    assert t.language == "en" and similarity(t.text, QUESTIONS[1]) >= 0.85
    assert base_transcriber.short_window > 0  # the short path stays on for the next clip
