"""Audio: file-backed microphones, sinks, helpers, and the sounddevice paths with and without PortAudio."""

from __future__ import annotations

import builtins
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from workers.errors import UserError
from workers.media import audio
from workers.media.audio import (
    SILENCE_DBFS,
    AudioInput,
    AudioOutput,
    AudioSink,
    AudioSource,
    audio_status,
    list_input_devices,
    list_output_devices,
    resample,
    rms_dbfs,
)
from workers.media.audio import test_tone as make_tone
from workers.media.devices import devices_summary, scan_devices
from workers.media.fakes import ArrayMicrophone, MemorySink, WavMicrophone, WavSink


def write_tone_wav(
    path: Path,
    rate: int = 44100,
    seconds: float = 0.5,
    channels: int = 2,
    amp: float = 0.5,
    freq: float = 1000.0,
    subtype: str = "PCM_16",
) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    wave = amp * np.sin(2 * np.pi * freq * t)
    data = np.repeat(wave[:, None], channels, axis=1)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


# ---- file-backed microphone -------------------------------------------------------------------------


def test_wav_microphone_converts_rate_and_channels(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "tone.wav", rate=44100, seconds=0.5, channels=2, amp=0.5)
    mic = WavMicrophone(wav, samplerate=16000, blocksize=512, channels=1, paced=False)
    assert isinstance(mic, AudioSource)
    blocks = []
    with mic:
        while (item := mic.read(0.1)) is not None:
            blocks.append(item)
    assert mic.ended
    assert all(b.payload.shape == (512, 1) and b.payload.dtype == np.float32 for b in blocks)
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    total = len(blocks) * 512
    assert 8000 <= total < 8000 + 512  # 0.5 s at 16 kHz, last block padded
    body = np.concatenate([b.payload for b in blocks])[: 8000 - 200]
    assert rms_dbfs(body) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.3)


def test_wav_microphone_mono_to_stereo_int_file(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "mono.wav", rate=16000, seconds=0.1, channels=1, subtype="PCM_16")
    with WavMicrophone(wav, samplerate=None, blocksize=400, channels=2, paced=False) as mic:
        first = mic.read()
    assert first is not None and first.payload.shape == (400, 2)
    assert mic.samplerate == 16000
    np.testing.assert_allclose(first.payload[:, 0], first.payload[:, 1])


def test_wav_microphone_real_time_pace_and_loop(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "short.wav", rate=16000, seconds=0.1, channels=1)
    with WavMicrophone(wav, samplerate=16000, blocksize=800, paced=True, loop=True) as mic:
        start = time.monotonic()
        items = [mic.read(1.0) for _ in range(6)]  # 0.3 s of audio, looping over a 0.1 s file
        elapsed = time.monotonic() - start
    assert all(it is not None for it in items)
    assert not mic.ended
    assert elapsed >= 0.25, f"6 blocks of 50 ms came in {elapsed:.3f} s"
    # a short timeout returns None without ending the stream
    with WavMicrophone(wav, samplerate=16000, blocksize=1600, paced=True) as mic:
        assert mic.read(0.01) is None
        assert not mic.ended


def test_wav_microphone_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="was not found"):
        WavMicrophone(tmp_path / "none.wav")


def test_array_microphone_close_unblocks_and_counts() -> None:
    mic = ArrayMicrophone(np.zeros(16000, np.float32), 16000, blocksize=8000, paced=True)
    mic.open()
    threading.Timer(0.05, mic.close).start()
    start = time.monotonic()
    assert mic.read(2.0) is None
    assert time.monotonic() - start < 0.4
    assert mic.close_count == 1


# ---- sinks ---------------------------------------------------------------------------------------------


def test_memory_sink_collects_blocks() -> None:
    sink = MemorySink(16000, channels=2)
    assert isinstance(sink, AudioSink)
    with sink:
        sink.write(np.ones((100, 1), np.float32) * 0.25)
        sink.write(np.zeros(50, np.float32))
        assert sink.drain(0.1)
    data = sink.data
    assert data.shape == (150, 2)
    assert data[:100].mean() == pytest.approx(0.25)
    assert sink.close_count == 1
    with pytest.raises(UserError):
        sink.write(np.zeros(10, np.float32))


