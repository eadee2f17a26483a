"""Voice conversion of audio files: read any common format, convert long files in chunks, save safely.

- :func:`read_audio` reads WAV, FLAC, OGG and MP3 (and whatever else libsndfile reads) through
  soundfile, and other containers (M4A, AAC, WebM, ...) through PyAV, at any sample rate and
  channel count.
- :func:`convert_file` mixes the channels to mono (voice models and the DSP changer are mono, and a
  voice recording's channels carry the same voice) and writes the converted voice as mono or on as
  many channels as the input had (``channels="input"``: the same voice on each). It cuts a long
  file into chunks of at most ``max_chunk_seconds`` at its quietest moments, converts each chunk
  with some audio around it (context before, a little after) and joins the chunks with a short
  crossfade at the cut (which lies in a pause, so the join is inaudible). The file is read and
  written chunk by chunk (soundfile seeks in WAV, FLAC, OGG and MP3; other containers are decoded
  whole by PyAV). Progress is reported and cancel is checked between chunks.
- The result is written to a temporary file in the target folder and renamed into place only when
  complete: a cancelled or failed conversion leaves nothing behind, and an output never replaces its
  input or any existing file (a free name such as ``song-2.wav`` is chosen instead).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import Cancelled, UserError
from workers.files import free_name
from workers.media.audio import resample

log = logging.getLogger(__name__)

#: Output formats by file suffix: (soundfile format, subtype).
FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Suffixes :func:`read_audio` is meant for (others are tried too).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aiff", ".aif", ".webm")
#: Rates MP3 can store; other rates are resampled to the nearest one above.
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: The most channels each output format holds.
_MAX_CHANNELS = {"WAV": 64, "FLAC": 8, "OGG": 255, "MP3": 2}
#: How a converted file's channels are chosen: one channel, or as many as its input had.
CHANNEL_MODES = ("mono", "input")

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


# ---- reading ------------------------------------------------------------------------------------


def _read_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    rate = 0
    with av.open(str(path)) as container:
        streams = container.streams.audio
        if not streams:
            raise ValueError("no audio stream")
        stream = streams[0]
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                rate = out.sample_rate
                chunks.append(out.to_ndarray().T.astype(np.float32))  # (samples, channels)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().T.astype(np.float32))
    if not chunks or not rate:
        raise ValueError("no audio in the stream")
    return np.concatenate(chunks, axis=0), int(rate)


def _check_not_empty(path: Path) -> None:
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return  # the reader says what is wrong
    if empty:
        raise UserError(f"{path.name} is empty (0 bytes); it is not a sound file.")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A float32 ``(frames, channels)`` array in [-1, 1] and the sample rate; a UserError sentence when
    the file is missing or is not audio."""
    import soundfile

    p = Path(path)
    if not p.exists():
        raise UserError(f"The audio file {p} was not found.")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an audio file.")
    _check_not_empty(p)
    try:
        data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as sf_exc:
        try:
            data, rate = _read_with_av(p)
        except Exception as av_exc:
            log.info("Reading %s failed: soundfile: %s; PyAV: %s", p, sf_exc, av_exc)
            raise UserError(
                f"{p.name} could not be read as audio; it may be damaged or in a format the studio does not know."
            ) from av_exc
    except OSError as exc:
        raise UserError(f"{p.name} could not be read ({exc.strerror or exc}).") from exc
    if data.size == 0 or rate <= 0:
        raise UserError(f"{p.name} holds no audio.")
    data = np.nan_to_num(np.asarray(data, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return data, int(rate)


# ---- writing ------------------------------------------------------------------------------------


def output_format(path: str | Path) -> tuple[str, str]:
    """The soundfile format and subtype for ``path``'s suffix; a UserError for unknown suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"Cannot save {Path(path).name}: choose a .wav, .flac, .ogg or .mp3 file name.")
    return FORMATS[suffix]


def file_rate(fmt: str, rate: int) -> int:
    """The sample rate a file of soundfile format ``fmt`` is written at for audio at ``rate`` (MP3 holds
    only some rates: another is raised to the next one it holds)."""
    if fmt.upper() == "MP3" and rate not in _MP3_RATES:
        return next((r for r in _MP3_RATES if r >= rate), 48000)
    return int(rate)


def file_channels(fmt: str, input_channels: int, mode: str = "mono") -> int:
    """How many channels a converted file of format ``fmt`` gets: 1 for ``mode="mono"``, else the
    input's count (at most what the format holds)."""
    if mode not in CHANNEL_MODES:
        raise UserError(f"Unknown channel choice {mode!r}; choose one of {', '.join(CHANNEL_MODES)}.")
    if mode == "mono":
        return 1
    return max(1, min(int(input_channels or 1), _MAX_CHANNELS.get(fmt.upper(), 2)))


def _write_with_av(path: Path, audio: np.ndarray, rate: int, codec: str) -> None:
    """``audio``: ``(frames,)`` mono or ``(frames, channels)`` with one or two channels."""
    import av

    data = np.asarray(audio, np.float32)
    data = data.reshape(-1, 1) if data.ndim == 1 else data
    layout = "stereo" if data.shape[1] == 2 else "mono"
    with av.open(str(path), "w", format="mp3" if codec.endswith("mp3lame") else None) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        samples = np.ascontiguousarray(data.T)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_audio(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """Write mono ``audio`` to ``path`` in the format its suffix names (not atomic; see :func:`save_audio`)."""
    import soundfile

    p = Path(path)
    fmt, subtype = output_format(p)
    data = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
    if fmt == "MP3" and rate not in _MP3_RATES:
        target = next((r for r in _MP3_RATES if r >= rate), 48000)
        data = resample(data[:, None], rate, target)[:, 0]
        rate = target
    if fmt == "MP3" and "MP3" not in soundfile.available_formats():
        _write_with_av(p, data, rate, "libmp3lame")
        return
    soundfile.write(str(p), data, rate, format=fmt, subtype=subtype)


def save_audio(path: str | Path, audio: np.ndarray, rate: int) -> Path:
    """Write ``audio`` to a temporary file next to ``path`` and rename it into place when complete."""
    p = Path(path)
    output_format(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}-", suffix=f".part{p.suffix}", dir=p.parent)
    except OSError as exc:
        raise UserError(f"{p.name} could not be saved in {p.parent} ({exc.strerror or exc}).") from exc
    os.close(fd)
    try:
        write_audio(tmp, audio, rate)
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, (UserError, KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, OSError):
            raise UserError(f"{p.name} could not be saved ({exc.strerror or exc}).") from exc
        raise UserError(f"{p.name} could not be saved ({exc}).") from exc
    return p


# ---- sources and sinks for streaming ------------------------------------------------------------


class _ArraySource:
    """Mono audio held in memory, read by range."""

    def __init__(self, audio: np.ndarray, rate: int, name: str = "audio", channels: int = 1) -> None:
        self.audio = np.asarray(audio, np.float32).reshape(-1)
        self.frames = len(self.audio)
        self.rate = int(rate)
        self.name = name
        #: The channels the audio had before it was mixed to mono.
        self.channels = int(channels)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[max(0, start) : max(0, min(stop, self.frames))]

    def close(self) -> None:
        pass


class _FileSource:
    """A sound file read by range through soundfile (channels mixed to mono): long files are never
    held in memory whole."""

    def __init__(self, path: Path) -> None:
        import soundfile

        self.path = path
        self.name = path.name
        self._file = soundfile.SoundFile(str(path))
        self.frames = int(self._file.frames)
        self.rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)

    def read(self, start: int, stop: int) -> np.ndarray:
        import soundfile

        start, stop = max(0, start), max(0, min(stop, self.frames))
        if stop <= start:
            return np.zeros(0, np.float32)
        try:
            self._file.seek(start)
            data = self._file.read(stop - start, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise UserError(f"{self.name} could not be read to the end; it may be damaged ({exc}).") from exc
        mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        return np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)

    def close(self) -> None:
        self._file.close()


def _open_source(path: Path) -> _FileSource | _ArraySource:
    """A range reader for ``path``: soundfile when it can seek in the file, else decoded by PyAV."""
    import soundfile

    if not path.exists():
        raise UserError(f"The audio file {path} was not found.")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an audio file.")
    _check_not_empty(path)
    try:
        source = _FileSource(path)
        if source.frames > 0 and source.rate > 0 and source._file.seekable():
            return source
        source.close()
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError):
        pass
    except OSError as exc:
        raise UserError(f"{path.name} could not be read ({exc.strerror or exc}).") from exc
    data, rate = read_audio(path)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return _ArraySource(mono, rate, path.name, channels=data.shape[1])


class _FileSink:
    """Writes mono audio to a (temporary) file as it comes, in the format the target's suffix names,
    on ``channels`` channels (the same audio on each)."""

    def __init__(self, path: Path, rate: int, fmt: str, subtype: str, channels: int = 1) -> None:
        import soundfile

        self.path = path
        self.rate = int(rate)
        self.channels = max(1, int(channels))
        self._resampler: Any = None
        self._pending: list[np.ndarray] | None = None  # MP3 through PyAV: written at the end
        self.file_rate = file_rate(fmt, self.rate)
        if self.file_rate != self.rate:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, self.file_rate, 1, dtype="float32")
        self._file: Any = None
        if fmt == "MP3" and "MP3" not in soundfile.available_formats():
            self._pending = []
        else:
            self._file = soundfile.SoundFile(
                str(path), "w", samplerate=self.file_rate, channels=self.channels, format=fmt, subtype=subtype
            )

    def write(self, audio: np.ndarray) -> None:
        data = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
        if self._resampler is not None:
            data = self._resampler.resample_chunk(data)
        self._put(data)

    def _put(self, data: np.ndarray) -> None:
        if not len(data):
            return
        if self.channels > 1:
            data = np.repeat(np.asarray(data, np.float32).reshape(-1, 1), self.channels, axis=1)
        if self._pending is not None:
            self._pending.append(np.asarray(data, np.float32))
        else:
            self._file.write(data)

    def finish(self) -> None:
        if self._resampler is not None:
            self._put(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if self._pending is not None:
            empty = np.zeros((0, self.channels), np.float32)
            audio = np.concatenate(self._pending) if self._pending else empty
            _write_with_av(self.path, audio, self.file_rate, "libmp3lame")
        self.close()

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()


# ---- chunking -------------------------------------------------------------------------------------

Reader = Callable[[int, int], np.ndarray]


def _next_cut(read: Reader, start: int, n: int, rate: int, limit: int, frame: int) -> int:
    """Where the chunk starting at ``start`` ends: the end of the audio when it is near, else the
    quietest 50 ms (10 ms frames, smoothed) between half and all of ``limit`` samples on."""
    if n - start <= limit:
        return n
    lo = start + limit // 2
    hi = min(start + limit, n - min(limit // 4, rate))  # leave the last chunk a fair length
    if hi - lo < 2 * frame:
        return min(n, start + limit)
    seg = np.asarray(read(lo, hi), np.float64)
    count = len(seg) // frame
    if count < 1:
        return min(n, start + limit)
    energy = np.square(seg[: count * frame]).reshape(count, frame).mean(axis=1)
    energy = np.convolve(energy, np.ones(5) / 5, mode="same")
    best = int(np.argmin(energy))
    return lo + best * frame + frame // 2


def split_points(audio: np.ndarray, rate: int, max_chunk_seconds: float, *, frame_seconds: float = 0.01) -> list[int]:
    """Cut positions (sample indices, first 0, last ``len(audio)``) so that no chunk is longer than
    ``max_chunk_seconds``; each cut lies at the quietest moment in the second half of its chunk."""
    src = _ArraySource(audio, rate)
    limit = max(1, int(max_chunk_seconds * rate))
    frame = max(1, int(frame_seconds * rate))
    cuts = [0]
    while cuts[-1] < src.frames:
        cuts.append(max(cuts[-1] + 1, _next_cut(src.read, cuts[-1], src.frames, rate, limit, frame)))
    return cuts if src.frames else [0, 0]


def _cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def output_rate(converter: Any, rate: int) -> int:
    """The rate a conversion of audio at ``rate`` comes out at (the DSP changer keeps it)."""
    return int(rate) if hasattr(converter, "convert_at") else int(converter.sample_rate)


def _convert_piece(converter: Any, piece: np.ndarray, rate: int) -> np.ndarray:
    """Convert mono ``piece`` at ``rate``; the result is at :func:`output_rate`."""
    if hasattr(converter, "convert_at"):
        return np.asarray(converter.convert_at(piece, rate), np.float32).reshape(-1)
    rate_in = int(converter.input_rate)
    x = resample(piece[:, None], rate, rate_in)[:, 0] if rate_in != rate else piece
    return np.asarray(converter.convert(np.ascontiguousarray(x, np.float32)), np.float32).reshape(-1)


def _fit(y: np.ndarray, length: int) -> np.ndarray:
    if len(y) >= length:
        return y[:length]
    return np.concatenate([y, np.zeros(length - len(y), np.float32)])


def _convert_stream(
    read: Reader,
    n: int,
    rate: int,
    converter: Any,
    emit: Callable[[np.ndarray], None],
    *,
    progress: Progress | None,
    cancel: Any,
    max_chunk_seconds: float,
    context_seconds: float,
    lookahead_seconds: float,
    crossfade_seconds: float,
) -> int:
    """Convert ``n`` samples read through ``read`` chunk by chunk, passing the output to ``emit`` in
    order as soon as it is final; returns the output rate.

    Chunk ``[a, b)`` is converted together with ``context`` before it and ``lookahead`` after it; the
    output keeps ``[a - h, b + h)`` (``h`` = half the crossfade), and consecutive chunks are
    crossfaded (sin² / cos²) over their shared ``2 h`` around each cut.
    """
    limit = getattr(converter, "context_seconds", None)
    if limit is not None:
        context_seconds = min(context_seconds, float(limit))
    out_rate = output_rate(converter, rate)
    scale = out_rate / rate
    chunk = max(1, int(max_chunk_seconds * rate))
    frame = max(1, rate // 100)
    pre, post = int(context_seconds * rate), int(lookahead_seconds * rate)
    half = int(crossfade_seconds * rate) // 2
    pending = np.zeros(0, np.float32)  # output of the last chunk past its cut, waiting for the crossfade
    a = 0
    while a < n:
        if _cancelled(cancel):
            raise Cancelled()
        b = max(a + 1, _next_cut(read, a, n, rate, chunk, frame))
        keep_lo, keep_hi = max(0, a - half), min(n, b + half)
        lo, hi = max(0, keep_lo - pre), min(n, keep_hi + post)
        piece = read(lo, hi)
        y = _fit(_convert_piece(converter, piece, rate), round(hi * scale) - round(lo * scale))
        y = y[round(keep_lo * scale) - round(lo * scale) : round(keep_hi * scale) - round(lo * scale)]
        # the first len(pending) samples overlap the previous chunk's tail
        overlap = min(len(pending), len(y))
        if overlap:
            ramp = (np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2).astype(np.float32)
            y = y.copy()
            y[:overlap] = pending[:overlap] * (1.0 - ramp) + y[:overlap] * ramp
        if b < n:
            tail_start = round(max(0, b - half) * scale) - round(keep_lo * scale)
            emit(y[:tail_start])
            pending = y[tail_start:]
        else:
            emit(y)
            pending = np.zeros(0, np.float32)
        if progress is not None:
            progress(b, n)
        a = b
    return out_rate


def convert_audio(
    audio: np.ndarray,
    rate: int,
    converter: Any,
    *,
    progress: Progress | None = None,
    cancel: Any = None,
    max_chunk_seconds: float = 30.0,
    context_seconds: float = 1.0,
    lookahead_seconds: float = 0.2,
    crossfade_seconds: float = 0.05,
) -> tuple[np.ndarray, int]:
    """Convert mono ``audio`` at ``rate`` chunk by chunk; returns ``(converted, output rate)``.

    ``progress(done, total)`` counts input samples; ``cancel`` (a callable or an Event) is checked
    before each chunk and raises :class:`~workers.errors.Cancelled`.
    """
    src = _ArraySource(audio, rate)
    parts: list[np.ndarray] = []
    out_rate = _convert_stream(
        src.read,
        src.frames,
        int(rate),
        converter,
        parts.append,
        progress=progress,
        cancel=cancel,
        max_chunk_seconds=max_chunk_seconds,
        context_seconds=context_seconds,
        lookahead_seconds=lookahead_seconds,
        crossfade_seconds=crossfade_seconds,
    )
    out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return _fit(out, round(src.frames * out_rate / rate)), out_rate


def default_output(src: str | Path, folder: str | Path | None = None, suffix: str = ".wav") -> Path:
    """``<folder or src's folder>/<src stem>-converted<suffix>`` (not yet checked for clashes)."""
    s = Path(src)
    base = Path(folder) if folder else s.parent
    return base / f"{s.stem}-converted{suffix}"


def convert_file(
    src: str | Path,
    dst: str | Path,
    converter: Any,
    *,
    progress: Progress | None = None,
    cancel: Any = None,
    max_chunk_seconds: float = 30.0,
    channels: str = "mono",
) -> Path:
    """Convert the audio file ``src`` and save the result as ``dst`` (format by its suffix).

    Channels are mixed to mono for the conversion; the result is written as mono, or with
    ``channels="input"`` on as many channels as ``src`` has (the converted voice on each). The output
    runs at the converter's output rate (the DSP changer keeps the file's rate; MP3 raises a rate it
    cannot hold, see :func:`file_rate`). The file is read and written chunk by chunk, so its length is
    not limited by memory. ``dst`` is never the input nor an existing file: a free name next to it is
    used instead; the path actually written is returned. ``dst`` may be a folder (then ``<stem>-converted.wav``
    goes in it). Raises :class:`~workers.errors.Cancelled` when cancelled (nothing is written) and
    :class:`UserError` for unreadable input or an unwritable target.
    """
    src_path = Path(src)
    dst_path = Path(dst)
    if dst_path.is_dir():
        dst_path = default_output(src_path, dst_path)
    fmt, subtype = output_format(dst_path)
    file_channels(fmt, 1, channels)  # an unknown choice is refused before anything is read
    source = _open_source(src_path)
    tmp: Path | None = None
    sink: _FileSink | None = None
    try:
        if _cancelled(cancel):
            raise Cancelled()
        out_rate = output_rate(converter, source.rate)
        try:
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                prefix=f".{dst_path.stem}-", suffix=f".part{dst_path.suffix}", dir=dst_path.parent
            )
            os.close(fd)
            tmp = Path(name)
            sink = _FileSink(tmp, out_rate, fmt, subtype, file_channels(fmt, source.channels, channels))
            written_rate, written_channels = sink.file_rate, sink.channels
        except (OSError, RuntimeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UserError(f"{dst_path.name} could not be saved in {dst_path.parent} ({detail}).") from exc
        if progress is not None:
            progress(0, source.frames)
        _convert_stream(
            source.read,
            source.frames,
            source.rate,
            converter,
            sink.write,
            progress=progress,
            cancel=cancel,
            max_chunk_seconds=max_chunk_seconds,
            context_seconds=1.0,
            lookahead_seconds=0.2,
            crossfade_seconds=0.05,
        )
        if _cancelled(cancel):
            raise Cancelled()
        sink.finish()
        target = free_name(dst_path, src_path)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise UserError(f"{dst_path.name} could not be saved ({exc.strerror or exc}).") from exc
    finally:
        source.close()
        if sink is not None:
            sink.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    log.info(
        "Converted %s (%.1f s at %d Hz, %d channels) to %s at %d Hz, %d channels",
        src_path.name,
        source.frames / source.rate,
        source.rate,
        source.channels,
        target.name,
        written_rate,
        written_channels,
    )
    return target


def written_shape(path: str | Path) -> tuple[int, int] | None:
    """``(sample rate, channels)`` of a sound file as its header says (None when it cannot be read)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        return int(info.samplerate), int(info.channels)
    except Exception:
        return None


def seconds_of(path: str | Path) -> float:
    """The duration of an audio file in seconds (0.0 when it cannot be told without decoding)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0
    except Exception:
        return 0.0


__all__ = [
    "AUDIO_SUFFIXES",
    "CHANNEL_MODES",
    "FORMATS",
    "convert_audio",
    "convert_file",
    "default_output",
    "file_channels",
    "file_rate",
    "output_format",
    "output_rate",
    "read_audio",
    "save_audio",
    "seconds_of",
    "split_points",
    "write_audio",
    "written_shape",
]
