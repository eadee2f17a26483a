"""The assistant's language models: one streaming interface, three backends (no Qt).

- ``transformers``: a model folder (config, tokenizer, weights). Instruction models are prompted
  with the tokenizer's chat template; base models (no template) with a completion-style dialogue
  (the system prompt as an instruction line, two worked ``User:``/``Assistant:`` examples, the
  conversation, then ``Assistant:``), stopped at the next ``User:``. GPU when present, 4/8-bit
  through bitsandbytes on CUDA when it is installed, greedy when the temperature is 0. The KV cache
  of the fixed part of the prompt (system prompt and examples) is computed once and reused, and so
  is the cache of the previous turn when the new prompt continues it, so a turn only pays for its
  new tokens. Generation runs token by token and checks ``cancel`` between tokens.
- ``gguf``: a GGUF file through llama-cpp-python when it is installed
  (:mod:`workers.assistant.llm_llamacpp`); otherwise the file is converted once into a transformers
  folder in the model store (:mod:`workers.assistant.gguf_convert`) and served by the transformers
  backend. The shipped default is Gemma-3-270M (a tiny base model).
- ``openai``: a local OpenAI-compatible server (Ollama, llama.cpp server, LM Studio): streamed chat
  completions (server-sent events) from the configured URL, and nothing else
  (:mod:`workers.assistant.llm_server`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from workers.assistant.turn_reading import TurnEndReading
from workers.errors import Cancelled, UserError

if TYPE_CHECKING:
    from workers.assistant.options import AssistantOptions
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]
Progress = Callable[[int, int], None]
Status = Callable[[str], None]

#: The model id of the shipped default (four pip packages joined into one GGUF on first use).
SHIPPED_GEMMA_ID = "gemma-3-270m-q4-k-m-shipped"
SHIPPED_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"

SHIPPED_GEMMA_NOTE = (
    "The built-in language model, Gemma 3 270M, is a tiny base model (not trained for chat): its answers "
    "are short and often wrong. For real conversations use a bigger instruction-tuned model such as "
    "Qwen2.5-3B-Instruct, Qwen2.5-7B-Instruct or Llama-3-8B-Instruct, as a transformers model folder or a "
    "GGUF file (GGUF runs best with llama-cpp-python: pip install llama-cpp-python), or run Ollama with a "
    "3-8B model (ollama pull qwen2.5:3b) and choose the OpenAI-compatible server backend."
)
BASE_MODEL_NOTE = (
    "This model has no chat template, so it is prompted as a written dialogue; an instruction-tuned "
    "(chat) model answers much better."
)

#: The worked examples of the completion-style prompt for base models.
DIALOGUE_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
)
USER_PREFIX = "User:"
ASSISTANT_PREFIX = "Assistant:"
#: Where a base model's reply ends: it starts writing the next turn (or a blank line).
DIALOGUE_STOPS: tuple[str, ...] = ("\nUser:", "\nUser :", "\nAssistant:", "\n\n")

#: Tokens that end a turn in common chat templates (used as extra end-of-sequence ids when the
#: tokenizer's template writes them).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "<|eom_id|>")

#: Prompt tokens fed per forward pass while prefilling (cancel is checked between chunks).
PREFILL_CHUNK = 96
#: The answer's recent tokens (this many) are made less likely by this factor, against loops.
REPETITION_PENALTY = 1.1
PENALTY_WINDOW = 64
#: Tokens a message costs beyond its text (role markers, newlines) in :func:`trim_history`.
MESSAGE_OVERHEAD = 4


# ---- the interface ---------------------------------------------------------------------------


@dataclass
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@runtime_checkable
class LanguageModel(Protocol):
    name: str
    backend: str  # "transformers" | "gguf" | "openai"
    #: A sentence for the UI (e.g. that the shipped model is tiny and which better ones to get), or "".
    note: str

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int = 120,
        temperature: float = 0.7,
        cancel: CancelCheck | None = None,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...


def trim_history(messages: list[ChatMessage], budget: int, count: Callable[[str], int]) -> list[ChatMessage]:
    """The system messages and the newest other messages that fit in ``budget`` tokens.

    The newest message is always kept (even alone over the budget); older ones go first, and the
    kept history never starts with an assistant reply whose question was dropped.
    """
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    used = sum(count(m.content) + MESSAGE_OVERHEAD for m in system)
    kept: list[ChatMessage] = []
    for message in reversed(rest):
        cost = count(message.content) + MESSAGE_OVERHEAD
        if kept and used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
    return system + kept


def approx_token_count(text: str) -> int:
    """A tokenizer-free estimate (about four characters a token) for servers that do not say."""
    text = text.strip()
    return 0 if not text else max(1, (len(text) + 3) // 4)


def dialogue_prompt(messages: Sequence[ChatMessage], examples: Sequence[tuple[str, str]] = DIALOGUE_EXAMPLES) -> str:
    """The completion-style prompt for a base model, ending with ``Assistant:``."""
    return _dialogue_prefix(messages, examples) + _dialogue_body(messages)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dialogue_prefix(messages: Sequence[ChatMessage], examples: Sequence[tuple[str, str]]) -> str:
    system = _one_line(" ".join(m.content for m in messages if m.role == "system"))
    lines = [system] if system else []
    for question, answer in examples:
        lines.append(f"{USER_PREFIX} {question}")
        lines.append(f"{ASSISTANT_PREFIX} {answer}")
    return "\n".join(lines) + "\n"


def _dialogue_body(messages: Sequence[ChatMessage]) -> str:
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            continue
        prefix = ASSISTANT_PREFIX if m.role == "assistant" else USER_PREFIX
        parts.append(f"{prefix} {_one_line(m.content)}\n")
    return "".join(parts) + ASSISTANT_PREFIX


@dataclass(frozen=True)
class _Hidden:
    """The last position's hidden state on the lean path: the output head is applied when a token is
    picked (a greedy pick may read only a shortlist of it)."""

    value: Any


@dataclass(frozen=True)
class _Prefix:
    """The first ``length`` positions of a lean-path cache that may have grown since."""

    cache: Any
    length: int


class _StopFilter:
    """Turns the growing decoded reply into deltas: leading blanks dropped, text that may be the
    start of a stop string held back, the reply cut where a stop string appears."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.emitted = ""
        self.stopped = False

    def _held(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

    def feed(self, text: str) -> str:
        """The new part of ``text`` (the whole reply so far) that can be shown now."""
        text = text.lstrip()
        cut = -1
        for stop in self.stops:
            i = text.find(stop)
            if i >= 0 and (cut < 0 or i < cut):
                cut = i
        if cut >= 0:
            self.stopped = True
            text = text[:cut].rstrip()
            return self._delta(text)
        safe = text[: len(text) - self._held(text)] if self.stops else text
        return self._delta(safe)

    def finish(self, text: str) -> str:
        """The rest of the reply at its end (nothing held back any more)."""
        if self.stopped:
            return ""
        text = text.lstrip()
        for stop in self.stops:
            i = text.find(stop)
            if i >= 0:
                text = text[:i]
        return self._delta(text.rstrip())

    def _delta(self, text: str) -> str:
        # If the decoder changed its mind about earlier text, what was said stays said.
        delta = text[len(self.emitted) :]
        if delta:
            self.emitted += delta
        return delta


# ---- transformers ------------------------------------------------------------------------------


def _has_weights(folder: Path) -> bool:
    patterns = ("*.safetensors", "pytorch_model*.bin", "model*.bin", "*.safetensors.index.json")
    return any(any(folder.glob(p)) for p in patterns)


def check_model_folder(folder: Path) -> None:
    """Raise a UserError unless ``folder`` looks like a transformers causal LM folder."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"The model folder {folder} was not found.")
    if folder.is_file():
        if folder.suffix.lower() == ".gguf":
            raise UserError(f"{folder.name} is a GGUF file; choose the GGUF backend for it.")
        raise UserError(f"{folder.name} is a file; choose a transformers model folder (with config.json).")
    config = folder / "config.json"
    if not config.is_file():
        raise UserError(
            f"{folder.name} is not a transformers model folder (it has no config.json); choose the folder that "
            "holds config.json, the tokenizer files and the weights, or a .gguf file with the GGUF backend."
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise UserError(f"The config.json in {folder.name} is damaged ({exc}); download the model again.") from None
    if not data.get("model_type"):
        raise UserError(f"The config.json in {folder.name} names no model type; it is not a transformers model.")
    if not _has_weights(folder):
        raise UserError(f"{folder.name} has no model weights (.safetensors or .bin files); download the model again.")
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json", "spiece.model")
    if not any((folder / f).is_file() for f in tokenizer_files):
        raise UserError(f"{folder.name} has no tokenizer files (tokenizer.json or tokenizer.model).")
    from workers.models.safety import check_weights

    check_weights(folder)  # a pytorch_model.bin that would run code: one sentence, and nothing is loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def pick_device(device: str = "auto") -> str:
    """"auto" → "cuda" when torch sees a GPU (else "mps" on Apple silicon, else "cpu")."""
    import torch

    if device in ("", "auto", None):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("No CUDA GPU is available to PyTorch here; choose the CPU (device auto or cpu).")
    return device


def _weights_bytes(folder: Path) -> int:
    total = 0
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        for p in folder.glob(pattern):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
    return total


class _Tokenizer:
    """The few tokenizer operations generation needs, over a transformers tokenizer or a bare
    ``tokenizers`` one (much faster to load for converted GGUF folders without a chat template)."""

    def __init__(self, folder: Path, *, bare: bool) -> None:
        self.hf: Any = None
        self.raw: Any = None
        self.chat_template: str | None = None
        if bare:
            from tokenizers import Tokenizer

            self.raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
            config = _read_json(folder / "tokenizer_config.json")
            self.eos_token = config.get("eos_token") if isinstance(config.get("eos_token"), str) else None
            self.bos_token = config.get("bos_token") if isinstance(config.get("bos_token"), str) else None
        else:
            from transformers import AutoTokenizer

            self.hf = AutoTokenizer.from_pretrained(str(folder))
            self.chat_template = getattr(self.hf, "chat_template", None) or None
            self.eos_token = getattr(self.hf, "eos_token", None)
            self.bos_token = getattr(self.hf, "bos_token", None)

    def token_id(self, token: str | None) -> int | None:
        if not token:
            return None
        if self.raw is not None:
            return self.raw.token_to_id(token)
        vocab = self.hf.get_vocab()
        return vocab.get(token)

    def vocab(self) -> dict[str, int]:
        """Token pieces to ids."""
        return dict(self.raw.get_vocab() if self.raw is not None else self.hf.get_vocab())

    def encode(self, text: str, *, special: bool) -> list[int]:
        if self.raw is not None:
            return list(self.raw.encode(text, add_special_tokens=special).ids)
        return list(self.hf(text, add_special_tokens=special)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        if self.raw is not None:
            return str(self.raw.decode(list(ids), skip_special_tokens=True))
        return str(self.hf.decode(list(ids), skip_special_tokens=True))

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        conv = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self.hf.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        except Exception:
            # Some templates (Gemma's, Mistral's) refuse a system role: fold it into the first user turn.
            system = "\n".join(m["content"] for m in conv if m["role"] == "system").strip()
            rest = [m for m in conv if m["role"] != "system"]
            if system and rest and rest[0]["role"] == "user":
                rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
            elif system:
                rest.insert(0, {"role": "user", "content": system})
            text = self.hf.apply_chat_template(rest, add_generation_prompt=True, tokenize=False)
        if not isinstance(text, str):  # some versions return a list when given a batch
            text = text[0]
        return text


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _half_head(model: Any, torch: Any, min_elements: int) -> bool:
    """On the CPU, compute the (large) output projection in float16: reading half the bytes per
    token makes it about twice as fast, and the logits barely change. A tied input embedding is
    stored once, in float16 too, and its output is cast back to float32."""
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return False
    weight = head.weight
    if weight.dtype != torch.float32 or weight.numel() < min_elements or weight.device.type != "cpu":
        return False
    embed = model.get_input_embeddings()
    tied = embed is not None and getattr(embed, "weight", None) is weight

    class HalfLinear(torch.nn.Module):
        def __init__(self, w: Any) -> None:
            super().__init__()
            self.weight = w
            self.in_features = w.shape[1]
            self.out_features = w.shape[0]

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.linear(x.to(torch.float16), self.weight).to(torch.float32)

    half = torch.nn.Parameter(weight.detach().to(torch.float16), requires_grad=False)
    if tied:
        embed.weight = half

        def to_float(_module: Any, _inputs: Any, output: Any) -> Any:
            return output.to(torch.float32)

        embed.register_forward_hook(to_float)
        with contextlib.suppress(Exception):
            model.config.tie_word_embeddings = False
    model.set_output_embeddings(HalfLinear(half))
    return True


class TransformersLM(TurnEndReading):
    """A transformers causal language model folder (see the module docstring)."""

    backend = "transformers"

    def __init__(
        self,
        folder: str | Path,
        *,
        device: str = "auto",
        quantization: str = "auto",
        name: str | None = None,
        note: str | None = None,
        backend: str = "transformers",
        examples: Sequence[tuple[str, str]] = DIALOGUE_EXAMPLES,
        half_head: bool | None = None,
        half_head_min_elements: int = 32_000_000,
        lean: bool | None = None,
        short_head: bool | None = None,
        reuse_cache: bool = True,
        threads: int = 0,
        status: Status | None = None,
    ) -> None:
        self.folder = Path(folder)
        #: CPU threads for torch (0: torch's default, one per core). torch's setting is per process.
        self.threads = threads
        #: Reuse the KV cache of the fixed prompt prefix and of the previous turn (off: every turn
        #: computes its whole prompt; the answers are the same).
        self.reuse_cache = reuse_cache
        check_model_folder(self.folder)
        self.backend = backend
        self.examples = tuple(examples)
        config = _read_json(self.folder / "config.json")
        self.name = name or str(config.get("_name_or_path") or "") or self.folder.name
        if "/" in self.name or os.sep in self.name:
            self.name = Path(self.name).name
        self._lock = threading.Lock()
        self._prefix: tuple[tuple[int, ...], Any, str] | None = None  # (ids, cache, key)
        self._last: tuple[tuple[int, ...], Any] | None = None  # prompt ids + cache after its prefill
        self._end_ids: Any = None  # the tokens that end a sentence (turn_end_probability), once found
        self._probed: Any = None  # the logits _forward kept at probe_at
        self.last_stats: dict[str, float] = {}
        self._closed = False
        try:
            self._load(device, quantization, half_head, half_head_min_elements, status, lean, short_head)
        except (UserError, Cancelled):
            raise
        except MemoryError:
            raise UserError(
                f"Not enough memory to load {self.name}; close other programs or choose a smaller model."
            ) from None
        except Exception as exc:
            log.warning("loading %s failed", self.folder, exc_info=True)
            raise UserError(
                f"The language model in {self.folder.name} could not be loaded: {_first_line(exc)}. "
                "Check that the folder is complete, or download the model again."
            ) from None
        self.chat = self.tokenizer.chat_template is not None
        if note is None:
            note = "" if self.chat else BASE_MODEL_NOTE
        self.note = note

    # ---- loading ----
    def _load(
        self,
        device: str,
        quantization: str,
        half_head: bool | None,
        half_head_min_elements: int,
        status: Status | None,
        lean: bool | None = None,
        short_head: bool | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self._torch = torch
        self.device = pick_device(device)
        if self.threads > 0 and self.device == "cpu":
            torch.set_num_threads(self.threads)
        from workers.assistant import gguf_convert

        bare = gguf_convert.is_converted(self.folder) and (self.folder / "tokenizer.json").is_file()
        if bare and _read_json(self.folder / "tokenizer_config.json").get("chat_template"):
            bare = False
        self.tokenizer = _Tokenizer(self.folder, bare=bare)

        kwargs: dict[str, Any] = {}
        size = _weights_bytes(self.folder)
        config = _read_json(self.folder / "config.json")
        stored = str(config.get("torch_dtype") or config.get("dtype") or "float32")
        if self.device == "cpu":
            # float32 is the fast path on CPUs; big models stay in 16 bits to fit in memory.
            fp32_size = size * (2 if stored in ("float16", "bfloat16") else 1)
            dtype = torch.float32 if fp32_size < 8 * 1024**3 else torch.bfloat16
        elif self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["device_map"] = {"": self.device}  # straight onto the GPU, not through CPU memory
            quant = self._pick_quantization(quantization, size, stored, torch)
            if quant is not None:
                kwargs["quantization_config"] = quant
        else:
            dtype = torch.float16
        self.dtype = dtype
        if status is not None:
            status(f"Loading {self.name}…")
        model = AutoModelForCausalLM.from_pretrained(str(self.folder), dtype=dtype, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(self.device)
        model.eval()
        self.model = model
        self.half_head = False
        if self.device == "cpu" and dtype == torch.float32 and half_head is not False:
            self.half_head = _half_head(model, torch, half_head_min_elements)
        #: The lean forward pass (workers/assistant/fast_decoder.py) for Gemma 3 text models on the CPU.
        self._fast: Any = None
        if self.device == "cpu" and dtype == torch.float32 and lean is not False:
            from workers.assistant import fast_decoder

            exact = half_head is False  # asked for float32 arithmetic throughout
            kinds = ("float32", "float32") if exact else (None, None)
            self._fast = fast_decoder.for_model(model, *kinds, release=True)
        #: Greedy steps on the lean path pick from a 4-bit shortlist of the float16 head (short_head.py).
        self._short: Any = None
        if self._fast is not None and self.half_head and short_head is not False:
            from workers.assistant.short_head import for_head

            self._short = for_head(getattr(self._fast.head, "weight", None))
        self._eos_ids = self._find_eos_ids(model)
        self.max_context = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 4096

    def _pick_quantization(self, quantization: str, size: int, stored: str, torch: Any) -> Any:
        if quantization in ("none", "off", "", None):
            return None
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except Exception:
            if quantization in ("4bit", "8bit"):
                log.warning("bitsandbytes is missing; %s is loaded without %s quantization", self.name, quantization)
            return None
        if quantization == "auto":
            half = size // 2 if stored == "float32" else size
            try:
                free = torch.cuda.mem_get_info()[0]
            except Exception:
                free = 0
            if not free or half < 0.8 * free:
                return None
            quantization = "8bit" if half / 2 < 0.8 * free else "4bit"
        if quantization == "8bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        if quantization == "4bit":
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
            )
        return None

    def _find_eos_ids(self, model: Any) -> set[int]:
        ids: set[int] = set()

        def add(value: Any) -> None:
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    add(v)

        add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
        add(getattr(model.config, "eos_token_id", None))
        eos = self.tokenizer.token_id(self.tokenizer.eos_token)
        if eos is not None:
            ids.add(eos)
        template = self.tokenizer.chat_template or ""
        for token in END_OF_TURN_TOKENS:
            if token in template:
                tid = self.tokenizer.token_id(token)
                if tid is not None:
                    ids.add(tid)
        return ids

    # ---- prompts ----
    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        if self.chat:
            return self.tokenizer.encode(self.tokenizer.render_chat(messages), special=False)
        return self.prompt_ids_of(dialogue_prompt(messages, self.examples))

    def _fixed_prefix_ids(self, system: str) -> list[int]:
        """The tokens every prompt with this system prompt starts with, whatever is said next."""
        sys_msgs = [ChatMessage("system", system)] if system else []
        a = self.prompt_ids([*sys_msgs, ChatMessage("user", "Hello there.")])
        b = self.prompt_ids([*sys_msgs, ChatMessage("user", "What time is it?")])
        n = _common_prefix(a, b)
        return a[:n]

    def warm_up(self, system_prompt: str = "") -> None:
        """Compute the KV cache of the fixed prompt prefix now, and run a short dummy turn (the
        first decoding steps pay one-time costs), so that the first real turn is fast."""
        messages = [ChatMessage("system", system_prompt)] if system_prompt else []
        messages.append(ChatMessage("user", "Hello."))
        for _ in self.stream(messages, max_new_tokens=3, temperature=0):
            pass
        self.turn_end_probability(messages)  # finds the sentence-ending tokens once
        self._last = None
        self.last_stats = {}

    def _ensure_prefix(self, system: str) -> None:
        key = system
        if self._prefix is not None and self._prefix[2] == key:
            return
        ids = self._fixed_prefix_ids(system)
        if len(ids) < 2:
            self._prefix = ((), None, key)
            return
        with self._lock:
            _logits, cache = self._forward(ids, None, None)
        self._prefix = (tuple(ids), cache, key)

    def _forward(
        self, ids: Sequence[int], cache: Any, cancel: CancelCheck | None, probe_at: int | None = None
    ) -> tuple[Any, Any]:
        """Feed ``ids`` (in chunks) after ``cache``; the last position's logits (on the lean path its
        hidden state, a :class:`_Hidden`, which :meth:`_pick` turns into a token) and the cache.
        With ``probe_at`` (an index into ``ids``), that position's logits (float32) are kept in
        ``self._probed`` as well."""
        torch = self._torch
        logits = None
        self._probed = None
        if self._fast is not None:
            if cache is None:
                cache = self._fast.new_cache()
            for start in range(0, len(ids), PREFILL_CHUNK):
                if start and cancel is not None and cancel():
                    raise Cancelled()
                chunk = ids[start : start + PREFILL_CHUNK]
                inside = probe_at is not None and start <= probe_at < start + len(chunk)
                states = self._fast.hidden_state(chunk, cache, also=probe_at - start if inside else None)
                if inside:
                    with torch.inference_mode():
                        self._probed = self._fast.head(states[:1].unsqueeze(0))[0, -1].float()
                logits = _Hidden(states[-1:])
            return logits, cache
        for start in range(0, len(ids), PREFILL_CHUNK):
            if start and cancel is not None and cancel():
                raise Cancelled()
            part = list(ids[start : start + PREFILL_CHUNK])
            keep = (
                len(part) - (probe_at - start) if probe_at is not None and start <= probe_at < start + len(part) else 1
            )
            chunk = torch.tensor([part], device=self.model.device)
            with torch.inference_mode():
                try:
                    out = self.model(input_ids=chunk, past_key_values=cache, use_cache=True, logits_to_keep=keep)
                except TypeError:
                    out = self.model(input_ids=chunk, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            if keep > 1:
                self._probed = out.logits[0, -keep].float()
            logits = out.logits[0, -1].float()
        return logits, cache

    def _cache_for(self, ids: list[int], system: str) -> tuple[Any, int]:
        """A private copy of the longest reusable cache for ``ids`` and how many tokens it covers."""
        if not self.reuse_cache:
            return None, 0
        self._ensure_prefix(system)
        best: tuple[tuple[int, ...], Any] | None = None
        last = self._last
        if last is not None and len(ids) > len(last[0]) and tuple(ids[: len(last[0])]) == last[0]:
            best = last
        prefix = self._prefix
        if prefix is not None and prefix[1] is not None:
            n = len(prefix[0])
            if (best is None or n > len(best[0])) and len(ids) > n and tuple(ids[:n]) == prefix[0]:
                best = (prefix[0], prefix[1])
        if best is None:
            return None, 0
        kept = best[1]
        if isinstance(kept, _Prefix):
            return kept.cache.prefix_copy(kept.length), len(best[0])
        return copy.deepcopy(kept), len(best[0])

    # ---- generation ----
    def _logits(self, out: Any) -> Any:
        """The logits of what :meth:`_forward` returned (the output head applied to a hidden state)."""
        if isinstance(out, _Hidden):
            with self._torch.inference_mode():
                return self._fast.head(out.value.unsqueeze(0))[0, -1].float()
        return out

    def _pick(self, logits: Any, temperature: float, generated: list[int]) -> int:
        torch = self._torch
        if isinstance(logits, _Hidden) and temperature <= 0 and self._short is not None:
            return self._short.pick(logits.value, generated[-PENALTY_WINDOW:], REPETITION_PENALTY)
        logits = self._logits(logits)
        if generated:
            recent = torch.tensor(sorted(set(generated[-PENALTY_WINDOW:])), device=logits.device)
            values = logits[recent]
            logits = logits.clone()
            logits[recent] = torch.where(values > 0, values / REPETITION_PENALTY, values * REPETITION_PENALTY)
        if temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / max(temperature, 1e-4)
        top = torch.topk(logits, k=min(40, logits.shape[-1]))
        probs = torch.softmax(top.values, dim=-1)
        cumulative = torch.cumsum(probs, dim=-1)
        keep = cumulative - probs < 0.95
        keep[0] = True
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
        choice = int(torch.multinomial(probs, 1))
        return int(top.indices[choice])

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int = 120,
        temperature: float = 0.7,
        cancel: CancelCheck | None = None,
        on_turn_end: Callable[[float | None], None] | None = None,
    ) -> Iterator[str]:
        """The answer to ``messages``, piece by piece. ``on_turn_end`` is called once, before the
        first piece, with :meth:`turn_end_probability` of the last message (None when it cannot be
        read), taken from the same pass over the prompt."""
        if self._closed:
            raise UserError("The language model was closed; load it again.")
        system = " ".join(m.content for m in messages if m.role == "system")
        ids = self.prompt_ids(messages)
        limit = self.max_context - max_new_tokens - 8
        if limit > 16 and len(ids) > limit:
            # Over the model's context: keep the fixed prefix and the newest tokens.
            self._ensure_prefix(system)
            keep = len(self._prefix[0]) if self._prefix is not None else 0
            ids = ids[:keep] + ids[len(ids) - (limit - keep) :]
        stops = () if self.chat else DIALOGUE_STOPS
        probe = self._turn_end_prompt(messages) if on_turn_end is not None else None
        if probe is not None and (len(probe) >= len(ids) or ids[: len(probe)] != probe):
            # The words tokenized otherwise before their closing mark, or the prompt was cut: read apart.
            return self._read_apart(probe, on_turn_end, ids, system, max_new_tokens, temperature, cancel, stops)
        probe_at = len(probe) - 1 if probe is not None else None
        return self._generate(ids, system, max_new_tokens, temperature, cancel, stops, probe_at, on_turn_end)

    def _generate(
        self,
        ids: list[int],
        system: str,
        max_new_tokens: int,
        temperature: float,
        cancel: CancelCheck | None,
        stops: Sequence[str],
        probe_at: int | None = None,
        on_turn_end: Callable[[float | None], None] | None = None,
    ) -> Iterator[str]:
        t0 = time.perf_counter()
        stats: dict[str, float] = {"prompt_tokens": float(len(ids))}
        self.last_stats = stats
        if cancel is not None and cancel():
            return
        cache, cached = self._cache_for(ids, system)
        stats["cached_tokens"] = float(cached)
        if probe_at is not None and probe_at < cached:
            probe_at = None  # already in the cache (the same words asked again): read apart below
        try:
            with self._lock:
                logits, cache = self._forward(
                    ids[cached:], cache, cancel, None if probe_at is None else probe_at - cached
                )
                probed, self._probed = self._probed, None  # taken under the lock another stream may want
        except Cancelled:
            if on_turn_end is not None:
                on_turn_end(None)
            return
        if on_turn_end is not None:
            on_turn_end(self._end_probability(probed) if probed is not None else None)
        snapshot_taken = False
        generated: list[int] = []
        filt = _StopFilter(stops)
        t_first = 0.0
        text = ""
        for step in range(max(0, max_new_tokens)):
            if cancel is not None and cancel():
                break
            token = self._pick(logits, temperature, generated)
            if step == 0:
                t_first = time.perf_counter()
                stats["first_token_ms"] = (t_first - t0) * 1000.0
            if token in self._eos_ids:
                break
            generated.append(token)
            text = self.tokenizer.decode(generated)
            if not text.endswith("\ufffd"):  # not in the middle of a multi-byte character
                delta = filt.feed(text)
                if delta:
                    yield delta
                if filt.stopped:
                    break
            if not snapshot_taken and self.reuse_cache:
                # The cache right after the prompt: the next turn's prompt usually continues it. The lean
                # path's cache only grows, so it is copied when the next turn needs it (not here, on
                # the way to the second token).
                prompt_cache = _Prefix(cache, len(ids)) if hasattr(cache, "prefix_copy") else copy.deepcopy(cache)
                self._last = (tuple(ids), prompt_cache)
                snapshot_taken = True
            if step + 1 >= max_new_tokens or (cancel is not None and cancel()):
                break
            with self._lock:
                logits, cache = self._forward([token], cache, None)
        if not filt.stopped and not (cancel is not None and cancel()):
            delta = filt.finish(text)
            if delta:
                yield delta
        n = len(generated)
        stats["tokens"] = float(n)
        if n > 1 and t_first:
            stats["tokens_per_s"] = (n - 1) / max(time.perf_counter() - t_first, 1e-6)

    def _remember(self, ids: list[int], cache: Any) -> None:
        """Keep ``cache`` (after the prompt ``ids``) for a prompt that continues it."""
        if self.reuse_cache:
            self._last = (tuple(ids), _Prefix(cache, len(ids)) if hasattr(cache, "prefix_copy") else cache)

    def prompt_ids_of(self, text: str) -> list[int]:
        """The tokens of a completion-style prompt's text (as :meth:`prompt_ids` encodes them)."""
        return self.tokenizer.encode(text, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, special=False)) if text else 0

    def close(self) -> None:
        self._closed = True
        self._prefix = None
        self._last = None
        model = getattr(self, "model", None)
        self.model = None
        if model is not None:
            del model
            with contextlib.suppress(Exception):
                if self.device.startswith("cuda"):
                    self._torch.cuda.empty_cache()


