"""The inspector's "Speech recognition" section: the Whisper model (from the model store, or a
faster-whisper folder of the user's) and the language spoken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QWidget

from snowai_studio.assistant.options_editor import (
    OptionsEditor,
    choice_combo,
    settings_form,
    store_choices,
)
from snowai_studio.panels.model_picker import ModelPicker
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.rows import fit_combo, left_aligned
from workers.assistant.options import AssistantOptions

ASR_KINDS = ("ctranslate2",)
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


class SpeechSettings(QWidget):
    """``get_requested(model_id)`` when the user wants a Whisper model that is not downloaded yet."""

    get_requested = Signal(str)

    def __init__(self, editor: OptionsEditor, store: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.store = store
        self.asr_picker = ModelPicker("assistantAsrModel")
        fit_combo(self.asr_picker.combo, 12)
        self.asr_picker.combo.setToolTip(
            "The Whisper model that turns your speech into text. Larger is better but slower."
        )
        self.asr_picker.model_chosen.connect(self._on_asr_chosen)
        self.asr_picker.refresh_requested.connect(self.refresh_models)
        self.asr_picker.get_requested.connect(self.get_requested)
        self.asr_browse = push_button("Use a model folder…", "folder", tip="Use a CTranslate2 (faster-whisper) folder")
        self.asr_browse.clicked.connect(lambda: self.browse_asr())
        self.language_combo = choice_combo(
            "assistantLanguage", LANGUAGES, "The language you speak (a code such as en, de or fr), or automatic."
        )
        self.language_combo.setEditable(True)
        self.language_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.language_combo.activated.connect(lambda _i: self._on_language())
        line = self.language_combo.lineEdit()
        if line is not None:
            line.editingFinished.connect(self._on_language)
        self.asr_note = QLabel(
            "This model understands English only; choose a multilingual Whisper (base, small, large-v3) for "
            "other languages."
        )
        self.asr_note.setWordWrap(True)
        self.asr_note.setProperty("hint", True)
        self.asr_note.hide()
        form = settings_form(self)
        form.addRow(self.asr_picker)
        form.addRow(left_aligned(self.asr_browse))
        form.addRow("Language", self.language_combo)
        form.addRow(self.asr_note)

    def show_options(self, o: AssistantOptions) -> None:
        self.asr_picker.set_choices(store_choices(self.store, ASR_KINDS, o.asr_model), select=o.asr_model)
        index = self.language_combo.findData(o.language)
        if index >= 0:
            self.language_combo.setCurrentIndex(index)
        else:
            self.language_combo.setEditText(o.language)
        self._update_note()

    @Slot()
    def refresh_models(self) -> None:
        """List the store's Whisper models again (one may have been downloaded meanwhile)."""
        current = self.editor.options.asr_model
        self.asr_picker.set_choices(store_choices(self.store, ASR_KINDS, current), select=current)

    def select_model(self, model_id: str) -> bool:
        """Use ``model_id`` when it is one of the listed Whisper models (just imported, say)."""
        self.refresh_models()
        return self.asr_picker.select(model_id)

    @Slot(str)
    def _on_asr_chosen(self, key: str) -> None:
        self.editor.set("asr_model", key)
        self._update_note()

    def _update_note(self) -> None:
        model = str(self.editor.options.asr_model)
        english_only = model.endswith("-en") or ".en" in model or "-en-" in model
        self.asr_note.setVisible(english_only and self.editor.options.language not in ("auto", "en"))

    @Slot()
    def _on_language(self) -> None:
        text = self.language_combo.currentText().strip()
        index = self.language_combo.findText(text)
        # A listed language, or a code typed in (such as "fi").
        code = str(self.language_combo.itemData(index)) if index >= 0 else (text.lower() or "auto")
        self.editor.set("language", code)
        self._update_note()

    def browse_asr(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a faster-whisper model folder", str(Path.home()))
        if path:
            self.set_asr_path(path)

    def set_asr_path(self, path: str | Path) -> None:
        text = str(path)
        self.asr_picker.set_choices(store_choices(self.store, ASR_KINDS, text), select=text)
        self.editor.set("asr_model", text)
        self._update_note()
