"""Video in and out for every tool, through PyAV (the ffmpeg libraries inside its wheel).

- :func:`probe_video` reads what a file holds (size as displayed, frame rate, frame count, audio,
  rotation) or raises a :class:`~workers.errors.UserError` sentence for a file that cannot be read.
- :func:`process_video` decodes every frame (turned upright when the file asks for a rotation),
  hands it to a frame function and encodes the result by the output's suffix:

  ========= ============================= =====================================================
  suffix    video                          alpha
  ========= ============================= =====================================================
  ``.webm`` VP9 (libvpx-vp9), yuva420p     kept (read back with the libvpx decoder only)
  ``.mov``  ProRes 4444 (prores_ks)        kept (yuva444p10le; any ProRes decoder reads it)
  ``.mp4``  H.264 (libx264), yuv420p       none: a BGRA frame is flattened on black
  ========= ============================= =====================================================

  The source's timestamps are kept (variable frame rate included), and so is its first audio
  track: copied as is when its codec suits the container, otherwise re-encoded (Opus for WebM,
  AAC for MP4 and MOV). The file is written under a temporary name and renamed when complete,
  so a cancelled or failed run leaves no output file behind.
- :class:`VideoRecorder` records a live stream of BGR frames to an H.264 MP4, timing each frame
  by its capture time.

No Qt here: the functions run on a worker's thread, from the CLI or from a test alike.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from workers.errors import Cancelled, UserError

log = logging.getLogger(__name__)

#: Video files the studio offers to open.
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv"})

FrameFn = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], Any]
CancelCheck = Callable[[], Any]


@dataclass(slots=True)
class VideoInfo:
    """What a video file holds.

    ``width`` and ``height`` are the size as displayed (after ``rotation``); ``rotation`` is the
    clockwise turn in degrees (0, 90, 180 or 270) that the file asks a player to apply; ``frames``
    is estimated from the duration when the container does not store it.
    """

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool
    rotation: int = 0
    codec: str = ""
    audio_codec: str = ""


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """How one output suffix is written."""

    container: str
    codec: str
    pix_fmt: str
    alpha: bool
    label: str
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    #: Audio codecs copied into this container without re-encoding.
    audio_copy: frozenset[str] = frozenset()
    #: The encoder used for any other audio codec, and the sample rate it gets.
    audio_codec: str = "aac"
    audio_rate: int | None = None


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    ".webm": OutputFormat(
        container="webm",
        codec="libvpx-vp9",
        pix_fmt="yuva420p",
        alpha=True,
        label="WebM (VP9 with transparency)",
        options={"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
        audio_copy=frozenset({"opus", "vorbis"}),
        audio_codec="libopus",
        audio_rate=48000,
    ),
    ".mov": OutputFormat(
        container="mov",
        codec="prores_ks",
        pix_fmt="yuva444p10le",
        alpha=True,
        label="MOV (ProRes 4444 with transparency)",
        options={"profile": "4444", "vendor": "apl0", "alpha_bits": "16"},
        audio_copy=frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"}),
        audio_codec="aac",
    ),
    ".mp4": OutputFormat(
        container="mp4",
        codec="libx264",
        pix_fmt="yuv420p",
        alpha=False,
        label="MP4 (H.264, no transparency)",
        options={"crf": "18", "preset": "fast"},
        container_options={"movflags": "+faststart"},
        audio_copy=frozenset({"aac", "mp3"}),
        audio_codec="aac",
    ),
}


def output_format(path: str | Path) -> OutputFormat:
    """The format an output path's suffix picks; a :class:`UserError` for any other suffix."""
    suffix = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None:
        choices = ", ".join(OUTPUT_FORMATS)
        raise UserError(f"Videos can be saved as {choices}; {Path(path).name} has another extension.")
    return fmt


# ---- reading ----------------------------------------------------------------------------------


def _av() -> Any:
    import av

    return av


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"The video file {path} was not found.")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a video file.")
    if path.stat().st_size == 0:
        raise UserError(f"{path.name} is empty (0 bytes); it is not a video.")


def _unreadable(path: Path, exc: BaseException | None = None) -> UserError:
    if exc is not None:
        log.info("Cannot read %s as a video: %s", path, exc)
    return UserError(
        f"{path.name} could not be read as a video: the file may be damaged or incomplete, or in a format "
        "the studio does not know."
    )


def _open_input(path: Path) -> Any:
    av = _av()
    _check_file(path)
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path.name} has no video track.")
    return container


