"""Going live: the face swap on the camera and the voice conversion on the microphone, leaving together.

:class:`LiveSession` runs three threads:

- the picture: camera → face swap → :class:`~workers.live.sync.FrameDelay`, which sends each frame
  to the virtual camera, the recording and the preview when it is due;
- the voice: microphone → noise suppression → noise gate → the voice converter (the realtime
  :class:`~workers.voice_conversion.realtime.BlockConverter`, with passthrough) → mute →
  :class:`~workers.live.sync.AudioDelay` → the virtual microphone, the headphone monitor and the
  recording;
- the frame delay's own sender.

Each path measures its own latency on every item (see :mod:`workers.live.sync`); the later one
sets the pace and the earlier one is held back so both leave within a few milliseconds, plus the
manual offset. When the virtual camera or the virtual microphone cannot be had, one sentence says
how to get it and the other stream keeps going; so it does when the camera or the microphone fails.

No Qt here: the Qt worker, the CLI and the tests drive the same object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.errors import UserError, describe_exception
from workers.live.cleanup import NoiseGate, NoiseSuppressor
from workers.live.options import LiveOptions
from workers.live.outputs import BufferedSink, VirtualCameraFactory, open_virtual_camera
from workers.live.recording import LiveRecorder
from workers.live.sync import AudioDelay, FrameDelay, Smoothed, SyncPlan
from workers.live.virtual_mic import VirtualMicrophone, open_virtual_microphone
from workers.media.audio import convert_channels, rms_dbfs
from workers.voice_conversion.realtime import BlockConverter

log = logging.getLogger(__name__)

#: Silence written ahead of the voice when it starts (the output's safety margin against late blocks).
OUTPUT_MARGIN_SECONDS = 0.03

Warn = Callable[[str], None]
Preview = Callable[[np.ndarray, float], None]


def warm_up_voice(converter: Any, rate: int, options: LiveOptions) -> None:
    """Convert a little quiet noise twice before going live: a model's first call (allocations, a graph it
    builds) can take seconds, which would otherwise hold up the first words and upset the sync."""
    probe = BlockConverter(
        converter,
        samplerate=rate,
        block_seconds=options.block_seconds,
        crossfade_seconds=options.crossfade_seconds,
        extra_seconds=options.extra_seconds,
        silence_db=-200.0,
    )
    noise = (0.01 * np.random.default_rng(0).standard_normal(probe.block)).astype(np.float32)
    start = time.perf_counter()
    for _ in range(2):
        probe.process(noise)
    log.info("the voice was warmed up in %.0f ms", (time.perf_counter() - start) * 1000.0)


class LiveSession:
    """See the module text. Devices and engines are given opened-or-not and loaded; :meth:`start`
    opens the devices and the outputs, :meth:`stop` releases everything (safe to call twice)."""

    def __init__(
        self,
        options: LiveOptions,
        *,
        camera: Any | None,
        microphone: Any | None,
        face: Any | None = None,
        converter: Any | None = None,
        virtual_camera: VirtualCameraFactory | None = None,
        virtual_microphone: Callable[[], VirtualMicrophone] | None = None,
        monitor: Any | None = None,
        preview: Preview | None = None,
        on_warning: Warn | None = None,
        capture_ms: float | None = None,
        camera_out_ms: float | None = None,
    ) -> None:
        self.options = options
        self.camera = camera
        self.microphone = microphone
        self.face = face
        self.converter = converter
        # pyvirtualcam and the SnowAI Microphone unless other outputs are given (tests, the measurement)
        self._vcam_factory = (virtual_camera or open_virtual_camera) if options.virtual_camera else None
        self._vmic_factory = (
            (virtual_microphone or (lambda: open_virtual_microphone(buffer_seconds=self.output_buffer_seconds)))
            if options.virtual_microphone
            else None
        )
        self.monitor = monitor
        self.preview = preview
        self.on_warning = on_warning
        fps = float(getattr(getattr(camera, "info", None), "fps", 0.0) or 30.0)
        is_device = bool(getattr(camera, "is_device", False))
        #: A camera hands a frame over about a frame after its exposure; files and patterns do not.
        self.capture_ms = float(capture_ms if capture_ms is not None else (1000.0 / fps if is_device else 0.0))
        self._camera_out_ms = camera_out_ms
        self.vcam: Any = None
        self.vmic: VirtualMicrophone | None = None
        self.warnings: list[str] = []
        self.video_ms = Smoothed(0.1)
        self.audio_ms = Smoothed(0.5)  # measured exactly per block: follow it closely
        self.process_ms = Smoothed(0.1)
        self.infer_ms = Smoothed(0.2)
        self.plan = SyncPlan(0.0, 0.0, options.offset_ms)
        self.frames_in = 0
        self.frames_out = 0
        self.blocks = 0
        self.dropped_audio = 0
        #: Silent blocks left out to bring the voice back to its latency after a busy moment.
        self.skipped_blocks = 0
        self.levels = (-120.0, -120.0)
        self._block: BlockConverter | None = None
        self._denoise: NoiseSuppressor | None = None
        self._gate: NoiseGate | None = None
        self._delay: AudioDelay | None = None
        self._frame_delay: FrameDelay | None = None
        self._recorder: LiveRecorder | None = None
        self._latest: tuple[np.ndarray, float] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fps_times: list[float] = []
        self._mute_gain = 0.0 if options.muted else 1.0
        self._primed = False
        self._written_at = 0.0
        #: The voice's latency by stage (ms) for the last block: what adds up to ``audio_ms``.
        self.voice_stages: dict[str, float] = {}
        self._new_converter: Any = None
        self.running = False
        self.video_error: str | None = None
        self.audio_error: str | None = None

    # ---- warnings --------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        if message in self.warnings:
            return
        self.warnings.append(message)
        log.warning("%s", message)
        if self.on_warning is not None:
            try:
                self.on_warning(message)
            except Exception as exc:
                log.debug("a warning listener failed: %s", exc)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        video = self._open_camera()
        audio = self._open_microphone()
        if not video and not audio:
            self._close_all()
            raise UserError(self.warnings[0] if self.warnings else "Neither the camera nor the microphone could start.")
        self.running = True
        if video:
            self._frame_delay = FrameDelay(self._send_frame, self._video_target)
            self._spawn(self._video_loop, "live-video")
        if audio:
            self._spawn(self._audio_loop, "live-voice")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _open_camera(self) -> bool:
        if self.camera is None:
            return False
        try:
            self.camera.open()
        except Exception as exc:
            self._warn(describe_exception(exc, "The camera could not start; the voice keeps going"))
            return False
        return True

    def _open_microphone(self) -> bool:
        if self.microphone is None:
            return False
        try:
            self.microphone.open()
        except Exception as exc:
            self._warn(describe_exception(exc, "The microphone could not start; the picture keeps going"))
            return False
        rate = int(self.microphone.samplerate)
        self._build_block(rate)
        self._warm_up(rate)
        self._delay = AudioDelay(rate)
        self.set_noise_suppression(self.options.noise_suppression)
        self._gate = NoiseGate(rate, self.options.gate_db) if self.options.noise_gate else None
        if self._vmic_factory is not None:
            try:
                vmic = self._vmic_factory()
                if getattr(vmic.sink, "may_stall", False):  # a sound server: never let it hold up the voice
                    vmic.sink = BufferedSink(vmic.sink, max_seconds=self.output_buffer_seconds)
                    vmic.sink.open()
                self.vmic = vmic
                log.info("live voice goes to %s", vmic.name)
            except Exception as exc:
                self._warn(describe_exception(exc))
        if self.monitor is not None:
            try:
                self.monitor.open()
            except Exception as exc:
                self._warn(describe_exception(exc, "The headphone monitor could not start"))
                self.monitor = None
        self._resamplers: dict[int, Any] = {}
        return True

    def _build_block(self, rate: int) -> None:
        if self.converter is None:
            from workers.voice_conversion.dsp import DSPVoiceChanger

            self.converter = DSPVoiceChanger(rate)
        self.converter.set_params(pitch=self.options.pitch, formant=self.options.formant)
        old = self._block
        block = BlockConverter(
            self.converter,
            samplerate=rate,
            block_seconds=self.options.block_seconds,
            crossfade_seconds=self.options.crossfade_seconds,
            extra_seconds=self.options.extra_seconds,
            silence_db=self.options.silence_db,
            passthrough=self.options.passthrough,
        )
        if old is not None:
            block.inherit(old)
        self._block = block

    @property
    def output_buffer_seconds(self) -> float:
        """What a voice output should hold: two blocks and a little more (a block is written at once)."""
        return max(0.2, 2.0 * self.options.block_seconds + 0.05)

    def _warm_up(self, rate: int) -> None:
        warm_up_voice(self.converter, rate, self.options)

    def stop(self) -> None:
        """Stop both streams, finish a recording, close the outputs and devices (the virtual microphone goes)."""
        self._stop.set()
        for dev in (self.camera, self.microphone):
            if dev is not None and hasattr(dev, "interrupt"):
                dev.interrupt()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(3.0)
        self._threads = []
        self.stop_recording()
        self._close_all()
        self.running = False

    def _close_all(self) -> None:
        if self._frame_delay is not None:
            self._frame_delay.close()
            self._frame_delay = None
        things: list[tuple[str, Any]] = [
            ("camera", self.camera),
            ("microphone", self.microphone),
            ("monitor", self.monitor),
            ("virtual camera", self.vcam),
        ]
        if self.vmic is not None:
            things.append(("virtual microphone", self.vmic.sink))
        for what, thing in things:
            if thing is None:
                continue
            try:
                thing.close()
            except Exception as exc:
                log.warning("closing the %s failed: %s", what, exc)
        self.vcam = None
        if self.vmic is not None and self.vmic.remove is not None:
            try:
                self.vmic.remove()
            except Exception as exc:
                log.warning("removing the virtual microphone failed: %s", exc)
        self.vmic = None
        if self._denoise is not None:
            self._denoise.close()
            self._denoise = None

    # ---- controls (any thread) --------------------------------------------------------------------
    def set_offset_ms(self, ms: float) -> None:
        self.options.offset_ms = float(ms)

    def set_passthrough(self, on: bool) -> None:
        self.options.passthrough = bool(on)
        with self._lock:
            if self._block is not None:
                self._block.configure(passthrough=bool(on))

    def set_muted(self, on: bool) -> None:
        self.options.muted = bool(on)

    def set_voice_params(self, **params: float) -> None:
        for key in ("pitch", "formant"):
            if key in params:
                setattr(self.options, key, float(params[key]))
        with self._lock:
            if self.converter is not None:
                self.converter.set_params(**{k: float(v) for k, v in params.items() if k in ("pitch", "formant")})

    def set_noise_suppression(self, on: bool) -> None:
        self.options.noise_suppression = bool(on)
        with self._lock:
            if not on or self.microphone is None:
                if self._denoise is not None:
                    self._denoise.close()
                self._denoise = None
                return
            if self._denoise is None:
                try:
                    self._denoise = NoiseSuppressor(int(self.microphone.samplerate))
                except UserError as exc:
                    self.options.noise_suppression = False
                    self._warn(str(exc))

    def set_noise_gate(self, on: bool, threshold_db: float | None = None) -> None:
        self.options.noise_gate = bool(on)
        if threshold_db is not None:
            self.options.gate_db = float(threshold_db)
        with self._lock:
            if not on or self.microphone is None:
                self._gate = None
            elif self._gate is None:
                self._gate = NoiseGate(int(self.microphone.samplerate), self.options.gate_db)
            else:
                self._gate.threshold_db = self.options.gate_db

    def set_converter(self, converter: Any) -> None:
        """Use another voice from the next block on (a preset's voice, loaded on another thread)."""
        self._new_converter = converter

    def set_face(self, images: list[np.ndarray]) -> None:
        if self.face is not None:
            if images:
                self.face.set_source(images)
            else:
                self.face.clear_source()

    def start_recording(self, path: str) -> str:
        self.stop_recording()
        rate = int(getattr(self.microphone, "samplerate", 48000) or 48000)
        fps = float(getattr(getattr(self.camera, "info", None), "fps", 30.0) or 30.0)
        with self._lock:
            self._recorder = LiveRecorder(path, rate, fps)
            return str(self._recorder.path)

    def stop_recording(self) -> str | None:
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            return str(recorder.close())
        except UserError as exc:
            self._warn(str(exc))
            return None

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def latest_frame(self) -> tuple[np.ndarray, float] | None:
        """The newest frame that left, and when (for a preview)."""
        return self._latest

    # ---- the picture ------------------------------------------------------------------------------
    @property
    def camera_out_ms(self) -> float:
        if self._camera_out_ms is not None:
            return self._camera_out_ms
        fps = float(getattr(self.vcam, "fps", 0.0) or 0.0)
        return 1000.0 / fps if self.vcam is not None and fps > 0 else 0.0

    def _video_target(self) -> float:
        """Seconds after capture at which a frame is sent (its processing, then the sync delay)."""
        return (self.process_ms.get() + self.plan.video_delay_ms) / 1000.0

    def _video_loop(self) -> None:
        assert self.camera is not None and self._frame_delay is not None
        try:
            while not self._stop.is_set():
                item = self.camera.read()
                if item is None:
                    break
                self.frames_in += 1
                frame = item.payload
                if self.face is not None:
                    try:
                        frame = self.face.process(frame)
                    except Exception as exc:  # a face engine failure never stops the picture
                        self._warn(describe_exception(exc, "The face swap failed on a frame"))
                spent = (time.monotonic() - item.timestamp) * 1000.0
                self.process_ms.add(spent)
                self.video_ms.add(spent + self.capture_ms + self.camera_out_ms)
                self._update_plan()
                self._frame_delay.push(frame, item.timestamp)
        except Exception as exc:
            self.video_error = describe_exception(exc, "The camera stopped; the voice keeps going")
            self._warn(self.video_error)

    def _send_frame(self, frame: np.ndarray, timestamp: float, left_at: float) -> None:
        self.frames_out += 1
        self._fps_times.append(left_at)
        if len(self._fps_times) > 60:
            del self._fps_times[:-60]
        if self._vcam_factory is not None and self.vcam is None:
            h, w = frame.shape[:2]
            fps = float(getattr(getattr(self.camera, "info", None), "fps", 30.0) or 30.0)
            try:
                self.vcam = self._vcam_factory(w, h, fps)
                log.info("live picture goes to %s", getattr(self.vcam, "device", "the virtual camera"))
            except Exception as exc:
                self._vcam_factory = None
                self._warn(describe_exception(exc))
        if self.vcam is not None:
            try:
                cw, ch = int(getattr(self.vcam, "width", 0) or 0), int(getattr(self.vcam, "height", 0) or 0)
                out = frame
                if cw and ch and (cw, ch) != (frame.shape[1], frame.shape[0]):
                    import cv2

                    out = cv2.resize(frame, (cw, ch), interpolation=cv2.INTER_AREA)
                self.vcam.send(np.ascontiguousarray(out))
            except Exception as exc:
                self._warn(describe_exception(exc, "The virtual camera stopped; the voice keeps going"))
                vcam, self.vcam, self._vcam_factory = self.vcam, None, None
                vcam.close()
        recorder = self._recorder
        if recorder is not None:
            try:
                recorder.write_frame(frame, left_at)
            except Exception as exc:
                self._warn(describe_exception(exc, "The recording stopped"))
                self._recorder = None
                recorder.abort()
        self._latest = (frame, left_at)
        if self.preview is not None:
            self.preview(frame, left_at)

    # ---- the voice ----------------------------------------------------------------------------------
    def _audio_loop(self) -> None:
        mic = self.microphone
        assert mic is not None and self._block is not None
        rate = int(mic.samplerate)
        pending = np.zeros(0, np.float32)
        last_time = 0.0
        try:
            while not self._stop.is_set():
                item = mic.read(timeout=0.1)
                if item is None:
                    if mic.ended:
                        break
                    continue
                data = np.asarray(item.payload, np.float32)
                mono = convert_channels(data, 1)[:, 0] if data.ndim == 2 else data.reshape(-1)
                pending = np.concatenate([pending, mono])
                last_time = item.timestamp
                if self._new_converter is not None:
                    with self._lock:
                        self.converter, self._new_converter = self._new_converter, None
                        self._build_block(rate)
                size = self._block.block
                if len(pending) > 4 * size:  # fell behind: drop the oldest audio, keep the latency bounded
                    drop = len(pending) - 4 * size
                    pending = pending[drop:]
                    self.dropped_audio += drop
                while len(pending) >= size and not self._stop.is_set():
                    newest = last_time - (len(pending) - size) / rate
                    self._voice_block(pending[:size], newest, rate)
                    pending = pending[size:]
                    size = self._block.block
        except Exception as exc:
            self.audio_error = describe_exception(exc, "The microphone stopped; the picture keeps going")
            self._warn(self.audio_error)

    def _voice_block(self, x: np.ndarray, newest: float, rate: int) -> None:
        start = time.perf_counter()
        lag = 0
        denoise = 0
        with self._lock:
            level_in = rms_dbfs(x)
            if self._denoise is not None:
                x = self._denoise.process(x)
                denoise = round(self._denoise.latency_seconds * rate)
                lag += denoise
            if self._gate is not None:
                x = self._gate.process(x)
            block = self._block
            assert block is not None
            y = block.process(x)
            lag += block.search + block.crossfade - int(getattr(block, "_offset", 0))
        target = 0.0 if self.options.muted else 1.0
        if target != self._mute_gain or target == 0.0:
            y = y * np.linspace(self._mute_gain, target, len(y), dtype=np.float32)
            self._mute_gain = target
        self.infer_ms.add((time.perf_counter() - start) * 1000.0)
        assert self._delay is not None
        y = self._delay.process(y)
        self.levels = (level_in, rms_dbfs(y))
        if not np.any(y) and self._behind():
            # the output holds more than it should (the machine was busy, blocks came late): a silent
            # block is left out, so the voice gets back to its latency in the next pause
            self.skipped_blocks += 1
            self.blocks += 1
            return
        left_at = self._write_voice(y, rate)
        # the last sample out is input sample ``newest`` less the converter's look-ahead and the delay line
        own = left_at + len(y) / rate - newest + lag / rate
        converter_delay = float(getattr(self.converter, "delay_seconds", 0.0) or 0.0)
        self.audio_ms.add((own + converter_delay) * 1000.0)
        written = self._written_at
        self.voice_stages = {
            "block": 1000.0 * len(y) / rate,
            "look_ahead": 1000.0 * ((lag - denoise) / rate + converter_delay),
            "noise_suppression": 1000.0 * denoise / rate,
            "conversion": 1000.0 * (written - newest),
            "output_buffer": 1000.0 * (left_at - written),
        }
        self._update_plan()
        self._delay.set_delay_ms(self.plan.audio_delay_ms)
        self.blocks += 1

    def _behind(self) -> bool:
        """Whether the primary voice output holds more than a block and a margin."""
        sink = self.vmic.sink if self.vmic is not None else self.monitor
        if sink is None:
            return False
        held = float(getattr(sink, "buffered_frames", 0) or 0) / max(1, int(sink.samplerate))
        return held > self.options.block_seconds + OUTPUT_MARGIN_SECONDS + 0.05

    def _write_voice(self, y: np.ndarray, rate: int) -> float:
        """Write to the outputs; the time the block's first sample leaves the primary output."""
        ahead = 0
        if not self._primed:
            # a little silence ahead of the first block: a block that comes a few milliseconds late (a
            # busy machine) then never leaves the output empty, which would push the voice later for good
            self._primed = True
            ahead = round(OUTPUT_MARGIN_SECONDS * rate)
            y = np.concatenate([np.zeros(ahead, np.float32), y])
        now = time.monotonic()
        self._written_at = now
        left_at = now
        primary = True
        outputs = [(self.vmic.sink if self.vmic is not None else None), self.monitor]
        for sink in outputs:
            if sink is None:
                continue
            out_rate = int(sink.samplerate)
            data = y
            if out_rate != rate:
                resampler = self._resamplers.get(id(sink))
                if resampler is None:
                    import soxr

                    resampler = soxr.ResampleStream(rate, out_rate, 1, dtype="float32")
                    self._resamplers[id(sink)] = resampler
                data = np.asarray(resampler.resample_chunk(y), np.float32)
            try:
                if primary:
                    left_at = now + float(getattr(sink, "buffered_frames", 0) or 0) / out_rate
                    primary = False
                sink.write(data[:, None])
            except Exception as exc:
                self._warn(describe_exception(exc, "A live sound output stopped"))
                if sink is self.monitor:
                    self.monitor = None
                elif self.vmic is not None:
                    vmic, self.vmic = self.vmic, None
                    vmic.sink.close()
                    if vmic.remove is not None:
                        vmic.remove()
        recorder = self._recorder
        if recorder is not None:
            try:
                recorder.write_audio(y, left_at)
            except Exception as exc:
                self._warn(describe_exception(exc, "The recording stopped"))
                self._recorder = None
                recorder.abort()
        return left_at + ahead / rate

    # ---- sync ----------------------------------------------------------------------------------------
    def _update_plan(self) -> None:
        video = self.video_ms.value if self.camera is not None and self._frame_delay is not None else None
        audio = self.audio_ms.value if self._block is not None else None
        if video is None or audio is None:
            self.plan = SyncPlan(video or 0.0, audio or 0.0, 0.0)
            return
        self.plan = SyncPlan(video, audio, self.options.offset_ms)

    def stats(self) -> dict[str, Any]:
        times = self._fps_times[-30:]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0
        plan = self.plan
        return {
            "fps": round(fps, 1),
            "video_ms": round(plan.video_ms, 1),
            "audio_ms": round(plan.audio_ms, 1),
            "video_delay_ms": round(plan.video_delay_ms, 1),
            "audio_delay_ms": round(plan.audio_delay_ms, 1),
            "latency_ms": round(max(plan.video_ms + plan.video_delay_ms, plan.audio_ms + plan.audio_delay_ms), 1),
            "offset_ms": self.options.offset_ms,
            "voice_ms": round(self.infer_ms.get(), 2),
            "input_dbfs": round(self.levels[0], 1),
            "output_dbfs": round(self.levels[1], 1),
            "speech": round(self._denoise.speech_probability, 2) if self._denoise is not None else None,
            "gate_open": bool(self._gate.is_open) if self._gate is not None else None,
            "passthrough": self.options.passthrough,
            "muted": self.options.muted,
            "recording": self.recording,
            "virtual_camera": str(getattr(self.vcam, "device", "") or "") if self.vcam is not None else "",
            "virtual_microphone": self.vmic.name if self.vmic is not None else "",
            "frames": self.frames_out,
            "blocks": self.blocks,
            "picture_stages": {
                "capture": round(self.capture_ms, 1),
                "face_swap": round(self.process_ms.get(), 1),
                "virtual_camera": round(self.camera_out_ms, 1),
            },
            "voice_stages": {k: round(v, 1) for k, v in self.voice_stages.items()},
        }
