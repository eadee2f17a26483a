"""The language model's reading of the end of a turn: how likely the user's sentence ends where the
early transcript's words stop (Whisper's own closing mark taken off). The shipped Gemma tells whole
questions from broken-off ones; the reading comes from the same pass over the prompt that begins the
answer (the same number as asked on its own, the same answer as without it); the live pipeline keeps
a turn open that the voice and the words alone would have ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assistant_fixtures import speech_16k
from llm_fixtures import gemma_llm, gemma_store_dir, tiny_base_llm_dir, tiny_chat_llm_dir  # noqa: F401
from test_assistant_pipeline import serve  # noqa: F401  (the fixture: a local chat server)

from workers.assistant.llm import ChatMessage, TransformersLM
from workers.assistant.options import AssistantOptions
from workers.assistant.turn_words import TEXT_END_MIN, end_token_ids, sounds_unfinished, strip_final_marks

SYSTEM = AssistantOptions().system_prompt


def asked(text: str) -> list[ChatMessage]:
    return [ChatMessage("system", SYSTEM), ChatMessage("user", text)]


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("What is the capital?", "What is the capital"),
        ("Who wrote Romeo and Juliet.", "Who wrote Romeo and Juliet"),
        ("  Stop!  ", "Stop"),
        ('He said "hi."', 'He said "hi'),
        ("What is 2 plus 2?", "What is 2 plus 2"),
        ("¿Qué hora es?", "¿Qué hora es"),
        ("", ""),
    ],
)
def test_the_closing_mark_is_taken_off(text: str, bare: str) -> None:
    assert strip_final_marks(text) == bare


def test_sentence_ending_tokens_are_found_by_their_text() -> None:
    vocab = {"?": 1, "▁?": 2, ".": 3, "?\n": 4, "\n\n": 5, "<0x0A>": 6, "▁of": 7, ",": 8, "▁...": 9, "?!": 10, "a.": 11}
    texts = {1: "?", 2: " ?", 3: ".", 4: "?\n", 5: "\n\n", 6: "\n", 7: " of", 8: ",", 9: " ...", 10: "?!", 11: "a."}
    assert end_token_ids(vocab, lambda ids: texts[ids[0]]) == [1, 2, 3, 4, 5, 6, 9, 10]


FINISHED = ["What is the capital of France?", "How many legs does a spider have?", "Who wrote Romeo and Juliet?",
            "Name three fruits.", "What's the weather like?", "Tell me a joke.", "What is 2 plus 2?"]
BROKEN_OFF = ["What is the capital?", "What is the capital of", "How many legs does a", "Who wrote Romeo and",
              "Tell me about my", "Can you tell me what the", "Please tell me a short joke about"]


def test_the_shipped_gemma_reads_whole_and_broken_off_questions(gemma_llm: Any) -> None:  # noqa: F811
    whole = {text: gemma_llm.turn_end_probability(asked(text)) for text in FINISHED}
    broken = {text: gemma_llm.turn_end_probability(asked(text)) for text in BROKEN_OFF}
    assert all(p is not None and p >= TEXT_END_MIN for p in whole.values()), whole
    assert all(p is not None and p < TEXT_END_MIN for p in broken.values()), broken
    # These end on words a sentence may end on ("capital", "of", "about"): punctuated as Whisper does,
    # the word list lets them pass, and only the model's reading keeps the turn open.
    missed = ["What is the capital?", "What is the capital of?", "Please tell me a short joke about?"]
    assert not any(sounds_unfinished(text) for text in missed)
    assert all(gemma_llm.turn_end_probability(asked(text)) < TEXT_END_MIN for text in missed)


def test_the_reading_comes_with_the_answer_at_no_change(gemma_llm: Any) -> None:  # noqa: F811
    for text in ("What is the capital of France?", "Who wrote Romeo and"):
        messages = asked(text)
        gemma_llm._last = None
        apart = gemma_llm.turn_end_probability(messages)
        gemma_llm._last = None
        plain = "".join(gemma_llm.stream(messages, max_new_tokens=16, temperature=0))
        gemma_llm._last = None
        got: list[float | None] = []
        read = "".join(gemma_llm.stream(messages, max_new_tokens=16, temperature=0, on_turn_end=got.append))
        assert read == plain
        # The same position read in a longer chunk: equal but for rounding (prompts may run on 16-bit
        # weights, whose sums depend on how many tokens go through together).
        assert len(got) == 1 and got[0] == pytest.approx(apart, rel=0.05, abs=1e-4)
        # Asked first on its own, the reading leaves its cache for the answer.
        gemma_llm._last = None
        gemma_llm.turn_end_probability(messages)
        again = "".join(gemma_llm.stream(messages, max_new_tokens=16, temperature=0))
        assert again == plain
        assert gemma_llm.last_stats["cached_tokens"] >= gemma_llm.last_stats["prompt_tokens"] - 4


def test_the_reading_on_the_transformers_path(tiny_base_llm_dir: Path) -> None:  # noqa: F811
    """Without the lean decoder (a tiny random Llama): the reading comes from the logits transformers
    keeps for the probed position, equal to the reading asked on its own."""
    lm = TransformersLM(tiny_base_llm_dir, device="cpu")
    assert lm._fast is None and lm.reads_turn_end
    messages = asked("The capital of France is Paris.")
    apart = lm.turn_end_probability(messages)
    lm._last = None
    got: list[float | None] = []
    list(lm.stream(messages, max_new_tokens=3, temperature=0, on_turn_end=got.append))
    assert apart is not None and 0.0 <= apart <= 1.0
    assert got == [pytest.approx(apart, rel=1e-3, abs=1e-6)]


def test_no_reading_where_it_cannot_be_had(tiny_chat_llm_dir: Path) -> None:  # noqa: F811
    lm = TransformersLM(tiny_chat_llm_dir, device="cpu")  # a chat template: no completion-style prompt
    assert not lm.reads_turn_end
    assert lm.turn_end_probability(asked("What time is it?")) is None
    got: list[float | None] = []
    assert list(lm.stream(asked("What time is it?"), max_new_tokens=2, temperature=0, on_turn_end=got.append))
    assert got == [None]
    assert lm.turn_end_probability([ChatMessage("system", SYSTEM)]) is None  # no user words


class Reading:
    """A served model with a reading of the turn's end: ``read(words)`` gives the probability that a
    sentence ends after the user's words (their closing mark taken off)."""

    reads_turn_end = True

    def __init__(self, llm: Any, read: Any) -> None:
        self.llm, self.read = llm, read

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    def stream(self, messages: list[ChatMessage], on_turn_end: Any = None, **kw: Any) -> Any:
        if on_turn_end is not None:
            on_turn_end(self.read(strip_final_marks(messages[-1].content)))
        return self.llm.stream(messages, **kw)


