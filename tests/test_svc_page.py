"""The voice-conversion dock end to end with the real engines: Start converts speech from a fake
microphone into a fake speaker with the built-in voice changer (live numbers and level meters),
parameters and presets apply live, files convert with progress and cancel, fixture checkpoints load,
and a corrupt checkpoint or a missing device is one sentence in the dock and in the notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from PySide6.QtCore import Qt
from svc_speech import pitch_shift, speech, write_speech

from snowai_studio.context import StudioContext
from snowai_studio.notifications import NotificationManager
from snowai_studio.voice_conversion import create_page
from snowai_studio.voice_conversion.page import VoiceConversionPage
from snowai_studio.voice_conversion.texts import BUILTIN, live_text
from workers import base
from workers.media.fakes import ArrayMicrophone, MemorySink
from workers.models.store import ModelStore
from workers.settings import Settings
from workers.voice_conversion.options import PRESETS, VoiceConversionOptions

WAIT = 60000
RATE = 48000
#: What a page gets of a 1920x1080 and of a 1280x720 window (the switcher, menus and status bar take the rest).
PAGE_AT_1920 = (1850, 990)
PAGE_AT_1280 = (1210, 630)


class FakeDevices:
    """The studio's microphone and speaker as the tests inject them (``microphone_factory`` and
    ``speaker_factory`` in the context's extras)."""

    def __init__(self, loop: bool = False) -> None:
        self.audio, self.rate = speech()
        self.loop = loop
        self.mics: list[ArrayMicrophone] = []
        self.sinks: list[MemorySink] = []

    def microphone(self) -> ArrayMicrophone:
        mic = ArrayMicrophone(self.audio, self.rate, RATE, 1024, paced=True, loop=self.loop, label="Fake mic")
        self.mics.append(mic)
        return mic

    def speaker(self) -> MemorySink:
        self.sinks.append(MemorySink(RATE, 1))
        return self.sinks[-1]


@pytest.fixture
def make_dock(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    made: list[VoiceConversionPage] = []
    managers: list[NotificationManager] = []

    def make(devices: FakeDevices | None = None, store: Any = None, **extras: Any) -> VoiceConversionPage:
        notifications = NotificationManager()
        notifications.install_hooks()
        managers.append(notifications)
        if devices is not None:
            extras.setdefault("microphone_factory", devices.microphone)
            extras.setdefault("speaker_factory", devices.speaker)
        context = StudioContext(
            Settings.load(), notifications, store if store is not None else ModelStore(tmp_path / "models"), extras
        )
        dock = create_page(context)
        dock.notifications = notifications  # type: ignore[attr-defined]
        qtbot.addWidget(dock)
        dock.resize(900, 700)
        dock.show()
        made.append(dock)
        return dock

    yield make
    for dock in made:
        dock.shutdown()
    for manager in managers:
        manager.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name == "Voice conversion"]


def wait_ready(qtbot: Any, dock: VoiceConversionPage) -> None:
    if not dock.model_info:
        with qtbot.waitSignal(dock.model_changed, timeout=WAIT):
            dock.set_model(dock.options.model)


def test_start_converts_the_microphone_live_with_the_builtin_voice(make_dock: Any, qtbot: Any) -> None:
    devices = FakeDevices()
    dock = make_dock(devices)
    assert dock.model_combo.currentData() == BUILTIN
    assert "no model file" in dock.model_info_label.text()
    dock.pitch.set_value(5)
    dock.apply_preset("gpu")  # short blocks: the live numbers come often
    with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT) as started:
        dock.start_button.click()
    assert started.args == [True]
    assert dock.live_running and dock.start_button.text() == "Stop live" and dock.start_button.isChecked()
    qtbot.waitUntil(lambda: "Inference" in dock.stats_label.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: dock.in_meter.updates > 2 and dock.out_meter.updates > 2, timeout=WAIT)
    text = dock.stats_label.text()
    assert "ms" in text and "latency" in text and "real time" in text
    assert dock.in_meter.peak > -40 and dock.out_meter.peak > -40
    # The fake microphone plays the sentence once; the live conversion then stops by itself.
    qtbot.waitUntil(lambda: not dock.live_running, timeout=WAIT)
    assert dock.start_button.text() == "Start live" and not dock.start_button.isChecked()
    assert devices.mics[0].close_count >= 1 and devices.sinks[0].close_count >= 1
    out = devices.sinks[0].data[:, 0]
    assert len(out) / RATE == pytest.approx(len(devices.audio) / devices.rate, abs=0.6)
    assert pitch_shift(devices.audio, devices.rate, out, RATE) == pytest.approx(5.0, abs=0.7)


