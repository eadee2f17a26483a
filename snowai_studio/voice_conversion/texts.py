"""The words of the voice-conversion page: live numbers, the voice in use, and what a conversion writes.

No widgets here: plain functions of the options, the worker's reports and the files' headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snowai_studio.panels.output_panel import short_path
from workers.voice_conversion.files import FORMATS, file_channels, file_rate
from workers.voice_conversion.options import VoiceConversionOptions
from workers.voice_conversion.worker import AUDIO_SUFFIXES, channels_name, model_label

#: The page's name in the notifications.
SOURCE = "Voice conversion"
BUILTIN = ""
BUILTIN_LABEL = "Built-in voice changer"
F0_LABELS = {
    "fcpe": "FCPE (fast, live)",
    "crepe-tiny": "CREPE tiny (fast)",
    "crepe-full": "CREPE full (accurate)",
    "harvest": "Harvest (no model)",
    "rmvpe": "RMVPE (singing, noisy input)",
}
F0_TIPS = {
    "fcpe": "FCPE: fast and light, good for live",
    "crepe-tiny": "CREPE tiny: fast",
    "crepe-full": "CREPE full: accurate, slower",
    "harvest": "Harvest: classic signal processing, needs no model",
    "rmvpe": "RMVPE: robust on singing and noisy recordings; downloaded in Models (181 MB)",
}
PRESET_LABELS = {"cpu": "CPU", "gpu": "GPU"}
FORMAT_LABELS = {"wav": "WAV (16-bit)", "flac": "FLAC (16-bit, lossless)", "ogg": "OGG Vorbis", "mp3": "MP3"}
#: How a converted file's channels are chosen (the keys are the worker's); the first is the default.
CHANNEL_LABELS = {
    "input": "As the input (default)",
    "mono": "Mono",
}
AUDIO_FILTER = "Sound files (" + " ".join(f"*{s}" for s in AUDIO_SUFFIXES) + ");;All files (*)"
RVC_FILTER = "RVC models (*.pth *.safetensors);;All files (*)"
CONFIG_FILTER = "so-vits-svc config (*.json);;All files (*)"
INDEX_FILTER = "Feature index or cluster model (*.index *.pt *.pth *.pkl);;All files (*)"
CABLE_HINT = (
    "To use the converted voice in a call, a game or a stream, choose a virtual audio cable as the output "
    "(VB-CABLE or VoiceMeeter on Windows, BlackHole on macOS, a PipeWire or PulseAudio null sink on Linux) "
    "and pick it as the microphone in that program."
)
IDLE_STATS = "Not running. Press Start live to hear the converted voice."
#: The content encoders so-vits-svc and RVC voices need (either serves every voice).
CONTENT_ENCODERS = ("contentvec-best", "hubert-base-rvc")


def live_text(stats: dict[str, Any]) -> str:
    """"Inference 14 ms per 250 ms block · latency 330 ms (algorithmic 300 ms) · 0.06x real time"."""
    parts = []
    if "infer_ms" in stats:
        block = stats.get("block_ms")
        per = f" per {float(block):.0f} ms block" if block else ""
        parts.append(f"Inference {float(stats['infer_ms']):.0f} ms{per}")
    if "latency_ms" in stats:
        algo = stats.get("algorithmic_ms")
        extra = f" (algorithmic {float(algo):.0f} ms)" if algo is not None else ""
        parts.append(f"latency {float(stats['latency_ms']):.0f} ms{extra}")
    if "rtf" in stats:
        rtf = float(stats["rtf"])
        parts.append(f"{rtf:.2f}x real time" + (" — too slow, use longer blocks" if rtf > 1.0 else ""))
    if stats.get("dropped"):
        parts.append(f"{int(stats['dropped'])} blocks dropped")
    return " · ".join(parts) or "Converting…"


def preset_label(key: str, block: float) -> str:
    """"CPU · 250 ms" (the block length that the preset gives)."""
    return f"{PRESET_LABELS.get(key, key)} · {block * 1000:.0f} ms"


def describe_voice(info: dict[str, Any]) -> str:
    """What the loaded voice is: "RVC v2 · 40 kHz · 2 speakers"."""
    if info.get("dsp") or not info.get("model"):
        return "Pitch and formant shift on the CPU; no model file or download needed."
    kind = str(info.get("kind", ""))
    names = {"sovits-4.0": "so-vits-svc 4.0", "sovits-4.1": "so-vits-svc 4.1", "rvc-v1": "RVC v1", "rvc-v2": "RVC v2"}
    parts = [names.get(kind, kind or "Model")]
    rate = int(info.get("sample_rate", 0) or 0)
    if rate:
        parts.append(f"{rate / 1000:g} kHz")
    speakers = info.get("speakers") or {}
    if len(speakers) > 1:
        parts.append(f"{len(speakers)} speakers")
    if info.get("f0") is False:
        parts.append("no pitch input")
    return " · ".join(parts)


def describe_pending(model: str) -> str:
    if not model:
        return "Pitch and formant shift on the CPU; no model file or download needed."
    return f"{model_item_label(model)}: loads when you start."


def model_item_label(model: str) -> str:
    return model_label(VoiceConversionOptions(model=model))


def is_voice(model: Any) -> bool:
    """An imported so-vits-svc or RVC voice (a .pth, or a folder with one), not a content encoder."""
    names = [Path(f.name).name.lower() for f in model.files]
    return any(n.endswith((".pth", ".pt", ".safetensors")) and not n.startswith("pytorch_model") for n in names)


def looks_like_cable(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in ("cable", "blackhole", "voicemeeter", "loopback", "virtual", "null"))


def semitones(v: float) -> str:
    return f"{v:+g} st" if v else "0 st"


def ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def db(v: float) -> str:
    return f"{v:+g} dB" if v else "0 dB"


def strip_source(message: str) -> str:
    """Worker errors arrive as "Voice conversion: <sentence>"; the page shows the sentence."""
    for prefix in (f"{SOURCE} could not start: ", f"{SOURCE}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def kilohertz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


@dataclass(frozen=True)
class InputShape:
    """What a listed file holds, as its header says (``rate``/``channels`` 0 when it cannot be told)."""

    name: str
    rate: int = 0
    channels: int = 0


def read_shape(path: Path) -> InputShape:
    """The header of a sound file (no audio is decoded)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        return InputShape(path.name, int(info.samplerate), int(info.channels))
    except Exception:
        return InputShape(path.name)


