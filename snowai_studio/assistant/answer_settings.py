"""The inspector's "Answers" section: the instructions the assistant follows, how much of the
conversation it remembers, the longest answer and how varied its words are."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QPlainTextEdit, QSpinBox, QWidget

from snowai_studio.assistant.options_editor import OptionsEditor, settings_form
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.rows import left_aligned
from workers.assistant.options import DEFAULT_SYSTEM_PROMPT, AssistantOptions

#: The instructions are applied this long after typing stops (or when the box loses the focus).
PROMPT_DELAY_MS = 900


class _PromptEdit(QPlainTextEdit):
    """A text box that says when it loses the focus (the instructions are applied then)."""

    focus_lost = Signal()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.focus_lost.emit()


def _spin(name: str, low: int, high: int, step: int, suffix: str, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setObjectName(name)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setToolTip(tip)
    return spin


class AnswerSettings(QWidget):
    def __init__(self, editor: OptionsEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(PROMPT_DELAY_MS)
        self._prompt_timer.timeout.connect(self._commit_prompt)
        self.prompt_edit = _PromptEdit()
        self.prompt_edit.setObjectName("assistantSystemPrompt")
        self.prompt_edit.setToolTip("Instructions the assistant follows in every answer.")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setFixedHeight(self.prompt_edit.fontMetrics().lineSpacing() * 5 + 12)
        self.prompt_edit.textChanged.connect(lambda: self._prompt_timer.start())
        self.prompt_edit.focus_lost.connect(self._commit_prompt)
        self.prompt_reset = push_button("Default instructions", "undo", tip="Go back to the default instructions")
        self.prompt_reset.clicked.connect(lambda: self.prompt_edit.setPlainText(DEFAULT_SYSTEM_PROMPT))
        self.memory_spin = _spin(
            "assistantMemory", 0, 131072, 256, " tokens",
            "How much of the earlier conversation the assistant remembers (0: nothing).",
        )
        self.memory_spin.valueChanged.connect(lambda v: editor.set("memory_tokens", int(v)))
        self.length_spin = _spin(
            "assistantReplyLength", 8, 4096, 20, " tokens", "The longest answer, in tokens (about ¾ of a word each)."
        )
        self.length_spin.valueChanged.connect(lambda v: editor.set("max_new_tokens", int(v)))
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setObjectName("assistantTemperature")
        self.temperature_spin.setRange(0.0, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setDecimals(2)
        self.temperature_spin.setToolTip("0 always picks the likeliest words; higher is more varied.")
        self.temperature_spin.valueChanged.connect(lambda v: editor.set("temperature", round(float(v), 2)))
        form = settings_form(self)
        form.addRow(QLabel("Instructions"))
        form.addRow(self.prompt_edit)  # the whole width: a few sentences to read and edit
        form.addRow(left_aligned(self.prompt_reset))
        form.addRow("Memory", self.memory_spin)
        form.addRow("Longest answer", self.length_spin)
        form.addRow("Creativity", self.temperature_spin)

    def show_options(self, o: AssistantOptions) -> None:
        if self.prompt_edit.toPlainText() != o.system_prompt:
            self.prompt_edit.setPlainText(o.system_prompt)
        self._prompt_timer.stop()
        self.memory_spin.setValue(o.memory_tokens)
        self.length_spin.setValue(o.max_new_tokens)
        self.temperature_spin.setValue(o.temperature)

    def flush(self) -> None:
        """Apply what is still being typed (the instructions are applied a moment after typing stops)."""
        if self._prompt_timer.isActive():
            self._commit_prompt()

    @Slot()
    def _commit_prompt(self) -> None:
        self._prompt_timer.stop()
        self.editor.set("system_prompt", self.prompt_edit.toPlainText().strip())
