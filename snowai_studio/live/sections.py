"""The Go live page's inspector: face and voice, presets, microphone clean-up, outputs and sync."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.tool_dock import pictures_dir
from snowai_studio.widgets.sliders import ValueSlider
from workers.live.options import LiveOptions, LivePreset

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)"


def _column(widget: QWidget) -> QVBoxLayout:
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    return layout


def _hint(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("hint", True)
    return label


class FaceVoiceSection(QWidget):
    """The face photos, the voice and its pitch and formant."""

    faces_changed = Signal(list)
    voice_changed = Signal(str)
    param_changed = Signal(str, float)

    def __init__(self, options: LiveOptions, voices: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.options = options
        col = _column(self)
        row = QHBoxLayout()
        self.faces_label = QLabel()
        self.faces_label.setObjectName("live.faces")
        self.faces_label.setWordWrap(True)
        self.choose_faces = QPushButton("Photos…")
        self.choose_faces.setToolTip("Choose photos of the face to put on yours")
        self.clear_faces = QPushButton("None")
        self.clear_faces.setToolTip("Send the camera picture without a face swap")
        row.addWidget(self.faces_label, 1)
        row.addWidget(self.choose_faces)
        row.addWidget(self.clear_faces)
        col.addLayout(row)
        self.voice_combo = QComboBox()
        self.voice_combo.setObjectName("live.voice")
        self.voice_combo.addItem("Built-in voice changer", "")
        for label, model in voices:
            self.voice_combo.addItem(label, model)
        index = self.voice_combo.findData(options.voice)
        self.voice_combo.setCurrentIndex(max(0, index))
        col.addWidget(self.voice_combo)
        self.pitch = ValueSlider("Pitch", -12, 12, 0.5, options.pitch, fmt=lambda v: f"{v:+g} st")
        self.formant = ValueSlider(
            "Formant",
            -6,
            6,
            0.5,
            options.formant,
            fmt=lambda v: f"{v:+g} st",
            tip="The built-in voice changer's formant shift (voice size)",
        )
        col.addWidget(self.pitch)
        col.addWidget(self.formant)
        self.choose_faces.clicked.connect(self._choose)
        self.clear_faces.clicked.connect(lambda: self.set_faces([], emit=True))
        self.voice_combo.currentIndexChanged.connect(lambda _i: self.voice_changed.emit(self.voice_combo.currentData()))
        self.pitch.value_changed.connect(lambda v: self.param_changed.emit("pitch", float(v)))
        self.formant.value_changed.connect(lambda v: self.param_changed.emit("formant", float(v)))
        self.set_faces(options.faces)

    def _choose(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Photos of the face", pictures_dir(), IMAGE_FILTER)
        if files:
            self.set_faces(files, emit=True)

    def set_faces(self, paths: list[str], *, emit: bool = False) -> None:
        names = ", ".join(Path(p).name for p in paths)
        self.faces_label.setText(names or "No face: the picture goes out as the camera sees it.")
        if emit:
            self.faces_changed.emit(list(paths))

    def show_preset(self, preset: LivePreset) -> None:
        self.set_faces(preset.faces)
        self.voice_combo.blockSignals(True)
        self.voice_combo.setCurrentIndex(max(0, self.voice_combo.findData(preset.voice)))
        self.voice_combo.blockSignals(False)
        self.pitch.set_value(preset.pitch, quiet=True)
        self.formant.set_value(preset.formant, quiet=True)


class PresetsSection(QWidget):
    """Presets that pair a face and a voice: choose one, save the current face and voice, remove one."""

    chosen = Signal(int)
    save_requested = Signal(str)
    remove_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = _column(self)
        self.combo = QComboBox()
        self.combo.setObjectName("live.presets")
        row = QHBoxLayout()
        self.save_button = QPushButton("Save as preset…")
        self.remove_button = QPushButton("Remove")
        row.addWidget(self.save_button)
        row.addWidget(self.remove_button)
        col.addWidget(self.combo)
        col.addLayout(row)
        self.combo.activated.connect(lambda i: self.chosen.emit(int(i)))
        self.save_button.clicked.connect(self._ask_name)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self.combo.currentIndex()))

    def _ask_name(self) -> None:
        name, ok = QInputDialog.getText(self, "Save as preset", "Name of the face and voice preset:")
        if ok and name.strip():
            self.save_requested.emit(name.strip())

    def show_presets(self, presets: list[LivePreset], current: int) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        for preset in presets:
            self.combo.addItem(preset.name)
        if presets:
            self.combo.setCurrentIndex(max(0, min(current, len(presets) - 1)))
        else:
            self.combo.addItem("No presets yet")
        self.combo.setEnabled(bool(presets))
        self.remove_button.setEnabled(bool(presets))
        self.combo.blockSignals(False)


class MicrophoneSection(QWidget):
    """Noise suppression (RNNoise), the noise gate and the headphone monitor."""

    changed = Signal(str, object)

    def __init__(self, options: LiveOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = _column(self)
        self.denoise = QCheckBox("Noise suppression (RNNoise)")
        self.denoise.setChecked(options.noise_suppression)
        self.gate = QCheckBox("Noise gate")
        self.gate.setChecked(options.noise_gate)
        self.gate_db = ValueSlider(
            "Gate", -80, -10, 1, options.gate_db, fmt=lambda v: f"{v:.0f} dB", tip="Sound quieter than this is muted"
        )
        self.monitor = QCheckBox("Hear yourself (headphones)")
        self.monitor.setToolTip("Play the converted voice on the speaker chosen in Devices; use headphones")
        self.monitor.setChecked(options.monitor)
        for widget in (self.denoise, self.gate, self.gate_db, self.monitor):
            col.addWidget(widget)
        self.denoise.toggled.connect(lambda on: self.changed.emit("noise_suppression", on))
        self.gate.toggled.connect(lambda on: self.changed.emit("noise_gate", on))
        self.gate_db.value_changed.connect(lambda v: self.changed.emit("gate_db", float(v)))
        self.monitor.toggled.connect(lambda on: self.changed.emit("monitor", on))


class OutputsSection(QWidget):
    """The virtual camera and the virtual microphone, with what each is doing."""

    changed = Signal(str, object)

    def __init__(self, options: LiveOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = _column(self)
        self.camera = QCheckBox("Virtual camera")
        self.camera.setChecked(options.virtual_camera)
        self.microphone = QCheckBox("Virtual microphone (SnowAI Microphone)")
        self.microphone.setChecked(options.virtual_microphone)
        self.state = _hint("Call and streaming programs pick these as their camera and microphone.")
        self.state.setObjectName("live.outputs")
        for widget in (self.camera, self.microphone, self.state):
            col.addWidget(widget)
        self.camera.toggled.connect(lambda on: self.changed.emit("virtual_camera", on))
        self.microphone.toggled.connect(lambda on: self.changed.emit("virtual_microphone", on))


class SyncSection(QWidget):
    """The manual offset and what the studio measured."""

    offset_changed = Signal(float)

    def __init__(self, options: LiveOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = _column(self)
        self.offset = ValueSlider(
            "Voice offset",
            -300,
            300,
            5,
            options.offset_ms,
            fmt=lambda v: f"{v:+.0f} ms",
            tip="Positive: the voice comes out later than the picture",
        )
        self.measured = _hint("Both streams leave together: the earlier one waits for the later one.")
        self.measured.setObjectName("live.sync")
        col.addWidget(self.offset)
        col.addWidget(self.measured)
        self.offset.value_changed.connect(lambda v: self.offset_changed.emit(float(v)))
