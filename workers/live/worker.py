"""The Qt worker of going live: one :class:`~workers.live.session.LiveSession` and its engines on a thread.

:meth:`LiveWorker.load` (on the worker's thread) loads the face swap and the voice, opens the
camera, the microphone and the outputs through the factories it was given, and starts the
session; then a loop publishes the newest frame that left (``take_result`` gives a
:class:`~workers.queues.StreamResult` with the frame) and the measurements a few times a second.
Controls change live through :meth:`~workers.base.Worker.set_param`: ``passthrough``, ``muted``,
``pitch``, ``formant``, ``offset_ms``, ``noise_suppression``, ``noise_gate``, ``gate_db``,
``preset`` (a :class:`~workers.live.options.LivePreset`: its face and voice) and ``record`` (a
path to start recording what goes out, None to stop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Signal

from workers.base import Worker
from workers.errors import describe_exception
from workers.live.options import LiveOptions, LivePreset
from workers.queues import StreamResult

log = logging.getLogger(__name__)


@dataclass
class LiveDevices:
    """How the worker gets its devices (tests give fakes): each factory is called on the worker's thread."""

    camera: Callable[[], Any] | None = None
    microphone: Callable[[], Any] | None = None
    monitor: Callable[[], Any] | None = None
    virtual_camera: Any = None
    virtual_microphone: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class LiveWorker(Worker):
    name = "Go live"
    #: A recording of what went out was saved (its path).
    recording_saved = Signal(str)
    #: The face and voice of a preset are in use (its name), or could not be (the sentence).
    preset_applied = Signal(str)

    def __init__(self, options: LiveOptions, devices: LiveDevices, store: Any = None) -> None:
        super().__init__()
        self.options = options
        self.devices = devices
        self.store = store
        self.session: Any = None
        self.face: Any = None
        self._last_seq = -1.0
        self._wake = threading.Event()

    def load(self) -> None:
        from workers.live.engines import load_face, load_voice
        from workers.live.session import LiveSession

        self.face = load_face(self.options.faces, self.store)
        converter = load_voice(self.options.voice, self.store, pitch=self.options.pitch, formant=self.options.formant)
        kwargs: dict[str, Any] = {}
        if self.devices.virtual_camera is not None:
            kwargs["virtual_camera"] = self.devices.virtual_camera
        if self.devices.virtual_microphone is not None:
            kwargs["virtual_microphone"] = self.devices.virtual_microphone
        kwargs.update(self.devices.extra)
        d = self.devices
        self.session = LiveSession(
            self.options,
            camera=d.camera() if d.camera else None,
            microphone=d.microphone() if d.microphone else None,
            face=self.face,
            converter=converter,
            monitor=d.monitor() if d.monitor and self.options.monitor else None,
            on_warning=self._emit_warning,
            **kwargs,
        )
        self.session.start()

    def step(self) -> bool:
        session = self.session
        if session is None or not session.running:
            return False
        self._wake.wait(0.03)
        self._wake.clear()
        latest = session.latest_frame()
        if latest is not None and latest[1] != self._last_seq:
            frame, left_at = latest
            self._last_seq = left_at
            self.publish(StreamResult(frame, left_at, session.frames_out, done_at=time.monotonic()))
        return not (session.video_error and session.audio_error)

    def interrupt(self) -> None:
        self._wake.set()

    def on_param(self, name: str, value: Any) -> None:
        session = self.session
        if session is None:
            return
        if name == "passthrough":
            session.set_passthrough(bool(value))
        elif name == "muted":
            session.set_muted(bool(value))
        elif name in ("pitch", "formant"):
            session.set_voice_params(**{name: float(value)})
        elif name == "offset_ms":
            session.set_offset_ms(float(value))
        elif name == "noise_suppression":
            session.set_noise_suppression(bool(value))
        elif name == "noise_gate":
            session.set_noise_gate(bool(value))
        elif name == "gate_db":
            session.set_noise_gate(session.options.noise_gate, float(value))
        elif name == "preset":
            self._apply_preset(value)
        elif name == "record":
            self._record(value)

    def _apply_preset(self, preset: LivePreset) -> None:
        from workers.live.engines import load_voice, read_faces

        try:
            if self.face is None and preset.faces:
                from workers.live.engines import load_face

                self.face = load_face(preset.faces, self.store)  # the first face of this session
                self.session.face = self.face
            elif self.face is not None:
                self.session.set_face(read_faces(preset.faces))
            if preset.voice != self.options.voice:
                self.session.set_converter(load_voice(preset.voice, self.store))
                self.options.voice = preset.voice
            self.session.set_voice_params(pitch=preset.pitch, formant=preset.formant)
        except Exception as exc:
            self.preset_applied.emit(self.report(exc, f"The preset {preset.name} could not be used"))
            return
        self.preset_applied.emit(preset.name)

    def _record(self, path: str | None) -> None:
        if path:
            try:
                self.session.start_recording(str(path))
            except Exception as exc:
                self.report(exc, "Recording could not start")
            return
        saved = self.session.stop_recording()
        if saved:
            self.recording_saved.emit(saved)

    def extra_stats(self) -> dict[str, Any]:
        return self.session.stats() if self.session is not None else {}

    def unload(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            saved = session.stop_recording()
            if saved:
                self.recording_saved.emit(saved)
            try:
                session.stop()
            except Exception as exc:
                log.warning("%s", describe_exception(exc, "Stopping the live session"))
        face, self.face = self.face, None
        if face is not None:
            face.close()
