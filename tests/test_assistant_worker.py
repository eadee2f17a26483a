"""The assistant's Qt worker: models loaded on its thread, events to the UI through a queued signal
(never a flood), the microphone and the speaker from factories, live settings, conversations."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assistant_fixtures import QUESTIONS, shipped_store, shipped_transcriber, shipped_voice, speech, words
from llm_fixtures import FakeOpenAIServer
from PySide6.QtCore import QObject, QThread, Slot
from PySide6.QtWidgets import QApplication

from workers.assistant.conversation import Conversation
from workers.assistant.llm import load_language_model
from workers.assistant.options import AssistantOptions
from workers.assistant.pipeline import AssistantEvent, Components
from workers.assistant.vad import SileroVAD
from workers.assistant.worker import AssistantWorker
from workers.errors import UserError
from workers.media.fakes import EchoRoomMicrophone, MemorySink, PacedSpeaker

WAIT = 40000
ANSWER = "Paris is the capital of France. It lies on the river Seine."


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer([ANSWER, "An hour has sixty minutes."], chunk_delay=0.01).start()
    yield srv
    srv.stop()


def served_options(server: FakeOpenAIServer, **kw: Any) -> AssistantOptions:
    return AssistantOptions(llm_backend="openai", server_url=server.url, **kw)


class Factory:
    """Builds the components from the session's loaded models; counts the calls and what they built."""

    def __init__(self) -> None:
        self.calls: list[AssistantOptions] = []
        self.statuses: list[str] = []

    def __call__(self, options: AssistantOptions, **kw: Any) -> Components:
        self.calls.append(options)
        if kw.get("status"):
            kw["status"]("Loading the test models…")
        llm = load_language_model(options)
        return Components(SileroVAD(store=shipped_store()), shipped_transcriber(), llm, shipped_voice())


class Events(QObject):
    """Collects the worker's events in the UI thread (like a dock's slot), with the time and the thread
    they arrived on."""

    def __init__(self, worker: AssistantWorker) -> None:
        super().__init__()
        self.items: list[tuple[float, AssistantEvent]] = []
        self.threads: set[Any] = set()
        self.loaded: list[dict[str, str]] = []
        self.statuses: list[str] = []
        self.errors: list[str] = []
        worker.event.connect(self._on_event)
        worker.loaded.connect(self._on_loaded)
        worker.status.connect(self._on_status)
        worker.error.connect(self._on_error)

    @Slot(dict)
    def _on_loaded(self, names: dict[str, str]) -> None:
        self.loaded.append(names)

    @Slot(str)
    def _on_status(self, text: str) -> None:
        self.statuses.append(text)

    @Slot(str)
    def _on_error(self, text: str) -> None:
        self.errors.append(text)

    @Slot(object)
    def _on_event(self, event: AssistantEvent) -> None:
        self.items.append((time.monotonic(), event))
        self.threads.add(QThread.currentThread())

    def of(self, kind: str) -> list[AssistantEvent]:
        return [e for _, e in self.items if e.kind == kind]

    def times(self, kind: str) -> list[float]:
        return [t for t, e in self.items if e.kind == kind]

    def state(self) -> str:
        states = self.of("state")
        return states[-1].text if states else ""


def start(qtbot: Any, worker: AssistantWorker) -> Events:
    events = Events(worker)
    worker.start()
    qtbot.waitUntil(lambda: bool(events.loaded or events.errors), timeout=WAIT)
    assert not events.errors
    assert set(events.loaded[0]) == {"asr", "llm", "voice", "note"}
    return events


def stop(worker: AssistantWorker) -> None:
    assert worker.stop(5000)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("assistant-")]


# ---- a spoken question through the worker ---------------------------------------------------------------


