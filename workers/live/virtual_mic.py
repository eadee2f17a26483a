"""The virtual microphone "SnowAI Microphone": where the converted voice goes so that a call program can pick it.

- Linux: a PulseAudio or PipeWire (pipewire-pulse) sound server gets a null sink (the studio plays
  into it) and a virtual source remapped from that sink's monitor, described as "SnowAI
  Microphone" (``pactl load-module``). They exist while the studio is live and are unloaded
  afterwards. The module ids go into a small state file in the studio's config folder, with the
  process that made them; a studio that starts after a crash (or a killed process) unloads what
  the dead one left behind. The studio writes to the sink through libpulse's simple API (ctypes;
  libpulse ships with every PulseAudio and PipeWire desktop), which also reports the sink's latency.
- Windows and macOS have no way to make a device from a program: a virtual audio cable is detected
  among the output devices (VB-CABLE or VoiceMeeter on Windows, BlackHole on macOS) and used; when
  none is installed, one sentence names what to install.

No Qt here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import UserError
from workers.media.audio import AudioDevice, as_block

log = logging.getLogger(__name__)

#: What call programs show in their microphone list.
DESCRIPTION = "SnowAI Microphone"
SOURCE_NAME = "snowai_microphone"
SINK_NAME = "snowai_microphone_feed"
STATE_FILE = "virtual-microphone.json"
#: The sink's rate; the live voice is resampled to it when the microphone runs at another rate.
RATE = 48000

Runner = Callable[[Sequence[str]], str]


# ---- pactl --------------------------------------------------------------------------------------------


def _pactl(args: Sequence[str]) -> str:
    """Run ``pactl`` with ``args``; its output, or a UserError sentence."""
    exe = shutil.which("pactl")
    if exe is None:
        raise UserError(
            "The virtual microphone needs pactl, which is missing: install pulseaudio-utils "
            "(Debian/Ubuntu: sudo apt install pulseaudio-utils), then go live again."
        )
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(
            f"The sound server did not answer ({exc}); the camera keeps going without the microphone."
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"pactl {args[0]} failed: {detail[0] if detail else 'no reason given'}.")
    return done.stdout


def server_problem(runner: Runner = _pactl) -> str | None:
    """None when a PulseAudio or PipeWire server answers, else the sentence that says how to get one."""
    try:
        runner(["info"])
    except UserError as exc:
        log.info("no sound server: %s", exc)
        if "pactl, which is missing" in str(exc):
            return str(exc)
        return (
            "No PulseAudio or PipeWire sound server is running, so there is no SnowAI Microphone: start one "
            "(systemctl --user start pipewire-pulse, or pulseaudio --start); the camera keeps going."
        )
    return None


@dataclass(frozen=True)
class Module:
    id: int
    name: str
    args: str

    @property
    def ours(self) -> bool:
        return f"sink_name={SINK_NAME}" in self.args or f"source_name={SOURCE_NAME}" in self.args


def list_modules(runner: Runner = _pactl) -> list[Module]:
    """The server's loaded modules (``pactl list short modules``)."""
    modules = []
    for line in runner(["list", "short", "modules"]).splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            modules.append(Module(int(parts[0]), parts[1].strip(), parts[2] if len(parts) > 2 else ""))
    return modules


def state_path() -> Path:
    from workers import paths

    return paths.config_dir() / STATE_FILE


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _owner_alive(state: dict[str, Any]) -> bool:
    pid = int(state.get("pid", 0) or 0)
    if pid <= 0 or pid == os.getpid():
        return False
    started = _process_started(pid)
    return started is not None and abs(started - float(state.get("started", 0.0))) < 2.0


def read_state(path: Path | None = None) -> dict[str, Any] | None:
    path = path or state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clean_stale(runner: Runner = _pactl, path: Path | None = None) -> list[int]:
    """Unload a SnowAI Microphone left by a studio that is gone (crashed or killed); the ids unloaded.

    The modules are found by their names (and the ids in the state file); a studio still running
    in another process keeps its own, and this one then raises a UserError sentence.
    """
    path = path or state_path()
    state = read_state(path)
    if state is not None and _owner_alive(state):
        raise UserError(
            f"{DESCRIPTION} is in use by another SnowAI Studio (process {state.get('pid')}); "
            "stop going live there first."
        )
    remembered = {int(i) for i in (state or {}).get("modules", []) if str(i).isdigit()}
    # By name: an id in the state file that the server has given to someone else since is never touched.
    stale = [m for m in list_modules(runner) if m.ours]
    if remembered - {m.id for m in stale}:
        log.info("modules %s of an earlier run are already gone", sorted(remembered - {m.id for m in stale}))
    unloaded = []
    for module in sorted(stale, key=lambda m: m.name != "module-remap-source"):  # the source before its sink
        try:
            runner(["unload-module", str(module.id)])
            unloaded.append(module.id)
        except UserError as exc:
            log.warning("could not unload a stale %s: %s", module.name, exc)
    if unloaded:
        log.info("removed a %s left by an earlier run (modules %s)", DESCRIPTION, unloaded)
    with contextlib.suppress(OSError):
        path.unlink()
    return unloaded


