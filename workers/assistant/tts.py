"""Text to speech: Piper voices (fast, the default) and Bark through transformers (optional, slower).

Both engines offer the same small :class:`Voice` protocol: ``synthesize(text)`` yields float32 mono
chunks at ``sample_rate`` as soon as each is ready (Piper: one chunk per sentence it finds in the
text; Bark: one per sentence as well), and stops between chunks when ``cancel()`` returns True.

:class:`PiperTTS` loads a Piper ONNX voice with piper-tts's ``PiperVoice.load``: a model id from
the store (``piper-en-us-joe-medium-shipped``: the Joe voice shipped on PyPI), a folder holding one
voice, or an ``.onnx`` file with its ``.onnx.json`` next to it. The speaking rate maps to Piper's
``length_scale`` (``1 / speed``).

:class:`BarkTTS` runs a Bark model folder (for instance suno/bark-small saved with
``save_pretrained``) through transformers' ``BarkModel`` and ``AutoProcessor``; a GPU makes it
usable, on a CPU it is many times slower than real time.

piper, onnxruntime, torch and transformers are imported when a voice is loaded, never at import time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from workers.errors import UserError
from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_VOICE_ID",
    "BarkTTS",
    "PiperTTS",
    "Voice",
    "list_voices",
    "load_voice",
    "render",
]

DEFAULT_VOICE_ID = "piper-en-us-joe-medium-shipped"
PIPER_KIND = "piper-voice"
#: Speaking rates the engines accept (1.0 normal).
MIN_SPEED, MAX_SPEED = 0.5, 2.0
#: The Bark speaker used when the model folder carries the standard voice presets.
BARK_DEFAULT_PRESET = "v2/en_speaker_6"

CancelCheck = Callable[[], bool]


@runtime_checkable
class Voice(Protocol):
    """Anything that turns text into speech, chunk by chunk."""

    name: str
    sample_rate: int

    def synthesize(self, text: str, *, cancel: CancelCheck | None = None) -> Iterator[np.ndarray]:
        """Float32 mono chunks in [-1, 1] at :attr:`sample_rate`, the first as early as possible."""
        ...


def render(voice: Voice, text: str, *, cancel: CancelCheck | None = None) -> np.ndarray:
    """All of ``text`` spoken by ``voice`` as one float32 array (empty when there is nothing to say)."""
    chunks = list(voice.synthesize(text, cancel=cancel))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _clamp_speed(speed: float) -> float:
    try:
        value = float(speed)
    except (TypeError, ValueError) as exc:
        raise UserError(f"The speaking rate {speed!r} is not a number.") from exc
    if not np.isfinite(value) or value <= 0:
        raise UserError("The speaking rate must be a positive number (1.0 is normal).")
    return min(MAX_SPEED, max(MIN_SPEED, value))


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- Piper -----------------------------------------------------------------------------------


def _find_onnx(folder: Path) -> Path:
    voices = sorted(p for p in folder.glob("*.onnx") if Path(f"{p}.json").is_file())
    if not voices:
        if any(folder.glob("*.onnx")):
            raise UserError(f"The Piper voice in {folder} has no .onnx.json settings file next to its .onnx model.")
        raise UserError(f"The folder {folder} holds no Piper voice (an .onnx file with its .onnx.json).")
    if len(voices) > 1:
        log.info("%s holds %d Piper voices; using %s", folder, len(voices), voices[0].name)
    return voices[0]


def _resolve_piper(model: str | Path, store: ModelStore | None) -> tuple[Path, str]:
    """The .onnx file of a Piper voice given as a file, a folder or a model id, and a display name."""
    text = str(model)
    candidate = Path(model).expanduser()
    if isinstance(model, Path) or text.endswith(".onnx") or os.sep in text or candidate.exists():
        if not candidate.exists():
            raise UserError(f"The Piper voice {candidate} was not found.")
        onnx = _find_onnx(candidate) if candidate.is_dir() else candidate
        if not Path(f"{onnx}.json").is_file():
            raise UserError(f"The Piper voice {onnx.name} has no {onnx.name}.json settings file next to it.")
        return onnx, onnx.stem
    store = store or ModelStore()
    path = Path(store.path_of(text))
    try:
        name = store.get(text).name
    except UserError:
        name = text
    return (_find_onnx(path) if path.is_dir() else path), name


def _onnx_cuda() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except Exception:
        return False


class PiperTTS:
    """A Piper voice: fast neural speech (about 20 times faster than real time on a small CPU)."""

    def __init__(
        self,
        model: str | Path = DEFAULT_VOICE_ID,
        *,
        store: ModelStore | None = None,
        speed: float = 1.0,
        device: str = "cpu",
    ) -> None:
        self.model_path, self.name = _resolve_piper(model, store)
        self._speed = _clamp_speed(speed)
        #: Piper draws each take's timing and timbre at random; False renders the same take every time
        #: (the same words always sound the same: what recordings made for a check need).
        self.varied = True
        wanted = (device or "cpu").lower()
        use_cuda = wanted in ("cuda", "gpu") or (wanted == "auto" and _onnx_cuda())
        try:
            self._voice = self._load(use_cuda)
        except UserError:
            if not (use_cuda and wanted == "auto"):
                raise
            log.warning("Piper on the GPU failed; using the CPU")
            use_cuda = False
            self._voice = self._load(False)
        self.device = "cuda" if use_cuda else "cpu"
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()

    def _load(self, use_cuda: bool) -> Any:
        try:
            from piper import PiperVoice
        except ImportError as exc:  # pragma: no cover - a dependency of the studio
            raise UserError("Piper voices need the piper-tts package (pip install piper-tts).") from exc
        try:
            voice = PiperVoice.load(self.model_path, use_cuda=use_cuda)
        except UserError:
            raise
        except Exception as exc:  # a damaged .onnx, an unreadable .onnx.json
            log.warning("Loading the Piper voice %s failed: %s", self.model_path, exc)
            if use_cuda:
                raise UserError(
                    f"The Piper voice {self.name} could not be loaded on the GPU ({_detail(exc)}); choose the CPU."
                ) from exc
            raise UserError(
                f"The Piper voice {self.model_path.name} could not be loaded ({_detail(exc)}); "
                "the file may be damaged or not a Piper voice."
            ) from exc
        session = getattr(voice, "session", None)
        if session is not None:
            names = {i.name for i in session.get_inputs()}
            if not {"input", "input_lengths", "scales"} <= names:
                # any ONNX model with a .onnx.json beside it loads; only a Piper voice takes these inputs
                raise UserError(
                    f"{self.model_path.name} is not a Piper voice: the model takes "
                    f"{', '.join(sorted(names)) or 'no input'} instead of Piper's text input."
                )
        return voice

    # ---- settings --------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._speed = _clamp_speed(value)

    def set_speed(self, value: float) -> None:
        self.speed = value

    def _config(self) -> Any:
        from piper.config import SynthesisConfig

        length = float(self._voice.config.length_scale) / self._speed
        if self.varied:
            return SynthesisConfig(length_scale=length)
        return SynthesisConfig(length_scale=length, noise_scale=0.0, noise_w_scale=0.0)

    # ---- speech ----------------------------------------------------------------------------
    def synthesize(self, text: str, *, cancel: CancelCheck | None = None) -> Iterator[np.ndarray]:
        """One float32 chunk per sentence of ``text``; stops before the next chunk on ``cancel()``."""
        if not text or not text.strip():
            return
        if cancel is not None and cancel():
            return
        config = self._config()
        try:
            chunks = self._voice.synthesize(text, syn_config=config)
            while True:
                with self._lock:  # one phrase through the model at a time
                    chunk = next(chunks, None)
                if chunk is None:
                    return
                if cancel is not None and cancel():
                    return
                audio = np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
                if audio.size:
                    yield audio
        except UserError:
            raise
        except Exception as exc:
            log.warning("Piper failed on %r: %s", text[:80], exc)
            raise UserError(f"The voice {self.name} could not speak this text ({_detail(exc)}).") from exc


def list_voices(store: ModelStore | None = None) -> list[tuple[str, str]]:
    """(model id, display name) of every Piper voice that can be used now (shipped or installed)."""
    store = store or ModelStore()
    voices = []
    for model in store.models():
        if model.kind != PIPER_KIND:
            continue
        try:
            usable = store.state(model.id).usable
        except Exception as exc:  # a broken user model must not hide the others
            log.debug("voice %s skipped: %s", model.id, exc)
            continue
        if usable:
            voices.append((model.id, model.name))
    return voices


# ---- Bark ------------------------------------------------------------------------------------


def _resolve_bark(model: str | Path, store: ModelStore | None) -> tuple[Path, str]:
    text = str(model)
    candidate = Path(model).expanduser()
    if isinstance(model, Path) or os.sep in text or candidate.exists():
        folder = candidate
        name = candidate.name
    else:
        store = store or ModelStore()
        folder = Path(store.path_of(text))
        try:
            name = store.get(text).name
        except UserError:
            name = text
    if not folder.is_dir():
        raise UserError(f"The Bark model folder {folder} was not found.")
    if not (folder / "config.json").is_file():
        raise UserError(f"The folder {folder} is not a Bark model: config.json is missing.")
    return folder, name


def _bark_processor(folder: Path, auto_processor: Any) -> Any:
    """Bark's processor: from the folder's own processor files, or, in a folder that carries only the
    model and its tokenizer (tokenizer.json, vocab.txt: what the model manager downloads for
    suno/bark-small), a BERT tokenizer made from those, cased as Bark's multilingual BERT is."""
    if (folder / "tokenizer_config.json").is_file() or (folder / "preprocessor_config.json").is_file():
        return auto_processor.from_pretrained(str(folder), local_files_only=True)
    from transformers import BarkProcessor, BertTokenizerFast

    tokenizer_file = folder / "tokenizer.json"
    vocab_file = folder / "vocab.txt"
    if not tokenizer_file.is_file() and not vocab_file.is_file():
        raise UserError(f"The Bark model in {folder} has no tokenizer (tokenizer.json or vocab.txt).")
    tokenizer = BertTokenizerFast(
        tokenizer_file=str(tokenizer_file) if tokenizer_file.is_file() else None,
        vocab_file=str(vocab_file) if vocab_file.is_file() else None,
        do_lower_case=False,
    )
    return BarkProcessor(tokenizer=tokenizer)


