"""The voice-conversion worker end to end with the real engines: the built-in voice changer converts
real speech from a fake microphone into a fake speaker in realtime, parameters change live, device
failures become sentences, files convert with progress and cancel, and the fixture so-vits-svc and
RVC checkpoints load (a corrupt one leaves the previous voice in use)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from svc_speech import pitch_shift, speech, write_speech

from workers.errors import UserError
from workers.media.audio import AudioInput
from workers.media.fakes import ArrayMicrophone, MemorySink
from workers.queues import StreamItem
from workers.voice_conversion.options import PRESETS, VoiceConversionOptions
from workers.voice_conversion.worker import FileJobReport, VoiceConversionWorker, coerce_option, output_path

WAIT = 60000
RATE = 48000  # the fake devices' rate, as a sound card's
DEVICE_BLOCK = 1024


def watch(signal: Any) -> list[tuple[Any, ...]]:
    """Record every emission of a worker signal (list appends are thread-safe)."""
    seen: list[tuple[Any, ...]] = []
    signal.connect(lambda *args: seen.append(args))
    return seen


class Devices:
    """Fake microphone and speaker factories that remember what they made."""

    def __init__(self, audio: np.ndarray, rate: int, *, loop: bool = False) -> None:
        self.audio, self.rate, self.loop = audio, rate, loop
        self.mics: list[ArrayMicrophone] = []
        self.sinks: list[MemorySink] = []
        self.asked: list[tuple[str, str | None]] = []

    def source(self, device: str | None, samplerate: int | None, blocksize: int) -> ArrayMicrophone:
        self.asked.append(("input", device))
        mic = ArrayMicrophone(self.audio, self.rate, RATE, blocksize, paced=True, loop=self.loop, label="Fake mic")
        self.mics.append(mic)
        return mic

    def sink(self, device: str | None, samplerate: int | None, blocksize: int) -> MemorySink:
        self.asked.append(("output", device))
        sink = MemorySink(samplerate or RATE, 1)
        self.sinks.append(sink)
        return sink


@pytest.fixture
def make_worker(qtbot: Any) -> Iterator[Any]:
    made: list[VoiceConversionWorker] = []

    def make(options: VoiceConversionOptions | None = None, **kw: Any) -> VoiceConversionWorker:
        worker = VoiceConversionWorker(options or VoiceConversionOptions(), **kw)
        made.append(worker)
        with qtbot.waitSignal(worker.model_loaded, timeout=WAIT):
            worker.start()
        return worker

    yield make
    for worker in reversed(made):
        assert worker.stop(10000)


def run_live(qtbot: Any, worker: VoiceConversionWorker, seconds: float) -> list[tuple[Any, ...]]:
    changes = watch(worker.realtime_changed)
    with qtbot.waitSignal(worker.realtime_changed, timeout=WAIT) as blocker:
        worker.start_realtime()
    assert blocker.args[0] is True, blocker.args
    qtbot.wait(int(seconds * 1000))
    return changes


# ---- realtime ------------------------------------------------------------------------------------------------
def test_dsp_converts_speech_from_a_fake_microphone_live(qtbot: Any, make_worker: Any) -> None:
    """Right after install: no model file, speech in, the same speech a fifth higher out, in realtime."""
    audio, rate = speech()
    devices = Devices(audio, rate)
    worker = make_worker(
        VoiceConversionOptions(pitch=7.0, block_seconds=0.2, crossfade_seconds=0.04, extra_seconds=0.3),
        source_factory=devices.source,
        sink_factory=devices.sink,
    )
    assert worker.model_info["dsp"] is True
    stats = watch(worker.stats)
    changes = run_live(qtbot, worker, 0.5)
    # The fake microphone plays the speech once: the session flushes what it held back and ends.
    qtbot.waitUntil(lambda: len(changes) >= 2, timeout=WAIT)
    assert changes[0][0] is True and "Hz" in changes[0][1]
    assert changes[1][0] is False and changes[1][2] == "info" and "ended" in changes[1][1]
    assert not worker.realtime_running

    mic, sink = devices.mics[0], devices.sinks[0]
    assert mic.close_count == 1 and sink.close_count == 1  # both released
    out = sink.data[:, 0]
    duration = len(audio) / rate
    assert len(out) / RATE == pytest.approx(duration, abs=0.6)
    assert np.sqrt(np.mean(out**2)) > 0.01  # a voice, not silence
    assert pitch_shift(audio, rate, out, RATE) == pytest.approx(7.0, abs=0.7)

    live = [s[0] for s in stats if s[0].get("realtime")]
    assert live, "no realtime stats"
    last = live[-1]
    for key in ("infer_ms", "latency_ms", "algorithmic_ms", "rtf", "input_dbfs", "output_dbfs"):
        assert key in last, key
    assert 0 < last["algorithmic_ms"] <= last["latency_ms"]
    assert max(s["input_dbfs"] for s in live) > -40
    assert worker.latest_stats()["realtime"] is True


def test_parameters_change_live_without_a_restart(qtbot: Any, make_worker: Any) -> None:
    audio, rate = speech()
    devices = Devices(audio, rate, loop=True)
    worker = make_worker(
        VoiceConversionOptions(block_seconds=0.2, crossfade_seconds=0.04, extra_seconds=0.2),
        source_factory=devices.source,
        sink_factory=devices.sink,
    )
    run_live(qtbot, worker, 0.6)
    session = worker._session
    for name, value in (("pitch", -5), ("formant", 2.0), ("output_gain_db", -6.0), ("passthrough", True)):
        worker.set_param(name, value)
    qtbot.waitUntil(lambda: worker.options.passthrough is True, timeout=WAIT)
    assert worker.options.pitch == -5.0 and worker.options.formant == 2.0
    assert worker._session is session  # the same session: devices not reopened
    assert len(devices.mics) == 1

    worker.set_param("preset", "gpu")  # the block layout changes: the devices stay open
    qtbot.waitUntil(lambda: worker.options.block_seconds == PRESETS["gpu"][0], timeout=WAIT)
    qtbot.wait(600)
    assert worker.realtime_running
    before = devices.sinks[-1].frames
    qtbot.wait(600)
    assert devices.sinks[-1].frames > before  # still converting
    with qtbot.waitSignal(worker.realtime_changed, timeout=WAIT):
        worker.stop_realtime()
    assert all(m.close_count == 1 for m in devices.mics)


class BufferedSink(MemorySink):
    """A sink with a bounded buffer, like :class:`~workers.media.audio.AudioOutput`."""

    buffer_seconds = 0.3


def test_a_live_output_holds_two_blocks(qtbot: Any, make_worker: Any) -> None:
    audio, rate = speech()
    sinks: list[BufferedSink] = []

    def sink(device: str | None, samplerate: int | None, blocksize: int) -> BufferedSink:
        sinks.append(BufferedSink(samplerate or RATE, 1))
        return sinks[-1]

    devices = Devices(audio, rate, loop=True)
    worker = make_worker(VoiceConversionOptions(block_seconds=0.5), source_factory=devices.source, sink_factory=sink)
    run_live(qtbot, worker, 0.2)
    assert sinks[0].buffer_seconds >= 1.0
    worker.set_param("block_seconds", 0.8)
    qtbot.waitUntil(lambda: sinks[0].buffer_seconds >= 1.6, timeout=WAIT)
    worker.stop_realtime()


class BrokenMicrophone(ArrayMicrophone):
    """Unplugged after a few blocks."""

    def __init__(self, *args: Any, fail_after: int = 5, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fail_after = fail_after

    def read(self, timeout: float | None = None) -> StreamItem | None:
        if self._seq >= self.fail_after:
            raise UserError("The microphone “Fake mic” stopped sending sound. It may have been unplugged.")
        return super().read(timeout)


def test_a_microphone_that_fails_stops_with_a_sentence(qtbot: Any, make_worker: Any) -> None:
    audio, rate = speech()
    sinks: list[MemorySink] = []
    mics: list[BrokenMicrophone] = []

    def source(device: str | None, samplerate: int | None, blocksize: int) -> BrokenMicrophone:
        mics.append(BrokenMicrophone(audio, rate, RATE, blocksize, paced=True, label="Fake mic"))
        return mics[-1]

    def sink(device: str | None, samplerate: int | None, blocksize: int) -> MemorySink:
        sinks.append(MemorySink(RATE, 1))
        return sinks[-1]

    worker = make_worker(source_factory=source, sink_factory=sink)
    errors = watch(worker.error)
    changes = watch(worker.realtime_changed)
    worker.start_realtime()
    qtbot.waitUntil(lambda: len(changes) >= 2, timeout=WAIT)
    assert changes[0][0] is True
    running, message, level = changes[1]
    assert running is False and level == "error"
    assert "unplugged" in message and "\n" not in message and "Traceback" not in message
    assert errors and "unplugged" in errors[0][0]
    assert mics[0].close_count == 1 and sinks[0].close_count == 1
    assert not worker.realtime_running


def test_a_missing_device_is_a_sentence(qtbot: Any, make_worker: Any) -> None:
    def source(device: str | None, samplerate: int | None, blocksize: int) -> AudioInput:
        return AudioInput("No Such Microphone 1234", samplerate, blocksize, channels=1)

    worker = make_worker(source_factory=source)
    with qtbot.waitSignal(worker.realtime_changed, timeout=WAIT) as blocker:
        worker.start_realtime()
    running, message, level = blocker.args
    assert running is False and level == "error"
    assert "No Such Microphone 1234" in message or "Sound is unavailable" in message
    assert "Traceback" not in message and message.endswith(".")


# ---- files -------------------------------------------------------------------------------------------------------
def test_file_job_converts_and_never_overwrites(qtbot: Any, make_worker: Any, tmp_path: Path) -> None:
    src = write_speech(tmp_path / "voice.flac", rate=44100, channels=2)
    worker = make_worker(VoiceConversionOptions(pitch=-4.0))
    progress = watch(worker.progress)
    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as blocker:
        worker.convert_files([src, src], None, "wav")
    report: FileJobReport = blocker.args[1]
    assert not report.failed and not report.cancelled
    (a, first), (_, second) = report.done
    assert a == src and first == tmp_path / "voice-converted.wav" and second == tmp_path / "voice-converted-2.wav"
    info = soundfile.info(str(first))
    assert info.frames / info.samplerate == pytest.approx(soundfile.info(str(src)).duration, abs=0.05)
    assert progress and progress[-1][0] == progress[-1][1]
    assert report.rtf > 0 and "Converted 2 files" in report.summary()
    assert src.exists() and soundfile.info(str(src)).channels == 2  # the input is untouched

    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as blocker:
        worker.convert_file(src, tmp_path / "out" / "mp3" / "voice.mp3")
    assert blocker.args[1].done[0][1].suffix == ".mp3"


def test_file_job_says_the_rate_and_channels_it_wrote(qtbot: Any, make_worker: Any, tmp_path: Path) -> None:
    src = write_speech(tmp_path / "take.wav", rate=44100, channels=2)
    worker = make_worker()
    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as blocker:
        worker.convert_files([src], tmp_path / "out", "flac", channels="input")
    report: FileJobReport = blocker.args[1]
    written = report.done[0][1]
    assert soundfile.info(str(written)).channels == 2 and report.written[written] == (44100, 2)
    assert report.summary() == f"Converted 1 file: {written} (44.1 kHz, stereo)."
    assert "real time)." in report.summary(speed=True)
    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as blocker:
        worker.convert_files([src], tmp_path / "out", "wav")  # mono unless asked
    assert "(44.1 kHz, mono)" in blocker.args[1].summary()
    with pytest.raises(UserError, match="channel"):
        worker.convert_files([src], tmp_path / "out", "wav", channels="both")


def test_file_job_cancels_promptly(qtbot: Any, make_worker: Any, tmp_path: Path) -> None:
    src = write_speech(tmp_path / "long.wav", seconds=240.0, rate=16000)
    worker = make_worker()
    progress = watch(worker.progress)
    job = worker.convert_files([src], tmp_path / "out", "wav")
    qtbot.waitUntil(lambda: bool(progress), timeout=WAIT)
    start = time.monotonic()
    worker.cancel()
    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as blocker:
        pass
    assert time.monotonic() - start < 5.0
    assert blocker.args[0] == job and blocker.args[1].cancelled
    assert not list((tmp_path / "out").glob("*.wav"))  # nothing half-written


def test_unreadable_file_is_a_sentence(qtbot: Any, make_worker: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    worker = make_worker()
    with qtbot.waitSignal(worker.job_failed, timeout=WAIT) as blocker:
        worker.convert_files([bad], tmp_path, "wav")
    message = blocker.args[1]
    assert "broken.wav" in message and "Traceback" not in message


# ---- models ----------------------------------------------------------------------------------------------------
def test_corrupt_checkpoint_keeps_the_voice_in_use(qtbot: Any, make_worker: Any, tmp_path: Path) -> None:
    bad = tmp_path / "voice.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    worker = make_worker()
    with qtbot.waitSignal(worker.model_failed, timeout=WAIT) as blocker:
        worker.set_param("model", str(bad))
    assert "voice.pth" in blocker.args[0] and "Traceback" not in blocker.args[0]
    assert worker.options.model == "" and worker.model_info["dsp"] is True
    assert worker.state == "ready"


def test_a_broken_saved_voice_falls_back_to_the_builtin_one(qtbot: Any, tmp_path: Path) -> None:
    worker = VoiceConversionWorker(VoiceConversionOptions(model=str(tmp_path / "gone" / "G_100.pth")))
    failed = watch(worker.model_failed)
    try:
        with qtbot.waitSignal(worker.model_loaded, timeout=WAIT) as blocker:
            worker.start()
        assert blocker.args[0]["dsp"] is True
        assert failed and "built-in voice changer" in failed[0][0]
    finally:
        worker.stop()


@pytest.mark.parametrize("kind", ["sovits-4.0", "sovits-4.1", "rvc-v1", "rvc-v2"])
def test_fixture_checkpoints_load_and_convert_files(qtbot: Any, make_worker: Any, tmp_path: Path, kind: str) -> None:
    import svc_fixtures

    model, store = fixture_model(svc_fixtures, tmp_path, kind)
    worker = make_worker(store=store)
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT) as blocker:
        worker.set_param("model", model)
    info = blocker.args[0]
    assert info["dsp"] is False and info["kind"] == kind
    src = write_speech(tmp_path / "speech.wav")
    with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as done:
        worker.convert_files([src], tmp_path / "out", "wav")
    report = done.args[1]
    assert not report.failed, report.failed
    out, rate = soundfile.read(str(report.done[0][1]), dtype="float32")
    assert rate == info["sample_rate"]
    assert len(out) / rate == pytest.approx(soundfile.info(str(src)).duration, abs=0.1)
    assert np.isfinite(out).all()


def test_a_sovits_config_chosen_apart_is_used_and_belongs_to_its_voice(
    qtbot: Any, make_worker: Any, tmp_path: Path
) -> None:
    import shutil

    import svc_fixtures

    model, store = fixture_model(svc_fixtures, tmp_path, "sovits-4.1")
    rvc = svc_fixtures.make_rvc_checkpoint(tmp_path / "other.pth", version="v2")
    worker = make_worker(store=store)
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT):
        worker.set_param("model", model)
    chosen = tmp_path / "configs" / "singer.json"
    chosen.parent.mkdir()
    shutil.copyfile(Path(model) / "config.json", chosen)
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT) as loaded:
        worker.set_param("config", str(chosen))
    assert loaded.args[0]["config"] == str(chosen) and loaded.args[0]["model"] == model
    broken = tmp_path / "configs" / "broken.json"
    broken.write_text("{ not json")
    with qtbot.waitSignal(worker.model_failed, timeout=WAIT) as failed:
        worker.set_param("config", str(broken))
    assert "broken.json" in failed.args[0] or "config" in failed.args[0].lower()
    assert worker.options.config == str(chosen) and worker.model_info["config"] == str(chosen)  # kept
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT) as loaded:
        worker.set_param("model", str(rvc))
    assert loaded.args[0]["config"] == "" and worker.options.config == ""  # not carried to another voice


@pytest.mark.parametrize("kind", ["sovits-4.1", "rvc-v2"])
def test_fixture_checkpoints_convert_live(qtbot: Any, make_worker: Any, tmp_path: Path, kind: str) -> None:
    import svc_fixtures

    model, store = fixture_model(svc_fixtures, tmp_path, kind)
    audio, rate = speech()
    devices = Devices(audio, rate)
    worker = make_worker(
        VoiceConversionOptions(model=model, f0_method="harvest", block_seconds=0.3, extra_seconds=0.5, speaker=1),
        store=store,
        source_factory=devices.source,
        sink_factory=devices.sink,
    )
    assert worker.model_info["kind"] == kind and len(worker.model_info["speakers"]) > 1
    changes = run_live(qtbot, worker, 0.3)
    qtbot.waitUntil(lambda: len(changes) >= 2, timeout=WAIT)
    assert changes[1][2] == "info", changes
    out = devices.sinks[0].data[:, 0]
    assert len(out) / RATE == pytest.approx(len(audio) / rate, abs=0.8)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e-3
    assert worker.latest_stats()["infer_ms"] > 0


def test_speakers_change_live_and_fall_back_with_another_model(
    qtbot: Any, make_worker: Any, tmp_path: Path
) -> None:
    import svc_fixtures

    sovits, store = fixture_model(svc_fixtures, tmp_path, "sovits-4.1")
    rvc = str(svc_fixtures.make_rvc_checkpoint(tmp_path / "rvc-v2.pth", version="v2"))
    worker = make_worker(VoiceConversionOptions(model=sovits), store=store)
    assert worker.model_info["speakers"] == svc_fixtures.SPEAKERS
    worker.set_param("speaker", 2)
    qtbot.waitUntil(lambda: worker.converter.speaker == 2, timeout=WAIT)
    with qtbot.waitSignal(worker.error, timeout=WAIT) as refused:
        worker.set_param("speaker", 9)
    assert "9" in refused.args[0] and worker.options.speaker == 2 and worker.converter.speaker == 2
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT) as loaded:
        worker.set_param("model", rvc)
    assert loaded.args[0]["kind"] == "rvc-v2" and len(loaded.args[0]["speakers"]) == 2
    assert loaded.args[0]["speaker"] == 0 and worker.options.speaker == 0


def fixture_model(svc_fixtures: Any, folder: Path, kind: str) -> tuple[str, Any]:
    """A fixture checkpoint of ``kind`` and a model store holding the fixtures' content encoder."""
    store = svc_fixtures.fixture_store(folder / "store")
    if kind.startswith("sovits"):
        gen, _config = svc_fixtures.make_sovits_checkpoint(folder / kind, version=kind.split("-")[1])
        return str(gen.parent), store
    return str(svc_fixtures.make_rvc_checkpoint(folder / f"{kind}.pth", version=kind.split("-")[1])), store


# ---- small parts ------------------------------------------------------------------------------------------------
def test_options_are_coerced_and_clamped() -> None:
    assert coerce_option("pitch", "12") == 12.0
    assert coerce_option("pitch", 100) == 36.0
    assert coerce_option("f0_method", "crepe") == "crepe-full"
    assert coerce_option("passthrough", 1) is True
    with pytest.raises(UserError):
        coerce_option("f0_method", "rmvpe-xl")
    with pytest.raises(UserError):
        coerce_option("block_seconds", "fast")


def test_output_names_never_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "take.wav"
    src.write_bytes(b"x")
    assert output_path(src, None, "wav") == tmp_path / "take-converted.wav"
    (tmp_path / "take-converted.wav").write_bytes(b"x")
    assert output_path(src, None, "wav") == tmp_path / "take-converted-2.wav"
    assert output_path(src, tmp_path / "o", None) == tmp_path / "o" / "take-converted.wav"
