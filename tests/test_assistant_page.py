"""The voice-assistant page end to end, with the real :class:`~workers.assistant.worker.AssistantWorker`.

The worker gets fake devices (an echo-room microphone that plays questions spoken by the shipped Piper
voice, and a paced speaker that records what it played) and, through ``assistant_components_factory``,
the shipped Silero VAD, Whisper tiny.en and Piper voice with a language model made by the test: a tiny
randomly initialised transformers model (its words are nonsense, but they stream like a real model's)
or a scripted one whose answer is known word for word. Checked: a typed question and a spoken one show
in the transcript with the streamed answer, the states and the latency row; Stop interrupts; the
conversation survives a JSON and a Markdown round trip; the options persist; missing devices and broken
models become sentences, each said once; Start listening waits for a microphone; the page's actions are
buttons on its action bar and its settings inspector sections; it fits 1280x720 in the main window.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assistant_fixtures import QUESTIONS, shipped_store, shipped_transcriber, shipped_voice, speech, words
from llm_fixtures import FakeOpenAIServer, tiny_chat_llm_dir  # noqa: F401  (a session fixture)
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QToolButton

from snowai_studio import tools
from snowai_studio.assistant import create_page
from snowai_studio.assistant.checks import NO_MICROPHONE
from snowai_studio.assistant.latency import breakdown_text, milestones, timings_text
from snowai_studio.assistant.page import LISTEN_TIPS, AssistantPage
from snowai_studio.context import StudioContext
from snowai_studio.notifications import NotificationManager
from snowai_studio.panels.model_picker import ModelPicker
from snowai_studio.panels.tool_page import ToolPage
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
def make_page(qtbot: Any, tmp_path: Path) -> Iterator[Callable[..., AssistantPage]]:
    made: list[AssistantPage] = []
    managers: list[NotificationManager] = []

    def make(
        components: Components_ | None = None,
        *,
        settings: Settings | None = None,
        microphone: Any = "echo-room",
        speaker: Any = "paced",
    ) -> AssistantPage:
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
        page = AssistantPage(context)
        page.mic = mic  # type: ignore[attr-defined]
        page.speaker = out  # type: ignore[attr-defined]
        page.notifications = notifications  # type: ignore[attr-defined]
        qtbot.addWidget(page)
        page.resize(520, 860)
        page.show()
        made.append(page)
        return page

    yield make
    for page in made:
        page.shutdown()
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


def events_of(page: AssistantPage, kind: str) -> list[Any]:
    return [e for e in page.events if e.kind == kind]


def states(page: AssistantPage) -> list[str]:
    return [e.text for e in events_of(page, "state")]


def wait_done(qtbot: Any, page: AssistantPage, turn: int | None = None) -> Any:
    def done() -> bool:
        return any(turn is None or e.turn == turn for e in events_of(page, "done"))

    qtbot.waitUntil(done, timeout=WAIT)
    return [e for e in events_of(page, "done") if turn is None or e.turn == turn][-1]


def wait_next_done(qtbot: Any, page: AssistantPage, send: Callable[[], Any]) -> Any:
    """Run ``send`` and wait for the ``done`` of the turn it starts."""
    before = len(events_of(page, "done"))
    send()
    qtbot.waitUntil(lambda: len(events_of(page, "done")) > before, timeout=WAIT)
    return events_of(page, "done")[-1]


def wait_timings(qtbot: Any, page: AssistantPage, turn: int) -> Any:
    qtbot.waitUntil(lambda: any(e.turn == turn for e in events_of(page, "timings")), timeout=WAIT)
    return next(e for e in events_of(page, "timings") if e.turn == turn)


def notified(page: AssistantPage) -> list[str]:
    return [n.message for n in page.notifications.items]  # type: ignore[attr-defined]


# ---- typed questions ----------------------------------------------------------------------------------------


def test_typed_question_streams_the_answer_with_states_and_timings(
    make_page: Callable[..., AssistantPage], qtbot: Any
) -> None:
    llm = ScriptedLLM(note="This is a test model; get a better one.")
    page = make_page(Components_(llm, delay=0.3))
    assert page.worker is None  # nothing is loaded before it is needed
    assert "Gemma" in page.note  # the built-in model's note shows before loading
    qtbot.keyClicks(page.input, "What is the capital of France?")
    qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    # Loading: progress and the loader's sentence show; the question waits in the transcript.
    assert page.loading and page.jobs.progress_row.isVisibleTo(page)
    assert page.chat.messages() == [("user", "What is the capital of France?")]
    assert page.input.text() == ""
    qtbot.waitUntil(lambda: "test models" in page.jobs.label.text(), timeout=WAIT)
    with qtbot.waitSignal(page.models_loaded, timeout=WAIT):
        pass
    assert "Scripted test model" in page.last_message
    assert page.note == "This is a test model; get a better one."

    done = wait_done(qtbot, page, 1)
    assert not done.data["interrupted"]
    assert done.text.strip() == ANSWER
    deltas = [e for e in events_of(page, "delta") if e.turn == 1]
    assert len(deltas) > 3  # streamed in pieces, not at once
    assert "".join(e.text for e in deltas).strip() == ANSWER
    assert page.chat.messages() == [("user", "What is the capital of France?"), ("assistant", done.text)]
    assert page.chat.bubble(1, "user").header.text() == "You (typed)"
    assert not page.chat.streaming_turns()
    seen = states(page)
    assert "thinking" in seen and "speaking" in seen
    qtbot.waitUntil(lambda: states(page)[-1] == "idle", timeout=WAIT)
    assert page.state_pill.text() == "Ready (not listening)"

    timings = wait_timings(qtbot, page, 1)
    assert timings.data["first_token_ms"] is not None and timings.data["first_audio_ms"] is not None
    footer = page.chat.bubble(1).footer.text()
    assert footer.startswith("Sent → first word") and "first sound" in footer
    assert "language model" in page.latency_label.text() and "first sound after" in page.latency_label.text()
    assert [name for name, _ in page.latency_bar.segments] == ["language model", "voice"]
    # The answer was spoken through the speaker.
    assert page.speaker.writes  # type: ignore[attr-defined]
    assert llm.calls and llm.calls[0][-1].content == "What is the capital of France?"


def test_tiny_transformers_model_answers_through_the_dock(
    make_page: Callable[..., AssistantPage], qtbot: Any, tiny_llm: Any
) -> None:
    settings = Settings.load()
    settings.options(AssistantOptions).max_new_tokens = 16  # it never stops by itself: random weights
    page = make_page(Components_(tiny_llm), settings=settings)
    assert page.send_text("Hello there, who are you?")
    done = wait_done(qtbot, page, 1)
    reply = page.chat.reply_texts()[0]
    assert reply == done.text
    deltas = "".join(e.text for e in events_of(page, "delta") if e.turn == 1)
    assert deltas.strip() == done.text.strip()
    wait_timings(qtbot, page, 1)
    assert "first word" in page.chat.bubble(1).footer.text()


def test_stop_interrupts_the_answer(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    llm = ScriptedLLM(ANSWER * 3, delay=0.08)
    page = make_page(Components_(llm))
    assert not page.stop_button.isEnabled()
    page.send_text("Tell me everything about Paris.")
    qtbot.waitUntil(lambda: len(events_of(page, "delta")) >= 2, timeout=WAIT)
    qtbot.waitUntil(page.stop_button.isEnabled, timeout=WAIT)
    stopped = time.monotonic()
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    done = wait_done(qtbot, page, 1)
    assert time.monotonic() - stopped < 10.0
    assert done.data["interrupted"]
    assert len(done.text) < len(llm.answer) / 2
    bubble = page.chat.bubble(1)
    assert bubble.interrupted and bubble.flag.isVisibleTo(page)
    qtbot.waitUntil(lambda: states(page)[-1] == "idle", timeout=WAIT)
    assert not page.stop_button.isEnabled()
    # The next question is answered normally.
    llm.answer, llm.delay = "Yes.", 0.0
    page.send_text("Are you there?")
    done = wait_done(qtbot, page, 2)
    assert done.text.strip() == "Yes." and not done.data["interrupted"]
    assert not page.chat.bubble(2).interrupted


# ---- spoken questions -----------------------------------------------------------------------------------


def _say(page: AssistantPage, text: str, gain: float = 0.7) -> None:
    audio, rate = speech(text)
    page.mic.say(audio * gain, rate)  # type: ignore[attr-defined]


def test_spoken_question_shows_the_recognised_text(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    llm = ScriptedLLM("Paris.")
    page = make_page(Components_(llm))
    qtbot.mouseClick(page.listen_button, Qt.MouseButton.LeftButton)
    assert page.listening and page.listen_button.text() == "Stop listening"
    qtbot.waitUntil(lambda: page.mic.open_count == 1 and "listening" in states(page), timeout=WAIT)
    assert page.state_pill.text() == "Listening"
    _say(page, QUESTIONS[0])
    qtbot.waitUntil(lambda: bool(events_of(page, "user")), timeout=WAIT)
    user = events_of(page, "user")[0]
    assert words(user.text) == words(QUESTIONS[0])
    assert page.chat.user_texts() == [user.text]
    assert page.chat.bubble(user.turn, "user").header.text() == "You (spoken)"
    assert "hearing" in states(page)
    assert page.level_meter.updates > 0
    done = wait_done(qtbot, page, user.turn)
    assert done.text.strip() == "Paris."
    wait_timings(qtbot, page, user.turn)
    footer = page.chat.bubble(user.turn).footer.text()
    assert footer.startswith("End of speech → recognised") and "first sound" in footer
    stages = ["pause detected", "recognition", "language model", "voice"]
    assert [name for name, _ in page.latency_bar.segments] == stages
    # Stop listening closes the microphone; typed questions still work.
    qtbot.mouseClick(page.listen_button, Qt.MouseButton.LeftButton)
    assert not page.listening
    qtbot.waitUntil(lambda: page.mic.close_count >= 1, timeout=WAIT)


def test_push_to_talk_with_the_space_key(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    page = make_page(Components_(ScriptedLLM("Sixty.")))
    panel = page.settings_panel.listening
    assert not page.talk_button.isVisibleTo(page)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("ptt"))
    assert page.options.mode == "ptt" and page.talk_button.isVisibleTo(page)
    # Space held in the transcript opens the microphone first (the models load meanwhile).
    page.chat.setFocus()
    qtbot.keyPress(page.chat, Qt.Key.Key_Space)
    assert page.talking and page.listening
    qtbot.waitUntil(lambda: "hearing" in states(page), timeout=WAIT)
    assert page.state_pill.text() == "Talk now…"
    audio, rate = speech(QUESTIONS[1])
    _say(page, QUESTIONS[1])
    qtbot.wait(int((len(audio) / rate + 0.3) * 1000))
    assert not events_of(page, "user")  # nothing is sent while the key is held
    qtbot.keyRelease(page.chat, Qt.Key.Key_Space)
    assert not page.talking
    qtbot.waitUntil(lambda: bool(events_of(page, "user")), timeout=WAIT)
    user = events_of(page, "user")[0]
    assert words(user.text) == words(QUESTIONS[1])
    assert page.chat.bubble(user.turn, "user").header.text() == "You (spoken)"
    assert wait_done(qtbot, page).text.strip() == "Sixty."
    # Space does nothing in the voice-detection mode.
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("vad"))
    qtbot.keyPress(page.chat, Qt.Key.Key_Space)
    assert not page.talking and not page.talk_button.isVisibleTo(page)
    qtbot.keyRelease(page.chat, Qt.Key.Key_Space)


# ---- conversations ------------------------------------------------------------------------------------------


def test_conversation_save_and_load_round_trip(
    make_page: Callable[..., AssistantPage], qtbot: Any, tmp_path: Path
) -> None:
    llm = ScriptedLLM("Paris is the capital.")
    page = make_page(Components_(llm))
    assert page.save_conversation(tmp_path / "empty.json") is None  # nothing to save yet
    page.send_text("What is the capital of France?")
    wait_done(qtbot, page, 1)
    wait_timings(qtbot, page, 1)
    llm.answer = "About two million people."
    page.send_text("How many people live there?")
    wait_done(qtbot, page, 2)
    wait_timings(qtbot, page, 2)
    shown = page.chat.messages()
    assert len(shown) == 4

    saved_json = page.save_conversation(tmp_path / "talk.json")
    saved_md = page.save_conversation(tmp_path / "talk.md")
    assert saved_json is not None and saved_md is not None
    data = json.loads(saved_json.read_text(encoding="utf-8"))
    assert "What is the capital of France?" in json.dumps(data)
    markdown = saved_md.read_text(encoding="utf-8")
    assert "How many people live there?" in markdown and "About two million people." in markdown

    page.new_conversation()
    assert page.chat.messages() == []
    qtbot.waitUntil(lambda: not page.conversation().turns, timeout=WAIT)

    for path in (saved_json, saved_md):
        assert page.load_conversation(path)
        assert [(r, t.strip()) for r, t in page.chat.messages()] == [(r, t.strip()) for r, t in shown]
        turns = page.conversation().turns
        assert [t.user for t in turns] == ["What is the capital of France?", "How many people live there?"]
        assert turns[1].assistant.strip() == "About two million people."
    assert "Loaded talk.md: 2 turns" in page.last_message

    # The assistant goes on with the loaded conversation: the earlier turns are in its prompt.
    llm.answer = "Yes."
    done = wait_next_done(qtbot, page, lambda: page.send_text("Is it old?"))
    assert done.text.strip() == "Yes."
    asked = " ".join(m.content for m in llm.calls[-1])
    assert "How many people live there?" in asked and "About two million people." in asked
    assert page.chat.messages()[-2:] == [("user", "Is it old?"), ("assistant", done.text)]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert not page.load_conversation(broken)
    assert page.last_level == "error" and "broken.json" in page.last_message
    assert "Traceback" not in page.last_message
    assert len(page.chat.messages()) == 6  # what was shown stays


# ---- options ---------------------------------------------------------------------------------------------------


def tiny_en_settings() -> Settings:
    """Settings whose speech recognition is the shipped English-only tiny.en (the default is the
    multilingual base): what the tests below check about a model's languages and a change of model."""
    settings = Settings.load()
    settings.options(AssistantOptions).asr_model = "whisper-tiny-en-shipped"
    return settings


