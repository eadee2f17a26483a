"""Learned end-of-turn detection: does the user sound finished? (no Qt)

Silence alone cannot tell "What is the capital of France?" (answer now) from "What is the capital
of… [thinking] …France?" (wait). Smart Turn v3.2 (pipecat's BSD-2-Clause model, taken from its wheel
at setup like the other wheel members) reads the last 8 seconds of the utterance as Whisper-style
log-mel features (80 bands, 10 ms hops; transformers' ``WhisperFeatureExtractor``) and gives the
probability that the turn is finished. The endpointer (:mod:`workers.assistant.vad`) asks it after a
short silence: a finished turn ends there, an unfinished one waits through a longer pause.

onnxruntime and transformers are imported when a detector is built, on the thread that loads it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workers.errors import UserError
from workers.media.openmp import release_openmp_threads

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

MODEL_ID = "smart-turn-v3.2-cpu"
SAMPLE_RATE = 16000
WINDOW_S = 8


class TurnDetector:
    """Smart Turn v3.x in ONNX: :meth:`probability` of a finished turn for a 16 kHz utterance."""

    name = "Smart Turn v3.2"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The end-of-turn model {path.name} is missing; run the studio's setup again.")
        import onnxruntime as ort
        from transformers import WhisperFeatureExtractor

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1  # one short run per pause: the other cores stay with speech
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"The end-of-turn model {path.name} could not be loaded; it may be damaged.") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [80, 800]:
            raise UserError(f"{path.name} is not an end-of-turn model (it does not take 8 s of 80 mel bands).")
        self.input_name = inputs[0].name
        self.path = path
        self._features = WhisperFeatureExtractor(chunk_length=WINDOW_S)

    def features(self, audio16k: np.ndarray) -> np.ndarray:
        """The model's input: the utterance's last 8 s (zeros before a shorter one), shape (1, 80, 800)."""
        audio = np.asarray(audio16k, np.float32).reshape(-1)
        n = WINDOW_S * SAMPLE_RATE
        audio = audio[-n:] if len(audio) > n else np.pad(audio, (n - len(audio), 0))
        out = self._features(
            audio,
            sampling_rate=SAMPLE_RATE,
            padding="max_length",
            max_length=n,
            truncation=True,
            do_normalize=True,
            return_tensors="np",
        )
        return np.asarray(out["input_features"], np.float32)

    def probability(self, audio16k: np.ndarray) -> float:
        """How likely the user finished speaking at the end of ``audio16k`` (0..1)."""
        if np.asarray(audio16k).size < SAMPLE_RATE // 10:
            return 0.0  # under 100 ms: nothing to judge
        features = self.features(audio16k)
        # transformers computes these features with torch when it is installed, which leaves OpenMP
        # workers on the calling thread (the microphone's): they would slow the language model's
        # thread for as long as the assistant listens (workers/media/openmp.py).
        release_openmp_threads()
        out = self.session.run(None, {self.input_name: features})[0]
        return float(np.asarray(out, np.float32).reshape(-1)[0])

    __call__ = probability


def load_turn_detector(store: ModelStore | None = None) -> TurnDetector:
    """The end-of-turn detector from the model store; a UserError sentence when it is not there."""
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    state = store.state(MODEL_ID)
    if not state.usable:
        raise UserError(
            "The end-of-turn model is not installed, so a turn ends after a fixed silence; run the studio's "
            "setup again (scripts/setup.sh) to get it."
        )
    return TurnDetector(store.path_of(MODEL_ID))