def test_stop_releases_the_devices_and_settings_apply_live(make_dock: Any, qtbot: Any) -> None:
    devices = FakeDevices(loop=True)
    dock = make_dock(devices)
    with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT):
        dock.start_live()
    worker = dock.worker
    dock.pitch.set_value(-7)
    dock.formant.set_value(2.5)
    dock.output_gain.set_value(-6)
    dock.silence.set_value(-70)
    dock.passthrough.setChecked(True)
    qtbot.waitUntil(lambda: worker.options.passthrough, timeout=WAIT)
    assert (worker.options.pitch, worker.options.formant) == (-7.0, 2.5)
    assert (worker.options.output_gain_db, worker.options.silence_db) == (-6.0, -70.0)
    dock.apply_preset("cpu")
    assert dock.preset_combo.currentData() == "cpu"
    assert dock.block.value() == PRESETS["cpu"][0]
    qtbot.waitUntil(lambda: worker.options.block_seconds == PRESETS["cpu"][0], timeout=WAIT)
    dock.block.set_value(0.3)
    assert dock.preset_combo.currentData() == "custom"
    qtbot.waitUntil(lambda: worker.options.block_seconds == 0.3, timeout=WAIT)
    assert len(devices.mics) == 1  # no restart: the same microphone all along
    assert dock.live_running
    with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT) as stopped:
        dock.start_button.click()
    assert stopped.args == [False]
    qtbot.waitUntil(lambda: devices.mics[0].close_count == 1 and devices.sinks[0].close_count == 1, timeout=WAIT)
    assert "Not running" in dock.stats_label.text()
    # The settings are kept for the next session.
    dock._save_settings()
    saved = Settings.load().options(VoiceConversionOptions)
    assert (saved.pitch, saved.formant, saved.block_seconds) == (-7.0, 2.5, 0.3)


def test_a_missing_microphone_is_a_sentence_in_the_dock(make_dock: Any, qtbot: Any) -> None:
    dock = make_dock(speaker_factory=lambda: MemorySink(RATE, 1))
    dock.input_combo.addItem("Studio mic 7", "Studio mic 7")  # chosen earlier, not connected now
    dock.input_combo.setCurrentIndex(dock.input_combo.count() - 1)
    dock.start_live()
    qtbot.waitUntil(lambda: dock.last_level == "error", timeout=WAIT)
    assert not dock.live_running and not dock.start_button.isChecked()
    assert "Studio mic 7" in dock.last_message or "Sound is unavailable" in dock.last_message
    assert "Traceback" not in dock.last_message
    qtbot.waitUntil(lambda: any(n.level == "error" for n in dock.notifications.items), timeout=WAIT)
    # Said once on the page: on the live panel's problem bar with Retry, not again on the message line;
    # and once in the notifications.
    assert dock.live_problem.active and dock.last_message in dock.live_problem.text
    assert dock.last_message not in dock.message_line.label.text()
    assert len([n for n in dock.notifications.items if n.level == "error"]) == 1


def test_files_convert_with_progress_and_outputs_beside_or_in_a_folder(
    make_dock: Any, qtbot: Any, tmp_path: Path
) -> None:
    dock = make_dock()
    src = write_speech(tmp_path / "in" / "line.ogg", rate=32000)
    assert dock.add_files([src, src]) == 1  # listed once
    assert dock.convert_button.isEnabled()
    dock.pitch.set_value(3)
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
        assert dock.progress_box.isVisible() and not dock.convert_button.isEnabled()
        assert not dock.open_action.isEnabled()  # the list stays as it is while it converts
    assert done.args == ["files", True], dock.last_message
    out = tmp_path / "in" / "line-converted.wav"
    assert out.is_file() and "Converted 1 file" in dock.last_message
    assert soundfile.info(str(out)).duration == pytest.approx(soundfile.info(str(src)).duration, abs=0.05)
    assert not dock.progress_box.isVisible() and dock.open_action.isEnabled()

    dock.set_output_folder(tmp_path / "converted")
    dock.format_combo.setCurrentIndex(dock.format_combo.findData("flac"))
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
    assert done.args == ["files", True]
    assert (tmp_path / "converted" / "line-converted.flac").is_file()
    assert src.is_file()


