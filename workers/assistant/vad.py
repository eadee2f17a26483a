"""Voice activity detection: Silero VAD (ONNX) run frame by frame, and an endpointer around it.

:class:`SileroVAD` runs the Silero VAD model that ships inside faster-whisper
(``faster_whisper/assets/silero_vad_v6.onnx``, model id ``silero-vad-shipped``) with onnxruntime
directly, one 32 ms frame (512 samples at 16 kHz) at a time, keeping the model's recurrent state
and the 64 samples of context between frames; streamed this way it gives exactly the probabilities
faster-whisper's batched call gives for the same audio. The v5 model layout (one ``state`` input
and a ``sr`` input) is accepted too.

:class:`Endpointer` turns those probabilities into turns: a ``"start"`` event once speech has
lasted ``min_speech_ms``, and an ``"end"`` event once ``min_silence_ms`` of silence followed it,
carrying the whole utterance with ``speech_pad_ms`` of audio either side. It uses two thresholds
like Silero's own iterator: a frame at or above ``threshold`` is speech, a frame below
``threshold - 0.15`` starts counting silence, frames in between keep the current state.

onnxruntime is imported when a model is loaded, never at import time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import UserError
from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "VAD_MODEL_ID", "Endpointer", "SileroVAD", "VadEvent"]

#: The rate the whole assistant pipeline works at internally.
SAMPLE_RATE = 16000
#: Samples per VAD frame at 16 kHz (32 ms): the only frame size Silero v5/v6 accept at this rate.
FRAME_SAMPLES = 512
#: Samples of the previous frame the model sees in front of each frame.
CONTEXT_SAMPLES = 64
VAD_MODEL_ID = "silero-vad-shipped"
#: How far below ``threshold`` a frame must fall to count as silence.
NEG_THRESHOLD_GAP = 0.15


class SileroVAD:
    """Speech probability of each 32 ms frame of 16 kHz mono audio, streamed with the model's state."""

    frame_samples: int = FRAME_SAMPLES
    sample_rate: int = SAMPLE_RATE

    def __init__(self, model_path: Path | None = None, *, store: ModelStore | None = None) -> None:
        if model_path is None:
            model_path = (store or ModelStore()).path_of(VAD_MODEL_ID)
        self.model_path = Path(model_path)
        self._session, self._layout = _open_session(self.model_path)
        self._lock = threading.Lock()
        self._state: dict[str, np.ndarray] = {}
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget everything heard so far (a new stream starts)."""
        with self._lock:
            if self._layout == "v5":
                self._state = {"state": np.zeros((2, 1, 128), np.float32)}
            else:
                self._state = {"h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}
            self._context = np.zeros(CONTEXT_SAMPLES, np.float32)

    def prob(self, frame: np.ndarray) -> float:
        """The probability (0..1) that one ``frame_samples``-long 16 kHz frame holds speech."""
        samples = np.asarray(frame, dtype=np.float32).reshape(-1)
        if samples.shape[0] != FRAME_SAMPLES:
            raise ValueError(f"a VAD frame has {FRAME_SAMPLES} samples at 16 kHz, not {samples.shape[0]}")
        with self._lock:
            x = np.concatenate([self._context, samples])[None, :]
            feeds: dict[str, Any] = {"input": x, **self._state}
            if self._layout == "v5":
                feeds["sr"] = np.array(SAMPLE_RATE, dtype=np.int64)
                out, state = self._session.run(None, feeds)
                self._state = {"state": state}
            else:
                out, h, c = self._session.run(None, feeds)
                self._state = {"h": h, "c": c}
            self._context = samples[-CONTEXT_SAMPLES:].copy()
        return float(np.asarray(out).reshape(-1)[0])

    def probs(self, audio16k: np.ndarray) -> np.ndarray:
        """Probabilities of every whole frame of ``audio16k`` (a trailing partial frame is ignored)."""
        audio = np.asarray(audio16k, dtype=np.float32).reshape(-1)
        n = len(audio) // FRAME_SAMPLES
        return np.array([self.prob(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)], np.float32)


def _open_session(path: Path) -> tuple[Any, str]:
    if not path.is_file():
        raise UserError(f"The voice activity model {path} was not found.")
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a dependency of the studio
        raise UserError("Voice activity detection needs the onnxruntime package (pip install onnxruntime).") from exc
    opts = ort.SessionOptions()
    # One 32 ms frame costs a fraction of a millisecond: more threads only add overhead.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        log.warning("Loading the VAD model %s failed: %s", path, exc)
        raise UserError(f"{path.name} is not a usable Silero voice activity model (it could not be loaded).") from exc
    names = {i.name for i in session.get_inputs()}
    if {"input", "h", "c"} <= names:
        return session, "v6"
    if {"input", "state", "sr"} <= names:
        return session, "v5"
    raise UserError(f"{path.name} is not a Silero voice activity model (its inputs are {', '.join(sorted(names))}).")


@dataclass
class VadEvent:
    """A turn boundary found by the :class:`Endpointer` (times in seconds of stream time)."""

    kind: str  # "start" | "end"
    #: Stream time when the event was detected (samples fed so far / 16000).
    time: float
    #: Stream time of the first voiced frame.
    speech_start: float
    #: Stream time just after the last voiced frame ("end" only; equals ``time`` for "start").
    speech_end: float = 0.0
    #: "end": the whole utterance at 16 kHz, with ``speech_pad_ms`` of audio each side (where heard).
    audio: np.ndarray | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.speech_end - self.speech_start)


_IDLE, _CANDIDATE, _SPEECH = "idle", "candidate", "speech"


#: At or above this probability the turn model's "finished" counts.
TURN_COMPLETE = 0.5
#: The longest a finished-sounding turn waits for its words to be known (the early transcript).
WORDS_WAIT_MS = 800


class Endpointer:
    """Finds where speech starts and ends in a 16 kHz stream fed in blocks of any length."""

    _NAMES = ("threshold", "min_silence_ms", "min_speech_ms", "speech_pad_ms", "max_speech_s", "turn_silence_ms")

    def __init__(
        self,
        vad: SileroVAD,
        *,
        threshold: float = 0.5,
        min_silence_ms: int = 400,
        min_speech_ms: int = 200,
        speech_pad_ms: int = 200,
        max_speech_s: float = 30.0,
        turn: Callable[[np.ndarray], float] | None = None,
        turn_silence_ms: int = 160,
        words_unfinished: Callable[[np.ndarray], bool | None] | None = None,
        words_wait_ms: int = WORDS_WAIT_MS,
        words_finished: Callable[[np.ndarray], bool | None] | None = None,
    ) -> None:
        """``turn``: learned end-of-turn detection (the probability that the utterance it is given is
        a finished turn). With it, after ``turn_silence_ms`` of silence the utterance so far is judged:
        a finished turn ends there, an unfinished one ends only after ``min_silence_ms``.

        ``words_unfinished``: a second opinion on a turn ``turn`` calls finished, from the words (given
        the utterance so far): True when they read as a sentence broken off (the turn then waits through
        the pause as for an unfinished voice), False when not, None while they are not known yet (asked
        again each frame, for at most ``words_wait_ms``; after that the voice's verdict stands).

        ``words_finished``: a second opinion on a turn ``turn`` calls unfinished: True when the words
        plainly close a sentence (the turn then ends there), False when not, None while they are not
        known yet (asked again each frame, for at most ``words_wait_ms``; after that the turn waits
        through the pause)."""
        self.vad = vad
        self.threshold = 0.5
        self.min_silence_ms = 400
        self.min_speech_ms = 200
        self.speech_pad_ms = 200
        self.max_speech_s = 30.0
        self.turn = turn
        self.turn_silence_ms = 160
        self.words_unfinished = words_unfinished
        self.words_finished = words_finished
        self.words_wait_ms = int(words_wait_ms)
        self.configure(
            threshold=threshold,
            min_silence_ms=min_silence_ms,
            min_speech_ms=min_speech_ms,
            speech_pad_ms=speech_pad_ms,
            max_speech_s=max_speech_s,
            turn_silence_ms=turn_silence_ms,
        )
        self.reset()

    # ---- settings --------------------------------------------------------------------------
    def configure(self, **kw: Any) -> None:
        """Change any of the constructor's settings; takes effect from the next frame."""
        unknown = set(kw) - set(self._NAMES)
        if unknown:
            raise TypeError(f"unknown endpointer setting(s): {', '.join(sorted(unknown))}")
        if "threshold" in kw:
            value = float(kw["threshold"])
            if not 0.0 < value < 1.0:
                raise ValueError("the VAD threshold lies between 0 and 1")
            self.threshold = value
        for name in ("min_silence_ms", "min_speech_ms", "speech_pad_ms", "turn_silence_ms"):
            if name in kw:
                value = int(kw[name])
                if value < 0:
                    raise ValueError(f"{name} cannot be negative")
                setattr(self, name, value)
        if "max_speech_s" in kw:
            value = float(kw["max_speech_s"])
            if value <= 0:
                raise ValueError("max_speech_s must be positive")
            self.max_speech_s = value

    @property
    def neg_threshold(self) -> float:
        return max(0.01, self.threshold - NEG_THRESHOLD_GAP)

    # ---- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: stream time restarts at 0 and the model's state is cleared."""
        self.vad.reset()
        self._pending = np.zeros(0, np.float32)
        self._frames: list[np.ndarray] = []
        self._frames_start = 0  # sample index of the first kept sample
        self._samples = 0  # samples run through the model (whole frames)
        self._state = _IDLE
        self._start = 0  # sample index where the current (candidate) speech began
        self._last_voiced_end = 0  # sample index just after the last frame >= threshold
        self._silence_from: int | None = None  # sample index where the current silence began
        self._turn_asked = 0  # how often the turn model judged the current silence
        self.last_prob = 0.0
        #: The turn model's last verdict (probability of a finished turn), or None.
        self.last_turn_prob: float | None = None
        self._turn_said_at: int | None = None  # sample index where the turn model heard a finished turn
        self._turn_audio: np.ndarray | None = None  # the utterance it heard then
        self._unsure_at: int | None = None  # where it heard an unfinished turn (-1: the words had their say)
        #: The words' last verdict on a turn the voice called finished (True: they sounded unfinished).
        self.last_words_unfinished: bool | None = None
        #: The words' last verdict on a turn the voice called unfinished (True: they closed a sentence).
        self.last_words_finished: bool | None = None

    @property
    def in_speech(self) -> bool:
        """True between a "start" event and its "end" event."""
        return self._state == _SPEECH

    @property
    def time(self) -> float:
        """Stream time fed so far, in seconds (including a partial frame still buffered)."""
        return (self._samples + len(self._pending)) / SAMPLE_RATE

    # ---- feeding ---------------------------------------------------------------------------
    def feed(self, audio16k: np.ndarray) -> list[VadEvent]:
        """Run any length of 16 kHz mono audio; returns the events it completed (usually none)."""
        audio = np.asarray(audio16k, dtype=np.float32)
        if audio.ndim == 2 and audio.shape[1] > 1:
            audio = audio.mean(axis=1, dtype=np.float32)
        audio = audio.reshape(-1)
        if self._pending.size:
            audio = np.concatenate([self._pending, audio])
        n = len(audio) // FRAME_SAMPLES
        events: list[VadEvent] = []
        for i in range(n):
            events.extend(self._frame(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]))
        self._pending = audio[n * FRAME_SAMPLES :].copy()
        return events

    def flush(self) -> list[VadEvent]:
        """End an utterance in progress now (push-to-talk released, end of a file).

        A partial frame still buffered is run (zero-padded). Speech that had not yet lasted
        ``min_speech_ms`` is dropped, as it would have been had silence followed.
        """
        events: list[VadEvent] = []
        if self._pending.size:
            frame = np.zeros(FRAME_SAMPLES, np.float32)
            frame[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, np.float32)
            events.extend(self._frame(frame))
        if self._state == _CANDIDATE:
            voiced = self._last_voiced_end - self._start
            if voiced >= self._ms(self.min_speech_ms):
                events.append(self._start_event())
        if self._state == _SPEECH:
            end = self._samples if self._silence_from is None else self._last_voiced_end
            events.append(self._end_event(end))
        elif self._state == _CANDIDATE:
            self._to_idle()
        return events

    # ---- the state machine -----------------------------------------------------------------
    @staticmethod
    def _ms(ms: float) -> int:
        return round(ms * SAMPLE_RATE / 1000)

    def _frame(self, frame: np.ndarray) -> list[VadEvent]:
        p = self.vad.prob(frame)
        self.last_prob = p
        begin = self._samples
        self._samples += FRAME_SAMPLES
        self._frames.append(frame.copy())
        now = self._samples
        events: list[VadEvent] = []
        if p >= self.threshold:
            if self._state == _IDLE:
                self._state = _CANDIDATE
                self._start = begin
            self._last_voiced_end = now
            self._silence_from = None
            self._turn_asked = 0
            self._turn_said_at = None
            self._unsure_at = None
        elif p < self.neg_threshold and self._state != _IDLE and self._silence_from is None:
            self._silence_from = now - FRAME_SAMPLES

        if self._state == _CANDIDATE:
            if self._silence_from is not None and now - self._silence_from >= self._candidate_gap():
                self._to_idle()  # a click or a cough: too short to be a turn
            elif self._silence_from is None and now - self._start >= self._ms(self.min_speech_ms):
                events.append(self._start_event())
        elif self._state == _SPEECH:
            silent = self._silence_from is not None and now - self._silence_from >= self._ms(self.min_silence_ms)
            if silent or self._turn_over(now):
                events.append(self._end_event(self._last_voiced_end))
            elif now - self._start >= round(self.max_speech_s * SAMPLE_RATE):
                log.info("speech longer than %.1f s: ending the turn here", self.max_speech_s)
                events.append(self._end_event(now))
        self._trim()
        return events

    def _turn_over(self, now: int) -> bool:
        """The turn model heard a finished turn and the words, once known, do not contradict it."""
        if self._turn_said_at is None:
            if not self._turn_finished(now):
                return self._words_close_it(now)
            self._turn_said_at = now
            # What the voice was judged on, taken once: the words are asked about it each frame
            # until they are known.
            self._turn_audio = self._slice(self._start, now) if self.words_unfinished is not None else None
        elif self._turn_said_at < 0:
            return False  # the words said "unfinished" in this silence: the pause decides
        if self.words_unfinished is None:
            return True
        try:
            verdict = self.words_unfinished(self._turn_audio)
        except Exception as exc:  # the words are a second opinion: without them the voice decides
            log.warning("checking the words for the end of a turn failed: %s", exc)
            self.words_unfinished = None
            return True
        if verdict is None:
            return now - self._turn_said_at >= self._ms(self.words_wait_ms)
        self.last_words_unfinished = bool(verdict)
        if verdict:
            self._turn_said_at = -1
            return False
        return True

    def _words_close_it(self, now: int) -> bool:
        """The turn model heard an unfinished turn, and the words, once known, plainly close a sentence."""
        if self.words_finished is None or self._unsure_at is None or self._unsure_at < 0:
            return False
        try:
            verdict = self.words_finished(self._turn_audio)
        except Exception as exc:  # a second opinion: without it the pause decides
            log.warning("checking the words for the end of a turn failed: %s", exc)
            self.words_finished = None
            return False
        if verdict is None:
            if now - self._unsure_at >= self._ms(self.words_wait_ms):
                self._unsure_at = -1
            return False
        self.last_words_finished = bool(verdict)
        if not verdict:
            self._unsure_at = -1
        return bool(verdict)

    def _turn_finished(self, now: int) -> bool:
        """Ask the turn model once per silence, after ``turn_silence_ms`` (the words and the silence
        so far): True when it hears a finished turn. Asking again later in the same silence made it
        call more unfinished sentences finished (measured: benchmarks/turn_taking.py)."""
        if self.turn is None or self._turn_asked or self._silence_from is None:
            return False
        if now - self._silence_from < self._ms(self.turn_silence_ms):
            return False
        self._turn_asked = 1
        audio = self._slice(self._start, now)
        try:
            prob = float(self.turn(audio))
        except Exception as exc:  # a failing model must not stop listening: silence decides instead
            log.warning("end-of-turn detection failed; the turn ends on silence: %s", exc)
            self.turn = None
            return False
        self.last_turn_prob = prob
        if prob < TURN_COMPLETE and self.words_finished is not None:
            self._unsure_at = now
            self._turn_audio = audio
        return prob >= TURN_COMPLETE

    def _candidate_gap(self) -> int:
        """Silence that ends a not-yet-started utterance: the turn's own silence, at most 200 ms."""
        return max(FRAME_SAMPLES, min(self._ms(self.min_silence_ms), self._ms(200)))

    def _start_event(self) -> VadEvent:
        self._state = _SPEECH
        t = self._samples / SAMPLE_RATE
        return VadEvent("start", time=t, speech_start=self._start / SAMPLE_RATE, speech_end=t)

    def _end_event(self, end: int) -> VadEvent:
        pad = self._ms(self.speech_pad_ms)
        audio = self._slice(self._start - pad, min(end + pad, self._samples))
        event = VadEvent(
            "end",
            time=self._samples / SAMPLE_RATE,
            speech_start=self._start / SAMPLE_RATE,
            speech_end=end / SAMPLE_RATE,
            audio=audio,
        )
        self._to_idle()
        return event

    def _to_idle(self) -> None:
        self._state = _IDLE
        self._silence_from = None
        self._turn_said_at = None
        self._unsure_at = None

    def _slice(self, a: int, b: int) -> np.ndarray:
        a = max(a, self._frames_start)
        if b <= a or not self._frames:
            return np.zeros(0, np.float32)
        kept = np.concatenate(self._frames)
        return kept[a - self._frames_start : b - self._frames_start].copy()

    def _trim(self) -> None:
        """Keep only the audio an utterance may still need (its start less the padding)."""
        if self._state == _IDLE:
            keep_from = self._samples - self._ms(self.speech_pad_ms) - FRAME_SAMPLES
        else:
            keep_from = self._start - self._ms(self.speech_pad_ms)
        while self._frames and self._frames_start + len(self._frames[0]) <= keep_from:
            self._frames_start += len(self._frames.pop(0))
