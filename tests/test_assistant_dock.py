"""The voice-assistant dock end to end, with the real :class:`~workers.assistant.worker.AssistantWorker`.

The worker gets fake devices (an echo-room microphone that plays questions spoken by the shipped Piper
voice, and a paced speaker that records what it played) and, through ``assistant_components_factory``,
the shipped Silero VAD, Whisper tiny.en and Piper voice with a language model made by the test: a tiny
randomly initialised transformers model (its words are nonsense, but they stream like a real model's)
or a scripted one whose answer is known word for word. Checked: a typed question and a spoken one show
in the transcript with the streamed answer, the states and the latency row; Stop interrupts; the
conversation survives a JSON and a Markdown round trip; the options persist; missing devices and broken
models become sentences; the dock lives in the main window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assistant_fixtures import QUESTIONS, shipped_store, shipped_transcriber, shipped_voice, speech, words
from llm_fixtures import FakeOpenAIServer, tiny_chat_llm_dir  # noqa: F401  (a session fixture)
from PySide6.QtCore import Qt

from snowai_studio import tools
from snowai_studio.assistant import create_page
from snowai_studio.assistant.dock import AssistantDock
from snowai_studio.assistant.widgets import breakdown_text, milestones, timings_text
from snowai_studio.context import StudioContext
from snowai_studio.notifications import NotificationManager
from workers import base
from workers.assistant.options import AssistantOptions
from workers.assistant.pipeline import Components, load_llm
from workers.assistant.vad import SileroVAD
from workers.errors import UserError
from workers.media.fakes import EchoRoomMicrophone, PacedSpeaker
from workers.settings import Settings

#: Generous: the CI machine has two cores shared by everything.
WAIT = 60000

ANSWER = (
    "Paris is the capital of France. It lies on the river Seine in the north of the country. "
    "Millions of people visit its museums, its parks and its old streets every year. "
    "The Eiffel Tower was built for a world fair and is now its best known sight."
)


class ScriptedLLM:
    """A language model that streams a known answer word by word and remembers what it was asked."""

    name = "Scripted test model"
    backend = "test"
    note = ""

    def __init__(self, answer: str = ANSWER, delay: float = 0.02, note: str = "") -> None:
        self.answer = answer
        self.delay = delay
        self.note = note
        self.calls: list[list[Any]] = []
        self.closed = False

    def stream(
        self, messages: list[Any], *, max_new_tokens: int = 120, temperature: float = 0.7, cancel: Any = None
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        for word in self.answer.split(" "):
            if cancel is not None and cancel():
                return
            time.sleep(self.delay)
            yield word + " "

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        self.closed = True


class Components_:
    """An ``assistant_components_factory``: the shipped VAD, Whisper and Piper with the test's language
    model; it reports a status and progress like the real loader, and can fail or take its time."""

    def __init__(self, llm: Any, *, delay: float = 0.0, fail: str = "") -> None:
        self.llm = llm
        self.delay = delay
        self.fail = fail
        self.calls: list[AssistantOptions] = []

    def __call__(self, options: AssistantOptions, **kw: Any) -> Components:
        self.calls.append(options)
        status = kw.get("status") or (lambda _text: None)
        progress = kw.get("progress") or (lambda _done, _total: None)
        status("Loading the test models…")
        steps = 10
        for i in range(steps):
            progress(i, steps)
            time.sleep(self.delay / steps)
        if self.fail:
            raise UserError(self.fail)
        progress(steps, steps)
        if options.llm_backend == "openai":  # the real client, for the fake server
            llm = load_llm(options, store=kw.get("store"), device="cpu")
        elif callable(self.llm) and not hasattr(self.llm, "stream"):
            llm = self.llm()
        else:
            llm = self.llm
        return Components(SileroVAD(store=shipped_store()), shipped_transcriber(), llm, shipped_voice())


@pytest.fixture
def make_dock(qtbot: Any, tmp_path: Path) -> Iterator[Callable[..., AssistantDock]]:
    made: list[AssistantDock] = []
    managers: list[NotificationManager] = []

    def make(
        components: Components_ | None = None,
        *,
        settings: Settings | None = None,
        microphone: Any = "echo-room",
        speaker: Any = "paced",
    ) -> AssistantDock:
        notifications = NotificationManager()
        notifications.install_hooks()
        managers.append(notifications)
        out = PacedSpeaker(48000, buffer_seconds=0.1) if speaker == "paced" else speaker
        mic = EchoRoomMicrophone(out, samplerate=48000, blocksize=960, gain=0.0) if microphone == "echo-room" else None
        extras: dict[str, Any] = {
            "assistant_components_factory": components or Components_(ScriptedLLM()),
            "speaker_factory": (lambda: out) if not callable(speaker) else speaker,
            "microphone_factory": (lambda: mic) if mic is not None else microphone,
        }
        context = StudioContext(settings or Settings.load(), notifications, shipped_store(), extras)
        dock = AssistantDock(context)
        dock.mic = mic  # type: ignore[attr-defined]
        dock.speaker = out  # type: ignore[attr-defined]
        dock.notifications = notifications  # type: ignore[attr-defined]
        qtbot.addWidget(dock)
        dock.resize(520, 860)
        dock.show()
        made.append(dock)
        return dock

    yield make
    for dock in made:
        dock.shutdown()
    for manager in managers:
        manager.uninstall_hooks()
    for worker in base.live_workers():  # a load still sleeping in a fake factory on a busy machine
        if worker.name in ("Assistant", "Voice assistant tasks"):
            worker.stop(15000)
    assert not [w.name for w in base.live_workers() if w.name in ("Assistant", "Voice assistant tasks")]


@pytest.fixture
def tiny_llm(tiny_chat_llm_dir: Path) -> Callable[[], Any]:  # noqa: F811
    """Loads the tiny random transformers chat model (a fresh one for each worker: closing frees it)."""

    def load() -> Any:
        from workers.assistant.llm import load_language_model

        options = AssistantOptions(llm_backend="transformers", llm_model=str(tiny_chat_llm_dir))
        return load_language_model(options, device="cpu")

    return load


def events_of(dock: AssistantDock, kind: str) -> list[Any]:
    return [e for e in dock.events if e.kind == kind]


def states(dock: AssistantDock) -> list[str]:
    return [e.text for e in events_of(dock, "state")]


def wait_done(qtbot: Any, dock: AssistantDock, turn: int | None = None) -> Any:
    def done() -> bool:
        return any(turn is None or e.turn == turn for e in events_of(dock, "done"))

    qtbot.waitUntil(done, timeout=WAIT)
    return [e for e in events_of(dock, "done") if turn is None or e.turn == turn][-1]


def wait_next_done(qtbot: Any, dock: AssistantDock, send: Callable[[], Any]) -> Any:
    """Run ``send`` and wait for the ``done`` of the turn it starts."""
    before = len(events_of(dock, "done"))
    send()
    qtbot.waitUntil(lambda: len(events_of(dock, "done")) > before, timeout=WAIT)
    return events_of(dock, "done")[-1]


def wait_timings(qtbot: Any, dock: AssistantDock, turn: int) -> Any:
    qtbot.waitUntil(lambda: any(e.turn == turn for e in events_of(dock, "timings")), timeout=WAIT)
    return next(e for e in events_of(dock, "timings") if e.turn == turn)


def notified(dock: AssistantDock) -> list[str]:
    return [n.message for n in dock.notifications.items]  # type: ignore[attr-defined]


# ---- typed questions ----------------------------------------------------------------------------------------


def test_typed_question_streams_the_answer_with_states_and_timings(
    make_dock: Callable[..., AssistantDock], qtbot: Any
) -> None:
    llm = ScriptedLLM(note="This is a test model; get a better one.")
    dock = make_dock(Components_(llm, delay=0.3))
    assert dock.worker is None  # nothing is loaded before it is needed
    assert "Gemma" in dock.note  # the built-in model's note shows before loading
    qtbot.keyClicks(dock.input, "What is the capital of France?")
    qtbot.mouseClick(dock.send_button, Qt.MouseButton.LeftButton)
    # Loading: progress and the loader's sentence show; the question waits in the transcript.
    assert dock.loading and dock.progress_box.isVisibleTo(dock)
    assert dock.chat.messages() == [("user", "What is the capital of France?")]
    assert dock.input.text() == ""
    qtbot.waitUntil(lambda: "test models" in dock.progress.format(), timeout=WAIT)
    with qtbot.waitSignal(dock.models_loaded, timeout=WAIT):
        pass
    assert "Scripted test model" in dock.last_message
    assert dock.note == "This is a test model; get a better one."

    done = wait_done(qtbot, dock, 1)
    assert not done.data["interrupted"]
    assert done.text.strip() == ANSWER
    deltas = [e for e in events_of(dock, "delta") if e.turn == 1]
    assert len(deltas) > 3  # streamed in pieces, not at once
    assert "".join(e.text for e in deltas).strip() == ANSWER
    assert dock.chat.messages() == [("user", "What is the capital of France?"), ("assistant", done.text)]
    assert dock.chat.bubble(1, "user").header.text() == "You (typed)"
    assert not dock.chat.streaming_turns()
    seen = states(dock)
    assert "thinking" in seen and "speaking" in seen
    qtbot.waitUntil(lambda: states(dock)[-1] == "idle", timeout=WAIT)
    assert dock.state_pill.text() == "Ready (not listening)"

    timings = wait_timings(qtbot, dock, 1)
    assert timings.data["first_token_ms"] is not None and timings.data["first_audio_ms"] is not None
    footer = dock.chat.bubble(1).footer.text()
    assert footer.startswith("Sent → first word") and "first sound" in footer
    assert "language model" in dock.latency_label.text() and "first sound after" in dock.latency_label.text()
    assert [name for name, _ in dock.latency_bar.segments] == ["language model", "voice"]
    # The answer was spoken through the speaker.
    assert dock.speaker.writes  # type: ignore[attr-defined]
    assert llm.calls and llm.calls[0][-1].content == "What is the capital of France?"


def test_tiny_transformers_model_answers_through_the_dock(
    make_dock: Callable[..., AssistantDock], qtbot: Any, tiny_llm: Any
) -> None:
    settings = Settings.load()
    settings.options(AssistantOptions).max_new_tokens = 16  # it never stops by itself: random weights
    dock = make_dock(Components_(tiny_llm), settings=settings)
    assert dock.send_text("Hello there, who are you?")
    done = wait_done(qtbot, dock, 1)
    reply = dock.chat.reply_texts()[0]
    assert reply == done.text
    deltas = "".join(e.text for e in events_of(dock, "delta") if e.turn == 1)
    assert deltas.strip() == done.text.strip()
    wait_timings(qtbot, dock, 1)
    assert "first word" in dock.chat.bubble(1).footer.text()


def test_stop_interrupts_the_answer(make_dock: Callable[..., AssistantDock], qtbot: Any) -> None:
    llm = ScriptedLLM(ANSWER * 3, delay=0.08)
    dock = make_dock(Components_(llm))
    assert not dock.stop_button.isEnabled()
    dock.send_text("Tell me everything about Paris.")
    qtbot.waitUntil(lambda: len(events_of(dock, "delta")) >= 2, timeout=WAIT)
    qtbot.waitUntil(dock.stop_button.isEnabled, timeout=WAIT)
    stopped = time.monotonic()
    qtbot.mouseClick(dock.stop_button, Qt.MouseButton.LeftButton)
    done = wait_done(qtbot, dock, 1)
    assert time.monotonic() - stopped < 10.0
    assert done.data["interrupted"]
    assert len(done.text) < len(llm.answer) / 2
    bubble = dock.chat.bubble(1)
    assert bubble.interrupted and bubble.flag.isVisibleTo(dock)
    qtbot.waitUntil(lambda: states(dock)[-1] == "idle", timeout=WAIT)
    assert not dock.stop_button.isEnabled()
    # The next question is answered normally.
    llm.answer, llm.delay = "Yes.", 0.0
    dock.send_text("Are you there?")
    done = wait_done(qtbot, dock, 2)
    assert done.text.strip() == "Yes." and not done.data["interrupted"]
    assert not dock.chat.bubble(2).interrupted


# ---- spoken questions -----------------------------------------------------------------------------------


def _say(dock: AssistantDock, text: str, gain: float = 0.7) -> None:
    audio, rate = speech(text)
    dock.mic.say(audio * gain, rate)  # type: ignore[attr-defined]


def test_spoken_question_shows_the_recognised_text(make_dock: Callable[..., AssistantDock], qtbot: Any) -> None:
    llm = ScriptedLLM("Paris.")
    dock = make_dock(Components_(llm))
    qtbot.mouseClick(dock.listen_button, Qt.MouseButton.LeftButton)
    assert dock.listening and dock.listen_button.text() == "Stop listening"
    qtbot.waitUntil(lambda: dock.mic.open_count == 1 and "listening" in states(dock), timeout=WAIT)
    assert dock.state_pill.text() == "Listening"
    _say(dock, QUESTIONS[0])
    qtbot.waitUntil(lambda: bool(events_of(dock, "user")), timeout=WAIT)
    user = events_of(dock, "user")[0]
    assert words(user.text) == words(QUESTIONS[0])
    assert dock.chat.user_texts() == [user.text]
    assert dock.chat.bubble(user.turn, "user").header.text() == "You (spoken)"
    assert "hearing" in states(dock)
    assert dock.level_meter.updates > 0
    done = wait_done(qtbot, dock, user.turn)
    assert done.text.strip() == "Paris."
    wait_timings(qtbot, dock, user.turn)
    footer = dock.chat.bubble(user.turn).footer.text()
    assert footer.startswith("End of speech → recognised") and "first sound" in footer
    stages = ["pause detected", "recognition", "language model", "voice"]
    assert [name for name, _ in dock.latency_bar.segments] == stages
    # Stop listening closes the microphone; typed questions still work.
    qtbot.mouseClick(dock.listen_button, Qt.MouseButton.LeftButton)
    assert not dock.listening
    qtbot.waitUntil(lambda: dock.mic.close_count >= 1, timeout=WAIT)


def test_push_to_talk_with_the_space_key(make_dock: Callable[..., AssistantDock], qtbot: Any) -> None:
    dock = make_dock(Components_(ScriptedLLM("Sixty.")))
    panel = dock.settings_panel
    assert not dock.talk_button.isVisibleTo(dock)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("ptt"))
    assert dock.options.mode == "ptt" and dock.talk_button.isVisibleTo(dock)
    # Space held in the transcript opens the microphone first (the models load meanwhile).
    dock.chat.setFocus()
    qtbot.keyPress(dock.chat, Qt.Key.Key_Space)
    assert dock.talking and dock.listening
    qtbot.waitUntil(lambda: "hearing" in states(dock), timeout=WAIT)
    assert dock.state_pill.text() == "Talk now…"
    audio, rate = speech(QUESTIONS[1])
    _say(dock, QUESTIONS[1])
    qtbot.wait(int((len(audio) / rate + 0.3) * 1000))
    assert not events_of(dock, "user")  # nothing is sent while the key is held
    qtbot.keyRelease(dock.chat, Qt.Key.Key_Space)
    assert not dock.talking
    qtbot.waitUntil(lambda: bool(events_of(dock, "user")), timeout=WAIT)
    user = events_of(dock, "user")[0]
    assert words(user.text) == words(QUESTIONS[1])
    assert dock.chat.bubble(user.turn, "user").header.text() == "You (spoken)"
    assert wait_done(qtbot, dock).text.strip() == "Sixty."
    # Space does nothing in the voice-detection mode.
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("vad"))
    qtbot.keyPress(dock.chat, Qt.Key.Key_Space)
    assert not dock.talking and not dock.talk_button.isVisibleTo(dock)
    qtbot.keyRelease(dock.chat, Qt.Key.Key_Space)


# ---- conversations ------------------------------------------------------------------------------------------


def test_conversation_save_and_load_round_trip(
    make_dock: Callable[..., AssistantDock], qtbot: Any, tmp_path: Path
) -> None:
    llm = ScriptedLLM("Paris is the capital.")
    dock = make_dock(Components_(llm))
    assert dock.save_conversation(tmp_path / "empty.json") is None  # nothing to save yet
    dock.send_text("What is the capital of France?")
    wait_done(qtbot, dock, 1)
    wait_timings(qtbot, dock, 1)
    llm.answer = "About two million people."
    dock.send_text("How many people live there?")
    wait_done(qtbot, dock, 2)
    wait_timings(qtbot, dock, 2)
    shown = dock.chat.messages()
    assert len(shown) == 4

    saved_json = dock.save_conversation(tmp_path / "talk.json")
    saved_md = dock.save_conversation(tmp_path / "talk.md")
    assert saved_json is not None and saved_md is not None
    data = json.loads(saved_json.read_text(encoding="utf-8"))
    assert "What is the capital of France?" in json.dumps(data)
    markdown = saved_md.read_text(encoding="utf-8")
    assert "How many people live there?" in markdown and "About two million people." in markdown

    dock.new_conversation()
    assert dock.chat.messages() == []
    qtbot.waitUntil(lambda: not dock.conversation().turns, timeout=WAIT)

    for path in (saved_json, saved_md):
        assert dock.load_conversation(path)
        assert [(r, t.strip()) for r, t in dock.chat.messages()] == [(r, t.strip()) for r, t in shown]
        turns = dock.conversation().turns
        assert [t.user for t in turns] == ["What is the capital of France?", "How many people live there?"]
        assert turns[1].assistant.strip() == "About two million people."
    assert "Loaded talk.md: 2 turns" in dock.last_message

    # The assistant goes on with the loaded conversation: the earlier turns are in its prompt.
    llm.answer = "Yes."
    done = wait_next_done(qtbot, dock, lambda: dock.send_text("Is it old?"))
    assert done.text.strip() == "Yes."
    asked = " ".join(m.content for m in llm.calls[-1])
    assert "How many people live there?" in asked and "About two million people." in asked
    assert dock.chat.messages()[-2:] == [("user", "Is it old?"), ("assistant", done.text)]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert not dock.load_conversation(broken)
    assert dock.last_level == "error" and "broken.json" in dock.last_message
    assert "Traceback" not in dock.last_message
    assert len(dock.chat.messages()) == 6  # what was shown stays


# ---- options ---------------------------------------------------------------------------------------------------


def test_options_persist_and_apply_live(make_dock: Callable[..., AssistantDock], qtbot: Any, tmp_path: Path) -> None:
    dock = make_dock()
    panel = dock.settings_panel
    assert not dock.settings_section.expanded
    dock.show_settings()
    assert dock.settings_scroll.isVisibleTo(dock)
    dock.send_text("Hello?")
    qtbot.waitUntil(lambda: dock.ready, timeout=WAIT)
    worker = dock.worker

    panel.silence_spin.setValue(700)
    panel.threshold.slider.setValue(35)
    panel.output_combo.setCurrentIndex(panel.output_combo.findData(True))
    panel.barge_check.setChecked(False)
    panel.language_combo.setCurrentIndex(panel.language_combo.findData("de"))
    panel.language_combo.activated.emit(panel.language_combo.currentIndex())
    assert panel.asr_note.isVisibleTo(dock)  # tiny.en understands English only
    panel.memory_spin.setValue(2048)
    panel.temperature_spin.setValue(0.2)
    panel.prompt_edit.setPlainText("Answer like a pirate.")
    panel.flush()
    panel.url_edit.setText("http://127.0.0.1:8080/v1")
    panel.url_edit.editingFinished.emit()
    assert dock.options.min_silence_ms == 700 and dock.options.headset and not dock.options.barge_in
    # Applied live: the worker has them (no model was reloaded for these).
    qtbot.waitUntil(lambda: worker.options.min_silence_ms == 700, timeout=WAIT)
    assert worker.options.system_prompt == "Answer like a pirate." and worker is dock.worker
    qtbot.waitUntil(lambda: Settings.load().options(AssistantOptions).min_silence_ms == 700, timeout=5000)

    saved = Settings.load().options(AssistantOptions)
    assert saved.vad_threshold == pytest.approx(0.35)
    assert saved.headset is True and saved.barge_in is False
    assert saved.language == "de"
    assert saved.memory_tokens == 2048 and saved.temperature == pytest.approx(0.2)
    assert saved.system_prompt == "Answer like a pirate."
    assert saved.server_url == "http://127.0.0.1:8080/v1"

    # A GGUF file and a transformers folder are chosen with the browse buttons' paths; the server too.
    gguf = tmp_path / "qwen.gguf"
    gguf.write_bytes(b"GGUF")
    panel.set_llm_path("gguf", gguf)
    assert dock.options.llm_backend == "gguf" and dock.options.llm_model == str(gguf)
    assert panel.path_row.isVisibleTo(dock) and not panel.url_row.isVisibleTo(dock)
    panel.llm_combo.setCurrentIndex(panel.llm_combo.findData("openai"))
    assert dock.options.llm_backend == "openai"
    assert panel.url_row.isVisibleTo(dock) and not panel.path_row.isVisibleTo(dock)
    # Bark takes a model folder; going back to Piper brings the Piper voice back.
    bark = tmp_path / "bark-small"
    bark.mkdir()
    panel.set_tts("bark", bark)
    assert dock.options.tts_engine == "bark" and dock.options.voice == str(bark)
    assert panel.voice_combo.currentData() == str(bark)
    panel.tts_combo.setCurrentIndex(panel.tts_combo.findData("piper"))
    assert dock.options.tts_engine == "piper" and dock.options.voice == "piper-en-us-joe-medium-shipped"
    panel.speed_spin.setValue(1.2)
    dock.save_options()
    assert Settings.load().options(AssistantOptions).llm_backend == "openai"
    assert Settings.load().options(AssistantOptions).speed == pytest.approx(1.2)

    # A new dock (the next start of the studio) shows what was chosen.
    again = make_dock(settings=Settings.load())
    p2 = again.settings_panel
    assert p2.silence_spin.value() == 700 and p2.threshold.value() == 35
    assert p2.output_combo.currentData() is True and not p2.barge_check.isChecked()
    assert p2.language_combo.currentData() == "de"
    assert p2.llm_combo.currentData() == "openai" and p2.url_edit.text() == "http://127.0.0.1:8080/v1"
    assert p2.prompt_edit.toPlainText() == "Answer like a pirate."
    assert "Gemma" not in again.note


def test_model_lists_come_from_the_store(make_dock: Callable[..., AssistantDock]) -> None:
    dock = make_dock()
    panel = dock.settings_panel
    asr = [panel.asr_combo.itemData(i) for i in range(panel.asr_combo.count())]
    assert asr[0] == "whisper-tiny-en-shipped" and "faster-whisper-small" in asr
    assert panel.asr_combo.currentData() == "whisper-tiny-en-shipped"
    voices = [panel.voice_combo.itemData(i) for i in range(panel.voice_combo.count())]
    assert "piper-en-us-joe-medium-shipped" in voices
    assert panel.llm_combo.currentData() == "builtin"
    assert "Qwen2.5" in panel.llm_hint.text()


def test_switching_to_a_local_server_live(make_dock: Callable[..., AssistantDock], qtbot: Any) -> None:
    server = FakeOpenAIServer(("Bonjour from the server.",), models=("tiny-test-model", "other-model"))
    with server:
        url = server.url
        dock = make_dock(Components_(ScriptedLLM("Scripted.")))
        first = wait_next_done(qtbot, dock, lambda: dock.send_text("Who answers?"))
        assert first.text.strip() == "Scripted."
        worker = dock.worker
        panel = dock.settings_panel
        dock.show_settings("llm")
        panel.llm_combo.setCurrentIndex(panel.llm_combo.findData("openai"))
        assert dock.options.llm_backend == "openai"
        # Nothing answers at the default address (Ollama's): a sentence, and the previous model stays.
        qtbot.waitUntil(lambda: "No language model server answers" in dock.last_message, timeout=WAIT)
        assert dock.last_level == "error" and not dock.loading
        qtbot.waitUntil(lambda: any("No language model server answers" in m for m in notified(dock)), timeout=5000)
        panel.url_edit.setText(server.url)
        panel.url_edit.editingFinished.emit()
        qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.server_model_combo.count() == 2, timeout=WAIT)
        panel.server_model_combo.setCurrentIndex(panel.server_model_combo.findText("tiny-test-model"))
        panel.server_model_combo.activated.emit(panel.server_model_combo.currentIndex())
        assert dock.options.server_url == server.url.rstrip("/")
        assert dock.options.server_model == "tiny-test-model"
        # Only the language model is loaded again, in the same worker.
        qtbot.waitUntil(lambda: dock.loaded_info.get("llm") != "Scripted test model", timeout=WAIT)
        qtbot.waitUntil(lambda: not dock.loading, timeout=WAIT)
        assert dock.worker is worker
        done = wait_next_done(qtbot, dock, lambda: dock.send_text("And now?"))
        assert done.text.strip() == "Bonjour from the server."
        assert server.chat_requests[-1]["body"]["model"] == "tiny-test-model"
        assert "Gemma" not in dock.note

    # The server is gone: Refresh says so in a sentence, and the button works again.
    qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
    assert not panel.refresh_button.isEnabled()
    qtbot.waitUntil(panel.refresh_button.isEnabled, timeout=WAIT)
    assert dock.last_level == "warning" and "No language model server answers" in dock.last_message
    assert url.rstrip("/") in dock.last_message


# ---- problems as sentences ------------------------------------------------------------------------------------


def test_missing_microphone_and_speaker_leave_typed_answers(
    make_dock: Callable[..., AssistantDock], qtbot: Any
) -> None:
    def no_mic() -> Any:
        raise UserError("No microphone was found. Plug one in, or choose one in Devices.")

    def no_speaker() -> Any:
        raise UserError("No speaker was found.")

    dock = make_dock(Components_(ScriptedLLM("Text only.")), microphone=no_mic, speaker=no_speaker)
    dock.start_listening()
    qtbot.waitUntil(lambda: "No microphone was found" in dock.last_message, timeout=WAIT)
    assert dock.last_level == "warning"
    qtbot.waitUntil(lambda: any("No microphone was found" in m for m in notified(dock)), timeout=5000)
    assert any("No speaker was found" in m for m in notified(dock))
    dock.send_text("Can you hear me?")
    assert wait_done(qtbot, dock).text.strip() == "Text only."
    assert dock.chat.reply_texts() == ["Text only. "] or dock.chat.reply_texts()[0].strip() == "Text only."


def test_a_broken_model_is_a_sentence_and_can_be_retried(
    make_dock: Callable[..., AssistantDock], qtbot: Any
) -> None:
    components = Components_(ScriptedLLM("Fine now."), fail="The model folder /tmp/nothing has no config.json.")
    dock = make_dock(components)
    dock.send_text("Are you there?")
    qtbot.waitUntil(lambda: dock.state_pill.state == "failed", timeout=WAIT)
    assert "has no config.json" in dock.last_message and dock.last_level == "error"
    assert "Traceback" not in dock.last_message
    assert not dock.progress_box.isVisibleTo(dock)
    assert "not sent" in dock.chat.bubbles()[0].header.text()
    qtbot.waitUntil(lambda: any("has no config.json" in m for m in notified(dock)), timeout=5000)
    # Fixed (say, another model chosen): the next question starts a fresh worker.
    components.fail = ""
    dock.send_text("And now?")
    assert wait_done(qtbot, dock).text.strip() == "Fine now."


def test_loading_can_be_cancelled(make_dock: Callable[..., AssistantDock], qtbot: Any) -> None:
    dock = make_dock(Components_(ScriptedLLM("Done."), delay=3.0))
    dock.start_listening()
    assert dock.loading and dock.cancel_button.isVisibleTo(dock)
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    assert not dock.loading and dock.worker is None and not dock.listening
    assert "cancelled" in dock.last_message


# ---- the latency texts ----------------------------------------------------------------------------------------


def test_latency_texts() -> None:
    spoken = {
        "speech_end_to_vad_ms": 420.0,
        "asr_ms": 610.0,
        "first_token_ms": 900.0,
        "first_audio_ms": 1350.0,
        "total_ms": 4200.0,
        "tokens_per_s": 14.0,
        "asr_rtf": 0.05,
    }
    assert milestones(spoken) == {"endpoint": 420.0, "asr": 610.0, "llm": 900.0, "tts": 1350.0}
    assert timings_text(spoken) == (
        "End of speech → recognised 610 ms → first word 900 ms → first sound 1.35 s · whole answer 4.20 s · 14 tokens/s"
    )
    assert breakdown_text(spoken).startswith(
        "pause detected 420 ms + recognition 190 ms + language model 290 ms + voice 450 ms = first sound after 1.35 s"
    )
    typed = {"speech_end_to_vad_ms": None, "asr_ms": None, "first_token_ms": 300.0, "first_audio_ms": None}
    assert timings_text(typed, typed=True) == "Sent → first word 300 ms"
    assert breakdown_text(typed) == "language model 300 ms = first word after 300 ms"
    assert timings_text({}) == ""


# ---- in the studio ------------------------------------------------------------------------------------------


def test_dock_in_the_main_window(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from snowai_studio.app import create_window

    registry = list(tools.registered_tools())
    monkeypatch.setattr(tools, "_REGISTRY", registry)
    tools.register_tool(tools.ToolSpec("assistant", "Voice assistant", create_page, "assistant"))
    out = PacedSpeaker(48000, buffer_seconds=0.1)
    extras = {
        "assistant_components_factory": Components_(ScriptedLLM("Hello from the window.")),
        "microphone_factory": lambda: EchoRoomMicrophone(out, samplerate=48000, blocksize=960, gain=0.0),
        "speaker_factory": lambda: out,
    }
    window = create_window(Settings.load(), extras)
    qtbot.addWidget(window)
    window.show()
    try:
        assert "assistant" in window.pages
        dock = window.pages["assistant"]
        assert isinstance(dock, AssistantDock) and dock.worker is None
        opened: list[bool] = []
        monkeypatch.setattr(window, "open_model_manager", lambda: opened.append(True))
        dock.models_link.linkActivated.emit("models")
        assert opened == [True]
        window.show_page("assistant")
        done = wait_next_done(qtbot, dock, lambda: dock.send_text("Hello?"))
        assert done.text.strip() == "Hello from the window."
        dock.start_listening()
        qtbot.waitUntil(lambda: dock.listening and dock.ready, timeout=WAIT)
    finally:
        window.close()  # stops the assistant, releases the microphone and speaker
        window.notifications.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name == "Assistant"]
    assert not out.is_open
