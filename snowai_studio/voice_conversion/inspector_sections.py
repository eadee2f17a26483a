"""The voice-conversion inspector's sections: the voice model, pitch and voice controls, the live
settings (devices, block and latency) and the output of converted files.

The widgets only show and ask; the page applies what they ask for (through its worker).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from snowai_studio.panels.model_picker import ModelPicker
from snowai_studio.panels.output_panel import OutputPanel
from snowai_studio.panels.tool_page import push_button
from snowai_studio.voice_conversion.texts import (
    CABLE_HINT,
    CHANNEL_LABELS,
    F0_LABELS,
    F0_TIPS,
    FORMAT_LABELS,
    PRESET_LABELS,
    db,
    ms,
    preset_label,
    semitones,
)
from snowai_studio.widgets.sliders import ValueSlider
from workers.voice_conversion.options import F0_METHODS, PRESETS, VoiceConversionOptions

#: The width of the names left of the controls, so that the rows line up.
LABEL_WIDTH = 92


def labelled(name: str, widget: QWidget, tip: str = "") -> QWidget:
    """``name [widget]`` in a row whose name lines up with the sliders' names."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(name)
    label.setMinimumWidth(LABEL_WIDTH)
    if tip:
        label.setToolTip(tip)
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return row


def compact(combo: QComboBox, characters: int = 8) -> QComboBox:
    """A combo that asks for room for ``characters``, not for its longest entry (the inspector is narrow;
    the open list shows the entries whole)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def hint(text: str, object_name: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("hint", True)
    if object_name:
        label.setObjectName(object_name)
    return label


class FileChoiceRow(QWidget):
    """'Index: voice.index  [Index…] [Clear]': an optional file of the voice (``chosen`` asks for one)."""

    chosen = Signal()
    cleared = Signal()

    def __init__(self, button_text: str, object_name: str, tip: str, clear_tip: str) -> None:
        super().__init__()
        self.label = QLabel()
        self.button = QPushButton(button_text)
        self.button.setObjectName(object_name)
        self.button.setToolTip(tip)
        self.button.clicked.connect(self.chosen)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip(clear_tip)
        self.clear_button.clicked.connect(self.cleared)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        row.addWidget(self.clear_button)

    def show_path(self, path: str, what: str, empty: str, *, visible: bool) -> None:
        self.setVisible(visible)
        self.label.setText(f"{what}: {Path(path).name}" if path else empty)
        self.label.setToolTip(path or self.button.toolTip())
        self.clear_button.setEnabled(bool(path))


class VoiceModelSection(QWidget):
    """The voice (built-in, an imported so-vits-svc or RVC model) through the shared model picker,
    the imports, the content encoder they need, and the model's index and speaker."""

    import_sovits_requested = Signal()
    import_rvc_requested = Signal()
    index_requested = Signal()
    index_cleared = Signal()
    config_requested = Signal()
    config_cleared = Signal()
    manager_requested = Signal()
    speaker_chosen = Signal(int)

    def __init__(self, options: VoiceConversionOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = ModelPicker("svcModel")
        compact(self.picker.combo, 12)
        self.picker.combo.setToolTip("The voice to convert to: the built-in voice changer, so-vits-svc or RVC")
        self.info_label = hint("", "svcModelInfo")
        self.import_sovits_button = push_button(
            "so-vits-svc…", "folder", tip="Import a so-vits-svc model folder (config.json and a G_*.pth file)"
        )
        self.import_sovits_button.setObjectName("svcImportSovits")
        self.import_sovits_button.clicked.connect(self.import_sovits_requested)
        self.import_rvc_button = push_button("RVC…", "open", tip="Import an RVC model (.pth with its config inside)")
        self.import_rvc_button.setObjectName("svcImportRvc")
        self.import_rvc_button.clicked.connect(self.import_rvc_requested)
        imports = QHBoxLayout()
        imports.setContentsMargins(0, 0, 0, 0)
        imports.addWidget(self.import_sovits_button, 1)
        imports.addWidget(self.import_rvc_button, 1)

        # so-vits-svc and RVC voices need a content encoder from the model manager.
        self.encoder_note = hint("", "svcEncoderNote")
        self.encoder_button = push_button("Get it…", "download", tip="Download a content encoder in the model manager")
        self.encoder_button.setObjectName("svcGetEncoder")
        self.encoder_button.clicked.connect(self.manager_requested)
        self.encoder_row = QWidget()
        encoder = QHBoxLayout(self.encoder_row)
        encoder.setContentsMargins(0, 0, 0, 0)
        encoder.addWidget(self.encoder_note, 1)
        encoder.addWidget(self.encoder_button, 0, Qt.AlignmentFlag.AlignTop)
        self.encoder_row.hide()

        self.index = FileChoiceRow(
            "Index…", "svcChooseIndex",
            "An RVC feature index (.index) or a so-vits-svc cluster model: the voice sounds more like the model's "
            "speaker (optional)",
            "Convert without an index",
        )
        self.index.chosen.connect(self.index_requested)
        self.index.cleared.connect(self.index_cleared)
        self.index.label.setObjectName("svcIndex")
        self.config = FileChoiceRow(
            "Config…", "svcChooseConfig",
            "Another config.json for this so-vits-svc voice (its speakers and settings)",
            "Use the config.json beside the model",
        )
        self.config.chosen.connect(self.config_requested)
        self.config.cleared.connect(self.config_cleared)
        self.index_ratio = ValueSlider(
            "Index mix", 0.0, 1.0, 0.05, options.index_ratio, fmt=lambda v: f"{v * 100:.0f} %",
            tip="How much of the voice's features come from the index (more: closer to the model's timbre, "
            "but less clear)",
        )
        self.speaker_combo = compact(QComboBox())
        self.speaker_combo.setObjectName("svcSpeaker")
        self.speaker_combo.setToolTip("This model has several voices: choose one")
        self.speaker_combo.activated.connect(
            lambda i: self.speaker_chosen.emit(int(self.speaker_combo.itemData(i) or 0))
        )
        self.speaker_row = labelled("Speaker", self.speaker_combo)
        self.models_button = push_button(
            "Model manager…", "models",
            tip="Download content encoders and pitch models, or import voices into the studio's model store",
        )
        self.models_button.setObjectName("svcModelManager")
        self.models_button.clicked.connect(self.manager_requested)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.picker, self.info_label):
            layout.addWidget(widget)
        layout.addLayout(imports)
        for widget in (self.encoder_row, self.config, self.index, self.index_ratio, self.speaker_row):
            layout.addWidget(widget)
        layout.addWidget(self.models_button, 0, Qt.AlignmentFlag.AlignLeft)

    def show_files(self, index: str, config: str, kind: str) -> None:
        """The index row of a model voice, the config row of a so-vits-svc one (none for the built-in changer)."""
        model = bool(kind)
        self.index.show_path(index, "Index", "No index (optional)", visible=model)
        self.index_ratio.setVisible(model and bool(index))
        self.config.show_path(config, "Config", "config.json beside the model", visible=kind.startswith("sovits"))

    def show_speakers(self, speakers: dict[str, Any], current: int) -> None:
        self.speaker_combo.blockSignals(True)
        self.speaker_combo.clear()
        for name, number in sorted(speakers.items(), key=lambda kv: int(kv[1])):
            self.speaker_combo.addItem(f"{name} ({number})", int(number))
        self.speaker_combo.setCurrentIndex(max(0, self.speaker_combo.findData(current)))
        self.speaker_combo.blockSignals(False)
        self.speaker_row.setVisible(len(speakers) > 1)

    def show_encoder_need(self, missing: bool) -> None:
        """Whether to say that a so-vits-svc or RVC voice cannot run until a content encoder is there."""
        self.encoder_note.setText(
            "so-vits-svc and RVC voices need a content encoder (ContentVec or HuBERT): not downloaded yet."
            if missing else ""
        )
        self.encoder_row.setVisible(missing)


