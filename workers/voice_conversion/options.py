"""Voice conversion options: saved in the settings' ``voice_conversion`` group, changed live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

#: Pitch (F0) estimators.
F0_METHODS = ("fcpe", "crepe-tiny", "crepe-full", "harvest", "rmvpe")
#: How neural models run on the CPU: "auto" (live blocks on ONNX Runtime with int8 weights, files on
#: torch, the reference), "torch" (always torch), "onnx" (ONNX Runtime, full precision), "onnx-int8".
ENGINES = ("auto", "torch", "onnx", "onnx-int8")
#: Realtime presets: (block seconds, crossfade seconds, extra context seconds).
PRESETS = {"cpu": (0.25, 0.05, 0.5), "gpu": (0.1, 0.04, 1.0)}


@dataclass
class VoiceConversionOptions:
    #: The group of the settings file these options are saved in (see :meth:`workers.settings.Settings.options`).
    SETTINGS_SECTION: ClassVar[str] = "voice_conversion"

    #: "" means the built-in DSP voice changer; otherwise a model id or a checkpoint path
    #: (so-vits-svc config.json/G_*.pth folder or file, RVC .pth).
    model: str = ""
    #: The so-vits-svc config.json when it is not next to the checkpoint ("" looks beside it).
    config: str = ""
    #: Optional feature index (.index, RVC) or cluster model (.pt, so-vits-svc).
    index: str = ""
    #: 0..1: how much of the retrieved/clustered features replaces the input's.
    index_ratio: float = 0.5
    #: Pitch shift in semitones.
    pitch: float = 0.0
    #: Move the singer's pitch into the model's range automatically (added to ``pitch``).
    auto_pitch: bool = False
    f0_method: str = "fcpe"
    #: One of :data:`ENGINES` (CPU only; a GPU always runs torch).
    engine: str = "auto"
    #: DSP voice changer: formant shift in semitones, independent of ``pitch`` (0 keeps the speaker's
    #: formants while the pitch moves; set it equal to ``pitch`` to move both, like a tape speed-up).
    formant: float = 0.0
    #: Speaker id for multi-speaker models.
    speaker: int = 0
    # ---- realtime ----
    block_seconds: float = 0.25
    crossfade_seconds: float = 0.05
    extra_seconds: float = 0.5
    #: Blocks quieter than this (dBFS) are output as silence without converting them.
    silence_db: float = -50.0
    passthrough: bool = False
    input_gain_db: float = 0.0
    output_gain_db: float = 0.0
    #: "cpu" or "gpu": the block/crossfade/context preset chosen last.
    preset: str = "cpu"
