"""A sound file as the microphone: looped, paced like a device, resampled, mixed to mono; one sentence
for a file that cannot play; whether any microphone is there at all; the studio's microphone factory."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile

from workers.errors import UserError
from workers.media.audio import AudioDevice, AudioInput, AudioSource
from workers.media.microphone import (
    FileMicrophone,
    check_sound_file,
    is_sound_file_choice,
    make_microphone,
    microphone_available,
)
from workers.settings import Settings

MIC = AudioDevice("USB mic", 0, 1, 48000.0, "ALSA", True)


def _stereo_tone(path: Path, rate: int = 44100, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    stereo = np.stack([left, 0.25 + 0 * t], axis=1).astype(np.float32)  # a tone, and a constant
    soundfile.write(str(path), stereo, rate)
    return stereo


def _read_for(mic: FileMicrophone, seconds: float) -> tuple[np.ndarray, float]:
    blocks = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        item = mic.read(0.5)
        if item is not None:
            blocks.append(item.payload)
    return np.concatenate(blocks), time.monotonic() - start


def test_a_sound_file_plays_like_a_device(tmp_path: Path) -> None:
    path = tmp_path / "voice.flac"
    _stereo_tone(path)
    mic = make_microphone(str(path), 16000, 512)
    assert isinstance(mic, FileMicrophone) and isinstance(mic, AudioSource)
    with mic:
        assert (mic.samplerate, mic.blocksize, mic.channels, mic.source_rate) == (16000, 512, 1, 44100)
        data, took = _read_for(mic, 1.3)
        # paced in real time: about as much audio as time went by, not as fast as it decodes
        assert len(data) / 16000 == pytest.approx(took, abs=0.15)
        assert data.shape[1] == 1 and data.dtype == np.float32
        # looped (0.5 s file), never ended, like a device
        assert mic.loops >= 2 and not mic.ended
        # mixed to mono: the average of the tone and the constant 0.25
        assert float(data.mean()) == pytest.approx(0.125, abs=0.01)
        # resampled: still a 440 Hz tone at 16 kHz
        window = data[2000:10000, 0] - data[2000:10000, 0].mean()
        spectrum = np.abs(np.fft.rfft(window))
        assert np.fft.rfftfreq(len(window), 1 / 16000)[int(spectrum.argmax())] == pytest.approx(440, abs=4)
    assert mic.close_count == 1
    with pytest.raises(UserError, match="not open"):
        mic.read(0.1)


def test_the_files_own_rate_when_none_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    stereo = _stereo_tone(path, rate=22050, seconds=0.2)
    with FileMicrophone(path, None, 1024, paced=False) as mic:
        assert mic.samplerate == 22050
        first = mic.read(0.1)
        assert first is not None and first.payload.shape == (1024, 1)
        np.testing.assert_allclose(first.payload[:, 0], stereo[:1024].mean(axis=1), atol=1e-4)
    assert isinstance(make_microphone(None, 16000, 512), AudioInput)
    assert isinstance(make_microphone("USB mic", 16000, 512), AudioInput)


def test_a_file_that_does_not_loop_ends(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    _stereo_tone(path, rate=16000, seconds=0.1)
    with FileMicrophone(path, 16000, 512, loop=False, paced=False) as mic:
        items = []
        while (item := mic.read(0.1)) is not None:
            items.append(item)
        assert mic.ended and len(items) == 4  # 1600 frames in blocks of 512, the last padded


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "gone.wav", "was not found"),
        (lambda p: (p / "folder.wav").mkdir() or p / "folder.wav", "is a folder"),
        (lambda p: (p / "notes.wav").write_text("just text") and p / "notes.wav", "not a sound file"),
        (
            lambda p: (p / "half.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + b"\x00" * 10) and p / "half.flac",
            "not a sound file",
        ),
    ],
)
def test_a_file_that_cannot_play_is_one_sentence(tmp_path: Path, make: Any, words: str) -> None:
    path = make(tmp_path)
    with pytest.raises(UserError) as caught:
        check_sound_file(path)
    message = str(caught.value)
    assert words in message and path.name in message
    assert "\n" not in message and "Traceback" not in message and message.count(". ") <= 1
    mic = make_microphone(str(path), 16000, 512)
    with pytest.raises(UserError) as on_open:
        mic.open()
    assert str(on_open.value) == message


def test_an_empty_sound_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(UserError, match="holds no sound"):
        check_sound_file(path)


def test_which_choices_are_files() -> None:
    assert is_sound_file_choice("/home/me/voice.wav") and is_sound_file_choice(r"C:\Users\me\voice.flac")
    assert is_sound_file_choice("~/voice.ogg")
    for name in (None, "", "USB mic", "Mic/Line In (USB 2.0)", "HDA Intel PCH: ALC3246 Analog (hw:0,0)"):
        assert not is_sound_file_choice(name)


def test_microphone_available(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    _stereo_tone(path, seconds=0.1)
    assert microphone_available(str(path), inputs=[])  # a file needs no device
    assert not microphone_available(str(tmp_path / "gone.wav"), inputs=[MIC])
    assert microphone_available(None, inputs=[MIC]) and microphone_available("USB mic", inputs=[MIC])
    assert not microphone_available(None, inputs=[])


def test_the_studios_microphone_factory_opens_the_chosen_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from snowai_studio import tool_dock

    path = tmp_path / "voice.wav"
    _stereo_tone(path, seconds=0.2)
    settings = Settings()
    settings.devices.microphone = str(path)
    settings.devices.sample_rate = 16000
    settings.devices.block_size = 512
    context = SimpleNamespace(settings=settings, extras={})
    mic = tool_dock.microphone_factory(context)()
    assert isinstance(mic, FileMicrophone) and mic.path == path
    with mic:
        item = mic.read(1.0)
        assert item is not None and item.payload.shape == (512, 1) and mic.samplerate == 16000
    assert tool_dock.microphone_available(context)

    # a missing file: no microphone; a device choice: whatever the system has
    settings.devices.microphone = str(tmp_path / "gone.wav")
    assert not tool_dock.microphone_available(context)
    settings.devices.microphone = None
    monkeypatch.setattr("workers.media.microphone.list_input_devices", lambda: [])
    assert not tool_dock.microphone_available(context)
    monkeypatch.setattr("workers.media.microphone.list_input_devices", lambda: [MIC])
    assert tool_dock.microphone_available(context)
    assert isinstance(tool_dock.microphone_factory(context)(), AudioInput)

    # an injected factory wins, and counts as a microphone
    injected = lambda: "injected"  # noqa: E731
    monkeypatch.setattr("workers.media.microphone.list_input_devices", lambda: [])
    context = SimpleNamespace(settings=settings, extras={"microphone_factory": injected})
    assert tool_dock.microphone_factory(context) is injected and tool_dock.microphone_available(context)


def test_the_assistant_opens_the_chosen_file(tmp_path: Path) -> None:
    from workers.assistant.worker import default_microphone

    path = tmp_path / "voice.wav"
    _stereo_tone(path, seconds=0.2)
    settings = Settings()
    settings.devices.microphone = str(path)
    settings.save()
    mic = default_microphone()
    assert isinstance(mic, FileMicrophone) and mic.path == path
