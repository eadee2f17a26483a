"""The Qt worker of voice conversion: one converter on its own thread, realtime and on files.

:class:`VoiceConversionWorker` loads its converter in :meth:`load` (on its thread: torch and the
pitch estimators are imported there, never on the UI thread): the built-in DSP voice changer when
no model is chosen, else a so-vits-svc or RVC checkpoint. It then serves

- **realtime conversion**: :meth:`start_realtime` opens a microphone (or any
  :class:`~workers.media.audio.AudioSource`) and an output (a speaker, a virtual audio cable, or
  any :class:`~workers.media.audio.AudioSink`) from injectable factories and runs a
  :class:`~workers.voice_conversion.realtime.RealtimeSession` between them; :meth:`stop_realtime`
  ends it and releases both devices. ``stats`` carries the inference milliseconds per block, the
  algorithmic and total latency, the real-time factor and the input and output levels;
- **file jobs**: :meth:`convert_files` converts WAV, FLAC, MP3 and OGG files with ``progress`` and
  prompt cancellation; an output never overwrites its input.

Parameters change live through :meth:`~workers.base.Worker.set_param`: every
:class:`~workers.voice_conversion.options.VoiceConversionOptions` field (pitch, formant, f0 method,
gains, passthrough... apply to the next block; the block size, crossfade and context rebuild the
block converter, keeping the devices open; another ``model`` or ``index`` loads it on the worker's
thread while the previous converter keeps running until the new one is ready), plus
``"input_device"`` and ``"output_device"`` (reopening the devices when realtime runs) and
``"preset"`` (``"cpu"`` or ``"gpu"``: block, crossfade and context together).

A device that fails (unplugged, busy, missing, or a microphone that stops delivering: it is read
through a :class:`~workers.media.watch.WatchedSource`) ends realtime conversion with one ``error``
sentence, ``stream_halted(sentence)`` and ``realtime_changed(False, sentence, "error")``; calling
:meth:`start_realtime` again (a Retry button) reopens both devices with the same settings. The
chosen checkpoint is watched (see :mod:`workers.base`): a file changed on disk is loaded again (the
previous voice stays in use when it cannot be), a removed one is reported once. A checkpoint that cannot be loaded
gives ``model_failed(sentence)`` and the previous converter stays in use (a saved voice that cannot
be loaded at start gives way to the built-in voice changer, so that realtime conversion always works).

One converter serves the live conversion and file jobs at the same time: converters keep no state
between two calls (the realtime joins live in the block converter), and parameters reach the live
path between two blocks.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal, Slot

from workers.base import JobContext, Worker
from workers.errors import Cancelled, UserError, describe_exception
from workers.voice_conversion.cli import sink_buffer_seconds
from workers.voice_conversion.options import ENGINES, F0_METHODS, PRESETS, VoiceConversionOptions

if TYPE_CHECKING:
    from workers.media.audio import AudioSink, AudioSource
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

#: ``factory(device, samplerate, blocksize)`` builds an unopened microphone (``device`` None: the
#: system default; ``samplerate`` None: the device's own rate).
SourceFactory = Callable[[str | None, int | None, int], "AudioSource"]
#: ``factory(device, samplerate, blocksize)`` builds an unopened output (a speaker or a virtual cable).
SinkFactory = Callable[[str | None, int | None, int], "AudioSink"]
#: ``factory(options, store, device)`` loads a converter (on the worker's thread).
ConverterFactory = Callable[[VoiceConversionOptions, Any, str], Any]

#: "Keep the device chosen before" (the default of :meth:`VoiceConversionWorker.start_realtime`).
_KEEP: Any = object()
#: Options that the converter takes live (``Converter.set_params``).
CONVERTER_PARAMS = ("pitch", "formant", "f0_method", "index_ratio", "speaker", "auto_pitch")
#: Options that the running block converter takes live (``BlockConverter.configure``).
BLOCK_PARAMS = ("silence_db", "passthrough", "input_gain_db", "output_gain_db")
#: Options that change the block layout: the block converter is rebuilt (devices stay open).
LAYOUT_PARAMS = ("block_seconds", "crossfade_seconds", "extra_seconds")
#: Options that need another converter.
MODEL_PARAMS = ("model", "index", "config", "engine")
#: Output formats a file job can write.
FILE_FORMATS = ("wav", "flac", "ogg", "mp3")
#: Suffixes of the audio files a file job reads.
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff")

# Limits of the live settings (values outside are clamped, never refused).
_RANGES: dict[str, tuple[float, float]] = {
    "pitch": (-36.0, 36.0),
    "formant": (-12.0, 12.0),
    "index_ratio": (0.0, 1.0),
    "block_seconds": (0.02, 2.0),
    "crossfade_seconds": (0.0, 0.5),
    "extra_seconds": (0.0, 4.0),
    "silence_db": (-120.0, 0.0),
    "input_gain_db": (-40.0, 40.0),
    "output_gain_db": (-40.0, 40.0),
}
_FIELDS = {f.name: f for f in dataclasses.fields(VoiceConversionOptions)}


def coerce_option(name: str, value: Any) -> Any:
    """``value`` as the type of option ``name`` (clamped to its range); UserError for a bad value."""
    if name == "f0_method":
        method = "crepe-full" if value == "crepe" else str(value)
        if method not in F0_METHODS:
            raise UserError(f"Unknown pitch method {value!r}; choose one of {', '.join(F0_METHODS)}.")
        return method
    if name == "engine":
        if value not in ENGINES:
            raise UserError(f"Unknown engine {value!r}; choose one of {', '.join(ENGINES)}.")
        return str(value)
    if name == "preset":
        if value not in PRESETS:
            raise UserError(f"Unknown preset {value!r}; choose one of {', '.join(PRESETS)}.")
        return str(value)
    spec = _FIELDS.get(name)
    if spec is None:
        raise UserError(f"Voice conversion has no setting called {name!r}.")
    default = spec.default
    try:
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            low, high = _RANGES.get(name, (float("-inf"), float("inf")))
            number = float(value)
            if number != number:  # NaN
                raise ValueError(value)
            return min(high, max(low, number))
        if isinstance(default, str):
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise UserError(f"{value!r} is not a valid value for {name.replace('_', ' ')}.") from None
    return value


def copy_options(options: VoiceConversionOptions) -> VoiceConversionOptions:
    return dataclasses.replace(options)


def model_label(options: VoiceConversionOptions) -> str:
    """A short name for the chosen voice: "Built-in voice changer" or the checkpoint's name."""
    if not options.model:
        return "Built-in voice changer"
    path = Path(options.model)
    if path.name.lower() in ("config.json",) or path.suffix.lower() in (".pth", ".pt", ".safetensors"):
        if path.name.lower().startswith("g_") or path.name.lower() == "config.json":
            return path.parent.name or path.name
        return path.stem
    return path.name or options.model


