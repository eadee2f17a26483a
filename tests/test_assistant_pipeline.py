"""The voice assistant's live pipeline, end to end with real models and fake devices.

A fake microphone (:class:`~workers.media.fakes.EchoRoomMicrophone`) plays questions spoken by the
shipped Piper voice; Silero VAD finds the turns, the shipped Whisper tiny.en transcribes them, a
language model streams the answer (a tiny random transformers model built by the test, a fake
OpenAI-compatible server on 127.0.0.1, or the shipped Gemma), Piper speaks it and a paced fake speaker
(:class:`~workers.media.fakes.PacedSpeaker`) records what came out and when. Barge-in and the echo
guard are measured on that timeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assistant_fixtures import (
    QUESTIONS,
    question_wav,
    shipped_store,
    shipped_transcriber,
    shipped_voice,
    speech,
    speech_bounds,
    words,
)
from llm_fixtures import FakeOpenAIServer, gemma_llm, gemma_store_dir, tiny_chat_llm_dir  # noqa: F401

from workers.assistant.llm import load_language_model
from workers.assistant.options import AssistantOptions
from workers.assistant.pipeline import TIMING_KEYS, AssistantEvent, Components, EchoGuard, VoicePipeline
from workers.assistant.vad import SileroVAD
from workers.errors import UserError
from workers.media.audio import SILENCE_DBFS, AudioOutput, iter_blocks, rms_dbfs, test_tone
from workers.media.fakes import EchoRoomMicrophone, FailingSink, MemorySink, PacedSpeaker, WavMicrophone

#: Generous waits: the CI machine has two cores shared by everything.
WAIT = 40.0


class Live:
    """A started pipeline between an echo-room microphone and a paced speaker, with its events."""

    def __init__(
        self,
        components: Components,
        options: AssistantOptions | None = None,
        *,
        gain: float = 0.0,
        delay: float = 0.06,
        source: Any = "echo-room",
        sink: Any = "paced",
    ) -> None:
        self.speaker = PacedSpeaker(48000, buffer_seconds=0.1) if sink == "paced" else sink
        speaker = self.speaker if isinstance(self.speaker, PacedSpeaker) else None
        self.mic = EchoRoomMicrophone(speaker, samplerate=48000, blocksize=960, gain=gain, delay=delay)
        self.events: list[tuple[float, AssistantEvent]] = []
        self._cond = threading.Condition()
        self.pipeline = VoicePipeline(
            components,
            options or AssistantOptions(),
            source=self.mic if source == "echo-room" else source,
            sink=self.speaker,
            on_event=self._on_event,
        )

    def _on_event(self, event: AssistantEvent) -> None:
        with self._cond:
            self.events.append((time.monotonic(), event))
            self._cond.notify_all()

    def __enter__(self) -> Live:
        self.pipeline.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.stop()

    # ---- looking at events ----
    def of(self, kind: str) -> list[AssistantEvent]:
        with self._cond:
            return [e for _, e in self.events if e.kind == kind]

    def times(self, kind: str) -> list[float]:
        with self._cond:
            return [t for t, e in self.events if e.kind == kind]

    def wait(self, test: Callable[[], Any], timeout: float = WAIT, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = test()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(e.kind, e.text) for _, e in self.events if e.kind not in ("level", "delta")]
                    raise AssertionError(f"timed out waiting for {what or test}; events: {seen}")
                self._cond.wait(min(left, 0.05))

    def wait_kind(self, kind: str, count: int = 1, timeout: float = WAIT) -> AssistantEvent:
        return self.wait(lambda: len(self.of(kind)) >= count and self.of(kind)[count - 1], timeout, f"{count} {kind}")

    def wait_state(self, state: str, timeout: float = WAIT) -> None:
        self.wait(lambda: self.pipeline.state == state, timeout, f"state {state}")

    def say(self, text: str, gain: float = 0.7) -> float:
        """Speak ``text`` into the microphone now; returns when the voice is first heard (monotonic)."""
        audio, rate = speech(text)
        first = int(np.flatnonzero(np.abs(audio) > 0.02)[0])
        return self.mic.say(audio * gain, rate) + first / rate


def assert_turn(live: Live, turn: int, question: str | None) -> tuple[AssistantEvent, AssistantEvent]:
    """The turn's events are whole: its user text (word for word), deltas that add up to the answer,
    and timings with every stage measured from the end of speech."""
    user = live.wait(lambda: next((e for e in live.of("user") if e.turn == turn), None), what=f"user {turn}")
    if question is not None:
        assert words(user.text) == words(question)
    done = live.wait(lambda: next((e for e in live.of("done") if e.turn == turn), None), what=f"done {turn}")
    deltas = "".join(e.text for e in live.of("delta") if e.turn == turn)
    assert deltas.strip() == done.text
    timings = live.wait(lambda: next((e for e in live.of("timings") if e.turn == turn), None), what="timings")
    assert set(TIMING_KEYS) <= set(timings.data)
    return done, timings


def components(llm: Any) -> Components:
    return Components(SileroVAD(store=shipped_store()), shipped_transcriber(), llm, shipped_voice())


# ---- the fakes and the guard --------------------------------------------------------------------------


def test_paced_speaker_plays_at_real_time_and_clear_drops_the_rest() -> None:
    speaker = PacedSpeaker(16000, channels=2, buffer_seconds=0.05)
    tone = test_tone(16000, 0.6, 300.0, amplitude=0.5)
    with speaker:
        started = time.monotonic()
        for block in iter_blocks(tone, 320):  # 20 ms blocks
            speaker.write(block)
            assert speaker.buffered_frames <= speaker.capacity + 320
        # Writing 0.6 s through a 50 ms buffer takes about 0.55 s: the speaker sets the pace.
        assert time.monotonic() - started >= 0.45
        dropped = speaker.clear()
        assert 0 < dropped <= speaker.capacity + 320
        assert speaker.drain(1.0)
        played = speaker.played
    assert played.shape[1] == 2
    (start, _end), *more = speaker.sound_intervals()
    assert not more
    # Every frame written was played, but those dropped (the speaker may have run dry for a moment on a
    # busy machine, which leaves a short silent gap, so count loud frames rather than the span).
    loud = np.count_nonzero(np.abs(played).max(axis=1) > 0.01)
    assert loud == pytest.approx(9600 - dropped, rel=0.03)
    assert speaker.clears and speaker.clears[-1][1] == dropped
    # What was played is on the timeline: read back around the middle of the sound.
    middle = speaker.played_between(start + 0.1, start + 0.2)
    assert len(middle) == 1600 and rms_dbfs(middle) == pytest.approx(rms_dbfs(tone), abs=1.0)


def test_echo_room_hears_the_user_and_the_speaker_late() -> None:
    speaker = PacedSpeaker(48000)
    mic = EchoRoomMicrophone(speaker, samplerate=16000, blocksize=320, gain=0.5, delay=0.1, noise_dbfs=None)
    tone = test_tone(48000, 0.3, 440.0, amplitude=0.4)
    with speaker, mic:
        beep = test_tone(16000, 0.2, 1000.0, amplitude=0.3)[:, 0]
        said = mic.say(beep, 16000, at=mic.started_at + 0.5)
        played_from = time.monotonic()
        speaker.write(tone)
        blocks = []
        while time.monotonic() - mic.started_at < 1.0:
            item = mic.read(0.5)
            assert item is not None
            blocks.append(item.payload[:, 0])
    heard = np.concatenate(blocks)
    assert said == pytest.approx(mic.started_at + 0.5, abs=1e-3)

    def level(t0: float, t1: float) -> float:
        a, b = (round((t - mic.started_at) * 16000) for t in (t0, t1))
        return rms_dbfs(heard[a:b])

    # The user's beep where it was scheduled, the speaker's tone (halved) 100 ms after it played.
    assert level(said + 0.02, said + 0.18) == pytest.approx(rms_dbfs(beep), abs=1.5)
    echo_at = speaker.sound_intervals()[0][0] + 0.1
    assert echo_at == pytest.approx(played_from + 0.1, abs=0.05)
    assert level(echo_at + 0.03, echo_at + 0.2) == pytest.approx(rms_dbfs(tone) - 6.0, abs=1.5)
    assert level(mic.started_at + 0.01, echo_at - 0.02) < -80  # silence before (no noise floor asked)


def test_audio_output_clear_drops_what_waits() -> None:
    out = AudioOutput(samplerate=16000, blocksize=160, channels=1, buffer_seconds=1.0)
    out._stream = object()  # stands in for the PortAudio stream: only the buffer is exercised
    out.write(np.full(1600, 0.5, np.float32))
    out.write(np.full(800, 0.5, np.float32))
    assert out.buffered_frames == 2400
    assert out.clear() == 2400
    assert out.buffered_frames == 0 and out.drain(0.01)
    played = np.ones((160, 1), np.float32)
    out._callback(played, 160, None, None)
    assert not played.any()  # nothing left to play: silence
    sink = MemorySink(16000)
    with sink:
        sink.write(np.ones(10, np.float32))
        assert sink.clear() == 0 and sink.clears == 1 and sink.frames == 10


def test_echo_guard_learns_the_coupling_and_passes_a_louder_user() -> None:
    guard = EchoGuard(margin_db=5.0, window_s=0.3, tail_s=0.25)
    t = 100.0
    assert not guard.active(t) and guard.coupling_db == 0.0  # until it learns: the echo may be as loud
    rng = np.random.default_rng(1)
    for k in range(60):  # 2 s of speech played at -20..-12 dBFS, heard 14 dB quieter 64 ms later
        level = -16.0 + 4.0 * np.sin(k / 3.0)
        guard.played(t + k * 0.032, t + (k + 1) * 0.032, level)
        if k >= 2:
            echo = -16.0 + 4.0 * np.sin((k - 2) / 3.0) - 14.0 + rng.normal(0, 1.0)
            assert guard.observe(t + (k + 1) * 0.032, echo) < 0
    learnt = guard.coupling_db
    assert learnt == pytest.approx(-14.0, abs=4.0)
    now = t + 60 * 0.032
    assert guard.active(now) and guard.active(now + 0.2) and not guard.active(now + 0.3)
    # The user, about as loud as the played voice, is clearly not the echo, and does not teach the guard.
    for _ in range(20):
        assert guard.observe(now, -16.0) > 5.0
    assert guard.coupling_db == learnt
    assert guard.observe(now, -31.0) < 0  # the echo's level
    guard.cut(now - 0.5)
    assert guard.playing_until == pytest.approx(now - 0.5)
    assert guard.reference_db(now + 0.5) == SILENCE_DBFS
    assert guard.observe(now + 0.5, -60.0) > 0  # nothing played recently: nothing to mistake for an echo


# ---- language models for the tests ----------------------------------------------------------------------

SHORT_ANSWER = "Paris is the capital of France. It lies on the river Seine."
LONG_ANSWER = (
    "Paris is the capital of France. It lies on the river Seine in the north of the country. "
    "Millions of people visit its museums, its parks and its old streets every year. "
    "The Eiffel Tower was built for a world fair and is now its best known sight."
)


class Served:
    """A fake OpenAI-compatible server on 127.0.0.1 and the studio's client for it (the "openai" backend)."""

    def __init__(self, answers: Any, chunk_delay: float = 0.01) -> None:
        self.server = FakeOpenAIServer(answers, chunk_delay=chunk_delay).start()
        options = AssistantOptions(llm_backend="openai", server_url=self.server.url)
        self.llm = load_language_model(options)

    def asked(self, n: int) -> list[dict[str, Any]]:
        """The messages of the ``n``-th chat request (0-based)."""
        return self.server.chat_requests[n]["body"]["messages"]


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def make(answers: Any = SHORT_ANSWER, chunk_delay: float = 0.01) -> Served:
        served = Served(answers, chunk_delay)
        made.append(served)
        return served

    yield make
    for served in made:
        served.server.stop()


