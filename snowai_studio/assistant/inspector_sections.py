"""The voice assistant's settings as inspector sections: Listening, Speech recognition, Language
model, Answers and Voice, each in a file of its own, all editing one
:class:`~snowai_studio.assistant.options_editor.OptionsEditor`.

``options_changed(AssistantOptions)`` comes on each change the user makes; the page saves the options
and hands them to the worker. Nothing here loads a model: the model lists come from the store's manifest.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from snowai_studio.assistant.answer_settings import AnswerSettings
from snowai_studio.assistant.listening_settings import ListeningSettings
from snowai_studio.assistant.llm_settings import LanguageModelSettings
from snowai_studio.assistant.options_editor import OptionsEditor, llm_choice, normalized
from snowai_studio.assistant.speech_settings import ASR_KINDS, SpeechSettings
from snowai_studio.assistant.voice_settings import VoiceSettings
from snowai_studio.panels.inspector import Inspector, Section
from workers.assistant.options import AssistantOptions


class AssistantSettingsPanel(QObject):
    """The sections (``listening``, ``speech``, ``llm``, ``answers``, ``voice``) in ``inspector``."""

    options_changed = Signal(object)
    #: The user asked for a local server's model list (the page asks the server off the UI thread).
    server_models_requested = Signal(str)
    #: The user wants the model manager (``model_id`` to get, or "").
    models_requested = Signal(str)

    def __init__(self, inspector: Inspector, options: AssistantOptions, store: Any = None) -> None:
        super().__init__(inspector)
        self.inspector = inspector
        self.editor = OptionsEditor(options, self)
        self.editor.options_changed.connect(self.options_changed)
        self.listening = ListeningSettings(self.editor)
        self.speech = SpeechSettings(self.editor, store)
        self.llm = LanguageModelSettings(self.editor, store)
        self.answers = AnswerSettings(self.editor)
        self.voice = VoiceSettings(self.editor, store)
        self.sections: dict[str, Section] = {
            "listening": inspector.add_section("Listening", self.listening, key="listening"),
            "speech": inspector.add_section("Speech recognition", self.speech, key="speech"),
            "llm": inspector.add_section("Language model", self.llm, key="llm"),
            "answers": inspector.add_section("Answers", self.answers, expanded=False, key="answers"),
            "voice": inspector.add_section("Voice", self.voice, key="voice"),
        }
        self.speech.get_requested.connect(self.models_requested)
        self.voice.get_requested.connect(self.models_requested)
        self.llm.models_requested.connect(lambda: self.models_requested.emit(""))
        self.llm.server_models_requested.connect(self.server_models_requested)
        self.set_options(self.editor.options)

    @property
    def options(self) -> AssistantOptions:
        return self.editor.options

    def set_options(self, options: AssistantOptions) -> None:
        """Show these options (no ``options_changed``)."""
        self.editor.options = normalized(options)
        with self.editor.quiet():
            for part in (self.listening, self.speech, self.llm, self.answers, self.voice):
                part.show_options(self.editor.options)

    def set_store(self, store: Any) -> None:
        """Use ``store``'s model lists (after the model manager closed, or the store moved)."""
        self.speech.store = self.voice.store = self.llm.store = store
        self.speech.refresh_models()
        self.voice.refresh_models()
        self.llm.refresh_models(llm_choice(self.editor.options))

    def select_model(self, store: Any, model_id: str) -> bool:
        """Use ``model_id`` just imported into ``store`` where it belongs: a Whisper model, a voice or a
        language model. False when it is none of the assistant's."""
        try:
            model = store.get(model_id)
        except Exception:
            return False
        if getattr(model, "tool", "") != "assistant":
            return False
        if model.kind in ASR_KINDS:
            return self.speech.select_model(model_id)
        if model.kind in ("gguf", "transformers"):
            return self.llm.use_store_model(model.kind, model_id)
        return self.voice.select_model(model_id)

    def show_section(self, key: str) -> None:
        """Unfold the section ``key`` and scroll the inspector to it."""
        section = self.sections.get(key)
        if section is None:
            return
        section.set_expanded(True)
        QTimer.singleShot(0, self.inspector, lambda: self.inspector.ensureWidgetVisible(section, 0, 0))

    def flush(self) -> None:
        """Apply what is still being typed."""
        self.answers.flush()
