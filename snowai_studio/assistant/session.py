"""The assistant's worker as the page sees it: an
:class:`~workers.assistant.worker.AssistantWorker` built the first time the user starts listening
or sends a message, its models loaded once (and again only in part when a setting needs it), and the
page's commands queued until the models are ready.

The session only keeps the worker's life cycle; the page shows what it reports through the signals.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from workers.assistant.options import AssistantOptions
from workers.errors import describe_exception

log = logging.getLogger(__name__)

SOURCE = "Voice assistant"
LOADING_TEXT = "Loading the assistant's models…"
#: What the progress row says while one of the models is loaded again after a settings change.
RELOAD_TEXT = {
    "asr": "Loading the speech recogniser…",
    "llm": "Loading the language model…",
    "voice": "Loading the voice…",
}

Action = Callable[[Any], None]


class AssistantSession(QObject):
    """``loading_started(text)`` → ``loading_status(text)`` / ``loading_progress(done, total)`` →
    ``loading_finished``; ``became_ready`` once the models are in; ``load_failed`` when they could not
    be loaded; ``models_loaded(info)``; ``event(AssistantEvent)``; ``problem(level, sentence)`` for
    what the worker reported (and logged) itself; ``listening_halted(sentence)`` when the microphone
    could not open, failed or went quiet."""

    loading_started = Signal(str)
    loading_status = Signal(str)
    loading_progress = Signal(int, int)
    loading_finished = Signal()
    became_ready = Signal()
    load_failed = Signal()
    models_loaded = Signal(dict)
    event = Signal(object)
    problem = Signal(str, str)
    listening_halted = Signal(str)

    def __init__(self, make_worker: Callable[[], Any], store: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._make_worker = make_worker
        self._store = store
        self._worker: Any = None
        self._worker_store: Any = None
        self._ready = False
        self._loading = False
        #: Model reloads asked of the running worker and not finished yet.
        self._reloads = 0
        self._retired: list[Any] = []
        self._pending: list[tuple[str, Action]] = []
        self._conversation: Any = None  # a loaded conversation not yet handed to a worker

    # ---- state ----------------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        return self._worker

    @property
    def ready(self) -> bool:
        return self._worker is not None and self._ready

    @property
    def loading(self) -> bool:
        return self._loading

    # ---- commands -------------------------------------------------------------------------------------
    def when_ready(self, name: str, action: Action) -> bool:
        """Run ``action(worker)`` now if the models are loaded, else once they are. False if no worker."""
        worker = self._ensure_worker()
        if worker is None:
            return False
        if self._ready:
            action(worker)
        else:
            self._pending.append((name, action))
        return True

    def later(self, name: str, action: Action) -> None:
        """Queue ``action(worker)`` for when the loading worker is ready (replacing one of the same name)."""
        self.drop_pending(name)
        self._pending.append((name, action))

    def drop_pending(self, *names: str) -> None:
        self._pending = [p for p in self._pending if p[0] not in names]

    def apply_options(self, options: AssistantOptions, reload: set[str]) -> None:
        """Hand the options to the worker (``reload``: the models it loads again for them)."""
        worker = self._worker
        if worker is not None and self._ready:
            worker.set_options(copy.deepcopy(options))
            if reload:
                self._reloads += 1
                self._begin_loading(RELOAD_TEXT.get(min(reload), "Loading the new model…"))
        elif worker is not None:
            self.later("options", lambda w: w.set_options(copy.deepcopy(options)))

    def cancel_loading(self) -> bool:
        """Stop loading: True when the worker was closed (the next Start or Send tries again); a reload
        cannot be stopped, only its progress goes away."""
        if self._worker is None or self._ready:
            self._reloads = 0
            self._end_loading()
            return False
        self._retire_worker(wait_ms=300)
        self._end_loading()
        return True

    # ---- the conversation --------------------------------------------------------------------------------
    def conversation(self, system_prompt: str) -> Any:
        """The conversation as the assistant remembers it."""
        worker = self._worker
        if worker is not None:
            try:
                return worker.conversation
            except Exception as exc:
                log.warning("The conversation could not be read from the assistant: %s", exc)
        if self._conversation is None:
            from workers.assistant.conversation import Conversation

            self._conversation = Conversation(system_prompt=system_prompt)
        return self._conversation

    def set_conversation(self, conversation: Any) -> None:
        """Continue ``conversation`` (None: start a new one)."""
        worker = self._worker
        if worker is not None:
            if self._ready:
                worker.interrupt()
                if conversation is None:
                    worker.new_conversation()
                else:
                    worker.set_conversation(conversation)
            else:
                self.drop_pending("conversation", "text")
                if conversation is None:
                    self.later("conversation", lambda w: w.new_conversation())
                else:
                    self.later("conversation", lambda w: w.set_conversation(conversation))
        self._conversation = conversation if worker is None else None

    # ---- the worker ---------------------------------------------------------------------------------------
    def _ensure_worker(self) -> Any:
        worker = self._worker
        store = self._store()
        if worker is not None and (self._worker_store is not store or worker.state == "failed"):
            self._retire_worker()
            worker = None
        if worker is None:
            try:
                worker = self._make_worker()
            except Exception as exc:  # a broken installation must not take the page down
                message = describe_exception(exc, "The voice assistant could not start")
                log.error("%s", message, exc_info=exc)
                self.problem.emit("error", message)
                return None
            worker.event.connect(self.event)
            worker.loaded.connect(self._on_loaded)
            worker.ready.connect(self._on_ready)
            worker.progress.connect(self._on_progress)
            worker.error.connect(self._on_error)
            worker.warning.connect(lambda message: self.problem.emit("warning", message))
            worker.stream_halted.connect(self.listening_halted)
            worker.state_changed.connect(self._on_worker_state)
            status = getattr(worker, "status", None)
            if status is not None:
                status.connect(self._on_status)
            self._worker = worker
            self._worker_store = store
            self._ready = False
            conversation, self._conversation = self._conversation, None
            if conversation is not None:
                self._pending.insert(0, ("conversation", lambda w: w.set_conversation(conversation)))
            self._begin_loading(LOADING_TEXT)
            worker.start()
        return worker

    def _retire_worker(self, wait_ms: int = 3000) -> None:
        worker, self._worker = self._worker, None
        self._ready = False
        self._reloads = 0
        self._pending.clear()
        if worker is None:
            return
        try:
            self._conversation = worker.conversation
        except Exception:
            self._conversation = None
        # Nothing more from the old worker reaches the session. Its signals are blocked rather than
        # disconnected: a disconnect() here, while the worker's thread emits, can hang both threads for
        # good (Qt holds a connection lock while PySide waits for the GIL, which the emitting thread holds
        # while it waits for that lock).
        worker.blockSignals(True)
        if not worker.stop(wait_ms):
            self._retired.append(worker)

    def _begin_loading(self, text: str) -> None:
        self._loading = True
        self.loading_started.emit(text)

    def _end_loading(self) -> None:
        if self._loading:
            self._loading = False
            self.loading_finished.emit()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self._loading:
            self.loading_progress.emit(done, total)

    @Slot(str)
    def _on_status(self, text: str) -> None:
        if not text:  # a load ended (a reload that failed says why in an error event)
            if self._ready:
                self._reloads = max(0, self._reloads - 1)
                if not self._reloads:
                    self._end_loading()
            return
        if self._loading:
            self.loading_status.emit(text)

    @Slot(str)
    def _on_worker_state(self, state: str) -> None:
        if state == "failed":
            self._ready = False
            self._pending.clear()
            self._end_loading()
            self.load_failed.emit()

    @Slot()
    def _on_ready(self) -> None:
        self._ready = True
        self._end_loading()
        pending, self._pending = self._pending, []
        for _name, action in pending:
            worker = self._worker
            if worker is None:
                break
            try:
                action(worker)
            except Exception as exc:
                message = describe_exception(exc, SOURCE)
                log.error("%s", message, exc_info=exc)
                self.problem.emit("error", message)
        self.became_ready.emit()

    @Slot(dict)
    def _on_loaded(self, info: dict) -> None:
        if not self._reloads:
            self._end_loading()
        self.models_loaded.emit(dict(info or {}))

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self._end_loading()
        self.problem.emit("error", message)

    def stop(self) -> None:
        """Stop the worker and release the microphone and speaker (the page is closing)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        for old in self._retired:
            old.stop()
        self._retired.clear()