def test_the_live_pipeline_waits_when_the_model_reads_a_broken_off_question(serve) -> None:  # noqa: F811
    """"What is the capital of" + 0.9 s + "France?", the voice judged finished at every pause (a
    stand-in turn model) and Whisper writing "What is the capital of?" ("of" may end a sentence, so
    the word list lets it pass): a language model that reads the words as broken off keeps the turn
    open, and the whole question is one turn, answered once. Without its reading the question is cut."""
    from test_assistant_pipeline import components
    from test_assistant_turn_words import ask_with_a_pause

    served = serve("Paris.")
    readings: list[str] = []

    def broken_after_of(words: str) -> float:
        readings.append(words)
        return 0.001 if words.lower().endswith(" of") else 0.9

    heard, done, timings, turns = ask_with_a_pause(
        components(Reading(served.llm, broken_after_of)), "What is the capital of", "France?"
    )
    assert "capital" in heard and "france" in heard, heard
    assert done.text == "Paris."
    assert timings.data["turn_text_prob"] == 0.9  # the end itself: the whole question read as whole
    assert any(w.lower().endswith(" of") for w in readings), readings
    assert turns == 1


def test_the_reading_counts_for_english_only() -> None:
    """The endpointer's second opinion reads the model's probability for an English transcript, waits
    while it is being read, and leaves other languages to the voice and the punctuation."""
    from types import SimpleNamespace

    from workers.assistant.pipeline import VoicePipeline, _Speculation

    parts = SimpleNamespace(turn=lambda _audio: 0.9)
    pipeline = VoicePipeline(parts, AssistantOptions(), source=None, sink=None, on_event=lambda _e: None)
    spec = _Speculation(np.zeros(1600, np.float32))
    unfinished = pipeline._words_check(SimpleNamespace(spec=spec))
    spec.done_at, spec.text = 1.0, "What is the capital?"
    spec.transcript = SimpleNamespace(language="en")
    assert unfinished(None) is None  # the model is still reading the words
    spec.end_prob, spec.end_read = 0.001, True
    assert unfinished(None) is True
    spec.end_prob = 0.9
    assert unfinished(None) is False
    spec.end_prob = None  # no reading could be had: the voice decides
    assert unfinished(None) is False
    spec.text, spec.transcript, spec.end_prob = "Quelle est la capitale ?", SimpleNamespace(language="fr"), 0.001
    assert unfinished(None) is False
    spec.end_read = False
    assert unfinished(None) is False  # nor is it waited for


