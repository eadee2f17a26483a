"""Conversations: turns, the prompt within a token budget, JSON and Markdown files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.assistant.conversation import Conversation, Turn
from workers.assistant.llm import ChatMessage
from workers.assistant.options import DEFAULT_SYSTEM_PROMPT
from workers.errors import UserError


def words(text: str) -> int:
    return len(text.split())


def sample() -> Conversation:
    conv = Conversation(system_prompt="Be brief.\nSpeak plainly.")
    t = conv.new_turn("What is the capital of France?")
    t.assistant = "Paris."
    t.timings = {"asr_ms": 412.5, "first_token_ms": 95.0, "first_audio_ms": 1210.0}
    t = conv.new_turn("Tell me a long story", source="text")
    t.assistant = "Once upon a time,\n\nthere was a **bold** robot"
    t.interrupted = True
    t = conv.new_turn("## not a heading\n**User:** not a label\n\\## a backslash\n<!-- turn {} -->\n*(interrupted)*")
    t.assistant = "Naïve café 東京 🙂 — ok"
    return conv


def test_turns_are_numbered_and_stamped() -> None:
    conv = Conversation()
    assert conv.system_prompt == DEFAULT_SYSTEM_PROMPT and conv.turns == []
    a = conv.new_turn("hello")
    b = conv.new_turn("again", source="text")
    assert (a.id, b.id) == (1, 2)
    assert a.source == "voice" and b.source == "text"
    assert a.created and "T" in a.created
    assert conv.last_turn is b and conv.turn(1) is a and conv.turn(9) is None
    conv.clear()
    assert conv.turns == [] and conv.new_turn("x").id == 1


def test_messages_hold_the_system_prompt_and_the_newest_turns_within_budget() -> None:
    conv = Conversation(system_prompt="Be brief.")
    for i in range(20):
        turn = conv.new_turn(f"question number {i}")
        turn.assistant = f"answer number {i} with some more words"
    conv.new_turn("the current question")
    everything = conv.messages(budget=100_000, count=words)
    assert everything[0] == ChatMessage("system", "Be brief.")
    assert len(everything) == 1 + 20 * 2 + 1
    assert everything[-1] == ChatMessage("user", "the current question")

    trimmed = conv.messages(budget=60, count=words)
    assert trimmed[0].role == "system" and trimmed[1].role == "user"
    assert trimmed[-1] == ChatMessage("user", "the current question")
    assert 3 <= len(trimmed) < len(everything)
    assert sum(words(m.content) + 4 for m in trimmed) <= 60
    assert trimmed[-2].content == "answer number 19 with some more words"

    # An interrupted reply is remembered as far as it went; an empty one is left out.
    conv = Conversation(system_prompt="")
    t = conv.new_turn("talk")
    t.assistant, t.interrupted = "I was say", True
    conv.new_turn("stop")
    assert [m.role for m in conv.messages(budget=1000, count=words)] == ["user", "assistant", "user"]


def test_json_round_trip() -> None:
    conv = sample()
    back = Conversation.from_json(conv.to_json())
    assert back == conv


def test_markdown_round_trip_and_readability() -> None:
    conv = sample()
    text = conv.to_markdown()
    assert text.startswith("# Conversation")
    assert "**User:**\n\nWhat is the capital of France?" in text
    assert "*(interrupted)*" in text
    assert "\\## not a heading" in text  # the user's line does not become a heading
    back = Conversation.from_markdown(text)
    assert back == conv


def test_markdown_written_by_hand_loads() -> None:
    text = "# Chat\n\n## Turn 1\n\n**User:**\n\nHi there\n\n**Assistant:**\n\nHello!\n\n## Turn 2\n\n**User:**\n\nBye\n"
    conv = Conversation.from_markdown(text)
    assert conv.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert [(t.id, t.user, t.assistant) for t in conv.turns] == [(1, "Hi there", "Hello!"), (2, "Bye", "")]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=80),
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=80),
            st.booleans(),
        ),
        max_size=4,
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=60),
)
def test_markdown_round_trip_of_any_text(turns: list[tuple[str, str, bool]], system: str) -> None:
    conv = Conversation(system_prompt=system.strip())
    for user, assistant, interrupted in turns:
        t = conv.new_turn(user.strip())
        t.assistant = assistant.strip()
        t.interrupted = interrupted
    assert Conversation.from_markdown(conv.to_markdown()) == conv
    assert Conversation.from_json(conv.to_json()) == conv


def test_save_and_load_by_suffix(tmp_path: Path) -> None:
    conv = sample()
    for name in ("chat.json", "chat.md", "chat.markdown"):
        path = conv.save(tmp_path / name)
        assert path == tmp_path / name
        assert Conversation.load(path) == conv
    assert (tmp_path / "chat.json").read_text(encoding="utf-8").lstrip().startswith("{")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    with pytest.raises(UserError, match=r"\.json or \.md"):
        conv.save(tmp_path / "chat.txt")
    # A conversation file without a known suffix is recognised by its content.
    (tmp_path / "chat.txt").write_text(conv.to_json(), encoding="utf-8")
    assert Conversation.load(tmp_path / "chat.txt") == conv


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.json", b"{ not json", "damaged"),
        ("list.json", b"[1, 2, 3]", "not a saved conversation"),
        ("other.json", b'{"format": "something-else", "turns": []}', "not a saved conversation"),
        ("turns.json", b'{"turns": [{"user": 5}]}', "damaged"),
        ("notes.md", b"# My notes\n\nNothing to see here.\n", "not a saved conversation"),
        ("broken.md", b"## Turn 1\n\nno labels here\n", "damaged"),
        ("binary.md", bytes(range(256)) * 4, "not a saved conversation"),
    ],
)
def test_a_bad_file_is_a_user_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        Conversation.load(path)
    assert name in str(info.value)


def test_missing_file_or_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        Conversation.load(tmp_path / "nothing.json")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(UserError, match="folder"):
        Conversation.load(folder)
    with pytest.raises(UserError):
        sample().save(folder)


def test_turn_defaults() -> None:
    turn = Turn(id=3, user="hi")
    assert turn.assistant == "" and not turn.interrupted and turn.source == "voice" and turn.timings == {}
