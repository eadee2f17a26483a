"""The greedy pick from a 4-bit shortlist of the output head: the same token as an argmax over the
whole float16 head (ties to the lowest id, the repetition penalty included), the whole head when the
shortlist cannot be sure, and the shipped Gemma's answers unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from llm_fixtures import gemma_llm, gemma_store_dir  # noqa: F401

from workers.assistant.llm import ChatMessage, TransformersLM
from workers.assistant.short_head import CANDIDATES, ShortlistHead, for_head

VOCAB, HIDDEN = 8192, 128


def head_and_hidden(seed: int = 0) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(VOCAB, HIDDEN, generator=g) * 0.05).half()
    return weight, torch.randn(HIDDEN, generator=g)


def reference(head: ShortlistHead, hidden: Any, penalized: list[int] = (), penalty: float = 1.0) -> int:
    logits = head.full(hidden)
    if penalized:
        recent = torch.tensor(sorted(set(penalized)))
        v = logits[recent]
        logits[recent] = torch.where(v > 0, v / penalty, v * penalty)
    return int(torch.argmax(logits))


def peaked(weight: Any, token: int, strength: float = 60.0) -> Any:
    """A hidden state whose best token is clearly ``token`` (as after a confident step)."""
    row = weight[token].float()
    return row / row.norm() * strength


def test_a_clear_winner_comes_from_the_shortlist_and_equals_the_whole_head() -> None:
    weight, _ = head_and_hidden()
    head = ShortlistHead(weight)
    for token in (0, 17, 4095, VOCAB - 1):
        hidden = peaked(weight, token)
        assert head.pick(hidden) == reference(head, hidden) == token
    assert head.short_steps == 4 and head.full_steps == 0


def test_a_flat_distribution_goes_to_the_whole_head() -> None:
    weight, hidden = head_and_hidden(1)
    head = ShortlistHead(weight)
    tiny = hidden * 1e-3  # every logit about the same: the shortlist cannot be sure
    assert head.pick(tiny) == reference(head, tiny)
    assert head.full_steps == 1 and head.short_steps == 0


def test_the_penalty_and_ties_follow_the_whole_head() -> None:
    weight, _ = head_and_hidden(2)
    weight[300] = weight[200]  # two identical rows: a tie
    head = ShortlistHead(weight)
    hidden = peaked(weight, 200)
    assert head.pick(hidden) == reference(head, hidden) == 200  # the lower id of the two
    # The winners penalised: the pick moves on, exactly as over the whole head.
    for penalty in (1.1, 3.0):
        want = reference(head, hidden, [200, 300], penalty)
        assert head.pick(hidden, [200, 300, 200], penalty) == want


def test_random_steps_pick_as_the_whole_head_does() -> None:
    weight, _ = head_and_hidden(3)
    head = ShortlistHead(weight)
    g = torch.Generator().manual_seed(4)
    for step in range(60):
        mix = torch.randn(3, generator=g)
        rows = torch.randint(0, VOCAB, (3,), generator=g)
        hidden = (weight[rows].float() * mix[:, None]).sum(0) * (5.0 + step)
        assert head.pick(hidden, rows[:1].tolist(), 1.1) == reference(head, hidden, rows[:1].tolist(), 1.1)
    assert head.short_steps + head.full_steps == 60 and head.short_steps > 0


def test_heads_it_cannot_take() -> None:
    assert for_head(torch.zeros(VOCAB, HIDDEN)) is None  # float32: not the half head
    with pytest.raises(ValueError, match="does not fit"):
        ShortlistHead(torch.zeros(1000, 100, dtype=torch.float16))
    assert CANDIDATES < VOCAB


def test_the_shipped_gemma_answers_the_same_with_the_shortlist(gemma_llm: Any) -> None:  # noqa: F811
    lm = gemma_llm
    if lm._short is None:
        pytest.skip("the 4-bit shortlist is not faster on this CPU, so it is not used")
    plain = TransformersLM(lm.folder, device="cpu", backend="gguf", name="plain", short_head=False)
    assert plain._short is None
    before = lm._short.short_steps
    for question in ("What is the capital of France?", "How many legs does a spider have?", "Name three fruits."):
        messages = [ChatMessage("user", question)]
        got = "".join(lm.stream(messages, temperature=0, max_new_tokens=24))
        assert got == "".join(plain.stream(messages, temperature=0, max_new_tokens=24)), question
    assert lm._short.short_steps > before
    plain.close()
