"""The language model's reading of the end of a turn (CPU or GPU, no Qt).

How likely the user's sentence ends where the early transcript's words stop: the probability of a
closing mark or a line end right after them, their own closing mark taken off (Whisper punctuates
broken-off sentences too; see :mod:`workers.assistant.turn_words`). :class:`TurnEndReading` gives
:class:`~workers.assistant.llm.TransformersLM` the reading, asked on its own
(:meth:`TurnEndReading.turn_end_probability`) or taken from the pass over the prompt that begins the
answer (``stream(..., on_turn_end=...)``, which marks the words' last position for ``_forward``).
Completion-style prompts only: a chat template's prompt has no place where the words stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)


class TurnEndReading:
    """The reading for a model class with ``tokenizer``, ``chat``, ``examples``, ``_closed``,
    ``_torch``, ``_lock``, ``_end_ids``, ``_cache_for``, ``_forward``, ``_logits``, ``_remember``,
    ``prompt_ids_of`` and ``_generate`` (as :class:`~workers.assistant.llm.TransformersLM` has)."""

    @property
    def reads_turn_end(self) -> bool:
        """Whether :meth:`stream` can tell how likely the user's words end a sentence (``on_turn_end``)."""
        return not self.chat and not self._closed

    def turn_end_probability(self, messages: Sequence[Any]) -> float | None:
        """How likely the user's sentence ends where the last message's words stop. None when it cannot
        be asked (a chat template's prompt, no such tokens, a closed model). ``stream`` reads the same
        number while it reads the prompt (``on_turn_end``), at no extra cost."""
        ids = self._turn_end_prompt(messages)
        if ids is None:
            return None
        return self._read(ids, " ".join(m.content for m in messages if m.role == "system"))

    def _read(self, ids: list[int], system: str) -> float:
        """The reading after the prompt ``ids`` (its cache kept for the answer that continues it)."""
        cache, cached = self._cache_for(ids, system)
        with self._lock:
            out, cache = self._forward(ids[cached:], cache, None)
        self._remember(ids, cache)
        return self._end_probability(self._logits(out))

    def _read_apart(
        self, ids: list[int], on_turn_end: Callable[[float | None], None], *args: Any
    ) -> Iterator[str]:
        """``_generate(*args)`` after the reading of ``ids`` asked on its own (when the prompt's tokens
        do not begin with the words' own)."""
        try:
            probability = self._read(ids, args[1])
        except Exception as exc:  # a second opinion: without it the voice and the words decide
            log.debug("reading the end of the turn failed: %s", exc)
            probability = None
        on_turn_end(probability)
        yield from self._generate(*args)

    def _turn_end_ids(self) -> Any:
        """The tokens that end a sentence or a line (found once), or None."""
        if self._end_ids is None:
            from workers.assistant.turn_words import end_token_ids

            found = end_token_ids(self.tokenizer.vocab(), self.tokenizer.decode)
            self._end_ids = self._torch.tensor(found, dtype=self._torch.long) if found else False
        return None if self._end_ids is False else self._end_ids

    def _turn_end_prompt(self, messages: Sequence[Any]) -> list[int] | None:
        """The tokens of the prompt up to the last message's words, their closing mark taken off, or
        None when that cannot be asked."""
        from workers.assistant.llm import ASSISTANT_PREFIX, ChatMessage, dialogue_prompt
        from workers.assistant.turn_words import strip_final_marks

        if self._closed or self.chat or not messages or messages[-1].role != "user":
            return None
        words = strip_final_marks(messages[-1].content)
        if not words or self._turn_end_ids() is None:
            return None
        prompt = dialogue_prompt([*messages[:-1], ChatMessage("user", words)], self.examples)
        ending = "\n" + ASSISTANT_PREFIX
        return self.prompt_ids_of(prompt[: -len(ending)]) if prompt.endswith(ending) else None

    def _end_probability(self, logits: Any) -> float:
        return float(self._torch.softmax(logits.float(), -1)[self._end_ids].sum())
