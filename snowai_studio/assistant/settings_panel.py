"""The voice assistant's settings: listening, speech recognition, language model and voice.

The panel edits a copy of :class:`~workers.assistant.options.AssistantOptions` and emits it with
``options_changed`` whenever the user changes something; the dock saves it and hands it to the worker.
It never loads a model: the model lists come from the model store's manifest.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFocusEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.widgets.sliders import LabeledSlider
from workers.assistant.options import (
    DEFAULT_SYSTEM_PROMPT,
    LLM_BACKENDS,
    TTS_ENGINES,
    TURN_MODES,
    AssistantOptions,
)

log = logging.getLogger(__name__)

#: The language model as the user picks it; "builtin" is the gguf backend with the shipped Gemma.
LLM_CHOICES = {
    "builtin": "Built-in Gemma 3 270M (tiny, offline)",
    "transformers": "Transformers model folder",
    "gguf": "GGUF file",
    "openai": "Local server (Ollama, llama.cpp, LM Studio)",
}
BUILTIN_LLM = "gemma-3-270m-q4-k-m-shipped"
DEFAULT_ASR = "whisper-tiny-en-shipped"
DEFAULT_VOICE = "piper-en-us-joe-medium-shipped"
MODE_CHOICES = {"vad": "Speak, pause, get an answer (voice detection)", "ptt": "Push-to-talk (hold a button)"}
OUTPUT_CHOICES = {False: "Speakers (ignore the assistant's own voice)", True: "Headset (microphone always open)"}
TTS_CHOICES = {"piper": "Piper (fast)", "bark": "Bark (slower, more expressive)"}
LANGUAGES = {
    "auto": "Detect automatically",
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "ar": "Arabic",
    "hi": "Hindi",
    "ja": "Japanese",
    "ko": "Korean",
    "zh": "Chinese",
    "sv": "Swedish",
    "cs": "Czech",
}
SERVER_PRESETS = (
    ("Ollama", "http://127.0.0.1:11434/v1"),
    ("llama.cpp server", "http://127.0.0.1:8080/v1"),
    ("LM Studio", "http://127.0.0.1:1234/v1"),
)
GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
VOICE_FILTER = "Piper voices (*.onnx);;All files (*)"
NOT_INSTALLED_TIP = "Not installed: download it in the model manager (Models…) first."


def normalized(options: AssistantOptions) -> AssistantOptions:
    """A copy with every choice the panel can show (unknown values go back to their defaults)."""
    o = copy.deepcopy(options)
    default = AssistantOptions()
    if o.mode not in TURN_MODES:
        o.mode = default.mode
    if o.llm_backend not in LLM_BACKENDS:
        o.llm_backend, o.llm_model = default.llm_backend, default.llm_model
    if o.tts_engine not in TTS_ENGINES:
        o.tts_engine, o.voice = default.tts_engine, default.voice
    o.vad_threshold = min(0.95, max(0.05, float(o.vad_threshold)))
    o.min_silence_ms = min(5000, max(50, int(o.min_silence_ms)))
    o.memory_tokens = min(131072, max(0, int(o.memory_tokens)))
    o.max_new_tokens = min(4096, max(8, int(o.max_new_tokens)))
    o.temperature = min(2.0, max(0.0, float(o.temperature)))
    o.speed = min(3.0, max(0.3, float(o.speed)))
    if not o.asr_model:
        o.asr_model = default.asr_model
    if not o.language:
        o.language = "auto"
    return o


def llm_choice(options: AssistantOptions) -> str:
    """Which of :data:`LLM_CHOICES` the options describe."""
    if options.llm_backend == "openai":
        return "openai"
    if options.llm_backend == "transformers":
        return "transformers"
    model = str(options.llm_model or "")
    if not model or model == BUILTIN_LLM or not _looks_like_path(model):
        return "builtin"
    return "gguf"


def _compact(combo: QComboBox) -> QComboBox:
    """Long entries must not make the settings wider than the dock."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    return combo


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(".gguf") or value.startswith("~")


class _PromptEdit(QPlainTextEdit):
    """A text box that says when it loses the focus (the prompt is applied then)."""

    focus_lost = Signal()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.focus_lost.emit()