def _written_shape(shape: InputShape, sf_format: str, channels: str, model_rate: int | None) -> str:
    """"44.1 kHz, stereo" for a file of ``shape`` converted as chosen ("" when its header was unreadable)."""
    if not (shape.rate and shape.channels):
        return ""
    rate = shape.rate if model_rate is None else model_rate
    rate_text = kilohertz(file_rate(sf_format, rate)) if rate else "the voice model's sample rate"
    return f"{rate_text}, {channels_name(file_channels(sf_format, shape.channels, channels))}"


def output_summary(
    inputs: list[InputShape], fmt: str, channels: str, folder: str, model_rate: int | None
) -> str:
    """One paragraph saying exactly what Convert writes: the file names, format, sample rate and
    channels, where, and that nothing is replaced. ``model_rate`` is the voice's output rate (None: the
    built-in changer, which keeps each input's rate; 0: a model whose rate is known once it has loaded)."""
    suffix = f".{fmt}"
    sf_format = FORMATS[suffix][0]
    kind = FORMAT_LABELS.get(fmt, fmt.upper())
    where = f"in {short_path(folder)}" if folder else "next to each original"
    tail = f", {where}. An existing file is never replaced: a free name (…-2{suffix}) is used instead."
    shapes = [_written_shape(i, sf_format, channels, model_rate) for i in inputs]
    if inputs and len(inputs) <= 3 and all(shapes):
        parts = []
        for shape, written in zip(inputs, shapes, strict=True):
            source = f"{shape.name} ({kilohertz(shape.rate)}, {channels_name(shape.channels)})"
            every = file_channels(sf_format, shape.channels, channels) > 1
            note = " (the converted voice on every channel)" if every else ""
            parts.append(f"{source} → {Path(shape.name).stem}-converted{suffix}: {kind}, {written}{note}")
        return "; ".join(parts) + tail
    if model_rate is None:
        rate_text = "at each input's sample rate"
    elif model_rate:
        rate_text = f"at {kilohertz(file_rate(sf_format, model_rate))} (the voice model's rate)"
    else:
        rate_text = "at the voice model's sample rate"
    shape_text = "mono" if channels == "mono" else "with each input's channels (the converted voice on every one)"
    if len(inputs) == 1:
        what = f"{inputs[0].name} → {Path(inputs[0].name).stem}-converted{suffix}"
    elif inputs:
        what = f"{len(inputs)} files → <name>-converted{suffix} each"
    else:
        what = f"Each file → <name>-converted{suffix}"
    return f"{what}: {kind}, {rate_text}, {shape_text}{tail}"
