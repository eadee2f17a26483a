"""Language models through llama.cpp (llama-cpp-python), when it is installed (no Qt)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from workers.assistant.llm import (
    BASE_MODEL_NOTE,
    DIALOGUE_EXAMPLES,
    DIALOGUE_STOPS,
    CancelCheck,
    ChatMessage,
    _first_line,
    _StopFilter,
    dialogue_prompt,
)
from workers.errors import UserError

log = logging.getLogger(__name__)


def llama_cpp_available() -> bool:
    """True when llama-cpp-python can be imported (checked without importing it)."""
    import importlib.util
    import sys

    if sys.modules.get("llama_cpp") is not None:
        return True
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


class LlamaCppLM:
    """A GGUF file through llama-cpp-python (the ``llama`` extra)."""

    backend = "gguf"

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        threads: int = 0,
        device: str = "auto",
        name: str | None = None,
        note: str | None = None,
        examples: Sequence[tuple[str, str]] = DIALOGUE_EXAMPLES,
    ) -> None:
        from workers.assistant.gguf_convert import check_gguf_file

        self.path = Path(path)
        check_gguf_file(self.path)
        self.examples = tuple(examples)
        self.name = name or self.path.stem
        try:
            from llama_cpp import Llama
        except ImportError:
            raise UserError("llama-cpp-python is not installed (pip install llama-cpp-python).") from None
        gpu_layers = 0 if device == "cpu" else -1
        try:
            self._llm = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=threads or None,
                n_gpu_layers=gpu_layers,
                verbose=False,
            )
        except Exception as exc:
            log.warning("llama.cpp could not load %s", self.path, exc_info=True)
            raise UserError(
                f"llama.cpp could not load {self.path.name}: {_first_line(exc)}. The file may be damaged or of a "
                "model this llama-cpp-python version does not know."
            ) from None
        metadata = getattr(self._llm, "metadata", None) or {}
        self.chat = bool(metadata.get("tokenizer.chat_template"))
        self.note = note if note is not None else ("" if self.chat else BASE_MODEL_NOTE)
        self._lock = threading.Lock()
        self._generation = 0
        self.last_stats: dict[str, float] = {}

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int = 120,
        temperature: float = 0.7,
        cancel: CancelCheck | None = None,
    ) -> Iterator[str]:
        return self._stream(list(messages), max_new_tokens, temperature, cancel)

    def _stream(
        self, messages: list[ChatMessage], max_new_tokens: int, temperature: float, cancel: CancelCheck | None
    ) -> Iterator[str]:
        t0 = time.perf_counter()
        self.last_stats = stats = {}
        common: dict[str, Any] = {
            "max_tokens": max_new_tokens,
            "temperature": max(0.0, float(temperature)),
            "top_p": 0.95,
            "top_k": 40,
            "repeat_penalty": 1.1,
            "stream": True,
        }
        # llama.cpp runs one generation at a time: a newer stream supersedes an older one that its
        # consumer left unfinished (the older one stops at its next chunk).
        with self._lock:
            self._generation += 1
            generation = self._generation
        if self._llm is None:
            raise UserError("The language model was closed; load it again.")
        try:
            if self.chat:
                chunks = self._llm.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages], **common
                )
            else:
                chunks = self._llm.create_completion(
                    prompt=dialogue_prompt(messages, self.examples), stop=list(DIALOGUE_STOPS), **common
                )
        except Exception as exc:
            raise self._failure(exc) from None
        filt = _StopFilter(())
        text = ""
        n = 0
        try:
            while True:
                if (cancel is not None and cancel()) or generation != self._generation:
                    break
                try:
                    chunk = next(chunks)
                except StopIteration:
                    delta = filt.finish(text)
                    if delta:
                        yield delta
                    break
                except Exception as exc:
                    raise self._failure(exc) from None
                choice = (chunk.get("choices") or [{}])[0]
                piece = (choice.get("delta") or {}).get("content") if self.chat else choice.get("text")
                if not piece:
                    continue
                if n == 0:
                    stats["first_token_ms"] = (time.perf_counter() - t0) * 1000.0
                n += 1
                text += piece
                delta = filt.feed(text)
                if delta:
                    yield delta
        finally:
            stats["tokens"] = float(n)
            with contextlib.suppress(Exception):
                chunks.close()

    def _failure(self, exc: Exception) -> UserError:
        log.warning("llama.cpp generation failed", exc_info=True)
        text = _first_line(exc)
        if "context window" in text or "exceed" in text:
            return UserError(
                "The conversation is longer than the model's context; start a new conversation or lower the memory."
            )
        return UserError(f"llama.cpp could not generate an answer: {text}.")

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        try:
            return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        except TypeError:
            return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False))

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        self._llm = None
        if llm is not None:
            with contextlib.suppress(Exception):
                llm.close()