# ---- a spoken turn, end to end --------------------------------------------------------------------------


def test_spoken_question_gets_a_spoken_streamed_answer(serve: Callable[..., Served]) -> None:
    answer = "Paris is the capital of France. It is known for its museums and its old streets."
    served = serve(answer)
    with Live(components(served.llm)) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])
        done, timings = assert_turn(live, 1, QUESTIONS[0])
        assert done.text == answer and done.data["interrupted"] is False
        assert len(live.of("delta")) > 5  # streamed piece by piece
        # The answer was spoken: a few seconds of sound came out of the speaker.
        assert sum(b - a for a, b in live.speaker.sound_intervals()) > 2.5
        t = timings.data
        assert t["source"] == "voice" and t["tokens"] > 10
        for key in TIMING_KEYS:
            assert t[key] is not None and t[key] >= 0, key
        # The words were transcribed (and the answer begun) while the endpointer made sure of the end;
        # nothing was said before that.
        order = [t["asr_ms"], t["first_token_ms"], t["first_audio_ms"], t["total_ms"]]
        assert order == sorted(order)
        assert t["speech_end_to_vad_ms"] < t["first_audio_ms"]
        assert 0 < t["asr_rtf"] < 1.0
        # The state went round: listening, hearing, thinking, speaking, listening.
        live.wait_state("listening")
        assert [e.text for e in live.of("state")] == ["listening", "hearing", "thinking", "speaking", "listening"]
        # Levels came while listening, at most every ~30 ms.
        levels = live.times("level")
        assert len(levels) > 20 and min(np.diff(levels)) > 0.03
        assert all(-121 <= e.data["dbfs"] <= 0 and 0 <= e.data["vad"] <= 1 for e in live.of("level"))
        turn = live.pipeline.conversation.turns[0]
        assert turn.assistant == answer and turn.timings["total_ms"] == t["total_ms"]
        assert served.asked(0)[-1] == {"role": "user", "content": "What is the capital of France?"}
        print("timings:", {k: t[k] for k in TIMING_KEYS}, t["stages"])