# ---- choosing and loading ------------------------------------------------------------------


def resolve_model_path(
    model: str | Path,
    store: ModelStore | None = None,
    *,
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """A model given as a file or folder path, or as a model id of the store (a model shipped in
    parts is joined first, with progress)."""
    text = str(model).strip()
    if not text:
        raise UserError("No language model is chosen; pick a model file or folder in the settings.")
    path = Path(text).expanduser()
    if path.exists():
        return path
    if os.sep in text or "/" in text or path.suffix.lower() in (".gguf", ".bin", ".safetensors"):
        raise UserError(f"The language model {path} was not found.")
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    state = store.state(text)
    if state.usable and any(f.where == "join" for f in state.files):
        if status is not None:
            status(f"Unpacking {state.model.name} (once)…")
        store.join(text, progress=progress, cancel=cancel)
    return store.path_of(text)


def is_shipped_gemma(model: str | Path, path: Path | None = None) -> bool:
    if str(model).strip() == SHIPPED_GEMMA_ID:
        return True
    return path is not None and path.name == SHIPPED_GEMMA_FILE


def load_language_model(
    options: AssistantOptions,
    *,
    store: ModelStore | None = None,
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: CancelCheck | None = None,
    device: str = "auto",
) -> LanguageModel:
    """The language model the options choose, loaded and warmed up (the prompt prefix computed)."""
    backend = (options.llm_backend or "").strip().lower()
    quantization = str(options.llm_quantization or "auto")
    threads = int(options.llm_threads or 0)
    if backend == "openai":
        if status is not None:
            status(f"Connecting to the language model server at {options.server_url}…")
        from workers.assistant.llm_server import OpenAIServerLM

        return OpenAIServerLM(options.server_url, options.server_model)
    if backend not in ("transformers", "gguf"):
        raise UserError(f"Unknown language model backend {options.llm_backend!r}; choose transformers, gguf or openai.")
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    if status is not None and str(options.llm_model).strip() == SHIPPED_GEMMA_ID:
        status("Preparing the built-in Gemma 3 270M model…")
    path = resolve_model_path(options.llm_model, store, progress=progress, status=status, cancel=cancel)
    if cancel is not None and cancel():
        raise Cancelled()
    model: LanguageModel
    if backend == "transformers":
        if path.is_file() and path.suffix.lower() == ".gguf":
            backend = "gguf"
        else:
            model = TransformersLM(path, device=device, quantization=quantization, threads=threads, status=status)
            _warm(model, options, status)
            return model
    model = load_gguf(
        path,
        store=store,
        progress=progress,
        status=status,
        cancel=cancel,
        device=device,
        shipped=is_shipped_gemma(options.llm_model, path),
        quantization=quantization,
        threads=threads,
    )
    _warm(model, options, status)
    return model


def _warm(model: LanguageModel, options: AssistantOptions, status: Status | None) -> None:
    warm = getattr(model, "warm_up", None)
    if warm is None:
        return
    if status is not None:
        status("Warming up the language model…")
    try:
        warm(options.system_prompt)
    except UserError:
        raise
    except Exception:
        log.warning("warming up the language model failed", exc_info=True)


def load_gguf(
    path: str | Path,
    *,
    store: ModelStore | None = None,
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: CancelCheck | None = None,
    device: str = "auto",
    shipped: bool | None = None,
    quantization: str = "auto",
    use_llama_cpp: bool | None = None,
    threads: int = 0,
) -> LanguageModel:
    """A GGUF model: through llama.cpp when installed, else converted once and run by transformers."""
    from workers.assistant import gguf_convert

    path = Path(path)
    gguf_convert.check_gguf_file(path)
    if shipped is None:
        shipped = path.name == SHIPPED_GEMMA_FILE
    note = SHIPPED_GEMMA_NOTE if shipped else None
    name = "Gemma 3 270M (built-in)" if shipped else path.stem
    from workers.assistant.llm_llamacpp import LlamaCppLM, llama_cpp_available

    if use_llama_cpp is None:
        use_llama_cpp = llama_cpp_available()
    if use_llama_cpp:
        if status is not None:
            status(f"Loading {path.name} with llama.cpp…")
        return LlamaCppLM(path, device=device, name=name, note=note, threads=threads)
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    gguf_convert.read_gguf(path)  # a truncated or damaged file fails here, before any work
    for attempt in (0, 1):
        folder = gguf_convert.ensure_converted(
            path, store.root, progress=progress, status=status, cancel=cancel, force=attempt == 1
        )
        try:
            return TransformersLM(
                folder,
                device=device,
                quantization=quantization,
                name=name,
                note=note,
                backend="gguf",
                threads=threads,
                status=status,
            )
        except UserError:
            if attempt == 1:
                raise
            log.warning("the converted folder %s did not load; converting again", folder, exc_info=True)
    raise AssertionError("unreachable")


#: Backends that live in their own modules, still importable from here.
_ELSEWHERE = {
    "LlamaCppLM": "workers.assistant.llm_llamacpp",
    "llama_cpp_available": "workers.assistant.llm_llamacpp",
    "OpenAIServerLM": "workers.assistant.llm_server",
    "list_server_models": "workers.assistant.llm_server",
    "normalize_server_url": "workers.assistant.llm_server",
}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
