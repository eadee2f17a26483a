"""The Qt worker of the voice assistant: one :class:`~workers.assistant.pipeline.VoicePipeline` behind signals.

:class:`AssistantWorker` loads the models (VAD, Whisper, the language model, the voice) in
:meth:`load`, on its own thread, with ``progress`` and a ``status`` sentence, opens the speaker and
starts the pipeline. The pipeline's :class:`~workers.assistant.pipeline.AssistantEvent` objects reach
the UI through the ``event`` signal (queued across threads), throttled so the UI is never flooded:
levels at most 30 times a second, answer pieces merged into one ``delta`` per ~30 ms.

Commands are plain methods callable from the UI thread: :meth:`start_listening`,
:meth:`stop_listening`, :meth:`submit_text`, :meth:`set_talk`, :meth:`interrupt`, :meth:`set_options`
(reloads only the models whose settings changed), :meth:`new_conversation`, :meth:`set_conversation`.
No microphone means typed questions only; no speaker means answers as text only (a ``warning`` event
says so either way). The microphone is read through a :class:`~workers.media.watch.WatchedSource`: one
that cannot open, raises, hangs or stops delivering sound gives ``stream_halted(sentence)`` once (the
dock offers Retry: :meth:`restart_listening`). The model files in use are watched (see
:mod:`workers.base`): a removed Whisper folder is reported once while the loaded copy keeps working; a
changed file is loaded again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal

from workers.assistant.options import AssistantOptions
from workers.assistant.pipeline import (
    AssistantEvent,
    Components,
    VoicePipeline,
    changed_components,
    load_components,
)
from workers.base import JobContext, Worker
from workers.errors import describe_exception

if TYPE_CHECKING:
    from workers.assistant.conversation import Conversation
    from workers.media.audio import AudioSink, AudioSource
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

#: Builds the models: called like :func:`~workers.assistant.pipeline.load_components`
#: (``options, *, store, device, progress, status, cancel``).
ComponentsFactory = Callable[..., Components]


def default_microphone() -> AudioSource:
    """The microphone chosen in Devices, a device or a sound file (opened by the pipeline)."""
    from workers.media.microphone import make_microphone
    from workers.settings import Settings

    devices = Settings.load().devices
    blocksize = max(256, min(int(devices.block_size or 1024), 2048))
    return make_microphone(devices.microphone, devices.sample_rate, blocksize, channels=1)


def default_speaker() -> AudioSink:
    """The speaker chosen in Devices, with a short buffer so an interruption is heard at once."""
    from workers.media.audio import AudioOutput
    from workers.settings import Settings

    devices = Settings.load().devices
    return AudioOutput(devices.speaker, devices.sample_rate, blocksize=512, channels=1, buffer_seconds=0.25)


class AssistantWorker(Worker):
    """The voice assistant on its own thread."""

    name = "Assistant"
    #: An :class:`~workers.assistant.pipeline.AssistantEvent` (queued to the UI).
    event = Signal(object)
    #: The models are ready: {"asr", "llm", "voice", "note"} (names, and the language model's note).
    loaded = Signal(dict)
    #: What is being loaded now, as a sentence ("Loading speech recognition…").
    status = Signal(str)

    #: Level events pass at most this often (seconds).
    level_interval: float = 1.0 / 30.0
    #: Answer pieces closer together than this are sent as one delta (seconds).
    delta_interval: float = 0.03

    def __init__(
        self,
        options: AssistantOptions | None = None,
        *,
        store: ModelStore | None = None,
        source_factory: Callable[[], AudioSource] | None = None,
        sink_factory: Callable[[], AudioSink | None] | None = None,
        device: str = "auto",
        components_factory: ComponentsFactory | None = None,
        conversation: Conversation | None = None,
    ) -> None:
        super().__init__()
        self.options = dataclasses.replace(options) if options is not None else AssistantOptions()
        self.store = store
        self.device = device
        self._source_factory = source_factory or default_microphone
        self._sink_factory = sink_factory or default_speaker
        self._components_factory = components_factory
        self._conversation = conversation
        self.components: Components | None = None
        self.pipeline: VoicePipeline | None = None
        self._loaded_options: AssistantOptions | None = None
        self._listen_wanted = False
        self._source_lock = threading.Lock()
        self._relay_lock = threading.Lock()
        self._last_level = 0.0
        self._last_delta = 0.0
        self._delta_parts: list[str] = []
        self._delta_turn = 0
        self._last_progress = 0.0
        #: Every event relayed to the UI so far, by kind (for stats and tests).
        self.relayed: dict[str, int] = {}

    # ---- lifecycle (worker thread) ---------------------------------------------------------
    def load(self) -> None:
        if self.store is None:
            from workers.models.store import ModelStore
            from workers.settings import Settings

            self.store = ModelStore(Settings.load().models_dir())
        options = dataclasses.replace(self.options)
        components = self._build(options)
        self.components = components
        self._loaded_options = options
        sink = self._make_sink()
        pipeline = VoicePipeline(
            components, options, source=None, sink=sink, on_event=self._relay, conversation=self._conversation
        )
        pipeline.start()
        self.pipeline = pipeline
        self._conversation = pipeline.conversation
        self.status.emit("")
        self.loaded.emit(components.describe())
        if self.options != options:
            self._apply_options(dataclasses.replace(self.options))
        if self._listen_wanted:
            self._open_source()

    def unload(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            self._conversation = pipeline.conversation
            pipeline.stop()
        self._flush_deltas()
        components, self.components = self.components, None
        if components is not None:
            components.close()

    def _build(
        self, options: AssistantOptions, reuse: Components | None = None, parts: set[str] | None = None
    ) -> Components:
        kwargs: dict[str, Any] = {
            "store": self.store,
            "device": self.device,
            "progress": self._progress,
            "status": self._status,
            "cancel": lambda: self._stopping,
        }
        if self._components_factory is None:
            return load_components(options, reuse=reuse, parts=parts, **kwargs)
        fresh = self._components_factory(options, **kwargs)
        if reuse is None:
            return fresh
        parts = parts or set()
        if "llm" not in parts and fresh.llm is not reuse.llm:
            Components(fresh.vad, fresh.asr, fresh.llm, fresh.voice).close()
        return Components(
            reuse.vad,
            fresh.asr if "asr" in parts else reuse.asr,
            fresh.llm if "llm" in parts else reuse.llm,
            fresh.voice if "voice" in parts else reuse.voice,
            reuse.turn,
        )

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_progress >= 0.05:
            self._last_progress = now
            self.progress.emit(int(done), int(total))

    def _status(self, text: str) -> None:
        log.info("%s", text)
        self.status.emit(str(text))

    def _make_sink(self) -> AudioSink | None:
        try:
            return self._sink_factory()
        except Exception as exc:
            self._relay(
                AssistantEvent("warning", text=f"{describe_exception(exc, 'Speaker')} Answers are shown as text only.")
            )
            return None

    def _open_source(self) -> None:
        """Start hearing the microphone (worker thread)."""
        with self._source_lock:
            pipeline = self.pipeline
            if pipeline is None or not self._listen_wanted or pipeline.listening:
                return
            try:
                from workers.media.watch import WatchedSource

                source = WatchedSource(self._source_factory(), "microphone", on_failure=self._microphone_failed)
            except Exception as exc:
                text = f"{describe_exception(exc, 'Microphone')} The assistant takes typed questions only."
                self._relay(AssistantEvent("warning", text=text))
                self._microphone_failed(describe_exception(exc, "Microphone"))
                return
            pipeline.set_source(source)

    def _microphone_failed(self, sentence: str) -> None:
        """The microphone could not open, failed or went quiet (any thread): once per opening."""
        log.info("Listening stopped: %s", sentence)
        self.stream_halted.emit(sentence)

    # ---- model files (worker thread) -------------------------------------------------------------
    def _model_paths(self) -> dict[Path, str]:
        """The files the loaded models came from, and which part ("asr", "llm", "voice") each belongs to."""
        components = self.components
        if components is None:
            return {}
        out: dict[Path, str] = {}
        folder = getattr(components.asr, "folder", None)
        if folder:
            out[Path(folder) / "model.bin"] = "asr"
        llm = components.llm
        for attr in ("path", "folder"):
            where = getattr(llm, attr, None)
            if isinstance(where, str | Path) and str(where):
                p = Path(where)
                out[p / "config.json" if attr == "folder" else p] = "llm"
                break
        voice_path = getattr(components.voice, "model_path", None)
        if isinstance(voice_path, str | Path) and str(voice_path):
            out[Path(voice_path)] = "voice"
        return out

    def watched_files(self) -> list[Path]:
        return list(self._model_paths())

    def reload_models(self, changed: list[Path]) -> bool:
        """A model file changed on disk: load those models again (the others are kept); raises when
        they cannot be loaded, and the models in use stay."""
        owners = self._model_paths()
        parts = {owners[p] for p in changed if p in owners}
        pipeline, components, options = self.pipeline, self.components, self._loaded_options
        if not parts or pipeline is None or components is None or options is None:
            return False
        try:
            fresh = self._build(options, reuse=components, parts=parts)
        finally:
            self.status.emit("")
        pipeline.set_components(fresh)
        self.components = fresh
        if fresh.llm is not components.llm:
            Components(components.vad, components.asr, components.llm, components.voice).close()
        self.loaded.emit(fresh.describe())
        return True

    # ---- events (pipeline threads) -------------------------------------------------------------
    def _relay(self, event: AssistantEvent) -> None:
        """Pass an event to the UI without flooding it."""
        now = time.monotonic()
        with self._relay_lock:
            if event.kind == "level":
                if now - self._last_level < self.level_interval:
                    return
                self._last_level = now
                if self._delta_parts and now - self._last_delta >= self.delta_interval:
                    self._flush_deltas_locked(now)
            elif event.kind == "delta":
                if self._delta_parts and event.turn != self._delta_turn:
                    self._flush_deltas_locked(now)
                self._delta_parts.append(event.text)
                self._delta_turn = event.turn
                if now - self._last_delta >= self.delta_interval:
                    self._flush_deltas_locked(now)
                return
            else:
                self._flush_deltas_locked(now)
            self._send(event)

    def _flush_deltas(self) -> None:
        with self._relay_lock:
            self._flush_deltas_locked(time.monotonic())

    def _flush_deltas_locked(self, now: float) -> None:
        if not self._delta_parts:
            return
        text = "".join(self._delta_parts)
        self._delta_parts = []
        self._last_delta = now
        self._send(AssistantEvent("delta", self._delta_turn, text))

    def _send(self, event: AssistantEvent) -> None:
        self.relayed[event.kind] = self.relayed.get(event.kind, 0) + 1
        if event.kind in ("warning", "error"):
            # The one place the assistant's warnings and errors are logged (the pipeline logs them at
            # info level), so that the notifications panel shows each once.
            (log.error if event.kind == "error" else log.warning)("%s", event.text)
        self.event.emit(event)

    # ---- commands (any thread) -------------------------------------------------------------------
    def start_listening(self) -> None:
        """Open the microphone and answer what is said (typed questions keep working)."""
        self._listen_wanted = True
        if self.pipeline is not None or self.thread_running:
            self._run_on_thread(self._open_source)

    def stop_listening(self) -> None:
        """Close the microphone (an answer in progress goes on)."""
        self._listen_wanted = False
        with self._source_lock:
            if self.pipeline is not None:
                self.pipeline.set_source(None)

    def restart_listening(self) -> None:
        """Open the microphone anew with the same settings (Retry after it failed)."""
        self._listen_wanted = True
        if self.pipeline is not None or self.thread_running:
            self._run_on_thread(self._reopen_source)

    def _reopen_source(self) -> None:
        with self._source_lock:
            if self.pipeline is not None:
                self.pipeline.set_source(None)
        self._open_source()

    def submit_text(self, text: str) -> None:
        """A typed question."""
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.submit_text(text)
        elif self.thread_running:
            self._run_on_thread(lambda: self.pipeline.submit_text(text) if self.pipeline is not None else None)

    def set_talk(self, pressed: bool) -> None:
        """Push-to-talk button held (True) or released (False)."""
        if self.pipeline is not None:
            self.pipeline.set_talk(pressed)

    def interrupt(self) -> None:
        """The Stop button: the answer stops now (text and voice)."""
        if self.pipeline is not None:
            self.pipeline.interrupt()

    def set_options(self, options: AssistantOptions) -> None:
        """New settings: applied live; only the models whose settings changed are reloaded."""
        self.options = dataclasses.replace(options)
        if self.thread_running:
            wanted = dataclasses.replace(options)
            self._run_on_thread(lambda: self._apply_options(wanted))

    def new_conversation(self) -> None:
        """Forget the conversation so far (the answer in progress stops)."""
        from workers.assistant.conversation import Conversation

        self.set_conversation(Conversation(system_prompt=self.options.system_prompt))

    def set_conversation(self, conversation: Conversation) -> None:
        """Go on with a saved conversation (the answer in progress stops)."""
        self._conversation = conversation
        if self.pipeline is not None:
            self.pipeline.set_conversation(conversation)

    @property
    def conversation(self) -> Conversation:
        if self.pipeline is not None:
            return self.pipeline.conversation
        if self._conversation is None:
            from workers.assistant.conversation import Conversation

            self._conversation = Conversation(system_prompt=self.options.system_prompt)
        return self._conversation

    # ---- internals (worker thread) -----------------------------------------------------------
    def _run_on_thread(self, action: Callable[[], Any]) -> None:
        def job(ctx: JobContext) -> None:
            action()

        self.submit(job)

    def _apply_options(self, options: AssistantOptions) -> None:
        pipeline, components = self.pipeline, self.components
        if pipeline is None or components is None or self._loaded_options is None:
            return
        pipeline.update_options(options)
        parts = changed_components(self._loaded_options, options)
        if not parts:
            self._loaded_options = options
            self.status.emit("")  # the dock may be showing a reload that turned out not to be needed
            return
        try:
            fresh = self._build(options, reuse=components, parts=parts)
        except Exception as exc:
            log.warning("Reloading the assistant's models failed", exc_info=True)
            self._relay(AssistantEvent("error", text=describe_exception(exc, "The assistant kept its previous models")))
            self.status.emit("")
            return
        pipeline.set_components(fresh)
        self.components = fresh
        if fresh.llm is not components.llm:
            Components(components.vad, components.asr, components.llm, components.voice).close()
        self._loaded_options = options
        self.status.emit("")
        self.loaded.emit(fresh.describe())