def test_options_persist_and_apply_live(make_page: Callable[..., AssistantPage], qtbot: Any, tmp_path: Path) -> None:
    page = make_page(settings=tiny_en_settings())
    panel = page.settings_panel
    listening, speech, llm, answers, voice = panel.listening, panel.speech, panel.llm, panel.answers, panel.voice
    assert not panel.sections["answers"].expanded  # folded at first
    page.show_settings("answers")
    assert panel.sections["answers"].expanded and answers.isVisibleTo(page)
    page.send_text("Hello?")
    qtbot.waitUntil(lambda: page.ready, timeout=WAIT)
    worker = page.worker

    listening.silence_spin.setValue(700)
    listening.threshold.slider.setValue(35)
    listening.output_combo.setCurrentIndex(listening.output_combo.findData(True))
    listening.barge_check.setChecked(False)
    speech.language_combo.setCurrentIndex(speech.language_combo.findData("de"))
    speech.language_combo.activated.emit(speech.language_combo.currentIndex())
    assert speech.asr_note.isVisibleTo(page)  # tiny.en understands English only
    answers.memory_spin.setValue(2048)
    answers.temperature_spin.setValue(0.2)
    answers.prompt_edit.setPlainText("Answer like a pirate.")
    panel.flush()
    llm.url_edit.setText("http://127.0.0.1:8080/v1")
    llm.url_edit.editingFinished.emit()
    assert page.options.min_silence_ms == 700 and page.options.headset and not page.options.barge_in
    # Applied live: the worker has them (no model was reloaded for these).
    qtbot.waitUntil(lambda: worker.options.min_silence_ms == 700, timeout=WAIT)
    assert worker.options.system_prompt == "Answer like a pirate." and worker is page.worker
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
    llm.set_llm_path("gguf", gguf)
    assert page.options.llm_backend == "gguf" and page.options.llm_model == str(gguf)
    assert llm.path_row.isVisibleTo(page) and not llm.url_row.isVisibleTo(page)
    llm.llm_combo.setCurrentIndex(llm.llm_combo.findData("openai"))
    assert page.options.llm_backend == "openai"
    assert llm.url_row.isVisibleTo(page) and not llm.path_row.isVisibleTo(page)
    # Bark takes a model folder; going back to Piper brings the Piper voice back.
    bark = tmp_path / "bark-small"
    bark.mkdir()
    voice.set_tts("bark", bark)
    assert page.options.tts_engine == "bark" and page.options.voice == str(bark)
    assert voice.voice_combo.currentData() == str(bark)
    voice.tts_combo.setCurrentIndex(voice.tts_combo.findData("piper"))
    assert page.options.tts_engine == "piper" and page.options.voice == "piper-en-us-joe-medium-shipped"
    voice.speed_spin.setValue(1.2)
    page.save_options()
    assert Settings.load().options(AssistantOptions).llm_backend == "openai"
    assert Settings.load().options(AssistantOptions).speed == pytest.approx(1.2)

    # A new page (the next start of the studio) shows what was chosen.
    again = make_page(settings=Settings.load())
    p2 = again.settings_panel
    assert p2.listening.silence_spin.value() == 700 and p2.listening.threshold.value() == 35
    assert p2.listening.output_combo.currentData() is True and not p2.listening.barge_check.isChecked()
    assert p2.speech.language_combo.currentData() == "de"
    assert p2.llm.llm_combo.currentData() == "openai" and p2.llm.url_edit.text() == "http://127.0.0.1:8080/v1"
    assert p2.answers.prompt_edit.toPlainText() == "Answer like a pirate."
    assert "Gemma" not in again.note


