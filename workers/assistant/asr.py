"""Speech recognition with faster-whisper (CTranslate2 Whisper models), plus audio file reading.

:class:`Transcriber` loads a Whisper model from the model store (``whisper-base-shipped`` by
default: Whisper base from two pip packages) or from a folder holding a CTranslate2
Whisper model, int8 on the CPU and float16 on CUDA.

Short utterances (a spoken question) take a fast path: Whisper's encoder normally looks at a
30-second window whatever the clip's length, and on a small CPU that window costs most of the
time. A clip of up to ``short_window - 2`` seconds is encoded in a window of ``short_window``
seconds (10 by default; a 6-second window was 30 ms faster on 2-second questions but raised the
word error rate from 12 % to 17 %) and decoded greedily; if that decode looks doubtful (it hit its length
limit, repeats itself, or the model is unsure of it) the clip is transcribed again the usual way.
A multilingual model with the language on automatic finds the language on the same short
encoding first. On spoken questions the fast path gives the same words about four times faster.

``read_audio_16k`` reads any sound file (soundfile first, then PyAV for compressed and video
formats) at any rate and channel count and returns 16 kHz mono float32.

faster_whisper, ctranslate2 and av are imported when needed, never at import time.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import Cancelled, UserError
from workers.media.audio import as_block, convert_channels, resample
from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = [
    "ASR_MODEL_ID",
    "SAMPLE_RATE",
    "Segment",
    "Transcriber",
    "Transcript",
    "format_transcript",
    "read_audio_16k",
]

SAMPLE_RATE = 16000
#: The assistant's default (``AssistantOptions.asr_model``); tiny.en is one download away in the bundle.
ASR_MODEL_ID = "whisper-base-shipped"
FORMATS = ("txt", "srt", "vtt")
#: Clips shorter than this hold nothing Whisper could read.
MIN_SECONDS = 0.1
#: Whisper's usual doubt limits (the same as faster-whisper's temperature fallback).
LOG_PROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4
#: A multilingual model's language guess on a short clip is used from this probability on (below
#: it the clip is transcribed the usual way, whose detection looks at the whole window).
LANGUAGE_PROBABILITY = 0.5

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """What was said: the text, its timed segments, the language, and how long it took."""

    text: str
    segments: list[Segment] = field(default_factory=list)
    language: str = "en"
    #: Seconds of audio.
    duration: float = 0.0
    #: Seconds spent transcribing.
    seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        """Processing time over audio time (below 1 is faster than real time)."""
        return self.seconds / self.duration if self.duration > 0 else 0.0


# ---- model resolution ------------------------------------------------------------------------


def _resolve_folder(model: str | Path, store: ModelStore | None) -> tuple[Path, str]:
    """The folder of a Whisper model given as a folder or a model id, and a display name."""
    candidate = Path(model).expanduser()
    if isinstance(model, Path) or candidate.is_dir() or os.sep in str(model) or str(model).startswith("."):
        if not candidate.exists():
            raise UserError(f"The speech recognition model folder {candidate} does not exist.")
        if not candidate.is_dir():
            raise UserError(
                f"{candidate} is a file; choose the folder that holds a faster-whisper model (model.bin, config.json)."
            )
        return candidate, candidate.name
    store = store or ModelStore()
    folder = store.path_of(str(model))
    try:
        name = store.get(str(model)).name
    except UserError:
        name = str(model)
    return Path(folder), name


def _check_folder(folder: Path) -> None:
    missing = [name for name in ("model.bin", "config.json") if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"The folder {folder} is not a faster-whisper (CTranslate2) model: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing."
        )
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocabulary.txt", "vocabulary.json")):
        raise UserError(f"The folder {folder} is not a complete Whisper model: its tokenizer files are missing.")


def _cuda_devices() -> int:
    try:
        from workers.media.openmp import import_ctranslate2

        return int(import_ctranslate2().get_cuda_device_count())
    except Exception:  # no CUDA build, no driver
        return 0


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# ---- the transcriber -------------------------------------------------------------------------


class Transcriber:
    """A loaded Whisper model that turns 16 kHz speech (or a sound file) into text."""

    def __init__(
        self,
        model: str | Path = ASR_MODEL_ID,
        *,
        store: ModelStore | None = None,
        device: str = "auto",
        compute_type: str | None = None,
        threads: int = 0,
        beam_size: int = 1,
        short_window: float = 10.0,
        warmup: bool = True,
    ) -> None:
        folder, self.name = _resolve_folder(model, store)
        _check_folder(folder)
        self.folder = folder
        self.beam_size = max(1, int(beam_size))
        #: Seconds of the encoder window for short clips (0 turns the fast path off).
        self.short_window = float(short_window)
        self.threads = int(threads) if threads and threads > 0 else _default_threads()
        self.device, self.compute_type, self._model = self._load(folder, device, compute_type)
        self.multilingual: bool = bool(self._model.model.is_multilingual)
        self._fast: dict[str, Any] | None = None
        if warmup:
            self.warmup()

    def _load(self, folder: Path, device: str, compute_type: str | None) -> tuple[str, str, Any]:
        try:
            from workers.media.openmp import import_ctranslate2

            import_ctranslate2()  # before faster_whisper: CTranslate2 keeps its own OpenMP runtime
            from faster_whisper import WhisperModel
        except ImportError as exc:  # pragma: no cover - a dependency of the studio
            raise UserError("Speech recognition needs the faster-whisper package.") from exc
        wanted = (device or "auto").lower()
        if wanted not in ("auto", "cpu", "cuda", "gpu"):
            raise UserError(f"Unknown compute device {device!r}; choose auto, cpu or cuda.")
        use_cuda = wanted in ("cuda", "gpu") or (wanted == "auto" and _cuda_devices() > 0)
        attempts = [("cuda", compute_type or "float16")] if use_cuda else []
        if wanted != "cuda" and wanted != "gpu":
            attempts.append(("cpu", compute_type if compute_type and not use_cuda else "int8"))
        last: Exception | None = None
        for dev, ctype in attempts:
            try:
                model = WhisperModel(
                    str(folder),
                    device=dev,
                    compute_type=ctype,
                    cpu_threads=self.threads,
                    num_workers=1,
                    local_files_only=True,
                )
                log.info("Whisper model %s loaded on %s (%s)", folder, dev, ctype)
                return dev, ctype, model
            except Exception as exc:  # a damaged model.bin, a missing CUDA library, a bad compute type
                last = exc
                log.warning("Loading the Whisper model %s on %s (%s) failed: %s", folder, dev, ctype, exc)
        detail = str(last).strip().splitlines()[0] if last and str(last).strip() else type(last).__name__
        if use_cuda and len(attempts) == 1:
            raise UserError(
                f"The Whisper model {self.name} could not be loaded on the GPU ({detail}); choose the CPU instead."
            ) from last
        raise UserError(
            f"The Whisper model in {folder} could not be loaded ({detail}); it may be damaged or not a "
            "faster-whisper model."
        ) from last

    # ---- languages -------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        """Language codes this model understands (["en"] for an English-only model)."""
        return list(self._model.supported_languages)

    def _language(self, language: str | None) -> str | None:
        """The language code to decode with, or None to let a multilingual model detect it."""
        code = (language or "auto").strip().lower()
        if code in ("", "auto"):
            return None if self.multilingual else "en"
        if not self.multilingual and code != "en":
            raise UserError(
                f"The Whisper model {self.name} understands English only; choose a multilingual model "
                f"(Whisper base, small or large-v3) for the language {code!r}, or set the language to automatic."
            )
        if code not in self.languages:
            raise UserError(f"Whisper does not know the language code {code!r}; use a code such as en, de or fr.")
        return code

    def warmup(self) -> None:
        """Run one short silent clip so the first real question is not slowed by first-use setup."""
        try:
            self._transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), self._language("auto") or "en")
        except Exception as exc:  # never fatal
            log.debug("Whisper warm-up failed: %s", exc)

    # ---- transcription ---------------------------------------------------------------------
    def transcribe(self, audio16k: np.ndarray, language: str = "auto") -> Transcript:
        """Transcribe 16 kHz mono float32 audio (one utterance, or more)."""
        audio = _mono(audio16k)
        lang = self._language(language)
        started = time.perf_counter()
        transcript = self._transcribe(audio, lang)
        transcript.seconds = time.perf_counter() - started
        return transcript

    def _transcribe(self, audio: np.ndarray, lang: str | None) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        if duration < MIN_SECONDS or not np.any(audio):
            return Transcript("", [], lang or "en", duration, 0.0)
        if (lang is not None or self.multilingual) and 0 < duration <= self.short_window - 2.0:
            short = self._transcribe_short(audio, lang)
            if short is not None:
                text, found = short
                segments = [Segment(0.0, round(duration, 3), text)] if text else []
                return Transcript(text, segments, found, duration, 0.0)
        try:
            segments_iter, info = self._model.transcribe(
                audio,
                language=lang,
                beam_size=self.beam_size,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            segments = [Segment(round(s.start, 3), round(s.end, 3), s.text.strip()) for s in segments_iter]
        except Exception as exc:
            raise UserError(f"Speech recognition failed ({_detail(exc)}).") from exc
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text, segments, info.language or lang or "en", duration, 0.0)

    def _fast_parts(self) -> dict[str, Any]:
        if self._fast is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            self._fast = {"tokenizers": {}, "get_suppressed_tokens": get_suppressed_tokens, "Tokenizer": Tokenizer}
        return self._fast

    def _detect_language(self, encoded: Any) -> str | None:
        """The language of an encoded short clip (None when the model is unsure of it)."""
        found = self._model.model.detect_language(encoded)[0]
        token, probability = found[0]
        code = token[2:-2]  # "<|en|>"
        if probability < LANGUAGE_PROBABILITY or code not in self.languages:
            log.debug("short-clip language unsure: %s (%.2f)", code, probability)
            return None
        return code

    def _transcribe_short(self, audio: np.ndarray, lang: str | None) -> tuple[str, str] | None:
        """Greedy decode in a shortened encoder window: (text, language), or None when the result is
        doubtful. A multilingual model finds the language (``lang`` None) on the same encoding."""
        try:
            from faster_whisper.transcribe import get_compression_ratio

            from workers.media.openmp import import_ctranslate2

            ctranslate2 = import_ctranslate2()

            parts = self._fast_parts()
            frames = round(self.short_window * 100)
            frames -= frames % 2
            padded = np.zeros(frames * 160, np.float32)
            padded[: len(audio)] = audio
            features = self._model.feature_extractor(padded)[:, :frames]
            encoded = self._model.model.encode(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=False
            )
            if lang is None:
                lang = self._detect_language(encoded)
                if lang is None:
                    return None
            tokenizer = parts["tokenizers"].get(lang)
            if tokenizer is None:
                tokenizer = parts["Tokenizer"](
                    self._model.hf_tokenizer, self.multilingual, task="transcribe", language=lang
                )
                suppress = parts["get_suppressed_tokens"](tokenizer, [-1])
                parts["tokenizers"][lang] = tokenizer = (tokenizer, suppress)
            tok, suppress = tokenizer
            prompt = [*tok.sot_sequence, tok.no_timestamps]
            limit = int(16 + len(audio) / SAMPLE_RATE * 12)
            result = self._model.model.generate(
                encoded,
                [prompt],
                beam_size=1,
                max_length=limit,
                suppress_blank=True,
                suppress_tokens=suppress,
                return_scores=True,
            )[0]
            ids = [i for i in result.sequences_ids[0] if i < tok.eot]
            text = tok.decode(ids).strip()
            avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1) if ids else -10.0
        except Exception as exc:  # internals of another faster-whisper version: use the usual path
            log.info("the short-clip Whisper path is unavailable (%s); using the full window", exc)
            self.short_window = 0.0
            return None
        if len(result.sequences_ids[0]) >= limit - len(prompt) - 3:  # stopped by the limit, not by the model
            log.debug("short-clip decode hit its length limit: %r", text)
            return None
        if not text or avg_logprob < LOG_PROB_THRESHOLD:
            log.debug("short-clip decode unsure (%.2f): %r", avg_logprob, text)
            return None
        if get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD:
            log.debug("short-clip decode repeats itself: %r", text)
            return None
        return text, lang

    def transcribe_file(
        self,
        path: str | Path,
        language: str = "auto",
        *,
        progress: Progress | None = None,
        cancel: CancelCheck | None = None,
        task: str = "transcribe",
    ) -> Transcript:
        """Transcribe a sound or video file of any format, rate and channel count.

        ``task="translate"`` gives the speech in English whatever language it is in (multilingual
        models only).

        ``progress(done_ms, total_ms)`` follows the audio transcribed so far; ``cancel()`` returning
        True stops between segments with :class:`~workers.errors.Cancelled`. Silences are skipped
        (Silero VAD inside faster-whisper).
        """
        lang = self._language(language)
        if task not in ("transcribe", "translate"):
            raise UserError(f"Unknown speech task {task!r}; choose transcribe or translate.")
        if task == "translate" and not self.multilingual:
            raise UserError(
                f"The Whisper model {self.name} understands English only; translating needs a multilingual "
                "model (Whisper base, small or large-v3)."
            )
        started = time.perf_counter()
        audio = read_audio_16k(path)
        duration = len(audio) / SAMPLE_RATE
        total = max(1, round(duration * 1000))
        if progress is not None:
            progress(0, total)
        if cancel is not None and cancel():
            raise Cancelled()
        segments: list[Segment] = []
        try:
            segments_iter, info = self._model.transcribe(
                audio,
                language=lang,
                task=task,
                beam_size=max(self.beam_size, 5) if duration > 30 else self.beam_size,
                condition_on_previous_text=duration > 30,
                vad_filter=True,
            )
            for s in segments_iter:
                if cancel is not None and cancel():
                    raise Cancelled()
                if s.text.strip():
                    segments.append(Segment(round(s.start, 3), round(s.end, 3), s.text.strip()))
                if progress is not None:
                    progress(min(total, round(s.end * 1000)), total)
            language_found = info.language or lang or "en"
        except (Cancelled, UserError):
            raise
        except Exception as exc:
            raise UserError(f"Transcribing {Path(path).name} failed ({_detail(exc)}).") from exc
        if progress is not None:
            progress(total, total)
        text = " ".join(s.text for s in segments).strip()
        return Transcript(text, segments, language_found, duration, time.perf_counter() - started)


def _mono(audio: np.ndarray) -> np.ndarray:
    """float32 mono samples from a 1-D or (frames, channels) array (ints are scaled to [-1, 1])."""
    arr = np.asarray(audio)
    if arr.dtype.kind in "iu" or (arr.ndim == 2 and arr.shape[1] > 1):
        arr = convert_channels(as_block(arr), 1)
    return np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- output formats --------------------------------------------------------------------------


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000)) if math.isfinite(seconds) else 0
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_transcript(t: Transcript, fmt: str) -> str:
    """The transcript as plain text (``"txt"``), SubRip subtitles (``"srt"``) or WebVTT (``"vtt"``)."""
    kind = (fmt or "txt").lower().lstrip(".")
    if kind not in FORMATS:
        raise UserError(f"Unknown transcript format {fmt!r}; choose txt, srt or vtt.")
    segments = [s for s in t.segments if s.text.strip()]
    if not segments and t.text.strip():
        segments = [Segment(0.0, t.duration, t.text.strip())]
    if kind == "txt":
        return t.text.strip() + "\n" if t.text.strip() else ""
    blocks = []
    for i, s in enumerate(segments, 1):
        start = s.start if math.isfinite(s.start) else 0.0
        end = max(s.end, start + 0.001) if math.isfinite(s.end) else start + 0.001
        # One line per cue: a blank line would end the cue early, and "-->" would read as a cue time.
        text = re.sub(r"--+>", "->", " ".join(s.text.split()))
        if kind == "srt":
            blocks.append(f"{i}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{text}\n")
        else:
            blocks.append(f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{text}\n")
    body = "\n".join(blocks)
    return body if kind == "srt" else "WEBVTT\n\n" + body


# ---- reading audio ---------------------------------------------------------------------------


def read_audio_16k(path: str | Path) -> np.ndarray:
    """Any sound (or video) file as 16 kHz mono float32; UserError when it holds no readable sound."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"The file {p} was not found.")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not a sound file.")
    audio = _read_soundfile(p)
    if audio is None:
        audio = _read_av(p)
    if audio.size == 0:
        raise UserError(f"{p.name} holds no sound.")
    # A float file may hold NaN, infinite or huge samples: they would poison the whole recognition.
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)


def _read_soundfile(p: Path) -> np.ndarray | None:
    try:
        import soundfile as sf
    except ImportError:  # pragma: no cover - a dependency of the studio
        return None
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # not a format libsndfile knows: try PyAV
        log.debug("soundfile cannot read %s (%s); trying PyAV", p, exc)
        return None
    if rate <= 0:
        return None
    data = np.clip(np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    mono = convert_channels(as_block(data), 1)
    return resample(mono, int(rate), SAMPLE_RATE)[:, 0]


def _read_av(p: Path) -> np.ndarray:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - a dependency of faster-whisper
        raise UserError(f"{p.name} could not be read as sound (PyAV is not installed).") from exc
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(p), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UserError(f"{p.name} has no sound track.")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except UserError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        log.info("PyAV cannot read %s: %s", p, exc)
        raise UserError(f"{p.name} could not be read as sound: it is damaged or not an audio or video file.") from exc
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks).astype(np.float32)