class PitchControls(QWidget):
    """Pitch, formant, the pitch tracker and the automatic range."""

    def __init__(self, options: VoiceConversionOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        o = options
        self.pitch = ValueSlider(
            "Pitch", -24, 24, 1, o.pitch, fmt=semitones,
            tip="Move the voice up or down in semitones (12 = one octave; +12 for a male to a female voice)",
        )
        self.pitch.setObjectName("svcPitch")
        self.formant = ValueSlider(
            "Formant", -12, 12, 0.5, o.formant, fmt=semitones,
            tip="The built-in voice changer: move the voice's resonances (its size) independently of the pitch",
        )
        self.formant.setObjectName("svcFormant")
        self.f0_combo = compact(QComboBox())
        self.f0_combo.setObjectName("svcF0")
        for key in F0_METHODS:
            self.f0_combo.addItem(F0_LABELS.get(key, key), key)
            self.f0_combo.setItemData(self.f0_combo.count() - 1, F0_TIPS.get(key, key), Qt.ItemDataRole.ToolTipRole)
        self.f0_combo.setCurrentIndex(max(0, self.f0_combo.findData(o.f0_method)))
        self.auto_pitch = QCheckBox("Automatic pitch range")
        self.auto_pitch.setObjectName("svcAutoPitch")
        self.auto_pitch.setToolTip(
            "Move your voice into the model's range (added to the pitch above): useful when your voice is much "
            "lower or higher than the model's"
        )
        self.auto_pitch.setChecked(o.auto_pitch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pitch)
        layout.addWidget(self.formant)
        layout.addWidget(labelled("Pitch tracker", self.f0_combo))
        layout.addWidget(self.auto_pitch)

    def show_voice_kind(self, builtin: bool) -> None:
        """The built-in changer shifts formants; a model tracks the pitch and may move it into its range."""
        self.formant.setEnabled(builtin)
        self.formant.setToolTip(
            "Move the voice's resonances (its size) independently of the pitch"
            if builtin
            else "Formant shift is a setting of the built-in voice changer; a model brings its own timbre"
        )
        self.auto_pitch.setEnabled(not builtin)
        self.f0_combo.setEnabled(not builtin)
        self.f0_combo.setToolTip(
            "How the pitch of your voice is measured for the model"
            if not builtin
            else "The built-in voice changer measures the pitch itself; this is for so-vits-svc and RVC voices"
        )


#: The engines a voice model can run on (see workers.voice_conversion.options.ENGINES): label, tip.
ENGINE_LABELS = {
    "auto": ("Automatic", "Live on ONNX Runtime with 8-bit weights (the fastest on a processor), files on PyTorch"),
    "torch": ("PyTorch", "The reference: exactly the model's own numbers, the slowest live"),
    "onnx": ("ONNX Runtime", "The model's numbers on a faster runtime"),
    "onnx-int8": ("ONNX Runtime, 8-bit", "Live and files on 8-bit weights: fastest, a little less exact"),
}


class LiveSettings(QWidget):
    """The devices of the live conversion, and its block layout, silence and gains."""

    refresh_requested = Signal()

    def __init__(self, options: VoiceConversionOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        o = options
        self.input_combo = self._device_combo("svcInputDevice")
        self.output_combo = self._device_combo("svcOutputDevice")
        self.output_combo.setToolTip(CABLE_HINT)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look for microphones and outputs again (a device plugged in meanwhile)")
        self.refresh_button.clicked.connect(self.refresh_requested)
        devices = QFormLayout()
        devices.setContentsMargins(0, 0, 0, 0)
        devices.addRow("Microphone", self.input_combo)
        devices.addRow("Output", self.output_combo)
        self.cable_hint = hint("A virtual audio cable as the output sends the voice to calls and streams.")
        self.cable_hint.setToolTip(CABLE_HINT)
        cable_row = QHBoxLayout()
        cable_row.addWidget(self.cable_hint, 1)
        cable_row.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignTop)
        devices.addRow(cable_row)

        self.preset_combo = compact(QComboBox())
        self.preset_combo.setObjectName("svcPreset")
        for key, (block, _crossfade, extra) in PRESETS.items():
            self.preset_combo.addItem(preset_label(key, block), key)
            tip = f"{PRESET_LABELS.get(key, key)}: {block * 1000:.0f} ms blocks, {extra:g} s of context"
            self.preset_combo.setItemData(self.preset_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.addItem("Custom", "custom")
        self.preset_combo.setToolTip("Block length, crossfade and context that suit a CPU or a GPU")
        self.engine_combo = compact(QComboBox())
        self.engine_combo.setObjectName("svcEngine")
        for key, (label, tip) in ENGINE_LABELS.items():
            self.engine_combo.addItem(label, key)
            self.engine_combo.setItemData(self.engine_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.engine_combo.setCurrentIndex(max(0, self.engine_combo.findData(o.engine)))
        self.engine_combo.setToolTip("How a voice model runs on the processor (a graphics card always runs PyTorch)")
        self.block = ValueSlider(
            "Block", 0.05, 1.0, 0.01, o.block_seconds, fmt=ms,
            tip="Audio converted at a time: shorter blocks lower the delay but need a faster computer",
        )
        self.block.setObjectName("svcBlock")
        self.crossfade = ValueSlider(
            "Crossfade", 0.01, 0.2, 0.01, o.crossfade_seconds, fmt=ms,
            tip="Blend between blocks so that their joins cannot be heard",
        )
        self.context_slider = ValueSlider(
            "Context", 0.0, 2.0, 0.05, o.extra_seconds, fmt=lambda v: f"{v:.2f} s",
            tip="Past audio the model hears before each block: more sounds smoother but costs time (no delay)",
        )
        self.silence = ValueSlider(
            "Silence below", -90, -20, 1, o.silence_db, fmt=lambda v: f"{v:.0f} dB",
            tip="Quieter blocks are not converted and stay silent (no noise between words)",
        )
        self.input_gain = ValueSlider(
            "Input gain", -24, 24, 0.5, o.input_gain_db, fmt=db, tip="Make the microphone louder or softer"
        )
        self.output_gain = ValueSlider(
            "Output gain", -24, 24, 0.5, o.output_gain_db, fmt=db, tip="Make the converted voice louder or softer"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(devices)
        layout.addWidget(labelled("Preset", self.preset_combo))
        layout.addWidget(labelled("Engine", self.engine_combo))
        for widget in (self.block, self.crossfade, self.context_slider, self.silence, self.input_gain,
                       self.output_gain):
            layout.addWidget(widget)

    @staticmethod
    def _device_combo(name: str) -> QComboBox:
        combo = compact(QComboBox())
        combo.setObjectName(name)
        return combo

    def show_layout(self, options: VoiceConversionOptions) -> None:
        """The sliders and the preset that the block layout of ``options`` matches ("Custom" for none)."""
        now = (options.block_seconds, options.crossfade_seconds, options.extra_seconds)
        for slider, value in zip((self.block, self.crossfade, self.context_slider), now, strict=True):
            slider.set_value(value, quiet=True)
        current = "custom"
        for key, values in PRESETS.items():
            if all(abs(a - b) < 1e-6 for a, b in zip(values, now, strict=True)):
                current = key
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(current))


class OutputSettings(QWidget):
    """The shared output panel (format, folder, what is written) with the channels of a converted file."""

    channels_changed = Signal(str)

    def __init__(self, folder: str, fmt: str, channels: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = OutputPanel(FORMAT_LABELS, folder_caption="Converted files go to", folder=folder,
                                 object_name="svcOutput")
        self.panel.set_format(fmt)
        compact(self.panel.format_combo)
        self.channels_combo = compact(QComboBox())
        self.channels_combo.setObjectName("svcChannels")
        for key, label in CHANNEL_LABELS.items():
            self.channels_combo.addItem(label, key)
        self.channels_combo.setCurrentIndex(max(0, self.channels_combo.findData(channels)))
        self.channels_combo.setToolTip(
            "Voice models are mono. 'Same as the input' writes the converted voice on every channel of a stereo "
            "recording (it drops into an editor like the original); 'Mono' writes one channel"
        )
        self.channels_combo.currentIndexChanged.connect(lambda _i: self.channels_changed.emit(self.channels))
        self.beside_button = QPushButton("Next to the originals")
        self.beside_button.setToolTip("Save each converted file in the folder of its original")
        self.beside_button.clicked.connect(lambda: self.panel.folder_row.set_folder("", notify=True))
        row = QHBoxLayout()
        row.addWidget(QLabel("Channels"))
        row.addWidget(self.channels_combo, 1)
        panel_layout = self.panel.layout()
        if isinstance(panel_layout, QVBoxLayout):
            panel_layout.insertLayout(1, row)  # under the format, above the folder
            panel_layout.insertWidget(3, self.beside_button, 0, Qt.AlignmentFlag.AlignRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.panel)
        self.show_folder(folder)

    @property
    def channels(self) -> str:
        return str(self.channels_combo.currentData() or "input")

    def show_folder(self, folder: str) -> None:
        self.beside_button.setVisible(bool(folder))