def test_model_lists_come_from_the_store(make_page: Callable[..., AssistantPage]) -> None:
    page = make_page()
    panel = page.settings_panel
    asr = [c.key for c in panel.speech.asr_picker.choices]
    assert asr[0] == "whisper-tiny-en-shipped" and "faster-whisper-small" in asr
    assert panel.speech.asr_picker.current_key() == AssistantOptions().asr_model == "whisper-base-shipped"
    combo = panel.speech.asr_picker.combo
    texts = [combo.itemText(i).strip() for i in range(combo.count())]
    assert texts[0] == "Ready to use" and "Can be downloaded" in texts  # grouped under headings
    assert texts.index("Can be downloaded") < combo.findData("faster-whisper-small")
    voices = [c.key for c in panel.voice.voice_picker.choices]
    assert "piper-en-us-joe-medium-shipped" in voices
    assert panel.llm.llm_combo.currentData() == "builtin"
    assert "Qwen2.5" in panel.llm.llm_hint.text()


def test_switching_to_a_local_server_live(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    server = FakeOpenAIServer(("Bonjour from the server.",), models=("tiny-test-model", "other-model"))
    with server:
        url = server.url
        page = make_page(Components_(ScriptedLLM("Scripted.")))
        first = wait_next_done(qtbot, page, lambda: page.send_text("Who answers?"))
        assert first.text.strip() == "Scripted."
        worker = page.worker
        panel = page.settings_panel.llm
        page.show_settings("llm")
        panel.llm_combo.setCurrentIndex(panel.llm_combo.findData("openai"))
        assert page.options.llm_backend == "openai"
        # Nothing answers at the default address (Ollama's): a sentence, and the previous model stays.
        qtbot.waitUntil(lambda: "No language model server answers" in page.last_message, timeout=WAIT)
        assert page.last_level == "error" and not page.loading
        qtbot.waitUntil(lambda: any("No language model server answers" in m for m in notified(page)), timeout=5000)
        panel.url_edit.setText(server.url)
        panel.url_edit.editingFinished.emit()
        qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.server_model_combo.count() == 2, timeout=WAIT)
        panel.server_model_combo.setCurrentIndex(panel.server_model_combo.findText("tiny-test-model"))
        panel.server_model_combo.activated.emit(panel.server_model_combo.currentIndex())
        assert page.options.server_url == server.url.rstrip("/")
        assert page.options.server_model == "tiny-test-model"
        # Only the language model is loaded again, in the same worker.
        qtbot.waitUntil(lambda: page.loaded_info.get("llm") != "Scripted test model", timeout=WAIT)
        qtbot.waitUntil(lambda: not page.loading, timeout=WAIT)
        assert page.worker is worker
        done = wait_next_done(qtbot, page, lambda: page.send_text("And now?"))
        assert done.text.strip() == "Bonjour from the server."
        assert server.chat_requests[-1]["body"]["model"] == "tiny-test-model"
        assert "Gemma" not in page.note

    # The server is gone: Refresh says so in a sentence, and the button works again.
    qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
    assert not panel.refresh_button.isEnabled()
    qtbot.waitUntil(panel.refresh_button.isEnabled, timeout=WAIT)
    assert page.last_level == "warning" and "No language model server answers" in page.last_message
    assert url.rstrip("/") in page.last_message


