"""The voice-conversion dock: choose a voice, convert the microphone live, convert sound files.

Everything heavy runs off the UI thread in a :class:`~workers.voice_conversion.worker.VoiceConversionWorker`
(built when first needed): it loads the voice (the built-in voice changer, or a so-vits-svc or RVC
checkpoint), runs the live conversion between the microphone and the chosen output (a speaker or a
virtual audio cable), and converts files as jobs with progress and cancel. The dock talks to it
through signals; every parameter applies live.

Every problem becomes one sentence on the dock's message line and, through logging, in the
notifications panel: a checkpoint that cannot be loaded leaves the previous voice in use, a device
that fails stops the live conversion and releases the devices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.context import StudioContext
from snowai_studio.tool_dock import microphone_factory, open_model_manager, speaker_factory
from snowai_studio.voice_conversion.widgets import AudioFileList
from snowai_studio.widgets.level_meter import LevelMeter
from snowai_studio.widgets.problem_bar import ProblemBar
from snowai_studio.widgets.sliders import ValueSlider
from snowai_studio.widgets.status_rows import MessageLine, ProgressRow
from workers import paths
from workers.errors import describe_exception
from workers.voice_conversion.options import F0_METHODS, PRESETS, VoiceConversionOptions
from workers.voice_conversion.worker import AUDIO_SUFFIXES, FILE_FORMATS, coerce_option, copy_options, model_label

log = logging.getLogger(__name__)

SOURCE = "Voice conversion"
BUILTIN = ""
IMPORT_SOVITS = "<import-sovits>"
IMPORT_RVC = "<import-rvc>"
#: Device combo data: the device chosen in Devices (Settings), or the system default.
DEVICES_ITEM = "<devices>"
BUILTIN_LABEL = "Built-in voice changer (no model needed)"
F0_LABELS = {
    "fcpe": "FCPE: fast, good for live",
    "crepe-tiny": "CREPE tiny: fast",
    "crepe-full": "CREPE full: accurate, slower",
    "harvest": "Harvest: classic DSP, no model",
}
PRESET_LABELS = {"cpu": "CPU", "gpu": "GPU"}
FORMAT_LABELS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG Vorbis", "mp3": "MP3"}
AUDIO_FILTER = "Sound files (" + " ".join(f"*{s}" for s in AUDIO_SUFFIXES) + ");;All files (*)"
RVC_FILTER = "RVC models (*.pth *.safetensors);;All files (*)"
INDEX_FILTER = "Feature index or cluster model (*.index *.pt *.pth *.pkl);;All files (*)"
CABLE_HINT = (
    "To use the converted voice in a call, a game or a stream, choose a virtual audio cable as the output "
    "(VB-CABLE or VoiceMeeter on Windows, BlackHole on macOS, a PipeWire or PulseAudio null sink on Linux) "
    "and pick it as the microphone in that program."
)
IDLE_STATS = "Not running. Press Start to hear the converted voice."
#: The Start button while the live conversion runs (it reads Stop then).
LIVE_STYLE = "QPushButton { background-color: rgb(190, 60, 50); color: white; font-weight: bold; }"
#: The groups sit in two columns from this dock width on, in one column when narrower.
WIDE_LAYOUT = 760
MAX_RECENT = 8
QWIDGETSIZE_MAX = (1 << 24) - 1


@dataclass
class _Job:
    kind: str  # files
    label: str
    total: int = 0


def _settings_file() -> QSettings:
    return QSettings(str(paths.config_dir() / "voice_conversion.ini"), QSettings.Format.IniFormat)


class VoiceConversionDock(QWidget):
    """Voice conversion for a creator: the voice, pitch, the live conversion and files."""

    #: Live conversion started (True) or stopped (False).
    realtime_toggled = Signal(bool)
    #: A job of the dock ended: its kind ("files") and whether it succeeded.
    job_done = Signal(str, bool)
    #: A voice is loaded and in use (the worker's description of it).
    model_changed = Signal(dict)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("voiceConversionDock")
        self.context = context
        self.options = self._initial_options()
        self.model_info: dict[str, Any] = {}
        self.last_message = ""
        self.last_level = "info"
        self.last_report: Any = None
        self.last_stats: dict[str, Any] = {}
        self._worker: Any = None
        self._active_model = self.options.model
        self._pending_model: str | None = None
        self._pending_index: str | None = None
        self._jobs: dict[int, _Job] = {}
        self._live = False
        self._starting = False
        self._closing = False
        self._outdir: Path | None = None
        qs = _settings_file()
        saved_out = qs.value("output_folder", "", str)
        self._outdir = Path(saved_out) if saved_out else None
        self._input_device = qs.value("input_device", "", str) or None
        self._output_device = qs.value("output_device", "", str) or None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(400)
        self._save_timer.timeout.connect(self._save_settings)
        self._build_ui()
        self.refresh_devices()
        self._fill_models()
        self._update_voice_rows()
        self._update_actions()
        self.show_message("Choose a voice, then press Start to convert your microphone live, or add files below.")

    def _initial_options(self) -> VoiceConversionOptions:
        saved = self.context.settings.options(VoiceConversionOptions)
        options = copy_options(saved) if isinstance(saved, VoiceConversionOptions) else VoiceConversionOptions()
        for name in ("f0_method", "preset"):
            try:
                setattr(options, name, coerce_option(name, getattr(options, name)))
            except Exception:
                setattr(options, name, getattr(VoiceConversionOptions(), name))
        return options

    # ---- construction ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self._left = QVBoxLayout()
        self._left.addWidget(self._build_voice_box())
        self._left.addWidget(self._build_pitch_box())
        self.files_box = self._build_files_box()
        self._right = QVBoxLayout()
        self._right.addWidget(self._build_live_box())
        self._columns = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self._columns.setContentsMargins(2, 2, 6, 2)
        self._columns.setSpacing(8)
        self._columns.addLayout(self._left, 1)
        self._columns.addLayout(self._right, 1)
        content = QWidget()
        content.setObjectName("svcControls")
        content.setLayout(self._columns)
        scroll = QScrollArea()
        scroll.setObjectName("svcScroll")
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll = scroll

        self.progress_box = ProgressRow()
        self.progress = self.progress_box.bar
        self.cancel_button = self.progress_box.cancel_button
        self.cancel_button.setObjectName("svcCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.message_line = MessageLine("svcMessage")
        self.message_label = self.message_line.label

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.message_line)
        self._arrange(self.width())

    def _arrange(self, width: int) -> None:
        """Two columns (voice, pitch and files | live) when wide; one (voice, pitch, live, files) when narrow."""
        wide = width >= WIDE_LAYOUT
        if getattr(self, "_arranged_wide", None) == wide:
            return
        self._arranged_wide = wide
        self._columns.setDirection(QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom)
        for column in (self._left, self._right):
            for i in reversed(range(column.count())):
                item = column.itemAt(i)
                if item is not None and item.spacerItem() is not None:
                    column.removeItem(item)
        self._left.removeWidget(self.files_box)
        self._right.removeWidget(self.files_box)
        if wide:
            self._left.addWidget(self.files_box, 1)
            self._right.addStretch(1)
            self.file_list.setMaximumHeight(QWIDGETSIZE_MAX)
        else:
            self._right.addWidget(self.files_box, 1)
            self.file_list.setMaximumHeight(180)

    @property
    def wide_layout(self) -> bool:
        return self._columns.direction() == QBoxLayout.Direction.LeftToRight

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange(event.size().width())

    def _build_voice_box(self) -> QGroupBox:
        box = QGroupBox("Voice")
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("svcModel")
        self.model_combo.setToolTip("The voice to convert to: the built-in voice changer, so-vits-svc or RVC")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(16)
        self.model_combo.activated.connect(self._on_model_chosen)
        self.model_info_label = QLabel()
        self.model_info_label.setObjectName("svcModelInfo")
        self.model_info_label.setWordWrap(True)
        self.model_info_label.setStyleSheet("color: palette(placeholder-text);")

        self.index_label = QLabel("No index")
        self.index_label.setObjectName("svcIndex")
        self.index_label.setToolTip(
            "An RVC feature index (.index) or a so-vits-svc cluster model: the voice sounds more like the model's "
            "speaker (optional)"
        )
        self.index_button = QPushButton("Index…")
        self.index_button.setObjectName("svcChooseIndex")
        self.index_button.setToolTip("Choose an RVC .index file or a so-vits-svc cluster model (optional)")
        self.index_button.clicked.connect(lambda: self.choose_index())
        self.clear_index_button = QPushButton("Clear")
        self.clear_index_button.setToolTip("Convert without an index")
        self.clear_index_button.clicked.connect(lambda: self.set_index(""))
        index_row = QHBoxLayout()
        index_row.addWidget(self.index_label, 1)
        index_row.addWidget(self.index_button)
        index_row.addWidget(self.clear_index_button)
        self.index_row = QWidget()
        self.index_row.setLayout(index_row)
        index_row.setContentsMargins(0, 0, 0, 0)
        self.index_ratio = ValueSlider(
            "Index mix",
            0.0,
            1.0,
            0.05,
            self.options.index_ratio,
            fmt=lambda v: f"{v * 100:.0f} %",
            tip="How much of the voice's features come from the index (more: closer to the model's timbre, "
            "but less clear)",
        )
        self.index_ratio.value_changed.connect(lambda v: self.set_option("index_ratio", v))
        self.speaker_combo = QComboBox()
        self.speaker_combo.setObjectName("svcSpeaker")
        self.speaker_combo.setToolTip("This model has several voices: choose one")
        self.speaker_combo.activated.connect(self._on_speaker_chosen)
        self.speaker_row = QWidget()
        speaker_layout = QHBoxLayout(self.speaker_row)
        speaker_layout.setContentsMargins(0, 0, 0, 0)
        speaker_label = QLabel("Speaker")
        speaker_label.setMinimumWidth(92)
        speaker_layout.addWidget(speaker_label)
        speaker_layout.addWidget(self.speaker_combo, 1)
        self.models_button = QPushButton("Model manager…")
        self.models_button.setObjectName("svcModelManager")
        self.models_button.setToolTip(
            "so-vits-svc and RVC voices need a content encoder (ContentVec or HuBERT): download it there"
        )
        self.models_button.clicked.connect(lambda: open_model_manager(self, self.context.model_store))
        layout = QVBoxLayout(box)
        layout.addWidget(self.model_combo)
        layout.addWidget(self.model_info_label)
        layout.addWidget(self.index_row)
        layout.addWidget(self.index_ratio)
        layout.addWidget(self.speaker_row)
        layout.addWidget(self.models_button, 0, Qt.AlignmentFlag.AlignLeft)
        return box

    def _build_pitch_box(self) -> QGroupBox:
        box = QGroupBox("Pitch")
        o = self.options
        self.pitch = ValueSlider(
            "Pitch",
            -24,
            24,
            1,
            o.pitch,
            fmt=_semitones,
            tip="Move the voice up or down in semitones (12 = one octave; +12 for a male to a female voice)",
        )
        self.pitch.setObjectName("svcPitch")
        self.pitch.value_changed.connect(lambda v: self.set_option("pitch", v))
        self.formant = ValueSlider(
            "Formant",
            -12,
            12,
            0.5,
            o.formant,
            fmt=_semitones,
            tip="The built-in voice changer: move the voice's resonances (its size) independently of the pitch",
        )
        self.formant.setObjectName("svcFormant")
        self.formant.value_changed.connect(lambda v: self.set_option("formant", v))
        self.f0_combo = QComboBox()
        self.f0_combo.setObjectName("svcF0")
        for key in F0_METHODS:
            self.f0_combo.addItem(F0_LABELS.get(key, key), key)
        self.f0_combo.setCurrentIndex(max(0, self.f0_combo.findData(o.f0_method)))
        self.f0_combo.setToolTip("How the pitch of your voice is measured")
        self.f0_combo.activated.connect(lambda i: self.set_option("f0_method", self.f0_combo.itemData(i)))
        f0_row = QHBoxLayout()
        f0_label = QLabel("Pitch tracker")
        f0_label.setMinimumWidth(92)
        f0_row.addWidget(f0_label)
        f0_row.addWidget(self.f0_combo, 1)
        self.auto_pitch = QCheckBox("Move my voice into the model's range automatically")
        self.auto_pitch.setObjectName("svcAutoPitch")
        self.auto_pitch.setToolTip("Added to the pitch above: useful when your voice is much lower or higher")
        self.auto_pitch.setChecked(o.auto_pitch)
        self.auto_pitch.toggled.connect(lambda on: self.set_option("auto_pitch", on))
        layout = QVBoxLayout(box)
        layout.addWidget(self.pitch)
        layout.addWidget(self.formant)
        layout.addLayout(f0_row)
        layout.addWidget(self.auto_pitch)
        return box

    def _build_live_box(self) -> QGroupBox:
        box = QGroupBox("Live")
        o = self.options
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("svcInputDevice")
        self.input_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.input_combo.setMinimumContentsLength(14)
        self.input_combo.activated.connect(lambda _i: self._on_device_chosen("input"))
        self.output_combo = QComboBox()
        self.output_combo.setObjectName("svcOutputDevice")
        self.output_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.output_combo.setMinimumContentsLength(14)
        self.output_combo.setToolTip(CABLE_HINT)
        self.output_combo.activated.connect(lambda _i: self._on_device_chosen("output"))
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look for microphones and outputs again (a device plugged in meanwhile)")
        self.refresh_button.clicked.connect(lambda: self.refresh_devices())
        devices = QFormLayout()
        devices.setContentsMargins(0, 0, 0, 0)
        devices.addRow("Microphone", self.input_combo)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_combo, 1)
        out_row.addWidget(self.refresh_button)
        devices.addRow("Output", out_row)
        self.cable_hint = QLabel("A virtual audio cable as the output sends the voice to calls and streams.")
        self.cable_hint.setWordWrap(True)
        self.cable_hint.setToolTip(CABLE_HINT)
        self.cable_hint.setStyleSheet("color: palette(placeholder-text);")
        devices.addRow(self.cable_hint)

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("svcStart")
        self.start_button.setCheckable(True)
        self.start_button.setMinimumHeight(32)
        self.start_button.setToolTip("Convert the microphone live to the output")
        self.start_button.toggled.connect(self._on_start_toggled)
        self.passthrough = QCheckBox("Passthrough (hear yourself unconverted)")
        self.passthrough.setObjectName("svcPassthrough")
        self.passthrough.setToolTip("Send the microphone to the output as it is, to compare")
        self.passthrough.setChecked(o.passthrough)
        self.passthrough.toggled.connect(lambda on: self.set_option("passthrough", on))
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_button, 1)
        start_row.addWidget(self.passthrough)
        # What stopped the live conversion (the microphone, the output or the voice failed), with Retry.
        self.live_problem = ProblemBar("svcLiveProblem")
        self.live_problem.retry_requested.connect(self.retry_live)

        self.in_meter = LevelMeter()
        self.in_meter.setObjectName("svcInputLevel")
        self.in_meter.setToolTip("Microphone level")
        self.out_meter = LevelMeter()
        self.out_meter.setObjectName("svcOutputLevel")
        self.out_meter.setToolTip("Converted voice level")
        meters = QGridLayout()
        meters.setContentsMargins(0, 0, 0, 0)
        meters.addWidget(QLabel("In"), 0, 0)
        meters.addWidget(self.in_meter, 0, 1)
        meters.addWidget(QLabel("Out"), 1, 0)
        meters.addWidget(self.out_meter, 1, 1)
        meters.setColumnStretch(1, 1)
        self.stats_label = QLabel(IDLE_STATS)
        self.stats_label.setObjectName("svcStats")
        self.stats_label.setWordWrap(True)

        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("svcPreset")
        for key, (block, _crossfade, extra) in PRESETS.items():
            label = f"{PRESET_LABELS.get(key, key)}: {block * 1000:.0f} ms blocks, {extra:g} s context"
            self.preset_combo.addItem(label, key)
        self.preset_combo.addItem("Custom", "custom")
        self.preset_combo.setToolTip("Block length, crossfade and context that suit a CPU or a GPU")
        self.preset_combo.activated.connect(self._on_preset_chosen)
        preset_row = QHBoxLayout()
        preset_label = QLabel("Preset")
        preset_label.setMinimumWidth(92)
        preset_row.addWidget(preset_label)
        preset_row.addWidget(self.preset_combo, 1)
        self.block = ValueSlider(
            "Block",
            0.05,
            1.0,
            0.01,
            o.block_seconds,
            fmt=_ms,
            tip="Audio converted at a time: shorter blocks lower the delay but need a faster computer",
        )
        self.block.setObjectName("svcBlock")
        self.block.value_changed.connect(lambda v: self._set_layout("block_seconds", v))
        self.crossfade = ValueSlider(
            "Crossfade",
            0.01,
            0.2,
            0.01,
            o.crossfade_seconds,
            fmt=_ms,
            tip="Blend between blocks so that their joins cannot be heard",
        )
        self.crossfade.value_changed.connect(lambda v: self._set_layout("crossfade_seconds", v))
        self.context_slider = ValueSlider(
            "Context",
            0.0,
            2.0,
            0.05,
            o.extra_seconds,
            fmt=lambda v: f"{v:.2f} s",
            tip="Past audio the model hears before each block: more sounds smoother but costs time (no delay)",
        )
        self.context_slider.value_changed.connect(lambda v: self._set_layout("extra_seconds", v))
        self.silence = ValueSlider(
            "Silence below",
            -90,
            -20,
            1,
            o.silence_db,
            fmt=lambda v: f"{v:.0f} dB",
            tip="Quieter blocks are not converted and stay silent (no noise between words)",
        )
        self.silence.value_changed.connect(lambda v: self.set_option("silence_db", v))
        self.input_gain = ValueSlider(
            "Input gain", -24, 24, 0.5, o.input_gain_db, fmt=_db, tip="Make the microphone louder or softer"
        )
        self.input_gain.value_changed.connect(lambda v: self.set_option("input_gain_db", v))
        self.output_gain = ValueSlider(
            "Output gain", -24, 24, 0.5, o.output_gain_db, fmt=_db, tip="Make the converted voice louder or softer"
        )
        self.output_gain.value_changed.connect(lambda v: self.set_option("output_gain_db", v))
        self._sync_preset_combo()

        layout = QVBoxLayout(box)
        layout.addLayout(devices)
        layout.addLayout(start_row)
        layout.addWidget(self.live_problem)
        layout.addLayout(meters)
        layout.addWidget(self.stats_label)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addLayout(preset_row)
        for widget in (
            self.block,
            self.crossfade,
            self.context_slider,
            self.silence,
            self.input_gain,
            self.output_gain,
        ):
            layout.addWidget(widget)
        return box

    def _build_files_box(self) -> QGroupBox:
        box = QGroupBox("Files")
        self.file_list = AudioFileList(
            AUDIO_SUFFIXES, "Drop WAV, FLAC, MP3 or OGG files here, or press Add files…"
        )
        self.file_list.setObjectName("svcFiles")
        self.file_list.setToolTip("WAV, FLAC, MP3 or OGG files to convert with the voice above (drop files here)")
        self.file_list.setMinimumHeight(72)
        self.file_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.file_list.files_dropped.connect(lambda paths: self.add_files(paths))
        self.file_list.itemSelectionChanged.connect(self._update_actions)
        self.add_button = QPushButton("Add files…")
        self.add_button.setObjectName("svcAddFiles")
        self.add_button.clicked.connect(lambda: self.add_files())
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the selected files off the list (nothing is deleted)")
        self.remove_button.clicked.connect(self._remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the list (nothing is deleted)")
        self.clear_button.clicked.connect(self._clear_files)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)

        self.outdir_edit = QLineEdit()
        self.outdir_edit.setObjectName("svcOutputFolder")
        self.outdir_edit.setReadOnly(True)
        self.outdir_edit.setPlaceholderText("Next to each file")
        self.outdir_edit.setText(str(self._outdir) if self._outdir else "")
        self.outdir_button = QPushButton("Choose…")
        self.outdir_button.setToolTip("The folder the converted files go to (the originals are never overwritten)")
        self.outdir_button.clicked.connect(lambda: self.choose_output_folder())
        self.outdir_reset = QPushButton("Reset")
        self.outdir_reset.setToolTip("Save each converted file next to its original")
        self.outdir_reset.clicked.connect(lambda: self.set_output_folder(None))
        out_row = QHBoxLayout()
        out_row.addWidget(self.outdir_edit, 1)
        out_row.addWidget(self.outdir_button)
        out_row.addWidget(self.outdir_reset)
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("svcFormat")
        for key in FILE_FORMATS:
            self.format_combo.addItem(FORMAT_LABELS.get(key, key), key)
        saved_fmt = _settings_file().value("format", "wav", str)
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(saved_fmt)))
        self.format_combo.activated.connect(lambda _i: _settings_file().setValue("format", self.output_format()))
        self.convert_button = QPushButton("Convert")
        self.convert_button.setObjectName("svcConvert")
        self.convert_button.setToolTip("Convert every file in the list with the voice and pitch above")
        self.convert_button.clicked.connect(lambda: self.convert())
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Save to", out_row)
        format_row = QHBoxLayout()
        format_row.addWidget(self.format_combo, 1)
        format_row.addWidget(self.convert_button)
        form.addRow("Format", format_row)
        layout = QVBoxLayout(box)
        layout.addWidget(self.file_list, 1)
        layout.addLayout(buttons)
        layout.addLayout(form)
        return box

    # ---- messages --------------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications panel) unless the worker already reported them."""
        self.last_message = text
        self.last_level = level
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    # ---- settings ------------------------------------------------------------------------------------------
    def _schedule_save(self) -> None:
        if not self._closing:
            self._save_timer.start()

    def _save_settings(self) -> None:
        settings = self.context.settings
        kept = copy_options(self.options)
        kept.model = self._active_model
        settings.set_options(kept)
        try:
            settings.save()
        except OSError as exc:
            self.show_message(describe_exception(exc, "The voice-conversion settings could not be saved"), "warning")

    # ---- options --------------------------------------------------------------------------------------------
    def set_option(self, name: str, value: Any) -> None:
        """Change one voice-conversion setting; it applies live."""
        try:
            value = coerce_option(name, value)
        except Exception as exc:
            self.show_message(describe_exception(exc), "warning")
            return
        setattr(self.options, name, value)
        if self._worker is not None:
            self._worker.set_param(name, value)
        self._schedule_save()

    def _set_layout(self, name: str, value: float) -> None:
        self.set_option(name, value)
        self._sync_preset_combo()

    def _sync_preset_combo(self) -> None:
        o = self.options
        current = "custom"
        now = (o.block_seconds, o.crossfade_seconds, o.extra_seconds)
        for key, values in PRESETS.items():
            if all(abs(a - b) < 1e-6 for a, b in zip(values, now, strict=True)):
                current = key
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(current))

    @Slot(int)
    def _on_preset_chosen(self, index: int) -> None:
        key = self.preset_combo.itemData(index)
        if key in PRESETS:
            self.apply_preset(key)

    def apply_preset(self, key: str) -> None:
        """Block, crossfade and context for a CPU (``"cpu"``) or a GPU (``"gpu"``)."""
        block, crossfade, extra = PRESETS[key]
        o = self.options
        o.preset, o.block_seconds, o.crossfade_seconds, o.extra_seconds = key, block, crossfade, extra
        self.block.set_value(block, quiet=True)
        self.crossfade.set_value(crossfade, quiet=True)
        self.context_slider.set_value(extra, quiet=True)
        self._sync_preset_combo()
        if self._worker is not None:
            self._worker.set_param("preset", key)
        self._schedule_save()

    @Slot(int)
    def _on_speaker_chosen(self, index: int) -> None:
        self.set_option("speaker", int(self.speaker_combo.itemData(index) or 0))

    # ---- voices ---------------------------------------------------------------------------------------------
    def _recent_models(self) -> list[str]:
        value = _settings_file().value("recent_models", [], list)
        return [str(v) for v in (value or []) if isinstance(v, str) and v]

    def _remember_model(self, model: str) -> None:
        if not model:
            return
        recent = [m for m in self._recent_models() if m != model]
        recent.insert(0, model)
        _settings_file().setValue("recent_models", recent[:MAX_RECENT])

    def _store_voices(self) -> list[tuple[str, str]]:
        store = self.context.model_store
        if store is None:
            return []
        try:
            return [(m.id, m.name) for m in store.user_models() if m.tool == "voice_conversion" and _is_voice(m)]
        except Exception as exc:
            log.warning("The imported voices could not be listed: %s", exc)
            return []

    def _fill_models(self) -> None:
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(BUILTIN_LABEL, BUILTIN)
        seen = {BUILTIN}
        for model_id, name in self._store_voices():
            combo.addItem(name, model_id)
            seen.add(model_id)
        for model in [self._active_model, *self._recent_models()]:
            if model and model not in seen:
                combo.addItem(_model_item_label(model), model)
                combo.setItemData(combo.count() - 1, model, Qt.ItemDataRole.ToolTipRole)
                seen.add(model)
        combo.insertSeparator(combo.count())
        combo.addItem("Import a so-vits-svc folder…", IMPORT_SOVITS)
        combo.addItem("Import an RVC model (.pth)…", IMPORT_RVC)
        shown = self._pending_model if self._pending_model is not None else self._active_model
        combo.setCurrentIndex(max(0, combo.findData(shown)))
        combo.blockSignals(False)

    @Slot(int)
    def _on_model_chosen(self, index: int) -> None:
        data = self.model_combo.itemData(index)
        if data == IMPORT_SOVITS:
            self._fill_models()  # show the voice in use until a folder is chosen
            self.import_sovits()
        elif data == IMPORT_RVC:
            self._fill_models()
            self.import_rvc()
        elif data is not None:
            self.set_model(str(data))

    def _ask_folder(self, title: str) -> str | None:
        ask: Callable[..., Any] | None = self.context.extras.get("svc_choose_folder")
        if ask is not None:
            return ask(self, title)
        return QFileDialog.getExistingDirectory(self, title, str(Path.home())) or None

    def _ask_file(self, title: str, filter_: str) -> str | None:
        ask: Callable[..., Any] | None = self.context.extras.get("svc_choose_file")
        if ask is not None:
            return ask(self, title, filter_)
        path, _ = QFileDialog.getOpenFileName(self, title, str(Path.home()), filter_)
        return path or None

    def import_sovits(self, folder: str | Path | None = None) -> bool:
        """Use a so-vits-svc model folder (config.json and G_*.pth); asks for it when not given."""
        chosen = folder or self._ask_folder("Choose a so-vits-svc model folder (config.json and G_*.pth)")
        if not chosen:
            return False
        path = Path(chosen).expanduser()
        if not (path / "config.json").is_file() and path.is_dir():
            self.show_message(
                f"{path.name} has no config.json; choose the folder that holds config.json and a G_*.pth file.",
                "error",
            )
            return False
        return self.set_model(str(path))

    def import_rvc(self, path: str | Path | None = None) -> bool:
        """Use an RVC model (.pth with its config inside); asks for it when not given."""
        chosen = path or self._ask_file("Choose an RVC model", RVC_FILTER)
        if not chosen:
            return False
        return self.set_model(str(Path(chosen).expanduser()))

    def set_model(self, model: str) -> bool:
        """Load another voice ("" for the built-in voice changer); the current one stays in use until
        the new one is ready, and stays if it cannot be loaded."""
        model = str(model or "")
        if model == self._active_model and self._pending_model is None and self._worker is not None:
            return True
        self._pending_model = model
        self.options.model = model
        worker = self._ensure_worker()
        label = model_label(self.options)
        if model != self._active_model or not self.model_info:
            self.model_info_label.setText(f"Loading {label}…")
            self.show_message(f"Loading {label}…")
        worker.set_param("model", model)
        self._fill_models()
        return True

    def choose_index(self, path: str | Path | None = None) -> bool:
        chosen = path or self._ask_file("Choose a feature index or cluster model", INDEX_FILTER)
        if not chosen:
            return False
        self.set_index(str(Path(chosen).expanduser()))
        return True

    def set_index(self, path: str) -> None:
        """Use a feature index / cluster model ("" for none); the voice reloads with it."""
        self.options.index = path
        self._update_voice_rows()
        if self._worker is not None or path:
            self._pending_index = path
            self._ensure_worker().set_param("index", path)
            if path:
                self.show_message(f"Loading the index {Path(path).name}…")
        self._schedule_save()

    @Slot(dict)
    def _on_model_loaded(self, info: dict) -> None:
        self.model_info = dict(info)
        self._active_model = str(info.get("model", ""))
        if self._pending_model is not None and self._pending_model != self._active_model:
            # The voice the worker started with is ready; the one chosen since is still loading.
            self._update_voice_rows()
            self.model_changed.emit(dict(info))
            return
        self.options.model = self._active_model
        self.options.index = str(info.get("index", self.options.index))
        self.options.speaker = int(info.get("speaker", self.options.speaker) or 0)
        was_pending = self._pending_model is not None
        self._pending_model = None
        self._remember_model(self._active_model)
        self._fill_models()
        self._update_voice_rows()
        self._schedule_save()
        if was_pending:
            self.show_message(f"{info.get('label', 'The voice')} is ready. {self._next_step()}")
        elif self._pending_index is not None and self._pending_index == self.options.index:
            index = self.options.index
            self.show_message(f"The index {Path(index).name} is in use." if index else "No index is used now.")
        self._pending_index = None
        self.model_changed.emit(dict(info))

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        self._pending_model = None
        self._pending_index = None
        self.options.model = self._active_model
        self.options.index = str(self.model_info.get("index", "")) if self.model_info else ""
        self._fill_models()
        self._update_voice_rows()
        self.show_message(_strip_source(message), "error")

    def _next_step(self) -> str:
        if self._live:
            return "You hear it live now."
        return "Press Start to convert your microphone live, or convert files below."

    def _update_voice_rows(self) -> None:
        info = self.model_info
        dsp = not self._active_model
        if self._pending_model is None:
            self.model_info_label.setText(_describe_voice(info) if info else _describe_pending(self._active_model))
            self.model_info_label.setToolTip(self._active_model)
        self.formant.setEnabled(dsp)
        self.formant.setToolTip(
            "Move the voice's resonances (its size) independently of the pitch"
            if dsp
            else "Formant shift is a setting of the built-in voice changer; a model brings its own timbre"
        )
        self.auto_pitch.setEnabled(not dsp)
        self.f0_combo.setEnabled(not dsp)
        self.f0_combo.setToolTip(
            "How the pitch of your voice is measured for the model"
            if not dsp
            else "The built-in voice changer measures the pitch itself; this is for so-vits-svc and RVC voices"
        )
        self.index_row.setVisible(not dsp)
        self.index_ratio.setVisible(not dsp and bool(self.options.index))
        index = self.options.index
        self.index_label.setText(f"Index: {Path(index).name}" if index else "No index (optional)")
        self.index_label.setToolTip(index or self.index_button.toolTip())
        self.clear_index_button.setEnabled(bool(index))
        speakers = dict(info.get("speakers") or {}) if not dsp else {}
        self.speaker_combo.blockSignals(True)
        self.speaker_combo.clear()
        for name, number in sorted(speakers.items(), key=lambda kv: int(kv[1])):
            self.speaker_combo.addItem(f"{name} ({number})", int(number))
        self.speaker_combo.setCurrentIndex(max(0, self.speaker_combo.findData(self.options.speaker)))
        self.speaker_combo.blockSignals(False)
        self.speaker_row.setVisible(len(speakers) > 1)

    # ---- devices --------------------------------------------------------------------------------------------
    def refresh_devices(self) -> None:
        """List the microphones and outputs again (keeping the choices)."""
        from workers.media.audio import list_input_devices, list_output_devices

        dev = self.context.settings.devices
        self._fill_device_combo(self.input_combo, list_input_devices(), self._input_device, dev.microphone, "input")
        self._fill_device_combo(self.output_combo, list_output_devices(), self._output_device, dev.speaker, "output")

    def _fill_device_combo(
        self, combo: QComboBox, found: list[Any], chosen: str | None, in_settings: str | None, kind: str
    ) -> None:
        combo.blockSignals(True)
        combo.clear()
        injected = "microphone_factory" if kind == "input" else "speaker_factory"
        what = "microphone" if kind == "input" else "speaker"
        if injected in self.context.extras:
            combo.addItem(f"The studio's {what}", DEVICES_ITEM)
        else:
            combo.addItem(f"{in_settings} (Devices)" if in_settings else "System default", DEVICES_ITEM)
        for d in found:
            label = f"{d.name} ({d.hostapi})" if d.hostapi else d.name
            if _looks_like_cable(d.name):
                label += " — virtual cable"
            combo.addItem(label, d.name)
            combo.setItemData(combo.count() - 1, d.name, Qt.ItemDataRole.ToolTipRole)
        if chosen and combo.findData(chosen) < 0:
            combo.addItem(f"{chosen} (not connected)", chosen)
        combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
        combo.setToolTip(f"Found {len(found)} {what}{'s' if len(found) != 1 else ''}" if found else f"No {what} found")
        combo.blockSignals(False)

    def _device_choice(self, combo: QComboBox) -> str | None:
        data = combo.currentData()
        return None if data in (None, DEVICES_ITEM) else str(data)

    def _on_device_chosen(self, kind: str) -> None:
        combo = self.input_combo if kind == "input" else self.output_combo
        choice = self._device_choice(combo)
        if kind == "input":
            self._input_device = choice
        else:
            self._output_device = choice
        _settings_file().setValue(f"{kind}_device", choice or "")
        if self._worker is not None:
            self._worker.set_param(f"{kind}_device", choice)

    def _make_source(self, device: str | None, samplerate: int | None, blocksize: int) -> Any:
        """The microphone (worker thread): the one chosen here, else the studio's (Devices, or injected)."""
        if device is None:
            return microphone_factory(self.context)()
        from workers.media.audio import AudioInput

        return AudioInput(device, samplerate, blocksize, channels=1)

    def _make_sink(self, device: str | None, samplerate: int | None, blocksize: int) -> Any:
        """The output (worker thread): the one chosen here (a speaker or a virtual cable), else the studio's."""
        if device is None:
            if "speaker_factory" in self.context.extras:
                return speaker_factory(self.context)()
            from workers.media.audio import AudioOutput

            name = self.context.settings.devices.speaker
            return AudioOutput(name, samplerate, blocksize, channels=1, buffer_seconds=0.3, drop_when_full=True)
        from workers.media.audio import AudioOutput

        return AudioOutput(device, samplerate, blocksize, channels=1, buffer_seconds=0.3, drop_when_full=True)

    # ---- live --------------------------------------------------------------------------------------------------
    @Slot(bool)
    def _on_start_toggled(self, on: bool) -> None:
        if on:
            self.start_live()
        else:
            self.stop_live()

    def start_live(self) -> bool:
        """Convert the microphone live to the output (``realtime_toggled(True)`` once it runs)."""
        if self._live or self._starting:
            return True
        self.live_problem.clear()
        worker = self._ensure_worker()
        self._starting = True
        _set_checked(self.start_button, True)
        self.start_button.setText("Starting…")
        self.start_button.setStyleSheet(LIVE_STYLE)
        self.stats_label.setText("Opening the microphone and the output…")
        worker.start_realtime(self._device_choice(self.input_combo), self._device_choice(self.output_combo))
        self._update_actions()
        return True

    def stop_live(self) -> None:
        """Stop the live conversion; the devices are released."""
        self.live_problem.clear()
        self._starting = False
        if self._worker is not None:
            self._worker.stop_realtime()
        self._set_live(False)

    @property
    def live_running(self) -> bool:
        return self._live

    def _set_live(self, on: bool) -> None:
        changed = on != self._live
        self._live = on
        _set_checked(self.start_button, on)
        self.start_button.setText("Stop" if on else "Start")
        self.start_button.setStyleSheet(LIVE_STYLE if on else "")
        self.start_button.setToolTip(
            "Stop the live conversion and release the devices" if on else "Convert the microphone live to the output"
        )
        if not on and not self._closing:
            self.stats_label.setText(IDLE_STATS)
            self.in_meter.reset()
            self.out_meter.reset()
        self._update_actions()
        if changed:
            self.realtime_toggled.emit(on)

    @Slot(bool, str, str)
    def _on_realtime_changed(self, running: bool, message: str, level: str) -> None:
        self._starting = False
        self._set_live(running)
        if message and not self._closing:
            self.show_message(message, level, notify=False)
        if running:
            self.live_problem.clear()
        elif level == "error" and message and not self._closing:
            self.live_problem.show_problem(message)  # a device or the voice failed: offer to start again

    @Slot()
    def retry_live(self) -> None:
        """Retry after the live conversion stopped: both devices are opened again, same settings."""
        self.live_problem.clear()
        if self._live:
            self.stop_live()
        self.start_live()

    @Slot(dict)
    def _on_stats(self, stats: dict) -> None:
        if not stats.get("realtime") or not self._live:
            return
        self.last_stats = dict(stats)
        if "input_dbfs" in stats:
            self.in_meter.set_level(float(stats["input_dbfs"]))
        if "output_dbfs" in stats:
            self.out_meter.set_level(float(stats["output_dbfs"]))
        self.stats_label.setText(live_text(stats))

    # ---- files ---------------------------------------------------------------------------------------------------
    def add_files(self, files: list[str | Path] | None = None) -> int:
        """Add sound files to the list (asks for them when not given); returns how many were added."""
        if files is None:
            ask: Callable[..., Any] | None = self.context.extras.get("svc_choose_files")
            if ask is not None:
                files = list(ask(self, "Add sound files", AUDIO_FILTER) or [])
            else:
                chosen, _ = QFileDialog.getOpenFileNames(self, "Add sound files", str(Path.home()), AUDIO_FILTER)
                files = list(chosen)
        paths = [Path(f).expanduser() for f in files]
        missing = [p for p in paths if not p.is_file()]
        added = self.file_list.add_paths([p for p in paths if p.is_file()])
        if missing:
            what = "is a folder" if missing[0].is_dir() else "was not found"
            self.show_message(f"{missing[0].name} {what}; it was not added.", "warning")
        elif added:
            n = self.file_list.count()
            self.show_message(f"{n} file{'s' if n != 1 else ''} ready to convert. Press Convert.")
        self._update_actions()
        return added

    def _remove_selected(self) -> None:
        self.file_list.remove_selected()
        self._update_actions()

    def _clear_files(self) -> None:
        self.file_list.clear()
        self._update_actions()

    def choose_output_folder(self, folder: str | Path | None = None) -> bool:
        chosen = folder or self._ask_folder("Choose the folder for the converted files")
        if not chosen:
            return False
        self.set_output_folder(Path(chosen).expanduser())
        return True

    def set_output_folder(self, folder: Path | None) -> None:
        """Where converted files go (None: next to each original)."""
        self._outdir = Path(folder) if folder else None
        self.outdir_edit.setText(str(self._outdir) if self._outdir else "")
        _settings_file().setValue("output_folder", str(self._outdir) if self._outdir else "")

    @property
    def output_folder(self) -> Path | None:
        return self._outdir

    def output_format(self) -> str:
        return str(self.format_combo.currentData() or "wav")

    def convert(self) -> int | None:
        """Convert every listed file with the current voice; returns the job id (None when nothing to do)."""
        files = self.file_list.paths()
        if not files:
            self.show_message("Add sound files first (Add files… or drop them on the list).")
            return None
        if self._busy_with("files"):
            return None
        worker = self._ensure_worker()
        job_id = worker.convert_files(files, self._outdir, self.output_format())
        n = len(files)
        self._jobs[job_id] = _Job("files", f"Converting {n} file{'s' if n != 1 else ''}", 1000 * n)
        self.show_message(f"Converting {n} file{'s' if n != 1 else ''} with {model_label(self.options)}…")
        self._update_busy()
        self._update_actions()
        return job_id

    @Slot()
    def cancel(self) -> None:
        if self._worker is not None and self._jobs:
            self._worker.cancel()
            self.show_message("Cancelling…")

    def _busy_with(self, kind: str) -> bool:
        return any(j.kind == kind for j in self._jobs.values())

    @Slot(int, object)
    def _on_job_finished(self, job_id: int, report: Any) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self.last_report = report
        self._update_busy()
        self._update_actions()
        failed = bool(getattr(report, "failed", None))
        level = "warning" if failed or getattr(report, "cancelled", False) else "info"
        text = report.summary() if hasattr(report, "summary") else "Done."
        if getattr(report, "rtf", 0) and not failed:
            text = text[:-1] + f" ({report.rtf:.2f}x real time)."
        self.show_message(text, level, notify=failed)
        self.job_done.emit(job.kind, not failed and not getattr(report, "cancelled", False))

    @Slot(int, str)
    def _on_job_failed(self, job_id: int, message: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self._update_busy()
        self._update_actions()
        self.show_message(_strip_source(message), "error", notify=False)
        self.job_done.emit(job.kind, False)

    @Slot(int)
    def _on_job_cancelled(self, job_id: int) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self._update_busy()
        self._update_actions()
        self.show_message("Cancelled; the files converted before were kept.")
        self.job_done.emit(job.kind, False)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if not self._jobs or total <= 0:
            return
        self.progress.setValue(int(100 * min(done, total) / total))

    def _update_busy(self) -> None:
        jobs = list(self._jobs.values())
        if not jobs:
            self.progress_box.hide()
            return
        job = jobs[-1]
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat(f"{job.label} %p%")
        self.progress_box.show()

    def _update_actions(self) -> None:
        busy = self._busy_with("files")
        has_files = self.file_list.count() > 0
        self.convert_button.setEnabled(has_files and not busy)
        self.remove_button.setEnabled(bool(self.file_list.selectedItems()) and not busy)
        self.clear_button.setEnabled(has_files and not busy)
        self.add_button.setEnabled(not busy)

    # ---- the worker -------------------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        return self._worker

    def _ensure_worker(self) -> Any:
        if self._worker is not None:
            return self._worker
        from workers.voice_conversion.worker import VoiceConversionWorker

        start_options = copy_options(self.options)
        start_options.model = self._active_model
        devices = self.context.settings.devices
        worker = VoiceConversionWorker(
            start_options,
            store=self.context.model_store,
            device=self.context.settings.compute,
            source_factory=self._make_source,
            sink_factory=self._make_sink,
            converter_factory=self.context.extras.get("svc_converter_factory"),
            input_device=self._device_choice(self.input_combo),
            output_device=self._device_choice(self.output_combo),
            samplerate=devices.sample_rate,
            device_blocksize=devices.block_size,
        )
        worker.model_loaded.connect(self._on_model_loaded)
        worker.model_failed.connect(self._on_model_failed)
        worker.realtime_changed.connect(self._on_realtime_changed)
        worker.stats.connect(self._on_stats)
        worker.job_finished.connect(self._on_job_finished)
        worker.job_failed.connect(self._on_job_failed)
        worker.job_cancelled.connect(self._on_job_cancelled)
        worker.progress.connect(self._on_progress)
        worker.error.connect(self._on_worker_error)
        worker.warning.connect(self._on_worker_warning)
        worker.start()
        self._worker = worker
        return worker

    # Worker signals reach the dock through slots of the dock itself (a QObject on the UI thread),
    # so that Qt queues them here; a plain function would run on the worker's thread.
    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # Job errors arrive through job_failed and realtime errors through realtime_changed as well.
        if not self._jobs and not self._live and not self._starting:
            self.show_message(_strip_source(message), "error", notify=False)

    @Slot(str)
    def _on_worker_warning(self, message: str) -> None:
        self.show_message(_strip_source(message), "warning", notify=False)

    # ---- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the live conversion, cancel work and join the worker's thread (the window is closing)."""
        if self._closing:
            return
        self._closing = True
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._save_settings()
        worker, self._worker = self._worker, None
        self._live = False
        if worker is not None:
            worker.stop()
        self._jobs.clear()

    def sizeHint(self) -> QSize:
        return QSize(820, 660)

    def minimumSizeHint(self) -> QSize:
        return QSize(340, 300)


def live_text(stats: dict[str, Any]) -> str:
    """"Inference 14 ms per 250 ms block · latency 330 ms (algorithmic 300 ms) · 0.06x real time"."""
    parts = []
    if "infer_ms" in stats:
        block = stats.get("block_ms")
        per = f" per {float(block):.0f} ms block" if block else ""
        parts.append(f"Inference {float(stats['infer_ms']):.0f} ms{per}")
    if "latency_ms" in stats:
        algo = stats.get("algorithmic_ms")
        extra = f" (algorithmic {float(algo):.0f} ms)" if algo is not None else ""
        parts.append(f"latency {float(stats['latency_ms']):.0f} ms{extra}")
    if "rtf" in stats:
        rtf = float(stats["rtf"])
        parts.append(f"{rtf:.2f}x real time" + (" — too slow, use longer blocks" if rtf > 1.0 else ""))
    if stats.get("dropped"):
        parts.append(f"{int(stats['dropped'])} blocks dropped")
    return " · ".join(parts) or "Converting…"


def _describe_voice(info: dict[str, Any]) -> str:
    if info.get("dsp") or not info.get("model"):
        return "Pitch and formant shift on the CPU; no model file or download needed."
    kind = str(info.get("kind", ""))
    names = {
        "sovits-4.0": "so-vits-svc 4.0",
        "sovits-4.1": "so-vits-svc 4.1",
        "rvc-v1": "RVC v1",
        "rvc-v2": "RVC v2",
    }
    parts = [names.get(kind, kind or "Model")]
    rate = int(info.get("sample_rate", 0) or 0)
    if rate:
        parts.append(f"{rate / 1000:g} kHz")
    speakers = info.get("speakers") or {}
    if len(speakers) > 1:
        parts.append(f"{len(speakers)} speakers")
    if info.get("f0") is False:
        parts.append("no pitch input")
    return " · ".join(parts)


def _describe_pending(model: str) -> str:
    if not model:
        return "Pitch and formant shift on the CPU; no model file or download needed."
    return f"{_model_item_label(model)}: loads when you start."


def _model_item_label(model: str) -> str:
    options = VoiceConversionOptions(model=model)
    return model_label(options)


def _is_voice(model: Any) -> bool:
    """An imported so-vits-svc or RVC voice (a .pth, or a folder with one), not a content encoder."""
    names = [Path(f.name).name.lower() for f in model.files]
    return any(n.endswith((".pth", ".pt", ".safetensors")) and not n.startswith("pytorch_model") for n in names)


def _looks_like_cable(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in ("cable", "blackhole", "voicemeeter", "loopback", "virtual", "null"))


def _semitones(v: float) -> str:
    return f"{v:+g} st" if v else "0 st"


def _ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def _db(v: float) -> str:
    return f"{v:+g} dB" if v else "0 dB"


def _set_checked(button: Any, on: bool) -> None:
    if button.isChecked() != on:
        button.blockSignals(True)
        button.setChecked(on)
        button.blockSignals(False)


def _strip_source(message: str) -> str:
    """Worker errors arrive as "Voice conversion: <sentence>"; the dock shows the sentence."""
    for prefix in (f"{SOURCE} could not start: ", f"{SOURCE}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