def test_file_conversion_cancels(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    dock = make_dock()
    src = write_speech(tmp_path / "long.wav", seconds=240.0, rate=16000)
    dock.add_files([src])
    dock.set_output_folder(tmp_path / "out")
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
        # The shared job runner: what runs, its progress in steps of the file, Cancel.
        runner = dock.job_runner
        assert runner.label.text() == "Converting 1 file" and runner.bar.maximum() == 1000
        # Cancel as soon as the conversion runs (an idle machine converts the file in a few seconds).
        qtbot.waitUntil(lambda: dock.cancel_button.isVisible() and dock.cancel_button.isEnabled(), timeout=WAIT)
        dock.cancel_button.click()
    assert done.args == ["files", False]
    assert not dock.progress_box.isVisible() and dock.message_line.label.text() == dock.last_message
    assert "cancelled" in dock.last_message.lower()
    assert not list((tmp_path / "out").glob("*.wav"))
    assert dock.convert_button.isEnabled()


def test_a_corrupt_checkpoint_is_a_sentence_and_the_voice_stays(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    bad = tmp_path / "MyVoice.pth"
    bad.write_bytes(b"\x80\x02 not really a checkpoint" * 20)
    dock = make_dock(svc_choose_file=lambda parent, title, filter_: str(bad))
    wait_ready(qtbot, dock)
    dock.voice.import_rvc_button.click()
    qtbot.waitUntil(lambda: dock.last_level == "error", timeout=WAIT)
    assert "MyVoice.pth" in dock.last_message and "Traceback" not in dock.last_message
    assert dock.model_combo.currentData() == BUILTIN
    assert dock.worker.model_info["dsp"] is True
    qtbot.waitUntil(lambda: any("MyVoice.pth" in n.message for n in dock.notifications.items), timeout=WAIT)
    # Once: on the message line and once in the notifications (the worker keeps its details for the log file).
    qtbot.wait(200)  # anything sent from the worker's thread has arrived by now
    assert len([n for n in dock.notifications.items if "MyVoice.pth" in n.message]) == 1
    assert "MyVoice.pth" in dock.message_line.label.text()


def test_a_file_that_cannot_be_converted_is_said_once(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    good = write_speech(tmp_path / "fine.wav", seconds=1.0)
    dock = make_dock()
    dock.add_files([bad])
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
    assert done.args == ["files", False] and dock.last_level == "error" and "broken.wav" in dock.last_message
    qtbot.waitUntil(lambda: any("broken.wav" in n.message for n in dock.notifications.items), timeout=WAIT)
    assert len([n for n in dock.notifications.items if "broken.wav" in n.message]) == 1
    dock.add_files([good])  # one fails, one is written: the summary says both, once
    with qtbot.waitSignal(dock.job_done, timeout=WAIT):
        dock.convert()
    assert dock.last_level == "warning" and "Converted 1 file" in dock.last_message
    assert "1 could not be converted (broken.wav" in dock.last_message
    qtbot.waitUntil(lambda: len([n for n in dock.notifications.items if "broken.wav" in n.message]) == 2, timeout=WAIT)
    assert [n.level for n in dock.notifications.items if "broken.wav" in n.message] == ["error", "warning"]


@pytest.mark.parametrize("kind", ["sovits-4.1", "rvc-v2"])
def test_fixture_checkpoints_load_in_the_dock(make_dock: Any, qtbot: Any, tmp_path: Path, kind: str) -> None:
    import svc_fixtures
    from test_svc_worker import fixture_model

    model, store = fixture_model(svc_fixtures, tmp_path, kind)
    dock = make_dock(
        store=store,
        svc_choose_folder=lambda parent, title: model,
        svc_choose_file=lambda parent, title, filter_: model,
    )
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["model"] == model) as loaded:
        if kind.startswith("sovits"):
            assert dock.import_sovits()
        else:
            assert dock.import_rvc()
    assert loaded.args[0]["kind"] == kind
    assert dock.model_combo.currentData() == model
    assert ("so-vits-svc" if kind.startswith("sovits") else "RVC") in dock.model_info_label.text()
    assert not dock.formant.isEnabled() and dock.index_row.isVisibleTo(dock)
    assert "ready" in dock.last_message
    if kind.startswith("rvc"):
        check_index(qtbot, dock, tmp_path)
    src = write_speech(tmp_path / "speech.wav")
    dock.add_files([src])
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
    assert done.args == ["files", True], dock.last_message
    # Back to the built-in voice; the model stays in the list for next time.
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT):
        dock.set_model("")
    assert dock.model_combo.findData(model) >= 0 and dock.formant.isEnabled()


def test_voices_imported_into_the_model_store_are_listed(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    import svc_fixtures

    store = svc_fixtures.fixture_store(tmp_path / "store")
    model = store.import_file(svc_fixtures.make_rvc_checkpoint(tmp_path / "src.pth", version="v1"), "voice_conversion",
                              name="Studio RVC")  # fmt: skip
    dock = make_dock(store=store)
    index = dock.model_combo.findData(model.id)
    assert index > 0 and dock.model_combo.itemText(index).strip() == "Studio RVC"  # indented under its group
    assert dock.model_combo.findData("contentvec-best") < 0  # encoders are not voices
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["model"] == model.id) as done:
        dock.model_combo.setCurrentIndex(index)
        dock.model_combo.activated.emit(index)
    assert done.args[0]["kind"] == "rvc-v1"
    assert dock.model_combo.currentData() == model.id


def faiss_index(path: Path, dim: int) -> Path:
    import faiss

    index = faiss.IndexFlatL2(dim)
    index.add(np.random.default_rng(0).standard_normal((64, dim)).astype(np.float32))
    faiss.write_index(index, str(path))
    return path


def check_index(qtbot: Any, dock: VoiceConversionPage, folder: Path) -> None:
    """A feature index of the wrong size is refused with a sentence; the right one loads."""
    assert not dock.index_ratio.isVisibleTo(dock)
    dock.choose_index(faiss_index(folder / "small.index", 256))
    qtbot.waitUntil(lambda: dock.last_level == "error", timeout=WAIT)  # the dock's own slot has run
    assert "256" in dock.last_message
    assert dock.options.index == "" and "No index" in dock.index_label.text()
    good = faiss_index(folder / "voice.index", 768)
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["index"] == str(good)):
        dock.choose_index(good)
    assert dock.index_label.text() == "Index: voice.index"
    assert dock.index_ratio.isVisibleTo(dock) and dock.clear_index_button.isEnabled()
    dock.index_ratio.set_value(0.8)
    qtbot.waitUntil(lambda: dock.worker.options.index_ratio == 0.8, timeout=WAIT)