def clean_stale_at_start(runner: Runner = _pactl, path: Path | None = None) -> list[int]:
    """At the studio's start: remove a SnowAI Microphone a crashed studio left (only when its state file
    says one was made); never raises."""
    path = path or state_path()
    if not sys.platform.startswith("linux") or not path.exists():
        return []
    try:
        return clean_stale(runner, path)
    except Exception as exc:  # another studio is live, or no server: nothing to clean now
        log.info("no stale %s removed: %s", DESCRIPTION, exc)
        return []


class PulseVirtualMicrophone:
    """Creates and removes "SnowAI Microphone" on a PulseAudio / PipeWire server (see the module text)."""

    def __init__(self, runner: Runner = _pactl, state: Path | None = None, samplerate: int = RATE) -> None:
        self.runner = runner
        self.state = state or state_path()
        self.samplerate = int(samplerate)
        self.modules: list[int] = []
        self.cleaned: list[int] = []

    @property
    def device(self) -> str:
        return SOURCE_NAME

    def create(self) -> None:
        problem = server_problem(self.runner)
        if problem:
            raise UserError(problem)
        self.cleaned = clean_stale(self.runner, self.state)
        sink_args = [
            "load-module",
            "module-null-sink",
            f"sink_name={SINK_NAME}",
            f"rate={self.samplerate}",
            "channels=1",
            f"sink_properties=\"device.description='{DESCRIPTION} (studio output)'\"",
        ]
        try:
            self.modules.append(int(self.runner(sink_args).strip()))
            self._save()
            source_args = [
                "load-module",
                "module-remap-source",
                f"master={SINK_NAME}.monitor",
                f"source_name={SOURCE_NAME}",
                f"source_properties=\"device.description='{DESCRIPTION}' device.icon_name='audio-input-microphone'\"",
            ]
            self.modules.append(int(self.runner(source_args).strip()))
            self._save()
        except (UserError, ValueError) as exc:
            self.remove()
            raise UserError(f"{DESCRIPTION} could not be created ({exc}); the camera keeps going.") from None
        log.info("created %s (modules %s)", DESCRIPTION, self.modules)

    def _save(self) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        data = {"pid": os.getpid(), "started": _process_started(os.getpid()) or 0.0, "modules": self.modules}
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.state)

    def remove(self) -> None:
        """Unload the modules this object loaded (the source first) and forget the state file."""
        for module in reversed(self.modules):
            try:
                self.runner(["unload-module", str(module)])
            except UserError as exc:
                log.warning("could not unload module %s: %s", module, exc)
        if self.modules:
            log.info("removed %s", DESCRIPTION)
        self.modules = []
        with contextlib.suppress(OSError):
            self.state.unlink()

    def open_sink(self) -> PulseSink:
        return PulseSink(SINK_NAME, self.samplerate)


# ---- writing to the sink: libpulse-simple -------------------------------------------------------------


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


_PA_SAMPLE_FLOAT32LE = 5
_PA_STREAM_PLAYBACK = 1


def _libpulse_simple() -> Any:
    name = ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise UserError(
            "The virtual microphone needs libpulse (Debian/Ubuntu: sudo apt install libpulse0); the camera keeps going."
        ) from None
    lib.pa_simple_new.restype = ctypes.c_void_p
    lib.pa_simple_new.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_SampleSpec),
        ctypes.c_void_p,
        ctypes.POINTER(_BufferAttr),
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    lib.pa_simple_drain.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.pa_simple_get_latency.restype = ctypes.c_uint64
    lib.pa_simple_get_latency.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.pa_simple_free.argtypes = [ctypes.c_void_p]
    lib.pa_strerror.restype = ctypes.c_char_p
    lib.pa_strerror.argtypes = [ctypes.c_int]
    return lib


