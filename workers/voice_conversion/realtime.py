"""Realtime voice conversion: block-by-block conversion with SOLA joins, and the mic → speaker session.

:class:`BlockConverter` (no threads) turns one input block into one output block of the same length
at the device rate. Each call converts the newest ``context + crossfade + search + block`` samples
(the context gives the converter what came before; it is thrown away again), keeps the last
``search + block + crossfade`` samples of the result, and joins them to what was played before:

- the previous call kept ``crossfade`` samples of its output beyond the block it played (the tail);
- the new output's start is searched over ``search`` samples (10 ms) for the offset whose
  normalised cross-correlation with that tail is highest (SOLA: synchronised overlap-add), so the
  two waveforms are in phase where they meet;
- the tail fades out and the new output fades in over ``crossfade`` samples (sin² / cos², which sum
  to one: no level dip for in-phase signals); the next ``crossfade`` samples become the new tail.

So the output has no clicks at block joins, and the algorithmic latency is
``block + crossfade + search`` (an input sample is heard once its block is complete and the
crossfade and search look-ahead behind it have been held back), plus any delay of the converter
itself. Blocks quieter than the silence threshold are not converted (silence fades in and out
through the same crossfade); passthrough sends the input through the same delay line and joins, so
switching it on or off is click-free too.

:class:`RealtimeSession` runs a source (a microphone or a fake one), a BlockConverter and a sink (a
speaker, a virtual cable, a file) on one thread, re-cutting the source's blocks to the converter's
block size, and reports stats a few times a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.errors import UserError, describe_exception
from workers.media.audio import AudioSink, AudioSource, convert_channels, resample, rms_dbfs

log = logging.getLogger(__name__)

#: How far the SOLA join may move the new output to line it up with the previous one.
SEARCH_SECONDS = 0.01
#: Audio synthesised before the part of a window a block keeps (converters that synthesise only a tail).
TAIL_MARGIN_SECONDS = 0.02
#: Converter parameters that :meth:`BlockConverter.configure` passes on to the converter.
CONVERTER_PARAMS = ("pitch", "formant", "f0_method", "index_ratio", "speaker", "auto_pitch")
_LAYOUT = ("block_seconds", "crossfade_seconds", "extra_seconds", "search_seconds")


def _db_to_gain(db: float) -> float:
    return float(10.0 ** (float(db) / 20.0))


def _mono(block: np.ndarray) -> np.ndarray:
    arr = np.asarray(block, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.mean(axis=1)
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.float32)


def sola_offset(head: np.ndarray, reference: np.ndarray, search: int) -> int:
    """The offset in ``[0, search]`` where ``head[offset:offset + len(reference)]`` best matches
    ``reference`` by normalised cross-correlation (0 when either is silent)."""
    n = len(reference)
    if n == 0 or search <= 0:
        return 0
    seg = np.asarray(head[: search + n], dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if len(seg) < n + search or not np.any(ref) or not np.any(seg):
        return 0
    num = np.correlate(seg, ref, mode="valid")
    energy = np.convolve(seg * seg, np.ones(n), mode="valid")
    score = num / np.sqrt(np.maximum(energy, 1e-12))
    return int(np.argmax(score))


class BlockConverter:
    """One block in, one block out (same length), at the device rate; see the module text."""

    def __init__(
        self,
        converter: Any,
        *,
        samplerate: int,
        block_seconds: float,
        crossfade_seconds: float,
        extra_seconds: float,
        silence_db: float = -50.0,
        passthrough: bool = False,
        input_gain_db: float = 0.0,
        output_gain_db: float = 0.0,
        search_seconds: float = SEARCH_SECONDS,
    ) -> None:
        if samplerate <= 0:
            raise UserError(f"The sample rate {samplerate} Hz is not valid.")
        self.converter = converter
        self.samplerate = int(samplerate)
        self.silence_db = float(silence_db)
        self.passthrough = bool(passthrough)
        self.input_gain_db = float(input_gain_db)
        self.output_gain_db = float(output_gain_db)
        self.last_infer_ms = 0.0
        self.converted_blocks = 0
        self.silent_blocks = 0
        self._input = np.zeros(0, np.float32)
        self._tail = np.zeros(0, np.float32)
        self._offset = 0
        self._layout(block_seconds, crossfade_seconds, extra_seconds, search_seconds)

    # ---- layout ----

    def _layout(self, block: float, crossfade: float, extra: float, search: float) -> None:
        sr = self.samplerate
        if not block > 0:
            raise UserError("The block size must be longer than zero seconds.")
        self.block_seconds = float(block)
        self.crossfade_seconds = max(0.0, float(crossfade))
        self.extra_seconds = max(0.0, float(extra))
        self.search_seconds = max(0.0, float(search))
        self.block = max(1, round(self.block_seconds * sr))
        self.crossfade = min(round(self.crossfade_seconds * sr), self.block)
        self.search = round(self.search_seconds * sr)
        limit = getattr(self.converter, "context_seconds", None)
        extra_used = self.extra_seconds if limit is None else min(self.extra_seconds, float(limit))
        self.extra = round(extra_used * sr)
        window = self.extra + self.crossfade + self.search + self.block
        old = self._input
        self._input = np.zeros(window, np.float32)
        keep = min(len(old), window)
        if keep:
            self._input[-keep:] = old[-keep:]
        tail = np.zeros(self.crossfade, np.float32)
        keep = min(len(self._tail), self.crossfade)
        if keep:
            tail[:keep] = self._tail[:keep]
        self._tail = tail
        t = (np.arange(self.crossfade, dtype=np.float64) + 0.5) / max(1, self.crossfade)
        self._fade_in = (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)
        self._offset = min(self._offset, self.search)

    @property
    def latency_seconds(self) -> float:
        """Algorithmic latency: block + crossfade + search (plus the converter's own delay, if any)."""
        own = float(getattr(self.converter, "delay_seconds", 0.0) or 0.0)
        return (self.block + self.crossfade + self.search) / self.samplerate + own

    @property
    def window_seconds(self) -> float:
        """How much audio each call converts (context + crossfade + search + block)."""
        return len(self._input) / self.samplerate

    def inherit(self, other: BlockConverter) -> None:
        """Continue from ``other``'s recent input and join state (same rate), e.g. after a rebuild."""
        if other.samplerate != self.samplerate:
            return
        keep = min(len(other._input), len(self._input))
        if keep:
            self._input[-keep:] = other._input[-keep:]
        keep = min(len(other._tail), len(self._tail))
        self._tail[:] = 0.0
        if keep:
            self._tail[:keep] = other._tail[:keep]
        self._offset = min(other._offset, self.search)

    def reset(self) -> None:
        """Forget the past (a new stream starts)."""
        self._input[:] = 0.0
        self._tail[:] = 0.0
        self._offset = 0

    def configure(self, **kw: Any) -> None:
        """Live changes: gains (dB), ``passthrough``, ``silence_db``, the block layout (``block_seconds``,
        ``crossfade_seconds``, ``extra_seconds``, ``search_seconds``) and the converter's parameters
        (``pitch``, ``formant``, ``f0_method``, ``index_ratio``, ``speaker``, ``auto_pitch``)."""
        layout = {k: kw.pop(k) for k in list(kw) if k in _LAYOUT}
        params = {k: kw.pop(k) for k in list(kw) if k in CONVERTER_PARAMS}
        for key, value in kw.items():
            if key in ("input_gain_db", "output_gain_db", "silence_db"):
                setattr(self, key, float(value))
            elif key == "passthrough":
                self.passthrough = bool(value)
            else:
                raise UserError(f"Realtime conversion has no setting called {key!r}.")
        if layout:
            self._layout(
                layout.get("block_seconds", self.block_seconds),
                layout.get("crossfade_seconds", self.crossfade_seconds),
                layout.get("extra_seconds", self.extra_seconds),
                layout.get("search_seconds", self.search_seconds),
            )
        if params:
            self.converter.set_params(**params)

    # ---- processing ----

    def _convert(self, window: np.ndarray, keep: int) -> np.ndarray:
        conv = self.converter
        sr = self.samplerate
        if hasattr(conv, "convert_at"):
            y = np.asarray(conv.convert_at(window, sr), dtype=np.float32).reshape(-1)
        else:
            rate_in, rate_out = int(conv.input_rate), int(conv.sample_rate)
            x = resample(window[:, None], sr, rate_in)[:, 0] if rate_in != sr else window
            x = np.ascontiguousarray(x, dtype=np.float32)
            if getattr(conv, "converts_tail", False):
                # synthesise only the kept samples (and a little before them for the resampler's edge)
                y = conv.convert(x, keep_seconds=keep / sr + TAIL_MARGIN_SECONDS)
            else:
                y = conv.convert(x)
            y = np.asarray(y, dtype=np.float32).reshape(-1)
            if rate_out != sr:
                y = resample(y[:, None], rate_out, sr)[:, 0]
        # line the result up with the window by its end (the newest samples)
        if len(y) >= len(window):
            return y[len(y) - len(window) :]
        return np.concatenate([np.zeros(len(window) - len(y), np.float32), y])

    def process(self, block: np.ndarray) -> np.ndarray:
        """Convert one block (mono, or the first/mean channel of a multi-channel block)."""
        x = _mono(block)
        n = len(x)
        if n == 0:
            return np.zeros(0, np.float32)
        if self.input_gain_db:
            x = x * np.float32(_db_to_gain(self.input_gain_db))
        need = self.search + n + self.crossfade
        if len(self._input) < need + self.extra:  # a block longer than planned
            self._input = np.concatenate([np.zeros(need + self.extra - len(self._input), np.float32), self._input])
        if n >= len(self._input):
            self._input = x[-len(self._input) :].copy()
        else:
            self._input = np.concatenate([self._input[n:], x])
        region = self._input[-need:]
        if self.passthrough:
            out = region.copy()
        elif rms_dbfs(region[: self.search + n]) < self.silence_db:
            out = np.zeros(need, np.float32)
            self.silent_blocks += 1
        else:
            start = time.perf_counter()
            converted = self._convert(self._input, need)
            self.last_infer_ms = (time.perf_counter() - start) * 1000.0
            self.converted_blocks += 1
            out = converted[-need:]
        cf = min(self.crossfade, n)
        reference = self._tail[:cf]
        if np.any(reference) and np.any(out[: self.search + cf]):
            offset = sola_offset(out, reference, self.search)
        else:
            offset = self._offset
        self._offset = offset
        result = out[offset : offset + n].copy()
        if cf:
            if cf == self.crossfade:
                fade_in = self._fade_in
            else:
                fade_in = (np.sin(0.5 * np.pi * (np.arange(cf) + 0.5) / cf) ** 2).astype(np.float32)
            result[:cf] = result[:cf] * fade_in + reference * (1.0 - fade_in)
        self._tail = out[offset + n : offset + n + self.crossfade].copy()
        if len(self._tail) < self.crossfade:
            self._tail = np.concatenate([self._tail, np.zeros(self.crossfade - len(self._tail), np.float32)])
        if self.output_gain_db:
            result *= np.float32(_db_to_gain(self.output_gain_db))
        return np.clip(result, -1.0, 1.0).astype(np.float32, copy=False)


StatsCallback = Callable[[dict[str, float]], None]
ErrorCallback = Callable[[BaseException], None]


class RealtimeSession:
    """A source → :class:`BlockConverter` → sink loop on its own thread.

    ``block_converter_factory(samplerate)`` makes the BlockConverter once the source is open (its
    rate is known then). :meth:`start` opens the source and sink on the caller's thread (opening an
    open device is harmless), so a device that cannot be opened raises a :class:`UserError` right
    there; a failure while running is passed to ``on_error`` (the exception; :attr:`error` holds its
    sentence) and ends the session. When a finite source (a file) ends, the audio still held back is
    flushed, the sink drained, and the session ends by itself. :meth:`stop` closes both devices.
    """

    def __init__(
        self,
        block_converter_factory: Callable[[int], BlockConverter],
        source: AudioSource,
        sink: AudioSink,
        *,
        on_stats: StatsCallback | None = None,
        on_error: ErrorCallback | None = None,
        stats_interval: float = 0.25,
        max_backlog_blocks: int = 4,
    ) -> None:
        self.factory = block_converter_factory
        self.source = source
        self.sink = sink
        self.on_stats = on_stats
        self.on_error = on_error
        self.stats_interval = float(stats_interval)
        self.max_backlog_blocks = max(1, int(max_backlog_blocks))
        self.block_converter: BlockConverter | None = None
        self.stats: dict[str, float] = {}
        self.error: str | None = None
        self.dropped_blocks = 0
        self.blocks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._resampler: Any = None
        self._infer_avg = 0.0
        self._levels = (-120.0, -120.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self.error = None
        self.source.open()
        try:
            self.sink.open()
            rate = int(self.source.samplerate)
            self.block_converter = self.factory(rate)
            sink_rate = int(self.sink.samplerate)
            if sink_rate != rate:
                import soxr

                self._resampler = soxr.ResampleStream(rate, sink_rate, 1, dtype="float32")
        except BaseException:
            self._close_devices()
            raise
        self._thread = threading.Thread(target=self._run, name="svc-realtime", daemon=True)
        self._thread.start()

    def configure(self, **kw: Any) -> None:
        """Live changes, passed to :meth:`BlockConverter.configure` between blocks."""
        if self.block_converter is None:
            raise UserError("Realtime conversion is not running.")
        with self._lock:
            self.block_converter.configure(**kw)

    def rebuild(self) -> None:
        """Take a fresh block converter from the factory (a new layout or converter) between two
        blocks; the recent input and the join state carry over, so the sound does not break."""
        if self.block_converter is None:
            raise UserError("Realtime conversion is not running.")
        with self._lock:
            old = self.block_converter
            new = self.factory(old.samplerate)
            new.inherit(old)
            self.block_converter = new

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the session to end by itself (a finite source); True if it has ended."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("The realtime conversion thread did not stop within %.1f s", timeout)
        self._close_devices()

    def _close_devices(self) -> None:
        for dev in (self.source, self.sink):
            try:
                dev.close()
            except Exception as exc:  # closing must not hide the reason we stopped
                log.warning("Closing %s failed: %s", type(dev).__name__, exc)

    # ---- the loop ----

    def _write(self, block: np.ndarray) -> None:
        data = block
        if self._resampler is not None:
            data = self._resampler.resample_chunk(block.astype(np.float32))
        if len(data):
            self.sink.write(np.asarray(data, np.float32)[:, None])

    def _block_size(self) -> int:
        bc = self.block_converter
        assert bc is not None
        return bc.block

    def _process(self, block: np.ndarray) -> None:
        bc = self.block_converter
        assert bc is not None
        start = time.perf_counter()
        with self._lock:
            out = bc.process(block)
        spent = (time.perf_counter() - start) * 1000.0
        self._infer_avg = spent if self.blocks == 0 else 0.8 * self._infer_avg + 0.2 * spent
        self.blocks += 1
        self._write(out)
        self._levels = (rms_dbfs(block), rms_dbfs(out))

    def _make_stats(self) -> dict[str, float]:
        bc = self.block_converter
        assert bc is not None
        block_ms = 1000.0 * bc.block / bc.samplerate
        buffered = getattr(self.sink, "buffered_frames", 0) or 0
        sink_ms = 1000.0 * float(buffered) / max(1, int(self.sink.samplerate))
        source_ms = 1000.0 * max(0, int(getattr(self.source, "blocksize", 0)) - bc.block) / bc.samplerate
        dropped = self.dropped_blocks + int(getattr(self.source, "dropped", 0) or 0)
        levels = self._levels
        return {
            "infer_ms": round(self._infer_avg, 2),
            "latency_ms": round(1000.0 * bc.latency_seconds + self._infer_avg + sink_ms + source_ms, 1),
            "algorithmic_ms": round(1000.0 * bc.latency_seconds, 1),
            "rtf": round(self._infer_avg / block_ms, 3) if block_ms else 0.0,
            "dropped": float(dropped),
            "input_dbfs": round(levels[0], 1),
            "output_dbfs": round(levels[1], 1),
            "blocks": float(self.blocks),
        }

    def _emit_stats(self) -> None:
        self.stats = self._make_stats()
        if self.on_stats is not None:
            try:
                self.on_stats(dict(self.stats))
            except Exception as exc:
                log.warning("A stats listener failed: %s", exc)

    def _run(self) -> None:
        pending = np.zeros(0, np.float32)
        last_stats = 0.0
        try:
            while not self._stop.is_set():
                item = self.source.read(timeout=0.1)
                if item is None:
                    if self.source.ended:
                        self._flush(pending)
                        break
                    continue
                data = np.asarray(item.payload, dtype=np.float32)
                mono = convert_channels(data, 1)[:, 0] if data.ndim == 2 else data.reshape(-1)
                pending = np.concatenate([pending, mono])
                bc = self.block_converter
                assert bc is not None
                limit = self.max_backlog_blocks * bc.block
                if len(pending) > limit:  # fell behind: drop the oldest audio, keep latency bounded
                    drop = (len(pending) - limit + bc.block - 1) // bc.block * bc.block
                    pending = pending[drop:]
                    self.dropped_blocks += drop // bc.block
                while len(pending) >= self._block_size() and not self._stop.is_set():
                    size = self._block_size()
                    self._process(pending[:size])
                    pending = pending[size:]
                    now = time.monotonic()
                    if now - last_stats >= self.stats_interval:
                        last_stats = now
                        self._emit_stats()
            if self.blocks:
                self._emit_stats()
        except Exception as exc:
            self.error = describe_exception(exc, "Realtime voice conversion stopped")
            log.warning("%s", self.error, exc_info=not isinstance(exc, UserError))
            if self.on_error is not None:
                try:
                    self.on_error(exc)
                except Exception as cb_exc:
                    log.warning("An error listener failed: %s", cb_exc)

    def _flush(self, pending: np.ndarray) -> None:
        """The source ended: convert what is left and push out the audio still held back."""
        bc = self.block_converter
        assert bc is not None
        if len(pending):
            self._process(np.concatenate([pending, np.zeros(bc.block - len(pending), np.float32)]))
        held = bc.search + bc.crossfade
        for _ in range(-(-held // bc.block)):
            if self._stop.is_set():
                return
            self._process(np.zeros(bc.block, np.float32))
        if self._resampler is not None:
            rest = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(rest):
                self.sink.write(np.asarray(rest, np.float32)[:, None])
        self.sink.drain(2.0)
