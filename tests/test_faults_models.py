"""Fault injection: a model file removed or changed while it is loaded.

- The ONNX background-removal model deleted while the live view runs: the live picture goes on from
  the session in memory, one warning says the file is gone, and loading it again gives a sentence.
- The same file overwritten with another model: the next frame or job uses the new one (re-read, not
  a stale cache); overwritten with garbage: one warning, and the model loaded before stays in use.
- The so-vits/RVC checkpoint changed, damaged or removed while a voice-conversion worker holds it.
- The Whisper folder removed while the assistant holds it: recognition goes on from memory, the
  worker says the folder is gone, and a new load names the missing folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matting_fixtures import build_u2net_like, subject_image

from snowai_studio.notifications import NotificationManager
from workers import base
from workers.errors import UserError
from workers.matting.options import MattingOptions
from workers.matting.worker import MattingWorker
from workers.media.fakes import GeneratedCamera
from workers.media.worker import CameraWorker
from workers.models.store import ModelStore

WAIT = 60000


def watch(signal: Any) -> list[Any]:
    seen: list[Any] = []
    signal.connect(lambda *args: seen.append(args[0] if len(args) == 1 else args))
    return seen


@pytest.fixture
def fast_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check the model files five times a second (once a second in the studio)."""
    monkeypatch.setattr(base.Worker, "watch_interval", 0.2)


@pytest.fixture
def stopped() -> Iterator[list[base.Worker]]:
    made: list[base.Worker] = []
    yield made
    for w in made:
        assert w.stop(10000)


def wait_job(qtbot: Any, worker: base.Worker, submit: Any) -> Any:
    finished, failed = watch(worker.job_finished), watch(worker.job_failed)
    job = submit()
    qtbot.waitUntil(lambda: any(a[0] == job for a in finished + failed), timeout=WAIT)
    for args in failed:
        if args[0] == job:
            return UserError(args[1])
    return next(a[1] for a in finished if a[0] == job)


# ---- background removal ---------------------------------------------------------------------------------


def test_matting_model_deleted_while_live_keeps_running_then_reload_is_a_sentence(
    qtbot: Any, tmp_path: Path, fast_watch: None, stopped: list[base.Worker]
) -> None:
    manager = NotificationManager()
    manager.install_hooks()
    try:
        store = ModelStore(tmp_path / "models")
        model = store.import_file(build_u2net_like(tmp_path / "src" / "bright.onnx"), "matting", name="Bright")
        worker = MattingWorker(store, MattingOptions(model=model.id))
        warnings, errors = watch(worker.warning), watch(worker.error)
        results: list[Any] = []
        worker.result_ready.connect(lambda: results.append(worker.take_result()))
        stopped.append(worker)
        with qtbot.waitSignal(worker.ready, timeout=WAIT):
            worker.start()
        path = worker.watched_files()[0]
        assert path.is_file() and path.suffix == ".onnx"
        camera = CameraWorker(lambda: GeneratedCamera(96, 64, 30))
        camera.add_subscriber(worker)
        stopped.insert(0, camera)
        camera.start()
        qtbot.waitUntil(lambda: len(results) >= 3, timeout=WAIT)
        path.unlink()  # the model file is deleted while the live view runs
        qtbot.waitUntil(lambda: bool(warnings), timeout=WAIT)
        shown = len(results)
        qtbot.waitUntil(lambda: len(results) >= shown + 10, timeout=WAIT)  # the live picture goes on
        assert len(warnings) == 1, warnings  # said once, not every second
        assert "was removed or moved" in warnings[0] and "stays in use" in warnings[0]
        assert not errors and worker.halted is None
        # Loading it again (a restart of the engine) is a sentence, never a traceback.
        engine = worker.engine
        with pytest.raises(UserError) as info:
            worker.recover()  # what a Retry does; it fails before it touches the engine in use
        assert "Traceback" not in str(info.value) and worker.engine is engine
        # A new worker for the same model (the next start of the studio) fails with a sentence.
        again = MattingWorker(store, MattingOptions(model=model.id))
        stopped.append(again)
        failed = watch(again.error)
        again.start()
        qtbot.waitUntil(lambda: again.state == "failed", timeout=WAIT)
        assert failed and failed[0].startswith("Background removal could not start:")
        assert "Bright" in failed[0] and "Traceback" not in failed[0]
        qtbot.waitUntil(lambda: any("was removed" in n.message for n in manager.items), timeout=WAIT)
        note = next(n for n in manager.items if "was removed" in n.message)
        assert note.level == "warning"
    finally:
        manager.uninstall_hooks()


