"""The voice assistant's live pipeline: microphone → VAD → Whisper → language model → voice → speaker.

:class:`VoicePipeline` runs four plain threads (no Qt), each stage streaming into the next:

- **capture** reads the microphone at its own rate, mixes it to mono, resamples it once to 16 kHz,
  measures its level and runs Silero VAD frame by frame (32 ms) through an
  :class:`~workers.assistant.vad.Endpointer`; a finished utterance becomes a turn. In push-to-talk
  mode the audio between press and release is the turn. While the assistant speaks, the same frames
  decide a barge-in (the user talks over it: playback and generation stop at once) and, without a
  headset, the :class:`EchoGuard` keeps the assistant's own voice coming back from the speakers from
  being taken as a turn.
- **brain** transcribes a turn, streams the language model's answer (text deltas) into a
  :class:`~workers.assistant.sentences.SentenceSplitter` and hands each sentence to the voice as
  soon as it is complete.
- **voice** synthesises sentence after sentence and converts the audio to the speaker's rate.
- **playback** writes small blocks (20 ms) to the speaker, keeping only ~80 ms queued there, so an
  interruption silences it at once (``clear()`` drops what the device still holds).

The first audio comes as early as the machine allows: once a silence follows the user's words they
are transcribed and the answer's first sentence is prepared in the background, shown and spoken
only when the endpointer confirms the end (dropped if the user goes on; a turn that sounds finished
but whose early transcript breaks off, "Who wrote Romeo and", waits through the pause instead:
:mod:`workers.assistant.turn_words`); the first sentence is cut at
a clause break when it runs long and spoken as soon as it clearly ends; and the language model waits
while that sentence is synthesised, so the voice has the processor to itself.

Everything the pipeline does is reported as :class:`AssistantEvent` objects through one callback,
called from these threads: states, microphone levels (about every 50 ms), the recognised text, the
answer as it streams, per-turn timings, barge-ins, sounds ignored by the echo guard, warnings and
errors as sentences. Nothing in here raises into the caller once started.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.assistant.components import (  # noqa: F401  (the pipeline's public names, as before)
    AssistantEvent,
    Components,
    changed_components,
    load_asr,
    load_components,
    load_llm,
    load_voice_for,
)
from workers.assistant.echo import EchoGuard, StreamResampler
from workers.assistant.options import AssistantOptions
from workers.errors import Cancelled, UserError, describe_exception
from workers.media.audio import SILENCE_DBFS, as_block, convert_channels, rms_dbfs

if TYPE_CHECKING:
    from workers.assistant.conversation import Conversation, Turn
    from workers.assistant.vad import Endpointer
    from workers.media.audio import AudioSink, AudioSource

log = logging.getLogger(__name__)

#: The rate the pipeline works at (the VAD's and Whisper's).
SAMPLE_RATE = 16000
#: Samples per VAD frame (32 ms at 16 kHz).
FRAME = 512
STATES = ("idle", "listening", "hearing", "thinking", "speaking", "stopped")
EVENT_KINDS = ("state", "level", "user", "delta", "done", "timings", "barge_in", "echo", "warning", "error")
#: The keys of a "timings" event that are milliseconds from the end of the user's speech.
TIMING_KEYS = (
    "speech_end_to_vad_ms",
    "asr_ms",
    "first_token_ms",
    "first_sentence_ms",
    "first_audio_ms",
    "total_ms",
)

#: Seconds between two "level" events.
LEVEL_INTERVAL = 0.05
#: Playback writes blocks this long...
PLAY_BLOCK_S = 0.02
#: ...and keeps at most this much audio queued in the speaker, so stopping is immediate.
PLAY_LEAD_S = 0.08
#: A barge-in: this many of the last BARGE_WINDOW VAD frames (32 ms each) are the user's speech; with
#: the echo guard on (no headset) the frames must also be louder than the echo, and one more is asked.
BARGE_FRAMES = 2
BARGE_WINDOW = 3
BARGE_FRAMES_GUARDED = 3
BARGE_WINDOW_GUARDED = 4
#: A barge-in found by the frames makes the utterance the VAD starts within this time a turn.
BARGE_ACCEPT_S = 1.5
#: Characters after which the first sentence of an answer is cut at a clause break (the first audio comes
#: sooner); later sentences use the splitter's own limit.
FIRST_SOFT_LIMIT = 48
#: The first piece of an answer is spoken from its first clause break past this many characters ("Sure,"
#: is too short to sound like a start; "The capital of France is Paris," is not).
FIRST_CLAUSE_CHARS = 12
#: The longest the language model pauses for the first sentence's audio (see ``_yield_to_voice``).
FIRST_CHUNK_WAIT_S = 2.0
#: An answer begun early prepares at most its first sentence (or this many pieces) before the end is sure,
#: and is dropped if the endpointer has not decided within EARLY_WAIT_S.
EARLY_PIECES = 24
EARLY_WAIT_S = 5.0
#: Silent frames (32 ms) after speech at which the utterance is transcribed ahead of the endpointer's
#: verdict; if no speech follows, the turn uses that transcript and saves most of Whisper's time.
SPECULATE_FRAMES = 5
#: With learned end-of-turn detection the turn may end 160 ms into a silence, and the words' check
#: waits for this transcript: the words are transcribed from the first silent frame (32 ms) on. (Two
#: frames measured 30-40 ms later first audio; the spoken questions of benchmarks/assistant.py, clean
#: and at 10 dB SNR, were transcribed once each either way.)
SPECULATE_FRAMES_LEARNED = 1
#: Audio kept from before the talk button was pressed (people start speaking as they press).
PTT_PREROLL_S = 0.25
#: Whisper's answers to silence or noise that are no question.
_NOT_SPEECH = re.compile(r"^[\W_]*$|^\s*[\[(][^\])]*[\])]\s*$")


# ---- small helpers --------------------------------------------------------------------------------------


_SENTENCE_END = re.compile(r"(?:^|[\s(\"'])([^\W\d_][^\W\d_']+)[.!?]+[\"'”’)\]]*$")


def ends_sentence(text: str) -> bool:
    """True when ``text`` surely ends with a full stop, a question or an exclamation mark after a word
    (not "Dr.", "e.g.", "3." or an initial, which may go on)."""
    from workers.assistant.sentences import ABBREVIATIONS

    stripped = text.strip()
    if not stripped or text != text.rstrip():
        return False  # a trailing space is the splitter's own business
    m = _SENTENCE_END.search(stripped)
    return m is not None and m.group(1).lower() not in ABBREVIATIONS


def _has_sentence(text: str) -> bool:
    """Whether ``text`` holds a whole sentence (or a long first clause) to speak."""
    stripped = text.strip()
    return bool(
        re.search(r"[.!?…][\"'”’)\]]*\s", text)
        or "\n" in stripped
        or ends_sentence(text)
        or (len(stripped) > FIRST_SOFT_LIMIT and re.search(r"[,;:]\s", stripped))
        or re.search(r"[,;:]\s", stripped[FIRST_CLAUSE_CHARS - 1 :]) is not None
    )


def clean_user_text(text: str) -> str:
    """The recognised text, or "" when Whisper heard no words (punctuation, "[BLANK_AUDIO]", "(music)")."""
    text = " ".join(str(text).split())
    return "" if _NOT_SPEECH.match(text) else text


def _close_quietly(thing: Any, what: str) -> None:
    close = getattr(thing, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            log.warning("Closing the %s failed: %s", what, exc)


# ---- turns --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Turn:
    """One question and its answer as it moves through the threads."""

    source: str  # "voice" | "ptt" | "text"
    #: Monotonic time the user finished speaking (or sent the typed question): timings count from here.
    t0: float
    epoch: int
    text: str = ""
    audio: np.ndarray | None = None
    t_detected: float | None = None
    spec: _Speculation | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    turn: Turn | None = None
    id: int = 0
    reply: str = ""
    interrupted: bool = False
    error: bool = False
    t_asr_start: float | None = None
    t_asr_done: float | None = None
    asr_seconds: float = 0.0
    asr_early: bool = False
    llm_early: bool = False
    #: Taken over by the brain from an early start (skipped when it comes out of the queue).
    claimed: bool = False
    #: The end-of-turn model's verdict on this turn (probability it was finished), or None: silence
    #: ended it.
    turn_prob: float | None = None
    #: The words' verdict on a turn the voice called finished (True: they read as broken off).
    words_unfinished: bool | None = None
    #: The words' verdict on a turn the voice called unfinished (True: they closed a sentence).
    words_finished: bool | None = None
    t_llm_start: float | None = None
    t_first_token: float | None = None
    t_first_sentence: float | None = None
    t_first_tts: float | None = None
    t_first_audio: float | None = None
    t_gen_end: float | None = None
    t_play_end: float | None = None
    tokens: int = 0
    tts_seconds: float = 0.0
    tts_audio_s: float = 0.0
    played_s: float = 0.0
    speaks: bool = False
    #: Set when the voice has the first audio of the answer (or gave up on it).
    first_chunk: threading.Event = field(default_factory=threading.Event)
    voice_failed: bool = False
    audio_started: bool = False
    gen_done: bool = False
    play_done: bool = False
    finished: bool = False


@dataclass(eq=False)
class _Speculation:
    """An utterance transcribed (and its answer begun) early, while the endpointer still waits to be
    sure the user finished. More speech cancels it; the endpointer's verdict confirms it."""

    audio: np.ndarray
    cancelled: threading.Event = field(default_factory=threading.Event)
    transcript: Any = None
    text: str = ""
    seconds: float = 0.0
    done_at: float | None = None
    #: Set by the capture thread once the end is certain; ``request`` is then the turn.
    confirmed: threading.Event = field(default_factory=threading.Event)
    request: _Turn | None = None
    #: The answer begun early: its stream and the pieces (monotonic time, text) read from it so far.
    stream: Any = None
    pieces: list[tuple[float, str]] = field(default_factory=list)
    t_llm_start: float | None = None
    #: The language model's reading of the words: how likely the sentence ends where they stop (None:
    #: not read), and whether that reading is over (set also when it cannot be had).
    end_prob: float | None = None
    end_read: bool = False


