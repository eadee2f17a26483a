"""The virtual microphone "SnowAI Microphone" on a real PulseAudio server, and the cables elsewhere.

A recording client (parec, an ordinary program) records the converted voice from the virtual
source while the studio is live; the source is gone after stopping, and a source left by a killed
process is removed at the next start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pulse_server import sound_server

from workers.errors import UserError
from workers.live import virtual_mic
from workers.live.options import LiveOptions
from workers.live.session import LiveSession
from workers.live.virtual_mic import (
    DESCRIPTION,
    SOURCE_NAME,
    PulseVirtualMicrophone,
    cable_hint,
    find_cable,
    open_virtual_microphone,
    server_problem,
)
from workers.media.audio import AudioDevice
from workers.media.fakes import ArrayMicrophone, GeneratedCamera, MemorySink


@pytest.fixture
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("SNOWAI_HOME", str(tmp_path / "home"))
    with sound_server(tmp_path) as env:
        if isinstance(env, str):
            pytest.skip(env)
        for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "HOME"):
            if key in env and env[key] != os.environ.get(key):
                monkeypatch.setenv(key, env[key])
        yield env


def _sources() -> dict[str, str]:
    """Source name → description, as any client sees them."""
    out = subprocess.run(["pactl", "list", "sources"], capture_output=True, text=True, check=True).stdout
    found, name = {}, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Name:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("Description:") and name:
            found[name] = line.split(":", 1)[1].strip()
    return found


def _ours() -> list[str]:
    out = subprocess.run(["pactl", "list", "short", "modules"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "snowai_microphone" in line]


def _voice(seconds: float, rate: int = 48000) -> np.ndarray:
    """A sung vowel at 150 Hz with a little vibrato (something to convert)."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 4 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.25 * wave / np.max(np.abs(wave))).astype(np.float32)