# ---- problems as sentences ------------------------------------------------------------------------------------


def test_missing_microphone_and_speaker_leave_typed_answers(
    make_page: Callable[..., AssistantPage], qtbot: Any
) -> None:
    def no_mic() -> Any:
        raise UserError("No microphone was found. Plug one in, or choose one in Devices.")

    def no_speaker() -> Any:
        raise UserError("No speaker was found.")

    page = make_page(Components_(ScriptedLLM("Text only.")), microphone=no_mic, speaker=no_speaker)
    page.start_listening()
    # The microphone's problem is said once on the page: on the microphone line, with Retry, as a warning
    # (not on the message line as well).
    qtbot.waitUntil(lambda: page.live_problem.active, timeout=WAIT)
    assert page.live_problem.text.startswith("No microphone was found")
    assert page.live_problem.retry_button.isVisibleTo(page)
    assert not page.listening and not page.listen_button.isChecked()
    assert "No microphone was found" not in page.message_line.label.text()
    assert "No microphone was found" not in page.last_message
    # It reaches the notifications once, under the tool's name; so does the speaker's.
    QApplication.processEvents()
    qtbot.waitUntil(lambda: any("No microphone was found" in m for m in notified(page)), timeout=5000)
    mic = [n for n in page.notifications.items if "No microphone was found" in n.message]  # type: ignore[attr-defined]
    assert len(mic) == 1 and mic[0].count == 1 and mic[0].source == "Voice assistant" and mic[0].level == "warning"
    assert any("No speaker was found" in m for m in notified(page))
    page.send_text("Can you hear me?")
    assert wait_done(qtbot, page).text.strip() == "Text only."
    assert page.chat.reply_texts() == ["Text only. "] or page.chat.reply_texts()[0].strip() == "Text only."