def test_matting_model_overwritten_while_live_is_read_again_not_a_stale_cache(
    qtbot: Any, tmp_path: Path, fast_watch: None, stopped: list[base.Worker]
) -> None:
    from workers.media.imageio import LoadedImage
    from workers.queues import StreamItem

    path = build_u2net_like(tmp_path / "models" / "subject.onnx", gain=3.0)
    worker = MattingWorker(ModelStore(tmp_path / "store"), MattingOptions(model=str(path), mask_only=True))
    warnings, errors = watch(worker.warning), watch(worker.error)
    masks: list[np.ndarray] = []
    worker.result_ready.connect(lambda: masks.append(worker.take_result().payload[:, :, 0]))
    stopped.append(worker)
    with qtbot.waitSignal(worker.ready, timeout=WAIT):
        worker.start()
    bgr, truth = subject_image(64, 96)

    def subject_kept(alpha: np.ndarray) -> bool:
        return bool(alpha[truth > 0].mean() > alpha[truth == 0].mean() + 50)

    def live_until(condition: Any) -> np.ndarray:
        """Push camera-like frames until the newest live mask satisfies ``condition``."""

        def check() -> bool:
            worker.push(StreamItem(bgr.copy()))
            return bool(masks) and condition(masks[-1])

        qtbot.waitUntil(check, timeout=WAIT)
        return masks[-1]

    first = live_until(subject_kept)  # the live view: a bright subject is kept
    # Another model is saved under the same name while the live view runs (it keeps dark pixels).
    build_u2net_like(tmp_path / "other" / "subject.onnx", gain=-3.0)
    shutil.copyfile(tmp_path / "other" / "subject.onnx", path)
    second = live_until(lambda alpha: not subject_kept(alpha))  # the new file is in use, not a stale session
    assert second[truth > 0].mean() < second[truth == 0].mean() - 50
    assert any("subject.onnx changed on disk and was loaded again" in w for w in warnings)
    # A job reads the same new model.
    result = wait_job(qtbot, worker, lambda: worker.remove(LoadedImage(bgr, None, tmp_path / "x.png")))
    assert not subject_kept(result.alpha) and not np.array_equal(result.alpha, first)
    # Overwritten with something that is not a model: said once, the model loaded before stays in use.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    qtbot.waitUntil(lambda: any("could not be loaded again" in w for w in warnings), timeout=WAIT)
    text = next(w for w in warnings if "could not be loaded again" in w)
    assert "subject.onnx" in text and "stays in use" in text and "Traceback" not in text
    shown = len(masks)
    live_until(lambda alpha: len(masks) >= shown + 10)
    assert not subject_kept(masks[-1]), "the live view goes on with the model loaded before"
    assert sum("could not be loaded again" in w for w in warnings) == 1
    assert not errors and worker.halted is None


# ---- voice conversion --------------------------------------------------------------------------------------


