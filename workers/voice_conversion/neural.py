"""The neural converter: 16 kHz audio -> content features -> pitch -> so-vits-svc / RVC model -> audio.

Per call (a file chunk, or one realtime block with its context):

1. ContentVec/HuBERT features of the input (50 a second; the layer and size the model was trained on),
   optionally pulled towards the target speaker by a feature index or cluster model (``index_ratio``);
2. F0 per 10 ms from the chosen estimator, moved by ``pitch`` semitones (plus an automatic shift, or
   so-vits-svc's own F0 predictor, with ``auto_pitch``);
3. both brought to the model's frame rate (RVC: 100 frames a second; so-vits-svc: its hop), loudness for
   4.1 models that take it;
4. the model's inference; the result is trimmed or padded to the input's duration at the model's rate.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError
from workers.voice_conversion.options import VoiceConversionOptions

if TYPE_CHECKING:
    from workers.models.store import ModelStore
    from workers.voice_conversion.checkpoints import VoiceModel
    from workers.voice_conversion.content import ContentEncoder
    from workers.voice_conversion.index import Retrieval
    from workers.voice_conversion.pitch import PitchEstimator

log = logging.getLogger(__name__)

INPUT_RATE = 16000
#: Content encoders in the model store, in order of preference per model family (both are HuBERT-base
#: ContentVec-style encoders with the 256-d final projection, so either serves every model).
CONTENT_ENCODERS = {"sovits": ("contentvec-best", "hubert-base-rvc"), "rvc": ("hubert-base-rvc", "contentvec-best")}
#: RVC's consonant protection: how much of an unvoiced frame the index may replace (0.5 = no protection).
PROTECT = 0.33
#: Voiced-median target (Hz) of the automatic pitch shift when the model cannot predict its own F0.
AUTO_PITCH_HZ = 200.0

_encoders: dict[tuple[str, str], ContentEncoder] = {}
_encoders_lock = threading.Lock()


def shared_content_encoder(
    model: str | Path, *, store: ModelStore | None = None, device: str = "cpu"
) -> ContentEncoder:
    """A content encoder, loaded once per folder and device and shared by the converters that use it."""
    from workers.voice_conversion.content import ContentEncoder, resolve_folder

    folder = resolve_folder(model, store)
    key = (str(folder.resolve()), str(device))
    with _encoders_lock:
        encoder = _encoders.get(key)
        if encoder is None:
            encoder = ContentEncoder(folder, device=device)
            _encoders.clear()  # keep one: they are large
            _encoders[key] = encoder
        return encoder


class NeuralConverter:
    """A so-vits-svc or RVC model as a :class:`~workers.voice_conversion.converter.Converter` (16 kHz in)."""

    input_rate = INPUT_RATE
    #: The realtime path sends at most this much audio before each block.
    context_seconds = 2.0
    delay_seconds = 0.0
    #: :meth:`convert` takes ``keep_seconds``: a live block synthesises only what it keeps.
    converts_tail = True

    def __init__(
        self, model: VoiceModel, content: ContentEncoder, *, f0_method: str = "fcpe", device: str = "cpu",
        retrieval: Retrieval | None = None, index_ratio: float = 0.5, pitch: float = 0.0, auto_pitch: bool = False,
        speaker: int = 0, noise_scale: float | None = None, pitch_estimator: PitchEstimator | None = None,
        engine: str = "auto",
    ) -> None:
        self.model = model
        self.engine = engine
        self._bodies: dict[str, Any] = {}
        self.content = content
        self.device = device
        self.retrieval = retrieval
        self.sample_rate = model.sample_rate
        self.name = f"{model.info.describe()}: {model.info.path.name}"
        self.pitch = float(pitch)
        self.auto_pitch = bool(auto_pitch)
        self.index_ratio = float(index_ratio)
        self.noise_scale = model.default_noise_scale if noise_scale is None else float(noise_scale)
        self.speaker = 0
        self.set_params(speaker=speaker)
        self.f0_method = f0_method
        self._estimator = pitch_estimator
        if self._estimator is None and model.info.f0:
            self._estimator = self._make_estimator(f0_method)
        self.last_f0: np.ndarray = np.zeros(0, np.float32)

    def _make_estimator(self, method: str) -> PitchEstimator:
        from workers.voice_conversion.pitch import make_pitch_estimator

        return make_pitch_estimator(method, device=self.device)

    # ---- live parameters ------------------------------------------------------------------------
    def set_params(self, **params: Any) -> None:
        """``pitch`` (semitones), ``auto_pitch``, ``index_ratio`` (0..1), ``speaker``, ``f0_method``,
        ``noise_scale``; ``formant`` and unknown names are ignored (the model sets the timbre)."""
        if "pitch" in params and params["pitch"] is not None:
            self.pitch = float(params["pitch"])
        if "auto_pitch" in params and params["auto_pitch"] is not None:
            self.auto_pitch = bool(params["auto_pitch"])
        if "index_ratio" in params and params["index_ratio"] is not None:
            self.index_ratio = min(1.0, max(0.0, float(params["index_ratio"])))
        if "noise_scale" in params and params["noise_scale"] is not None:
            self.noise_scale = max(0.0, float(params["noise_scale"]))
        if "speaker" in params and params["speaker"] is not None:
            speaker = params["speaker"]
            if isinstance(speaker, str) and not speaker.strip().lstrip("-").isdigit():
                if speaker not in self.model.info.speakers:
                    raise UserError(f"The model has no speaker called {speaker!r}.")
                speaker = self.model.info.speakers[speaker]
            speaker = int(speaker)
            if not 0 <= speaker < self.model.n_speakers:
                raise UserError(f"Speaker {speaker} does not exist in this model (it has {self.model.n_speakers}).")
            self.speaker = speaker
        if "f0_method" in params and params["f0_method"] and params["f0_method"] != getattr(self, "f0_method", None):
            method = str(params["f0_method"])
            if self.model.info.f0:
                self._estimator = self._make_estimator(method)
            self.f0_method = method

    # ---- engines --------------------------------------------------------------------------------
    def precision(self, *, live: bool) -> str | None:
        """"fp32"/"int8" when a call runs on ONNX Runtime (see :data:`~.options.ENGINES`), None for torch."""
        if str(self.device) != "cpu" or self.engine == "torch":
            return None
        if self.engine == "onnx":
            return "fp32"
        if self.engine == "onnx-int8" or (self.engine == "auto" and live):
            return "int8"
        return None

    def _body(self, precision: str | None) -> Any:
        if precision is None:
            return None
        body = self._bodies.get(precision)
        if body is None:
            from workers.voice_conversion.accel import OnnxDecoder

            body = self._bodies[precision] = OnnxDecoder(self.model, precision)
        return body

    def prepare(self, *, live: bool = True) -> None:
        """Export and load what :meth:`convert` will run on (once per model; later loads read the cache),
        so that the first live block does not wait for it."""
        precision = self.precision(live=live)
        if precision is None:
            return
        self._body(precision)
        self.content.encode(np.zeros(16000, np.float32), dim=self.model.content_dim,
                            layer=self.model.info.content_layer, onnx=precision)

    # ---- conversion -----------------------------------------------------------------------------
    def _pitch(self, audio: np.ndarray, n_frames: int) -> tuple[np.ndarray, bool]:
        """F0 at the model's frame rate (0 = unvoiced) and whether the model should predict its own."""
        from workers.voice_conversion.pitch import auto_shift_semitones, interpolate_f0, shift_f0

        if not self.model.info.f0 or self._estimator is None:
            return np.zeros(n_frames, np.float32), False
        f0 = np.asarray(self._estimator(audio), dtype=np.float32).reshape(-1)
        if abs(self.model.frame_rate - 100.0) < 1e-6 and len(f0) >= n_frames:
            f0 = f0[:n_frames]  # the estimator's 10 ms grid is the model's
        else:
            f0 = interpolate_f0(f0, n_frames)
        predict = False
        shift = self.pitch
        if self.auto_pitch:
            if self.model.can_predict_f0:
                predict = True
            else:
                shift += auto_shift_semitones(f0, AUTO_PITCH_HZ)
        if shift:
            f0 = shift_f0(f0, shift)
        self.last_f0 = f0
        return f0.astype(np.float32), predict

    def convert(self, audio: np.ndarray, keep_seconds: float | None = None) -> np.ndarray:
        """Mono float32 at 16 kHz -> converted audio of the same duration at :attr:`sample_rate`.

        With ``keep_seconds`` (a live block: the rest of the window is context) only the last
        ``keep_seconds`` are synthesised; the audio before them is silence. The content encoder and the
        prior still hear the whole window, so the kept part is what a whole-window conversion gives there."""
        import torch

        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
        n = len(audio)
        out_len = round(n * self.sample_rate / INPUT_RATE)
        if n == 0:
            return np.zeros(0, np.float32)
        model = self.model
        info = model.info
        precision = self.precision(live=keep_seconds is not None)
        model.decoder_body = self._body(precision)
        content = self.content.encode(audio, dim=model.content_dim, layer=info.content_layer, onnx=precision)
        n_frames = model.frames_for(n)
        f0, predict = self._pitch(audio, n_frames)
        if self.retrieval is not None and self.index_ratio > 0:
            retrieved = self.retrieval.apply(content, self.index_ratio, self.speaker)
            if info.family == "rvc" and info.f0 and PROTECT < 0.5:
                # keep some of the original features on unvoiced frames (consonants), as RVC does
                original = model.align_content(content, n_frames)
                retrieved = model.align_content(retrieved, n_frames)
                keep = torch.from_numpy(np.where(f0 > 0, 1.0, PROTECT).astype(np.float32))[None, :, None]
                keep = keep.to(original.device)
                content = retrieved * keep + original * (1 - keep)
            else:
                content = model.align_content(retrieved, n_frames)
        else:
            content = model.align_content(content, n_frames)
        volume = model.volume(audio, n_frames) if model.needs_volume else None
        tail = None
        if keep_seconds is not None and keep_seconds > 0:
            tail = min(n_frames, int(np.ceil(keep_seconds * model.frame_rate)) + 1)
        wav = model.infer(
            content, torch.from_numpy(f0)[None], speaker=self.speaker, noise_scale=self.noise_scale,
            volume=volume, predict_f0=predict, tail=tail,
        ).numpy()
        if tail is not None and tail < n_frames:
            full = np.zeros(n_frames * model.hop_length, np.float32)
            full[len(full) - len(wav) :] = wav
            wav = full
        wav = wav[:out_len] if len(wav) >= out_len else np.pad(wav, (0, out_len - len(wav)))
        return np.ascontiguousarray(wav, dtype=np.float32)