def test_spoken_question_answered_by_a_tiny_transformers_model(tiny_chat_llm_dir: Path) -> None:  # noqa: F811
    options = AssistantOptions(llm_backend="transformers", llm_model=str(tiny_chat_llm_dir), max_new_tokens=24)
    llm = load_language_model(options, device="cpu")
    with Live(components(llm), options) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[1])
        done, timings = assert_turn(live, 1, QUESTIONS[1])
        assert done.text and not done.data["interrupted"]  # random words, but words
        assert timings.data["tokens"] > 5 and timings.data["tokens_per_s"] > 0
        if timings.data["first_audio_ms"] is not None:  # something speakable came out
            assert live.speaker.sound_intervals()


def test_spoken_question_answered_by_the_shipped_gemma(gemma_llm: Any) -> None:  # noqa: F811
    """The shipped defaults end to end: Silero, Whisper tiny.en, Gemma-3-270M (converted once), Piper."""
    options = AssistantOptions(max_new_tokens=40)
    with Live(components(gemma_llm), options) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])
        done, timings = assert_turn(live, 1, QUESTIONS[0])
        assert done.text.strip()
        t = timings.data
        assert t["first_token_ms"] is not None and t["tokens"] > 0
        print("shipped defaults:", {k: t[k] for k in TIMING_KEYS}, t["stages"], repr(done.text))