def _voiced(raw: bytes) -> np.ndarray:
    """The recording from the first sample of voice on."""
    data = np.frombuffer(raw[: len(raw) // 4 * 4], np.float32)
    loud = np.flatnonzero(np.abs(data) > 0.02)
    return data[loud[0] :] if len(loud) else data[:0]


def test_a_recording_client_hears_the_converted_voice_on_snowai_microphone(pulse: dict[str, str]) -> None:
    recorder: subprocess.Popen[bytes] | None = None
    session = LiveSession(
        LiveOptions(pitch=5.0, virtual_camera=False, noise_suppression=False),
        camera=GeneratedCamera(160, 120, 15),
        microphone=ArrayMicrophone(_voice(3.0), 48000, blocksize=480, loop=True),
    )
    session.start()
    try:
        assert session.vmic is not None and session.vmic.name == DESCRIPTION
        assert _sources().get(SOURCE_NAME) == DESCRIPTION  # what a call program lists
        recorder = subprocess.Popen(
            ["parec", "-d", SOURCE_NAME, "--format=float32le", "--rate=48000", "--channels=1", "--raw"],
            stdout=subprocess.PIPE,
        )
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: recorder.stdout.read(9600), b"")))
        reader.start()
        # a sound server that is starting its sink (or a busy machine) may hold the first seconds back
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(_voiced(b"".join(chunks))) < 48000:
            time.sleep(0.2)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(5)
        reader.join(5)
        data = np.frombuffer(b"".join(chunks)[: len(b"".join(chunks)) // 4 * 4], np.float32)
        assert session.frames_out > 5  # the camera went on beside it
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        session.stop()
    voiced = _voiced(data.tobytes())
    assert len(voiced) >= 48000, "the converted voice did not arrive on the virtual microphone"
    # the voice changer moved the pitch up 5 semitones: 150 Hz → about 200 Hz
    n = min(len(voiced), 48000)
    spectrum = np.abs(np.fft.rfft(voiced[-n:] * np.hanning(n)))
    freqs = np.fft.rfftfreq(n, 1 / 48000)
    band = (freqs > 100) & (freqs < 400)
    peak = freqs[band][np.argmax(spectrum[band])]
    assert 185 < peak < 215, peak
    # gone after stopping
    assert SOURCE_NAME not in _sources() and not _ours()
    assert not virtual_mic.state_path().exists()


def test_a_source_left_by_a_killed_process_is_removed_at_the_next_start(pulse: dict[str, str], tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from workers.live.virtual_mic import PulseVirtualMicrophone
        PulseVirtualMicrophone().create()
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=str(Path(__file__).resolve().parent.parent))  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert SOURCE_NAME in _sources()
        # while the other studio is live, this one leaves its microphone alone
        with pytest.raises(UserError, match="in use by another SnowAI Studio"):
            PulseVirtualMicrophone().create()
        assert len(_ours()) == 2
        child.kill()
        child.wait(5)
        assert len(_ours()) == 2  # the killed process could not clean up
        mic = PulseVirtualMicrophone()
        mic.create()
        assert len(mic.cleaned) == 2 and len(_ours()) == 2  # the stale pair went, a fresh pair is ours
        assert _sources().get(SOURCE_NAME) == DESCRIPTION
        mic.remove()
        assert not _ours()
    finally:
        if child.poll() is None:
            child.kill()


def test_without_a_sound_server_the_camera_keeps_going(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_server(args: Any) -> str:
        raise UserError("pactl info failed: Connection refused.")

    problem = server_problem(no_server)
    assert (
        problem is not None and "No PulseAudio or PipeWire sound server" in problem and "camera keeps going" in problem
    )
    warnings: list[str] = []
    session = LiveSession(
        LiveOptions(virtual_camera=False, noise_suppression=False),
        camera=GeneratedCamera(160, 120, 30),
        microphone=ArrayMicrophone(_voice(1.0), 48000, blocksize=480, loop=True),
        virtual_microphone=lambda: open_virtual_microphone("linux", runner=no_server, state=tmp_path / "s.json"),
        monitor=MemorySink(48000),
        on_warning=warnings.append,
    )
    session.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (session.frames_out < 10 or session.blocks < 10):
            time.sleep(0.05)
    finally:
        session.stop()
    assert session.frames_out >= 10 and session.blocks >= 10  # both streams went on; the monitor heard the voice
    assert len(warnings) == 1 and warnings[0].count(".") == 1  # one sentence


def _device(name: str, index: int = 3) -> AudioDevice:
    return AudioDevice(name, index, 2, 48000.0, "Windows WASAPI")


@pytest.mark.parametrize(
    ("platform", "names", "device", "microphone"),
    [
        ("win32", ["Speakers (Realtek)", "CABLE Input (VB-Audio Virtual Cable)"],
         "CABLE Input (VB-Audio Virtual Cable)", "CABLE Output"),
        ("win32", ["Speakers", "VoiceMeeter Input (VB-Audio VoiceMeeter VAIO)"],
         "VoiceMeeter Input (VB-Audio VoiceMeeter VAIO)", "VoiceMeeter Output"),
        ("darwin", ["MacBook Pro Speakers", "BlackHole 2ch"], "BlackHole 2ch", "BlackHole 2ch"),
    ],
)  # fmt: skip
def test_virtual_cables_are_found_by_name(platform: str, names: list[str], device: str, microphone: str) -> None:
    cable = find_cable([_device(n, i) for i, n in enumerate(names)], platform)
    assert cable is not None and cable.device.name == device and cable.microphone_name == microphone


@pytest.mark.parametrize(("platform", "what"), [("win32", "VB-CABLE"), ("darwin", "BlackHole")])
def test_without_a_cable_one_sentence_says_what_to_install(platform: str, what: str) -> None:
    outputs = [_device("Speakers (Realtek)"), _device("BlackHole 2ch" if platform == "win32" else "CABLE Input")]
    assert find_cable(outputs[:1], platform) is None
    with pytest.raises(UserError) as caught:
        open_virtual_microphone(platform, outputs=outputs[:1])
    message = str(caught.value)
    assert message == cable_hint(platform) and what in message and "camera keeps going" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_at_the_studio_start_a_source_left_by_a_dead_studio_is_removed(tmp_path: Path) -> None:
    import json

    from workers.live.virtual_mic import clean_stale_at_start

    modules = {
        "7": "module-null-sink\tsink_name=snowai_microphone_feed rate=48000 channels=1",
        "8": "module-remap-source\tmaster=snowai_microphone_feed.monitor source_name=snowai_microphone",
        "9": "module-null-sink\tsink_name=someone_else",
    }
    calls: list[list[str]] = []

    def pactl(args: Any) -> str:
        calls.append(list(args))
        if list(args[:3]) == ["list", "short", "modules"]:
            return "".join(f"{i}\t{line}\n" for i, line in modules.items())
        if args[0] == "unload-module":
            modules.pop(args[1])
        return ""

    state = tmp_path / "virtual-microphone.json"
    assert clean_stale_at_start(pactl, state) == [] and calls == []  # no state file: nothing to ask
    state.write_text(json.dumps({"pid": 2**22 + 12345, "started": 1.0, "modules": [7, 8]}))
    assert clean_stale_at_start(pactl, state) == [8, 7]  # the source before its sink
    assert list(modules) == ["9"] and not state.exists()
