"""The converter contract shared by the DSP voice changer and the neural (so-vits-svc / RVC) models.

A converter takes mono float32 audio in [-1, 1] at :attr:`Converter.input_rate` and returns audio of
the same duration at :attr:`Converter.sample_rate`. Parameters (pitch, formant, pitch method,
index ratio, speaker, automatic pitch) change live through :meth:`Converter.set_params`; a
converter ignores the ones it has no use for.

Two optional attributes are read by the realtime path and the file converter:

- ``convert_at(audio, rate)``: the converter works at any rate (the DSP changer), so the caller
  skips resampling;
- ``context_seconds``: the most audio before a block the converter benefits from (the realtime
  path sends no more than that), and ``delay_seconds``: its own delay, added to the latency shown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from workers.voice_conversion.options import VoiceConversionOptions

if TYPE_CHECKING:
    from pathlib import Path

    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

#: The rate the DSP voice changer runs at when it is not told the device's rate.
DSP_RATE = 48000


@runtime_checkable
class Converter(Protocol):
    name: str
    input_rate: int
    sample_rate: int

    def convert(self, audio: np.ndarray) -> np.ndarray:
        """Mono float32 at ``input_rate`` → the same duration at ``sample_rate``."""
        ...

    def set_params(self, **params: Any) -> None:
        """``pitch``, ``formant``, ``f0_method``, ``index_ratio``, ``speaker``, ``auto_pitch`` (live)."""
        ...


def converter_params(options: VoiceConversionOptions) -> dict[str, Any]:
    """The live parameters of ``options``, as :meth:`Converter.set_params` takes them."""
    return {
        "pitch": options.pitch,
        "formant": options.formant,
        "f0_method": options.f0_method,
        "index_ratio": options.index_ratio,
        "speaker": options.speaker,
        "auto_pitch": options.auto_pitch,
    }


def load_converter(
    options: VoiceConversionOptions, *, store: ModelStore | None = None, device: str = "cpu",
    content_encoder: str | Path | None = None, prepare_live: bool = False,
) -> Converter:
    """The DSP voice changer when ``options.model`` is empty, else the neural model it names.

    Neural models are loaded by :func:`workers.voice_conversion.neural.load_neural_converter`
    (imported here, so torch is loaded only when a model is used).
    """
    model = (options.model or "").strip()
    if not model:
        from workers.voice_conversion.dsp import DSPVoiceChanger

        dsp = DSPVoiceChanger(DSP_RATE)
        dsp.set_params(**converter_params(options))
        return dsp
    from workers.voice_conversion.neural import load_neural_converter

    return load_neural_converter(
        options, store=store, device=device, content_encoder=content_encoder, prepare_live=prepare_live
    )
