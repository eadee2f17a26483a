"""Cutting streamed replies into sentences, and making model output speakable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.assistant.sentences import SentenceSplitter, speakable

REPLY = (
    "Hello there! The capital of France is Paris. Dr. Smith said e.g. this costs 3.14 dollars. "
    "J. R. R. Tolkien wrote it. Is that right? Yes... it is. Options:\n1. First item\n2. Second one\n\n"
    "It is 5 p.m. now. Done"
)
EXPECTED = [
    "Hello there!",
    "The capital of France is Paris.",
    "Dr. Smith said e.g. this costs 3.14 dollars.",
    "J. R. R. Tolkien wrote it.",
    "Is that right?",
    "Yes... it is.",
    "Options:",
    "1. First item",
    "2. Second one",
    "It is 5 p.m. now.",
    "Done",
]


def split_all(text: str, step: int, soft_limit: int = 160) -> list[str]:
    splitter = SentenceSplitter(soft_limit=soft_limit)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_sentences_come_out_whole_however_the_text_streams(step: int) -> None:
    assert split_all(REPLY, step) == EXPECTED


def test_a_sentence_is_handed_out_as_soon_as_it_is_certain() -> None:
    s = SentenceSplitter()
    assert s.feed("The capital of France") == []
    assert s.feed(" is Paris.") == []  # "Paris." could still be "Paris.com"
    assert s.feed(" It") == ["The capital of France is Paris."]
    assert s.feed(" is big!") == []
    assert s.feed(" ") == ["It is big!"]  # "!" needs no look at the next word
    assert s.feed("Dr.") == []
    assert s.feed(" ") == []  # "Dr. " waits for the next word
    assert s.feed("Who") == []
    assert s.pending.startswith("Dr. Who")
    assert s.flush() == ["Dr. Who"]
    assert s.flush() == []


def test_line_breaks_end_sentences_and_empty_text_gives_nothing() -> None:
    assert split_all("# Title\nSome text\n\n- a point\n", 4) == ["# Title", "Some text", "- a point"]
    assert split_all("   \n\n  ", 2) == []
    assert SentenceSplitter().feed("") == []


def test_a_long_sentence_is_cut_at_a_clause() -> None:
    long = "When the first light of the morning comes over the hills, the birds start to sing, " * 3
    out = split_all(long + "and then it is day.", 5, soft_limit=100)
    assert len(out) >= 2
    assert all(len(s) <= 160 for s in out)
    assert " ".join(out) == " ".join((long + "and then it is day.").split())
    assert split_all(long, 5, soft_limit=0) == [" ".join(long.split())]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["Hello", " world", ".", " ", "Dr", "!", "?", "\n", "3", "a", " e.g", ",", "…", "'", ")", "Yes", "x"]
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=9),
)
def test_no_text_is_lost_or_changed(tokens: list[str], step: int) -> None:
    text = "".join(tokens)
    out = split_all(text, step)
    assert " ".join(out) == " ".join(text.split())
    assert out == split_all(text, len(text) + 1)  # chunking never changes the result
    assert all(s and s == s.strip() for s in out)


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("Assistant: Sure, I can help.", "Sure, I can help."),
        ("**Paris** is the _capital_ of *France*.", "Paris is the capital of France."),
        ("See [the docs](https://example.com/docs) for more.", "See the docs for more."),
        ("Visit https://example.com/a?b=c. It helps.", "Visit. It helps."),
        ("Great idea! 😀👍🏽 Let's go.", "Great idea! Let's go."),
        ("Use `pip install x` now.", "Use pip install x now."),
        ("## Steps\n- Mix the flour\n- Bake it", "Steps. Mix the flour. Bake it"),
        ("Here:\n```python\nprint('hi')\n```\nThat prints hi.", "Here: That prints hi."),
        ("The snake_case name stays.", "The snake_case name stays."),
        ("> A quote, said <b>loudly</b>.", "A quote, said loudly."),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a, b. 1, 2"),
    ],
)
def test_speakable(raw: str, spoken: str) -> None:
    assert speakable(raw) == spoken


@pytest.mark.parametrize("raw", ["", "   ", "😀🎉", "```\ncode only\n```", "**", "https://example.com", "---"])
def test_nothing_to_say(raw: str) -> None:
    assert speakable(raw) == ""


def test_the_first_clause_of_a_reply_is_handed_out_at_once() -> None:
    splitter = SentenceSplitter(first_clause=12)
    assert splitter.feed("Sure, ") == []  # too short to start on
    assert splitter.feed("the capital of France is Paris, ") == ["Sure, the capital of France is Paris,"]
    # later clauses wait for their sentence
    assert splitter.feed("a city on the Seine, ") == []
    assert splitter.feed("with the Louvre. It ") == ["a city on the Seine, with the Louvre."]
    assert splitter.flush() == ["It"]
    splitter.reset()
    assert splitter.feed("There are 10,000 lakes here. ") == ["There are 10,000 lakes here."]
    splitter.reset()
    assert splitter.feed("Counting 1, 2 and 3 is easy") == []  # a comma inside a list of numbers
    assert SentenceSplitter().feed("The capital of France is Paris, ") == []  # off by default
