"""The inspector's "Listening" section: how a turn starts and ends (voice detection or push-to-talk,
sensitivity, the pause that ends a turn), where the sound goes and whether speaking over the
assistant stops it."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QSpinBox, QWidget

from snowai_studio.assistant.options_editor import OptionsEditor, choice_combo, select_data, settings_form
from snowai_studio.widgets.sliders import LabeledSlider
from workers.assistant.options import AssistantOptions

MODE_CHOICES = {"vad": "Speak, then pause", "ptt": "Push-to-talk"}
OUTPUT_CHOICES = {False: "Speakers", True: "Headset"}
TURN_CHOICES = {"learned": "When you sound finished", "silence": "After a fixed pause"}


class ListeningSettings(QWidget):
    def __init__(self, editor: OptionsEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.mode_combo = choice_combo(
            "assistantMode",
            MODE_CHOICES,
            "Voice detection answers when you pause; push-to-talk listens only while you hold Hold to talk "
            "(or Space in the conversation).",
        )
        self.mode_combo.currentIndexChanged.connect(lambda _i: editor.set("mode", self.mode_combo.currentData()))
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
        self.threshold.value_label.setMinimumWidth(36)
        self.threshold.setObjectName("assistantVadThreshold")
        self.threshold.value_changed.connect(lambda v: editor.set("vad_threshold", v / 100.0))
        self.turn_combo = choice_combo(
            "assistantTurnDetection",
            TURN_CHOICES,
            "When you sound finished: a small model hears whether your sentence is complete, and the words "
            "heard so far are read too (a sentence that stops on \"and\" or \"the\" is not over; the built-in "
            "language model also judges whether the words could end there, and when they plainly do, a voice that "
            "sounds unsure does not make you wait), so a finished question is answered "
            "at once and a pause in the middle of one is waited through (up to 1.2 s). "
            "After a fixed pause: the turn ends after the pause set below, whatever it sounds like.",
        )
        self.turn_combo.currentIndexChanged.connect(
            lambda _i: (editor.set("turn_detection", self.turn_combo.currentData()), self._sync())
        )
        self.silence_spin = QSpinBox()
        self.silence_spin.setObjectName("assistantMinSilence")
        self.silence_spin.setRange(100, 3000)
        self.silence_spin.setSingleStep(50)
        self.silence_spin.setSuffix(" ms")
        self.silence_spin.setToolTip("How long a pause ends your turn: shorter answers sooner, longer lets you think.")
        self.silence_spin.valueChanged.connect(lambda v: editor.set("min_silence_ms", int(v)))
        self.output_combo = choice_combo(
            "assistantOutput",
            OUTPUT_CHOICES,
            "With speakers the microphone also hears the assistant; the echo guard keeps it from answering "
            "itself. With a headset the microphone stays open while it speaks.",
        )
        self.output_combo.currentIndexChanged.connect(
            lambda _i: editor.set("headset", bool(self.output_combo.currentData()))
        )
        self.barge_check = QCheckBox("Speaking over the assistant stops it")
        self.barge_check.setObjectName("assistantBargeIn")
        self.barge_check.toggled.connect(lambda on: editor.set("barge_in", bool(on)))
        form = settings_form(self)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Voice threshold", self.threshold)
        form.addRow("Answer", self.turn_combo)
        form.addRow("End of turn after", self.silence_spin)
        self.silence_label = form.labelForField(self.silence_spin)
        form.addRow("Sound goes to", self.output_combo)
        form.addRow(self.barge_check)

    def show_options(self, o: AssistantOptions) -> None:
        """Show ``o`` (inside the editor's :meth:`~OptionsEditor.quiet`)."""
        select_data(self.mode_combo, o.mode)
        self.threshold.slider.setValue(round(o.vad_threshold * 100))
        self.silence_spin.setValue(o.min_silence_ms)
        select_data(self.turn_combo, o.turn_detection)
        self._sync()
        select_data(self.output_combo, bool(o.headset))
        self.barge_check.setChecked(bool(o.barge_in))

    def _sync(self) -> None:
        """The fixed pause matters only without the learned detection (or when its model is missing)."""
        learned = self.turn_combo.currentData() == "learned"
        self.silence_spin.setToolTip(
            "Used when the end-of-turn model is missing." if learned
            else "How long a pause ends your turn: shorter answers sooner, longer lets you think."
        )