def test_layout_narrow_and_wide(make_dock: Any, qtbot: Any) -> None:
    dock = make_dock()
    dock.resize(*PAGE_AT_1920)  # the live view and the recordings side by side
    qtbot.waitUntil(lambda: dock.wide_layout, timeout=5000)
    dock.resize(*PAGE_AT_1280)  # one above the other
    qtbot.waitUntil(lambda: not dock.wide_layout, timeout=5000)
    assert dock.worker is None  # nothing is loaded until it is needed


def test_live_text() -> None:
    text = live_text({"infer_ms": 12.3, "block_ms": 100, "latency_ms": 161, "algorithmic_ms": 150, "rtf": 0.12})
    assert text == "Inference 12 ms per 100 ms block · latency 161 ms (algorithmic 150 ms) · 0.12x real time"
    assert "too slow" in live_text({"infer_ms": 300, "rtf": 1.4})


def test_meters_and_devices_exist(make_dock: Any) -> None:
    devices = FakeDevices()
    dock = make_dock(devices)
    assert dock.input_combo.itemText(0) == "The studio's microphone"
    assert dock.output_combo.itemText(0) == "The studio's speaker"
    assert "virtual audio cable" in dock.cable_hint.text()
    assert np.isclose(dock.in_meter.level, dock.in_meter.floor_dbfs)


