"""Speech for the API: Whisper transcription and translation, Piper and Bark speech.

The models are the voice assistant's (:mod:`workers.assistant.asr`, :mod:`workers.assistant.tts`),
loaded from the store the way ``snowai-studio transcribe`` and ``say`` load them, once per server.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from workers.api.context import ServerContext
from workers.errors import Cancelled, UserError

#: Response formats of /v1/audio/transcriptions and /translations.
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: Response formats of /v1/audio/speech: WAV and raw PCM are streamed sentence by sentence.
SPEECH_FORMATS = ("wav", "pcm", "flac")
SPEECH_MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac"}
#: OpenAI's raw PCM is 24 kHz, 16-bit, little-endian, mono; ours is the same, so clients can play it.
PCM_RATE = 24000
#: The voice names of the OpenAI API: each means the studio's default voice.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
MAX_SPEECH_CHARS = 4096


def _options(ctx: ServerContext) -> Any:
    from workers.assistant.options import AssistantOptions

    return ctx.reload_settings().options(AssistantOptions)


# ---- transcription ----------------------------------------------------------------------------------
def asr_model(ctx: ServerContext, requested: str | None) -> str:
    if ctx.is_default(requested, "transcription"):
        return str(_options(ctx).asr_model)
    return ctx.store_model(str(requested), "transcription", "speech recognition model")


def transcribe(
    ctx: ServerContext,
    path: Path,
    *,
    model: str | None,
    language: str | None,
    task: str = "transcribe",
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Any:
    """The transcript of a sound or video file (see :meth:`Transcriber.transcribe_file`)."""
    from workers.assistant.asr import Transcriber

    model_id = asr_model(ctx, model)
    lang = (language or "").strip() or ("auto" if task == "translate" else _options(ctx).language or "auto")

    def load() -> Any:
        return Transcriber(model_id, store=ctx.store, device=ctx.device)

    def stop() -> bool:
        return ctx.stopping.is_set() or bool(cancel and cancel())

    with ctx.pool.use(("transcription", model_id), load) as transcriber:
        return transcriber.transcribe_file(path, language=lang, task=task, progress=progress, cancel=stop)


def transcript_body(transcript: Any, fmt: str, task: str) -> tuple[str, str]:
    """``(body, media type)`` of a transcript in an OpenAI response format."""
    from workers.assistant.asr import format_transcript

    kind = (fmt or "json").strip().lower()
    if kind not in TRANSCRIPT_FORMATS:
        raise UserError(f"Unknown response_format {fmt!r}; choose {', '.join(TRANSCRIPT_FORMATS)}.")
    if kind == "json":
        return json.dumps({"text": transcript.text}), "application/json"
    if kind == "text":
        return (transcript.text.strip() + "\n" if transcript.text.strip() else ""), "text/plain; charset=utf-8"
    if kind in ("srt", "vtt"):
        return format_transcript(transcript, kind), "text/plain; charset=utf-8"
    segments = [
        {
            "id": i,
            "seek": 0,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": 0.0,
            "compression_ratio": 0.0,
            "no_speech_prob": 0.0,
        }
        for i, s in enumerate(transcript.segments)
    ]
    body = {
        "task": task,
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": segments,
    }
    return json.dumps(body), "application/json"


# ---- speech -----------------------------------------------------------------------------------------
def voice_choice(ctx: ServerContext, model: str | None, voice: str | None) -> tuple[str, str]:
    """``(engine, voice id)`` for a request's model and voice."""
    from workers.assistant.tts import DEFAULT_VOICE_ID

    options = _options(ctx)
    engine_asked = (model or "").strip().lower()
    if engine_asked not in ("piper", "bark") and not ctx.is_default(engine_asked, "speech"):
        # A voice model id in "model" (as some clients send it) works like one in "voice".
        voice, engine_asked = model, ""
    name = (voice or "").strip()
    if name.lower() in ("", "default", *OPENAI_VOICES):
        engine = engine_asked if engine_asked in ("piper", "bark") else str(options.tts_engine)
        if engine == options.tts_engine:
            return engine, str(options.voice)
        if engine == "piper":
            return engine, DEFAULT_VOICE_ID
        raise UserError("Bark needs a Bark model: pass its id as voice (GET /v1/models lists the voices).")
    voice_id = ctx.store_model(name, "speech", "voice")
    kind = ctx.store.get(voice_id).kind
    engine = "bark" if kind == "bark" else "piper"
    if engine_asked in ("piper", "bark") and engine_asked != engine:
        raise UserError(f"The voice {voice_id} is a {engine} voice, not a {engine_asked} one.")
    return engine, voice_id


def speech_stream(
    ctx: ServerContext,
    text: str,
    *,
    model: str | None,
    voice: str | None,
    fmt: str,
    speed: float,
    cancel: Callable[[], bool],
) -> Iterator[bytes]:
    """The bytes of ``text`` spoken, sentence by sentence (WAV: a header first, then PCM as it comes)."""
    from workers.assistant.tts import load_voice

    kind = (fmt or "wav").strip().lower()
    if kind not in SPEECH_FORMATS:
        raise UserError(
            f"The speech format {fmt!r} is not available here; choose {', '.join(SPEECH_FORMATS)} (wav and pcm stream)."
        )
    if not text.strip():
        raise UserError("There is nothing to say: the input text is empty.")
    if len(text) > MAX_SPEECH_CHARS:
        raise UserError(f"The input text is {len(text)} characters long; the most is {MAX_SPEECH_CHARS}.")
    if not (0.25 <= speed <= 4.0) or not math.isfinite(speed):
        raise UserError("speed must be between 0.25 and 4.0.")
    engine, voice_id = voice_choice(ctx, model, voice)

    def load() -> Any:
        return load_voice(engine, voice_id, store=ctx.store, device=ctx.device)

    def stop() -> bool:
        return ctx.stopping.is_set() or cancel()

    with ctx.pool.use(("speech", f"{engine}:{voice_id}"), load) as tts:
        rate = int(tts.sample_rate)
        set_speed = getattr(tts, "set_speed", None)
        if callable(set_speed):
            set_speed(speed)
        chunks = tts.synthesize(text, cancel=stop)
        if kind == "flac":
            audio = np.concatenate([np.zeros(0, np.float32), *chunks])
            yield _flac(audio, rate)
            return
        out_rate = PCM_RATE if kind == "pcm" else rate
        if kind == "wav":
            yield wav_header(out_rate)
        for chunk in chunks:
            if stop():
                raise Cancelled()
            yield pcm16(_resample(np.asarray(chunk, np.float32), rate, out_rate))


def wav_header(rate: int, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV header for a stream of unknown length (sizes set to the largest value, as
    streaming WAV writers do; players read to the end)."""
    unknown = 0xFFFFFFFF
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", unknown)
    )


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _resample(audio: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    if rate == out_rate or audio.size == 0:
        return audio
    import soxr

    return soxr.resample(audio, rate, out_rate).astype(np.float32)


def _flac(audio: np.ndarray, rate: int) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, audio, rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()