def _clockwise(frame_rotation: float) -> int:
    """PyAV reports the display matrix as a counter-clockwise angle; return the clockwise quarter turn."""
    return round(-float(frame_rotation) / 90.0) % 4 * 90


def _stream_fps(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return Fraction(rate)
    return Fraction(25)


def _probe_open(path: Path, container: Any) -> VideoInfo:
    av = _av()
    vs = container.streams.video[0]
    fps = _stream_fps(vs)
    duration = 0.0
    if vs.duration is not None and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    if duration <= 0 and container.duration:
        duration = container.duration / 1_000_000
    frames = int(vs.frames or 0)
    if frames <= 0:
        frames = max(1, round(duration * float(fps))) if duration > 0 else 0

    rotation = 0
    first = None
    try:
        for frame in container.decode(vs):
            first = frame
            break
    except (av.FFmpegError, OSError) as exc:
        raise _unreadable(path, exc) from None
    if first is None:
        raise UserError(f"{path.name} holds no readable video frame; the file may be damaged or incomplete.")
    rotation = _clockwise(first.rotation)
    if rotation == 0:
        tag = vs.metadata.get("rotate")  # older files and containers keep a plain tag
        if tag is not None:
            try:
                rotation = round(float(tag) / 90.0) % 4 * 90
            except ValueError:
                rotation = 0
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        width=width,
        height=height,
        fps=float(fps),
        frames=frames,
        duration=duration,
        has_audio=audio is not None,
        rotation=rotation,
        codec=vs.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else "",
    )


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count, audio and rotation of a video file (a UserError if unreadable)."""
    path = Path(path).expanduser()
    container = _open_input(path)
    try:
        return _probe_open(path, container)
    finally:
        container.close()


# ---- frames -----------------------------------------------------------------------------------


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded frame clockwise by ``rotation`` degrees (a multiple of 90)."""
    quarter = (rotation // 90) % 4
    if quarter == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-quarter))


