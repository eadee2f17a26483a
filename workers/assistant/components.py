"""The voice assistant's models together: what the pipeline runs on, how they are loaded, and the
events it reports (no Qt)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workers.assistant.options import AssistantOptions
from workers.errors import Cancelled, UserError

if TYPE_CHECKING:
    from workers.assistant.asr import Transcriber
    from workers.assistant.llm import LanguageModel
    from workers.assistant.tts import Voice
    from workers.assistant.vad import SileroVAD
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

@dataclass
class AssistantEvent:
    """One thing the pipeline did; see the module docs for the kinds.

    - ``state``: ``text`` is one of ``STATES``;
    - ``level``: ``data = {"dbfs": float, "vad": float}`` (about every 50 ms while the microphone runs);
    - ``user``: ``text`` is the recognised or typed question (a new turn starts), ``data["source"]``
      is "voice", "ptt" or "text";
    - ``delta``: ``text`` is the next piece of the answer;
    - ``done``: the turn is over (generated and played, or interrupted): ``text`` is the whole answer,
      ``data = {"interrupted": bool, "error": bool}``;
    - ``timings``: ``data`` holds ``TIMING_KEYS`` (ms from the end of speech, or from the send of a
      typed question, when that stage was done; None for a stage that did not happen), ``asr_rtf``,
      ``tts_rtf``, ``tokens``, ``tokens_per_s``, ``source``, ``interrupted``, ``asr_early`` /
      ``llm_early`` (transcribed / answer begun before the end of the turn was certain, so ``asr_ms``
      and ``first_token_ms`` may be below ``speech_end_to_vad_ms``), ``turn_prob``,
      ``turn_words_unfinished`` and ``turn_text_prob`` (the voice's and the words' verdicts on the end,
      and the language model's probability that the sentence ended there) and ``stages`` (each stage's own
      milliseconds: endpoint, asr, llm_first_token, first_sentence, tts_first_chunk, playback_start);
    - ``barge_in``: the user spoke over the assistant (``turn`` is the interrupted turn);
    - ``echo``: a sound the echo guard did not take as a turn (``data["seconds"]``);
    - ``warning`` / ``error``: ``text`` is a sentence for the user.
    """

    kind: str
    turn: int = 0
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Components:
    """The loaded models one pipeline uses."""

    vad: SileroVAD
    asr: Transcriber
    llm: LanguageModel
    voice: Voice
    #: Learned end-of-turn detection (``turn(audio) -> probability``), or None: silence decides.
    turn: Any = None

    def describe(self) -> dict[str, str]:
        """Names for the UI: {"asr", "llm", "voice", "note"}."""
        return {
            "asr": str(getattr(self.asr, "name", "") or ""),
            "llm": str(getattr(self.llm, "name", "") or ""),
            "voice": str(getattr(self.voice, "name", "") or ""),
            "note": str(getattr(self.llm, "note", "") or ""),
        }

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # releasing is best effort
                log.warning("Closing the language model failed: %s", exc)


#: Which options each component is built from (a change reloads only that component).
COMPONENT_OPTIONS: dict[str, tuple[str, ...]] = {
    "asr": ("asr_model",),
    "llm": ("llm_backend", "llm_model", "server_url", "server_model"),
    "voice": ("tts_engine", "voice", "speed"),
}


def changed_components(old: AssistantOptions, new: AssistantOptions) -> set[str]:
    """The components ("asr", "llm", "voice") that must be reloaded to go from ``old`` to ``new``."""
    parts = set()
    for part, names in COMPONENT_OPTIONS.items():
        if part == "llm" and old.llm_backend == new.llm_backend != "openai":
            names = tuple(n for n in names if not n.startswith("server_"))  # the server is not in use
        if any(getattr(old, n) != getattr(new, n) for n in names):
            parts.add(part)
    return parts


def load_asr(options: AssistantOptions, *, store: ModelStore | None = None, device: str = "auto") -> Transcriber:
    from workers.assistant.asr import Transcriber

    return Transcriber(options.asr_model, store=store, device=device)


def load_voice_for(options: AssistantOptions, *, store: ModelStore | None = None, device: str = "auto") -> Voice:
    from workers.assistant.tts import load_voice

    return load_voice(options.tts_engine, options.voice, store=store, speed=options.speed, device=device)


def load_llm(
    options: AssistantOptions,
    *,
    store: ModelStore | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    status: Callable[[str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> LanguageModel:
    from workers.assistant.llm import load_language_model

    return load_language_model(options, store=store, progress=progress, status=status, cancel=cancel, device=device)


def load_components(
    options: AssistantOptions,
    *,
    store: ModelStore | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    status: Callable[[str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    reuse: Components | None = None,
    parts: set[str] | None = None,
) -> Components:
    """Load the VAD, the speech recogniser, the language model and the voice for ``options``.

    With ``reuse``, only the components named in ``parts`` are loaded anew and the others are taken
    from ``reuse`` (the caller closes the replaced language model). Raises :class:`UserError` with a
    sentence when a model is missing or broken, :class:`Cancelled` when ``cancel`` turns true.
    """
    say = status or (lambda _text: None)
    want = {"vad", "asr", "llm", "voice"} if reuse is None else set(parts or ())

    def check() -> None:
        if cancel is not None and cancel():
            raise Cancelled()

    if reuse is not None and "vad" not in want:
        vad = reuse.vad
    else:
        from workers.assistant.vad import SileroVAD

        say("Loading voice activity detection…")
        vad = SileroVAD(store=store)
    turn = reuse.turn if reuse is not None and "vad" not in want else _load_turn(store)
    check()
    if reuse is not None and "asr" not in want:
        asr = reuse.asr
    else:
        say("Loading speech recognition…")
        asr = load_asr(options, store=store, device=device)
    check()
    if reuse is not None and "llm" not in want:
        llm = reuse.llm
    else:
        say("Loading the language model…")
        llm = load_llm(options, store=store, device=device, progress=progress, status=status, cancel=cancel)
    try:
        check()
        if reuse is not None and "voice" not in want:
            voice = reuse.voice
        else:
            say("Loading the voice…")
            voice = load_voice_for(options, store=store, device=device)
        check()
    except BaseException:
        if reuse is None or llm is not reuse.llm:
            Components(vad, asr, llm, None).close()  # type: ignore[arg-type]
        raise
    # The models were loaded and warmed up on this thread; the pipeline's threads use them. This thread's
    # OpenMP workers would otherwise stay and slow every parallel operation of those (workers/media/openmp.py).
    from workers.media.openmp import release_openmp_threads

    release_openmp_threads()
    return Components(vad, asr, llm, voice, turn)


def _load_turn(store: Any) -> Any:
    """The end-of-turn model (small: loaded with the voice detection, so that switching learned
    turn detection on and off needs no reload); None when it is missing (logged: silence decides)."""
    from workers.assistant.turn import load_turn_detector

    try:
        return load_turn_detector(store)
    except UserError as exc:
        log.warning("%s", exc)
        return None