def test_svc_checkpoint_changed_damaged_and_removed_while_loaded(
    qtbot: Any, tmp_path: Path, fast_watch: None, stopped: list[base.Worker]
) -> None:
    import soundfile
    import svc_fixtures
    from svc_speech import write_speech

    from workers.voice_conversion.options import VoiceConversionOptions
    from workers.voice_conversion.worker import VoiceConversionWorker

    store = svc_fixtures.fixture_store(tmp_path / "store")
    ckpt = svc_fixtures.make_rvc_checkpoint(tmp_path / "voices" / "singer.pth", version="v2", seed=1)
    worker = VoiceConversionWorker(VoiceConversionOptions(model=str(ckpt), f0_method="harvest"), store=store)
    loaded, failed, warnings = watch(worker.model_loaded), watch(worker.model_failed), watch(worker.warning)
    stopped.append(worker)
    worker.start()
    qtbot.waitUntil(lambda: bool(loaded), timeout=WAIT)
    assert loaded[0]["dsp"] is False and not failed
    src = write_speech(tmp_path / "speech.wav", seconds=1.0)

    def convert(name: str) -> np.ndarray:
        report = wait_job(qtbot, worker, lambda: worker.convert_file(src, tmp_path / f"{name}.wav"))
        assert not isinstance(report, UserError), report
        return soundfile.read(str(report.done[0][1]), dtype="float32")[0]

    before = convert("a")
    # The checkpoint is replaced by another one (retrained): the next job uses the new weights.
    svc_fixtures.make_rvc_checkpoint(tmp_path / "new" / "singer.pth", version="v2", seed=7)
    shutil.copyfile(tmp_path / "new" / "singer.pth", ckpt)
    after = convert("b")
    assert len(loaded) == 2, "the changed checkpoint was loaded again"
    assert not np.allclose(before[: len(after)], after[: len(before)], atol=1e-4)
    assert any("singer.pth changed on disk and was loaded again" in w for w in warnings)
    # Choosing the same voice again while the file is unchanged loads nothing.
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT):
        worker.set_param("model", str(ckpt))
    assert len(loaded) == 3 and worker.model_info["model"] == str(ckpt)
    # Damaged on disk (truncated): one warning, the voice in use stays, files still convert.
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    qtbot.waitUntil(lambda: any("could not be loaded again" in w for w in warnings), timeout=WAIT)
    text = next(w for w in warnings if "could not be loaded again" in w)
    assert "singer.pth" in text and "stays in use" in text and "Traceback" not in text
    again = convert("c")
    assert np.allclose(again, after, atol=1e-5)
    # Removed: said once; the voice loaded before stays in use.
    ckpt.unlink()
    qtbot.waitUntil(lambda: any("was removed or moved" in w for w in warnings), timeout=WAIT)
    assert worker.model_info["model"] == str(ckpt) and worker.converter is not None
    # The next load (a new start) gives a sentence and the built-in voice changer.
    fresh = VoiceConversionWorker(VoiceConversionOptions(model=str(ckpt)), store=store)
    fresh_failed = watch(fresh.model_failed)
    stopped.append(fresh)
    with qtbot.waitSignal(fresh.model_loaded, timeout=WAIT) as blocker:
        fresh.start()
    assert blocker.args[0]["dsp"] is True
    assert fresh_failed and "built-in voice changer" in fresh_failed[0] and "Traceback" not in fresh_failed[0]


# ---- the assistant's Whisper folder ------------------------------------------------------------------------


def test_whisper_folder_removed_while_loaded(qtbot: Any, tmp_path: Path, fast_watch: None) -> None:
    from assistant_fixtures import shipped_store, speech_16k

    from workers.assistant.asr import ASR_MODEL_ID, Transcriber
    from workers.assistant.options import AssistantOptions
    from workers.assistant.pipeline import Components
    from workers.assistant.vad import SileroVAD
    from workers.assistant.worker import AssistantWorker
    from workers.media.fakes import MemorySink

    store = shipped_store()
    folder = tmp_path / "whisper-tiny"
    shutil.copytree(store.path_of(ASR_MODEL_ID), folder)
    asr = Transcriber(folder, device="cpu")
    audio = speech_16k("What is the capital of France?")
    assert "capital" in asr.transcribe(audio).text.lower()

    class Voice:
        name, sample_rate = "Test voice", 16000

        def synthesize(self, text: str, cancel: Any = None) -> Any:
            yield np.zeros(160, np.float32)

    class LLM:
        name, backend, note = "Test model", "test", ""

        def stream(self, messages: Any, **_kw: Any) -> Any:
            yield "Paris."

        def count_tokens(self, text: str) -> int:
            return 1

        def close(self) -> None:
            pass

    def components(options: Any, **_kw: Any) -> Components:
        return Components(SileroVAD(store=store), asr, LLM(), Voice())

    worker = AssistantWorker(
        AssistantOptions(asr_model=str(folder)),
        store=store,
        components_factory=components,
        sink_factory=lambda: MemorySink(16000),
    )
    warnings = watch(worker.warning)
    try:
        with qtbot.waitSignal(worker.ready, timeout=WAIT):
            worker.start()
        assert worker.watched_files() == [folder / "model.bin"]
        shutil.rmtree(folder)  # the Whisper folder is removed while the assistant holds it
        qtbot.waitUntil(lambda: bool(warnings), timeout=WAIT)
        assert "whisper-tiny/model.bin was removed or moved" in warnings[0]
        # Recognition goes on from the model in memory.
        assert "capital" in asr.transcribe(audio).text.lower()
        qtbot.wait(600)
        assert len(warnings) == 1
    finally:
        assert worker.stop(10000)
    # The next load names the missing folder in a sentence.
    with pytest.raises(UserError) as info:
        Transcriber(folder, device="cpu")
    assert str(info.value) == f"The speech recognition model folder {folder} does not exist."