def test_a_plainly_closed_sentence_ends_a_turn_the_voice_calls_unfinished() -> None:
    """The endpointer's second opinion on a turn the voice calls unfinished: the words close a sentence
    when the model reads its end as likely (from ``TEXT_END_SURE``), in English, and never while they
    are being transcribed or read, nor when the word list hears them break off."""
    from types import SimpleNamespace

    from workers.assistant.pipeline import VoicePipeline, _Speculation
    from workers.assistant.turn_words import TEXT_END_SURE

    parts = SimpleNamespace(turn=lambda _audio: 0.1)
    pipeline = VoicePipeline(parts, AssistantOptions(), source=None, sink=None, on_event=lambda _e: None)
    cap = SimpleNamespace(spec=None, endpointer=SimpleNamespace())
    pipeline._attach_words(cap)
    closed = cap.endpointer.words_finished
    assert closed is not None and cap.endpointer.words_unfinished is not None
    assert closed(None) is False  # no early transcript: the pause decides
    cap.spec = spec = _Speculation(np.zeros(1600, np.float32))
    assert closed(None) is None  # still being transcribed
    spec.done_at, spec.text = 1.0, "How many minutes are there in one hour?"
    spec.transcript = SimpleNamespace(language="en")
    assert closed(None) is None  # the model is still reading the words
    spec.end_prob, spec.end_read = TEXT_END_SURE + 0.1, True
    assert closed(None) is True
    spec.end_prob = TEXT_END_SURE - 0.1
    assert closed(None) is False
    spec.end_prob = None  # no reading could be had
    assert closed(None) is False
    spec.text, spec.end_prob = "How many minutes are there in the", 0.99
    assert closed(None) is False  # the word list hears it break off
    spec.text, spec.transcript = "Combien de minutes dans une heure ?", SimpleNamespace(language="fr")
    assert closed(None) is False  # measured on English only
    spec.cancelled.set()
    assert closed(None) is False

    # Without learned turn detection there is no second opinion either way.
    silence_only = VoicePipeline(
        SimpleNamespace(turn=None), AssistantOptions(turn_detection="silence"), source=None, sink=None,
        on_event=lambda _e: None,
    )
    cap = SimpleNamespace(spec=None, endpointer=SimpleNamespace())
    silence_only._attach_words(cap)
    assert cap.endpointer.words_unfinished is None and cap.endpointer.words_finished is None


def test_the_live_pipeline_ends_a_closed_question_the_voice_calls_unfinished(serve, monkeypatch) -> None:  # noqa: F811
    """A whole question, the voice judged unfinished at every pause (a stand-in turn model): a language
    model that reads the words as a closed sentence ends the turn without the long pause (the timings
    say the words closed it), and the question is one turn, answered once."""
    from test_assistant_pipeline import Live, assert_turn, components
    from test_assistant_turn import RATE, voiced

    from workers.assistant.pipeline import VoicePipeline

    served = serve("Sixty.")
    make = VoicePipeline._make_endpointer

    def patient(self: VoicePipeline) -> Any:
        endpointer = make(self)
        endpointer.words_wait_ms = 30_000  # however slow this machine transcribes, the words are waited for
        return endpointer

    monkeypatch.setattr(VoicePipeline, "_make_endpointer", patient)
    parts = components(Reading(served.llm, lambda _words: 0.9))
    parts.turn = lambda _audio: 0.1
    with Live(parts, AssistantOptions()) as live:
        live.wait_state("listening")
        live.mic.say(voiced(speech_16k("How many minutes are there in one hour?")) * 0.7, RATE)
        done, timings = assert_turn(live, 1, None)
        live.wait(lambda: live.pipeline.state == "listening", what="listening again")
        assert len(live.of("user")) == 1
    assert done.text == "Sixty."
    assert timings.data["turn_prob"] == 0.1
    assert timings.data["turn_words_finished"] is True
    assert timings.data["turn_text_prob"] == 0.9
