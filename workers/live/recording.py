"""Recording what goes out live: the swapped picture and the converted voice in one MP4, in sync.

Each frame and each audio block is written with the monotonic time it left the studio (the time
the virtual camera got the frame, the time the block started playing on the virtual microphone),
so the file keeps the same alignment as the live outputs. H.264 video (timestamps in
milliseconds) and AAC audio (timestamps in samples) through PyAV; the file is written under a
temporary name and appears only when it is finished. Frames and blocks may come from two threads.

No Qt here.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import UserError

log = logging.getLogger(__name__)

AAC_FRAME = 1024


class LiveRecorder:
    """An MP4 of BGR frames and mono float32 audio, each stamped with the monotonic time it left."""

    def __init__(self, path: str | Path, samplerate: int = 48000, fps: float = 30.0, *, crf: int = 21) -> None:
        import av

        self.path = Path(path).expanduser().with_suffix(".mp4")
        self.samplerate = int(samplerate)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.crf = int(crf)
        self.frames = 0
        self.samples = 0
        self._lock = threading.Lock()
        self._t0: float | None = None
        self._video: Any = None
        self._size: tuple[int, int] | None = None
        self._last_pts = -1
        self._audio_next: int | None = None
        self._pending = np.zeros(0, np.float32)
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.part.mp4")
        try:
            self._out = av.open(str(self._tmp), "w", format="mp4")
            audio = self._out.add_stream("aac", rate=self.samplerate, layout="mono")
            audio.time_base = Fraction(1, self.samplerate)
            self._audio = audio
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise UserError(f"Recording to {self.path} could not start: {exc}.") from None

    def _start(self, at: float) -> float:
        if self._t0 is None:
            self._t0 = at
        return self._t0

    def _add_video(self, width: int, height: int) -> None:
        w, h = width - width % 2, height - height % 2
        stream = self._out.add_stream(
            "libx264",
            rate=Fraction(self.fps).limit_denominator(1001),
            options={"crf": str(self.crf), "preset": "veryfast", "tune": "zerolatency"},
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        self._video, self._size = stream, (w, h)

    def write_frame(self, frame: np.ndarray, left_at: float) -> None:
        import av

        with self._lock:
            if self._closed:
                return
            t0 = self._start(left_at)
            if self._video is None:
                self._add_video(frame.shape[1], frame.shape[0])
            assert self._size is not None
            w, h = self._size
            image = np.ascontiguousarray(frame[:h, :w, :3], dtype=np.uint8)
            pts = max(round((left_at - t0) * 1000), self._last_pts + 1)
            self._last_pts = pts
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
            self._out.mux(self._video.encode(vf))
            self.frames += 1

    def write_audio(self, block: np.ndarray, left_at: float) -> None:
        """Mono samples whose first one left at ``left_at``; gaps become silence, overlaps are cut."""
        with self._lock:
            if self._closed or self._video is None:
                return  # the audio starts with the first frame, so both tracks begin together
            x = np.asarray(block, np.float32).reshape(-1)
            start = round((left_at - self._start(left_at)) * self.samplerate)
            if self._audio_next is None:
                if start < 0:
                    x = x[-start:]
                    start = 0
                self._audio_next = start
                pad = 0
            else:
                expected = self._audio_next + len(self._pending)
                pad = start - expected
                if abs(pad) < self.samplerate // 100:  # the clock jitters a little: keep the audio whole
                    pad = 0
            if pad > 0:
                x = np.concatenate([np.zeros(pad, np.float32), x])
            elif pad < 0:
                x = x[min(len(x), -pad) :]
            self._pending = np.concatenate([self._pending, x])
            self._encode_audio(final=False)

    def _encode_audio(self, *, final: bool) -> None:
        import av

        while len(self._pending) >= AAC_FRAME or (final and len(self._pending)):
            chunk = self._pending[:AAC_FRAME]
            if len(chunk) < AAC_FRAME:
                chunk = np.concatenate([chunk, np.zeros(AAC_FRAME - len(chunk), np.float32)])
            self._pending = self._pending[AAC_FRAME:]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            af.sample_rate = self.samplerate
            assert self._audio_next is not None
            af.pts, af.time_base = self._audio_next, Fraction(1, self.samplerate)
            self._audio_next += AAC_FRAME
            self._out.mux(self._audio.encode(af))
            self.samples += AAC_FRAME

    def close(self) -> Path:
        """Finish the file and move it into place; a UserError sentence when nothing was recorded."""
        with self._lock:
            if self._closed:
                return self.path
            self._closed = True
            try:
                if self._audio_next is not None:
                    self._encode_audio(final=True)
                    self._out.mux(self._audio.encode(None))
                if self._video is not None:
                    self._out.mux(self._video.encode(None))
                self._out.close()
            except Exception as exc:
                self._tmp.unlink(missing_ok=True)
                raise UserError(f"Recording to {self.path} could not be finished: {exc}.") from None
            if self.frames == 0:
                self._tmp.unlink(missing_ok=True)
                raise UserError("Nothing was recorded: no frame left the studio while recording.")
            os.replace(self._tmp, self.path)
            log.info(
                "recorded %d frames and %.1f s of voice to %s", self.frames, self.samples / self.samplerate, self.path
            )
            return self.path

    def abort(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._out.close()
            except Exception as exc:
                log.debug("closing a discarded recording: %s", exc)
            self._tmp.unlink(missing_ok=True)
