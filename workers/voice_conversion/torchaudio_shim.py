"""A minimal pure-torch stand-in for ``torchaudio``, used only when the real one cannot be imported.

torchfcpe and torchcrepe import torchaudio, which has no build for every torch release (and a
wheel built for another torch fails at import with an ``OSError`` about a missing symbol). They
use very little of it:

- torchfcpe 0.0.4 (``mel_extractor.py``): ``from torchaudio.transforms import Resample``, built as
  ``Resample(orig_freq, new_freq, lowpass_filter_width=128)``, moved with ``.to(device)``, kept in
  an ``nn.ModuleDict`` and called on a ``(batch, time)`` tensor when the input rate is not 16 kHz;
- torchcrepe 0.0.24 (``load.py``): ``import torchaudio`` and ``torchaudio.load(path)`` in its
  ``load.audio`` helper (file input only; the studio passes tensors).

:func:`ensure_torchaudio` imports the real package when it works; otherwise it registers this
module's stand-ins as ``torchaudio``, ``torchaudio.transforms`` and ``torchaudio.functional`` in
``sys.modules``. The resampler is band-limited windowed-sinc interpolation with the same
parameters and defaults as torchaudio's (``lowpass_filter_width`` zero crossings of the sinc on
each side, cut-off at ``rolloff`` times the lower Nyquist frequency, Hann or Kaiser window), run
as one strided convolution with one kernel per output phase, so the output length is
``ceil(new_freq * time / orig_freq)``.
"""

from __future__ import annotations

import logging
import math
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

#: Marks the stand-in module (``getattr(torchaudio, SHIM_FLAG, False)`` is True for it).
SHIM_FLAG = "__snowai_torchaudio_stand_in__"
_HANN = ("sinc_interp_hann", "sinc_interpolation")
_KAISER = ("sinc_interp_kaiser", "kaiser_window")


def _sinc_kernels(
    orig: int,
    new: int,
    lowpass_filter_width: int,
    rolloff: float,
    method: str,
    beta: float | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, int]:
    """One interpolation kernel per output phase, shape ``(new, 1, 2 * width + orig)``, and ``width``.

    Output sample ``n * new + p`` lies at input position ``n * orig + p * orig / new``; the kernel for
    phase ``p`` weighs input samples ``n * orig - width`` .. ``n * orig + orig + width - 1``.
    """
    if lowpass_filter_width <= 0:
        raise ValueError("lowpass_filter_width must be positive.")
    if method not in _HANN + _KAISER:
        raise ValueError(f"Unknown resampling method {method!r}.")
    cutoff = min(orig, new) * rolloff  # the band kept, in the units where the input rate is ``orig``
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=torch.float64, device=device)  # input offsets k
    phases = torch.arange(new, dtype=torch.float64, device=device)[:, None] * (orig / new)
    # distance from each output position to each input sample, in input samples, scaled to sinc units
    z = (phases - taps[None, :]) * (cutoff / orig)
    z = z.clamp(-lowpass_filter_width, lowpass_filter_width)
    if method in _HANN:
        window = torch.cos(z * (math.pi / (2 * lowpass_filter_width))) ** 2
    else:
        b = 14.769656459379492 if beta is None else float(beta)
        arg = torch.sqrt((1.0 - (z / lowpass_filter_width) ** 2).clamp(min=0.0))
        window = torch.special.i0(b * arg) / torch.special.i0(torch.tensor(b, dtype=torch.float64))
    pz = z * math.pi
    sinc = torch.where(pz == 0, torch.ones_like(pz), torch.sin(pz) / torch.where(pz == 0, torch.ones_like(pz), pz))
    kernels = sinc * window * (cutoff / orig)
    return kernels.to(dtype)[:, None, :], width


def _apply_kernels(waveform: torch.Tensor, orig: int, new: int, kernels: torch.Tensor, width: int) -> torch.Tensor:
    shape = waveform.shape
    length = int(shape[-1])
    flat = waveform.reshape(-1, 1, length)
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded, kernels.to(dtype=flat.dtype, device=flat.device), stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    target = math.ceil(new * length / orig)
    return out[..., :target].reshape(*shape[:-1], target)


