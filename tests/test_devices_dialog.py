"""The Devices dialog with generated and file-backed devices, and on a machine without any."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile
from PySide6.QtCore import Qt

from snowai_studio.dialogs.devices_dialog import UNAVAILABLE_ITEM, VIDEO_FILE_ITEM, DevicesDialog
from workers.media.audio import AudioDevice, AudioStatus
from workers.media.camera import TEST_PATTERN
from workers.media.devices import CameraDevice, DeviceReport
from workers.media.fakes import GeneratedCamera, MemorySink, WavMicrophone
from workers.settings import Settings

FAKE_DEVICES = DeviceReport(
    cameras=[CameraDevice("0", "Fake webcam (/dev/video0)")],
    microphones=[AudioDevice("Fake mic", 0, 1, 16000.0, "ALSA", True)],
    speakers=[AudioDevice("Fake speaker", 1, 2, 48000.0, "ALSA", True)],
    audio=AudioStatus(True, "Sound is ready.", 1, 1),
)
NO_DEVICES = DeviceReport(
    audio=AudioStatus(
        False,
        "Sound is unavailable: the PortAudio library is not installed. Install it and restart the studio "
        "(Debian/Ubuntu: sudo apt install libportaudio2).",
    )
)


class Fakes:
    """Device factories for the dialog that record what they made."""

    def __init__(self, tone_wav: Path) -> None:
        self.tone_wav = tone_wav
        self.cameras: list[tuple[str, GeneratedCamera]] = []
        self.microphones: list[tuple[str | None, WavMicrophone]] = []
        self.sinks: list[tuple[str | None, MemorySink]] = []

    def camera(self, spec: str, width: int, height: int, fps: int) -> GeneratedCamera:
        cam = GeneratedCamera(width // 4, height // 4, min(fps, 30))
        self.cameras.append((spec, cam))
        return cam

    def microphone(self, name: str | None, samplerate: int | None, blocksize: int) -> WavMicrophone:
        mic = WavMicrophone(self.tone_wav, samplerate or 16000, blocksize, paced=True, loop=True)
        self.microphones.append((name, mic))
        return mic

    def output(self, name: str | None, samplerate: int | None) -> MemorySink:
        sink = MemorySink(samplerate or 48000, channels=2)
        self.sinks.append((name, sink))
        return sink

    def kwargs(self) -> dict[str, Any]:
        return {"camera_factory": self.camera, "microphone_factory": self.microphone, "output_factory": self.output}


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    rate = 16000
    t = np.arange(rate) / rate
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    return Fakes(path)


def open_dialog(qtbot: Any, settings: Settings, **kwargs: Any) -> DevicesDialog:
    dialog = DevicesDialog(settings, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_preview_level_meter_and_test_tone(qtbot: Any, fakes: Fakes) -> None:
    settings = Settings()
    settings.devices.camera_width, settings.devices.camera_height = 640, 480
    dialog = open_dialog(qtbot, settings, devices=FAKE_DEVICES, **fakes.kwargs())

    # camera preview
    qtbot.waitUntil(lambda: dialog.preview.frames_shown >= 5, timeout=5000)
    spec, cam = fakes.cameras[-1]
    assert spec == "0"
    frame = dialog.preview.frame
    assert frame is not None and frame.shape == (120, 160, 3)
    assert "160 × 120 at 30 fps" in dialog.camera_status.text()
    qtbot.waitUntil(lambda: "fps" in dialog.preview.overlay, timeout=3000)
    assert dialog.camera_notice.isHidden()

    # microphone level follows the tone (-9 dBFS RMS)
    qtbot.waitUntil(lambda: dialog.level_meter.updates >= 5, timeout=5000)
    assert dialog.level_meter.level == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1.0)
    assert dialog.level_meter.peak >= dialog.level_meter.level
    assert "listening at 16000 Hz" in dialog.microphone_status.text()
    assert fakes.microphones[-1][0] is None  # "System default"

    # test tone goes into the (fake) speaker
    dialog.speaker_combo.setCurrentIndex(dialog.speaker_combo.findData("Fake speaker"))
    qtbot.mouseClick(dialog.tone_button, Qt.MouseButton.LeftButton)
    assert not dialog.tone_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.tone_button.isEnabled(), timeout=5000)
    name, sink = fakes.sinks[-1]
    assert name == "Fake speaker"
    assert sink.frames == 48000 and sink.close_count == 1
    assert np.abs(sink.data).max() == pytest.approx(0.2, abs=0.01)
    assert "Test tone played" in dialog.speaker_status.text()

    # closing stops every worker and releases the devices
    camera_worker, mic_worker = dialog.camera_worker, dialog.microphone_worker
    assert camera_worker is not None and mic_worker is not None
    dialog.reject()
    assert dialog.camera_worker is None and dialog.microphone_worker is None and dialog.tone_player is None
    assert not camera_worker.thread_running and not mic_worker.thread_running
    assert cam.close_count == 1 and fakes.microphones[-1][1].close_count == 1


def test_ok_writes_choices_into_settings(qtbot: Any, fakes: Fakes) -> None:
    settings = Settings()
    dialog = open_dialog(qtbot, settings, devices=FAKE_DEVICES, **fakes.kwargs())
    qtbot.waitUntil(lambda: dialog.preview.frames_shown >= 1, timeout=5000)

    dialog.camera_combo.setCurrentIndex(dialog.camera_combo.findData(TEST_PATTERN))
    dialog.resolution_combo.setCurrentIndex(dialog.resolution_combo.findData("640x480"))
    dialog.fps_combo.setCurrentIndex(dialog.fps_combo.findData(15))
    dialog.microphone_combo.setCurrentIndex(dialog.microphone_combo.findData("Fake mic"))
    dialog.sample_rate_combo.setCurrentIndex(dialog.sample_rate_combo.findData(48000))
    dialog.block_size_combo.setCurrentIndex(dialog.block_size_combo.findData(512))
    dialog.speaker_combo.setCurrentIndex(dialog.speaker_combo.findData("Fake speaker"))
    # the preview follows the choices
    qtbot.waitUntil(lambda: fakes.cameras[-1][0] == TEST_PATTERN and fakes.cameras[-1][1].width == 160, timeout=5000)
    qtbot.waitUntil(
        lambda: fakes.microphones[-1][0] == "Fake mic" and fakes.microphones[-1][1].blocksize == 512, timeout=5000
    )
    assert fakes.cameras[-1][1].width == 160  # 640 / 4 in the fake factory
    assert fakes.microphones[-1][1].samplerate == 48000 and fakes.microphones[-1][1].blocksize == 512
    old_cameras = [cam for _, cam in fakes.cameras[:-1]]
    assert all(cam.close_count == cam.open_count for cam in old_cameras), "a replaced preview releases its camera"

    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    dev = settings.devices
    assert (dev.camera, dev.camera_width, dev.camera_height, dev.camera_fps) == (TEST_PATTERN, 640, 480, 15)
    assert (dev.microphone, dev.speaker, dev.sample_rate, dev.block_size) == ("Fake mic", "Fake speaker", 48000, 512)
    assert dialog.camera_worker is None and all(cam.close_count == cam.open_count for _, cam in fakes.cameras)


def test_cancel_leaves_settings_alone(qtbot: Any, fakes: Fakes) -> None:
    settings = Settings()
    dialog = open_dialog(qtbot, settings, devices=FAKE_DEVICES, **fakes.kwargs())
    dialog.camera_combo.setCurrentIndex(dialog.camera_combo.findData(TEST_PATTERN))
    dialog.microphone_combo.setCurrentIndex(dialog.microphone_combo.findData("Fake mic"))
    dialog.close()
    assert settings.devices.camera == "0" and settings.devices.microphone is None
    assert all(cam.close_count == cam.open_count for _, cam in fakes.cameras)


def test_video_file_as_camera(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (80, 60))
    for i in range(10):
        writer.write(np.full((60, 80, 3), i * 20, np.uint8))
    writer.release()
    settings = Settings()
    settings.devices.camera = TEST_PATTERN
    # the real factory: the test pattern, then the file through OpenCV
    dialog = open_dialog(qtbot, settings, devices=NO_DEVICES)
    qtbot.waitUntil(lambda: dialog.preview.frames_shown >= 1, timeout=5000)
    monkeypatch.setattr(dialog, "ask_video_file", lambda: str(clip))
    dialog.camera_combo.setCurrentIndex(dialog.camera_combo.findData(VIDEO_FILE_ITEM))
    assert dialog.camera_combo.currentData() == str(clip)
    assert dialog.camera_combo.currentText() == "File: clip.avi"
    qtbot.waitUntil(lambda: "clip.avi: 80 × 60 at 25 fps" in dialog.camera_status.text(), timeout=5000)
    shown = dialog.preview.frames_shown
    qtbot.waitUntil(lambda: dialog.preview.frames_shown >= shown + 3, timeout=5000)
    frame = dialog.preview.frame
    assert frame is not None and frame.shape == (60, 80, 3)

    # cancelling the file chooser keeps the previous choice
    monkeypatch.setattr(dialog, "ask_video_file", lambda: None)
    dialog.camera_combo.setCurrentIndex(dialog.camera_combo.findData(VIDEO_FILE_ITEM))
    assert dialog.camera_combo.currentData() == str(clip)
    dialog.accept()
    assert settings.devices.camera == str(clip)


def test_no_devices_explains_why(qtbot: Any) -> None:
    settings = Settings()
    settings.devices.camera = "63"
    settings.devices.microphone = "Old headset"
    dialog = open_dialog(qtbot, settings, devices=NO_DEVICES)

    assert not dialog.camera_notice.isHidden()
    assert "No camera was found" in dialog.camera_notice.text()
    assert dialog.camera_combo.currentText() == "Camera 63 (not connected)"
    items = [dialog.camera_combo.itemText(i) for i in range(dialog.camera_combo.count())]
    assert "Test pattern" in items and "Video file…" in items

    for notice in (dialog.microphone_notice, dialog.speaker_notice):
        assert not notice.isHidden()
        assert "PortAudio" in notice.text() and "libportaudio2" in notice.text()
    assert dialog.microphone_combo.currentText() == "No microphone" and not dialog.microphone_combo.isEnabled()
    assert dialog.speaker_combo.currentText() == "No speaker" and not dialog.speaker_combo.isEnabled()
    assert not dialog.tone_button.isEnabled()
    assert dialog.microphone_worker is None

    # the missing camera is not opened (no error raised): the preview says what to do instead
    assert dialog.camera_worker is None
    assert dialog.preview.placeholder == "Camera not connected" and not dialog.preview.has_frame()
    assert "test pattern or a video file" in dialog.camera_status.text()
    assert not dialog.sample_rate_combo.isEnabled()

    dialog.accept()
    assert settings.devices.camera == "63"
    assert settings.devices.microphone == "Old headset", "an absent device keeps its saved choice"


def test_sound_present_but_no_microphone(qtbot: Any, fakes: Fakes) -> None:
    report = DeviceReport(
        speakers=[AudioDevice("Fake speaker", 1, 2, 48000.0)], audio=AudioStatus(True, "No microphone was found.", 0, 1)
    )
    dialog = open_dialog(qtbot, Settings(), devices=report, **fakes.kwargs())
    assert "No microphone was found" in dialog.microphone_notice.text()
    assert dialog.speaker_notice.isHidden() and dialog.tone_button.isEnabled()
    dialog.reject()


def test_real_scan_on_this_machine_does_not_crash(qtbot: Any) -> None:
    dialog = open_dialog(qtbot, Settings(), camera_factory=lambda s, w, h, f: GeneratedCamera(64, 48, 30))
    report = dialog.report
    if not report.cameras:
        assert not dialog.camera_notice.isHidden()
    if not report.microphones:
        assert dialog.microphone_notice.text()
    qtbot.waitUntil(lambda: dialog.preview.frames_shown >= 1, timeout=5000)
    dialog.reject()


# ---- a sound file as the microphone ------------------------------------------------------------------------
def test_sound_file_as_microphone(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File… beside the microphone list: the file plays through the real factory (looped, at the
    chosen rate), the level follows it, OK keeps its path, and the dialog shows it when reopened."""
    from workers.media.microphone import FileMicrophone

    rate = 44100
    t = np.arange(rate // 2) / rate
    voice = tmp_path / "voice.flac"
    soundfile.write(str(voice), np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1), rate)
    opened: list[Any] = []

    def microphone(name: str | None, samplerate: int | None, blocksize: int) -> Any:
        from snowai_studio.dialogs.devices_dialog import default_microphone_factory

        mic = default_microphone_factory(name, samplerate, blocksize)
        opened.append(mic)
        return mic

    settings = Settings()
    settings.devices.sample_rate = 16000
    dialog = open_dialog(qtbot, settings, devices=NO_DEVICES, microphone_factory=microphone)
    assert dialog.microphone_file_button.isEnabled() and not dialog.microphone_combo.isEnabled()
    assert "sound file" in dialog.microphone_notice.text()
    assert dialog.microphone_worker is None

    monkeypatch.setattr(dialog, "ask_sound_file", lambda: str(voice))
    qtbot.mouseClick(dialog.microphone_file_button, Qt.MouseButton.LeftButton)
    assert dialog.microphone_combo.currentText() == "File: voice.flac"
    assert dialog.microphone_combo.isEnabled() and dialog.microphone_available()
    assert dialog.sample_rate_combo.isEnabled()
    qtbot.waitUntil(lambda: dialog.level_meter.updates >= 5, timeout=5000)
    mic = opened[-1]
    assert isinstance(mic, FileMicrophone) and mic.samplerate == 16000 and mic.channels == 1
    assert dialog.level_meter.level == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1.0)
    assert "voice.flac: playing in a loop at 16000 Hz" in dialog.microphone_status.text()

    dialog.accept()
    assert settings.devices.microphone == str(voice)
    assert mic.close_count == 1, "closing the dialog releases the file"

    # reopened with devices present: the file is still the choice, beside the devices
    again = open_dialog(qtbot, settings, devices=FAKE_DEVICES, microphone_factory=microphone)
    assert again.microphone_combo.currentText() == "File: voice.flac"
    assert again.microphone_combo.findData("Fake mic") >= 0
    qtbot.waitUntil(lambda: again.level_meter.updates >= 2, timeout=5000)
    # choosing a device again stores the device
    again.microphone_combo.setCurrentIndex(again.microphone_combo.findData("Fake mic"))
    again.accept()
    assert settings.devices.microphone == "Fake mic"