def flatten_on_black(bgra: np.ndarray) -> np.ndarray:
    """A BGRA image as BGR over black (premultiplied by its alpha)."""
    alpha = bgra[:, :, 3:4].astype(np.uint16)
    return ((bgra[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _even(n: int) -> int:
    return n + (n & 1)


def _pad_even(image: np.ndarray) -> np.ndarray:
    """Chroma-subsampled encoders need even sizes: repeat the last row/column when odd."""
    h, w = image.shape[:2]
    if not (h & 1 or w & 1):
        return image
    return np.pad(image, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")


def _as_output(result: Any, height: int, width: int, alpha: bool) -> np.ndarray:
    """Check a frame function's result and convert it to the encoder's layout (BGRA or BGR)."""
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.ndim != 3:
        raise TypeError("the frame function must return an HxWx3 (BGR) or HxWx4 (BGRA) uint8 array")
    if result.shape[0] != height or result.shape[1] != width or result.shape[2] not in (3, 4):
        raise ValueError(
            f"the frame function returned a {result.shape} frame for a {height}x{width} source frame; "
            "it must keep the size"
        )
    if alpha:
        if result.shape[2] == 4:
            out = result
        else:
            out = np.empty((height, width, 4), np.uint8)
            out[:, :, :3] = result
            out[:, :, 3] = 255
    else:
        out = flatten_on_black(result) if result.shape[2] == 4 else result
    return _pad_even(np.ascontiguousarray(out))


# ---- writing ----------------------------------------------------------------------------------


def _temp_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.stem}.{uuid.uuid4().hex[:8]}.part{dst.suffix}")


def _layout_name(stream: Any) -> str:
    channels = int(getattr(stream.codec_context, "channels", 0) or 0)
    return "mono" if channels == 1 else "stereo"


def _audio_rate(fmt: OutputFormat, source_rate: int) -> int:
    if fmt.audio_rate:
        return fmt.audio_rate
    return source_rate if source_rate in (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000) else 48000


class _Transcoder:
    """One pass over a source: decode, map, encode, mux (audio copied or re-encoded alongside)."""

    def __init__(
        self,
        src: Path,
        inp: Any,
        out: Any,
        info: VideoInfo,
        fmt: OutputFormat,
        frame_fn: FrameFn,
        progress: Progress | None,
        cancel: CancelCheck | None,
    ) -> None:
        self.src, self.inp, self.out, self.info, self.fmt = src, inp, out, info, fmt
        self.frame_fn, self.progress, self.cancel = frame_fn, progress, cancel
        self.done = 0
        self._last_pts: int | None = None
        self._reported: tuple[int, int] | None = None

        self.ivs = inp.streams.video[0]
        self.ivs.thread_type = "AUTO"
        self.fps = _stream_fps(self.ivs)
        self.time_base = self.ivs.time_base or Fraction(1, 90000)
        self.ovs = out.add_stream(fmt.codec, rate=self.fps, options=dict(fmt.options))
        self.ovs.width = _even(info.width)
        self.ovs.height = _even(info.height)
        self.ovs.pix_fmt = fmt.pix_fmt
        self.ovs.time_base = self.time_base
        self.ovs.codec_context.time_base = self.time_base

        self.ias = inp.streams.audio[0] if inp.streams.audio else None
        self.oas: Any = None
        self.copy_audio = False
        if self.ias is not None:
            name = self.ias.codec_context.name
            if name in fmt.audio_copy:
                self.copy_audio = True
                self.oas = out.add_stream_from_template(self.ias)
            else:
                rate = _audio_rate(fmt, int(self.ias.codec_context.sample_rate or 48000))
                self.oas = out.add_stream(fmt.audio_codec, rate=rate)
                self.oas.layout = _layout_name(self.ias)
            log.info(
                "Audio %s: %s -> %s", "copied" if self.copy_audio else "re-encoded", name, self.oas.codec_context.name
            )

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled()

    def run(self) -> int:
        streams = [self.ivs] + ([self.ias] if self.ias is not None else [])
        for packet in self.inp.demux(*streams):
            self._check_cancel()
            if packet.stream.index == self.ivs.index:
                for frame in self.ivs.decode(packet):
                    self._video_frame(frame)
            elif self.copy_audio:
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = self.oas
                self.out.mux(packet)
            else:
                for frame in self.ias.decode(packet):
                    frame.pts = None  # the encoder numbers its own samples
                    self.out.mux(self.oas.encode(frame))
        self.out.mux(self.ovs.encode(None))
        if self.oas is not None and not self.copy_audio:
            self.out.mux(self.oas.encode(None))
        if self.done == 0:
            raise UserError(f"{self.src.name} holds no readable video frame; the file may be damaged or incomplete.")
        self._report(self.done, self.done)
        return self.done

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None and (done, total) != self._reported:
            self._reported = (done, total)
            self.progress(done, total)

    def _next_pts(self, frame: Any) -> int:
        pts = frame.pts
        if pts is None:
            pts = round(self.done / (self.fps * self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders need strictly increasing times
        self._last_pts = pts
        return int(pts)

    def _video_frame(self, frame: Any) -> None:
        av = _av()
        bgr = upright(frame.to_ndarray(format="bgr24"), self.info.rotation)
        result = self.frame_fn(bgr)
        image = _as_output(result, bgr.shape[0], bgr.shape[1], self.fmt.alpha)
        out_frame = av.VideoFrame.from_ndarray(image, format="bgra" if self.fmt.alpha else "bgr24")
        out_frame.pts = self._next_pts(frame)
        out_frame.time_base = self.time_base
        self.out.mux(self.ovs.encode(out_frame))
        self.done += 1
        self._report(self.done, max(self.info.frames, self.done))
        self._check_cancel()


def process_video(
    src: str | Path,
    dst: str | Path,
    frame_fn: FrameFn,
    *,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Run ``frame_fn`` on every frame of ``src`` and write ``dst`` (format from its suffix).

    ``frame_fn`` maps an upright BGR frame to BGR or BGRA of the same size. ``progress(done, total)``
    is called after every frame (``total`` is an estimate until the end). ``cancel()`` is polled
    between frames; when it returns true the run stops with :class:`~workers.errors.Cancelled`
    (it may also raise that itself). ``metadata`` is written as the output container's tags (every
    key kept: MP4 and MOV store them as metadata keys). Returns ``dst``; a failed or cancelled run
    leaves no file there.
    """
    av = _av()
    src = Path(src).expanduser()
    dst = Path(dst).expanduser()
    fmt = output_format(dst)
    inp = _open_input(src)
    try:
        info = _probe_open(src, inp)
    except BaseException:
        inp.close()
        raise
    inp.close()
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"{dst.name} is the source video; choose another name for the result.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(dst)
    container_options = dict(fmt.container_options)
    if metadata and fmt.container in ("mp4", "mov"):
        # Without this flag the MP4/MOV muxer keeps only a few well-known tags (title, comment...).
        container_options["movflags"] = container_options.get("movflags", "") + "+use_metadata_tags"
    log.info(
        "Video %s (%dx%d, %.3f fps, ~%d frames, rotation %d) -> %s as %s",
        src.name,
        info.width,
        info.height,
        info.fps,
        info.frames,
        info.rotation,
        dst,
        fmt.label,
    )
    try:
        try:
            with (
                av.open(str(src), "r") as inp,
                av.open(str(tmp), "w", format=fmt.container, options=container_options) as out,
            ):
                if metadata:
                    out.metadata.update({str(k): str(v) for k, v in metadata.items()})
                frames = _Transcoder(src, inp, out, info, fmt, frame_fn, progress, cancel).run()
        except av.FFmpegError as exc:
            log.warning("Video conversion of %s failed: %s", src, exc)
            raise UserError(f"{src.name} could not be converted to {fmt.label}: {_ffmpeg_reason(exc)}") from None
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("Wrote %s (%d frames)", dst, frames)
    return dst


def _ffmpeg_reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", "") or exc).strip().rstrip(".")
    return (text[:1].lower() + text[1:] + ".") if text else "the video library reported an error."


# ---- live recording ---------------------------------------------------------------------------


class VideoRecorder:
    """Records a live stream of BGR frames to an H.264 MP4.

    Each frame is stamped with its capture time (``write(frame, timestamp)`` in seconds on any
    steady clock, e.g. a :class:`~workers.queues.StreamItem` timestamp), so a stream that slows
    down plays back at the right speed; without a timestamp frames are spaced at ``fps``. Frames of
    another size are scaled to the recording's size. The file appears under ``path`` only when
    :meth:`close` completes; :meth:`abort` discards the recording. Use it from one thread.
    """

    time_base = Fraction(1, 1000)

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 30.0, *, crf: int = 20) -> None:
        av = _av()
        if width <= 0 or height <= 0:
            raise ValueError(f"cannot record {width}x{height} frames")
        self.path = Path(path).expanduser()
        self.width, self.height = int(width), int(height)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frames = 0
        self._t0: float | None = None
        self._last_pts = -1
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_path(self.path.with_suffix(".mp4"))
        try:
            # No "faststart" here: moving the index to the front would copy the whole file when the
            # recording stops, and a local file plays the same without it.
            self._out = av.open(str(self._tmp), "w", format="mp4")
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = self._out.add_stream(
                "libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
            )
            stream.width, stream.height = _even(self.width), _even(self.height)
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.time_base
            stream.codec_context.time_base = self.time_base
            self._stream = stream
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise UserError(f"Recording to {self.path} could not start: {_ffmpeg_reason(exc)}") from None
        log.info("Recording %dx%d at %.2f fps to %s", self.width, self.height, self.fps, self.path)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame: np.ndarray, timestamp: float | None = None) -> None:
        """Add one BGR (or BGRA, flattened on black) frame captured at ``timestamp`` seconds."""
        av = _av()
        if self._closed:
            raise RuntimeError("the recording is closed")
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = flatten_on_black(frame)
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            import cv2

            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        image = _pad_even(np.ascontiguousarray(frame, dtype=np.uint8))
        if timestamp is None:
            pts = round(self.frames * 1000 / self.fps)
        else:
            if self._t0 is None:
                self._t0 = timestamp
            pts = round((timestamp - self._t0) * 1000)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        video_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        video_frame.pts = pts
        video_frame.time_base = self.time_base
        try:
            self._out.mux(self._stream.encode(video_frame))
        except av.FFmpegError as exc:
            raise UserError(f"Recording to {self.path} failed: {_ffmpeg_reason(exc)}") from None
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; a UserError if no frame was recorded."""
        av = _av()
        if self._closed:
            return self.path
        self._closed = True
        try:
            self._out.mux(self._stream.encode(None))
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise UserError(f"Recording to {self.path} could not be finished: {_ffmpeg_reason(exc)}") from None
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            raise UserError("Nothing was recorded: no frame arrived while recording.")
        os.replace(self._tmp, self.path)
        log.info("Recorded %d frames to %s", self.frames, self.path)
        return self.path

    def abort(self) -> None:
        """Stop and discard the recording."""
        if self._closed:
            return
        self._closed = True
        try:
            self._out.close()
        except Exception as exc:  # the file is being thrown away anyway
            log.debug("Closing a discarded recording: %s", exc)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