def test_a_pause_inside_a_question_drops_the_answer_begun_early(serve: Callable[..., Served]) -> None:
    """Once a short silence follows speech, the words are transcribed and the answer begun in the
    background; when the user goes on after the pause, that is dropped unheard and the whole question
    is one turn."""
    served = serve(lambda messages: f"You asked: {messages[-1]['content']}")
    first, rate = speech("What is the capital")
    second, _ = speech("of France?")
    first = first[: round((speech_bounds(first, rate)[1] + 0.03) * rate)]  # no trailing silence
    second = second[round(max(0.0, speech_bounds(second, rate)[0] - 0.08) * rate) :]
    question = np.concatenate([first, np.zeros(round(0.9 * rate), np.float32), second])
    with Live(components(served.llm), AssistantOptions(min_silence_ms=1500)) as live:
        live.wait_state("listening")
        live.mic.say(question * 0.7, rate)
        done, timings = assert_turn(live, 1, None)
        user = live.of("user")[0].text
        assert words(user)[:4] == ["what", "is", "the", "capital"] and words(user)[-1] == "france"
        assert done.text == f"You asked: {user}"
        assert len(live.of("user")) == 1 and timings.data["asr_early"] and timings.data["llm_early"]
        asked = [r["body"]["messages"][-1]["content"] for r in served.server.chat_requests]
        assert asked[-1] == user
        # The half question was answered in the background (then dropped), never shown or spoken.
        assert len(asked) >= 2 and words(asked[0]) == ["what", "is", "the", "capital"]
        assert all(e.turn == 1 for e in live.of("delta"))