class AssistantSettingsPanel(QWidget):
    """Every option of the voice assistant, grouped; ``options_changed(AssistantOptions)`` on each change."""

    options_changed = Signal(object)
    #: The user asked for the server's model list (the dock asks the server off the UI thread).
    server_models_requested = Signal(str)
    #: The user wants the model manager.
    models_requested = Signal()

    def __init__(self, options: AssistantOptions, store: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantSettings")
        self.options = normalized(options)
        self.store = store
        self._updating = False
        self._paths: dict[str, str] = {"transformers": "", "gguf": ""}
        #: The last voice of each engine (switching back and forth keeps them).
        self._voices: dict[str, str] = {self.options.tts_engine: self.options.voice}
        choice = llm_choice(self.options)
        if choice in self._paths:
            self._paths[choice] = str(self.options.llm_model)
        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(900)
        self._prompt_timer.timeout.connect(self._commit_prompt)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_listening())
        layout.addWidget(self._build_asr())
        layout.addWidget(self._build_llm())
        layout.addWidget(self._build_voice())
        layout.addStretch(1)
        self.refresh_models()
        self.set_options(self.options)

    # ---- construction ---------------------------------------------------------------------------------
    @staticmethod
    def _combo(name: str, items: dict[Any, str]) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(name)
        _compact(combo)
        for key, label in items.items():
            combo.addItem(label, key)
        return combo

    @staticmethod
    def _row(*widgets: QWidget, stretch_first: bool = True) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        for i, widget in enumerate(widgets):
            layout.addWidget(widget, 1 if (i == 0 and stretch_first) else 0)
        return row

    @staticmethod
    def _form(box: QGroupBox) -> QFormLayout:
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        return form

    def _build_listening(self) -> QGroupBox:
        box = QGroupBox("Listening")
        self.mode_combo = self._combo("assistantMode", MODE_CHOICES)
        self.mode_combo.setToolTip(
            "Voice detection answers when you pause; push-to-talk listens only while you hold the Talk button "
            "(or Space in the conversation)."
        )
        self.mode_combo.currentIndexChanged.connect(lambda _i: self._set("mode", self.mode_combo.currentData()))
        self.threshold = LabeledSlider(
            "Sensitivity",
            5,
            95,
            50,
            fmt=lambda v: f"{v / 100:.2f}",
            tip="Speech probability above which sound counts as speech: lower hears quiet voices, higher ignores "
            "more background noise.",
        )
        self.threshold.label.setMinimumWidth(0)
        self.threshold.label.hide()
        self.threshold.setObjectName("assistantVadThreshold")
        self.threshold.value_changed.connect(lambda v: self._set("vad_threshold", v / 100.0))
        self.silence_spin = QSpinBox()
        self.silence_spin.setObjectName("assistantMinSilence")
        self.silence_spin.setRange(100, 3000)
        self.silence_spin.setSingleStep(50)
        self.silence_spin.setSuffix(" ms")
        self.silence_spin.setToolTip("How long a pause ends your turn: shorter answers sooner, longer lets you think.")
        self.silence_spin.valueChanged.connect(lambda v: self._set("min_silence_ms", int(v)))
        self.output_combo = self._combo("assistantOutput", OUTPUT_CHOICES)
        self.output_combo.setToolTip(
            "With speakers the microphone also hears the assistant; the echo guard keeps it from answering "
            "itself. With a headset the microphone stays open while it speaks."
        )
        self.output_combo.currentIndexChanged.connect(
            lambda _i: self._set("headset", bool(self.output_combo.currentData()))
        )
        self.barge_check = QCheckBox("Speaking over the assistant stops it")
        self.barge_check.setObjectName("assistantBargeIn")
        self.barge_check.toggled.connect(lambda on: self._set("barge_in", bool(on)))
        form = self._form(box)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Voice threshold", self.threshold)
        form.addRow("End of turn after", self.silence_spin)
        form.addRow("Sound goes to", self.output_combo)
        form.addRow("", self.barge_check)
        return box

    def _build_asr(self) -> QGroupBox:
        box = QGroupBox("Speech recognition")
        self.asr_combo = _compact(QComboBox())
        self.asr_combo.setObjectName("assistantAsrModel")
        self.asr_combo.setToolTip("The Whisper model that turns your speech into text. Larger is better but slower.")
        self.asr_combo.currentIndexChanged.connect(self._on_asr_chosen)
        self.asr_browse = QPushButton("Folder…")
        self.asr_browse.setToolTip("Use a CTranslate2 (faster-whisper) model folder")
        self.asr_browse.clicked.connect(lambda: self.browse_asr())
        self.language_combo = self._combo("assistantLanguage", LANGUAGES)
        self.language_combo.setEditable(True)
        self.language_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.language_combo.setToolTip("The language you speak (a code such as en, de or fr), or automatic.")
        self.language_combo.activated.connect(lambda _i: self._on_language())
        line = self.language_combo.lineEdit()
        if line is not None:
            line.editingFinished.connect(self._on_language)
        self.asr_note = QLabel()
        self.asr_note.setWordWrap(True)
        self.asr_note.setStyleSheet("color: palette(placeholder-text);")
        self.asr_note.hide()
        form = self._form(box)
        form.addRow("Model", self._row(self.asr_combo, self.asr_browse))
        form.addRow("Language", self.language_combo)
        form.addRow(self.asr_note)
        return box

    def _build_llm(self) -> QGroupBox:
        box = QGroupBox("Language model")
        self.llm_combo = self._combo("assistantLlm", LLM_CHOICES)
        self.llm_combo.setToolTip("What writes the answers.")
        self.llm_combo.currentIndexChanged.connect(self._on_llm_chosen)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("assistantLlmPath")
        self.path_edit.editingFinished.connect(self._on_path_edited)
        self.path_browse = QPushButton("Browse…")
        self.path_browse.setObjectName("assistantLlmBrowse")
        self.path_browse.clicked.connect(lambda: self.browse_llm())
        self.path_row = self._row(self.path_edit, self.path_browse)
        self.url_edit = QLineEdit()
        self.url_edit.setObjectName("assistantServerUrl")
        self.url_edit.setPlaceholderText(SERVER_PRESETS[0][1])
        self.url_edit.setToolTip(
            "The server's OpenAI-compatible address. "
            + ", ".join(f"{name}: {url}" for name, url in SERVER_PRESETS)
            + ". Only this address is contacted."
        )
        self.url_edit.editingFinished.connect(self._on_url_edited)
        self.server_model_combo = _compact(QComboBox())
        self.server_model_combo.setObjectName("assistantServerModel")
        self.server_model_combo.setEditable(True)
        self.server_model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.server_model_combo.setToolTip("The model the server should answer with (empty: the server's choice).")
        self.server_model_combo.activated.connect(lambda _i: self._on_server_model())
        line = self.server_model_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("the server's default")
            line.editingFinished.connect(self._on_server_model)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("assistantServerRefresh")
        self.refresh_button.setToolTip("Ask the server which models it has")
        self.refresh_button.clicked.connect(self.request_server_models)
        self.url_row = self.url_edit
        self.server_model_row = self._row(self.server_model_combo, self.refresh_button)
        self.llm_hint = QLabel()
        self.llm_hint.setObjectName("assistantLlmHint")
        self.llm_hint.setWordWrap(True)
        self.llm_hint.setStyleSheet("color: palette(placeholder-text);")
        self.llm_hint.setTextFormat(Qt.TextFormat.RichText)
        self.llm_hint.linkActivated.connect(lambda _link: self.models_requested.emit())
        self.prompt_edit = _PromptEdit()
        self.prompt_edit.setObjectName("assistantSystemPrompt")
        self.prompt_edit.setToolTip("Instructions the assistant follows in every answer.")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setFixedHeight(self.prompt_edit.fontMetrics().lineSpacing() * 4 + 12)
        self.prompt_edit.textChanged.connect(lambda: self._prompt_timer.start())
        self.prompt_edit.focus_lost.connect(self._commit_prompt)
        self.prompt_reset = QPushButton("Default")
        self.prompt_reset.setToolTip("Go back to the default instructions")
        self.prompt_reset.clicked.connect(lambda: self.prompt_edit.setPlainText(DEFAULT_SYSTEM_PROMPT))
        self.memory_spin = QSpinBox()
        self.memory_spin.setObjectName("assistantMemory")
        self.memory_spin.setRange(0, 131072)
        self.memory_spin.setSingleStep(256)
        self.memory_spin.setSuffix(" tokens")
        self.memory_spin.setToolTip("How much of the earlier conversation the assistant remembers (0: nothing).")
        self.memory_spin.valueChanged.connect(lambda v: self._set("memory_tokens", int(v)))
        self.length_spin = QSpinBox()
        self.length_spin.setObjectName("assistantReplyLength")
        self.length_spin.setRange(8, 4096)
        self.length_spin.setSingleStep(20)
        self.length_spin.setSuffix(" tokens")
        self.length_spin.setToolTip("The longest answer, in tokens (about ¾ of a word each).")
        self.length_spin.valueChanged.connect(lambda v: self._set("max_new_tokens", int(v)))
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setObjectName("assistantTemperature")
        self.temperature_spin.setRange(0.0, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setDecimals(2)
        self.temperature_spin.setToolTip("0 always picks the likeliest words; higher is more varied.")
        self.temperature_spin.valueChanged.connect(lambda v: self._set("temperature", round(float(v), 2)))
        form = self._form(box)
        form.addRow("Model", self.llm_combo)
        form.addRow("File", self.path_row)
        self.path_label = form.labelForField(self.path_row)
        form.addRow("Server", self.url_row)
        self.url_label = form.labelForField(self.url_row)
        form.addRow("Server model", self.server_model_row)
        self.server_model_label = form.labelForField(self.server_model_row)
        form.addRow(self.llm_hint)
        form.addRow("Instructions", self.prompt_edit)
        form.addRow("", self.prompt_reset)
        form.addRow("Memory", self.memory_spin)
        form.addRow("Longest answer", self.length_spin)
        form.addRow("Creativity", self.temperature_spin)
        return box

    def _build_voice(self) -> QGroupBox:
        box = QGroupBox("Voice")
        self.tts_combo = self._combo("assistantTtsEngine", TTS_CHOICES)
        self.tts_combo.setToolTip("Piper speaks at once on a CPU; Bark sounds livelier but needs a GPU to keep up.")
        self.tts_combo.currentIndexChanged.connect(self._on_tts_chosen)
        self.voice_combo = _compact(QComboBox())
        self.voice_combo.setObjectName("assistantVoice")
        self.voice_combo.currentIndexChanged.connect(self._on_voice_chosen)
        self.voice_browse = QPushButton("File…")
        self.voice_browse.setToolTip("Use a Piper voice file (.onnx with its .onnx.json beside it) or a Bark folder")
        self.voice_browse.clicked.connect(lambda: self.browse_voice())
        self.speed_spin = QDoubleSpinBox()
        self.speed_spin.setObjectName("assistantSpeed")
        self.speed_spin.setRange(0.5, 2.0)
        self.speed_spin.setSingleStep(0.1)
        self.speed_spin.setDecimals(2)
        self.speed_spin.setSuffix("×")
        self.speed_spin.setToolTip("Speaking rate: 1.0 normal, 1.2 faster.")
        self.speed_spin.valueChanged.connect(lambda v: self._set("speed", round(float(v), 2)))
        form = self._form(box)
        form.addRow("Engine", self.tts_combo)
        form.addRow("Voice", self._row(self.voice_combo, self.voice_browse))
        form.addRow("Speed", self.speed_spin)
        return box

    # ---- the model lists -----------------------------------------------------------------------------------
    def _store_models(self, kinds: tuple[str, ...]) -> list[tuple[str, str, bool]]:
        """(id, name, usable) of the store's assistant models of these kinds."""
        store = self.store
        if store is None:
            return []
        out = []
        try:
            models = store.models()
        except Exception as exc:
            log.warning("The model list could not be read: %s", exc)
            return []
        for model in models:
            if model.tool != "assistant" or model.kind not in kinds:
                continue
            try:
                usable = bool(store.state(model.id).usable)
            except Exception:
                usable = False
            out.append((model.id, model.name, usable))
        return out

    @staticmethod
    def _fill(combo: QComboBox, entries: list[tuple[str, str, bool]], current: str) -> None:
        combo.blockSignals(True)
        combo.clear()
        for model_id, name, usable in entries:
            combo.addItem(name if usable else f"{name} — not installed", model_id)
            combo.setItemData(combo.count() - 1, model_id if usable else NOT_INSTALLED_TIP, Qt.ItemDataRole.ToolTipRole)
            model = combo.model()
            if not usable and isinstance(model, QStandardItemModel):
                item = model.item(combo.count() - 1)
                if item is not None:
                    item.setEnabled(False)
        if current and combo.findData(current) < 0:
            combo.addItem(Path(current).name or current, current)
            combo.setItemData(combo.count() - 1, current, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    @Slot()
    def refresh_models(self) -> None:
        """Fill the speech-recognition and voice lists from the model store (after a download, say)."""
        self._fill(self.asr_combo, self._store_models(("ctranslate2",)), self.options.asr_model)
        self._fill_voices()
        self._update_llm_hint()

    def _fill_voices(self) -> None:
        kinds = ("piper-voice",) if self.options.tts_engine == "piper" else ("bark", "transformers-tts", "bark-voice")
        entries = self._store_models(kinds)
        current = self.options.voice
        if self.options.tts_engine == "bark" and current == DEFAULT_VOICE:
            current = ""
        self._fill(self.voice_combo, entries, current)
        self.voice_combo.setEnabled(self.voice_combo.count() > 0)
        if self.voice_combo.count() == 0:
            self.voice_combo.setPlaceholderText("Choose a Bark model folder…")

    def set_server_models(self, names: list[str]) -> None:
        """The server's models (after Refresh); the current choice is kept."""
        current = self.server_model_combo.currentText().strip()
        self.server_model_combo.blockSignals(True)
        self.server_model_combo.clear()
        for name in names:
            self.server_model_combo.addItem(name)
        if current and current not in names:
            self.server_model_combo.insertItem(0, current)
        if current:
            self.server_model_combo.setCurrentText(current)
        elif names:
            self.server_model_combo.setCurrentIndex(0)
        self.server_model_combo.blockSignals(False)
        self.refresh_button.setEnabled(True)
        self._on_server_model()

    # ---- options in and out -------------------------------------------------------------------------------
    def set_options(self, options: AssistantOptions) -> None:
        """Show these options (no ``options_changed``)."""
        self.options = normalized(options)
        o = self.options
        self._updating = True
        try:
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(o.mode)))
            self.threshold.slider.setValue(round(o.vad_threshold * 100))
            self.silence_spin.setValue(o.min_silence_ms)
            self.output_combo.setCurrentIndex(max(0, self.output_combo.findData(bool(o.headset))))
            self.barge_check.setChecked(bool(o.barge_in))
            self._fill(self.asr_combo, self._store_models(("ctranslate2",)), o.asr_model)
            index = self.language_combo.findData(o.language)
            if index >= 0:
                self.language_combo.setCurrentIndex(index)
            else:
                self.language_combo.setEditText(o.language)
            choice = llm_choice(o)
            if choice in self._paths:
                self._paths[choice] = str(o.llm_model)
            self.llm_combo.setCurrentIndex(max(0, self.llm_combo.findData(choice)))
            self.url_edit.setText(o.server_url)
            self.server_model_combo.setEditText(o.server_model)
            if self.prompt_edit.toPlainText() != o.system_prompt:
                self.prompt_edit.setPlainText(o.system_prompt)
            self._prompt_timer.stop()
            self.memory_spin.setValue(o.memory_tokens)
            self.length_spin.setValue(o.max_new_tokens)
            self.temperature_spin.setValue(o.temperature)
            self.tts_combo.setCurrentIndex(max(0, self.tts_combo.findData(o.tts_engine)))
            self._voices[o.tts_engine] = o.voice
            self._fill_voices()
            self.speed_spin.setValue(o.speed)
            self._sync_llm_rows()
        finally:
            self._updating = False

    def flush(self) -> None:
        """Apply what is still being typed (the instructions are applied a moment after typing stops)."""
        if self._prompt_timer.isActive():
            self._commit_prompt()

    def _set(self, name: str, value: Any) -> None:
        if self._updating or value is None or getattr(self.options, name) == value:
            return
        setattr(self.options, name, value)
        self.options_changed.emit(copy.deepcopy(self.options))

    def _set_many(self, **values: Any) -> None:
        if self._updating:
            return
        changed = {k: v for k, v in values.items() if getattr(self.options, k) != v}
        if not changed:
            return
        for key, value in changed.items():
            setattr(self.options, key, value)
        self.options_changed.emit(copy.deepcopy(self.options))

    # ---- handlers ------------------------------------------------------------------------------------------
    @Slot(int)
    def _on_asr_chosen(self, _index: int) -> None:
        model = self.asr_combo.currentData()
        if model:
            self._set("asr_model", str(model))
        self._update_asr_note()

    def _update_asr_note(self) -> None:
        model = str(self.options.asr_model)
        english_only = model.endswith("-en") or ".en" in model or "-en-" in model
        language = self.options.language
        show = english_only and language not in ("auto", "en")
        self.asr_note.setText(
            "This model understands English only; choose a multilingual Whisper (base, small, large-v3) for "
            "other languages."
        )
        self.asr_note.setVisible(show)

    @Slot()
    def _on_language(self) -> None:
        text = self.language_combo.currentText().strip()
        index = self.language_combo.findText(text)
        # A listed language, or a code typed in (such as "fi").
        code = str(self.language_combo.itemData(index)) if index >= 0 else (text.lower() or "auto")
        self._set("language", code)
        self._update_asr_note()

    @Slot(int)
    def _on_llm_chosen(self, _index: int) -> None:
        self._sync_llm_rows()
        choice = self.llm_combo.currentData()
        if self._updating:
            return
        if choice == "builtin":
            self._set_many(llm_backend="gguf", llm_model=BUILTIN_LLM)
        elif choice == "openai":
            self._set_many(llm_backend="openai")
        else:
            path = self._paths.get(choice, "")
            self.path_edit.setText(path)
            if path:
                self._set_many(llm_backend=choice, llm_model=path)
            else:
                self.browse_llm()

    def _sync_llm_rows(self) -> None:
        choice = self.llm_combo.currentData()
        local_file = choice in ("transformers", "gguf")
        server = choice == "openai"
        for widget in (self.path_row, self.path_label):
            if widget is not None:
                widget.setVisible(local_file)
        for widget in (self.url_row, self.url_label, self.server_model_row, self.server_model_label):
            if widget is not None:
                widget.setVisible(server)
        if local_file:
            if self.path_label is not None and isinstance(self.path_label, QLabel):
                self.path_label.setText("Folder" if choice == "transformers" else "File")
            self.path_edit.setPlaceholderText(
                "a folder with config.json, the tokenizer and the weights"
                if choice == "transformers"
                else "a .gguf file"
            )
            if not self.path_edit.hasFocus():
                self.path_edit.setText(self._paths.get(choice, ""))
        self._update_llm_hint()

    def _update_llm_hint(self) -> None:
        choice = self.llm_combo.currentData()
        if choice == "builtin":
            text = (
                "Gemma 3 270M is a tiny base model: its answers are short and often wrong. For real answers use "
                "Qwen2.5-3B/7B-Instruct or Llama-3-8B-Instruct as a folder or GGUF file, or a local server such "
                'as Ollama. <a href="models">Models…</a>'
            )
        elif choice == "transformers":
            text = (
                "A Hugging Face model folder, e.g. Qwen2.5-3B-Instruct (huggingface-cli download "
                "Qwen/Qwen2.5-3B-Instruct --local-dir …). A GPU is used when present."
            )
        elif choice == "gguf":
            text = (
                "A quantised GGUF file (e.g. qwen2.5-3b-instruct-q4_k_m.gguf). With llama-cpp-python installed "
                "it runs directly; otherwise it is converted once and reused."
            )
        else:
            text = (
                "Start the server first (Ollama: ollama serve, then ollama pull qwen2.5:3b) and press Refresh "
                "to list its models."
            )
        self.llm_hint.setText(text)

    @Slot()
    def _on_path_edited(self) -> None:
        choice = self.llm_combo.currentData()
        if choice not in self._paths:
            return
        path = self.path_edit.text().strip()
        if not path:
            return
        self._paths[choice] = path
        self._set_many(llm_backend=choice, llm_model=path)

    def browse_llm(self) -> None:
        choice = self.llm_combo.currentData()
        start = self._paths.get(choice) or str(Path.home())
        if choice == "transformers":
            path = QFileDialog.getExistingDirectory(self, "Choose a transformers model folder", start)
        elif choice == "gguf":
            path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model file", start, GGUF_FILTER)
        else:
            return
        if path:
            self.set_llm_path(choice, path)

    def set_llm_path(self, choice: str, path: str | Path) -> None:
        """Use a transformers folder (``choice`` "transformers") or a GGUF file ("gguf")."""
        text = str(path)
        self._paths[choice] = text
        if self.llm_combo.currentData() != choice:
            self._updating = True
            self.llm_combo.setCurrentIndex(self.llm_combo.findData(choice))
            self._updating = False
            self._sync_llm_rows()
        self.path_edit.setText(text)
        self._set_many(llm_backend=choice, llm_model=text)

    @Slot()
    def _on_url_edited(self) -> None:
        url = self.url_edit.text().strip() or SERVER_PRESETS[0][1]
        self._set("server_url", url.rstrip("/"))

    @Slot()
    def _on_server_model(self) -> None:
        self._set("server_model", self.server_model_combo.currentText().strip())

    @Slot()
    def request_server_models(self) -> None:
        self._on_url_edited()
        self.refresh_button.setEnabled(False)
        self.server_models_requested.emit(self.options.server_url)

    def server_models_failed(self) -> None:
        self.refresh_button.setEnabled(True)

    @Slot()
    def _commit_prompt(self) -> None:
        self._prompt_timer.stop()
        if not self._updating:
            self._set("system_prompt", self.prompt_edit.toPlainText().strip())

    @Slot(int)
    def _on_tts_chosen(self, _index: int) -> None:
        engine = self.tts_combo.currentData()
        if self._updating or engine == self.options.tts_engine:
            return
        if engine == "piper":
            self.set_tts("piper", self._voices.get("piper") or DEFAULT_VOICE)
            return
        folder = self._voices.get("bark", "")
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Choose a Bark model folder", str(Path.home()))
        if folder:
            self.set_tts("bark", folder)
        else:  # no Bark model: stay with the current engine
            self._updating = True
            self.tts_combo.setCurrentIndex(max(0, self.tts_combo.findData(self.options.tts_engine)))
            self._updating = False

    def set_tts(self, engine: str, voice: str | Path) -> None:
        """Speak with ``engine`` ("piper" or "bark") and ``voice`` (a model id, a .onnx file or a Bark folder)."""
        text = str(voice)
        self._voices[engine] = text
        if self.tts_combo.currentData() != engine:
            self._updating = True
            self.tts_combo.setCurrentIndex(max(0, self.tts_combo.findData(engine)))
            self._updating = False
        self._set_many(tts_engine=engine, voice=text)
        self._fill_voices()

    @Slot(int)
    def _on_voice_chosen(self, _index: int) -> None:
        voice = self.voice_combo.currentData()
        if voice:
            self._voices[self.options.tts_engine] = str(voice)
            self._set("voice", str(voice))

    def browse_voice(self) -> None:
        if self.options.tts_engine == "bark":
            path = QFileDialog.getExistingDirectory(self, "Choose a Bark model folder", str(Path.home()))
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a Piper voice", str(Path.home()), VOICE_FILTER)
        if path:
            self.set_tts(self.options.tts_engine, path)

    def browse_asr(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a faster-whisper model folder", str(Path.home()))
        if path:
            self.set_asr_path(path)

    def set_asr_path(self, path: str | Path) -> None:
        text = str(path)
        self._fill(self.asr_combo, self._store_models(("ctranslate2",)), text)
        self._set("asr_model", text)
        self._update_asr_note()