def test_a_broken_model_is_a_sentence_and_can_be_retried(
    make_page: Callable[..., AssistantPage], qtbot: Any
) -> None:
    components = Components_(ScriptedLLM("Fine now."), fail="The model folder /tmp/nothing has no config.json.")
    page = make_page(components)
    page.send_text("Are you there?")
    qtbot.waitUntil(lambda: page.state_pill.state == "failed", timeout=WAIT)
    assert "has no config.json" in page.last_message and page.last_level == "error"
    assert "Traceback" not in page.last_message
    assert not page.jobs.progress_row.isVisibleTo(page)
    assert "not sent" in page.chat.bubbles()[0].header.text()
    qtbot.waitUntil(lambda: any("has no config.json" in m for m in notified(page)), timeout=5000)
    # Fixed (say, another model chosen): the next question starts a fresh worker.
    components.fail = ""
    page.send_text("And now?")
    assert wait_done(qtbot, page).text.strip() == "Fine now."


def test_loading_can_be_cancelled(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    page = make_page(Components_(ScriptedLLM("Done."), delay=3.0))
    page.start_listening()
    assert page.loading and page.jobs.cancel_button.isVisibleTo(page)
    qtbot.mouseClick(page.jobs.cancel_button, Qt.MouseButton.LeftButton)
    assert not page.loading and page.worker is None and not page.listening
    assert "cancelled" in page.last_message


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


def test_page_in_the_main_window(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
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
        page = window.pages["assistant"]
        assert isinstance(page, AssistantPage) and page.worker is None
        opened: list[bool] = []
        monkeypatch.setattr(window, "open_model_manager", lambda: opened.append(True))
        page.models_action.trigger()
        assert opened == [True]
        window.show_page("assistant")
        # File › Open (Ctrl+O) is the page's Load.
        loads: list[Any] = []
        monkeypatch.setattr(page, "load_conversation", lambda path=None: loads.append(path))
        assert window.open_action.isEnabled() and window.open_action.shortcut() == QKeySequence.StandardKey.Open
        window.open_action.trigger()
        assert loads == [None]
        done = wait_next_done(qtbot, page, lambda: page.send_text("Hello?"))
        assert done.text.strip() == "Hello from the window."
        page.start_listening()
        qtbot.waitUntil(lambda: page.listening and page.ready, timeout=WAIT)
    finally:
        window.close()  # stops the assistant, releases the microphone and speaker
        window.notifications.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name == "Assistant"]
    assert not out.is_open


# ---- the page -------------------------------------------------------------------------------------------------


def test_actions_are_buttons_on_the_action_bar_around_the_transcript(
    make_page: Callable[..., AssistantPage], qtbot: Any
) -> None:
    page = make_page()
    assert isinstance(page, ToolPage) and page.tool_id == "assistant"
    bar = page.action_bar
    buttons = [bar.widgetForAction(a) for a in bar.actions()]
    buttons = [b for b in buttons if isinstance(b, QToolButton)]
    assert [b.defaultAction().text() for b in buttons] == [
        "Start listening", "Stop reply", "Hold to talk", "New", "Save…", "Load…", "Models…"
    ]
    for button in buttons:  # real framed buttons with an icon beside the text
        assert button.property("actionButton") and not button.defaultAction().icon().isNull()
        assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    assert page.listen_button.property("primary") is True
    assert [b.property("primary") for b in buttons].count(True) == 1
    assert page.stop_action.shortcut() == QKeySequence("Esc") and "(Esc)" in page.stop_action.toolTip()
    assert page.save_action.shortcut() == QKeySequence("Ctrl+S") and "Ctrl+S" in page.save_action.toolTip()
    assert page.open_action.text() == "Load…" and page.open_action.shortcut().isEmpty()  # the window's Ctrl+O
    assert QKeySequence(QKeySequence.StandardKey.Open).toString(QKeySequence.SequenceFormat.NativeText) in (
        page.open_action.toolTip()
    )
    # The transcript is the page's big middle: the state row above it, the latency and the text box under it.
    layout = page.center_layout  # indexOf, not itemAt: no wrappers of layout items outlive their rows
    places = [layout.indexOf(w) for w in (page.strip, page.chat, page.latency, page.compose)]
    assert 0 <= places[0] < places[1] < places[2] < places[3]
    assert layout.stretch(places[1]) == 1 and sum(layout.stretch(i) for i in range(layout.count())) == 1
    assert page.compose.send_button.text() == "Send" and not page.compose.send_button.icon().isNull()
    # Start listening is Stop listening while on.
    qtbot.mouseClick(page.listen_button, Qt.MouseButton.LeftButton)
    assert page.listening and page.listen_action.isChecked() and page.listen_button.text() == "Stop listening"
    assert page.listen_action.toolTip() == "Close the microphone"
    qtbot.mouseClick(page.listen_button, Qt.MouseButton.LeftButton)
    assert not page.listening and not page.listen_action.isChecked()
    assert page.listen_button.text() == "Start listening" and page.listen_action.toolTip() == LISTEN_TIPS["vad"]


def test_settings_are_inspector_sections_with_model_pickers(
    make_page: Callable[..., AssistantPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = make_page(settings=tiny_en_settings())
    panel = page.settings_panel
    assert list(page.inspector.sections) == ["listening", "speech", "llm", "answers", "voice"]
    assert [s.title for s in page.inspector.sections.values()] == [
        "Listening", "Speech recognition", "Language model", "Answers", "Voice"
    ]
    assert panel.sections["listening"].isAncestorOf(panel.listening.mode_combo)
    assert panel.sections["llm"].isAncestorOf(panel.llm.llm_combo)
    assert panel.sections["answers"].isAncestorOf(panel.answers.prompt_edit)
    picker = panel.speech.asr_picker
    assert isinstance(picker, ModelPicker) and isinstance(panel.voice.voice_picker, ModelPicker)
    opened: list[Any] = []
    monkeypatch.setattr("snowai_studio.assistant.page.open_model_manager", lambda owner, store: opened.append(store))
    # A Whisper model that is not downloaded: "Get it…" opens the model manager; the model in use stays.
    picker.combo.setCurrentIndex(picker.combo.findData("faster-whisper-large-v3"))
    assert picker.get_button.isVisibleTo(page) and picker.note.isVisibleTo(page)
    assert page.options.asr_model == "whisper-tiny-en-shipped"
    picker.get_button.click()
    assert opened == [page.store]
    # A ready one is used at once.
    picker.combo.setCurrentIndex(picker.combo.findData("whisper-base-shipped"))
    assert page.options.asr_model == "whisper-base-shipped" and not picker.get_button.isVisibleTo(page)
    assert not picker.note.isVisibleTo(page)  # no empty line under a ready model
    # The window says which model was just imported: the page selects and uses it.
    page.model_imported("whisper-tiny-en-shipped")
    assert page.options.asr_model == "whisper-tiny-en-shipped" and picker.current_key() == "whisper-tiny-en-shipped"
    page.model_imported("smollm2-135m-instruct-q4-1")  # a language model of the store, listed by name
    assert page.options.llm_backend == "gguf" and page.options.llm_model == "smollm2-135m-instruct-q4-1"
    assert panel.llm.llm_combo.currentData() == "store:smollm2-135m-instruct-q4-1"
    assert panel.llm.llm_combo.currentText() == "SmolLM2 135M Instruct, Q4_1 GGUF"
    assert not panel.llm.path_row.isVisibleTo(page)  # no file to pick for a model of the store
    panel.llm.llm_combo.setCurrentIndex(panel.llm.llm_combo.findData("builtin"))
    assert page.options.llm_model == "gemma-3-270m-q4-k-m-shipped"
    panel.llm.llm_combo.setCurrentIndex(panel.llm.llm_combo.findData("store:smollm2-135m-instruct-q4-1"))
    assert page.options.llm_model == "smollm2-135m-instruct-q4-1"
    before = copy.deepcopy(page.options)
    page.model_imported("no-such-model")
    assert page.options == before
    # After the model manager closed, the lists come from the store anew.
    other = shipped_store()
    page.context.model_store = other
    page.models_changed()
    assert panel.speech.store is other and panel.voice.store is other


def test_start_listening_waits_for_a_microphone(qtbot: Any, tmp_path: Path) -> None:
    settings = Settings.load()
    wav = tmp_path / "voice.wav"
    settings.devices.microphone = str(wav)  # a sound file standing in for the microphone, not there yet
    notifications = NotificationManager()
    context = StudioContext(settings, notifications, shipped_store(), {})
    page = AssistantPage(context)
    qtbot.addWidget(page)
    page.show()
    try:
        # The check runs off the UI thread; its answer disables Start listening and Hold to talk.
        qtbot.waitUntil(lambda: not page.microphone_ok, timeout=WAIT)
        reason = page.microphone_reason
        assert reason == (
            "The sound file voice.wav chosen as the microphone was not found: choose another one in Devices."
        )
        assert reason.count(". ") == 0 and reason.endswith(".")  # one sentence
        assert not page.listen_action.isEnabled() and not page.listen_button.isEnabled()
        assert not page.talk_action.isEnabled()
        assert page.listen_action.toolTip() == reason  # in its tooltip
        assert page.live.stats_label.text() == reason and page.live.stats_label.isVisibleTo(page)  # on the page
        assert not page.start_listening() and not page.listening and page.worker is None
        # The file is there now and Devices says so: Start listening is back, the reason goes.
        wav.write_bytes(b"RIFF")
        page.devices_changed()
        qtbot.waitUntil(lambda: page.microphone_ok, timeout=WAIT)
        assert page.listen_action.isEnabled() and page.listen_action.toolTip() == LISTEN_TIPS["vad"]
        assert not page.live.stats_label.isVisibleTo(page)
        # The page's own switch, for any check.
        page.set_microphone_available(False, "")
        assert not page.listen_action.isEnabled() and page.listen_action.toolTip() == NO_MICROPHONE
        page.set_microphone_available(True)
        assert page.listen_action.isEnabled() and page.talk_action.isEnabled()
    finally:
        page.shutdown()
    assert not [w.name for w in base.live_workers() if w.name == "Voice assistant tasks"]


def test_an_injected_microphone_is_there_at_once(make_page: Callable[..., AssistantPage]) -> None:
    page = make_page()
    assert page.microphone_ok and page.listen_action.isEnabled()
    assert not page.checks.started  # nothing asked of the sound system


def test_the_page_fits_1280x720(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from snowai_studio.app import create_window

    out = PacedSpeaker(48000, buffer_seconds=0.1)
    extras = {
        "assistant_components_factory": Components_(ScriptedLLM()),
        "microphone_factory": lambda: EchoRoomMicrophone(out, samplerate=48000, blocksize=960, gain=0.0),
        "speaker_factory": lambda: out,
    }
    window = create_window(Settings.load(), extras)
    qtbot.addWidget(window)
    window.resize(1280, 720)
    window.show()
    try:
        window.show_page("assistant")
        page = window.pages["assistant"]
        qtbot.waitUntil(lambda: page.isVisible() and page.inspector.viewport().width() > 0, timeout=5000)
        for mode in ("vad", "ptt"):  # push-to-talk adds Hold to talk
            page.settings_panel.listening.mode_combo.setCurrentIndex(
                page.settings_panel.listening.mode_combo.findData(mode)
            )
            QApplication.processEvents()
            bar = page.action_bar
            chevron = bar.findChild(QToolButton, "qt_toolbar_ext_button")
            assert chevron is None or not chevron.isVisible()  # no overflow: every action is on the bar
            shown = [a for a in bar.actions() if isinstance(bar.widgetForAction(a), QToolButton) and a.isVisible()]
            for action in shown:
                button = bar.widgetForAction(action)
                assert button.isVisible() and bar.rect().contains(button.geometry()), button.text()
            assert page.talk_button.isVisible() == (mode == "ptt")
        # The inspector scrolls rather than cutting its sections off.
        inspector = page.inspector
        assert inspector.width() >= 300
        assert inspector.widget().minimumSizeHint().width() <= inspector.viewport().width()
        # The transcript takes the room that is left.
        assert page.chat.width() >= 700 and page.chat.height() >= 300
    finally:
        window.close()
        window.notifications.uninstall_hooks()


def test_a_microphone_that_stops_is_said_once(make_page: Callable[..., AssistantPage], qtbot: Any) -> None:
    page = make_page()
    assert page.start_listening()
    sentence = "The microphone stopped sending sound; check its cable."
    page.session.listening_halted.emit(f"Microphone: {sentence}")
    # On the microphone line with Retry; listening stops; the message line does not repeat it.
    assert page.live_problem.active and page.live_problem.text == sentence
    assert not page.listening and page.listen_button.text() == "Start listening"
    assert sentence not in page.message_line.label.text()
    # The worker did not report it itself: the page sends it to the notifications, once, under its name.
    QApplication.processEvents()
    qtbot.waitUntil(lambda: any(sentence in m for m in notified(page)), timeout=5000)
    items = [n for n in page.notifications.items if sentence in n.message]  # type: ignore[attr-defined]
    assert len(items) == 1 and items[0].count == 1 and items[0].source == "Voice assistant"
    # The same problem reported again by the worker stays off the message line.
    page.session.problem.emit("warning", f"Microphone: {sentence}")
    assert sentence not in page.message_line.label.text()
    # Retry clears the bar and listens again.
    page.live_problem.retry_button.click()
    assert page.listening and not page.live_problem.active
