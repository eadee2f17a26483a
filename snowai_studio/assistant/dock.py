"""The voice-assistant dock: speak (or type) a question, read and hear the answer as it streams.

Everything heavy runs in an :class:`~workers.assistant.worker.AssistantWorker` on its own thread,
built when the user first starts listening or sends a message: it loads the speech detector,
Whisper, the language model and the voice (the first run prepares the built-in Gemma once, which
takes about a minute; the dock shows the progress and stays usable), then streams
:class:`~workers.assistant.pipeline.AssistantEvent` objects back. The dock only reacts to them:
the transcript, the state, the microphone level and each turn's latency.

Options are saved in the settings' ``assistant`` group and applied live. Every problem becomes a
sentence on the dock's message line and, through logging, in the notifications panel.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QResizeEvent, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.assistant.settings_panel import AssistantSettingsPanel, llm_choice, normalized
from snowai_studio.assistant.widgets import (
    ChatView,
    CollapsibleSection,
    LatencyBar,
    StatePill,
    breakdown_text,
    timings_text,
)
from snowai_studio.context import StudioContext
from snowai_studio.tool_dock import microphone_factory, open_model_manager, speaker_factory
from snowai_studio.widgets.level_meter import LevelMeter
from snowai_studio.widgets.problem_bar import ProblemBar
from snowai_studio.widgets.status_rows import MessageLine, ProgressRow
from workers.assistant.options import AssistantOptions
from workers.errors import UserError, describe_exception

log = logging.getLogger(__name__)

SOURCE = "Voice assistant"
#: What the progress bar says while one of the models is loaded again after a settings change.
RELOAD_TEXT = {
    "asr": "Loading the speech recogniser…",
    "llm": "Loading the language model…",
    "voice": "Loading the voice…",
}
CONVERSATION_FILTERS = {"json": "Conversation (*.json)", "md": "Markdown (*.md)"}
BUILTIN_NOTE = (
    "The built-in Gemma 3 270M is tiny: expect short, often wrong answers. For a real assistant use "
    "Qwen2.5-3B/7B-Instruct or Llama-3-8B-Instruct (a transformers folder or a GGUF file), or a local "
    "server such as Ollama — choose it under Settings › Language model."
)
LOADING_TEXT = "Loading the assistant's models…"
FIRST_RUN_TEXT = (
    "The first start prepares the built-in language model once (about a minute); later starts take seconds. "
    "You can type your question meanwhile."
)
SAVE_DELAY_MS = 500


def _conversations_dir() -> str:
    from PySide6.QtCore import QStandardPaths

    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return found or str(Path.home())


class AssistantDock(QWidget):
    """A voice assistant for a creator: a conversation, a microphone, a stop button and the settings."""

    #: Every worker event after the dock has shown it (tests and scripting).
    event_shown = Signal(object)
    #: The worker finished loading its models (the ``loaded`` info: asr, llm, voice, note).
    models_loaded = Signal(dict)
    #: The saved settings were written.
    options_saved = Signal()

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantDock")
        self.context = context
        self.options: AssistantOptions = normalized(context.settings.options(AssistantOptions))
        self.last_message = ""
        self.last_level = "info"
        self.loaded_info: dict[str, Any] = {}
        self.state = "off"
        self.last_timings: dict[str, Any] = {}
        #: The newest events shown (levels left out), for tests and scripting.
        self.events: deque[Any] = deque(maxlen=5000)
        self._worker: Any = None
        self._worker_store: Any = None
        self._ready = False
        self._loading = False
        #: Model reloads asked of the running worker and not finished yet.
        self._reloads = 0
        self._retired: list[Any] = []
        self._pending: list[tuple[str, Callable[[Any], None]]] = []
        self._conversation: Any = None  # a loaded conversation not yet handed to a worker
        self._listening = False
        self._talking = False
        self._talk_waiting = False
        #: The microphone delivers sound (its first level arrived since it was opened).
        self._mic_live = False
        self._typed: list[str] = []
        self._tasks: Any = None
        self._task_jobs: dict[int, str] = {}
        self._closing = False
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_options)
        self._build_ui()
        self._update_note()
        self._update_actions()

    # ---- construction ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.new_button = QPushButton("New")
        self.new_button.setObjectName("assistantNew")
        self.new_button.setToolTip("Start a new conversation (the assistant forgets this one)")
        self.new_button.clicked.connect(lambda: self.new_conversation())
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("assistantSave")
        self.save_button.setToolTip("Save the conversation as JSON (to load it again) or Markdown (to read or share)")
        self.save_button.clicked.connect(lambda: self.save_conversation())
        self.load_button = QPushButton("Load…")
        self.load_button.setObjectName("assistantLoad")
        self.load_button.setToolTip("Continue a saved conversation")
        self.load_button.clicked.connect(lambda: self.load_conversation())
        self.models_link = QLabel('<a href="models">Models…</a>')
        self.models_link.setObjectName("assistantModelsLink")
        self.models_link.setToolTip("Open the model manager: Whisper models, voices and more")
        self.models_link.linkActivated.connect(lambda _link: self.open_model_manager())
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.new_button)
        top.addWidget(self.save_button)
        top.addWidget(self.load_button)
        top.addStretch(1)
        top.addWidget(self.models_link)

        self.note_banner = QFrame()
        self.note_banner.setObjectName("assistantNote")
        self.note_banner.setStyleSheet(
            "#assistantNote { border: 1px solid rgb(200, 150, 40); border-radius: 6px; "
            "background: rgba(200, 150, 40, 36); }"
        )
        self.note_label = QLabel()
        self.note_label.setObjectName("assistantNoteText")
        self.note_label.setWordWrap(True)
        self.note_label.setTextFormat(Qt.TextFormat.RichText)
        self.note_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.note_label.linkActivated.connect(self._on_note_link)
        self._note_text = ""
        self._note_expanded = False
        note_choose = QPushButton("Choose a model…")
        note_choose.setObjectName("assistantNoteChoose")
        note_choose.setToolTip("Open the language-model settings")
        note_choose.clicked.connect(lambda: self.show_settings("llm"))
        note_close = QToolButton()
        note_close.setObjectName("assistantNoteClose")
        note_close.setText("✕")
        note_close.setAutoRaise(True)
        note_close.setToolTip("Hide this note")
        note_close.clicked.connect(lambda: self.hide_note())
        banner = QHBoxLayout(self.note_banner)
        banner.setContentsMargins(8, 4, 2, 4)
        banner.addWidget(self.note_label, 1)
        banner.addWidget(note_choose, 0, Qt.AlignmentFlag.AlignVCenter)
        banner.addWidget(note_close, 0, Qt.AlignmentFlag.AlignTop)
        self._note_hidden_for = ""

        self.state_pill = StatePill()
        self.level_meter = LevelMeter()
        self.level_meter.setObjectName("assistantLevel")
        self.level_meter.setToolTip("The microphone's level")
        self.voice_label = QLabel()
        self.voice_label.setObjectName("assistantVoiceProb")
        self.voice_label.setMinimumWidth(80)
        self.voice_label.setStyleSheet("color: palette(placeholder-text);")
        self.voice_label.setToolTip("How sure the speech detector is that you are speaking")
        status = QHBoxLayout()
        status.addWidget(self.state_pill)
        status.addWidget(self.level_meter, 1)
        status.addWidget(self.voice_label)
        # What stopped the listening (the microphone failed or went quiet), with Retry.
        self.live_problem = ProblemBar("assistantListenProblem")
        self.live_problem.retry_requested.connect(self.retry_listening)

        self.chat = ChatView()
        self.chat.talk_key.connect(self._on_talk_key)

        self.latency_bar = LatencyBar()
        self.latency_bar.setObjectName("assistantLatencyBar")
        self.latency_bar.setFixedHeight(6)
        self.latency_label = QLabel("Latency of each answer shows here.")
        self.latency_label.setObjectName("assistantLatency")
        self.latency_label.setWordWrap(True)
        self.latency_label.setStyleSheet("color: palette(placeholder-text); font-size: 9pt;")
        self.latency_label.setToolTip(
            "From the end of your speech: when the speech was recognised, when the first word of the answer "
            "was written and when its first sound played."
        )

        self.input = QLineEdit()
        self.input.setObjectName("assistantInput")
        self.input.setPlaceholderText("Type a question and press Enter…")
        self.input.returnPressed.connect(lambda: self.send_text())
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("assistantSend")
        self.send_button.setDefault(False)
        self.send_button.clicked.connect(lambda: self.send_text())
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addWidget(self.send_button)

        self.listen_button = QPushButton("Start listening")
        self.listen_button.setObjectName("assistantListen")
        self.listen_button.setCheckable(True)
        self.listen_button.setToolTip("Open the microphone; speak, pause, and the assistant answers")
        self.listen_button.toggled.connect(self._on_listen_toggled)
        self.talk_button = QPushButton("Hold to talk")
        self.talk_button.setObjectName("assistantTalk")
        self.talk_button.setToolTip("Push-to-talk: hold while you speak, let go to get the answer (or hold Space)")
        self.talk_button.pressed.connect(lambda: self.set_talk(True))
        self.talk_button.released.connect(lambda: self.set_talk(False))
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("assistantStop")
        self.stop_button.setToolTip("Stop the answer: the assistant stops writing and speaking (Esc)")
        self.stop_button.clicked.connect(lambda: self.interrupt())
        controls = QHBoxLayout()
        controls.addWidget(self.listen_button, 1)
        controls.addWidget(self.talk_button, 1)
        controls.addWidget(self.stop_button)
        stop_key = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        stop_key.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        stop_key.activated.connect(lambda: self.interrupt())

        self.progress_box = ProgressRow()
        self.progress = self.progress_box.bar
        self.cancel_button = self.progress_box.cancel_button
        self.cancel_button.setToolTip("Stop loading the models")
        self.cancel_button.clicked.connect(lambda: self.cancel_loading())
        self.progress_status = QLabel()
        self.progress_status.setObjectName("assistantLoadStatus")
        self.progress_status.setWordWrap(True)
        self.progress_status.setStyleSheet("color: palette(placeholder-text);")
        self.progress_status.hide()

        self.message_line = MessageLine("assistantMessage")
        self.message_label = self.message_line.label

        self.settings_panel = AssistantSettingsPanel(self.options, self.store)
        self.settings_panel.options_changed.connect(self._on_options_changed)
        self.settings_panel.server_models_requested.connect(self.refresh_server_models)
        self.settings_panel.models_requested.connect(self.open_model_manager)
        scroll = QScrollArea()
        scroll.setObjectName("assistantSettingsScroll")
        scroll.setWidget(self.settings_panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll = scroll
        self.settings_section = CollapsibleSection("Settings", scroll)
        self.settings_section.setObjectName("assistantSettingsSection")
        self.settings_section.toggled.connect(lambda _on: self._fit_settings())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.addLayout(top)
        layout.addWidget(self.note_banner)
        layout.addLayout(status)
        layout.addWidget(self.live_problem)
        layout.addWidget(self.chat, 1)
        layout.addWidget(self.latency_bar)
        layout.addWidget(self.latency_label)
        layout.addLayout(input_row)
        layout.addLayout(controls)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.progress_status)
        layout.addWidget(self.message_line)
        layout.addWidget(self.settings_section)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def _fit_settings(self) -> None:
        """The settings take at most about half of the dock; the conversation keeps the rest."""
        self.settings_scroll.setMaximumHeight(max(160, int(self.height() * 0.5)))
        self.settings_scroll.setMinimumHeight(min(260, max(120, int(self.height() * 0.3))))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_settings()

    def sizeHint(self) -> QSize:
        return QSize(460, 720)

    def minimumSizeHint(self) -> QSize:
        # Tabbed with the other tools: the window must not grow taller because of this dock.
        return QSize(320, 300)

    def show_settings(self, section: str = "") -> None:
        """Unfold the settings (``section`` "llm" scrolls to the language model)."""
        self.settings_section.set_expanded(True)
        if section == "llm":
            QTimer.singleShot(0, lambda: self.settings_scroll.ensureWidgetVisible(self.settings_panel.llm_combo))

    # ---- messages --------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications panel) unless the worker already reported them."""
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
        previous = self.options
        self.options = normalized(options)
        if not from_panel:
            self.settings_panel.set_options(self.options)
        self.context.settings.set_options(copy.deepcopy(self.options))
        self._save_timer.start()
        reload = _reloaded_parts(previous, self.options)
        worker = self._worker
        if worker is not None and self._ready:
            worker.set_options(copy.deepcopy(self.options))
            if reload:
                self._reloads += 1
                self._begin_loading(RELOAD_TEXT.get(min(reload), "Loading the new model…"))
        elif worker is not None:
            self._later("options", lambda w: w.set_options(copy.deepcopy(self.options)))
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
        if note != self._note_text:
            self._note_text = note
            self._note_expanded = False
        self._show_note_text()
        self.note_banner.setVisible(bool(note) and note != self._note_hidden_for)

    def _show_note_text(self) -> None:
        """The note's first sentence with a "More…" link; the whole note once expanded."""
        note = self._note_text
        summary = _first_sentence(note)
        if self._note_expanded or summary == note:
            link = ' <a href="less">Less</a>' if summary != note else ""
            self.note_label.setText(_html(note) + link)
        else:
            self.note_label.setText(_html(summary) + ' <a href="more">More…</a>')
        self.note_label.setToolTip(note)

    @Slot(str)
    def _on_note_link(self, link: str) -> None:
        self._note_expanded = link == "more"
        self._show_note_text()

    def hide_note(self) -> None:
        """Hide the note until another model brings another one."""
        self._note_hidden_for = self._note_text
        self.note_banner.hide()

    @property
    def note(self) -> str:
        """The language model's note as shown in the banner ("" when hidden)."""
        return self._note_text if self.note_banner.isVisibleTo(self) else ""

    # ---- the model manager and the server's models ---------------------------------------------------------
    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.settings_panel.store = self.store
        self.settings_panel.refresh_models()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.settings_panel.store = self.store
        self.settings_panel.refresh_models()  # a model may have been downloaded meanwhile
        self._fit_settings()

    def _ensure_tasks(self) -> Any:
        if self._tasks is None:
            from workers.base import Worker

            tasks = Worker()
            tasks.name = "Voice assistant tasks"
            tasks.job_finished.connect(self._on_task_finished)
            tasks.job_failed.connect(self._on_task_failed)
            tasks.start()
            self._tasks = tasks
        return self._tasks

    @Slot(str)
    def refresh_server_models(self, url: str | None = None) -> int:
        """Ask the server at ``url`` (off the UI thread) which models it has; returns the job id."""
        url = (url or self.options.server_url).strip()

        def job(ctx: Any) -> list[str]:
            from workers.assistant.llm import list_server_models

            return list(list_server_models(url))

        self.show_message(f"Asking {url} for its models…")
        job_id = self._ensure_tasks().submit(job)
        self._task_jobs[job_id] = "server_models"
        return job_id

    @Slot(int, object)
    def _on_task_finished(self, job_id: int, result: Any) -> None:
        if self._task_jobs.pop(job_id, None) != "server_models":
            return
        names = [str(n) for n in result or []]
        self.settings_panel.set_server_models(names)
        if names:
            plural = "s" if len(names) != 1 else ""
            self.show_message(f"The server has {len(names)} model{plural}: {', '.join(names[:6])}.")
        else:
            self.show_message("The server answers but lists no models; pull one first (ollama pull qwen2.5:3b).")

    @Slot(int, str)
    def _on_task_failed(self, job_id: int, message: str) -> None:
        if self._task_jobs.pop(job_id, None) != "server_models":
            return
        self.settings_panel.server_models_failed()
        self.show_message(_strip_source(message, "Worker"), "warning", notify=False)

    # ---- the worker --------------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        return self._worker

    @property
    def ready(self) -> bool:
        return self._worker is not None and self._ready

    @property
    def loading(self) -> bool:
        return self._loading

    def _make_worker(self) -> Any:
        from workers.assistant.worker import AssistantWorker

        extras = self.context.extras
        return AssistantWorker(
            copy.deepcopy(self.options),
            store=self.store,
            source_factory=microphone_factory(self.context),
            sink_factory=speaker_factory(self.context),
            device=self.context.settings.compute,
            components_factory=extras.get("assistant_components_factory"),
        )

    def _ensure_worker(self) -> Any:
        worker = self._worker
        if worker is not None and (self._worker_store is not self.store or worker.state == "failed"):
            self._retire_worker()
            worker = None
        if worker is None:
            try:
                worker = self._make_worker()
            except Exception as exc:  # a broken installation must not take the dock down
                message = describe_exception(exc, "The voice assistant could not start")
                log.error("%s", message, exc_info=exc)
                self.show_message(message, "error", notify=False)
                return None
            worker.event.connect(self._on_event)
            worker.loaded.connect(self._on_loaded)
            worker.ready.connect(self._on_ready)
            worker.progress.connect(self._on_progress)
            worker.error.connect(self._on_worker_error)
            worker.warning.connect(self._on_worker_warning)
            worker.stream_halted.connect(self._on_listening_halted)
            worker.state_changed.connect(self._on_worker_state)
            status = getattr(worker, "status", None)
            if status is not None:
                status.connect(self._on_status)
            self._worker = worker
            self._worker_store = self.store
            self._ready = False
            conversation, self._conversation = self._conversation, None
            if conversation is not None:
                self._pending.insert(0, ("conversation", lambda w: w.set_conversation(conversation)))
            self._begin_loading(LOADING_TEXT)
            worker.start()
        return worker

    def _when_ready(self, name: str, action: Callable[[Any], None]) -> bool:
        """Run ``action(worker)`` now if the models are loaded, else once they are. False if no worker."""
        worker = self._ensure_worker()
        if worker is None:
            return False
        if self._ready:
            action(worker)
        else:
            self._pending.append((name, action))
        return True

    def _later(self, name: str, action: Callable[[Any], None]) -> None:
        """Queue ``action(worker)`` for when the loading worker is ready (replacing one of the same name)."""
        self._pending = [p for p in self._pending if p[0] != name]
        self._pending.append((name, action))

    def _retire_worker(self, wait_ms: int = 3000) -> None:
        worker, self._worker = self._worker, None
        self._ready = False
        self._reloads = 0
        self._mic_live = self._talk_waiting = False
        self._pending.clear()
        if worker is None:
            return
        try:
            self._conversation = worker.conversation
        except Exception:
            self._conversation = None
        for signal in (
            worker.event,
            worker.loaded,
            worker.ready,
            worker.progress,
            worker.error,
            worker.warning,
            worker.stream_halted,
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect()
        if not worker.stop(wait_ms):
            self._retired.append(worker)

    def _begin_loading(self, text: str) -> None:
        self._loading = True
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        self.progress.setValue(0)
        self.progress_box.show()
        first = not self.loaded_info and llm_choice(self.options) == "builtin"
        self.progress_status.setText(FIRST_RUN_TEXT if first else "")
        self.progress_status.setVisible(first)
        self.state_pill.set_state("loading")
        self.show_message(text)

    def _end_loading(self) -> None:
        self._loading = False
        self.progress_box.hide()
        self.progress_status.hide()
        if self.state_pill.state == "loading" and self._ready:
            self._show_state(self.state)

    @Slot()
    def cancel_loading(self) -> None:
        """Stop loading the models (the worker is closed; the next Start or Send tries again)."""
        if self._worker is None or self._ready:  # a reload cannot be stopped; the bar just goes away
            self._reloads = 0
            self._end_loading()
            return
        self._retire_worker(wait_ms=300)
        self.chat.fail_waiting("not sent: loading was cancelled")
        self._end_loading()
        self._set_listening(False)
        self.state_pill.set_state("off")
        self.show_message("Loading was cancelled. Press Start listening or Send to try again.")
        self._update_actions()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if not self._loading:
            return
        if total > 0:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(100 * min(done, total) / total))
            if "%p" not in self.progress.format():
                self.progress.setFormat(self.progress.format() + " %p%")
        else:
            self.progress.setRange(0, 0)

    @Slot(str)
    def _on_status(self, text: str) -> None:
        if not text:  # a load ended (a reload that failed says why in an error event)
            if self._ready:
                self._reloads = max(0, self._reloads - 1)
                if not self._reloads:
                    self._end_loading()
            return
        if self._loading:
            self.progress.setFormat(text + (" %p%" if self.progress.maximum() > 0 else ""))
        self.show_message(text)

    @Slot(str)
    def _on_worker_state(self, state: str) -> None:
        if state == "failed":
            self._ready = False
            self._pending.clear()
            self.chat.fail_waiting("not sent: the models could not be loaded")
            self._end_loading()
            self._set_listening(False)
            self.state_pill.set_state("failed")
            self._update_actions()

    @Slot()
    def _on_ready(self) -> None:
        self._ready = True
        self._end_loading()
        pending, self._pending = self._pending, []
        worker = self._worker
        for _name, action in pending:
            if worker is None:
                break
            try:
                action(worker)
            except Exception as exc:
                message = describe_exception(exc, SOURCE)
                log.error("%s", message, exc_info=exc)
                self.show_message(message, "error", notify=False)
        if self.state_pill.state == "loading":
            self._show_state(self.state)
        self._update_actions()

    @Slot(dict)
    def _on_loaded(self, info: dict) -> None:
        self.loaded_info = dict(info or {})
        if not self._reloads:
            self._end_loading()
        names = [str(info.get(k) or "") for k in ("asr", "llm", "voice")]
        shown = " · ".join(n for n in names if n)
        self.show_message(f"Ready: {shown}." if shown else "Ready.")
        self._update_note()
        self.models_loaded.emit(self.loaded_info)

    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # The worker logged it already (the notifications panel has it); the dock shows the sentence.
        self._end_loading()
        self.show_message(_strip_source(message), "error", notify=False)

    @Slot(str)
    def _on_worker_warning(self, message: str) -> None:
        self.show_message(_strip_source(message), "warning", notify=False)

    # ---- events from the assistant ---------------------------------------------------------------------------
    @Slot(object)
    def _on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind != "level":
            self.events.append(event)
        handler = getattr(self, f"_event_{kind}", None)
        if handler is not None:
            try:
                handler(event)
            except Exception as exc:  # a bug in showing an event must not take the dock down
                message = describe_exception(exc, SOURCE)
                log.error("%s", message, exc_info=exc)
        self.event_shown.emit(event)

    def _idle_text(self) -> str | None:
        if self._listening:
            return "Listening" if self.options.mode == "vad" else "Hold to talk"
        return "Ready (not listening)"

    def _event_state(self, event: Any) -> None:
        state = str(event.text)
        self.state = state
        if state == "stopped":
            self._set_listening(False)
        self._show_state(state)
        if state in ("idle", "listening", "stopped"):
            for turn in self.chat.streaming_turns():
                self.chat.finish_reply(turn)
        if state in ("stopped", "idle") and not self._listening:
            self.level_meter.reset()
            self.voice_label.setText("")
        self._update_actions()

    def _show_state(self, state: str) -> None:
        if state in ("idle", "listening", "stopped", "off"):
            self.state_pill.set_state("listening" if self._listening else "idle", self._idle_text())
        elif state == "hearing" and self.options.mode == "ptt":
            self.state_pill.set_state(state, "Talk now…")
        else:
            self.state_pill.set_state(state)

    def _event_level(self, event: Any) -> None:
        if not self._mic_live and self._listening:
            self._mic_live = True
            if self._talk_waiting and self._talking and self._worker is not None:
                self._talk_waiting = False
                self._worker.set_talk(True)
        data = event.data or {}
        dbfs = data.get("dbfs")
        if isinstance(dbfs, int | float):
            self.level_meter.set_level(float(dbfs))
        vad = data.get("vad")
        if isinstance(vad, int | float):
            self.voice_label.setText(f"voice {vad:.0%}")

    def _event_user(self, event: Any) -> None:
        text = str(event.text)
        source = str((event.data or {}).get("source") or "")
        if not source:
            source = "text" if text in self._typed else "voice"
        if text in self._typed:
            self._typed.remove(text)
        self.chat.add_user(int(event.turn), text, source)
        self.chat.begin_reply(int(event.turn))

    def _event_delta(self, event: Any) -> None:
        self.chat.append_reply(int(event.turn), str(event.text))

    def _event_done(self, event: Any) -> None:
        interrupted = bool((event.data or {}).get("interrupted"))
        self.chat.finish_reply(int(event.turn), str(event.text), interrupted=interrupted)

    def _event_timings(self, event: Any) -> None:
        data = dict(event.data or {})
        self.last_timings = data
        typed = data.get("source") == "text"
        if "source" not in data:
            bubble = self.chat.bubble(int(event.turn), "user")
            typed = bubble is not None and bubble.header.text().endswith("(typed)")
        text = timings_text(data, typed=typed)
        self.chat.set_timings(int(event.turn), text)
        self.latency_bar.set_timings(data)
        breakdown = breakdown_text(data)
        self.latency_label.setText(f"Last answer: {breakdown}" if breakdown else "")

    def _event_barge_in(self, event: Any) -> None:
        self.show_message("You spoke over the assistant, so it stopped to listen.")

    def _event_echo(self, event: Any) -> None:
        self.voice_label.setText("own voice ignored")

    # The worker logs its warnings and errors (so the notifications panel has them once already).
    def _event_warning(self, event: Any) -> None:
        self.show_message(_strip_source(str(event.text)), "warning", notify=False)

    def _event_error(self, event: Any) -> None:
        self.show_message(_strip_source(str(event.text)), "error", notify=False)
        for turn in self.chat.streaming_turns():
            self.chat.finish_reply(turn)

    # ---- actions ---------------------------------------------------------------------------------------------
    def send_text(self, text: str | None = None) -> bool:
        """Ask a typed question (works without a microphone). Returns False when there is nothing to send."""
        if text is None:
            text = self.input.text()
        text = text.strip()
        if not text:
            self.input.setFocus()
            return False
        if not self._when_ready("text", lambda w: w.submit_text(text)):
            return False
        self._typed.append(text)
        self.input.clear()
        if not self._ready:
            self.chat.add_waiting(text)
            self.show_message("Your question is sent as soon as the models are loaded.")
        return True

    @Slot(bool)
    def _on_listen_toggled(self, on: bool) -> None:
        if on:
            if not self.start_listening():
                self._set_checked(self.listen_button, False)
        else:
            self.stop_listening()

    @Slot(str)
    def _on_listening_halted(self, message: str) -> None:
        """The microphone could not open, failed or went quiet: listening stops, with Retry."""
        if self._closing:
            return
        text = _strip_source(message, "Microphone")
        if self._talking:
            self.set_talk(False)
        self._set_listening(False)
        self.level_meter.reset()
        self.voice_label.setText("")
        if self.state_pill.state in ("listening", "hearing", "idle"):
            self.state_pill.set_state("idle", self._idle_text())
        self.live_problem.show_problem(text)

    @Slot()
    def retry_listening(self) -> None:
        """Retry after the microphone failed: it is opened again with the same settings."""
        self.live_problem.clear()
        worker = self._worker
        if worker is not None and self._ready:
            self._set_listening(True)
            self.state_pill.set_state("listening", self._idle_text())
            worker.restart_listening()
            self.show_message("Opening the microphone again…")
        else:
            self.start_listening()

    def start_listening(self) -> bool:
        """Open the microphone (the one chosen in Devices) and answer what is said."""
        self.live_problem.clear()
        if self._listening:
            return True
        if not self._when_ready("listen", lambda w: w.start_listening()):
            return False
        self._set_listening(True)
        if self._ready:
            self.state_pill.set_state("listening", self._idle_text())
        hint = (
            "Listening: speak, then pause; the assistant answers."
            if self.options.mode == "vad"
            else 'Listening: hold "Hold to talk" (or Space in the conversation) while you speak.'
        )
        self.show_message(hint)
        return True

    def stop_listening(self) -> None:
        """Close the microphone (an answer being spoken goes on; Stop ends it)."""
        self.live_problem.clear()
        if not self._listening:
            return
        self._set_listening(False)
        if self._talking:
            self.set_talk(False)
        worker = self._worker
        if worker is not None:
            if self._ready:
                worker.stop_listening()
            else:
                self._pending = [p for p in self._pending if p[0] != "listen"]
        self.level_meter.reset()
        self.voice_label.setText("")
        if self.state_pill.state in ("listening", "hearing", "idle"):
            self.state_pill.set_state("idle", self._idle_text())
        self.show_message("The microphone is closed.")

    def _set_listening(self, on: bool) -> None:
        if on != self._listening:
            self._mic_live = False
        self._listening = on
        self._set_checked(self.listen_button, on)
        self.listen_button.setText("Stop listening" if on else "Start listening")
        self._update_actions()

    @property
    def listening(self) -> bool:
        return self._listening

    def set_talk(self, pressed: bool) -> None:
        """Push-to-talk: True while the user holds the button (or Space), False when released."""
        if pressed == self._talking:
            return
        if pressed and self.options.mode != "ptt":
            self.show_message("Push-to-talk is off: choose it under Settings › Listening › Mode.")
            return
        self._talking = pressed
        if pressed and not self._listening and not self.start_listening():
            self._talking = False
            return
        worker = self._worker
        if pressed:
            if worker is not None and self._ready and self._mic_live:
                worker.set_talk(True)
            else:
                self._talk_waiting = True  # sent when the microphone delivers its first sound
        elif self._talk_waiting:
            self._talk_waiting = False
            self.show_message("The microphone was not open yet: hold the talk button a moment longer.", "warning")
        elif worker is not None and self._ready:
            worker.set_talk(False)
        self.talk_button.setText("Listening… let go to send" if pressed else "Hold to talk")
        if pressed and self._ready:
            self.state_pill.set_state("hearing", "Talk now…")

    @Slot(bool)
    def _on_talk_key(self, pressed: bool) -> None:
        if self.options.mode == "ptt":
            self.set_talk(pressed)

    @property
    def talking(self) -> bool:
        return self._talking

    def interrupt(self) -> None:
        """Stop the answer now: writing and speaking both stop."""
        worker = self._worker
        if worker is None or not self._ready:
            return
        worker.interrupt()
        self.show_message("Stopped.")

    # ---- conversations --------------------------------------------------------------------------------------
    def conversation(self) -> Any:
        """The conversation as the assistant remembers it (a :class:`~workers.assistant.conversation.Conversation`)."""
        worker = self._worker
        if worker is not None:
            try:
                return worker.conversation
            except Exception as exc:
                log.warning("The conversation could not be read from the assistant: %s", exc)
        if self._conversation is None:
            from workers.assistant.conversation import Conversation

            self._conversation = Conversation(system_prompt=self.options.system_prompt)
        return self._conversation

    def new_conversation(self) -> None:
        """Forget the conversation and start again (the saved settings stay)."""
        worker = self._worker
        if worker is not None:
            if self._ready:
                worker.interrupt()
                worker.new_conversation()
            else:
                self._pending = [p for p in self._pending if p[0] not in ("conversation", "text")]
                self._later("conversation", lambda w: w.new_conversation())
        self._conversation = None
        self._typed.clear()
        self.chat.clear()
        self.latency_bar.clear()
        self.latency_label.setText("Latency of each answer shows here.")
        self.show_message("New conversation.")

    def save_conversation(self, path: str | Path | None = None) -> Path | None:
        """Save as JSON (``.json``, loads again) or Markdown (``.md``); asks where when ``path`` is None."""
        conversation = self.conversation()
        if not getattr(conversation, "turns", None):
            self.show_message("Nothing to save yet: ask the assistant something first.")
            return None
        if path is None:
            suggestion = Path(_conversations_dir()) / time.strftime("conversation-%Y%m%d-%H%M.json")
            filters = ";;".join(CONVERSATION_FILTERS.values())
            name, chosen = QFileDialog.getSaveFileName(self, "Save the conversation", str(suggestion), filters)
            if not name:
                return None
            path = Path(name)
            if path.suffix.lower() not in (".json", ".md", ".markdown"):
                path = path.with_suffix(".md" if chosen == CONVERSATION_FILTERS["md"] else ".json")
        path = Path(path).expanduser()
        if path.suffix.lower() not in (".json", ".md", ".markdown"):
            self.show_message(f"{path.name}: save the conversation as .json or .md.", "warning")
            return None
        try:
            saved = Path(conversation.save(path))
        except Exception as exc:
            self.show_message(_sentence(exc, f"The conversation could not be saved to {path.name}"), "error")
            return None
        self.show_message(f"Conversation saved: {saved}")
        return saved

    def load_conversation(self, path: str | Path | None = None) -> bool:
        """Show a saved conversation (JSON or Markdown) and continue it."""
        if path is None:
            filters = "Conversations (*.json *.md *.markdown);;" + ";;".join(CONVERSATION_FILTERS.values())
            name, _ = QFileDialog.getOpenFileName(self, "Load a conversation", _conversations_dir(), filters)
            if not name:
                return False
            path = name
        path = Path(path).expanduser()
        try:
            from workers.assistant.conversation import Conversation

            conversation = Conversation.load(path)
        except Exception as exc:
            self.show_message(_sentence(exc, f"The conversation {path.name} could not be loaded"), "error")
            return False
        worker = self._worker
        if worker is not None:
            if self._ready:
                worker.interrupt()
                worker.set_conversation(conversation)
            else:
                self._pending = [p for p in self._pending if p[0] != "text"]
                self._later("conversation", lambda w: w.set_conversation(conversation))
        else:
            self._conversation = conversation
        self._typed.clear()
        self.chat.show_turns(conversation.turns)
        self.latency_bar.clear()
        count = len(conversation.turns)
        self.show_message(f"Loaded {path.name}: {count} turn{'s' if count != 1 else ''}. Go on where it stopped.")
        return True

    # ---- state of the buttons ------------------------------------------------------------------------------
    def _update_actions(self) -> None:
        busy = self.state in ("thinking", "speaking")
        self.stop_button.setEnabled(self._worker is not None and self._ready and busy)
        ptt = self.options.mode == "ptt"
        self.talk_button.setVisible(ptt)
        self.listen_button.setToolTip(
            "Open the microphone; speak, pause, and the assistant answers"
            if not ptt
            else 'Open the microphone; then hold "Hold to talk" (or Space in the conversation) while you speak'
        )

    @staticmethod
    def _set_checked(button: Any, on: bool) -> None:
        if button.isChecked() != on:
            button.blockSignals(True)
            button.setChecked(on)
            button.blockSignals(False)

    # ---- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Save the settings, stop the assistant and release the microphone and speaker (the window is closing)."""
        if self._closing:
            return
        self._closing = True
        self.settings_panel.flush()
        if self._save_timer.isActive():
            self.save_options()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        for old in self._retired:
            old.stop()
        self._retired.clear()
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.stop()


def _strip_source(message: str, source: str = SOURCE) -> str:
    """Worker errors arrive as "Assistant: <sentence>"; the dock shows the sentence."""
    for prefix in (f"{source}: ", f"{SOURCE}: ", "Assistant: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _reloaded_parts(old: AssistantOptions, new: AssistantOptions) -> set[str]:
    """The models ("asr", "llm", "voice") the assistant loads again when ``old`` becomes ``new``."""
    from workers.assistant.pipeline import changed_components

    return set(changed_components(old, new))


def _first_sentence(text: str) -> str:
    """The note's first sentence (the whole text when it has only one)."""
    for i, ch in enumerate(text):
        if ch in ".!?" and (i + 1 == len(text) or text[i + 1] == " ") and i > 20:
            return text[: i + 1]
    return text


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=False)


def _sentence(exc: BaseException, context: str) -> str:
    """A :class:`UserError` is already a sentence for the user; anything else gets ``context``."""
    if isinstance(exc, UserError):
        log.info("%s", exc)
        return str(exc)
    log.info("%s", context, exc_info=exc)  # the traceback goes to the log file only
    return describe_exception(exc, context)
