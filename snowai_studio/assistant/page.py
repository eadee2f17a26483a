"""The voice-assistant page: speak (or type) a question, read and hear the answer as it streams.

The transcript fills the middle, with the assistant's state, the microphone's level and the last
answer's latency around it and the text box under it; Start listening, Stop reply, Hold to talk and
the conversation's New, Save and Load are buttons on the action bar; the settings are inspector
sections. Everything heavy runs in an :class:`~workers.assistant.worker.AssistantWorker`
(:class:`~snowai_studio.assistant.session.AssistantSession` keeps it), built when the user first
starts listening or sends a message; the page only shows the events it streams back.

Every problem is said once on the page (the microphone line's Retry bar for the microphone, the
message line for the rest) and reaches the notifications once through logging.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShowEvent
from PySide6.QtWidgets import QWidget

from snowai_studio.assistant import conversation_files
from snowai_studio.assistant.checks import PageChecks
from snowai_studio.assistant.inspector_sections import AssistantSettingsPanel
from snowai_studio.assistant.latency import LatencyRow
from snowai_studio.assistant.listening import Listening
from snowai_studio.assistant.note_banner import NoteBanner
from snowai_studio.assistant.options_editor import llm_choice, normalized
from snowai_studio.assistant.session import SOURCE, AssistantSession
from snowai_studio.assistant.status_strip import StatusStrip
from snowai_studio.assistant.transcript import ChatView, ComposeRow
from snowai_studio.assistant.worker_events import WorkerEvents, strip_source
from snowai_studio.context import StudioContext
from snowai_studio.icons import icon
from snowai_studio.panels.job_runner import JobRunner
from snowai_studio.panels.live_source import LiveSourcePanel, describe_microphone
from snowai_studio.panels.tool_page import PRIMARY_ICON_COLOR, ToolPage, shortcut_text
from snowai_studio.tool_dock import (
    microphone_available,
    microphone_factory,
    open_devices,
    open_model_manager,
    speaker_factory,
)
from workers.assistant.options import AssistantOptions
from workers.errors import describe_exception

log = logging.getLogger(__name__)

BUILTIN_NOTE = (
    "The built-in Gemma 3 270M is tiny: expect short, often wrong answers. For a real assistant use "
    "Qwen2.5-3B/7B-Instruct or Llama-3-8B-Instruct (a transformers folder or a GGUF file), or a local "
    "server such as Ollama — choose it in the Language model settings."
)
FIRST_RUN_TEXT = (
    "The first start prepares the built-in language model once (about a minute); later starts take seconds. "
    "You can type your question meanwhile."
)
LISTEN_TIPS = {
    "vad": "Open the microphone; speak, pause, and the assistant answers",
    "ptt": 'Open the microphone; then hold "Hold to talk" (or Space in the conversation) while you speak',
}
SAVE_DELAY_MS = 500


class AssistantPage(Listening, WorkerEvents, ToolPage):
    """A voice assistant for a creator: a conversation, a microphone, a stop button and the settings."""

    tool_id = "assistant"
    title = "Voice assistant"

    #: Every worker event after the page has shown it (tests and scripting).
    event_shown = Signal(object)
    #: The worker finished loading its models (the ``loaded`` info: asr, llm, voice, note).
    models_loaded = Signal(dict)
    #: The saved settings were written.
    options_saved = Signal()

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.options: AssistantOptions = normalized(context.settings.options(AssistantOptions))
        self.last_message = ""
        self.last_level = "info"
        self.loaded_info: dict[str, Any] = {}
        self.state = "off"
        self.last_timings: dict[str, Any] = {}
        #: The newest events shown (levels left out), for tests and scripting.
        self.events: deque[Any] = deque(maxlen=5000)
        self.microphone_ok = True
        self.microphone_reason = ""
        self._listening = self._talking = self._talk_waiting = False
        #: The microphone delivers sound (its first level arrived since it was opened).
        self._mic_live = False
        #: The last microphone problem the worker reported (and logged) itself.
        self._mic_reported = ""
        self._typed: list[str] = []
        self._closing = False
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_options)
        self.session = AssistantSession(self._make_worker, lambda: self.store, self)
        self.checks = PageChecks(self)
        self._build_actions()
        self._build_center()
        self.settings_panel = AssistantSettingsPanel(self.inspector, self.options, self.store)
        self._connect()
        self._update_note()
        self._update_actions()
        self.check_microphone()

    # ---- construction ----------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        self.listen_action = self.action("Start listening", icon_name="mic", checkable=True, primary=True,
                                         tip=LISTEN_TIPS["vad"])
        self.listen_action.toggled.connect(self._on_listen_toggled)
        self.listen_button = self.add_action_button(self.listen_action, primary=True)
        self.stop_action = self.action("Stop reply", lambda: self.interrupt(), icon_name="stop", shortcut="Esc",
                                       tip="Stop the answer: the assistant stops writing and speaking")
        self.stop_button = self.add_action_button(self.stop_action)
        self.talk_action = self.action("Hold to talk", icon_name="mic", tip=LISTEN_TIPS["ptt"].replace(
            "Open the microphone; then hold", "Hold"))
        self.talk_button = self.add_action_button(self.talk_action)
        self.talk_button.pressed.connect(lambda: self.set_talk(True))
        self.talk_button.released.connect(lambda: self.set_talk(False))
        self._talk_slot = next(a for a in self.action_bar.actions() if self.action_bar.widgetForAction(a) is
                               self.talk_button)
        self.action_bar.addSeparator()
        self.new_action = self.action("New", lambda: self.new_conversation(), icon_name="new",
                                      tip="Start a new conversation (the assistant forgets this one)")
        self.save_action = self.action("Save…", lambda: self.save_conversation(), icon_name="save", shortcut="Ctrl+S",
                                       tip="Save the conversation as JSON (to load it again) or Markdown (to read)")
        # Ctrl+O is the window's File › Open, which triggers this action on this page.
        keys = shortcut_text(QKeySequence(QKeySequence.StandardKey.Open))
        self.open_action = self.action("Load…", lambda: self.load_conversation(), icon_name="open",
                                       tip=f"Continue a saved conversation ({keys})")
        for action in (self.new_action, self.save_action, self.open_action):
            self.add_action_button(action)
        self.add_action_spacer()
        self.models_action = self.action("Models…", lambda: self.open_model_manager(), icon_name="models",
                                         tip="Open the model manager: Whisper models, voices and more")
        self.add_action_button(self.models_action)

    def _build_center(self) -> None:
        self.note_banner = NoteBanner()
        self.live = LiveSourcePanel("microphone", object_name="assistantMicrophone", show_start=False,
                                    start_text="Start listening", stop_text="Stop listening")
        self.live_problem = self.live.problem
        self.strip = StatusStrip()
        self.state_pill, self.level_meter, self.voice_label = self.strip.pill, self.strip.level_meter, \
            self.strip.voice_label
        self.chat = ChatView()
        self.latency = LatencyRow()
        self.latency_bar, self.latency_label = self.latency.bar, self.latency.label
        self.compose = ComposeRow()
        self.input, self.send_button = self.compose.input, self.compose.send_button
        self.jobs = JobRunner("assistantJobs")
        self.jobs.cancel_button.setToolTip("Stop loading the models")
        self.message_line = self.jobs.result
        self.set_preview(self.chat)
        for index, widget in enumerate((self.note_banner, self.live, self.strip)):
            self.center_layout.insertWidget(index, widget)
        for widget in (self.latency, self.compose, self.jobs):
            self.add_below_preview(widget)

    def _connect(self) -> None:
        self.note_banner.choose_requested.connect(lambda: self.show_settings("llm"))
        self.live.devices_requested.connect(self._open_devices)
        self.live.retry_requested.connect(self.retry_listening)
        self.chat.talk_key.connect(self._on_talk_key)
        self.compose.send_requested.connect(lambda text: self.send_text(text))
        self.jobs.cancel_requested.connect(self.cancel_loading)
        panel = self.settings_panel
        panel.options_changed.connect(self._on_options_changed)
        panel.server_models_requested.connect(self.refresh_server_models)
        panel.models_requested.connect(lambda _model_id: self.open_model_manager())
        s = self.session
        s.loading_started.connect(self._on_loading_started)
        s.loading_status.connect(self.jobs.set_label)
        s.loading_progress.connect(self.jobs.set_progress)
        s.loading_finished.connect(self._on_loading_finished)
        s.became_ready.connect(self._on_ready)
        s.load_failed.connect(self._on_load_failed)
        s.models_loaded.connect(self._on_loaded)
        s.event.connect(self._on_event)
        s.problem.connect(lambda level, text: self._show_worker_problem(text, level))
        s.listening_halted.connect(self._on_listening_halted)
        self.checks.server_models.connect(self._on_server_models)
        self.checks.server_models_failed.connect(self._on_server_models_failed)
        self.checks.microphone_checked.connect(self.set_microphone_available)

    def show_settings(self, section: str = "") -> None:
        """Show the inspector (``section`` "llm" unfolds the language model and scrolls to it)."""
        self.inspector_dock.show()
        self.settings_panel.show_section(section or "listening")

    # ---- messages --------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications) unless the worker reported them already."""
        self.last_message = text
        self.last_level = level
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    # ---- settings ----------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.context.model_store

    @Slot(object)
    def _on_options_changed(self, options: AssistantOptions) -> None:
        self.set_options(options, from_panel=True)

    def set_options(self, options: AssistantOptions, *, from_panel: bool = False) -> None:
        """Use these options: shown, saved (shortly after) and applied live to the running assistant."""
        from workers.assistant.pipeline import changed_components

        previous = self.options
        self.options = normalized(options)
        if not from_panel:
            self.settings_panel.set_options(self.options)
        self.context.settings.set_options(copy.deepcopy(self.options))
        self._save_timer.start()
        reload = set(changed_components(previous, self.options))
        self.session.apply_options(self.options, reload)
        if "llm" in reload:
            self.loaded_info.pop("note", None)
        self._update_note()
        self._update_actions()

    @Slot()
    def save_options(self) -> bool:
        """Write the settings now (they are also written shortly after each change)."""
        self._save_timer.stop()
        self.context.settings.set_options(copy.deepcopy(self.options))
        try:
            self.context.settings.save()
        except OSError as exc:
            self.show_message(describe_exception(exc, "The assistant's settings could not be saved"), "warning")
            return False
        self.options_saved.emit()
        return True

    def _update_note(self) -> None:
        note = str(self.loaded_info.get("note") or "")
        if not note and llm_choice(self.options) == "builtin":
            note = BUILTIN_NOTE
        self.note_banner.set_note(note)

    @property
    def note(self) -> str:
        """The language model's note as shown above the transcript ("" when hidden)."""
        return self.note_banner.text if self.note_banner.isVisibleTo(self) else ""

    # ---- what the window tells the page ---------------------------------------------------------------------
    def devices_changed(self) -> None:
        self.check_microphone()

    def models_changed(self) -> None:
        self.settings_panel.set_store(self.store)

    def model_imported(self, model_id: str) -> None:
        if self.store is not None and self.settings_panel.select_model(self.store, model_id):
            self.show_message(f"Using {model_id}, just imported.")

    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.models_changed()

    def _open_devices(self) -> None:
        open_devices(self)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.models_changed()  # a model may have been downloaded meanwhile

    # ---- the microphone -----------------------------------------------------------------------------------------
    def check_microphone(self) -> None:
        """Look (off the UI thread) whether the microphone chosen in Devices is there; Start listening
        follows the answer. An injected microphone (tests) is always there."""
        choice = self.context.settings.devices.microphone
        self.live.set_device_text(describe_microphone(choice))
        if self.context.extras.get("microphone_factory") is not None:
            self.set_microphone_available(True)
            return
        context = self.context
        self.checks.check_microphone(lambda: microphone_available(context), choice)

    @Slot(bool, str)
    def set_microphone_available(self, ok: bool, reason: str = "") -> None:
        """Without a microphone Start listening and Hold to talk are disabled; their tooltip and the
        microphone line say why in one sentence (typed questions keep working)."""
        from snowai_studio.assistant.checks import NO_MICROPHONE

        self.microphone_ok = ok
        self.microphone_reason = "" if ok else (reason or NO_MICROPHONE)
        self.live.set_available(ok, self.microphone_reason)
        self._update_actions()

    # ---- the model manager and the server's models ---------------------------------------------------------
    @Slot(str)
    def refresh_server_models(self, url: str | None = None) -> int:
        """Ask the server at ``url`` (off the UI thread) which models it has; returns the job id."""
        url = (url or self.options.server_url).strip()
        self.show_message(f"Asking {url} for its models…")
        return self.checks.server_models_of(url)

    @Slot(list)
    def _on_server_models(self, names: list[str]) -> None:
        self.settings_panel.llm.set_server_models(names)
        if names:
            plural = "s" if len(names) != 1 else ""
            self.show_message(f"The server has {len(names)} model{plural}: {', '.join(names[:6])}.")
        else:
            self.show_message("The server answers but lists no models; pull one first (ollama pull qwen2.5:3b).")

    @Slot(str)
    def _on_server_models_failed(self, message: str) -> None:
        self.settings_panel.llm.server_models_failed()
        self.show_message(strip_source(message, "Worker"), "warning", notify=False)

    # ---- the worker ---------------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        return self.session.worker

    @property
    def ready(self) -> bool:
        return self.session.ready

    @property
    def loading(self) -> bool:
        return self.session.loading

    def _when_ready(self, name: str, action: Any) -> bool:
        return self.session.when_ready(name, action)

    def _make_worker(self) -> Any:
        from workers.assistant.worker import AssistantWorker

        return AssistantWorker(
            copy.deepcopy(self.options),
            store=self.store,
            source_factory=microphone_factory(self.context),
            sink_factory=speaker_factory(self.context),
            device=self.context.settings.compute,
            components_factory=self.context.extras.get("assistant_components_factory"),
        )

    @Slot(str)
    def _on_loading_started(self, text: str) -> None:
        self.jobs.start(text)
        self.state_pill.set_state("loading")
        if not self.loaded_info and llm_choice(self.options) == "builtin":
            self.show_message(FIRST_RUN_TEXT)

    @Slot()
    def _on_loading_finished(self) -> None:
        self.jobs.finish()
        if self.state_pill.state == "loading" and self.ready:
            self._show_state(self.state)

    @Slot()
    def cancel_loading(self) -> None:
        """Stop loading the models (the worker is closed; the next Start or Send tries again)."""
        if not self.session.cancel_loading():
            return
        self._mic_live = self._talk_waiting = False
        self.chat.fail_waiting("not sent: loading was cancelled")
        self._set_listening(False)
        self.state_pill.set_state("off")
        self.show_message("Loading was cancelled. Press Start listening or Send to try again.")

    @Slot()
    def _on_load_failed(self) -> None:
        self._mic_live = self._talk_waiting = False
        self.chat.fail_waiting("not sent: the models could not be loaded")
        self._set_listening(False)
        self.state_pill.set_state("failed")
        self._update_actions()

    @Slot()
    def _on_ready(self) -> None:
        if self.state_pill.state == "loading":
            self._show_state(self.state)
        self._update_actions()

    @Slot(dict)
    def _on_loaded(self, info: dict) -> None:
        self.loaded_info = dict(info)
        names = [str(info.get(k) or "") for k in ("asr", "llm", "voice")]
        shown = " · ".join(n for n in names if n)
        self.show_message(f"Ready: {shown}." if shown else "Ready.")
        self._update_note()
        self.models_loaded.emit(self.loaded_info)

    # ---- conversations --------------------------------------------------------------------------------------
    def conversation(self) -> Any:
        """The conversation as the assistant remembers it (a :class:`~workers.assistant.conversation.Conversation`)."""
        return self.session.conversation(self.options.system_prompt)

    def new_conversation(self) -> None:
        """Forget the conversation and start again (the saved settings stay)."""
        self.session.set_conversation(None)
        self._typed.clear()
        self.chat.clear()
        self.latency.clear()
        self.show_message("New conversation.")

    def save_conversation(self, path: str | Path | None = None) -> Path | None:
        """Save as JSON (``.json``, loads again) or Markdown (``.md``); asks where when ``path`` is None."""
        conversation = self.conversation()
        if path is None and getattr(conversation, "turns", None):
            path = conversation_files.ask_save_path(self)
            if path is None:
                return None
        saved, text, level = conversation_files.save(conversation, path or "")
        self.show_message(text, level)
        return saved

    def load_conversation(self, path: str | Path | None = None) -> bool:
        """Show a saved conversation (JSON or Markdown) and continue it."""
        if path is None:
            path = conversation_files.ask_load_path(self)
            if path is None:
                return False
        conversation, text, level = conversation_files.load(path)
        if conversation is not None:
            self.session.set_conversation(conversation)
            self._typed.clear()
            self.chat.show_turns(conversation.turns)
            self.latency.clear()
        self.show_message(text, level)
        return conversation is not None

    # ---- state of the buttons ------------------------------------------------------------------------------
    def _update_actions(self) -> None:
        busy = self.state in ("thinking", "speaking")
        self.stop_action.setEnabled(self.ready and busy)
        ptt = self.options.mode == "ptt"
        self._talk_slot.setVisible(ptt)  # the toolbar lays the button out (or not) on its next pass
        self.talk_button.setVisible(ptt)
        mic = self.microphone_ok or self._listening
        self.listen_action.setEnabled(mic)
        self.talk_action.setEnabled(self.microphone_ok)
        tip = self.microphone_reason if not self.microphone_ok else LISTEN_TIPS["ptt" if ptt else "vad"]
        self.listen_action.setToolTip("Close the microphone" if self._listening else tip)
        if not self.microphone_ok:
            self.talk_action.setToolTip(self.microphone_reason)

    def _set_listening(self, on: bool) -> None:
        if on != self._listening:
            self._mic_live = False
        self._listening = on
        if self.listen_action.isChecked() != on:
            self.listen_action.blockSignals(True)
            self.listen_action.setChecked(on)
            self.listen_action.blockSignals(False)
        self.listen_action.setText("Stop listening" if on else "Start listening")
        self.listen_action.setIcon(icon("stop" if on else "mic", PRIMARY_ICON_COLOR))
        self.live.set_running(on)
        self._update_actions()

    # ---- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Save the settings, stop the assistant and release the microphone and speaker (the window is closing)."""
        if self._closing:
            return
        self._closing = True
        self.settings_panel.flush()
        if self._save_timer.isActive():
            self.save_options()
        self.session.stop()
        self.checks.stop()