def test_wav_sink_round_trip(tmp_path: Path) -> None:
    tone = make_tone(22050, 0.2, 330.0, amplitude=0.3)
    sink = WavSink(tmp_path / "out" / "tone.wav", samplerate=22050, channels=1)
    with sink:
        for start in range(0, len(tone), 1000):
            sink.write(tone[start : start + 1000])
    data, rate = soundfile.read(str(sink.path), dtype="float32", always_2d=True)
    assert rate == 22050 and data.shape == tone.shape
    np.testing.assert_allclose(data, tone, atol=1e-3)
    assert sink.frames == len(tone)


# ---- helpers --------------------------------------------------------------------------------------------


def test_rms_dbfs_and_tone() -> None:
    tone = make_tone(48000, 0.5, 440.0, amplitude=1.0, channels=2)
    assert tone.shape == (24000, 2) and tone.dtype == np.float32
    assert tone[0, 0] == 0.0 and abs(tone[-1, 0]) < 1e-3  # faded in and out
    assert rms_dbfs(tone[2000:-2000]) == pytest.approx(-3.01, abs=0.05)
    assert rms_dbfs(np.zeros(100, np.float32)) == SILENCE_DBFS
    assert rms_dbfs(np.zeros(0, np.float32)) == SILENCE_DBFS


def test_resample_with_soxr_and_without(monkeypatch: pytest.MonkeyPatch) -> None:
    tone = make_tone(48000, 0.2, 440.0, amplitude=0.5)
    out = resample(tone, 48000, 16000)
    assert out.shape == (3200, 1) and out.dtype == np.float32
    real_import = builtins.__import__

    def no_soxr(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "soxr":
            raise ImportError("no soxr")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_soxr)
    plain = resample(tone, 48000, 16000)
    assert plain.shape == (3200, 1)
    assert rms_dbfs(plain[200:-200]) == pytest.approx(rms_dbfs(tone[600:-600]), abs=0.2)


# ---- sounddevice without PortAudio ---------------------------------------------------------------


