"""The assistant's options as the inspector edits them: one copy of
:class:`~workers.assistant.options.AssistantOptions` that every settings section writes to, with
``options_changed`` on each change; the choices the sections offer; and the small form helpers they
share. Nothing here loads a model.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QWidget

from snowai_studio.panels.model_picker import PickerChoice, choices_from_store
from snowai_studio.widgets.rows import fit_combo
from workers.assistant.options import LLM_BACKENDS, TTS_ENGINES, TURN_DETECTION, TURN_MODES, AssistantOptions

log = logging.getLogger(__name__)

#: The language model as the user picks it; "builtin" is the gguf backend with the shipped Gemma.
LLM_CHOICES = {
    "builtin": "Built-in Gemma 3 270M (tiny)",
    "transformers": "Transformers model folder",
    "gguf": "GGUF file",
    "openai": "Local server (Ollama, LM Studio…)",
}
BUILTIN_LLM = "gemma-3-270m-q4-k-m-shipped"
DEFAULT_VOICE = "piper-en-us-joe-medium-shipped"


def normalized(options: AssistantOptions) -> AssistantOptions:
    """A copy with every choice the settings can show (unknown values go back to their defaults)."""
    o = copy.deepcopy(options)
    default = AssistantOptions()
    if o.mode not in TURN_MODES:
        o.mode = default.mode
    if o.turn_detection not in TURN_DETECTION:
        o.turn_detection = default.turn_detection
    o.turn_silence_ms = min(2000, max(64, int(o.turn_silence_ms)))
    o.pause_ms = min(10000, max(200, int(o.pause_ms)))
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


def looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(".gguf") or value.startswith("~")


#: The prefix of a choice that names a language model in the model store ("store:<model id>").
STORE_PREFIX = "store:"


def llm_choice(options: AssistantOptions) -> str:
    """Which of :data:`LLM_CHOICES` the options describe, or ``store:<id>`` for a model of the store."""
    if options.llm_backend == "openai":
        return "openai"
    model = str(options.llm_model or "")
    if model and model != BUILTIN_LLM and not looks_like_path(model):
        return STORE_PREFIX + model
    if options.llm_backend == "transformers":
        return "transformers"
    if not model or model == BUILTIN_LLM:
        return "builtin"
    return "gguf"


class OptionsEditor(QObject):
    """The options every section edits; ``options_changed(AssistantOptions)`` (a copy) on each change
    the user makes. While :meth:`quiet` is active (the sections show options) nothing is emitted."""

    options_changed = Signal(object)

    def __init__(self, options: AssistantOptions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = normalized(options)
        self.updating = False

    @contextmanager
    def quiet(self) -> Iterator[None]:
        was, self.updating = self.updating, True
        try:
            yield
        finally:
            self.updating = was

    def set(self, name: str, value: Any) -> None:
        if self.updating or value is None or getattr(self.options, name) == value:
            return
        setattr(self.options, name, value)
        self.options_changed.emit(copy.deepcopy(self.options))

    def set_many(self, **values: Any) -> None:
        if self.updating:
            return
        changed = {k: v for k, v in values.items() if getattr(self.options, k) != v}
        if not changed:
            return
        for key, value in changed.items():
            setattr(self.options, key, value)
        self.options_changed.emit(copy.deepcopy(self.options))


# ---- model lists ----------------------------------------------------------------------------------------


def store_choices(store: Any, kinds: Iterable[str], current: str = "") -> list[PickerChoice]:
    """The store's assistant models of these ``kinds`` for a model picker, and ``current`` among the
    user's own when it is not one of them (a folder or file chosen with Browse)."""
    try:
        choices = choices_from_store(store, "assistant", kinds=kinds)
    except Exception as exc:
        log.warning("The model list could not be read: %s", exc)
        choices = []
    if current and all(c.key != current for c in choices):
        choices.append(PickerChoice(current, Path(current).name or current, "user", current))
    return choices


# ---- form helpers -------------------------------------------------------------------------------------


def choice_combo(name: str, items: dict[Any, str], tip: str = "") -> QComboBox:
    combo = fit_combo(QComboBox(), 12)
    combo.setObjectName(name)
    for key, label in items.items():
        combo.addItem(label, key)
    if tip:
        combo.setToolTip(tip)
    return combo


def select_data(combo: QComboBox, data: Any) -> None:
    """Select the entry holding ``data`` (the first entry when none does)."""
    combo.setCurrentIndex(max(0, combo.findData(data)))


def side_by_side(*widgets: QWidget) -> QWidget:
    """One row: the first widget takes the room, the others (buttons) their own width."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if i == 0 else 0)
    return row


def settings_form(owner: QWidget) -> QFormLayout:
    """A label/field form that wraps long rows in the narrow inspector."""
    form = QFormLayout(owner)
    form.setContentsMargins(0, 0, 0, 0)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form
