"""The Devices dialog: choose the camera, microphone and speaker, with live previews.

The camera may be a video file and the microphone a sound file (WAV, FLAC, OGG...: "File…" beside
the microphone list), played in a loop at real-time pace like the device they stand in for; the
file's path is what the settings keep.

The camera preview runs in a :class:`~workers.media.worker.CameraWorker`, the microphone level in
a :class:`~workers.media.worker.MicrophoneWorker`, and the speaker test in a
:class:`~workers.media.worker.TonePlayer`; closing the dialog (OK, Cancel or the window button)
stops them, joins their threads and releases the devices. OK writes the choices into
``settings.devices``; saving the settings is left to the caller.

Devices are built by factories that tests (and a machine without hardware) can replace:

- ``camera_factory(spec, width, height, fps) -> FrameSource``
- ``microphone_factory(name, samplerate, blocksize) -> AudioSource``
- ``output_factory(name, samplerate) -> AudioSink``
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.widgets.level_meter import LevelMeter
from snowai_studio.widgets.video_view import VideoView
from workers.base import Worker
from workers.errors import UserError
from workers.media.audio import AudioOutput, AudioSink, AudioSource
from workers.media.camera import TEST_PATTERN, FrameInfo, FrameSource, make_frame_source, parse_camera_spec
from workers.media.devices import DeviceReport, scan_devices
from workers.media.microphone import SOUND_FILE_FILTER, check_sound_file, is_sound_file_choice, make_microphone
from workers.media.worker import CameraWorker, MicrophoneWorker, TonePlayer
from workers.settings import Settings

log = logging.getLogger(__name__)

CameraFactory = Callable[[str, int, int, int], FrameSource]
MicrophoneFactory = Callable[[str | None, int | None, int], AudioSource]
OutputFactory = Callable[[str | None, int | None], AudioSink]

#: Combo data of the "Video file…" entry.
VIDEO_FILE_ITEM = "<video-file>"
#: Combo data of a "No microphone" / "No speaker" entry.
UNAVAILABLE_ITEM = "<unavailable>"
#: Combo data of the "System default" entry (stored as None in the settings).
DEFAULT_ITEM = "<default>"

RESOLUTIONS = [(640, 480), (1280, 720), (1920, 1080)]
FRAME_RATES = [15, 24, 25, 30, 60]
SAMPLE_RATES = [16000, 22050, 32000, 44100, 48000]
BLOCK_SIZES = [256, 512, 1024, 2048, 4096]
VIDEO_FILTER = "Videos (*.mp4 *.mkv *.mov *.avi *.webm *.m4v *.wmv *.mpg *.mpeg);;All files (*)"


def default_camera_factory(spec: str, width: int, height: int, fps: int) -> FrameSource:
    return make_frame_source(spec, width, height, fps)


def default_microphone_factory(name: str | None, samplerate: int | None, blocksize: int) -> AudioSource:
    """A microphone by device name (None: the default), or a sound file played like one."""
    return make_microphone(name, samplerate, blocksize, channels=1)


def default_output_factory(name: str | None, samplerate: int | None) -> AudioSink:
    return AudioOutput(name, samplerate, 1024, channels=1)


class DevicesDialog(QDialog):
    """Camera, microphone and speaker choices with a live preview of each."""

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        camera_factory: CameraFactory | None = None,
        microphone_factory: MicrophoneFactory | None = None,
        output_factory: OutputFactory | None = None,
        devices: DeviceReport | None = None,
        autostart: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Devices")
        self.settings = settings
        self.camera_factory: CameraFactory = camera_factory or default_camera_factory
        self._custom_camera_factory = camera_factory is not None
        self.microphone_factory: MicrophoneFactory = microphone_factory or default_microphone_factory
        self.output_factory: OutputFactory = output_factory or default_output_factory
        self.report = devices if devices is not None else scan_devices()
        self.autostart = autostart
        self.camera_worker: CameraWorker | None = None
        self.microphone_worker: MicrophoneWorker | None = None
        self.tone_player: TonePlayer | None = None
        self._retired: list[Worker] = []
        self._started = False
        self._camera_index = 0

        layout = QVBoxLayout(self)
        layout.addWidget(self._build_camera_group())
        layout.addWidget(self._build_microphone_group())
        layout.addWidget(self._build_speaker_group())
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._fill_choices()
        self.resize(640, 720)

    # ---- building -----------------------------------------------------------------------------------
    def _build_camera_group(self) -> QGroupBox:
        box = QGroupBox("Camera")
        form = QFormLayout()
        self.camera_combo = QComboBox()
        self.camera_combo.setObjectName("camera_combo")
        self.resolution_combo = QComboBox()
        self.fps_combo = QComboBox()
        row = QHBoxLayout()
        row.addWidget(self.resolution_combo)
        row.addWidget(self.fps_combo)
        form.addRow("Source", self.camera_combo)
        form.addRow("Resolution", row)
        self.camera_notice = _notice_label()
        self.camera_status = _status_label()
        self.preview = VideoView(placeholder="Starting the preview…")
        self.preview.setMinimumSize(320, 180)
        outer = QVBoxLayout(box)
        outer.addLayout(form)
        outer.addWidget(self.camera_notice)
        outer.addWidget(self.preview, 1)
        outer.addWidget(self.camera_status)
        return box

    def _build_microphone_group(self) -> QGroupBox:
        box = QGroupBox("Microphone")
        form = QFormLayout(box)
        self.microphone_combo = QComboBox()
        self.microphone_combo.setObjectName("microphone_combo")
        self.microphone_file_button = QPushButton("File…")
        self.microphone_file_button.setObjectName("microphone_file_button")
        self.microphone_file_button.setToolTip("Play a sound file (WAV, FLAC, OGG…) as the microphone, in a loop")
        self.microphone_file_button.clicked.connect(self.choose_sound_file)
        device_row = QHBoxLayout()
        device_row.addWidget(self.microphone_combo, 1)
        device_row.addWidget(self.microphone_file_button)
        self.sample_rate_combo = QComboBox()
        self.block_size_combo = QComboBox()
        row = QHBoxLayout()
        row.addWidget(self.sample_rate_combo)
        row.addWidget(QLabel("block"))
        row.addWidget(self.block_size_combo)
        self.level_meter = LevelMeter()
        self.microphone_notice = _notice_label()
        self.microphone_status = _status_label()
        form.addRow("Device", device_row)
        form.addRow("Sample rate", row)
        form.addRow("Level", self.level_meter)
        form.addRow(self.microphone_notice)
        form.addRow(self.microphone_status)
        return box

    def _build_speaker_group(self) -> QGroupBox:
        box = QGroupBox("Speaker")
        form = QFormLayout(box)
        self.speaker_combo = QComboBox()
        self.tone_button = QPushButton("Play test tone")
        self.tone_button.clicked.connect(self.play_test_tone)
        row = QHBoxLayout()
        row.addWidget(self.speaker_combo, 1)
        row.addWidget(self.tone_button)
        self.speaker_notice = _notice_label()
        self.speaker_status = _status_label()
        form.addRow("Device", row)
        form.addRow(self.speaker_notice)
        form.addRow(self.speaker_status)
        return box

    def _fill_choices(self) -> None:
        dev = self.settings.devices
        report = self.report

        # Cameras: found devices, the saved choice if it is elsewhere, the test pattern, a file.
        combo = self.camera_combo
        for cam in report.cameras:
            combo.addItem(cam.name, cam.spec)
        saved = (dev.camera or "").strip()
        if saved and combo.findData(saved) < 0 and saved != TEST_PATTERN:
            parsed = parse_camera_spec(saved)
            if isinstance(parsed, int):
                combo.addItem(f"Camera {parsed} (not connected)", str(parsed))
            else:
                combo.addItem(f"File: {Path(parsed).name}", saved)
        combo.addItem("Test pattern", TEST_PATTERN)
        combo.addItem("Video file…", VIDEO_FILE_ITEM)
        index = combo.findData(saved) if saved else -1
        combo.setCurrentIndex(index if index >= 0 else 0)
        self._camera_index = combo.currentIndex()
        if not report.cameras:
            self.camera_notice.setText(
                "No camera was found. Connect a webcam and reopen Devices, or use a video file or the test pattern."
            )
            self.camera_notice.show()

        for w, h in _with_current(RESOLUTIONS, (dev.camera_width, dev.camera_height)):
            self.resolution_combo.addItem(f"{w} × {h}", f"{w}x{h}")
        self.resolution_combo.setCurrentIndex(self.resolution_combo.findData(f"{dev.camera_width}x{dev.camera_height}"))
        for fps in _with_current(FRAME_RATES, dev.camera_fps):
            self.fps_combo.addItem(f"{fps} fps", fps)
        self.fps_combo.setCurrentIndex(self.fps_combo.findData(dev.camera_fps))

        # Sound.
        saved_file = dev.microphone if is_sound_file_choice(dev.microphone) else None
        self._fill_audio_combo(
            self.microphone_combo, report.microphones, None if saved_file else dev.microphone, "microphone"
        )
        if saved_file:
            self._add_sound_file(saved_file)
        self._fill_audio_combo(self.speaker_combo, report.speakers, dev.speaker, "speaker")
        self.sample_rate_combo.addItem("Device default", None)
        for rate in _with_current(SAMPLE_RATES, dev.sample_rate):
            if rate is not None:
                self.sample_rate_combo.addItem(f"{rate} Hz", rate)
        self.sample_rate_combo.setCurrentIndex(max(0, self.sample_rate_combo.findData(dev.sample_rate)))
        for size in _with_current(BLOCK_SIZES, dev.block_size):
            self.block_size_combo.addItem(str(size), size)
        self.block_size_combo.setCurrentIndex(self.block_size_combo.findData(dev.block_size))

        if not report.microphones:
            self.microphone_notice.setText(
                _missing_sound_text(report, "microphone")
                + " Or choose a sound file with File… to play as the microphone."
            )
            self.microphone_notice.show()
        if not report.speakers:
            self.speaker_notice.setText(_missing_sound_text(report, "speaker"))
            self.speaker_notice.show()
            self.speaker_combo.setEnabled(False)
            self.tone_button.setEnabled(False)
        self._update_microphone_controls()

        self.camera_combo.currentIndexChanged.connect(self._camera_choice_changed)
        self.resolution_combo.currentIndexChanged.connect(self.restart_camera)
        self.fps_combo.currentIndexChanged.connect(self.restart_camera)
        self.microphone_combo.currentIndexChanged.connect(self.restart_microphone)
        self.sample_rate_combo.currentIndexChanged.connect(self.restart_microphone)
        self.block_size_combo.currentIndexChanged.connect(self.restart_microphone)

    def _fill_audio_combo(self, combo: QComboBox, devices: list[Any], saved: str | None, what: str) -> None:
        if not devices:
            combo.addItem(f"No {what}", UNAVAILABLE_ITEM)
            return
        combo.addItem("System default", DEFAULT_ITEM)
        for d in devices:
            label = f"{d.name} ({d.hostapi})" if d.hostapi else d.name
            if d.is_default:
                label += " — default"
            combo.addItem(label, d.name)
        if saved and combo.findData(saved) < 0:
            combo.addItem(f"{saved} (not connected)", saved)
        index = combo.findData(saved) if saved else 0
        combo.setCurrentIndex(max(0, index))

    # ---- current choices ----------------------------------------------------------------------------
    def camera_spec(self) -> str:
        data = self.camera_combo.currentData()
        return str(data) if data not in (None, VIDEO_FILE_ITEM) else self.settings.devices.camera

    def camera_size(self) -> tuple[int, int]:
        w, h = str(self.resolution_combo.currentData()).split("x")
        return int(w), int(h)

    def camera_fps(self) -> int:
        return int(self.fps_combo.currentData())

    def microphone_name(self) -> str | None:
        """The chosen device's name (None: the system default) or the chosen sound file's path."""
        saved = self.settings.devices.microphone
        if self.microphone_combo.currentData() == UNAVAILABLE_ITEM and is_sound_file_choice(saved):
            return None  # the sound file was set aside and there is no device
        return _audio_choice(self.microphone_combo, saved)

    def speaker_name(self) -> str | None:
        return _audio_choice(self.speaker_combo, self.settings.devices.speaker)

    def sample_rate(self) -> int | None:
        data = self.sample_rate_combo.currentData()
        return int(data) if data is not None else None

    def block_size(self) -> int:
        return int(self.block_size_combo.currentData())

    def microphone_available(self) -> bool:
        """A microphone device or a sound file is chosen."""
        return self.microphone_combo.currentData() != UNAVAILABLE_ITEM

    def microphone_is_file(self) -> bool:
        return is_sound_file_choice(self.microphone_combo.currentData())

    def speaker_available(self) -> bool:
        return self.speaker_combo.currentData() != UNAVAILABLE_ITEM

    # ---- video file -----------------------------------------------------------------------------------
    def ask_video_file(self) -> str | None:
        """Ask the user for a video file to use as the camera (None if cancelled)."""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a video file to use as the camera", "", VIDEO_FILTER)
        return path or None

    def use_video_file(self, path: str | Path) -> None:
        """Add a video file to the camera choices, select it and preview it."""
        spec = str(path)
        index = self.camera_combo.findData(spec)
        if index < 0:
            index = self.camera_combo.findData(TEST_PATTERN)
            self.camera_combo.insertItem(index, f"File: {Path(spec).name}", spec)
        self.camera_combo.setCurrentIndex(index)  # restarts the preview through the signal

    # ---- sound file as the microphone --------------------------------------------------------------------
    def ask_sound_file(self) -> str | None:
        """Ask the user for a sound file to play as the microphone (None if cancelled)."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a sound file to play as the microphone", "", SOUND_FILE_FILTER
        )
        return path or None

    @Slot()
    def choose_sound_file(self) -> bool:
        """The "File…" button: ask for a sound file and use it; False when cancelled or unusable."""
        path = self.ask_sound_file()
        return self.use_sound_file(path) if path else False

    def use_sound_file(self, path: str | Path) -> bool:
        """Check a sound file and, when it plays, add it to the microphone choices, select it and show
        its level. A file that cannot be played is one sentence under the list (the choice stays)."""
        spec = str(Path(path).expanduser().absolute())
        try:
            check_sound_file(spec)
        except UserError as exc:
            self.microphone_status.setText(str(exc))
            return False
        index = self._add_sound_file(spec)
        if self.microphone_combo.currentIndex() == index:
            self.restart_microphone()
        else:
            self.microphone_combo.setCurrentIndex(index)  # restarts the level through the signal
        self._update_microphone_controls()
        return True

    def _add_sound_file(self, spec: str) -> int:
        """The combo index of a sound file choice (added, and selected when it is new)."""
        combo = self.microphone_combo
        index = combo.findData(spec)
        if index >= 0:
            return index
        label = f"File: {Path(spec).name}"
        if not Path(spec).is_file():
            label += " (missing)"
        combo.blockSignals(True)
        combo.addItem(label, spec)
        index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        self._update_microphone_controls()
        return index

    def _update_microphone_controls(self) -> None:
        """The list is usable when it offers a choice (devices, or a sound file); the rate and block
        size whenever something records or plays."""
        combo = self.microphone_combo
        offers = any(combo.itemData(i) != UNAVAILABLE_ITEM for i in range(combo.count()))
        combo.setEnabled(offers)
        self.level_meter.setEnabled(self.microphone_available())
        sound = offers or bool(self.report.speakers)
        self.sample_rate_combo.setEnabled(sound)
        self.block_size_combo.setEnabled(sound)

    @Slot(int)
    def _camera_choice_changed(self, index: int) -> None:
        if self.camera_combo.itemData(index) == VIDEO_FILE_ITEM:
            path = self.ask_video_file()
            if path:
                self.use_video_file(path)
            else:
                self.camera_combo.blockSignals(True)
                self.camera_combo.setCurrentIndex(self._camera_index)
                self.camera_combo.blockSignals(False)
            return
        self._camera_index = index
        self.restart_camera()

    # ---- previews -----------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.autostart and not self._started:
            try:
                self.start_previews()
            except Exception as exc:  # a preview problem must never take the dialog down
                log.exception("Starting the device previews failed")
                self.camera_status.setText(f"The preview could not start: {exc}")

    def start_previews(self) -> None:
        self._started = True
        self.restart_camera()
        self.restart_microphone()

    @Slot()
    def restart_camera(self) -> None:
        self._stop_camera()
        if not self._started:
            return
        spec, (w, h), fps = self.camera_spec(), self.camera_size(), self.camera_fps()
        if self._camera_missing(spec):
            # Opening it would only fail: say so here instead of raising an error.
            self.preview.clear()
            self.preview.set_overlay("")
            self.preview.set_placeholder("Camera not connected")
            self.camera_status.setText("Choose the test pattern or a video file to see a preview.")
            return
        factory = self.camera_factory

        def make_source() -> FrameSource:
            return factory(spec, w, h, fps)

        worker = CameraWorker(make_source)
        worker.result_ready.connect(self._show_frame)
        worker.opened.connect(self._camera_opened)
        worker.stats.connect(self._camera_stats)
        worker.error.connect(self._camera_error)
        worker.ended.connect(self._camera_ended)
        self.camera_worker = worker
        self.preview.clear()
        self.preview.set_overlay("")
        self.preview.set_placeholder("Opening the camera…")
        self.camera_status.setText("")
        worker.start(loop=True)

    def _camera_missing(self, spec: str) -> bool:
        """An index camera that the scan did not find (a saved choice from another session)."""
        if self._custom_camera_factory:
            return False
        parsed = parse_camera_spec(spec) if spec else None
        return isinstance(parsed, int) and all(str(cam.spec) != str(parsed) for cam in self.report.cameras)

    @Slot()
    def restart_microphone(self) -> None:
        self._stop_microphone()
        self.level_meter.reset()
        self.level_meter.setEnabled(self.microphone_available())
        if not self._started or not self.microphone_available():
            return
        name, rate, block = self.microphone_name(), self.sample_rate(), self.block_size()
        factory = self.microphone_factory

        def make_source() -> AudioSource:
            return factory(name, rate, block)

        worker = MicrophoneWorker(make_source, forward=False)
        worker.result_ready.connect(self._show_level)
        worker.opened.connect(self._microphone_opened)
        worker.error.connect(self._microphone_error)
        worker.ended.connect(self._microphone_ended)
        self.microphone_worker = worker
        self.microphone_status.setText("Opening the microphone…")
        worker.start(loop=True)

    @Slot()
    def play_test_tone(self) -> None:
        if not self.speaker_available():
            return
        if self.tone_player is None:
            player = TonePlayer()
            player.job_finished.connect(self._tone_finished)
            player.job_failed.connect(self._tone_failed)
            player.start()
            self.tone_player = player
        name, rate, factory = self.speaker_name(), self.sample_rate(), self.output_factory

        def make_sink() -> AudioSink:
            return factory(name, rate)

        self.tone_button.setEnabled(False)
        self.speaker_status.setText(f"Playing a 440 Hz tone on {name or 'the default speaker'}…")
        self.tone_player.play(1.0, 440.0, output_factory=make_sink)

    # ---- worker signals (UI thread) ----------------------------------------------------------------
    def _is_current(self, worker: Worker | None) -> bool:
        return worker is not None and self.sender() is worker

    @Slot()
    def _show_frame(self) -> None:
        worker = self.camera_worker
        if not self._is_current(worker):
            return
        assert worker is not None
        result = worker.take_result()
        if result is not None:
            self.preview.show_frame(result.payload)

    @Slot(object)
    def _camera_opened(self, info: FrameInfo) -> None:
        if not self._is_current(self.camera_worker):
            return
        text = f"{info.label}: {info.width} × {info.height} at {info.fps:.0f} fps"
        w, h = self.camera_size()
        if info.label.startswith("Camera") and (info.width, info.height) != (w, h):
            text += f" (the camera does not offer {w} × {h})"
        self.camera_status.setText(text)

    @Slot(dict)
    def _camera_stats(self, stats: dict[str, Any]) -> None:
        if not self._is_current(self.camera_worker):
            return
        self.preview.set_overlay(f"{stats.get('fps', 0.0):.1f} fps")

    @Slot(str)
    def _camera_error(self, message: str) -> None:
        if not self._is_current(self.camera_worker):
            return
        self.preview.clear()
        self.preview.set_overlay("")
        self.preview.set_placeholder("No preview")
        self.camera_status.setText(message)

    @Slot()
    def _camera_ended(self) -> None:
        if self._is_current(self.camera_worker):
            self.camera_status.setText("The video ended.")

    @Slot()
    def _show_level(self) -> None:
        worker = self.microphone_worker
        if not self._is_current(worker):
            return
        assert worker is not None
        result = worker.take_result()
        if result is not None:
            self.level_meter.set_level(float(result.payload))

    @Slot(int, int)
    def _microphone_opened(self, samplerate: int, channels: int) -> None:
        if not self._is_current(self.microphone_worker):
            return
        if self.microphone_is_file():
            name = Path(str(self.microphone_combo.currentData())).name
            self.microphone_status.setText(f"{name}: playing in a loop at {samplerate} Hz as the microphone.")
        else:
            name = self.microphone_name() or "The default microphone"
            self.microphone_status.setText(f"{name}: listening at {samplerate} Hz. Speak to see the level move.")

    @Slot(str)
    def _microphone_error(self, message: str) -> None:
        if self._is_current(self.microphone_worker):
            self.level_meter.reset()
            self.microphone_status.setText(message)

    @Slot()
    def _microphone_ended(self) -> None:
        if self._is_current(self.microphone_worker):
            self.microphone_status.setText("The recording ended.")

    @Slot(int, object)
    def _tone_finished(self, job_id: int, frames: object) -> None:
        self.tone_button.setEnabled(self.speaker_available())
        self.speaker_status.setText(
            "Test tone played. If you heard nothing, check the volume or choose another speaker."
        )

    @Slot(int, str)
    def _tone_failed(self, job_id: int, message: str) -> None:
        self.tone_button.setEnabled(self.speaker_available())
        self.speaker_status.setText(message)

    # ---- closing ---------------------------------------------------------------------------------------
    def _retire(self, worker: Worker | None) -> None:
        if worker is None:
            return
        if not worker.stop():
            log.warning("%s did not stop in time", worker.name)
        self._retired.append(worker)  # kept until the dialog closes: queued signals may still arrive

    def _stop_camera(self) -> None:
        worker, self.camera_worker = self.camera_worker, None
        self._retire(worker)

    def _stop_microphone(self) -> None:
        worker, self.microphone_worker = self.microphone_worker, None
        self._retire(worker)

    def stop_previews(self) -> None:
        """Stop every worker of the dialog, join its thread and release its device."""
        self._stop_camera()
        self._stop_microphone()
        player, self.tone_player = self.tone_player, None
        self._retire(player)
        self._started = False

    def apply(self) -> None:
        """Write the choices into ``settings.devices`` (the caller saves the settings)."""
        dev = self.settings.devices
        dev.camera = self.camera_spec()
        dev.camera_width, dev.camera_height = self.camera_size()
        dev.camera_fps = self.camera_fps()
        dev.microphone = self.microphone_name()
        dev.speaker = self.speaker_name()
        dev.sample_rate = self.sample_rate()
        dev.block_size = self.block_size()

    def accept(self) -> None:
        self.apply()
        super().accept()

    def done(self, result: int) -> None:
        self.stop_previews()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_previews()
        super().closeEvent(event)


def _notice_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setObjectName("notice")
    label.setStyleSheet("QLabel#notice { color: #b36b00; }")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def _status_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _with_current(options: list[Any], current: Any) -> list[Any]:
    if current is None or current in options:
        return list(options)
    return sorted([*options, current])


def _audio_choice(combo: QComboBox, saved: str | None) -> str | None:
    data = combo.currentData()
    if data == UNAVAILABLE_ITEM:
        return saved  # nothing to choose from: keep what was saved for when the device returns
    if data in (None, DEFAULT_ITEM):
        return None
    return str(data)


def _missing_sound_text(report: DeviceReport, what: str) -> str:
    if not report.audio.available and not report.microphones and not report.speakers:
        return report.audio.message
    return f"No {what} was found. Connect one and reopen Devices."