def _resolve_model(model: str, store: ModelStore | None) -> Path:
    path = Path(model).expanduser()
    if path.exists():
        return path
    if any(sep in model for sep in ("/", "\\")) or path.suffix.lower() in (".pth", ".pt", ".safetensors"):
        raise UserError(f"The voice model {path} was not found.")
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    return Path(store.path_of(model))


def load_content_encoder(
    family: str, dim: int, *, store: ModelStore | None = None, device: str = "cpu",
    encoder: str | Path | None = None,
) -> ContentEncoder:
    """The content encoder for a model family that gives ``dim``-d features: ``encoder`` when given, else
    the first installed one of :data:`CONTENT_ENCODERS` that has that size (so an encoder folder without
    the 256-d projection is passed over for a 256-d model)."""
    if encoder:
        found = shared_content_encoder(encoder, store=store, device=device)
        _check_dims(found, dim)
        return found
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    first_error: UserError | None = None
    for model_id in CONTENT_ENCODERS[family]:
        try:
            found = shared_content_encoder(model_id, store=store, device=device)
            _check_dims(found, dim)
            return found
        except UserError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _check_dims(encoder: ContentEncoder, dim: int) -> None:
    if dim not in encoder.dims:
        raise UserError(
            f"The content encoder {encoder.folder.name} gives {'/'.join(map(str, encoder.dims))}-d features but the "
            f"voice model needs {dim}-d."
        )