# ---- barge-in and the echo guard --------------------------------------------------------------------------


@pytest.mark.parametrize("headset", [True, False], ids=["headset", "speakers"])
def test_speaking_over_the_assistant_stops_it_within_300_ms(serve: Callable[..., Served], headset: bool) -> None:
    """Barge-in: the user's voice during the answer silences the speaker and stops the answer's stream
    within 300 ms of the onset of the words (measured on the speaker's and the microphone's timelines),
    and what the user says becomes the next turn. Over speakers the room feeds the answer back into the
    microphone at a quarter of its level and the user is heard over it."""
    served = serve([LONG_ANSWER, SHORT_ANSWER], chunk_delay=0.2)  # still streaming while it speaks
    with Live(components(served.llm), AssistantOptions(headset=headset), gain=0.0 if headset else 0.25) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])
        live.wait_kind("user")
        live.wait(lambda: live.speaker.sound_intervals(), what="the answer to be heard")
        time.sleep(0.8)
        onset = live.say(QUESTIONS[1], gain=0.8)
        barge = live.wait_kind("barge_in")
        assert barge.turn == 1
        done = live.wait(lambda: next((e for e in live.of("done") if e.turn == 1), None))
        assert done.data["interrupted"] is True and len(done.text) < len(LONG_ANSWER)
        # The answer's last sound (the next answer cannot start within a second: the question lasts two).
        stopped = max(b for a, b in live.speaker.sound_intervals(gap=0.05) if a < onset + 1.0)
        last_piece = max(t for t, e in live.events if e.kind == "delta" and e.turn == 1)
        assert stopped - onset < 0.3 + 0.1, f"the speaker went on for {(stopped - onset) * 1000:.0f} ms"
        assert last_piece - onset < 0.3 + 0.1, f"the answer went on for {(last_piece - onset) * 1000:.0f} ms"
        # The words spoken over the answer are the next question (over speakers, the answer's echo
        # still under the user's first syllable may change or add a word there).
        second = live.wait_kind("user", 2)
        heard, asked = words(second.text), words(QUESTIONS[1])
        if headset:
            assert heard == asked
        else:
            assert heard[-(len(asked) - 1) :] == asked[1:] and len(heard) <= len(asked) + 2, heard
        assert_turn(live, 2, None)
        assert live.pipeline.conversation.turns[0].interrupted
        # The first answer's stream was dropped: the server was not read to its end.
        assert served.server.chunks_sent < len(LONG_ANSWER.split()) + len(SHORT_ANSWER.split())
        print(f"barge-in: silent {(stopped - onset) * 1000:.0f} ms after the onset of the user's voice")


@pytest.mark.parametrize("gain", [0.5, 2.0], ids=["quieter", "louder"])
def test_the_assistant_does_not_answer_its_own_voice_over_speakers(serve: Callable[..., Served], gain: float) -> None:
    """Echo guard: over speakers (headset off) the answer comes back into the microphone 80 ms late,
    half as loud or (a loud speaker next to the microphone) twice as loud as it was played; it starts
    no turn and no barge-in, and the answer is played to its end."""
    served = serve(SHORT_ANSWER)
    with Live(components(served.llm), AssistantOptions(headset=False), gain=gain, delay=0.08) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])
        done = live.wait_kind("done")
        live.wait_state("listening")
        time.sleep(1.0)  # the echo's tail has died away
        assert done.data["interrupted"] is False
        assert len(live.of("user")) == 1 and not live.of("barge_in")
        assert live.of("echo"), "the echo was heard as speech and held back"
        assert len(served.server.chat_requests) == 1
        # Afterwards the microphone is live again: the next question is taken.
        live.say(QUESTIONS[2])
        assert words(live.wait_kind("user", 2).text) == words(QUESTIONS[2])