def test_worker_answers_a_spoken_question_through_its_signal(qtbot: Any, server: FakeOpenAIServer) -> None:
    speaker = PacedSpeaker(48000)
    mic = EchoRoomMicrophone(speaker, samplerate=48000, blocksize=960, gain=0.0)
    factory = Factory()
    worker = AssistantWorker(
        served_options(server),
        store=shipped_store(),
        source_factory=lambda: mic,
        sink_factory=lambda: speaker,
        components_factory=factory,
    )
    events = start(qtbot, worker)
    try:
        assert "Loading the test models…" in events.statuses and len(factory.calls) == 1
        listening = time.monotonic()
        worker.start_listening()
        qtbot.waitUntil(lambda: events.state() == "listening", timeout=WAIT)
        audio, rate = speech(QUESTIONS[0])
        mic.say(audio * 0.7, rate)
        qtbot.waitUntil(lambda: bool(events.of("timings")), timeout=WAIT)
        (user,) = events.of("user")
        assert words(user.text) == words(QUESTIONS[0])
        (done,) = events.of("done")
        assert done.text == ANSWER
        assert "".join(e.text for e in events.of("delta")).strip() == ANSWER
        assert events.of("timings")[0].data["first_audio_ms"] > 0
        assert speaker.sound_intervals()
        # Every event arrived on the UI thread; levels came about every 50 ms (at most 30 a second).
        assert events.threads == {QApplication.instance().thread()}
        # Every level the worker relayed arrives (the newest may still be crossing the event loop).
        qtbot.waitUntil(lambda: len(events.of("level")) == worker.relayed["level"], timeout=WAIT)
        levels = len(events.of("level"))
        assert 10 < levels <= 30 * (time.monotonic() - listening)
        assert worker.conversation.turns[0].assistant == ANSWER
        qtbot.waitUntil(lambda: events.state() == "listening", timeout=WAIT)
        worker.stop_listening()
        qtbot.waitUntil(lambda: events.state() == "idle", timeout=WAIT)
        assert mic.close_count == 1
    finally:
        stop(worker)
    assert speaker.close_count == 1


def test_worker_loads_the_real_models_itself(qtbot: Any, server: FakeOpenAIServer) -> None:
    """No factory: load_components builds Silero, Whisper tiny.en, the server's client and Piper, with
    status sentences; a typed question is answered into a memory speaker."""
    sink = MemorySink(22050)
    worker = AssistantWorker(served_options(server), store=shipped_store(), sink_factory=lambda: sink, device="cpu")
    events = start(qtbot, worker)
    try:
        assert any("speech recognition" in s for s in events.statuses) and any("voice" in s for s in events.statuses)
        assert worker.components is not None and worker.components.describe()["voice"]
        worker.submit_text(QUESTIONS[0])
        qtbot.waitUntil(lambda: bool(events.of("timings")), timeout=WAIT)
        assert events.of("done")[0].text == ANSWER and sink.frames > 22050
    finally:
        stop(worker)


def test_a_model_that_cannot_be_loaded_is_a_sentence(qtbot: Any, server: FakeOpenAIServer, tmp_path: Path) -> None:
    worker = AssistantWorker(served_options(server, asr_model=str(tmp_path / "no-such-whisper")), store=shipped_store())
    events = Events(worker)
    worker.start()
    try:
        qtbot.waitUntil(lambda: bool(events.errors), timeout=WAIT)
        assert events.errors[0].startswith("Assistant could not start: ")
        assert "Traceback" not in events.errors[0] and not events.loaded
        qtbot.waitUntil(lambda: worker.state == "failed", timeout=WAIT)
    finally:
        assert worker.stop(5000)


# ---- no devices --------------------------------------------------------------------------------------------


def no_device() -> Any:
    raise UserError("Sound is unavailable: the PortAudio library is not installed.")


def test_without_microphone_and_speaker_the_assistant_answers_in_text(qtbot: Any, server: FakeOpenAIServer) -> None:
    worker = AssistantWorker(
        served_options(server),
        store=shipped_store(),
        source_factory=no_device,
        sink_factory=no_device,
        components_factory=Factory(),
    )
    events = start(qtbot, worker)
    try:
        worker.start_listening()
        qtbot.waitUntil(lambda: len(events.of("warning")) == 2, timeout=WAIT)
        speaker, mic = (e.text for e in events.of("warning"))
        assert speaker.startswith("Speaker: Sound is unavailable") and "text only" in speaker
        assert mic.startswith("Microphone: Sound is unavailable") and "typed questions" in mic
        worker.submit_text(QUESTIONS[0])
        qtbot.waitUntil(lambda: bool(events.of("timings")), timeout=WAIT)
        assert events.of("done")[0].text == ANSWER
        assert events.of("timings")[0].data["first_audio_ms"] is None
        assert not events.of("level") and events.state() == "idle"
        worker.set_talk(True)  # nothing to record: a warning, no crash
        qtbot.waitUntil(lambda: len(events.of("warning")) == 3, timeout=WAIT)
    finally:
        stop(worker)