def test_a_sound_file_that_cannot_play_is_one_sentence(
    qtbot: Any, fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.wav"
    notes.write_text("not sound at all")
    settings = Settings()
    dialog = open_dialog(qtbot, settings, devices=FAKE_DEVICES, **fakes.kwargs())
    before = dialog.microphone_combo.currentData()
    monkeypatch.setattr(dialog, "ask_sound_file", lambda: str(notes))
    qtbot.mouseClick(dialog.microphone_file_button, Qt.MouseButton.LeftButton)
    text = dialog.microphone_status.text()
    assert text.startswith("notes.wav cannot be used as the microphone") and "Traceback" not in text
    assert "\n" not in text
    assert dialog.microphone_combo.currentData() == before and dialog.microphone_combo.findData(str(notes)) < 0

    monkeypatch.setattr(dialog, "ask_sound_file", lambda: None)  # cancelled: nothing changes
    assert not dialog.choose_sound_file() and dialog.microphone_combo.currentData() == before
    dialog.accept()
    assert settings.devices.microphone is None


def test_a_saved_sound_file_that_went_missing(qtbot: Any, tmp_path: Path) -> None:
    settings = Settings()
    settings.devices.microphone = str(tmp_path / "gone.wav")
    dialog = open_dialog(qtbot, settings, devices=NO_DEVICES)
    assert dialog.microphone_combo.currentText() == "File: gone.wav (missing)"
    qtbot.waitUntil(lambda: "gone.wav" in dialog.microphone_status.text(), timeout=5000)
    text = dialog.microphone_status.text()
    assert "was not found" in text and "Traceback" not in text and "\n" not in text
    # setting the file aside with no device leaves no microphone chosen
    dialog.microphone_combo.setCurrentIndex(dialog.microphone_combo.findData(UNAVAILABLE_ITEM))
    dialog.accept()
    assert settings.devices.microphone is None