def test_with_a_headset_the_microphone_stays_live_while_speaking(serve: Callable[..., Served]) -> None:
    """headset=True: nothing is held back, so the same echo (speakers used as if they were headphones)
    is taken as the user talking over the assistant."""
    served = serve(SHORT_ANSWER)
    with Live(components(served.llm), AssistantOptions(headset=True), gain=0.5, delay=0.08) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])
        live.wait_kind("barge_in")
        assert live.wait_kind("done").data["interrupted"] is True
        assert not live.of("echo")


# ---- other ways in and out --------------------------------------------------------------------------------


class BrokenMicrophone:
    """A microphone that cannot be opened (unplugged, or no sound system)."""

    samplerate = 48000
    channels = 1
    blocksize = 1024
    ended = False

    def open(self) -> None:
        raise UserError("The default microphone could not be opened (Device unavailable).")

    def read(self, timeout: float | None = None) -> None:
        return None

    def close(self) -> None:
        pass


def test_typed_questions_without_a_microphone(serve: Callable[..., Served]) -> None:
    served = serve([SHORT_ANSWER, "An hour has sixty minutes."])
    sink = MemorySink(22050)
    with Live(components(served.llm), source=BrokenMicrophone(), sink=sink) as live:
        warning = live.wait_kind("warning")
        assert "microphone could not be opened" in warning.text and "typed questions" in warning.text
        live.wait_state("idle")
        live.pipeline.submit_text("  What is the capital   of France? ")
        user = live.wait_kind("user")
        assert user.text == "What is the capital of France?" and user.data["source"] == "text"
        done, timings = assert_turn(live, 1, QUESTIONS[0])
        assert done.text == SHORT_ANSWER
        assert sink.frames > 2 * 22050  # spoken, at the sink's own rate
        t = timings.data
        assert t["source"] == "text" and t["asr_ms"] is None and t["speech_end_to_vad_ms"] is None
        assert 0 < t["first_token_ms"] <= t["first_audio_ms"] <= t["total_ms"]
        live.wait_state("idle")
        assert [e.text for e in live.of("state")] == ["idle", "thinking", "speaking", "idle"]
        assert not live.of("level")
        # The conversation is remembered: the second question is asked with the first turn before it.
        live.pipeline.submit_text(QUESTIONS[1])
        assert_turn(live, 2, QUESTIONS[1])
        assert [m["content"] for m in served.asked(1)][-3:] == [QUESTIONS[0], SHORT_ANSWER, QUESTIONS[1]]


def test_push_to_talk(serve: Callable[..., Served]) -> None:
    served = serve(SHORT_ANSWER)
    with Live(components(served.llm), AssistantOptions(mode="ptt")) as live:
        live.wait_state("listening")
        live.say(QUESTIONS[0])  # not holding the button: nothing is taken
        time.sleep(3.0)
        assert not live.of("user") and live.pipeline.state == "listening"
        live.pipeline.set_talk(True)
        live.wait_state("hearing")
        audio, rate = speech(QUESTIONS[1])
        live.say(QUESTIONS[1])
        time.sleep(len(audio) / rate + 0.2)
        released = time.monotonic()
        live.pipeline.set_talk(False)
        user = live.wait_kind("user")
        assert words(user.text) == words(QUESTIONS[1]) and user.data["source"] == "ptt"
        _, timings = assert_turn(live, 1, QUESTIONS[1])
        # Timings count from the release of the button.
        assert timings.data["first_token_ms"] < (time.monotonic() - released) * 1000
        # Holding the button in silence sends nothing and says so.
        live.wait_state("listening")
        live.pipeline.set_talk(True)
        time.sleep(0.5)
        live.pipeline.set_talk(False)
        warning = live.wait_kind("warning")
        assert "No speech was heard" in warning.text
        assert len(live.of("user")) == 1