def _split_sentences(text: str) -> list[str]:
    from workers.assistant.sentences import SentenceSplitter

    splitter = SentenceSplitter()
    return [*splitter.feed(text), *splitter.flush()]


class BarkTTS:
    """A Bark model (transformers) as a voice: expressive but slow; best with a GPU.

    ``speed`` is accepted for the common interface but Bark has no speaking-rate control.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        store: ModelStore | None = None,
        device: str = "auto",
        speed: float = 1.0,
        voice_preset: str | None = None,
    ) -> None:
        self.folder, self.name = _resolve_bark(model, store)
        self.speed = _clamp_speed(speed)
        try:
            import torch
            from transformers import AutoProcessor, BarkModel
        except ImportError as exc:  # pragma: no cover - dependencies of the studio
            raise UserError("Bark needs the torch and transformers packages.") from exc
        self._torch = torch
        wanted = (device or "auto").lower()
        use_cuda = wanted in ("cuda", "gpu") or (wanted == "auto" and torch.cuda.is_available())
        self.device = "cuda" if use_cuda else "cpu"
        from workers.models.safety import check_weights

        check_weights(self.folder)  # a pytorch_model.bin that would run code: one sentence, nothing loaded
        try:
            self._processor = _bark_processor(self.folder, AutoProcessor)
            dtype = torch.float16 if use_cuda else torch.float32
            self._model = BarkModel.from_pretrained(str(self.folder), dtype=dtype, local_files_only=True)
            self._model = self._model.to(self.device).eval()
        except Exception as exc:
            log.warning("Loading the Bark model %s failed: %s", self.folder, exc)
            raise UserError(
                f"The Bark model in {self.folder} could not be loaded ({_detail(exc)}); it may be damaged, "
                "incomplete, or not a Bark model."
            ) from exc
        if not hasattr(self._processor, "tokenizer") or type(self._model).__name__ != "BarkModel":
            raise UserError(f"The folder {self.folder} is not a Bark model.")
        self.sample_rate: int = int(getattr(self._model.generation_config, "sample_rate", 24000) or 24000)
        presets = getattr(self._processor, "speaker_embeddings", None) or {}
        if voice_preset is None and BARK_DEFAULT_PRESET in presets:
            voice_preset = BARK_DEFAULT_PRESET
        self.voice_preset = voice_preset
        self._lock = threading.Lock()

    def _stopper(self, cancel: CancelCheck) -> Any:
        """Stops Bark's semantic stage (most of its time) as soon as ``cancel()`` says so."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self._torch

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), bool(cancel()), dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([_Cancel()])

    def synthesize(self, text: str, *, cancel: CancelCheck | None = None) -> Iterator[np.ndarray]:
        """One float32 chunk per sentence (Bark speaks at most about 13 s at a time)."""
        for sentence in _split_sentences(text or ""):
            if cancel is not None and cancel():
                return
            started = time.perf_counter()
            try:
                with self._lock:
                    inputs = self._processor(sentence, voice_preset=self.voice_preset)
                    inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
                    extra: dict[str, Any] = {}
                    if cancel is not None:
                        extra["semantic_stopping_criteria"] = self._stopper(cancel)
                    with self._torch.inference_mode():
                        audio = self._model.generate(**inputs, do_sample=True, **extra)
            except UserError:
                raise
            except Exception as exc:
                log.warning("Bark failed on %r: %s", sentence[:80], exc)
                raise UserError(f"The Bark voice could not speak this text ({_detail(exc)}).") from exc
            if cancel is not None and cancel():
                return
            samples = audio.detach().float().cpu().numpy().reshape(-1).astype(np.float32)
            peak = float(np.max(np.abs(samples))) if samples.size else 0.0
            if peak > 1.0:
                samples /= peak
            took = time.perf_counter() - started
            log.debug("Bark: %.2f s of speech in %.2f s", samples.size / self.sample_rate, took)
            if samples.size:
                yield samples


# ---- choosing a voice ------------------------------------------------------------------------


def load_voice(
    engine: str,
    model: str | Path,
    *,
    store: ModelStore | None = None,
    speed: float = 1.0,
    device: str = "auto",
) -> Voice:
    """The voice for an engine name (``"piper"`` or ``"bark"``) and a model id, folder or file."""
    kind = (engine or "piper").strip().lower()
    if kind == "piper":
        return PiperTTS(model or DEFAULT_VOICE_ID, store=store, speed=speed, device=device)
    if kind == "bark":
        if not model or str(model) == DEFAULT_VOICE_ID:
            raise UserError("Choose a Bark model folder (for example suno/bark-small saved with transformers).")
        return BarkTTS(model, store=store, device=device, speed=speed)
    raise UserError(f"Unknown speech engine {engine!r}; choose piper or bark.")