@pytest.fixture
def no_portaudio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import sounddevice`` fail the way it does when libportaudio2 is missing."""
    real_import = builtins.__import__
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_audio_status_without_portaudio(no_portaudio: None) -> None:
    status = audio_status()
    assert not status.available
    assert "PortAudio" in status.message
    if sys.platform.startswith("linux"):
        assert "sudo apt install libportaudio2" in status.message
    assert list_input_devices() == [] and list_output_devices() == []
    with pytest.raises(UserError, match="PortAudio"):
        AudioInput().open()
    with pytest.raises(UserError, match="PortAudio"):
        AudioOutput().open()
    report = scan_devices()
    assert devices_summary(report).endswith("No microphone · No speaker (PortAudio is not installed)")


def test_audio_status_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    status = audio_status()
    assert not status.available and "sounddevice" in status.message


# ---- sounddevice with a stand-in PortAudio ------------------------------------------------------------


class FakePortAudioError(Exception):
    pass


class FakeStream:
    """Calls the stream callback from a thread, like PortAudio does."""

    def __init__(
        self,
        kind: str,
        *,
        samplerate: float,
        blocksize: int,
        device: Any,
        channels: int,
        dtype: str,
        callback: Any,
        fail: bool = False,
    ) -> None:
        if fail:
            raise FakePortAudioError("Error opening stream: Device unavailable [PaErrorCode -9985]")
        self.kind, self.samplerate, self.blocksize, self.device = kind, samplerate, blocksize, device
        self.channels, self.callback = channels, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.closed = False
        self.played: list[np.ndarray] = []

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            buf = np.zeros((self.blocksize, self.channels), np.float32)
            if self.kind == "input":
                buf[:] = 0.1 * ((n % 2) * 2 - 1)
                self.callback(buf, self.blocksize, None, None)
            else:
                self.callback(buf, self.blocksize, None, None)
                self.played.append(buf.copy())
            n += 1
            time.sleep(0.002)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)

    def close(self) -> None:
        self.closed = True


def make_fake_sounddevice(devices: list[dict[str, Any]], *, fail_open: bool = False) -> types.ModuleType:
    sd = types.ModuleType("sounddevice")
    sd.PortAudioError = FakePortAudioError  # type: ignore[attr-defined]
    streams: list[FakeStream] = []
    sd.streams = streams  # type: ignore[attr-defined]
    ins = [d["index"] for d in devices if d["max_input_channels"] > 0]
    outs = [d["index"] for d in devices if d["max_output_channels"] > 0]
    sd.default = types.SimpleNamespace(device=[ins[0] if ins else -1, outs[0] if outs else -1])  # type: ignore[attr-defined]

    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        if kind is not None:
            idx = sd.default.device[0 if kind == "input" else 1]  # type: ignore[attr-defined]
            if idx < 0:
                raise FakePortAudioError("No default device")
            return devices[idx]
        return devices

    def stream(kind: str) -> Any:
        def make(**kwargs: Any) -> FakeStream:
            s = FakeStream(kind, fail=fail_open, **kwargs)
            streams.append(s)
            return s

        return make

    sd.query_devices = query_devices  # type: ignore[attr-defined]
    sd.query_hostapis = lambda: [{"name": "ALSA"}]  # type: ignore[attr-defined]
    sd.InputStream = stream("input")  # type: ignore[attr-defined]
    sd.OutputStream = stream("output")  # type: ignore[attr-defined]
    return sd


DEVICES = [
    {
        "name": "USB Mic",
        "index": 0,
        "hostapi": 0,
        "max_input_channels": 1,
        "max_output_channels": 0,
        "default_samplerate": 48000.0,
    },
    {
        "name": "Speakers",
        "index": 1,
        "hostapi": 0,
        "max_input_channels": 0,
        "max_output_channels": 2,
        "default_samplerate": 44100.0,
    },
]


def test_device_lists_and_status_with_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", make_fake_sounddevice(DEVICES))
    mics, speakers = list_input_devices(), list_output_devices()
    assert [(d.name, d.index, d.channels, d.default_samplerate, d.hostapi) for d in mics] == [
        ("USB Mic", 0, 1, 48000.0, "ALSA")
    ]
    assert mics[0].is_default and speakers[0].name == "Speakers" and speakers[0].channels == 2
    status = audio_status()
    assert status.available and (status.inputs, status.outputs) == (1, 1)
    assert devices_summary(scan_devices()).endswith("1 microphone · 1 speaker")


def test_no_sound_devices_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", make_fake_sounddevice([]))
    status = audio_status()
    assert not status.available and "No sound devices" in status.message
    assert devices_summary(scan_devices()).endswith("No microphone · No speaker")


def test_audio_input_queues_blocks_and_drops_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = make_fake_sounddevice(DEVICES)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    mic = AudioInput("USB Mic", None, blocksize=256, channels=1, queue_blocks=4)
    with mic:
        assert mic.samplerate == 48000  # the device's own rate
        assert sd.streams[0].device == 0
        first = mic.read(1.0)
        assert first is not None and first.payload.shape == (256, 1) and first.payload.dtype == np.float32
        assert rms_dbfs(first.payload) == pytest.approx(-20.0, abs=0.1)
        time.sleep(0.1)  # the reader stalls: the queue stays bounded
        assert len(mic.queue) <= 4 and mic.dropped > 0
        later = mic.read(1.0)
        assert later is not None and later.seq > first.seq and later.timestamp >= first.timestamp
    assert sd.streams[0].closed


def test_audio_output_plays_written_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = make_fake_sounddevice(DEVICES)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    out = AudioOutput("Speakers", 44100, blocksize=512, channels=2, buffer_seconds=0.05)
    tone = make_tone(44100, 0.2, 440.0, amplitude=0.5)
    with out:
        for start in range(0, len(tone), 1024):
            out.write(tone[start : start + 1024])
            assert out.buffered_frames <= out.capacity + 1024
        assert out.drain(2.0)
    played = np.concatenate(sd.streams[0].played)
    assert played.shape[1] == 2
    assert np.abs(played).max() == pytest.approx(np.abs(tone).max(), abs=1e-3)
    assert sd.streams[0].closed


def test_device_failures_name_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", make_fake_sounddevice(DEVICES, fail_open=True))
    with pytest.raises(UserError, match=r"The microphone “USB Mic” could not be opened \(Error opening stream"):
        AudioInput("USB Mic").open()
    with pytest.raises(UserError, match="The speaker “Speakers” could not be opened"):
        AudioOutput("Speakers").open()
    with pytest.raises(UserError, match="The microphone “Headset” is not connected"):
        AudioInput("Headset").open()


def test_audio_module_imports_no_sounddevice_eagerly() -> None:
    src = Path(audio.__file__).read_text()
    assert "\nimport sounddevice" not in src