@dataclass
class _Capture:
    """The capture thread's own state for one open microphone."""

    endpointer: Endpointer
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    offset: float = 0.0  # monotonic time - endpointer stream time
    preroll: deque[np.ndarray] = field(default_factory=deque)
    level_db: float = SILENCE_DBFS
    level_vad: float = 0.0
    last_level: float = 0.0
    recent: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=BARGE_WINDOW_GUARDED))
    barged_at: float | None = None
    utt_accepted: bool | None = None  # None: no utterance; False: held by the echo guard
    utt_start: float = 0.0
    vad_version: int = -1
    mode: str = "vad"
    ptt_on: bool = False
    ptt_frames: list[np.ndarray] = field(default_factory=list)
    ptt_voiced: int = 0
    talk_presses: int = 0
    history: deque[np.ndarray] = field(default_factory=deque)  # the last seconds of frames
    history_samples: int = 0
    silent_frames: int = 0
    spec: _Speculation | None = None


def _early_words(spec: _Speculation | None) -> str | float | None:
    """What the early transcript of a pause says of the turn's end so far: None while it is being
    transcribed or read; "none" when there is none (or no reading could be had), "broken" when the word
    list hears it break off, "other" when it is not English (the reading was measured on English only);
    else the language model's reading, the probability that a sentence ends where the words stop."""
    from workers.assistant.turn_words import is_english, sounds_unfinished

    if spec is None or spec.cancelled.is_set():
        return "none"
    if spec.done_at is None:
        return None
    language = getattr(spec.transcript, "language", None)
    if sounds_unfinished(spec.text, language):
        return "broken"
    if not is_english(spec.text, language):
        return "other"
    if not spec.end_read:
        return None
    return "none" if spec.end_prob is None else float(spec.end_prob)


# ---- the pipeline -------------------------------------------------------------------------------------


