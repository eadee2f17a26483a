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
    assert done.args == ["files", True], dock.last_message
    out = tmp_path / "in" / "line-converted.wav"
    assert out.is_file() and "Converted 1 file" in dock.last_message
    assert soundfile.info(str(out)).duration == pytest.approx(soundfile.info(str(src)).duration, abs=0.05)
    assert not dock.progress_box.isVisible()

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
        # Cancel as soon as the conversion runs (an idle machine converts the file in a few seconds).
        qtbot.waitUntil(lambda: dock.cancel_button.isVisible() and dock.cancel_button.isEnabled(), timeout=WAIT)
        dock.cancel_button.click()
    assert done.args == ["files", False]
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
