"""The voice-conversion page: choose a voice, convert the microphone live, convert recordings.

The middle shows the live view (levels, pitch, latency, Start/Stop, Retry) and the recordings to
convert with the job runner under them; the action bar has Open recordings, Convert and Live; the
inspector holds the voice model, pitch and voice controls, the live settings, the output and the
training of a new voice from recordings (see :mod:`~snowai_studio.voice_conversion.train_control`).

Everything heavy runs off the UI thread in a :class:`~workers.voice_conversion.worker.VoiceConversionWorker`
(built when first needed): it loads the voice (the built-in voice changer, or a so-vits-svc or RVC
checkpoint), runs the live conversion and converts files as jobs. The page talks to it through
signals; every parameter applies live. A problem is said once: a device or the voice stopping the
live conversion on the live panel's problem bar, anything else on the message line under the files,
and each reaches the notifications through logging.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, QTimer, Signal, Slot
from PySide6.QtWidgets import QBoxLayout, QWidget

from snowai_studio.context import StudioContext
from snowai_studio.panels.job_runner import JobRunner
from snowai_studio.panels.tool_page import ToolPage
from snowai_studio.voice_conversion import prefs
from snowai_studio.voice_conversion.file_list import FilesPanel
from snowai_studio.voice_conversion.inspector_sections import (
    LiveSettings,
    OutputSettings,
    PitchControls,
    VoiceModelSection,
)
from snowai_studio.voice_conversion.jobs import FileJobs
from snowai_studio.voice_conversion.live import LiveControl
from snowai_studio.voice_conversion.live_view import LiveView
from snowai_studio.voice_conversion.texts import SOURCE, strip_source
from snowai_studio.voice_conversion.train_control import TrainControl
from snowai_studio.voice_conversion.train_section import TrainSection
from snowai_studio.voice_conversion.voices import VoiceControl
from workers.errors import describe_exception
from workers.voice_conversion.options import PRESETS, VoiceConversionOptions
from workers.voice_conversion.worker import AUDIO_SUFFIXES, coerce_option, copy_options, model_label

log = logging.getLogger(__name__)

#: From this width of the middle on, the live view and the recordings sit side by side.
WIDE_LAYOUT = 1100


class VoiceConversionPage(ToolPage):
    """Voice conversion for a creator: the voice, pitch, the live conversion and files."""

    tool_id = "voice_conversion"
    title = "Voice conversion"

    #: Live conversion started (True) or stopped (False).
    realtime_toggled = Signal(bool)
    #: A job of the page ended: its kind ("files") and whether it succeeded.
    job_done = Signal(str, bool)
    #: A voice is loaded and in use (the worker's description of it).
    model_changed = Signal(dict)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.options = self._initial_options()
        self.last_message = ""
        self.last_level = "info"
        self.last_report: Any = None
        self.last_stats: dict[str, Any] = {}
        self.closing = False
        self._worker: Any = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(400)
        self._save_timer.timeout.connect(self._save_settings)
        self._build()
        self.live = LiveControl(self)
        self.jobs = FileJobs(self)
        self.voices = VoiceControl(self)
        self.training = TrainControl(self, self.train_section)
        self._connect()
        self.live.fill_devices()
        self.voices.refresh()
        self.voices.show()
        self.live.set_available(True)
        self.refresh_devices()  # finds the devices and whether there is a microphone, off the UI thread
        self.jobs.update()
        self.show_message("Choose a voice, then press Start live to convert your microphone, or add recordings.")

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
    def _build(self) -> None:
        self.open_action = self.action(
            "Open recordings…", lambda: self.add_files(), icon_name="open", tip="Add recordings to convert (Ctrl+O)"
        )
        self.convert_action = self.action(
            "Convert", lambda: self.convert(), icon_name="voice_conversion", shortcut="Ctrl+Return", primary=True,
            tip="Convert every recording in the list with the voice and pitch on the right",
        )
        self.live_action = self.action(
            "Start live", icon_name="live", shortcut="Ctrl+L", checkable=True,
            tip="Convert the microphone live to the output",
        )
        self.add_action_button(self.open_action)
        self.convert_button = self.add_action_button(self.convert_action, primary=True)
        self.live_button = self.add_action_button(self.live_action)

        self.live_view = LiveView()
        self.files = FilesPanel(AUDIO_SUFFIXES)
        self.body = QWidget()
        self.body.setObjectName("svcBody")
        self._columns = QBoxLayout(QBoxLayout.Direction.TopToBottom, self.body)
        self._columns.setContentsMargins(0, 0, 0, 0)
        self._columns.setSpacing(8)
        self._columns.addWidget(self.live_view, 0)
        self._columns.addWidget(self.files, 1)
        self.set_preview(self.body)
        self.job_runner = JobRunner("svcJob")
        self.add_below_preview(self.job_runner)
        self.center.installEventFilter(self)

        self.voice = VoiceModelSection(self.options)
        self.pitch_controls = PitchControls(self.options)
        self.live_settings = LiveSettings(self.options)
        self.output_settings = OutputSettings(
            prefs.load("output"), prefs.load("format", "wav"), prefs.load("channels", "input")
        )
        self.inspector.add_section("Voice model", self.voice, key="voice")
        self.inspector.add_section("Pitch and voice", self.pitch_controls, key="pitch")
        self.inspector.add_section("Live", self.live_settings, key="live")
        self.inspector.add_section("Output", self.output_settings, key="output")
        self.train_section = TrainSection()
        self.inspector.add_section("Train a voice", self.train_section, key="train", expanded=False)

        # The widgets tests and scripts reach by their old names.
        v, p, s = self.voice, self.pitch_controls, self.live_settings
        self.model_combo, self.model_info_label, self.index_row = v.picker.combo, v.info_label, v.index
        self.index_label, self.clear_index_button, self.index_ratio = v.index.label, v.index.clear_button, v.index_ratio
        self.pitch, self.formant, self.f0_combo, self.auto_pitch = p.pitch, p.formant, p.f0_combo, p.auto_pitch
        self.input_combo, self.output_combo, self.cable_hint = s.input_combo, s.output_combo, s.cable_hint
        self.preset_combo, self.block, self.crossfade = s.preset_combo, s.block, s.crossfade
        self.context_slider, self.silence = s.context_slider, s.silence
        self.input_gain, self.output_gain = s.input_gain, s.output_gain
        lv = self.live_view
        self.start_button = self.live_button
        self.stats_label, self.live_problem = lv.panel.stats_label, lv.panel.problem
        self.in_meter, self.out_meter, self.passthrough = lv.in_meter, lv.out_meter, lv.passthrough
        self.file_list, self.format_combo = self.files.file_list, self.output_settings.panel.format_combo
        self.progress_box, self.cancel_button = self.job_runner.progress_row, self.job_runner.cancel_button
        self.message_line = self.job_runner.result
        self.passthrough.setChecked(self.options.passthrough)

    def _connect(self) -> None:
        p, s = self.pitch_controls, self.live_settings
        self.live_action.triggered.connect(self.live.toggle)
        p.pitch.value_changed.connect(self._on_pitch)
        p.formant.value_changed.connect(lambda x: self.set_option("formant", x))
        p.f0_combo.activated.connect(lambda i: self.set_option("f0_method", p.f0_combo.itemData(i)))
        p.auto_pitch.toggled.connect(lambda on: self.set_option("auto_pitch", on))
        s.refresh_requested.connect(self.refresh_devices)
        s.input_combo.activated.connect(lambda _i: self.live.on_device_chosen("input"))
        s.output_combo.activated.connect(lambda _i: self.live.on_device_chosen("output"))
        s.preset_combo.activated.connect(self._on_preset_chosen)
        for name, slider in (("block_seconds", s.block), ("crossfade_seconds", s.crossfade),
                             ("extra_seconds", s.context_slider)):
            slider.value_changed.connect(lambda x, name=name: self._set_layout(name, x))
        s.engine_combo.activated.connect(lambda i: self.set_option("engine", s.engine_combo.itemData(i)))
        s.silence.value_changed.connect(lambda x: self.set_option("silence_db", x))
        s.input_gain.value_changed.connect(lambda x: self.set_option("input_gain_db", x))
        s.output_gain.value_changed.connect(lambda x: self.set_option("output_gain_db", x))
        self.passthrough.toggled.connect(lambda on: self.set_option("passthrough", on))
        s.show_layout(self.options)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.center and event.type() == QEvent.Type.Resize:
            self._arrange(self.center.width())
        return super().eventFilter(watched, event)

    def _arrange(self, width: int) -> None:
        """Live view and recordings side by side when the middle is wide, one above the other when not."""
        wide = width >= WIDE_LAYOUT
        if self.wide_layout != wide:
            self._columns.setDirection(QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom)
            self._columns.setStretch(0, 1 if wide else 0)
            self._columns.setStretch(1, 1)
            self.live_view.set_roomy(wide)

    @property
    def wide_layout(self) -> bool:
        return self._columns.direction() == QBoxLayout.Direction.LeftToRight

    # ---- messages ------------------------------------------------------------------------------------------
    def note(self, text: str, level: str = "info") -> None:
        """Remember the page's latest sentence (shown where it belongs by the caller)."""
        self.last_message, self.last_level = text, level

    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications panel) unless the worker already reported them."""
        self.note(text, level)
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    # ---- settings -------------------------------------------------------------------------------------------
    def schedule_save(self) -> None:
        if not self.closing:
            self._save_timer.start()

    def _save_settings(self) -> None:
        settings = self.context.settings
        kept = copy_options(self.options)
        kept.model = self.active_model
        settings.set_options(kept)
        try:
            settings.save()
        except OSError as exc:
            self.show_message(describe_exception(exc, "The voice-conversion settings could not be saved"), "warning")

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
        self.schedule_save()

    def _on_pitch(self, value: float) -> None:
        self.set_option("pitch", value)
        self.live_view.show_pitch(self.options.pitch, model_label(self.options))

    def _set_layout(self, name: str, value: float) -> None:
        self.set_option(name, value)
        self.live_settings.show_layout(self.options)

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
        self.live_settings.show_layout(o)
        if self._worker is not None:
            self._worker.set_param("preset", key)
        self.schedule_save()

    # ---- voices (see voices.py) --------------------------------------------------------------------------------
    @property
    def model_info(self) -> dict[str, Any]:
        """The worker's description of the voice in use ({} until one is loaded)."""
        return self.voices.info

    @property
    def active_model(self) -> str:
        """The voice in use ("" for the built-in voice changer)."""
        return self.voices.active

    @property
    def pending_model(self) -> str | None:
        """The voice loading now (None when none is)."""
        return self.voices.pending

    @property
    def pending_index(self) -> str | None:
        return self.voices.pending_index

    def import_sovits(self, folder: str | Path | None = None) -> bool:
        """Use a so-vits-svc model folder (config.json and G_*.pth); asks for it when not given."""
        return self.voices.import_sovits(folder)

    def import_rvc(self, path: str | Path | None = None) -> bool:
        """Use an RVC model (.pth with its config inside); asks for it when not given."""
        return self.voices.import_rvc(path)

    def set_model(self, model: str) -> bool:
        """Load another voice ("" for the built-in voice changer); the current one stays in use until
        the new one is ready, and stays if it cannot be loaded."""
        return self.voices.set_model(model)

    def choose_index(self, path: str | Path | None = None) -> bool:
        """Use a feature index or cluster model; asks for it when not given."""
        return self.voices.choose_index(path)

    def set_index(self, path: str) -> None:
        """Use a feature index / cluster model ("" for none); the voice reloads with it."""
        self.voices.set_file("index", path)

    def choose_config(self, path: str | Path | None = None) -> bool:
        """Use another config.json for a so-vits-svc voice; asks for it when not given."""
        return self.voices.choose_config(path)

    # ---- what the window tells the page ---------------------------------------------------------------------
    def devices_changed(self) -> None:
        self.refresh_devices()

    def models_changed(self) -> None:
        self.voices.refresh()

    def model_imported(self, model_id: str) -> None:
        self.voices.imported(model_id)

    def use_recommended(self, model_ids: list[str]) -> None:
        """Content encoders and pitch trackers are picked per voice model: nothing to select."""
        self.models_changed()

    # ---- live and files (see live.py and jobs.py) -----------------------------------------------------------
    def refresh_devices(self) -> None:
        """List the microphones and outputs again and check that there is a microphone (off the UI thread)."""
        self.live.fill_devices()
        self.live.check_devices()

    def set_microphone_available(self, ok: bool, reason: str = "") -> None:
        """Without a microphone Start is disabled, and its tooltip and the live panel say why."""
        self.live.set_available(ok, reason)

    def start_live(self) -> bool:
        return self.live.start()

    def stop_live(self) -> None:
        self.live.stop()

    def retry_live(self) -> None:
        self.live.retry()

    @property
    def live_running(self) -> bool:
        return self.live.running

    def add_files(self, files: list[str | Path] | None = None) -> int:
        return self.jobs.add_files(files)

    def _clear_files(self) -> None:
        self.files.clear()

    def convert(self) -> int | None:
        return self.jobs.convert()

    def cancel(self) -> None:
        self.jobs.cancel()

    def set_output_folder(self, folder: Path | str | None) -> None:
        self.jobs.set_folder(folder)

    def choose_output_folder(self, folder: str | Path | None = None) -> bool:
        return self.output_settings.panel.folder_row.choose(str(folder) if folder else None) is not None

    @property
    def output_folder(self) -> Path | None:
        return self.jobs.folder

    def output_format(self) -> str:
        return self.output_settings.panel.format or "wav"

    # ---- the worker -------------------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        return self._worker

    def ensure_worker(self) -> Any:
        if self._worker is not None:
            return self._worker
        from workers.voice_conversion.worker import VoiceConversionWorker

        start_options = copy_options(self.options)
        start_options.model = self.active_model
        devices = self.context.settings.devices
        worker = VoiceConversionWorker(
            start_options,
            store=self.context.model_store,
            device=self.context.settings.compute,
            source_factory=self.live.make_source,
            sink_factory=self.live.make_sink,
            converter_factory=self.context.extras.get("svc_converter_factory"),
            input_device=self.live.device_choice(self.input_combo),
            output_device=self.live.device_choice(self.output_combo),
            samplerate=devices.sample_rate,
            device_blocksize=devices.block_size,
        )
        worker.model_loaded.connect(self.voices.on_loaded)
        worker.model_failed.connect(self.voices.on_failed)
        worker.realtime_changed.connect(self.live.on_realtime_changed)
        worker.stats.connect(self.live.on_stats)
        worker.job_finished.connect(self.jobs.on_finished)
        worker.job_failed.connect(self.jobs.on_failed)
        worker.job_cancelled.connect(self.jobs.on_cancelled)
        worker.progress.connect(self.jobs.on_progress)
        worker.error.connect(self._on_worker_error)
        worker.warning.connect(self._on_worker_warning)
        worker.start()
        self._worker = worker
        return worker

    # Worker signals reach the page through slots of QObjects on the UI thread, so that Qt queues them here.
    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # Job errors arrive through job_failed and realtime errors through realtime_changed as well.
        if not self.jobs.busy and not self.live.running and not self.live.starting:
            self.show_message(strip_source(message), "error", notify=False)

    @Slot(str)
    def _on_worker_warning(self, message: str) -> None:
        self.show_message(strip_source(message), "warning", notify=False)

    def shutdown(self) -> None:
        """Stop the live conversion, cancel work and join the worker's thread (the window is closing)."""
        if self.closing:
            return
        self.closing = True
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._save_settings()
        self.live.shutdown()
        self.training.shutdown()
        worker, self._worker = self._worker, None
        self.live.running = False
        if worker is not None:
            worker.stop()
        self.jobs.job_id = None

    def sizeHint(self) -> QSize:
        return QSize(1100, 680)