class PulseSink:
    """An audio sink (the :class:`~workers.media.audio.AudioSink` contract) playing into a PulseAudio sink.

    ``write`` blocks while the server's buffer (``buffer_seconds``) is full, like a sound card, so
    the writer keeps real-time pace; :attr:`buffered_frames` is the server's own latency figure.
    """

    #: A sound server may keep a writer waiting: the live path writes through a buffer thread.
    may_stall = True

    def __init__(self, sink: str, samplerate: int = RATE, *, buffer_seconds: float = 0.04) -> None:
        self.sink = sink
        self.samplerate = int(samplerate)
        self.channels = 1
        self.buffer_seconds = float(buffer_seconds)
        self._lib: Any = None
        self._handle: Any = None
        self._lock = threading.Lock()
        self._latency_frames = 0
        self._last_latency = 0.0

    @property
    def label(self) -> str:
        return DESCRIPTION

    def open(self) -> None:
        if self._handle is not None:
            return
        lib = _libpulse_simple()
        spec = _SampleSpec(_PA_SAMPLE_FLOAT32LE, self.samplerate, 1)
        target = int(self.buffer_seconds * self.samplerate) * 4
        attr = _BufferAttr(0xFFFFFFFF, target, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        err = ctypes.c_int(0)
        handle = lib.pa_simple_new(
            None,
            b"SnowAI Studio",
            _PA_STREAM_PLAYBACK,
            self.sink.encode(),
            b"Live voice",
            ctypes.byref(spec),
            None,
            ctypes.byref(attr),
            ctypes.byref(err),
        )
        if not handle:
            reason = lib.pa_strerror(err.value).decode(errors="replace")
            raise UserError(f"{DESCRIPTION} could not be opened ({reason}); the camera keeps going.")
        self._lib, self._handle = lib, handle

    def write(self, block: np.ndarray, timeout: float | None = None) -> None:
        data = np.ascontiguousarray(as_block(block, 1)[:, 0], dtype="<f4")
        if not len(data):
            return
        with self._lock:
            if self._handle is None:
                raise UserError(f"{DESCRIPTION} is not open.")
            err = ctypes.c_int(0)
            if self._lib.pa_simple_write(self._handle, data.ctypes.data, data.nbytes, ctypes.byref(err)) < 0:
                reason = self._lib.pa_strerror(err.value).decode(errors="replace")
                raise UserError(f"{DESCRIPTION} stopped taking sound ({reason}).")
            now = time.monotonic()
            if now - self._last_latency > 0.1:
                usec = self._lib.pa_simple_get_latency(self._handle, ctypes.byref(err))
                self._latency_frames = int(usec * self.samplerate // 1_000_000)
                self._last_latency = now

    @property
    def buffered_frames(self) -> int:
        return self._latency_frames

    def drain(self, timeout: float | None = None) -> bool:
        with self._lock:
            if self._handle is None:
                return True
            err = ctypes.c_int(0)
            return self._lib.pa_simple_drain(self._handle, ctypes.byref(err)) >= 0

    def close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                self._lib.pa_simple_free(handle)


# ---- Windows and macOS: virtual audio cables ----------------------------------------------------------

#: (what to look for in an output device's name, what the call program picks as its microphone).
CABLES = {
    "win32": (
        ("cable input", "CABLE Output"),
        ("voicemeeter input", "VoiceMeeter Output"),
        ("voicemeeter aux input", "VoiceMeeter Aux Output"),
    ),
    "darwin": (("blackhole", "BlackHole"),),
}
CABLE_HINTS = {
    "win32": "No virtual audio cable was found: install VB-CABLE (vb-audio.com/Cable) or VoiceMeeter, "
    "then go live again; the camera keeps going.",
    "darwin": "No virtual audio cable was found: install BlackHole (existential.audio/blackhole), "
    "then go live again; the camera keeps going.",
}


@dataclass(frozen=True)
class Cable:
    device: AudioDevice
    #: What the user picks as the microphone in the call program.
    microphone_name: str


def find_cable(outputs: Sequence[AudioDevice], platform: str = sys.platform) -> Cable | None:
    """The virtual audio cable among ``outputs`` (playback devices) for ``platform``, or None."""
    for needle, mic in CABLES.get("darwin" if platform == "darwin" else "win32", ()):
        for device in outputs:
            if needle in device.name.lower():
                return Cable(device, device.name if platform == "darwin" else mic)
    return None


def cable_hint(platform: str = sys.platform) -> str:
    return CABLE_HINTS["darwin" if platform == "darwin" else "win32"]


@dataclass
class VirtualMicrophone:
    """What going live opened as the virtual microphone: a sink to write to and what to tell the user."""

    sink: Any
    #: The name a call program lists.
    name: str
    #: Removes the device again (Linux); None where the device belongs to a cable.
    remove: Callable[[], None] | None = None


def open_virtual_microphone(
    platform: str = sys.platform,
    *,
    outputs: Sequence[AudioDevice] | None = None,
    runner: Runner = _pactl,
    state: Path | None = None,
    buffer_seconds: float = 0.3,
) -> VirtualMicrophone:
    """Create (Linux) or find (Windows, macOS) the virtual microphone and open a sink into it.

    ``buffer_seconds`` is what a cable's output holds (at least two of the live voice's blocks).

    Raises a UserError sentence with the fix when there is none; the caller keeps the camera going.
    """
    if platform.startswith("linux"):
        mic = PulseVirtualMicrophone(runner, state)
        mic.create()
        sink = mic.open_sink()
        try:
            sink.open()
        except BaseException:
            mic.remove()
            raise
        return VirtualMicrophone(sink, DESCRIPTION, mic.remove)
    from workers.media.audio import AudioOutput, list_output_devices

    cable = find_cable(list_output_devices() if outputs is None else outputs, platform)
    if cable is None:
        raise UserError(cable_hint(platform))
    out = AudioOutput(cable.device, RATE, 480, channels=1, buffer_seconds=buffer_seconds, drop_when_full=True)
    out.open()
    return VirtualMicrophone(out, cable.microphone_name)