class VoicePipeline:
    """Microphone to spoken answer, streamed, on four threads (see the module docs)."""

    def __init__(
        self,
        components: Components,
        options: AssistantOptions,
        *,
        source: AudioSource | None,
        sink: AudioSink | None,
        on_event: Callable[[AssistantEvent], None],
        conversation: Conversation | None = None,
    ) -> None:
        self.components = components
        self.options = dataclasses.replace(options)
        self._source = source
        self._sink = sink
        self._on_event = on_event
        if conversation is None:
            from workers.assistant.conversation import Conversation

            conversation = Conversation(system_prompt=self.options.system_prompt)
        self.conversation = conversation
        self.guard = EchoGuard()

        self._lock = threading.RLock()
        self._state_lock = threading.RLock()
        self._play_lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._capture_stop = threading.Event()
        self._requests: queue.Queue[_Turn | _Speculation | None] = queue.Queue()
        self._sentences: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._audio: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._threads: dict[str, threading.Thread] = {}
        self._capture_thread: threading.Thread | None = None
        self._active: list[_Turn] = []
        self._pending = 0
        self._epoch = 0
        self._state = ""
        self._started = False
        self._stopped = False
        self._capturing = False
        self._hearing = False
        self._talk = False
        self._talk_presses = 0
        self._talk_released_at = 0.0
        self._vad_version = 0
        self._sink_ok = False
        self._sink_rate = 0
        self._sink_channels = 1
        self._play_clock = 0.0
        self._idle_brain = threading.Event()
        self._idle_brain.set()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the speaker, start the threads and the microphone (when there is one)."""
        if self._started:
            raise RuntimeError("the pipeline was already started")
        self._started = True
        self._open_sink()
        for name, target in (("brain", self._brain_main), ("voice", self._voice_main), ("playback", self._play_main)):
            thread = threading.Thread(target=self._guarded(target, name), name=f"assistant-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
        if self._source is not None:
            self._start_capture(self._source)
        self._update_state()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop every thread (joined within ``timeout`` seconds in all) and close the devices."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_evt.set()
        self._capture_stop.set()
        with self._lock:
            self._epoch += 1
            active = list(self._active)
        for turn in active:
            turn.cancel.set()
        for q in (self._requests, self._sentences, self._audio):
            q.put(None)
        deadline = time.monotonic() + timeout
        threads = list(self._threads.values())
        if self._capture_thread is not None:
            threads.append(self._capture_thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("The assistant's %s thread did not stop in time", thread.name)
        capture = self._capture_thread
        if capture is not None and capture.is_alive() and self._source is not None:
            _close_quietly(self._source, "microphone")  # a read that hangs: closing it ends the read
        sink, self._sink_ok = self._sink, False
        if sink is not None:
            self._clear_sink(sink)
            _close_quietly(sink, "speaker")
        self._update_state()

    def __enter__(self) -> VoicePipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        return self._state

    @property
    def listening(self) -> bool:
        """True while a microphone is open and heard."""
        return self._capturing

    @property
    def speaker_ok(self) -> bool:
        return self._sink_ok

    # ---- commands (any thread) -----------------------------------------------------------------------
    def submit_text(self, text: str) -> None:
        """A typed question: answered like a spoken one (without speech recognition)."""
        text = " ".join(str(text).split())
        if not text or self._stopped:
            return
        t0 = time.monotonic()
        self._cancel_active()  # a new question replaces the answer in progress
        with self._lock:
            request = _Turn("text", t0, self._epoch, text=text)
        self._enqueue(request)

    def set_talk(self, pressed: bool) -> None:
        """Push-to-talk: hold (True) while speaking, release (False) to send."""
        pressed = bool(pressed)
        if pressed and not self._capturing:
            if not self._stopped:
                self._emit("warning", text="No microphone is open, so the talk button has nothing to record.")
            return
        with self._lock:
            if pressed and not self._talk:
                self._talk_presses += 1
            if not pressed and self._talk:
                self._talk_released_at = time.monotonic()
            self._talk = pressed

    def interrupt(self) -> None:
        """The Stop button: the answer stops at once (generation and playback); queued questions are dropped."""
        with self._lock:
            self._epoch += 1
        self._cancel_active()
        self._update_state()

    def update_options(self, options: AssistantOptions) -> None:
        """New settings, live: VAD parameters, mode, headset, barge-in, prompt, memory, temperature…

        A different model (ASR, LLM, voice) needs :meth:`set_components` with the reloaded one.
        """
        new = dataclasses.replace(options)
        with self._lock:
            old, self.options = self.options, new
            self._vad_version += 1
            if new.system_prompt != old.system_prompt:
                self.conversation.system_prompt = new.system_prompt
        if new.mode != old.mode:
            self._talk = False

    def set_components(self, components: Components, timeout: float = 5.0) -> None:
        """Use other models from now on (the answer in progress is stopped first)."""
        self.interrupt()
        self._idle_brain.wait(timeout)
        with self._lock:
            self.components = components

    def set_conversation(self, conversation: Conversation) -> None:
        """Continue another conversation (the answer in progress is stopped)."""
        self.interrupt()
        with self._lock:
            self.conversation = conversation
            conversation.system_prompt = self.options.system_prompt

    def set_source(self, source: AudioSource | None, timeout: float = 2.0) -> None:
        """Listen to another microphone (None: typed questions only)."""
        self._stop_capture(timeout)
        self._source = source
        if source is not None and self._started and not self._stopped:
            self._start_capture(source)
        self._update_state()

    # ---- events and state ---------------------------------------------------------------------
    def _emit(self, kind: str, turn: int = 0, text: str = "", data: dict[str, Any] | None = None) -> None:
        try:
            self._on_event(AssistantEvent(kind, turn, text, data or {}))
        except Exception:
            log.exception("An assistant event handler failed")

    def _warn(self, text: str) -> None:
        log.info("%s", text)  # the event carries it; whoever shows it logs it (see the worker)
        self._emit("warning", text=text)

    def _compute_state(self) -> str:
        if self._stopped:
            return "stopped"
        with self._lock:
            active = [t for t in self._active if not t.finished]
            pending = self._pending
        if any(t.audio_started and not t.play_done for t in active):
            return "speaking"
        if self._hearing:
            return "hearing"
        if active or pending:
            return "thinking"
        return "listening" if self._capturing else "idle"

    def _update_state(self) -> None:
        with self._state_lock:  # emitted under the lock: states arrive in the order they happened
            state = self._compute_state()
            if state == self._state:
                return
            self._state = state
            self._emit("state", text=state)

    def _guarded(self, target: Callable[[], None], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # a bug must not kill the assistant silently
                log.exception("The assistant's %s thread failed", name)
                self._emit("error", text=describe_exception(exc, f"The assistant ({name})"))

        return run

    # ---- turns bookkeeping ----------------------------------------------------------------------
    def _enqueue(self, request: _Turn) -> None:
        with self._lock:
            self._pending += 1
        self._requests.put(request)
        self._update_state()

    def _cancel_active(self) -> list[_Turn]:
        """Stop every answer in progress: generation, synthesis and playback (what the speaker holds too)."""
        with self._lock:
            victims = [t for t in self._active if not t.finished and not t.cancel.is_set()]
            for t in victims:
                t.cancel.set()
                t.interrupted = True
        if not victims:
            return []
        now = time.monotonic()
        sink = self._sink
        if sink is not None and self._sink_ok:
            self._clear_sink(sink)
        self.guard.cut(now)
        self._play_clock = min(self._play_clock, now)
        for t in victims:
            if not t.play_done:
                t.play_done = True
                t.t_play_end = now
            self._maybe_finish(t)
        self._update_state()
        return victims

    def _clear_sink(self, sink: Any) -> None:
        """Drop what the speaker still holds. Taken with the playback's lock (so no block written just
        after the check of a cancelled turn slips through), unless a write is stuck in a dead device."""
        clear = getattr(sink, "clear", None)
        if not callable(clear):
            return
        locked = self._play_lock.acquire(timeout=0.25)
        try:
            clear()
        except Exception as exc:
            log.warning("Clearing the speaker failed: %s", exc)
        finally:
            if locked:
                self._play_lock.release()

    def _maybe_finish(self, t: _Turn) -> None:
        with self._lock:
            if t.finished or not (t.gen_done and t.play_done):
                return
            t.finished = True
            if t in self._active:
                self._active.remove(t)
        if t.turn is not None:
            t.turn.interrupted = t.interrupted
            self._emit("done", turn=t.id, text=t.turn.assistant, data={"interrupted": t.interrupted, "error": t.error})
            timings = self._timings(t)
            t.turn.timings = {
                k: float(v) for k, v in timings.items() if isinstance(v, int | float) and not isinstance(v, bool)
            }
            self._emit("timings", turn=t.id, data=timings)
        self._update_state()

    def _timings(self, t: _Turn) -> dict[str, Any]:
        def ms(when: float | None) -> float | None:
            return None if when is None else round((when - t.t0) * 1000.0, 1)

        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        ends = [x for x in (t.t_gen_end, t.t_play_end) if x is not None]
        audio_s = len(t.audio) / SAMPLE_RATE if t.audio is not None else 0.0
        gen_s = (t.t_gen_end - t.t_first_token) if t.t_gen_end and t.t_first_token else 0.0
        tokens_per_s = (t.tokens - 1) / gen_s if t.tokens > 1 and gen_s > 0 else None
        voice = t.source != "text"
        return {
            "speech_end_to_vad_ms": ms(t.t_detected) if voice else None,
            "asr_ms": ms(t.t_asr_done) if voice else None,
            "first_token_ms": ms(t.t_first_token),
            "first_sentence_ms": ms(t.t_first_sentence),
            "first_audio_ms": ms(t.t_first_audio),
            "total_ms": ms(max(ends)) if ends else None,
            "asr_rtf": round(t.asr_seconds / audio_s, 4) if voice and audio_s > 0 else None,
            "tokens": t.tokens,
            "tokens_per_s": round(tokens_per_s, 2) if tokens_per_s is not None else None,
            "tts_rtf": round(t.tts_seconds / t.tts_audio_s, 4) if t.tts_audio_s > 0 else None,
            "source": t.source,
            "asr_early": t.asr_early,
            "llm_early": t.llm_early,
            "turn_prob": round(t.turn_prob, 3) if t.turn_prob is not None else None,
            "turn_words_unfinished": t.words_unfinished,
            "turn_words_finished": t.words_finished,
            "turn_text_prob": (
                round(t.spec.end_prob, 4) if t.spec is not None and t.spec.end_prob is not None else None
            ),
            "interrupted": t.interrupted,
            "stages": {
                "endpoint": span(t.t0, t.t_detected) if voice else None,
                "asr": round(t.asr_seconds * 1000.0, 1) if voice else None,
                "llm_first_token": span(t.t_llm_start, t.t_first_token),
                "first_sentence": span(t.t_first_token, t.t_first_sentence),
                "tts_first_chunk": span(t.t_first_sentence, t.t_first_tts),
                "playback_start": span(t.t_first_tts, t.t_first_audio),
            },
        }

    def _speaking_turns(self) -> list[_Turn]:
        with self._lock:
            return [t for t in self._active if t.audio_started and not t.play_done and not t.finished]

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._pending or any(not t.finished for t in self._active))

    def _barge_in(self, reason: str) -> None:
        """The user spoke over the assistant: stop everything it was doing; the speech is the next turn."""
        with self._lock:
            self._epoch += 1
            victims = [t for t in self._active if not t.finished and not t.cancel.is_set()]
        turn_id = victims[0].id if victims else 0
        log.info("Barge-in (%s) stops turn %s", reason, turn_id or "-")
        self._emit("barge_in", turn=turn_id, data={"reason": reason})
        self._cancel_active()

    # ---- capture thread ----------------------------------------------------------------------------
    def _start_capture(self, source: AudioSource) -> None:
        stop = self._capture_stop = threading.Event()
        self._capturing = True  # listening from now on, unless the microphone fails to open
        thread = threading.Thread(
            target=self._guarded(lambda: self._capture_main(source, stop), "capture"),
            name="assistant-capture",
            daemon=True,
        )
        self._capture_thread = thread
        thread.start()

    def _stop_capture(self, timeout: float) -> None:
        thread = self._capture_thread
        self._capture_stop.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("The microphone thread did not stop in time")
        self._capture_thread = None

    def _make_endpointer(self) -> Endpointer:
        from workers.assistant.vad import Endpointer

        o = self.options
        return Endpointer(
            self.components.vad,
            threshold=o.vad_threshold,
            min_silence_ms=self._silence_ms(),
            min_speech_ms=o.min_speech_ms,
            speech_pad_ms=o.speech_pad_ms,
            turn=self._turn(),
            turn_silence_ms=o.turn_silence_ms,
        )

    def _turn(self) -> Any:
        """The end-of-turn model the endpointer asks, or None (silence decides)."""
        if self.options.turn_detection != "learned":
            return None
        return getattr(self.components, "turn", None)

    def _attach_words(self, cap: _Capture) -> None:
        """Give the endpointer the words' second opinions (none without learned turn detection)."""
        ep = cap.endpointer
        ep.words_unfinished = self._words_check(cap)
        ep.words_finished = self._words_close(cap) if ep.words_unfinished is not None else None

    def _words_check(self, cap: _Capture) -> Callable[[np.ndarray], bool | None] | None:
        """The endpointer's second opinion on a turn that sounds finished: do the words of the early
        transcript (made from the first silent frame on) read as a sentence broken off? None without learned
        turn detection."""
        if self._turn() is None:
            return None
        from workers.assistant.turn_words import TEXT_END_MIN

        def unfinished(_audio: np.ndarray) -> bool | None:
            said = _early_words(cap.spec)
            if said is None:
                return None
            return said == "broken" or (isinstance(said, float) and said < TEXT_END_MIN)

        return unfinished

    def _words_close(self, cap: _Capture) -> Callable[[np.ndarray], bool | None]:
        """The endpointer's second opinion on a turn that sounds unfinished: do the words of the early
        transcript plainly close a sentence (the language model's reading, English only)?"""
        from workers.assistant.turn_words import TEXT_END_SURE

        def closed(_audio: np.ndarray) -> bool | None:
            said = _early_words(cap.spec)
            return None if said is None else isinstance(said, float) and said >= TEXT_END_SURE

        return closed

    def _silence_ms(self) -> int:
        """The silence that ends a turn: the pause waited through when a turn model judges turns,
        else the "end of turn" setting."""
        o = self.options
        return max(o.min_silence_ms, o.pause_ms) if self._turn() is not None else o.min_silence_ms

    def _capture_main(self, source: AudioSource, stop: threading.Event) -> None:
        try:
            source.open()
            rate = int(source.samplerate)
            if rate <= 0:
                raise UserError("The microphone reports no sample rate.")
            cap = _Capture(self._make_endpointer())
            self._attach_words(cap)
            cap.mode = self.options.mode
        except BaseException as exc:
            self._capturing = False
            self._warn(f"{describe_exception(exc, 'Microphone')} The assistant takes typed questions only.")
            _close_quietly(source, "microphone")
            self._update_state()
            return
        resampler = StreamResampler(rate, SAMPLE_RATE)
        cap.vad_version = self._vad_version
        cap.talk_presses = self._talk_presses
        self._capturing = True
        self._update_state()
        log.info("Listening at %d Hz, %d channel(s)", rate, int(getattr(source, "channels", 1) or 1))
        try:
            while not stop.is_set() and not self._stop_evt.is_set():
                try:
                    item = source.read(0.05)
                except BaseException as exc:
                    self._warn(f"{describe_exception(exc, 'Microphone')} The assistant takes typed questions only.")
                    break
                if item is None:
                    if getattr(source, "ended", False):
                        self._feed(cap, resampler.flush(), time.monotonic())
                        self._end_of_stream(cap)
                        break
                    continue
                block = as_block(item.payload)
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
                self._feed(cap, resampler(mono), float(item.timestamp))
        finally:
            self._capturing = False
            self._hearing = False
            _close_quietly(source, "microphone")
            self._update_state()

    def _feed(self, cap: _Capture, x16: np.ndarray, t_end: float) -> None:
        """Run 16 kHz audio whose last sample was heard at monotonic ``t_end``, frame by frame."""
        data = np.concatenate([cap.pending, x16]) if len(cap.pending) else x16
        n = len(data) // FRAME
        for i in range(n):
            if self._stop_evt.is_set():
                break
            t = t_end - (len(data) - (i + 1) * FRAME) / SAMPLE_RATE
            self._frame(cap, data[i * FRAME : (i + 1) * FRAME], t)
        cap.pending = data[n * FRAME :].copy()

    def _frame(self, cap: _Capture, frame: np.ndarray, t: float) -> None:
        """One 32 ms frame that ended at monotonic time ``t``."""
        opts = self.options
        ep = cap.endpointer
        if cap.vad_version != self._vad_version:
            cap.vad_version = self._vad_version
            try:
                ep.configure(
                    threshold=opts.vad_threshold,
                    min_silence_ms=self._silence_ms(),
                    min_speech_ms=opts.min_speech_ms,
                    speech_pad_ms=opts.speech_pad_ms,
                    turn_silence_ms=opts.turn_silence_ms,
                )
                ep.turn = self._turn()
                self._attach_words(cap)
            except (TypeError, ValueError) as exc:
                self._warn(f"The listening settings were not applied: {exc}.")
        if opts.mode != cap.mode:
            cap.mode = opts.mode
            ep.reset()
            cap.utt_accepted = None
            cap.ptt_on = False
            cap.talk_presses = self._talk_presses
            if cap.spec is not None:
                cap.spec.cancelled.set()
                cap.spec = None
            self._hearing = False
        events = ep.feed(frame)
        cap.offset = t - ep.time
        prob = float(ep.last_prob)
        db = rms_dbfs(frame)
        cap.preroll.append(frame)
        while len(cap.preroll) * FRAME > PTT_PREROLL_S * SAMPLE_RATE:
            cap.preroll.popleft()
        cap.history.append(frame)
        cap.history_samples += FRAME
        while cap.history_samples > (ep.max_speech_s + 1.0) * SAMPLE_RATE:
            cap.history_samples -= len(cap.history.popleft())

        cap.level_db = max(cap.level_db, db)
        cap.level_vad = max(cap.level_vad, prob)
        now = time.monotonic()
        if now - cap.last_level >= LEVEL_INTERVAL:
            cap.last_level = now
            self._emit("level", data={"dbfs": round(cap.level_db, 1), "vad": round(cap.level_vad, 3)})
            cap.level_db, cap.level_vad = SILENCE_DBFS, 0.0

        voiced = prob >= opts.vad_threshold
        if opts.mode == "ptt":
            self._ptt_frame(cap, frame, voiced)
            return

        speaking = bool(self._speaking_turns())
        guard_on = not opts.headset and (speaking or self.guard.active(t))
        excess = self.guard.observe(t, db) if guard_on else 0.0

        # A barge-in while the assistant's voice is out: decided by the frames, not the endpointer
        # (which waits min_speech_ms), so the assistant falls silent within a few frames. Without a
        # headset the voiced frames must also be louder, together, than the echo could be.
        cap.recent.append((voiced, excess))
        if speaking and opts.barge_in and voiced and self._barging(list(cap.recent), guard_on):
            recent = [v for v, _ in cap.recent]
            onset_frames = len(recent) - recent.index(True)  # frames since the user's voice began
            self.guard.forget(len(cap.recent))
            cap.recent.clear()
            cap.barged_at = t
            self._barge_in("voice")
            # What the endpointer held so far may be the assistant's echo: start it afresh from the
            # last few frames, which hold the onset of the user's words.
            ep.reset()
            cap.utt_accepted = None
            replay = list(cap.preroll)[-(onset_frames + 1) :]
            for k, old in enumerate(replay):
                more = ep.feed(old)
                self._handle_vad_events(cap, more, t - (len(replay) - 1 - k) * FRAME / SAMPLE_RATE, False)
            cap.offset = t - ep.time
        self._handle_vad_events(cap, events, t, guard_on)

        self._speculate(cap, prob, voiced)

        # The assistant finished and its echo died away while the endpointer still hears the echo:
        # start afresh, so the user's next words are not glued to it.
        if cap.utt_accepted is False and not guard_on:
            ep.reset()
            cap.utt_accepted = None
            self._emit("echo", data={"seconds": round(max(0.0, t - cap.offset - cap.utt_start), 2)})
            self._update_state()

    def _barging(self, recent: list[tuple[bool, float]], guarded: bool) -> bool:
        """Do the last frames ((voiced, dB above the echo)) say the user is speaking over the assistant?"""
        if guarded and not self.guard.ready:
            return False  # the first moments of the first answer teach the guard how loud the echo is
        need, window = (BARGE_FRAMES_GUARDED, BARGE_WINDOW_GUARDED) if guarded else (BARGE_FRAMES, BARGE_WINDOW)
        frames = recent[-window:]
        voiced = [excess for v, excess in frames if v]
        if len(voiced) < need:
            return False
        if not guarded:
            return True
        # The voiced frames' energy, relative to the loudest echo expected: vowels carry the decision.
        return float(np.mean(np.power(10.0, np.asarray(voiced) / 10.0))) > 1.0

    def _speculate(self, cap: _Capture, prob: float, voiced: bool) -> None:
        """Transcribe an utterance once a short silence follows it; more speech cancels that."""
        ep = cap.endpointer
        if voiced or not (cap.utt_accepted and ep.in_speech):
            cap.silent_frames = 0
            if voiced and cap.spec is not None:
                cap.spec.cancelled.set()
                cap.spec = None
            return
        if prob >= max(0.01, self.options.vad_threshold - 0.15):
            return  # neither speech nor silence: the endpointer keeps counting, so do we
        cap.silent_frames += 1
        learned = ep.turn is not None
        if cap.silent_frames != (SPECULATE_FRAMES_LEARNED if learned else SPECULATE_FRAMES) or cap.spec is not None:
            return
        if not learned and self.options.min_silence_ms < SPECULATE_FRAMES * FRAME * 1000 / SAMPLE_RATE + 100:
            return  # the endpointer decides about as soon: nothing to win
        pad = self.options.speech_pad_ms / 1000.0
        n = min(cap.history_samples, round((ep.time - cap.utt_start + pad) * SAMPLE_RATE))
        if n <= 0:
            return
        audio = np.concatenate(list(cap.history))[-n:]
        cap.spec = _Speculation(audio)
        self._requests.put(cap.spec)

    def _handle_vad_events(self, cap: _Capture, events: list[Any], t: float, guard_on: bool) -> None:
        opts = self.options
        for ev in events:
            if ev.kind == "start":
                recent_barge = cap.barged_at is not None and t - cap.barged_at <= BARGE_ACCEPT_S
                cap.utt_start = ev.speech_start
                if recent_barge:
                    cap.utt_accepted = True
                elif guard_on:
                    cap.utt_accepted = False  # held: the assistant's own voice, unless the user barges in
                else:
                    cap.utt_accepted = True
                    if opts.barge_in and self._busy():
                        self._barge_in("speech")
                cap.barged_at = None
                if cap.utt_accepted:
                    self._hearing = True
                    self._update_state()
            elif ev.kind == "end":
                accepted, cap.utt_accepted = cap.utt_accepted, None
                self._hearing = False
                if not accepted:
                    self._emit("echo", data={"seconds": round(ev.duration, 2)})
                    self._update_state()
                    continue
                audio = ev.audio if ev.audio is not None else np.zeros(0, np.float32)
                spec, cap.spec = cap.spec, None
                with self._lock:
                    request = _Turn(
                        "voice", ev.speech_end + cap.offset, self._epoch, audio=audio, t_detected=time.monotonic()
                    )
                ep = cap.endpointer
                request.turn_prob = ep.last_turn_prob if ep.turn is not None else None
                request.words_unfinished = ep.last_words_unfinished
                request.words_finished = ep.last_words_finished
                ep.last_turn_prob = ep.last_words_unfinished = ep.last_words_finished = None
                request.spec = spec if spec is not None and not spec.cancelled.is_set() else None
                if request.spec is not None:
                    request.spec.request = request
                self._enqueue(request)
                if request.spec is not None:
                    request.spec.confirmed.set()  # after the enqueue: the brain may take the turn at once
            if cap.utt_accepted is None and cap.spec is not None:
                cap.spec.cancelled.set()
                cap.spec = None

    def _ptt_frame(self, cap: _Capture, frame: np.ndarray, voiced: bool) -> None:
        with self._lock:
            talk, presses, released_at = self._talk, self._talk_presses, self._talk_released_at
        if presses != cap.talk_presses and not cap.ptt_on:
            cap.talk_presses = presses
            cap.ptt_on = True
            cap.ptt_frames = list(cap.preroll)[:-1]
            cap.ptt_voiced = 0
            if self._busy():
                self._barge_in("talk button")
            self._hearing = True
            self._update_state()
        if not cap.ptt_on:
            return
        cap.ptt_frames.append(frame)
        cap.ptt_voiced += int(voiced)
        if talk and presses == cap.talk_presses:
            return
        cap.ptt_on = False
        self._hearing = False
        voiced_ms = cap.ptt_voiced * FRAME * 1000 / SAMPLE_RATE
        if voiced_ms >= max(self.options.min_speech_ms, FRAME * 1000 / SAMPLE_RATE):
            audio = np.concatenate(cap.ptt_frames)
            with self._lock:
                request = _Turn(
                    "ptt", released_at or time.monotonic(), self._epoch, audio=audio, t_detected=time.monotonic()
                )
            self._enqueue(request)
        else:
            self._emit("warning", text="No speech was heard while the talk button was held.")
            self._update_state()
        cap.ptt_frames = []

    def _end_of_stream(self, cap: _Capture) -> None:
        """The microphone (a sound file) ended: an utterance in progress is a turn."""
        if cap.pending.size:
            pad = np.zeros(FRAME - len(cap.pending) % FRAME, np.float32)
            self._feed(cap, pad, time.monotonic())
        if self.options.mode == "ptt":
            if cap.ptt_on:
                with self._lock:
                    self._talk = False
                    self._talk_released_at = time.monotonic()
                self._ptt_frame(cap, np.zeros(FRAME, np.float32), False)
            return
        for ev in cap.endpointer.flush():
            if ev.kind == "start" and cap.utt_accepted is None:
                cap.utt_accepted = True
            elif ev.kind == "end" and cap.utt_accepted and ev.audio is not None:
                with self._lock:
                    request = _Turn(
                        "voice", ev.speech_end + cap.offset, self._epoch, audio=ev.audio, t_detected=time.monotonic()
                    )
                self._enqueue(request)
        cap.utt_accepted = None
        self._hearing = False

    # ---- brain thread -----------------------------------------------------------------------------
    def _until_stopped(self, source: queue.Queue[Any]) -> Iterator[Any]:
        """The items of one of the pipeline's queues, until it stops or a None comes through."""
        while not self._stop_evt.is_set():
            try:
                item = source.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def _brain_main(self) -> None:
        for request in self._until_stopped(self._requests):
            if isinstance(request, _Speculation):
                confirmed = self._think_ahead(request)
                if confirmed is not None:
                    self._take(confirmed)
                continue
            if request.claimed:
                continue  # already answered from its early start
            self._take(request)

    def _take(self, request: _Turn) -> None:
        """Run a turn that was queued (it leaves the queue's count and joins the active turns)."""
        with self._lock:
            self._pending -= 1
            request.claimed = True
            stale = request.epoch != self._epoch
            if not stale:
                self._active.append(request)
                self._idle_brain.clear()
        if stale:
            self._drop_early(request.spec)
            self._update_state()
            return
        try:
            self._run_turn(request)
        finally:
            self._idle_brain.set()

    def _think_ahead(self, spec: _Speculation) -> _Turn | None:
        """Transcribe an utterance that seems over and begin its answer, without a word to the user:
        the first sentence is prepared, then nothing more until the endpointer confirms the end
        (the turn is returned, to be run from here) or the user goes on speaking (all is dropped)."""
        if spec.cancelled.is_set():
            return None
        comps, opts = self.components, self.options
        start = time.monotonic()
        try:
            spec.transcript = comps.asr.transcribe(spec.audio, language=opts.language)
        except Exception as exc:  # the turn itself will try again and report
            log.debug("early transcription failed: %s", exc)
            return None
        spec.done_at = time.monotonic()
        spec.seconds = float(getattr(spec.transcript, "seconds", 0.0) or (spec.done_at - start))
        spec.text = clean_user_text(spec.transcript.text)
        if not spec.text or spec.cancelled.is_set() or self._stop_evt.is_set():
            spec.end_read = True
            return spec.request if spec.confirmed.is_set() else None

        def cancelled() -> bool:
            request = spec.request
            return (
                spec.cancelled.is_set()
                or self._stop_evt.is_set()
                or (request is not None and request.cancel.is_set())
            )

        try:
            from workers.assistant.llm import ChatMessage

            count = comps.llm.count_tokens
            with self._lock:
                budget = max(0, opts.memory_tokens - int(count(spec.text)))
                messages = [*self.conversation.messages(budget=budget, count=count), ChatMessage("user", spec.text)]
            spec.t_llm_start = time.monotonic()
            reading: dict[str, Any] = {}
            if self._turn() is not None and getattr(comps.llm, "reads_turn_end", False):

                def read(probability: float | None) -> None:
                    spec.end_prob, spec.end_read = probability, True

                reading["on_turn_end"] = read  # the words' reading, from the pass over the prompt
            else:
                spec.end_read = True
            stream = comps.llm.stream(
                messages, max_new_tokens=opts.max_new_tokens, temperature=opts.temperature, cancel=cancelled, **reading
            )
            spec.stream = stream
            said, finished = "", False
            deadline = time.monotonic() + EARLY_WAIT_S
            while not spec.confirmed.is_set():
                if cancelled() or time.monotonic() > deadline:
                    self._drop_early(spec)
                    return spec.request if spec.confirmed.is_set() else None
                if finished or _has_sentence(said) or len(spec.pieces) >= EARLY_PIECES:
                    spec.confirmed.wait(0.01)  # enough prepared: wait for the verdict, computing nothing
                    continue
                delta = next(stream, None)
                if delta is None:
                    finished = True
                elif delta:
                    spec.pieces.append((time.monotonic(), delta))
                    said += delta
        except Exception as exc:  # the turn itself will ask again and report
            log.debug("early answer failed: %s", exc)
            self._drop_early(spec)
        finally:
            spec.end_read = True  # whatever happened, the endpointer waits no longer for the reading
        return spec.request if spec.confirmed.is_set() else None

    def _drop_early(self, spec: _Speculation | None) -> None:
        if spec is None or spec.stream is None:
            return
        stream, spec.stream = spec.stream, None
        spec.pieces = []
        close = getattr(stream, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:
                log.debug("closing an early answer failed: %s", exc)

    def _run_turn(self, t: _Turn) -> None:
        comps = self.components
        opts = self.options
        self._update_state()
        stage = "Speech recognition"
        try:
            if t.source != "text":
                audio = t.audio if t.audio is not None else np.zeros(0, np.float32)
                spec = t.spec
                if spec is not None and spec.transcript is not None and not spec.cancelled.is_set():
                    transcript = spec.transcript  # transcribed while the endpointer made sure of the end
                    t.asr_seconds = spec.seconds
                    t.t_asr_done = spec.done_at
                    t.asr_early = True
                else:
                    t.t_asr_start = time.monotonic()
                    transcript = comps.asr.transcribe(audio, language=opts.language)
                    t.t_asr_done = time.monotonic()
                    t.asr_seconds = float(getattr(transcript, "seconds", 0.0) or (t.t_asr_done - t.t_asr_start))
                text = clean_user_text(transcript.text)
                if not text:
                    log.info("No words recognised in %.2f s of audio", len(audio) / SAMPLE_RATE)
                    return
            else:
                text = t.text
            if t.cancel.is_set() or self._stop_evt.is_set():
                return
            with self._lock:
                turn = self.conversation.new_turn(text, source="text" if t.source == "text" else "voice")
                t.turn, t.id = turn, int(turn.id)
            seconds = round(len(t.audio) / SAMPLE_RATE, 2) if t.audio is not None else 0.0
            self._emit("user", turn=t.id, text=text, data={"source": t.source, "seconds": seconds})
            stage = "The language model"
            from workers.assistant.sentences import SentenceSplitter

            splitter = SentenceSplitter(first_clause=FIRST_CLAUSE_CHARS)
            usual_limit = getattr(splitter, "soft_limit", 0)
            if usual_limit:  # the first words are spoken at the first clause break of a long sentence
                splitter.soft_limit = min(usual_limit, FIRST_SOFT_LIMIT)
            spec = t.spec
            early: list[tuple[float, str]] = []
            if spec is not None and spec.stream is not None and spec.text == text:
                stream, early = spec.stream, list(spec.pieces)  # the answer begun while the end was checked
                spec.stream, spec.pieces = None, []
                t.t_llm_start, t.llm_early = spec.t_llm_start, True
            else:
                self._drop_early(spec)
                with self._lock:
                    messages = self.conversation.messages(budget=opts.memory_tokens, count=comps.llm.count_tokens)
                t.t_llm_start = time.monotonic()
                stream = comps.llm.stream(
                    messages, max_new_tokens=opts.max_new_tokens, temperature=opts.temperature, cancel=t.cancel.is_set
                )
            for when, delta in itertools.chain(early, ((None, d) for d in stream)):
                if t.cancel.is_set() or self._stop_evt.is_set():
                    break
                if not delta:
                    continue
                if t.t_first_token is None:
                    t.t_first_token = when or time.monotonic()
                t.reply += delta
                turn.assistant = t.reply
                self._emit("delta", turn=t.id, text=delta)
                for sentence in splitter.feed(delta):
                    self._say(t, sentence)
                    if usual_limit:
                        splitter.soft_limit = usual_limit
                if t.t_first_sentence is None and ends_sentence(getattr(splitter, "pending", "")):
                    # The first sentence is clearly over ("Paris."): speak it now rather than when
                    # the next piece of text proves it (a model may take a while to say more, or stop).
                    first = splitter.pending
                    splitter.reset()
                    self._say(t, first)
                if t.speaks and not t.first_chunk.is_set():
                    self._yield_to_voice(t)
            close = getattr(stream, "close", None)
            if callable(close):
                close()
            if not t.cancel.is_set():
                for sentence in splitter.flush():
                    self._say(t, sentence)
        except Cancelled:
            t.interrupted = True
        except Exception as exc:
            t.error = True
            log.info("%s failed", stage, exc_info=not isinstance(exc, UserError))
            self._emit("error", turn=t.id, text=describe_exception(exc, stage))
        finally:
            self._end_generation(t, comps)

    def _yield_to_voice(self, t: _Turn) -> None:
        """Let the voice have the processor until the first words of the answer are audible.

        A local language model computes its next token only when asked for it; waiting here (at most
        FIRST_CHUNK_WAIT_S) gives the first sentence's synthesis the whole CPU, which brings the first
        audio sooner, and the model catches up while that sentence plays.
        """
        deadline = time.monotonic() + FIRST_CHUNK_WAIT_S
        while not t.first_chunk.is_set() and not t.cancel.is_set() and not self._stop_evt.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            t.first_chunk.wait(min(left, 0.05))

    def _end_generation(self, t: _Turn, comps: Components) -> None:
        t.t_gen_end = time.monotonic()
        if t.turn is not None:
            reply = t.reply.strip()
            t.turn.assistant = reply
            t.turn.interrupted = t.interrupted
            if reply:
                try:
                    t.tokens = int(comps.llm.count_tokens(reply))
                except Exception:
                    t.tokens = len(reply.split())
        with self._lock:
            t.gen_done = True
            speak_end = t.speaks and not t.cancel.is_set() and self._sink_ok
            if not speak_end and not t.play_done:
                t.play_done = True
                t.t_play_end = t.t_gen_end
        if speak_end:
            self._sentences.put(("end", t))
        self._maybe_finish(t)

    def _say(self, t: _Turn, sentence: str) -> None:
        from workers.assistant.sentences import speakable

        if t.t_first_sentence is None:
            t.t_first_sentence = time.monotonic()
        if not self._sink_ok or t.voice_failed:
            return
        text = speakable(sentence)
        if not text:
            return
        t.speaks = True
        self._sentences.put(("say", t, text))

    # ---- voice thread ---------------------------------------------------------------------------------
    def _voice_main(self) -> None:
        for item in self._until_stopped(self._sentences):
            kind, t = item[0], item[1]
            if kind == "end":
                t.first_chunk.set()
                self._audio.put(("end", t))
                continue
            if t.cancel.is_set() or t.voice_failed or not self._sink_ok:
                t.first_chunk.set()
                continue
            try:
                self._synthesize(t, item[2])
            finally:
                t.first_chunk.set()

    def _synthesize(self, t: _Turn, text: str) -> None:
        voice = self.components.voice
        start = time.monotonic()
        try:
            rate = int(voice.sample_rate)
            resampler = StreamResampler(rate, self._sink_rate or rate)
            for chunk in voice.synthesize(text, cancel=t.cancel.is_set):
                if t.cancel.is_set() or self._stop_evt.is_set():
                    break
                samples = as_block(chunk, 1)[:, 0]
                if not len(samples):
                    continue
                if t.t_first_tts is None:
                    t.t_first_tts = time.monotonic()
                t.tts_audio_s += len(samples) / rate
                out = resampler(samples)
                if len(out):
                    self._audio.put(("audio", t, out))
                    t.first_chunk.set()
            tail = resampler.flush()
            if len(tail) and not t.cancel.is_set():
                self._audio.put(("audio", t, tail))
        except Cancelled:
            return
        except Exception as exc:
            t.voice_failed = True
            log.info("Speech synthesis failed", exc_info=not isinstance(exc, UserError))
            self._warn(f"{describe_exception(exc, 'The voice')} The answer goes on as text.")
        finally:
            t.tts_seconds += time.monotonic() - start

    # ---- playback thread -------------------------------------------------------------------------------
    def _open_sink(self) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink.open()
            rate = int(sink.samplerate)
            if rate <= 0:
                raise UserError("The speaker reports no sample rate.")
        except BaseException as exc:
            self._warn(f"{describe_exception(exc, 'Speaker')} Answers are shown as text only.")
            _close_quietly(sink, "speaker")
            self._sink = None
            return
        self._sink_rate = rate
        self._sink_channels = max(1, int(getattr(sink, "channels", 1) or 1))
        self._sink_ok = True

    def _sink_failed(self, exc: BaseException) -> None:
        if not self._sink_ok:
            return
        self._sink_ok = False
        log.info("The speaker failed", exc_info=not isinstance(exc, UserError))
        self._warn(f"{describe_exception(exc, 'Speaker')} Answers are shown as text only.")
        with self._lock:
            speaking = [t for t in self._active if not t.play_done]
        now = time.monotonic()
        for t in speaking:
            t.play_done = True
            t.t_play_end = now
            self._maybe_finish(t)
        self._update_state()

    def _queued_s(self) -> float:
        """Seconds of audio written to the speaker and not yet played."""
        sink = self._sink
        buffered = getattr(sink, "buffered_frames", None) if sink is not None else None
        if isinstance(buffered, int | float) and self._sink_rate:
            return float(buffered) / self._sink_rate
        return max(0.0, self._play_clock - time.monotonic())

    def _play_main(self) -> None:
        for item in self._until_stopped(self._audio):
            kind, t = item[0], item[1]
            if kind == "end":
                self._finish_playback(t)
            elif not t.cancel.is_set() and self._sink_ok:
                self._play(t, item[2])

    def _play(self, t: _Turn, samples: np.ndarray) -> None:
        sink = self._sink
        if sink is None:
            return
        rate = self._sink_rate
        step = max(1, int(rate * PLAY_BLOCK_S))
        for i in range(0, len(samples), step):
            chunk = samples[i : i + step]
            while True:  # keep only PLAY_LEAD_S queued in the speaker
                if t.cancel.is_set() or self._stop_evt.is_set():
                    return
                queued = self._queued_s()
                if queued < PLAY_LEAD_S:
                    break
                t.cancel.wait(min(0.02, queued - PLAY_LEAD_S + 0.002))
            block = convert_channels(chunk[:, None], self._sink_channels)
            with self._play_lock:
                if t.cancel.is_set() or self._stop_evt.is_set() or not self._sink_ok:
                    return
                now = time.monotonic()
                begin = now + self._queued_s()
                try:
                    sink.write(block)
                except BaseException as exc:
                    self._sink_failed(exc)
                    return
                duration = len(chunk) / rate
                self._play_clock = max(now, self._play_clock) + duration
            self.guard.played(begin, begin + duration, rms_dbfs(chunk))
            t.played_s += duration
            if not t.audio_started:
                t.t_first_audio = begin
                t.audio_started = True
                self._update_state()

    def _finish_playback(self, t: _Turn) -> None:
        """The last audio of a turn was written: wait until the speaker played it, then close the turn."""
        while self._sink_ok and not t.cancel.is_set() and not self._stop_evt.is_set():
            queued = self._queued_s()
            if queued <= 0.0:
                break
            t.cancel.wait(min(0.02, queued + 0.001))
        with self._lock:
            if t.play_done:
                return
            t.play_done = True
            t.t_play_end = time.monotonic()
        self._maybe_finish(t)