def test_default_devices_without_a_sound_system(
    qtbot: Any, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default microphone and speaker are the ones chosen in Devices; without PortAudio both fail
    with a sentence and the assistant works in text."""
    from workers.media import audio

    def missing() -> Any:
        raise UserError("Sound is unavailable: the PortAudio library is not installed.")

    monkeypatch.setattr(audio, "load_sounddevice", missing)
    worker = AssistantWorker(served_options(server), store=shipped_store(), components_factory=Factory())
    events = start(qtbot, worker)
    try:
        worker.start_listening()
        qtbot.waitUntil(lambda: len(events.of("warning")) == 2, timeout=WAIT)
        assert all("Sound is unavailable" in e.text for e in events.of("warning"))
        worker.submit_text(QUESTIONS[1])
        qtbot.waitUntil(lambda: bool(events.of("done")), timeout=WAIT)
    finally:
        stop(worker)


# ---- settings and conversations -------------------------------------------------------------------------


def test_settings_change_live_and_reload_only_what_changed(qtbot: Any, server: FakeOpenAIServer) -> None:
    factory = Factory()
    options = served_options(server)
    worker = AssistantWorker(options, store=shipped_store(), sink_factory=lambda: None, components_factory=factory)
    events = start(qtbot, worker)
    try:
        first = worker.components
        assert first is not None
        # Listening settings, the prompt and the memory are applied without loading anything.
        live = dataclasses.replace(options, vad_threshold=0.6, headset=True, system_prompt="Be brief.")
        worker.set_options(live)
        qtbot.waitUntil(lambda: worker.pipeline is not None and worker.pipeline.options.vad_threshold == 0.6)
        assert len(factory.calls) == 1 and worker.components is first
        assert worker.conversation.system_prompt == "Be brief."
        # A faster voice reloads the voice only.
        faster = dataclasses.replace(live, speed=1.3)
        worker.set_options(faster)
        qtbot.waitUntil(lambda: len(events.loaded) == 2, timeout=WAIT)
        assert len(factory.calls) == 2 and factory.calls[-1].speed == 1.3
        now = worker.components
        assert now is not None and now.asr is first.asr and now.llm is first.llm and now.vad is first.vad
        assert worker.pipeline is not None and worker.pipeline.components is now
        worker.submit_text(QUESTIONS[0])
        qtbot.waitUntil(lambda: bool(events.of("done")), timeout=WAIT)
        assert server.chat_requests[-1]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
        # A server that is not there: the error is a sentence and the previous models stay.
        broken = dataclasses.replace(faster, server_url="http://127.0.0.1:9/v1")
        worker.set_options(broken)
        qtbot.waitUntil(lambda: bool(events.of("error")), timeout=WAIT)
        assert "No language model server answers" in events.of("error")[0].text
        assert worker.components is now
    finally:
        stop(worker)


def test_new_saved_and_loaded_conversations(qtbot: Any, server: FakeOpenAIServer, tmp_path: Path) -> None:
    worker = AssistantWorker(
        served_options(server), store=shipped_store(), sink_factory=lambda: None, components_factory=Factory()
    )
    events = start(qtbot, worker)
    try:
        worker.submit_text(QUESTIONS[0])
        qtbot.waitUntil(lambda: len(events.of("timings")) == 1, timeout=WAIT)
        saved = worker.conversation.save(tmp_path / "chat.json")
        assert len(worker.conversation.turns) == 1
        worker.new_conversation()
        assert worker.conversation.turns == []
        worker.set_conversation(Conversation.load(saved))
        assert [t.user for t in worker.conversation.turns] == [QUESTIONS[0]]
        worker.submit_text(QUESTIONS[1])
        qtbot.waitUntil(lambda: len(events.of("timings")) == 2, timeout=WAIT)
        turns = worker.conversation.turns
        assert [t.id for t in turns] == [1, 2] and turns[1].assistant == "An hour has sixty minutes."
        assert [m["content"] for m in server.chat_requests[-1]["body"]["messages"]][-3:] == [
            QUESTIONS[0],
            ANSWER,
            QUESTIONS[1],
        ]
    finally:
        stop(worker)


def test_questions_sent_before_the_models_are_ready_are_answered(qtbot: Any, server: FakeOpenAIServer) -> None:
    slow = Factory()

    def factory(options: AssistantOptions, **kw: Any) -> Components:
        time.sleep(0.5)
        return slow(options, **kw)

    worker = AssistantWorker(
        served_options(server), store=shipped_store(), sink_factory=lambda: None, components_factory=factory
    )
    events = Events(worker)
    worker.start()
    try:
        worker.submit_text(QUESTIONS[0])
        qtbot.waitUntil(lambda: bool(events.of("done")), timeout=WAIT)
        assert events.of("done")[0].text == ANSWER
    finally:
        stop(worker)


# ---- never a flood -----------------------------------------------------------------------------------------


def test_levels_and_answer_pieces_are_throttled_for_the_ui() -> None:
    worker = AssistantWorker(AssistantOptions())
    sent: list[tuple[float, AssistantEvent]] = []
    worker.event.connect(lambda e: sent.append((time.monotonic(), e)))  # same thread: direct
    started = time.monotonic()
    pieces = [f"w{i} " for i in range(2000)]
    for i, piece in enumerate(pieces):
        worker._relay(AssistantEvent("level", data={"dbfs": -30.0, "vad": 0.1}))
        worker._relay(AssistantEvent("delta", 1, piece))
        if i % 100 == 0:
            time.sleep(0.01)
    worker._relay(AssistantEvent("done", 1, "".join(pieces).strip()))
    elapsed = time.monotonic() - started
    levels = [t for t, e in sent if e.kind == "level"]
    deltas = [e for _, e in sent if e.kind == "delta"]
    assert len(levels) <= elapsed * 30 + 2
    assert len(deltas) <= elapsed / 0.03 + 3
    assert "".join(e.text for e in deltas) == "".join(pieces)  # merged, nothing lost
    assert sent[-1][1].kind == "done"


# ---- the real device classes over a stand-in PortAudio ----------------------------------------------------


class PacedStream:
    """Stands in for a PortAudio stream: calls the callback from a thread at real-time pace. An input
    stream plays ``signal`` (then silence); an output stream keeps what it was given."""

    def __init__(self, kind: str, rate: int, blocksize: int, channels: int, callback: Any, signal: Any) -> None:
        self.kind, self.rate, self.blocksize, self.channels = kind, rate, blocksize, channels
        self.callback, self.signal = callback, signal
        self.played: list[np.ndarray] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        start, n = time.monotonic(), 0
        while not self.stopped.is_set():
            due = start + (n + 1) * self.blocksize / self.rate
            time.sleep(max(0.0, due - time.monotonic()))
            buf = np.zeros((self.blocksize, self.channels), np.float32)
            if self.kind == "input":
                part = self.signal[n * self.blocksize : (n + 1) * self.blocksize]
                buf[: len(part)] = part[:, None]
            self.callback(buf, self.blocksize, None, None)
            if self.kind == "output":
                self.played.append(buf.copy())
            n += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(1.0)

    def close(self) -> None:
        pass


def test_default_microphone_and_speaker_through_portaudio(
    qtbot: Any, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default devices are :class:`AudioInput` and :class:`AudioOutput` (chosen in Devices); with a
    stand-in PortAudio at 48 kHz in and 44.1 kHz stereo out, a spoken question gets a spoken answer."""
    from workers.media import audio

    question, rate = speech(QUESTIONS[0])
    spoken = audio.resample(question[:, None] * 0.7, rate, 48000)[:, 0]
    mic_signal = np.concatenate([np.zeros(24000, np.float32), spoken])
    streams: list[PacedStream] = []

    def start_stream(kind: str, device: Any, samplerate: Any, blocksize: int, channels: int, callback: Any) -> Any:
        stream_rate = 48000 if kind == "input" else 44100
        stream = PacedStream(kind, stream_rate, blocksize, 2 if kind == "output" else channels, callback, mic_signal)
        streams.append(stream)
        return stream, stream_rate

    monkeypatch.setattr(audio, "_start_stream", start_stream)
    worker = AssistantWorker(served_options(server), store=shipped_store(), components_factory=Factory())
    events = start(qtbot, worker)
    try:
        worker.start_listening()
        qtbot.waitUntil(lambda: bool(events.of("timings")), timeout=WAIT)
        assert words(events.of("user")[0].text) == words(QUESTIONS[0])
        assert events.of("done")[0].text == ANSWER and not events.of("warning")
        speaker = next(s for s in streams if s.kind == "output")
        played = np.concatenate(speaker.played)
        assert played.shape[1] == 2 and np.abs(played).max() > 0.1
        assert (np.abs(played[:, 0]) > 0.01).sum() / 44100 > 1.5  # seconds of the answer were heard
    finally:
        stop(worker)
    assert all(s.stopped.is_set() for s in streams)
