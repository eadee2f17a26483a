"""The lean Gemma 3 forward pass (workers/assistant/fast_decoder.py) computes what transformers computes:
the same logits on a small random Gemma 3 (grouped keys, sliding window shorter than the prompt, its own
query scale, chunked prefill, a cache that grows and is copied), and the same greedy answer with the
shipped Gemma 3 270M in float16 weights; other models keep transformers' own path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llm_fixtures import gemma_llm, gemma_store_dir, make_tiny_llm  # noqa: E402, F401

from workers.assistant import fast_decoder  # noqa: E402
from workers.assistant.fast_decoder import FastCache, FastGemma3  # noqa: E402
from workers.assistant.llm import ChatMessage, TransformersLM  # noqa: E402

WINDOW = 6


def tiny_gemma3(seed: int = 0) -> Any:
    config = transformers.Gemma3TextConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=32,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = transformers.Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3)  # the norms start at zero: make them count
    return model


def hf_logits(model: Any, ids: list[int], cache: Any = None) -> tuple[Any, Any]:
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return out.logits[0, -1].float(), out.past_key_values


def test_float32_logits_match_transformers_past_the_sliding_window_and_in_chunks() -> None:
    model = tiny_gemma3()
    assert fast_decoder.supports(model) == ""
    lean = FastGemma3(model, "float32")
    prompt = [2, 17, 93, 5, 250, 8, 41, 77, 12, 199, 3]  # longer than the window
    ref, past = hf_logits(model, prompt)
    cache = lean.new_cache()
    got = lean.forward(prompt, cache)
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
    # The same prompt fed in chunks of 3 (the chunked prefill of a long prompt) gives the same logits.
    chunked = lean.new_cache()
    for start in range(0, len(prompt), 3):
        out = lean.forward(prompt[start : start + 3], chunked)
    assert torch.allclose(out, ref, atol=1e-4)
    # Decoding well past the window, one token at a time.
    token = int(ref.argmax())
    for _ in range(3 * WINDOW):
        ref, past = hf_logits(model, [token], past)
        got = lean.forward([token], cache)
        assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
        assert int(got.argmax()) == int(ref.argmax())
        token = int(ref.argmax())
    assert cache.length == len(prompt) + 3 * WINDOW


def test_the_cache_grows_in_place_and_a_copy_is_independent() -> None:
    model = tiny_gemma3(seed=1)
    lean = FastGemma3(model, "float32")
    small = FastCache(len(lean.layers), lean.kv_heads, lean.head_dim, capacity=4)
    big = lean.new_cache()
    ids = [2, 9, 8, 7, 6, 5, 4]
    a = lean.forward(ids, small)  # grows from 4 positions
    b = lean.forward(ids, big)
    assert small.capacity >= len(ids) and torch.allclose(a, b, atol=1e-5)
    snapshot = copy.deepcopy(small)
    after = lean.forward([11], small)
    again = lean.forward([11], snapshot)  # the copy did not see the first continuation
    assert torch.allclose(after, again, atol=1e-5)
    assert snapshot.length == small.length == len(ids) + 1
    # The prompt's positions taken after the cache went on growing (past its room: it reallocated)
    # continue exactly as a copy taken at the time.
    for token in range(20, 40):
        lean.forward([token], small)
    earlier = small.prefix_copy(len(ids))
    assert earlier.length == len(ids)
    assert torch.allclose(lean.forward([11], earlier), after, atol=1e-5)
    with pytest.raises(ValueError):
        small.prefix_copy(small.length + 1)


@pytest.mark.parametrize(("one", "many"), [("float16", "float32"), ("float16", "bfloat16"), ("bfloat16", "bfloat16")])
def test_16_bit_weights_keep_the_greedy_tokens_of_the_tiny_model(one: str, many: str) -> None:
    model = tiny_gemma3(seed=2)
    exact, half = FastGemma3(model, "float32", "float32"), FastGemma3(model, one, many)
    c1, c2 = exact.new_cache(), half.new_cache()
    x, y = exact.forward([2, 40, 41, 42], c1), half.forward([2, 40, 41, 42], c2)
    for _ in range(12):
        assert int(x.argmax()) == int(y.argmax())
        assert (x - y).abs().max() < 0.05
        token = int(x.argmax())
        x, y = exact.forward([token], c1), half.forward([token], c2)


def test_other_models_keep_the_transformers_path(tmp_path: Path) -> None:
    folder = make_tiny_llm(tmp_path / "llama")
    lm = TransformersLM(folder, device="cpu")
    assert fast_decoder.supports(lm.model) != ""
    assert lm._fast is None
    assert fast_decoder.for_model(lm.model) is None
    assert "".join(lm.stream([ChatMessage("user", "hi")], max_new_tokens=4, temperature=0)) is not None


def test_the_shipped_gemma_answers_the_same_through_the_lean_path(gemma_llm: Any) -> None:  # noqa: F811
    lm = gemma_llm
    assert lm._fast is not None
    assert (lm._fast.weights, lm._fast.prompt_weights) == fast_decoder.pick_weights()
    ids = lm.prompt_ids([ChatMessage("user", "What is the capital of France?")])
    # The model's own float32 weights were freed when both kinds are 16-bit: transformers' reference
    # is the same folder loaded again.
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(lm.folder), dtype=torch.float32).eval()
    assert lm._fast.released == ("float32" not in fast_decoder.pick_weights())
    ref, past = hf_logits(reference, ids)
    cache = lm._fast.new_cache()
    got = lm._fast.forward(ids, cache)
    lean_tokens, hf_tokens = [], []
    for _ in range(10):
        lean_tokens.append(int(got.argmax()))
        hf_tokens.append(int(ref.argmax()))
        got = lm._fast.forward([hf_tokens[-1]], cache)
        ref, past = hf_logits(reference, [hf_tokens[-1]], past)
    assert lean_tokens == hf_tokens
    question = [ChatMessage("user", "What is the capital of France?")]
    answer = "".join(lm.stream(question, max_new_tokens=12, temperature=0))
    assert "Paris" in answer
