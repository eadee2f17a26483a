"""Chat completions for the API, answered by the voice assistant's language model backends
(:func:`workers.assistant.llm.load_language_model`, as ``snowai-studio chat`` loads them)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from workers.api.context import ServerContext
from workers.errors import UserError

MAX_TOKENS_LIMIT = 4096
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass
class ChatRequest:
    messages: list[Any]
    model: str = "default"
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] = dataclasses.field(default_factory=list)


@dataclass
class ChatRun:
    """One answer: its text streams from :meth:`deltas`; the counts are known once it has ended."""

    model: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise UserError(f"Message {index} holds a {kind} part; the studio's language models read text only.")
        return "\n".join(parts)
    raise UserError(f"The content of message {index} must be text.")


def parse_messages(raw: Any) -> list[Any]:
    from workers.assistant.llm import ChatMessage

    if not isinstance(raw, list) or not raw:
        raise UserError("messages must be a list with at least one message.")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise UserError(f"Message {i} must be an object with a role and a content.")
        role = ROLES.get(str(item.get("role", "")).lower())
        if role is None:
            raise UserError(
                f"Message {i} has the role {item.get('role')!r}; the roles are system, developer, user and assistant."
            )
        out.append(ChatMessage(role, _text_of(item.get("content"), i)))
    if not any(m.role == "user" for m in out):
        raise UserError("messages must hold at least one user message.")
    return out


def parse_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise UserError("The request body must be a JSON object.")
    messages = parse_messages(body.get("messages"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise UserError("max_tokens must be a whole number of at least 1.")
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not math.isfinite(temperature):
            raise UserError("temperature must be a number between 0 and 2.")
        if not 0 <= temperature <= 2:
            raise UserError("temperature must be between 0 and 2.")
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise UserError("stop must be a string or a list of up to 4 strings.")
    model = body.get("model") or "default"
    if not isinstance(model, str):
        raise UserError("model must be a model id (GET /v1/models lists them) or default.")
    return ChatRequest(messages, model, max_tokens, None if temperature is None else float(temperature), stop)


def _options_for(ctx: ServerContext, model: str) -> tuple[Any, str]:
    from workers.assistant.options import AssistantOptions

    options = dataclasses.replace(ctx.reload_settings().options(AssistantOptions))
    if ctx.is_default(model, "chat"):
        return options, str(options.llm_model if options.llm_backend != "openai" else options.server_model or "server")
    model_id = ctx.store_model(model, "chat", "language model")
    options.llm_model = model_id
    options.llm_backend = "gguf" if ctx.store.get(model_id).kind == "gguf" else "transformers"
    return options, model_id


def answer(ctx: ServerContext, request: ChatRequest, run: ChatRun, cancel: Callable[[], bool]) -> Iterator[str]:
    """The answer's text pieces as the model writes them (the model is held until the answer ends)."""
    from workers.assistant.llm import ChatMessage, load_language_model

    options, _ = _options_for(ctx, request.model)
    messages = list(request.messages)
    if not any(m.role == "system" for m in messages) and options.system_prompt:
        messages.insert(0, ChatMessage("system", options.system_prompt))
    max_tokens = min(MAX_TOKENS_LIMIT, request.max_tokens or int(options.max_new_tokens))
    temperature = float(options.temperature) if request.temperature is None else request.temperature
    key = (
        "chat",
        f"{options.llm_backend}:{options.llm_model if options.llm_backend != 'openai' else options.server_url}",
    )

    def load() -> Any:
        return load_language_model(options, store=ctx.store, device=ctx.device)

    def stop_now() -> bool:
        return ctx.stopping.is_set() or cancel()

    with ctx.pool.use(key, load) as llm:
        run.prompt_tokens = sum(llm.count_tokens(m.content) for m in messages)
        parts: list[str] = []
        sent = 0
        held = max((len(s) for s in request.stop), default=0)
        stopped = False
        for delta in llm.stream(messages, max_new_tokens=max_tokens, temperature=temperature, cancel=stop_now):
            parts.append(delta)
            text = "".join(parts)
            cut = min((i for i in (text.find(s, max(0, sent - held)) for s in request.stop) if i >= 0), default=-1)
            if cut >= 0:
                if cut > sent:
                    yield text[sent:cut]
                sent, stopped = cut, True
                break
            # Hold back what could be the start of a stop string.
            ready = len(text) - max(0, held - 1) if request.stop else len(text)
            if ready > sent:
                yield text[sent:ready]
                sent = ready
        text = "".join(parts)
        if not stopped and sent < len(text):
            yield text[sent:]
        stats = getattr(llm, "last_stats", None) or {}
        tokens = int(stats.get("tokens", 0)) or llm.count_tokens(text)
        run.completion_tokens = tokens
        if stats.get("prompt_tokens"):
            run.prompt_tokens = int(stats["prompt_tokens"])
        run.finish_reason = "length" if not stopped and tokens >= max_tokens else "stop"