# ---- the page's layout, the output, the microphone -------------------------------------------------------
def test_every_action_is_a_button_on_top_and_nothing_is_cut_off_at_1280x720(
    make_dock: Any, qtbot: Any, tmp_path: Path
) -> None:
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QToolButton

    dock = make_dock(FakeDevices())
    dock.resize(*PAGE_AT_1280)
    dock.add_files([write_speech(tmp_path / "take.wav", seconds=1.0)])
    qtbot.waitUntil(lambda: dock.live_action.isEnabled(), timeout=WAIT)  # the studio's microphone is there
    page = dock.rect()

    def on_page(widget: Any) -> bool:
        return widget.isVisible() and page.contains(QRect(widget.mapTo(dock, widget.rect().topLeft()), widget.size()))

    overflow = dock.action_bar.findChild(QToolButton, "qt_toolbar_ext_button")
    assert overflow is None or not overflow.isVisible()  # no »» chevron hiding actions
    buttons = [dock.action_bar.widgetForAction(a) for a in dock.action_bar.actions()]
    named = {b.defaultAction().text(): b for b in buttons if isinstance(b, QToolButton) and b.defaultAction()}
    named.update({a.text(): b for b in buttons if isinstance(b, QToolButton) for a in b.actions()})
    for text in ("Open recordings…", "Convert", "Start live"):
        button = named[text]
        assert on_page(button) and button.isEnabled() and not button.icon().isNull(), text
        assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    assert dock.convert_button.property("primary") is True
    assert named["Open recordings…"].defaultAction() is dock.open_action  # File → Open and Ctrl+O
    shortcuts = dict(dock.page_shortcuts())
    assert shortcuts["Ctrl+Return"].startswith("Convert every recording")
    assert shortcuts["Ctrl+L"] == "Convert the microphone live to the output"
    # The middle: the live view and the recordings, large, with the job runner's line under them.
    for widget in (dock.live_view, dock.in_meter, dock.out_meter, dock.file_list, dock.message_line):
        assert on_page(widget), widget.objectName()
    assert dock.file_list.height() >= 150 and dock.file_list.width() >= 600
    # The inspector scrolls rather than cut anything off, even at its narrowest.
    inspector = dock.inspector
    for width in (340, 260):
        dock.resizeDocks([dock.inspector_dock], [width], Qt.Orientation.Horizontal)
        qtbot.waitUntil(lambda width=width: abs(dock.inspector_dock.width() - width) <= 2, timeout=5000)
        body = inspector.widget()
        assert body.minimumSizeHint().width() <= inspector.viewport().width(), width
        assert body.width() <= inspector.viewport().width()
    assert inspector.verticalScrollBar().maximum() > 0
    assert [s.title for s in inspector.sections.values()] == [
        "Voice model", "Pitch and voice", "Live", "Output", "Train a voice"
    ]


def test_the_wide_layout_uses_the_room_for_the_level_history(make_dock: Any, qtbot: Any) -> None:
    devices = FakeDevices()
    dock = make_dock(devices)
    dock.resize(*PAGE_AT_1920)
    qtbot.waitUntil(lambda: dock.wide_layout, timeout=5000)
    history = dock.live_view.history
    assert history.isVisible() and history.height() >= 300
    assert dock.live_view.height() >= 700 and dock.file_list.height() >= 600
    dock.apply_preset("gpu")
    with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT):
        dock.live_action.trigger()
    qtbot.waitUntil(lambda: len(history.levels) > 3, timeout=WAIT)
    assert dock.live_view.state_label.text() == "● LIVE"
    assert dock.live_view.latency_readout.value.text().endswith(" ms")
    assert dock.live_view.pitch_readout.value.text() == "0 st"
    dock.pitch.set_value(4)
    assert dock.live_view.pitch_readout.value.text() == "+4 st"
    with qtbot.waitSignal(dock.realtime_toggled, timeout=WAIT) as stopped:
        dock.live_action.trigger()
    assert stopped.args == [False] and dock.live_action.text() == "Start live"
    assert dock.live_view.state_label.text() == "Stopped"
    dock.resize(*PAGE_AT_1280)
    qtbot.waitUntil(lambda: not dock.wide_layout, timeout=5000)
    assert not history.isVisible()