def test_the_stop_button_silences_the_answer_at_once(serve: Callable[..., Served]) -> None:
    served = serve([LONG_ANSWER, SHORT_ANSWER], chunk_delay=0.1)
    with Live(components(served.llm), source=None) as live:
        live.pipeline.submit_text(QUESTIONS[0])
        live.wait(lambda: live.speaker.sound_intervals(), what="the answer to be heard")
        time.sleep(0.6)
        pressed = time.monotonic()
        live.pipeline.interrupt()
        done = live.wait_kind("done")
        assert done.data["interrupted"] is True and done.text and len(done.text) < len(LONG_ANSWER)
        assert max(b for _, b in live.speaker.sound_intervals(gap=0.05)) - pressed < 0.1
        assert max(t for t, e in live.events if e.kind == "delta") - pressed < 0.1
        live.wait_state("idle")
        assert live.pipeline.conversation.turns[0].interrupted
        # The assistant takes the next question as usual.
        live.pipeline.submit_text(QUESTIONS[1])
        done2, _ = assert_turn(live, 2, QUESTIONS[1])
        assert done2.text == SHORT_ANSWER and done2.data["interrupted"] is False


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (8000, 1)])
def test_a_sound_file_at_an_odd_rate_as_the_microphone(
    tmp_path: Path, serve: Callable[..., Served], rate: int, channels: int
) -> None:
    served = serve(SHORT_ANSWER)
    path = question_wav(tmp_path, QUESTIONS[1], rate, channels)
    mic = WavMicrophone(path, samplerate=None, channels=None, blocksize=1024)
    assert (mic.samplerate, mic.channels) == (rate, channels)
    with Live(components(served.llm), source=mic, sink=None) as live:
        user = live.wait_kind("user")
        assert words(user.text) == words(QUESTIONS[1])
        _, timings = assert_turn(live, 1, QUESTIONS[1])
        assert timings.data["first_audio_ms"] is None  # no speaker: text only
        live.wait_state("idle")  # the file ended and was closed
        assert mic.close_count == 1


def test_a_failing_speaker_leaves_a_warning_and_text_answers(serve: Callable[..., Served]) -> None:
    served = serve(SHORT_ANSWER)
    sink = FailingSink(22050, fail_after=5)
    with Live(components(served.llm), source=None, sink=sink) as live:
        live.pipeline.submit_text(QUESTIONS[0])
        warning = live.wait_kind("warning")
        assert warning.text.startswith("Speaker: The speaker stopped taking audio") and "text only" in warning.text
        assert live.wait_kind("done").text == SHORT_ANSWER and not live.of("error")
        live.pipeline.submit_text(QUESTIONS[1])
        assert live.wait_kind("done", 2).text == SHORT_ANSWER
        assert sink.writes == 6  # nothing more was sent to the broken speaker
        assert not live.pipeline.speaker_ok


def test_a_language_model_server_that_went_away_is_an_error_sentence(serve: Callable[..., Served]) -> None:
    served = serve(SHORT_ANSWER)
    served.server.stop()  # Ollama was closed after the assistant connected
    with Live(components(served.llm), source=None, sink=None) as live:
        live.pipeline.submit_text(QUESTIONS[0])
        error = live.wait_kind("error")
        assert error.text.startswith("The language model: No language model server answers at")
        assert live.wait_kind("done").data["error"] is True
        live.wait_state("idle")


def test_stop_joins_every_thread_promptly(serve: Callable[..., Served]) -> None:
    served = serve(LONG_ANSWER, chunk_delay=0.05)
    live = Live(components(served.llm))
    live.pipeline.start()
    live.wait_state("listening")
    live.pipeline.submit_text(QUESTIONS[0])
    live.wait(lambda: live.speaker.sound_intervals(), what="the answer to be heard")
    started = time.monotonic()
    live.pipeline.stop(timeout=3.0)
    assert time.monotonic() - started < 1.0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("assistant-")]
    assert live.mic.close_count == 1 and not live.speaker.is_open
    assert live.pipeline.state == "stopped" and live.of("state")[-1].text == "stopped"
    live.pipeline.stop()  # twice is harmless