@dataclass
class FileJobReport:
    """What a file job did: the files written, those that failed (with the sentence), whether the
    user cancelled it (the files finished before that are kept), and the sample rate and channels of
    each file written (read back from it)."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    audio_seconds: float = 0.0
    #: ``(sample rate, channels)`` of each written file, by its path.
    written: dict[Path, tuple[int, int]] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        """Seconds of work per second of audio (below 1: faster than real time)."""
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0

    def summary(self, *, speed: bool = False) -> str:
        """"Converted 1 file: /music/take-converted.wav (44.1 kHz, stereo)."; ``speed`` adds the
        real-time factor ("0.05x real time") in the brackets."""
        n = len(self.done)
        text = f"Converted {n} file{'s' if n != 1 else ''}"
        if n == 1:
            text += f": {self.done[0][1]}"
        elif n:
            text += f" into {self.done[0][1].parent}" if len({d.parent for _, d in self.done}) == 1 else ""
        details = [self.written_shape()] if self.written_shape() else []
        if speed and self.rtf and n:
            details.append(f"{self.rtf:.2f}x real time")
        if details:
            text += f" ({'; '.join(details)})"
        if self.cancelled:
            text += "; cancelled, the rest were not converted"
        if self.failed:
            text += f"; {len(self.failed)} could not be converted ({self.failed[0][0].name}: {self.failed[0][1]})"
        return text.rstrip(".") + "."

    def written_shape(self) -> str:
        """"44.1 kHz, stereo" for the files written ("44.1 to 48 kHz, mono and stereo" when they differ)."""
        shapes = [self.written[dst] for _, dst in self.done if dst in self.written]
        if not shapes:
            return ""
        rates = sorted({rate for rate, _ in shapes})
        counts = sorted({channels for _, channels in shapes})
        low, high = rates[0] / 1000, rates[-1] / 1000
        rate_text = f"{low:g} kHz" if len(rates) == 1 else f"{low:g} to {high:g} kHz"
        return f"{rate_text}, {' and '.join(channels_name(c) for c in counts)}"


def channels_name(channels: int) -> str:
    """"mono", "stereo" or "6 channels"."""
    return {1: "mono", 2: "stereo"}.get(int(channels), f"{int(channels)} channels")


def output_path(src: Path, outdir: Path | None, fmt: str | None = "wav", tag: str = "converted") -> Path:
    """Where a converted file goes: ``<outdir or the input's folder>/<stem>-<tag>.<fmt>``, never the
    input itself nor an existing file (``-2``, ``-3``... are added)."""
    from workers.files import free_name

    src = Path(src)
    suffix = f".{fmt.lower().lstrip('.')}" if fmt else (src.suffix.lower() or ".wav")
    folder = Path(outdir).expanduser() if outdir else src.parent
    return free_name(folder / f"{src.stem}-{tag}{suffix}", src)


def default_source_factory(device: str | None, samplerate: int | None, blocksize: int) -> AudioSource:
    """The microphone: a device by name (None: the default), or a sound file played like one."""
    from workers.media.microphone import make_microphone

    return make_microphone(device, samplerate, blocksize, channels=1)


def default_sink_factory(device: str | None, samplerate: int | None, blocksize: int) -> AudioSink:
    from workers.media.audio import AudioOutput

    # Drop the oldest buffered audio instead of waiting: a live voice must never fall behind.
    return AudioOutput(device, samplerate, blocksize, channels=1, buffer_seconds=0.3, drop_when_full=True)


def _default_converter(options: VoiceConversionOptions, store: Any, device: str) -> Any:
    from workers.voice_conversion.converter import load_converter

    # the worker converts live: ready the live engine while the model loads, not at the first block
    return load_converter(options, store=store, device=device, prepare_live=True)


def describe_converter(converter: Any, options: VoiceConversionOptions) -> dict[str, Any]:
    """What the dock shows about a loaded converter."""
    info = getattr(converter, "info", None) or getattr(getattr(converter, "model", None), "info", None)
    kind = str(getattr(info, "kind", "") or ("dsp" if not options.model else getattr(converter, "name", "")))
    speakers = dict(getattr(info, "speakers", None) or {})
    describe = getattr(info, "describe", None)
    return {
        "description": str(describe()) if callable(describe) else "",
        "model": options.model,
        "index": options.index,
        "config": options.config,
        "label": model_label(options),
        "name": str(getattr(converter, "name", "") or kind),
        "kind": kind,
        "f0": bool(getattr(info, "f0", True)),
        "sample_rate": int(getattr(converter, "sample_rate", 0) or 0),
        "input_rate": int(getattr(converter, "input_rate", 0) or 0),
        "speakers": speakers,
        "speaker": int(getattr(converter, "speaker", options.speaker) or 0),
        "dsp": not options.model,
    }


class VoiceConversionWorker(Worker):
    """Voice conversion on its own thread: a microphone to a speaker in realtime, and files."""

    name = "Voice conversion"

    #: Realtime conversion started (True) or stopped (False), with a sentence for the user and its
    #: level ("info", or "error" when a device or the converter failed).
    realtime_changed = Signal(bool, str, str)
    #: A converter is loaded and in use: :func:`describe_converter`'s dict.
    model_loaded = Signal(dict)
    #: Another model could not be loaded (the sentence); the previous one stays in use.
    model_failed = Signal(str)

    _realtime_requested = Signal()
    _realtime_stop_requested = Signal(str)
    _session_failed = Signal(str)

    #: Seconds between two realtime ``stats`` emissions (levels for the meters).
    realtime_stats_interval = 0.1

    def __init__(
        self,
        options: VoiceConversionOptions | None = None,
        *,
        store: ModelStore | None = None,
        device: str = "cpu",
        source_factory: SourceFactory | None = None,
        sink_factory: SinkFactory | None = None,
        converter_factory: ConverterFactory | None = None,
        input_device: str | None = None,
        output_device: str | None = None,
        samplerate: int | None = None,
        device_blocksize: int = 1024,
    ) -> None:
        super().__init__()
        self.options = copy_options(options) if options is not None else VoiceConversionOptions()
        self.store = store
        self.device = "cuda" if device == "cuda" else ("cpu" if device in ("cpu", "auto", "") else device)
        self._requested_device = device
        self.source_factory: SourceFactory = source_factory or default_source_factory
        self.sink_factory: SinkFactory = sink_factory or default_sink_factory
        self._converter_factory = converter_factory or _default_converter
        self.input_device = input_device
        self.output_device = output_device
        self.samplerate = samplerate
        self.device_blocksize = int(device_blocksize)
        self.converter: Any = None
        self.model_info: dict[str, Any] = {}
        self._session: Any = None
        self._block: Any = None
        self._source: Any = None
        self._sink: Any = None
        self._stats_lock = threading.Lock()
        self._last_stats: dict[str, Any] = {}
        # Made and connected here, not on the worker's thread (see Worker.__init__); it moves there with us.
        self._watch = QTimer(self)
        self._watch.setInterval(200)
        self._watch.timeout.connect(self._check_session)
        self._running = False
        self._realtime_requested.connect(self._start_realtime_here)
        self._realtime_stop_requested.connect(self._stop_realtime_here)
        self._session_failed.connect(self._on_session_failed)

    # ---- lifecycle (worker thread) ----------------------------------------------------------------
    def load(self) -> None:
        if self._requested_device == "auto":
            self.device = _auto_device()
        try:
            converter = self._converter_factory(self._load_options(), self.store, self.device)
        except Exception as exc:
            if not self.options.model:
                raise
            # The saved voice is gone or broken: start with the built-in voice changer instead.
            message = describe_exception(exc)
            # The page says it (model_failed) and notifies once; the log file keeps the details.
            log.info("The voice %s could not be loaded (%s); the built-in one is used", self.options.model, exc)
            self.options.model = ""
            self.options.index = ""
            converter = self._converter_factory(self._load_options(), self.store, self.device)
            self.model_failed.emit(f"{message} The built-in voice changer is used instead.")
            self._use_converter(converter)
            return
        self._use_converter(converter)

    def unload(self) -> None:
        self._close_session()
        self.converter = None

    def interrupt(self) -> None:
        """Stopping: a microphone that is still opening or hangs does not keep the thread waiting."""
        source = self._source
        stop = getattr(source, "interrupt", None)
        if callable(stop):
            stop()

    def watched_files(self) -> list[Path]:
        """The checkpoint (and its config.json, and the index) of the voice in use."""
        info = self.model_info
        paths: list[Path] = []
        model = str(info.get("model") or "") if info else ""
        if model and not info.get("dsp", True):
            path = Path(model).expanduser()
            if path.is_dir():
                paths += sorted(p for p in path.iterdir() if p.suffix.lower() in (".pth", ".pt", ".json"))
            else:
                paths.append(path)
                config = path.with_name("config.json")
                if path.suffix.lower() in (".pth", ".pt") and config.is_file() and config != path:
                    paths.append(config)
        index = str(info.get("index") or "") if info else ""
        if index:
            paths.append(Path(index).expanduser())
        return paths

    def reload_models(self, changed: list[Path]) -> bool:
        """The checkpoint changed on disk: load it again; on failure the voice in use stays (raises)."""
        converter = self._converter_factory(self._load_options(), self.store, self.device)
        self._load_error = None
        self._use_converter(converter)
        self._rebuild_block()  # the live conversion goes on with the new weights
        return True

    def _load_options(self) -> VoiceConversionOptions:
        """The options a converter is loaded with: speaker 0, which every model has (the chosen speaker
        is set afterwards, falling back to 0 when the new model has fewer)."""
        options = copy_options(self.options)
        options.speaker = 0
        return options

    def _use_converter(self, converter: Any) -> None:
        self._apply_converter_params(converter)
        self.converter = converter
        self.model_info = describe_converter(converter, self.options)
        log.info("Voice conversion ready: %s (%s)", self.model_info["label"], self.model_info["name"])
        self.model_loaded.emit(dict(self.model_info))

    def _apply_converter_params(self, converter: Any) -> None:
        """Give a new converter the current settings; a speaker it does not have becomes speaker 0."""
        setter = getattr(converter, "set_params", None)
        if not callable(setter):
            return
        o = self.options
        setter(**{name: getattr(o, name) for name in CONVERTER_PARAMS if name != "speaker"})
        try:
            setter(speaker=o.speaker)
        except UserError:
            log.info("The voice has no speaker %s; speaker 0 is used", o.speaker)
            o.speaker = 0
            setter(speaker=0)

    def _ready_converter(self) -> Any:
        if self.converter is None:
            raise UserError("Voice conversion is not ready yet; wait for the voice to load.")
        return self.converter

    # ---- parameters (worker thread) ------------------------------------------------------------------
    def on_param(self, name: str, value: Any) -> None:
        if name in ("input_device", "output_device"):
            setattr(self, name, value or None)
            if self._session is not None:
                self._restart_session()
            return
        if name == "preset":
            preset = coerce_option("preset", value)
            o = self.options
            o.preset = preset
            o.block_seconds, o.crossfade_seconds, o.extra_seconds = PRESETS[preset]
            self._rebuild_block()
            return
        value = coerce_option(name, value)
        if name == "model" and value == self.options.model and self.converter is not None:
            # The same voice again: loaded anew only when its file changed on disk since.
            if not self.check_model_files(force=True):
                self.model_loaded.emit(dict(self.model_info))  # nothing to load: say which voice is in use
            return
        old = getattr(self.options, name)
        setattr(self.options, name, value)
        if name == "model" and value != old:
            self.options.config = ""  # a so-vits-svc config.json chosen for one voice is not another's
        if name in MODEL_PARAMS:
            self._reload()
        elif name in CONVERTER_PARAMS or name in BLOCK_PARAMS:
            try:
                self._configure(name, value)
            except BaseException:
                setattr(self.options, name, old)  # refused (a speaker the model does not have): keep the old
                raise
        elif name in LAYOUT_PARAMS:
            self._rebuild_block()

    def _configure(self, name: str, value: Any) -> None:
        """A live setting: through the running session (between two blocks), else straight to the converter."""
        session = self._session
        if session is not None and session.block_converter is not None:
            session.configure(**{name: value})
        elif name in CONVERTER_PARAMS and self.converter is not None:
            self.converter.set_params(**{name: value})

    def _reload(self) -> None:
        """Load the converter for the options now set; on failure keep the previous one."""
        previous = dict(self.model_info)
        self._set_state("loading")
        try:
            converter = self._converter_factory(self._load_options(), self.store, self.device)
        except Exception as exc:
            self.options.model = str(previous.get("model", ""))
            self.options.index = str(previous.get("index", ""))
            self.options.config = str(previous.get("config", ""))
            message = describe_exception(exc)
            log.info("Loading the voice failed: %s", message, exc_info=not isinstance(exc, UserError))
            self._set_state("ready" if self.converter is not None else "failed")
            self.model_failed.emit(message)
            return
        self._load_error = None
        self._use_converter(converter)
        self.remember_model_files()
        self._set_state("ready")
        self._rebuild_block()  # the live conversion goes on with the new voice

    # ---- realtime (any thread) ----------------------------------------------------------------------
    def start_realtime(self, input_device: Any = _KEEP, output_device: Any = _KEEP) -> None:
        """Open the microphone and the output and convert between them until :meth:`stop_realtime`.

        ``input_device``/``output_device`` (device names, None for the system default) replace the
        devices given before; ``realtime_changed`` says when it runs or why it could not start.
        """
        if self._thread is None:
            raise RuntimeError(f"start {self.name} before starting realtime conversion")
        if input_device is not _KEEP:
            self.input_device = input_device  # type: ignore[assignment]
        if output_device is not _KEEP:
            self.output_device = output_device  # type: ignore[assignment]
        self._realtime_requested.emit()

    def stop_realtime(self) -> None:
        """Stop realtime conversion and release the devices (``realtime_changed(False, ...)``)."""
        if self._thread is not None:
            self._realtime_stop_requested.emit("")

    @property
    def realtime_running(self) -> bool:
        return self._running

    def latest_stats(self) -> dict[str, Any]:
        """The newest realtime measurements (any thread)."""
        with self._stats_lock:
            return dict(self._last_stats)

    # ---- realtime (worker thread) ----------------------------------------------------------------------
    @Slot()
    def _start_realtime_here(self) -> None:
        if self._stopping:
            return
        self._close_session()
        try:
            if self.converter is None and self._load_error:
                raise UserError(_strip(self._load_error, f"{self.name} could not start"))
            self._open_session(self._ready_converter())
        except BaseException as exc:
            self._close_session()
            self._running = False
            if self._stopping:  # the studio is closing while the devices opened: nothing to tell
                log.info("Realtime conversion was not started: the worker is stopping (%s)", exc)
                return
            message = self.report(exc, f"{self.name} could not start")
            self.realtime_changed.emit(False, _strip(message, f"{self.name} could not start"), "error")
            return
        self._running = True
        self._watch.start()
        rate = int(getattr(self._source, "samplerate", 0) or 0)
        self.realtime_changed.emit(
            True,
            f"Converting live at {rate} Hz with {_voice_phrase(self.model_info)}, "
            f"{self.options.block_seconds * 1000:.0f} ms blocks.",
            "info",
        )

    def _open_session(self, converter: Any) -> None:
        from workers.media.watch import WatchedSource
        from workers.voice_conversion.realtime import RealtimeSession

        source = WatchedSource(
            self.source_factory(self.input_device, self.samplerate, self.device_blocksize),
            "microphone",
            name="Microphone",
        )
        self._source = source
        source.open()  # its rate decides the output's (the session reopens it harmlessly)
        rate = int(source.samplerate)
        sink = self.sink_factory(self.output_device, rate, self.device_blocksize)
        self._sink = sink
        self._fit_sink_buffer()
        if self._stopping:
            return
        session = RealtimeSession(
            self._make_block_converter,
            source,
            sink,
            on_stats=self._on_session_stats,
            on_error=self._on_session_error,
            stats_interval=self.realtime_stats_interval,
        )
        self._session = session
        session.start()
        log.info("Realtime voice conversion: %s Hz in, %s Hz out", rate, getattr(sink, "samplerate", "?"))

    def _make_block_converter(self, samplerate: int) -> Any:
        """The block converter of the current options at the devices' rate (called by the session)."""
        from workers.voice_conversion.realtime import BlockConverter

        o = self.options
        block = BlockConverter(
            self._ready_converter(),
            samplerate=int(samplerate),
            block_seconds=o.block_seconds,
            crossfade_seconds=min(o.crossfade_seconds, o.block_seconds),
            extra_seconds=o.extra_seconds,
            silence_db=o.silence_db,
            passthrough=o.passthrough,
            input_gain_db=o.input_gain_db,
            output_gain_db=o.output_gain_db,
        )
        self._block = block
        return block

    def _rebuild_block(self) -> None:
        """A new block layout or converter while running: the session takes a fresh block converter
        between two blocks (the devices stay open, the sound goes on)."""
        session = self._session
        if session is None or session.block_converter is None:
            return
        self._fit_sink_buffer()
        session.rebuild()

    def _fit_sink_buffer(self) -> None:
        """An output that drops its oldest audio when full must hold two blocks, or a block that comes
        early would cut off the end of the one playing."""
        sink = self._sink
        if sink is not None and hasattr(sink, "buffer_seconds"):
            sink.buffer_seconds = max(float(sink.buffer_seconds), sink_buffer_seconds(self.options))

    def _restart_session(self) -> None:
        self._close_session()
        self._start_realtime_here()

    @Slot()
    def _check_session(self) -> None:
        """The session ends by itself when its source ends (a sound file played as the microphone)."""
        session = self._session
        if session is None or session.running:
            return
        if session.error:
            return  # reported through on_error
        self._stop_realtime_here("The microphone's sound ended; realtime conversion stopped.")

    @Slot(str)
    def _stop_realtime_here(self, message: str = "", level: str = "info") -> None:
        was = self._session is not None
        self._close_session()
        if was or self._running:
            self._running = False
            text = message or "Realtime conversion stopped; the devices were released."
            self.realtime_changed.emit(False, text, level)

    def _close_session(self) -> None:
        self._watch.stop()
        session, self._session = self._session, None
        source, self._source = self._source, None
        sink, self._sink = self._sink, None
        self._block = None
        if session is not None:
            try:
                session.stop()  # joins its thread and closes both devices
            except Exception as exc:
                log.warning("Stopping realtime conversion failed: %s", exc)
            return
        for device in (source, sink):
            if device is None:
                continue
            try:
                device.close()
            except Exception as exc:
                log.warning("Closing %s failed: %s", type(device).__name__, exc)

    def _on_session_error(self, exc: BaseException) -> None:
        """A device or the converter failed inside the session (its thread)."""
        self._session_failed.emit(self.describe_error(exc, ""))

    @Slot(str)
    def _on_session_failed(self, message: str) -> None:
        self._emit_error(f"{self.name}: {message}")
        self._stop_realtime_here(f"Realtime conversion stopped: {message}", "error")
        self.stream_halted.emit(f"{self.name}: {message}")

    def _on_session_stats(self, stats: dict[str, Any]) -> None:
        """Measurements of the session (its thread), with what the dock shows beside them."""
        snap: dict[str, Any] = dict(stats)
        snap["block_ms"] = round(self.options.block_seconds * 1000.0, 1)
        snap["model"] = self.model_info.get("label", "")
        snap["realtime"] = True
        source = self._source
        snap["samplerate"] = int(getattr(source, "samplerate", 0) or 0)
        with self._stats_lock:
            self._last_stats = snap
        self.stats.emit(snap)

    # ---- file jobs (any thread) --------------------------------------------------------------------------
    def convert_files(
        self,
        paths: Sequence[str | Path],
        outdir: str | Path | None = None,
        fmt: str | None = "wav",
        channels: str = "mono",
    ) -> int:
        """Convert audio files (into ``outdir``, else next to each input) as one job whose result is a
        :class:`FileJobReport`; ``fmt`` None keeps each input's format; ``channels`` "mono" writes one
        channel, "input" as many as each input has (the converted voice on each)."""
        from workers.voice_conversion.files import CHANNEL_MODES

        inputs = [Path(p) for p in paths]
        folder = Path(outdir) if outdir else None
        if fmt is not None and fmt.lower().lstrip(".") not in FILE_FORMATS:
            raise UserError(f"Unknown output format {fmt!r}; choose one of {', '.join(FILE_FORMATS)}.")
        if channels not in CHANNEL_MODES:
            raise UserError(f"Unknown channel choice {channels!r}; choose one of {', '.join(CHANNEL_MODES)}.")

        def job(ctx: JobContext) -> FileJobReport:
            return self._convert_files(ctx, inputs, folder, fmt, channels=channels)

        return self.submit(job)

    def convert_file(self, src: str | Path, dst: str | Path, channels: str = "mono") -> int:
        """Convert one file to ``dst`` (its format by the suffix); the result is a FileJobReport."""

        def job(ctx: JobContext) -> FileJobReport:
            return self._convert_files(ctx, [Path(src)], None, None, targets=[Path(dst)], channels=channels)

        return self.submit(job)

    def _convert_files(
        self,
        ctx: JobContext,
        inputs: list[Path],
        outdir: Path | None,
        fmt: str | None,
        targets: list[Path] | None = None,
        channels: str = "mono",
    ) -> FileJobReport:
        from workers.voice_conversion.files import convert_file, seconds_of, written_shape

        converter = self._ready_converter()
        report = FileJobReport()
        steps = 1000
        total = steps * max(1, len(inputs))
        start = time.perf_counter()
        for i, src in enumerate(inputs):
            if ctx.cancelled:
                report.cancelled = True
                break
            dst = targets[i] if targets is not None else output_path(src, outdir, fmt)

            def progress(done: float, whole: float, i: int = i) -> None:
                frac = min(1.0, max(0.0, done / whole)) if whole else 0.0
                if not ctx.cancelled:
                    ctx.progress(i * steps + int(frac * steps), total)

            try:
                if outdir is not None:
                    outdir.mkdir(parents=True, exist_ok=True)
                written = convert_file(
                    src,
                    dst,
                    converter,
                    progress=progress,
                    cancel=lambda: ctx.cancelled,
                    channels=channels,
                )
            except Cancelled:
                report.cancelled = True
                break
            except Exception as exc:
                if ctx.cancelled:
                    report.cancelled = True
                    break
                message = self.describe_error(exc, "")  # a full disk reads "The disk is full: …"
                # Said once: by the job's error (one file) or the report's summary (several).
                log.info("Converting %s failed: %s", src, message, exc_info=not isinstance(exc, UserError))
                report.failed.append((src, message))
                continue
            report.done.append((src, Path(written)))
            report.audio_seconds += seconds_of(written)
            shape = written_shape(written)
            if shape is not None:
                report.written[Path(written)] = shape
            if not ctx.cancelled:
                ctx.progress((i + 1) * steps, total)
        report.seconds = time.perf_counter() - start
        if report.failed and not report.done and not report.cancelled and len(inputs) == 1:
            raise UserError(report.failed[0][1])
        return report

    def extra_stats(self) -> dict[str, Any]:
        return {"model": self.model_info.get("label", ""), "realtime": self._running}


def _auto_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # a broken torch install: the CPU
        return "cpu"


def _voice_phrase(info: dict[str, Any]) -> str:
    """ "the built-in voice changer" or "MyVoice" (in a sentence)."""
    if info.get("dsp", True):
        return "the built-in voice changer"
    return str(info.get("label") or "the model")


def _strip(message: str, prefix: str) -> str:
    head = f"{prefix}: "
    return message[len(head) :] if message.startswith(head) else message
