"""The inspector's "Voice" section: the speech engine (Piper or Bark), the voice from the model store
or a file of the user's, and the speaking rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QDoubleSpinBox, QFileDialog, QWidget

from snowai_studio.assistant.options_editor import (
    DEFAULT_VOICE,
    OptionsEditor,
    choice_combo,
    select_data,
    settings_form,
    store_choices,
)
from snowai_studio.panels.model_picker import ModelPicker
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.rows import fit_combo, left_aligned
from workers.assistant.options import AssistantOptions

TTS_CHOICES = {"piper": "Piper (fast)", "bark": "Bark (slower, more expressive)"}
VOICE_KINDS = {"piper": ("piper-voice",), "bark": ("bark", "transformers-tts", "bark-voice")}
VOICE_FILTER = "Piper voices (*.onnx);;All files (*)"


class VoiceSettings(QWidget):
    """``get_requested(model_id)`` when the user wants a voice that is not downloaded yet."""

    get_requested = Signal(str)

    def __init__(self, editor: OptionsEditor, store: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.store = store
        #: The last voice of each engine (switching back and forth keeps them).
        self._voices: dict[str, str] = {editor.options.tts_engine: editor.options.voice}
        self.tts_combo = choice_combo(
            "assistantTtsEngine",
            TTS_CHOICES,
            "Piper speaks at once on a CPU; Bark sounds livelier but needs a GPU to keep up.",
        )
        self.tts_combo.currentIndexChanged.connect(self._on_tts_chosen)
        self.voice_picker = ModelPicker("assistantVoice")
        fit_combo(self.voice_picker.combo, 12)
        self.voice_picker.model_chosen.connect(self._on_voice_chosen)
        self.voice_picker.refresh_requested.connect(self.refresh_models)
        self.voice_picker.get_requested.connect(self.get_requested)
        self.voice_browse = push_button("Use a voice file…", "open")
        self.voice_browse.setToolTip("Use a Piper voice file (.onnx with its .onnx.json beside it) or a Bark folder")
        self.voice_browse.clicked.connect(lambda: self.browse_voice())
        self.speed_spin = QDoubleSpinBox()
        self.speed_spin.setObjectName("assistantSpeed")
        self.speed_spin.setRange(0.5, 2.0)
        self.speed_spin.setSingleStep(0.1)
        self.speed_spin.setDecimals(2)
        self.speed_spin.setSuffix("×")
        self.speed_spin.setToolTip("Speaking rate: 1.0 normal, 1.2 faster.")
        self.speed_spin.valueChanged.connect(lambda v: editor.set("speed", round(float(v), 2)))
        form = settings_form(self)
        form.addRow("Engine", self.tts_combo)
        form.addRow(self.voice_picker)
        form.addRow(left_aligned(self.voice_browse))
        form.addRow("Speed", self.speed_spin)

    @property
    def voice_combo(self) -> Any:
        return self.voice_picker.combo

    def show_options(self, o: AssistantOptions) -> None:
        select_data(self.tts_combo, o.tts_engine)
        self._voices[o.tts_engine] = o.voice
        self.refresh_models()
        self.speed_spin.setValue(o.speed)

    @Slot()
    def refresh_models(self) -> None:
        """List the voices of the engine in use (one may have been downloaded meanwhile)."""
        o = self.editor.options
        current = o.voice
        if o.tts_engine == "bark" and current == DEFAULT_VOICE:
            current = ""
        self.voice_picker.set_choices(store_choices(self.store, VOICE_KINDS[o.tts_engine], current), select=current)
        self.voice_picker.setEnabled(bool(self.voice_picker.choices))
        if not self.voice_picker.choices:
            self.voice_combo.setPlaceholderText("Choose a Bark model folder…")

    def select_model(self, model_id: str) -> bool:
        """Speak with ``model_id`` when it is one of the listed voices (just imported, say)."""
        self.refresh_models()
        return self.voice_picker.select(model_id)

    @Slot(int)
    def _on_tts_chosen(self, _index: int) -> None:
        engine = self.tts_combo.currentData()
        if self.editor.updating or engine == self.editor.options.tts_engine:
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
            with self.editor.quiet():
                select_data(self.tts_combo, self.editor.options.tts_engine)

    def set_tts(self, engine: str, voice: str | Path) -> None:
        """Speak with ``engine`` ("piper" or "bark") and ``voice`` (a model id, a .onnx file or a Bark folder)."""
        text = str(voice)
        self._voices[engine] = text
        if self.tts_combo.currentData() != engine:
            with self.editor.quiet():
                select_data(self.tts_combo, engine)
        self.editor.set_many(tts_engine=engine, voice=text)
        self.refresh_models()

    @Slot(str)
    def _on_voice_chosen(self, key: str) -> None:
        self._voices[self.editor.options.tts_engine] = key
        self.editor.set("voice", key)

    def browse_voice(self) -> None:
        if self.editor.options.tts_engine == "bark":
            path = QFileDialog.getExistingDirectory(self, "Choose a Bark model folder", str(Path.home()))
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a Piper voice", str(Path.home()), VOICE_FILTER)
        if path:
            self.set_tts(self.editor.options.tts_engine, path)
