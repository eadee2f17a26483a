"""Language models and a language model server built by the tests themselves (nothing is downloaded).

- :func:`make_tiny_llm` writes a tiny randomly initialised Llama-style causal LM and a byte-level
  BPE tokenizer trained on a few sentences with the ``tokenizers`` library into a folder
  (``save_pretrained``), with a ChatML chat template or without one (a "base" model). The
  end-of-sequence rows of its output layer are zero, so it keeps talking until ``max_new_tokens``.
- :func:`make_tiny_gemma3_gguf` / :func:`make_tiny_llama_gguf` write tiny GGUF files (Gemma 3 with a
  SentencePiece-style vocabulary and Q8_0 weights; Llama with a byte-level BPE vocabulary) for the
  conversion code.
- :class:`FakeOpenAIServer`: an OpenAI-compatible chat server on 127.0.0.1 (``/v1/models``,
  ``/v1/chat/completions`` streamed as server-sent events in chunked HTTP), with scripted answers,
  a delay between chunks, and a record of the requests it got.
- Session fixtures shared by every test module that imports them (``from llm_fixtures import ...``):
  ``tiny_chat_llm_dir`` / ``tiny_base_llm_dir`` (folders), ``gemma_store_dir`` (a model store folder
  where the shipped Gemma-3-270M GGUF is joined and converted once per test session),
  ``gemma_store`` (a ModelStore on it) and ``gemma_llm`` (the converted Gemma, loaded once).
  The work is cached in this module, so it is done once per session even when several modules
  import the fixtures.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CORPUS = [
    "Hello there, how are you today?",
    "The capital of France is Paris.",
    "A spider has eight legs.",
    "The quick brown fox jumps over the lazy dog.",
    "What time is it? It is twelve o'clock.",
    "User: tell me a story. Assistant: Once upon a time there was a small robot.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ! ? : ; ' \" ( )",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ---- a tiny transformers model ---------------------------------------------------------------


def build_tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on :data:`CORPUS` (any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return tok


def make_tiny_llm(folder: str | Path, chat_template: bool = True, *, seed: int = 0) -> Path:
    """Write a tiny random Llama causal LM and its tokenizer into ``folder`` (returned)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = build_tiny_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    vocab = raw.get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=raw.token_to_id("<s>"),
        eos_token_id=raw.token_to_id("</s>"),
        pad_token_id=raw.token_to_id("<pad>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Never end on its own: the end tokens get logit 0 while the others spread around it.
        for token in ("</s>", "<|im_end|>", "<pad>", "<s>", "<|im_start|>", "<unk>"):
            model.lm_head.weight[raw.token_to_id(token)] = 0.0
        model.lm_head.weight.mul_(20.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if chat_template:
        # Written into tokenizer_config.json as well, for transformers versions that look there.
        config_path = folder / "tokenizer_config.json"
        data = json.loads(config_path.read_text(encoding="utf-8"))
        data.setdefault("chat_template", CHATML_TEMPLATE)
        config_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return folder


# ---- tiny GGUF files -------------------------------------------------------------------------


def _spm_vocab(words: Sequence[str]) -> tuple[list[str], list[float], list[int]]:
    """A small SentencePiece-BPE-style vocabulary: specials, 256 byte tokens, characters, word prefixes."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 3, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    chars = sorted(set("".join(words)) | set("\u2581\n"))
    seen = set(tokens)
    for c in chars:
        if c not in seen:
            tokens.append(c)
            types.append(1)
            seen.add(c)
    for word in words:
        piece = "\u2581" + word
        for end in range(2, len(piece) + 1):
            prefix = piece[:end]
            if prefix not in seen:
                tokens.append(prefix)
                types.append(1)
                seen.add(prefix)
    scores = [-float(i) for i in range(len(tokens))]
    return tokens, scores, types


def make_tiny_gemma3_gguf(path: str | Path, *, seed: int = 0, quantize: bool = True) -> Path:
    """A tiny Gemma 3 GGUF (2 layers, 64 wide, Q8_0 matrices, F32 norms stored as 1 + w, as llama.cpp does)."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    words = " ".join(CORPUS).replace(",", " ").replace(".", " ").split()
    tokens, scores, types = _spm_vocab(words)
    vocab = len(tokens)
    # Q8_0 needs rows in blocks of 32; head_dim 256 as in every real Gemma 3 but the 27B (transformers'
    # own GGUF loader assumes it).
    hidden, heads, kv_heads, head_dim, ffn, layers = 64, 2, 1, 256, 128, 2
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("tiny gemma3")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_sliding_window(16)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def matrix(name: str, rows: int, cols: int) -> None:
        data = (rng.standard_normal((rows, cols)) * 0.08).astype(np.float32)
        if quantize:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, data)

    def norm(name: str, n: int) -> None:
        w.add_tensor(name, (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32))

    matrix("token_embd.weight", vocab, hidden)
    for i in range(layers):
        norm(f"blk.{i}.attn_norm.weight", hidden)
        matrix(f"blk.{i}.attn_q.weight", heads * head_dim, hidden)
        matrix(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        matrix(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        norm(f"blk.{i}.attn_q_norm.weight", head_dim)
        norm(f"blk.{i}.attn_k_norm.weight", head_dim)
        matrix(f"blk.{i}.attn_output.weight", hidden, heads * head_dim)
        norm(f"blk.{i}.post_attention_norm.weight", hidden)
        norm(f"blk.{i}.ffn_norm.weight", hidden)
        matrix(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        matrix(f"blk.{i}.ffn_up.weight", ffn, hidden)
        matrix(f"blk.{i}.ffn_down.weight", hidden, ffn)
        norm(f"blk.{i}.post_ffw_norm.weight", hidden)
    norm("output_norm.weight", hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_tiny_llama_gguf(
    path: str | Path, *, seed: int = 0, quant: str | None = None, pre: str = "default", kv_heads: int = 2
) -> Path:
    """A tiny Llama GGUF with a byte-level BPE vocabulary (F32, or its matrices in ``quant``: "Q4_0",
    "Q4_1" or "Q8_0"). ``pre`` is llama.cpp's pre-tokenizer name (``"default"`` and ``"smollm"`` are
    converted by the studio's own code, others through transformers)."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = build_tiny_tokenizer()
    model = json.loads(raw.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    specials = {"<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"}
    types = [3 if t in specials else 1 for t in tokens]
    n_vocab = len(tokens)
    hidden, heads, ffn, layers = 32, 2, 64, 2
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("</s>"))
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_pad_token_id(tokens.index("<pad>"))

    def t(name: str, *shape: int, scale: float = 0.1, base: float = 0.0) -> None:
        data = (base + rng.standard_normal(shape) * scale).astype(np.float32)
        if quant is not None and len(shape) == 2:
            kind = gguf.GGMLQuantizationType[quant]
            w.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
        else:
            w.add_tensor(name, data)

    kv_width = hidden // heads * kv_heads
    t("token_embd.weight", n_vocab, hidden)
    for i in range(layers):
        t(f"blk.{i}.attn_norm.weight", hidden, base=1.0)
        t(f"blk.{i}.attn_q.weight", hidden, hidden)
        t(f"blk.{i}.attn_k.weight", kv_width, hidden)
        t(f"blk.{i}.attn_v.weight", kv_width, hidden)
        t(f"blk.{i}.attn_output.weight", hidden, hidden)
        t(f"blk.{i}.ffn_norm.weight", hidden, base=1.0)
        t(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        t(f"blk.{i}.ffn_up.weight", ffn, hidden)
        t(f"blk.{i}.ffn_down.weight", hidden, ffn)
    t("output_norm.weight", hidden, base=1.0)
    t("output.weight", n_vocab, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ---- a fake OpenAI-compatible server ---------------------------------------------------------

Answer = str | Callable[[list[dict[str, Any]]], str]


class FakeOpenAIServer:
    """An OpenAI-compatible chat server on 127.0.0.1 for tests.

    ``answers``: replies given in turn (the last one repeats), or one callable taking the request's
    messages. Each reply is streamed in ``chunk_size``-word chunks, ``chunk_delay`` seconds apart.
    ``models``: what ``/v1/models`` lists; a chat request naming another model gets HTTP 404 the way
    Ollama answers it. ``fail_status``: answer every chat request with this HTTP status instead.
    ``requests``: every request as ``{"method", "path", "body"}``.
    """

    def __init__(
        self,
        answers: Sequence[Answer] | Answer = ("Hello! I am a test server.",),
        *,
        models: Sequence[str] = ("tiny-test-model",),
        chunk_delay: float = 0.0,
        chunk_size: int = 1,
        fail_status: int | None = None,
    ) -> None:
        self.answers: list[Answer] = [answers] if isinstance(answers, str) or callable(answers) else list(answers)
        self.models = list(models)
        self.chunk_delay = chunk_delay
        self.chunk_size = chunk_size
        self.fail_status = fail_status
        self.requests: list[dict[str, Any]] = []
        self.chunks_sent = 0
        self._count = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life ----
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._record(self, None)
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    listed = [{"id": m, "object": "model", "owned_by": "test"} for m in server.models]
                    data = {"object": "list", "data": listed}
                    self._json(200, data)
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                server._record(self, body)
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._json(404, {"error": {"message": "not found"}})
                    return
                if not isinstance(body, dict):
                    self._json(400, {"error": {"message": "invalid JSON"}})
                    return
                if server.fail_status is not None:
                    self._json(server.fail_status, {"error": {"message": "the test server was told to fail"}})
                    return
                model = body.get("model")
                if model and model not in server.models and f"{model}:latest" not in server.models:
                    self._json(404, {"error": {"message": f'model "{model}" not found, try pulling it first'}})
                    return
                answer = server._answer(body.get("messages") or [])
                if not body.get("stream"):
                    self._json(200, server._completion(answer, model))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for piece in server._pieces(answer):
                        self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                        with server._lock:
                            server.chunks_sent += 1
                        if server.chunk_delay:
                            time.sleep(server.chunk_delay)
                    self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _event(self, data: dict[str, Any]) -> None:
                data = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "test", **data}
                self._chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

            def _chunk(self, payload: bytes) -> None:
                self.wfile.write(f"{len(payload):X}\r\n".encode() + payload + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The API base URL, as a user types it into the settings."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- behaviour ----
    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path, "body": body})

    def _answer(self, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            index = min(self._count, len(self.answers) - 1)
            self._count += 1
        answer = self.answers[index]
        return answer(messages) if callable(answer) else answer

    def _pieces(self, answer: str) -> Iterator[str]:
        words = answer.split(" ")
        for i in range(0, len(words), self.chunk_size):
            piece = " ".join(words[i : i + self.chunk_size])
            yield piece if i == 0 else " " + piece

    @staticmethod
    def _completion(answer: str, model: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": model or "test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        }

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]


# ---- session fixtures (cached here: once per session whichever modules import them) ----------

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def _once(key: str, build: Callable[[], Any]) -> Any:
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


@pytest.fixture(scope="session")
def tiny_chat_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random transformers model folder with a ChatML chat template."""
    return _once("tiny-chat", lambda: make_tiny_llm(tmp_path_factory.mktemp("tiny-chat-llm"), chat_template=True))


@pytest.fixture(scope="session")
def tiny_base_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same without a chat template (prompted as a written dialogue)."""
    return _once("tiny-base", lambda: make_tiny_llm(tmp_path_factory.mktemp("tiny-base-llm"), chat_template=False))


def _build_gemma_store(root: Path) -> Path:
    from workers.assistant.gguf_convert import ensure_converted
    from workers.assistant.llm import SHIPPED_GEMMA_ID
    from workers.models.store import ModelStore

    store = ModelStore(root)
    gguf_path = store.path_of(SHIPPED_GEMMA_ID)  # joins the four parts into the store
    ensure_converted(gguf_path, store.root)
    return root


@pytest.fixture(scope="session")
def gemma_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store folder holding the shipped Gemma-3-270M GGUF, joined and converted (once)."""
    return _once("gemma-store", lambda: _build_gemma_store(tmp_path_factory.mktemp("gemma-store")))


@pytest.fixture(scope="session")
def gemma_store(gemma_store_dir: Path) -> Any:
    """A :class:`~workers.models.store.ModelStore` on :func:`gemma_store_dir`."""
    from workers.models.store import ModelStore

    return ModelStore(gemma_store_dir)


@pytest.fixture(scope="session")
def gemma_llm(gemma_store_dir: Path) -> Any:
    """The shipped Gemma loaded once per session, as ``load_language_model`` gives it on the CPU."""

    def build() -> Any:
        from workers.assistant.llm import load_language_model
        from workers.assistant.options import AssistantOptions
        from workers.models.store import ModelStore

        return load_language_model(AssistantOptions(), store=ModelStore(gemma_store_dir), device="cpu")

    return _once("gemma-llm", build)
