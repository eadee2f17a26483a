"""The words' second opinion on the end of a turn: a transcript that breaks off ("Who wrote Romeo and")
keeps a turn open that the voice alone would have ended; the endpointer waits for the words, but not
for ever; the live pipeline waits through such a pause and answers the whole question once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from assistant_fixtures import shipped_store, speech_16k
from test_assistant_pipeline import serve  # noqa: F401  (the fixture: a local chat server)
from test_assistant_turn import RATE, ends, voiced

from workers.assistant.options import AssistantOptions
from workers.assistant.turn_words import sounds_unfinished
from workers.assistant.vad import FRAME_SAMPLES, Endpointer, SileroVAD


@pytest.mark.parametrize(
    "text",
    [
        "who wrote Romeo and",
        "What do bees",
        "What is the",
        "Tell me about my",
        "I was thinking...",
        "I was thinking…",
        "So the thing is,",
        "What is, um",
        "Is it red or-",
        "Could you tell me the.",  # punctuated, but a sentence does not end on "the"
    ],
)
def test_broken_off_words_sound_unfinished(text: str) -> None:
    assert sounds_unfinished(text, "en")


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "What is it made of?",
        "Where are you from?",
        "Do you know what time it is?",
        "What is this?",
        "I think so.",
        "Tell me about her.",
        "Set a timer for 5",  # a number ends it: Whisper often leaves the stop off
        'He said "hello"',
        "",  # nothing heard: the voice decides
        "   ",
    ],
)
def test_finished_sentences_do_not(text: str) -> None:
    assert not sounds_unfinished(text, "en")


def test_other_languages_go_by_punctuation_alone() -> None:
    assert not sounds_unfinished("Qui a écrit Roméo et la?", "fr")  # "la" is no English article here
    assert not sounds_unfinished("Wer hat das geschrieben?", "de")
    assert sounds_unfinished("Wer hat das", "de")
    assert not sounds_unfinished("これは何ですか？", "ja")
    assert sounds_unfinished("what is the", None)  # unknown language, plain ASCII: the English words count


def stream_of(text: str) -> tuple[np.ndarray, float]:
    audio = voiced(speech_16k(text))
    lead = np.zeros(RATE // 2, np.float32)
    return np.concatenate([lead, audio, np.zeros(RATE * 2, np.float32)]), (len(lead) + len(audio)) / RATE


def test_the_endpointer_asks_the_words_when_the_voice_sounds_finished() -> None:
    vad = SileroVAD(store=shipped_store())
    stream, words_end = stream_of("Which planet is the largest in our solar system?")
    asked: list[int] = []

    def finished_voice(_audio: np.ndarray) -> float:
        return 0.9

    def words(verdict: bool | None):
        def check(audio: np.ndarray) -> bool | None:
            asked.append(len(audio))
            return verdict

        return check

    # Words that read as finished: the turn ends as soon as the voice said so.
    ep = Endpointer(vad, min_silence_ms=1200, turn=finished_voice, words_unfinished=words(False))
    (end,) = ends(ep, stream)
    assert end - words_end < 0.45 and ep.last_words_unfinished is False
    assert len(asked) == 1 and asked[0] > RATE  # given the utterance so far

    # Broken-off words: the voice's verdict is overruled and the long pause decides.
    vad.reset()
    asked.clear()
    ep = Endpointer(vad, min_silence_ms=1200, turn=finished_voice, words_unfinished=words(True))
    (end,) = ends(ep, stream)
    assert end - words_end > 1.1 and ep.last_words_unfinished is True
    assert len(asked) == 1  # asked once per silence

    # Words not known yet: asked each frame, then the voice decides after words_wait_ms.
    vad.reset()
    asked.clear()
    ep = Endpointer(vad, min_silence_ms=1200, turn=finished_voice, words_unfinished=words(None), words_wait_ms=320)
    (end,) = ends(ep, stream)
    assert 0.3 < end - words_end < 0.45 + 0.32
    assert len(asked) == 320 // (FRAME_SAMPLES * 1000 // RATE) + 1

    # A check that fails is dropped: the voice decides from then on.
    vad.reset()
    ep = Endpointer(vad, min_silence_ms=1200, turn=finished_voice, words_unfinished=lambda _a: 1 / 0)
    (end,) = ends(ep, stream)
    assert end - words_end < 0.45 and ep.words_unfinished is None


def test_the_endpointer_asks_the_words_when_the_voice_sounds_unfinished() -> None:
    """A turn the voice calls unfinished ends at once when the words plainly close a sentence, and
    waits through the pause when they do not, are not known in time, or cannot be had."""
    vad = SileroVAD(store=shipped_store())
    stream, words_end = stream_of("How many minutes are there in one hour?")
    asked: list[int] = []

    def unsure_voice(_audio: np.ndarray) -> float:
        return 0.1

    def words(verdict: bool | None):
        def check(audio: np.ndarray) -> bool | None:
            asked.append(len(audio))
            return verdict

        return check

    ep = Endpointer(vad, min_silence_ms=1200, turn=unsure_voice, words_finished=words(True))
    (end,) = ends(ep, stream)
    assert end - words_end < 0.45 and ep.last_words_finished is True and ep.last_turn_prob == 0.1
    assert len(asked) == 1 and asked[0] > RATE  # given the utterance so far

    vad.reset()
    asked.clear()
    ep = Endpointer(vad, min_silence_ms=1200, turn=unsure_voice, words_finished=words(False))
    (end,) = ends(ep, stream)
    assert end - words_end > 1.1 and ep.last_words_finished is False
    assert len(asked) == 1  # asked once per silence

    vad.reset()
    asked.clear()
    ep = Endpointer(vad, min_silence_ms=1200, turn=unsure_voice, words_finished=words(None), words_wait_ms=320)
    (end,) = ends(ep, stream)
    assert end - words_end > 1.1 and ep.last_words_finished is None
    assert len(asked) == 320 // (FRAME_SAMPLES * 1000 // RATE) + 1

    vad.reset()
    ep = Endpointer(vad, min_silence_ms=1200, turn=unsure_voice, words_finished=lambda _a: 1 / 0)
    (end,) = ends(ep, stream)
    assert end - words_end > 1.1 and ep.words_finished is None

    # A voice that calls the turn finished is not second-guessed by this check.
    vad.reset()
    asked.clear()
    ep = Endpointer(vad, min_silence_ms=1200, turn=lambda _a: 0.9, words_finished=words(False))
    (end,) = ends(ep, stream)
    assert end - words_end < 0.45 and asked == []


def test_the_words_arrive_a_few_frames_late() -> None:
    vad = SileroVAD(store=shipped_store())
    stream, words_end = stream_of("Which planet is the largest in our solar system?")
    calls = {"n": 0}

    def late_words(_audio: np.ndarray) -> bool | None:
        calls["n"] += 1
        return None if calls["n"] < 4 else False  # the transcript is ready at the fourth frame

    ep = Endpointer(vad, min_silence_ms=1200, turn=lambda _a: 0.9, words_unfinished=late_words)
    (end,) = ends(ep, stream)
    assert calls["n"] == 4
    assert end - words_end < 0.45 + 0.15


def ask_with_a_pause(parts: Any, first: str, rest: str, pause_s: float = 0.9) -> tuple[str, Any, Any, int]:
    """Say ``first``, pause, say ``rest`` into a live pipeline on ``parts`` whose voice is judged
    finished at every pause (a stand-in turn model); wait for one answered turn and for listening
    again: (what was heard, the done event, the timings event, how many turns were heard)."""
    from test_assistant_pipeline import Live, assert_turn

    parts.turn = lambda _audio: 0.95
    said = [voiced(speech_16k(first)), np.zeros(int(RATE * pause_s), np.float32), voiced(speech_16k(rest))]
    with Live(parts, AssistantOptions()) as live:
        live.wait_state("listening")
        live.mic.say(np.concatenate(said) * 0.7, RATE)
        done, timings = assert_turn(live, 1, None)
        heard = live.of("user")[0].text.lower()
        live.wait(lambda: live.pipeline.state == "listening", what="listening again")
        return heard, done, timings, len(live.of("user"))


def test_the_live_pipeline_waits_when_the_words_break_off(serve) -> None:  # noqa: F811
    """A question with a 0.9 s pause after "and", the voice judged finished at every pause (a stand-in
    turn model): the early transcript ("… of France and") keeps the turn open, and the whole question
    is one turn, answered once."""
    from test_assistant_pipeline import components

    served = serve("Paris, and they speak French.")
    heard, done, timings, turns = ask_with_a_pause(
        components(served.llm), "What is the capital of France and", "which language do they speak?"
    )
    assert "france" in heard and "speak" in heard, heard
    assert done.text == "Paris, and they speak French."
    assert timings.data["turn_words_unfinished"] is False  # the end itself: words and voice agree
    assert turns == 1