def test_a_stereo_recording_is_written_as_the_summary_says(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    src = write_speech(tmp_path / "duet.wav", seconds=2.0, rate=44100, channels=2)
    dock = make_dock()
    out = tmp_path / "converted"
    dock.set_output_folder(out)
    output = dock.output_settings
    assert output.channels == "input" and "(default)" in output.channels_combo.currentText()
    dock.add_files([src])
    summary = output.panel.summary.text()
    assert "duet.wav (44.1 kHz, stereo) → duet-converted.wav" in summary
    assert "44.1 kHz, stereo (the converted voice on every channel)" in summary and "converted" in summary
    assert "never replaced" in summary
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
    assert done.args == ["files", True], dock.last_message
    first = out / "duet-converted.wav"
    info = soundfile.info(str(first))
    assert (info.samplerate, info.channels) == (44100, 2)
    assert f"{first} (44.1 kHz, stereo" in dock.last_message
    assert dock.message_line.label.text() == dock.last_message
    before = first.read_bytes()

    output.channels_combo.setCurrentIndex(output.channels_combo.findData("mono"))
    assert "44.1 kHz, mono" in output.panel.summary.text()
    with qtbot.waitSignal(dock.job_done, timeout=WAIT) as done:
        dock.convert()
    assert done.args == ["files", True], dock.last_message
    second = out / "duet-converted-2.wav"  # the first one is never replaced
    assert first.read_bytes() == before and soundfile.info(str(second)).channels == 1
    assert f"{second} (44.1 kHz, mono" in dock.last_message
    output.panel.set_format("mp3")
    assert "duet-converted.mp3: MP3, 44.1 kHz, mono" in output.panel.summary.text()


def test_the_output_choices_are_remembered_in_the_window_settings(make_dock: Any, tmp_path: Path) -> None:
    from snowai_studio.panels.page_settings import page_settings

    dock = make_dock()
    dock.set_output_folder(tmp_path / "voices")
    dock.output_settings.panel.set_format("flac")
    dock.output_settings.channels_combo.setCurrentIndex(dock.output_settings.channels_combo.findData("mono"))
    qs = page_settings()
    assert qs.value("voice_conversion/output") == str(tmp_path / "voices")
    assert (qs.value("voice_conversion/format"), qs.value("voice_conversion/channels")) == ("flac", "mono")
    again = make_dock()
    assert again.output_folder == tmp_path / "voices" and again.output_format() == "flac"
    assert again.output_settings.channels == "mono"
    summary = again.output_settings.panel.summary.text()
    assert "in " in summary and "voices" in summary
    again.output_settings.beside_button.click()  # back to "next to each original"
    assert again.output_folder is None and "next to each original" in again.output_settings.panel.summary.text()
    assert page_settings().value("voice_conversion/output") == ""


def test_start_live_needs_a_microphone(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    settings = Settings.load()
    settings.devices.microphone = str(tmp_path / "sounds" / "voice.wav")  # a sound file that is not there (yet)
    settings.save()
    dock = make_dock(speaker_factory=lambda: MemorySink(RATE, 1))
    qtbot.waitUntil(lambda: not dock.live_action.isEnabled(), timeout=WAIT)  # looked for at start
    assert "voice.wav" in dock.live_action.toolTip() and "voice.wav" in dock.stats_label.text()
    assert "Devices" in dock.stats_label.text()
    write_speech(tmp_path / "sounds" / "voice.wav", seconds=1.0)
    dock.devices_changed()  # the window says Devices closed
    qtbot.waitUntil(lambda: dock.live_action.isEnabled(), timeout=WAIT)
    assert "Not running" in dock.stats_label.text()
    assert "voice.wav" in dock.live_view.panel.source_label.text()
    dock.set_microphone_available(False, "The microphone is switched off.")
    assert not dock.live_action.isEnabled() and "switched off" in dock.live_action.toolTip()
    assert dock.stats_label.text() == "The microphone is switched off."
    dock.set_microphone_available(True)
    assert dock.live_action.isEnabled() and "Not running" in dock.stats_label.text()


def test_an_injected_microphone_counts_as_available(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    settings = Settings.load()
    settings.devices.microphone = str(tmp_path / "missing.wav")
    settings.save()
    dock = make_dock(FakeDevices())
    qtbot.waitUntil(lambda: dock.live.scanned, timeout=WAIT)
    assert dock.live_action.isEnabled() and "Not running" in dock.stats_label.text()
    assert dock.input_combo.itemText(0) == "The studio's microphone"


def test_voices_imported_in_the_model_manager_are_listed_and_used(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    import svc_fixtures

    store = svc_fixtures.fixture_store(tmp_path / "store")
    dock = make_dock(store=store)
    assert not dock.voice.encoder_row.isVisibleTo(dock)  # the store has the content encoders
    model = store.import_file(svc_fixtures.make_rvc_checkpoint(tmp_path / "new.pth", version="v2"), "voice_conversion",
                              name="New RVC")  # fmt: skip
    dock.models_changed()
    assert dock.model_combo.findData(model.id) >= 0
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["model"] == model.id):
        dock.model_imported(model.id)
    assert dock.model_combo.currentData() == model.id and dock.active_model == model.id
    dock.model_imported("contentvec-best")  # an encoder is not a voice: the voice in use stays
    assert dock.pending_model is None and dock.model_combo.currentData() == model.id


def test_a_model_voice_without_a_content_encoder_says_to_get_one(make_dock: Any, qtbot: Any, tmp_path: Path) -> None:
    dock = make_dock()  # an empty model store
    assert not dock.voice.encoder_row.isVisibleTo(dock)  # the built-in changer needs none
    opened: list[bool] = []
    dock.voices.open_model_manager = lambda: opened.append(True)  # type: ignore[method-assign]
    dock.set_model(str(tmp_path / "Singer.pth"))
    assert dock.voice.encoder_row.isVisibleTo(dock) and "not downloaded" in dock.voice.encoder_note.text()
    qtbot.waitUntil(lambda: dock.last_level == "error", timeout=WAIT)  # the model file is not there either
    assert not dock.voice.encoder_row.isVisibleTo(dock) and dock.active_model == ""


def test_the_output_summary_names_rate_and_channels_for_each_case() -> None:
    from snowai_studio.voice_conversion.texts import InputShape, output_summary

    take, intro = InputShape("take.wav", 44100, 2), InputShape("intro.flac", 48000, 1)
    both = output_summary([take, intro], "wav", "input", "", None)
    assert "take.wav (44.1 kHz, stereo) → take-converted.wav: WAV (16-bit), 44.1 kHz, stereo" in both
    assert "intro.flac (48 kHz, mono) → intro-converted.wav: WAV (16-bit), 48 kHz, mono;" not in both
    assert "intro.flac (48 kHz, mono) → intro-converted.wav: WAV (16-bit), 48 kHz, mono, next to each original" in both
    # A model writes at its own rate (MP3 raises a rate it cannot hold); unknown until it has loaded.
    assert "take-converted.mp3: MP3, 44.1 kHz, mono" in output_summary([take], "mp3", "mono", "/tmp/x", 40000)
    assert "the voice model's sample rate" in output_summary([take], "wav", "mono", "", 0)
    many = output_summary([take] * 4, "flac", "input", "", 40000)
    assert many.startswith("4 files → <name>-converted.flac each: FLAC (16-bit, lossless), at 40 kHz (the voice model")
    assert "with each input's channels" in many
    nothing = output_summary([], "ogg", "mono", "", None)
    assert nothing.startswith("Each file → <name>-converted.ogg: OGG Vorbis, at each")
    unreadable = output_summary([InputShape("odd.m4a")], "wav", "input", "", None)
    assert unreadable.startswith("odd.m4a → odd-converted.wav: WAV (16-bit), at each input's sample rate")


def test_a_sovits_voice_takes_another_config_and_an_rvc_voice_has_none(
    make_dock: Any, qtbot: Any, tmp_path: Path
) -> None:
    import shutil

    import svc_fixtures
    from test_svc_worker import fixture_model

    model, store = fixture_model(svc_fixtures, tmp_path, "sovits-4.1")
    chosen = tmp_path / "configs" / "singer.json"
    chosen.parent.mkdir()
    shutil.copyfile(Path(model) / "config.json", chosen)
    dock = make_dock(store=store, svc_choose_file=lambda parent, title, filter_: str(chosen))
    config_row = dock.voice.config
    assert not config_row.isVisibleTo(dock)  # the built-in voice changer has no config
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["model"] == model):
        dock.import_sovits(model)
    assert config_row.isVisibleTo(dock) and config_row.label.text() == "config.json beside the model"
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["config"] == str(chosen)):
        config_row.button.click()
    assert config_row.label.text() == "Config: singer.json" and dock.options.config == str(chosen)
    assert "singer.json is in use" in dock.last_message and config_row.clear_button.isEnabled()
    rvc = svc_fixtures.make_rvc_checkpoint(tmp_path / "other.pth", version="v2")
    with qtbot.waitSignal(dock.model_changed, timeout=WAIT, check_params_cb=lambda i: i["model"] == str(rvc)):
        dock.import_rvc(rvc)
    assert not config_row.isVisibleTo(dock) and dock.options.config == ""
    assert dock.index_row.isVisibleTo(dock)
