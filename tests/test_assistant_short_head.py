"""The greedy pick from a 4-bit shortlist of the output head, with either kernel (torch's int4, ONNX
Runtime's MatMulNBits): the same token as an argmax over the whole float16 head (ties to the lowest
id, the repetition penalty included), the whole head when the shortlist cannot be sure, the faster
kernel chosen, and the shipped Gemma's answers unchanged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from llm_fixtures import gemma_llm, gemma_store_dir  # noqa: F401

from workers.assistant.llm import ChatMessage, TransformersLM
from workers.assistant.short_head import CANDIDATES, GROUP, KERNELS, ShortlistHead, _quantize_nbits, for_head

VOCAB, HIDDEN = 8192, 128


@pytest.fixture(params=KERNELS)
def kernel(request: Any) -> str:
    return request.param


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


def test_a_clear_winner_comes_from_the_shortlist_and_equals_the_whole_head(kernel: str) -> None:
    weight, _ = head_and_hidden()
    head = ShortlistHead(weight, kernel)
    for token in (0, 17, 4095, VOCAB - 1):
        hidden = peaked(weight, token)
        assert head.pick(hidden) == reference(head, hidden) == token
    assert head.short_steps == 4 and head.full_steps == 0


def test_a_flat_distribution_goes_to_the_whole_head(kernel: str) -> None:
    weight, hidden = head_and_hidden(1)
    head = ShortlistHead(weight, kernel)
    tiny = hidden * 1e-3  # every logit about the same: the shortlist cannot be sure
    assert head.pick(tiny) == reference(head, tiny)
    assert head.full_steps == 1 and head.short_steps == 0


def test_the_penalty_and_ties_follow_the_whole_head(kernel: str) -> None:
    weight, _ = head_and_hidden(2)
    weight[300] = weight[200]  # two identical rows: a tie
    head = ShortlistHead(weight, kernel)
    hidden = peaked(weight, 200)
    assert head.pick(hidden) == reference(head, hidden) == 200  # the lower id of the two
    # The winners penalised: the pick moves on, exactly as over the whole head.
    for penalty in (1.1, 3.0):
        want = reference(head, hidden, [200, 300], penalty)
        assert head.pick(hidden, [200, 300, 200], penalty) == want


def test_random_steps_pick_as_the_whole_head_does(kernel: str) -> None:
    weight, _ = head_and_hidden(3)
    head = ShortlistHead(weight, kernel)
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
    with pytest.raises(ValueError, match="unknown 4-bit kernel"):
        ShortlistHead(torch.zeros(VOCAB, HIDDEN, dtype=torch.float16), "cuda")
    assert CANDIDATES < VOCAB


def test_the_onnx_copy_scores_as_its_4_bit_weights_say() -> None:
    """MatMulNBits' layout: the packed nibbles, scales and zero points read back give weights within
    half a step of the float16 head, and the kernel's logits match a product with them (its 8-bit
    activations cost a little more)."""
    weight, hidden = head_and_hidden(5)
    packed, scales, zeros = _quantize_nbits(weight, torch)
    groups = HIDDEN // GROUP
    q = torch.from_numpy(packed).reshape(VOCAB, groups, GROUP // 2)
    q = torch.stack([q & 15, q >> 4], -1).reshape(VOCAB, groups, GROUP).float()
    z = torch.from_numpy(zeros).reshape(VOCAB, -1)
    z = torch.stack([z & 15, z >> 4], -1).reshape(VOCAB, -1)[:, :groups].float()
    s = torch.from_numpy(scales).reshape(VOCAB, groups)
    dequantized = ((q - z[..., None]) * s[..., None]).reshape(VOCAB, HIDDEN)
    step = s.repeat_interleave(GROUP, 1)
    assert bool(((dequantized - weight.float()).abs() <= 0.5 * step + 1e-6).all())
    head = ShortlistHead(weight, "onnx")
    got = head.approximate(hidden)
    want = dequantized @ hidden
    assert got.shape == (VOCAB,) and got.dtype == torch.float32
    assert float((got - want).abs().max()) < 0.02 * float(want.abs().max())


def test_the_faster_kernel_is_kept_and_a_failing_one_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernels race on the first rows of the head and only the winner copies the whole head."""
    import workers.assistant.short_head as short_head

    made: list[tuple[str, int]] = []
    real_init = ShortlistHead.__init__

    def counting_init(self: ShortlistHead, weight: Any, kernel: str = "torch") -> None:
        made.append((kernel, weight.shape[0]))
        real_init(self, weight, kernel)

    monkeypatch.setattr(ShortlistHead, "__init__", counting_init)
    monkeypatch.setattr(short_head, "TRIAL_ROWS", 16384)
    caplog.set_level(logging.INFO, logger="workers.assistant.short_head")
    weight = (torch.randn(262144 // 4, 640) * 0.05).half()  # big enough that 4 bits may pay off
    picked = for_head(weight)
    raced = {r.args[0]: r.args[1] for r in caplog.records if r.getMessage().startswith("4-bit kernel ") and r.args}
    assert set(raced) == set(KERNELS)  # both raced on 16384 rows, then the winner took the whole head
    winner = min(raced, key=raced.__getitem__)
    assert made == [(k, 16384) for k in KERNELS] + [(winner, weight.shape[0])]
    if picked is not None:
        assert picked.kernel == winner and set(picked.timings) == {"whole", winner}
        assert picked.timings[winner] < 0.9 * picked.timings["whole"]

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("no such kernel here")

    caplog.clear()
    made.clear()
    monkeypatch.setattr(short_head, "_OnnxInt4", broken)
    head = for_head(weight)
    assert "the onnx 4-bit kernel is not used: no such kernel here" in caplog.text
    assert made[-1] == ("torch", weight.shape[0])
    assert head is None or head.kernel == "torch"
    monkeypatch.setattr(short_head, "_TorchInt4", broken)
    assert for_head(weight) is None


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