def _reduce(orig_freq: float, new_freq: float) -> tuple[int, int]:
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq:
        raise ValueError("Sample rates must be whole numbers.")
    orig, new = int(orig_freq), int(new_freq)
    if orig <= 0 or new <= 0:
        raise ValueError("Sample rates must be positive.")
    g = math.gcd(orig, new)
    return orig // g, new // g


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
    beta: float | None = None,
) -> torch.Tensor:
    """Resample the last axis of ``waveform`` from ``orig_freq`` to ``new_freq`` (torchaudio's signature)."""
    if orig_freq == new_freq:
        return waveform
    orig, new = _reduce(orig_freq, new_freq)
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    kernels, width = _sinc_kernels(
        orig, new, lowpass_filter_width, rolloff, resampling_method, beta, dtype, waveform.device
    )
    return _apply_kernels(waveform.to(dtype), orig, new, kernels, width)


class Resample(torch.nn.Module):
    """``torchaudio.transforms.Resample``: the kernels are computed once and kept as a buffer."""

    def __init__(
        self,
        orig_freq: int = 16000,
        new_freq: int = 16000,
        resampling_method: str = "sinc_interp_hann",
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
        beta: float | None = None,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.orig_freq = orig_freq
        self.new_freq = new_freq
        self.resampling_method = resampling_method
        self.lowpass_filter_width = lowpass_filter_width
        self.rolloff = rolloff
        self.beta = beta
        self._orig, self._new = _reduce(orig_freq, new_freq)
        if self._orig != self._new:
            kernels, self.width = _sinc_kernels(
                self._orig,
                self._new,
                lowpass_filter_width,
                rolloff,
                resampling_method,
                beta,
                dtype or torch.get_default_dtype(),
                None,
            )
            self.register_buffer("kernel", kernels, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self._orig == self._new:
            return waveform
        return _apply_kernels(waveform, self._orig, self._new, self.kernel, self.width)


def load(
    uri: str | Path,
    frame_offset: int = 0,
    num_frames: int = -1,
    normalize: bool = True,
    channels_first: bool = True,
    **_: Any,
) -> tuple[torch.Tensor, int]:
    """``torchaudio.load`` through soundfile: a float32 ``(channels, frames)`` tensor and the rate."""
    import soundfile

    stop = None if num_frames is None or num_frames < 0 else frame_offset + num_frames
    data, rate = soundfile.read(str(uri), start=frame_offset, stop=stop, dtype="float32", always_2d=True)
    tensor = torch.from_numpy(data)
    return (tensor.T.contiguous() if channels_first else tensor), int(rate)


def build_module() -> types.ModuleType:
    """A fresh ``torchaudio`` stand-in module with ``transforms`` and ``functional`` submodules."""
    root = types.ModuleType("torchaudio", "Pure-torch stand-in for torchaudio (resampling and loading only).")
    transforms = types.ModuleType("torchaudio.transforms")
    functional = types.ModuleType("torchaudio.functional")
    transforms.Resample = Resample  # type: ignore[attr-defined]
    functional.resample = resample  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    root.functional = functional  # type: ignore[attr-defined]
    root.load = load  # type: ignore[attr-defined]
    root.__version__ = "0.0.0+snowai-stand-in"  # type: ignore[attr-defined]
    root.__path__ = []  # type: ignore[attr-defined]  # a package, so submodule imports resolve
    for mod in (root, transforms, functional):
        mod.__spec__ = ModuleSpec(mod.__name__, None, is_package=mod is root)
        setattr(mod, SHIM_FLAG, True)
    return root


def install() -> types.ModuleType:
    """Register the stand-in in ``sys.modules`` (replacing any half-imported ``torchaudio``)."""
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]
    root = build_module()
    sys.modules["torchaudio"] = root
    sys.modules["torchaudio.transforms"] = root.transforms  # type: ignore[attr-defined]
    sys.modules["torchaudio.functional"] = root.functional  # type: ignore[attr-defined]
    return root


def is_stand_in(module: types.ModuleType | None = None) -> bool:
    """True when ``torchaudio`` (or ``module``) is this stand-in."""
    mod = module if module is not None else sys.modules.get("torchaudio")
    return bool(getattr(mod, SHIM_FLAG, False))


def ensure_torchaudio() -> None:
    """Make ``import torchaudio`` work: the real package when it imports, else the stand-in.

    A missing package (ImportError) and a broken one (OSError from its compiled extension, e.g. a
    wheel built for another torch) are treated alike. Other errors propagate.
    """
    if "torchaudio" in sys.modules and sys.modules["torchaudio"] is not None:
        return
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError) as exc:
        log.info("torchaudio is unavailable (%s); using the built-in stand-in for resampling.", exc)
        install()