def load_neural_converter(
    options: VoiceConversionOptions, *, store: ModelStore | None = None, device: str = "cpu",
    content_encoder: str | Path | None = None, prepare_live: bool = False,
) -> NeuralConverter:
    """Load the so-vits-svc or RVC model ``options.model`` (a path or a model-store id) with its content
    encoder, optional index (``options.index``) and pitch estimator, as a converter; ``prepare_live``
    readies the engine live blocks run on (see :meth:`NeuralConverter.prepare`)."""
    from workers.voice_conversion.checkpoints import load_voice_model
    from workers.voice_conversion.index import load_index

    name = (options.model or "").strip()
    if not name:
        raise UserError("No voice model is chosen.")
    path = _resolve_model(name, store)
    config = str(getattr(options, "config", "") or "") or None
    model = load_voice_model(path, config, device=device)
    encoder = load_content_encoder(
        model.info.family, model.content_dim, store=store, device=device, encoder=content_encoder
    )
    retrieval = None
    if (options.index or "").strip():
        retrieval = load_index(options.index.strip(), content_dim=model.content_dim, speakers=model.info.speakers)
    converter = NeuralConverter(
        model, encoder, f0_method=options.f0_method, device=device, retrieval=retrieval,
        index_ratio=options.index_ratio, pitch=options.pitch, auto_pitch=options.auto_pitch, speaker=options.speaker,
        engine=getattr(options, "engine", "auto"),
    )
    if prepare_live:
        converter.prepare(live=True)
    return converter
