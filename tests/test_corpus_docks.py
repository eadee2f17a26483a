"""Every dock's open and import paths over the whole bad-input corpus (tests/corpus.py), with pytest-qt.

The file dialogs are answered with the corpus path (QFileDialog's static getters are patched) and
the dock's own open method runs, as a click would run it. Each case must end with the input shown
or loaded (accepted) or one sentence on the dock's message line (refused); no exception may reach
Qt or a worker thread's hook (pytest-qt fails the test on an exception in a slot; the notifications
must show no "Unexpected error"), nothing may be written next to the corpus, the input must stay as
it was, and after the corpus a good file still loads. Each dock is made once per module and shared
by its cases; the models it loads (Whisper, Piper, the face engine) are loaded once.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus import (
    AUDIO,
    CASE_NAMES,
    CONVERSATION,
    FACE,
    IMAGE,
    IMAGE_FOLDER,
    LLM_MODEL,
    MATTING_MODEL,
    PICKLE_MARKER,
    PIPER_VOICE,
    SOUND,
    SVC_CONFIG,
    SVC_INDEX,
    SVC_MODEL,
    VIDEO,
    WHISPER_MODEL,
    Case,
    corpus_cases,
    corpus_root,
    fingerprint,
)
from llm_fixtures import tiny_chat_llm_dir  # noqa: F401  (a session fixture)
from PySide6.QtWidgets import QFileDialog, QMessageBox

from snowai_studio.context import StudioContext
from workers.media.imageio import IMAGE_EXTENSIONS
from workers.voice_conversion.checkpoints import load_voice_model as _REAL_LOAD_VOICE_MODEL

pytestmark = pytest.mark.timeout(60)

WAIT = 45_000


# ---- the module's home, dialogs and checks -------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A studio home for the module's docks (their settings are read when they are made)."""
    folder = tmp_path_factory.mktemp("corpus-docks-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SNOWAI_HOME", str(folder))
        mp.setenv("HF_HUB_OFFLINE", "1")
        for var in ("CONFIG_DIR", "DATA_DIR", "MODELS_DIR", "LOG_DIR", "SETTINGS_FILE"):
            mp.delenv(f"SNOWAI_{var}", raising=False)
        yield folder


class Dialogs:
    """What the patched file dialogs answer."""

    def __init__(self) -> None:
        self.path: str = ""
        self.save: str = ""
        self.asked: list[str] = []

    def open_file(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        self.asked.append("open")
        return self.path, ""

    def open_files(self, *args: Any, **kwargs: Any) -> tuple[list[str], str]:
        self.asked.append("open many")
        return ([self.path] if self.path else []), ""

    def folder(self, *args: Any, **kwargs: Any) -> str:
        self.asked.append("folder")
        return self.path

    def save_file(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        self.asked.append("save")
        return self.save, ""


@pytest.fixture(scope="module")
def dialogs() -> Iterator[Dialogs]:
    answers = Dialogs()
    blocked = lambda *a, **k: pytest.fail("a message box was opened")  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(QFileDialog, "getOpenFileName", staticmethod(answers.open_file))
        mp.setattr(QFileDialog, "getOpenFileNames", staticmethod(answers.open_files))
        mp.setattr(QFileDialog, "getExistingDirectory", staticmethod(answers.folder))
        mp.setattr(QFileDialog, "getSaveFileName", staticmethod(answers.save_file))
        for name in ("warning", "critical", "information", "question"):
            mp.setattr(QMessageBox, name, staticmethod(blocked))
        yield answers


def context(extras: dict[str, Any] | None = None, store: Any = None) -> StudioContext:
    from page_fixtures import studio_context

    return studio_context(store, extras)


def close(dock: Any) -> None:
    dock.shutdown()
    dock.context.notifications.uninstall_hooks()
    dock.close()
    dock.deleteLater()


def one_sentence(text: str) -> bool:
    core = text.strip().removesuffix("(details in the log)").strip()
    return (
        "\n" not in text.strip()
        and "Traceback" not in text
        and len(core) >= 12
        and core[-1] in ".!?)"
    )


def assert_refused(dock: Any, case: Case, what: str, levels: tuple[str, ...] = ("warning", "error")) -> None:
    message = dock.last_message
    if os.environ.get("CORPUS_DEBUG"):
        print(f"\n[{what}] {case.name}: {dock.last_level}: {message}")
    assert dock.last_level in levels, f"{what}: {case.name} ({case.note}) was not refused: {message!r}"
    assert one_sentence(message), f"{what}: not one sentence: {message!r}"
    assert "(details in the log)" not in message, f"{what}: an unexpected error: {message!r}"


def no_crash_notified(dock: Any) -> None:
    crashes = [n.message for n in dock.context.notifications.items if "Unexpected error" in n.message]
    assert not crashes, crashes


@pytest.fixture
def guard(dialogs: Dialogs) -> Iterator[Callable[[Case], None]]:
    """Checks after a case: the input untouched, nothing written next to the corpus, no pickle ran."""
    root = corpus_root()
    before_tree = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    seen: list[tuple[Case, Any]] = []

    def watch(case: Case) -> None:
        seen.append((case, fingerprint(case.path)))

    yield watch
    for case, before in seen:
        assert fingerprint(case.path) == before, f"{case.name} was changed"
    after = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    assert after == before_tree, f"written next to the corpus: {sorted(after ^ before_tree)}"
    assert not (root / PICKLE_MARKER).exists(), "a pickle was executed"
    dialogs.path = dialogs.save = ""


def _case(name: str) -> Case:
    return corpus_cases()[name]


#: Defects outside the files these tests may change: (entry point, case) -> what is wrong.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def cases(entry: str) -> list[Any]:
    """The corpus as parameters of one entry point (known defects outside these tests marked as xfails)."""
    return [
        pytest.param(
            name,
            id=name,
            marks=[pytest.mark.xfail(strict=False, reason=KNOWN_DEFECTS[entry, name])]
            if (entry, name) in KNOWN_DEFECTS
            else [],
        )
        for name in CASE_NAMES
    ]


def wait_until(condition: Callable[[], Any], timeout: float = WAIT / 1000) -> None:
    """Process Qt events until ``condition()`` is true (for module fixtures, which have no qtbot)."""
    import time

    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        QApplication.processEvents()
        time.sleep(0.01)


# ---- background removal ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matting(home: Path, qapp: Any, dialogs: Dialogs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from snowai_studio.matting.page import MattingPage
    from workers.models.store import ModelStore

    store = ModelStore(tmp_path_factory.mktemp("matting-store"))
    store.import_file(_case("mdl-matting").path, "matting", name="Corpus matting")
    dock = MattingPage(context(store=store))
    dock.resize(900, 700)
    dock.show()
    yield dock
    close(dock)


def _open_in_matting(dock: Any, dialogs: Dialogs, path: Path) -> Any:
    """Open ``path`` as the file dialog would hand it over; the entry it made (None when refused at once)."""
    before = len(dock.entries)
    dialogs.path = str(path)
    if path.is_dir():
        dock.open_folder()
    else:
        dock.open_images()
    if len(dock.entries) == before:
        return None
    entry = dock.entries[-1]
    wait_until(lambda: entry.image is not None or bool(entry.error))
    return entry


def matting_opens(case: Case) -> bool:
    if case.accepted_by(IMAGE_FOLDER):
        return True
    return case.accepted_by(IMAGE) and case.path.suffix.lower() in IMAGE_EXTENSIONS


@pytest.mark.parametrize("case_name", cases("matting open"))
def test_matting_open_images(case_name: str, matting: Any, dialogs: Dialogs, qtbot: Any, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    entry = _open_in_matting(matting, dialogs, case.path)
    if matting_opens(case):
        assert entry is not None and entry.image is not None, matting.last_message
        assert matting.current is entry
    elif entry is not None:
        assert entry.image is None and entry.error, "opened although it should not be"
        assert_refused(matting, case, "open images")
        assert matting.remove_background() is None  # still refused, with the same sentence
        assert_refused(matting, case, "remove after a failed open")
    else:
        assert_refused(matting, case, "open images")
        if not case.path.exists():
            assert matting.last_message.startswith("Not found:"), matting.last_message
        elif case.path.is_dir():
            assert "There are no images" in matting.last_message
    no_crash_notified(matting)


@pytest.mark.parametrize("case_name", cases("matting background"))
def test_matting_background_image(case_name: str, matting: Any, dialogs: Dialogs, guard: Any) -> None:
    from workers.matting.compose import Background

    case = _case(case_name)
    guard(case)
    matting.set_background(Background())
    dialogs.path = str(case.path)
    matting._on_background_chosen(matting.background_combo.findData("image"))
    if case.accepted_by(IMAGE):
        assert matting.background.kind == "image", matting.last_message
    else:
        assert matting.background.kind == "transparent"
        assert matting.background_combo.currentData() == "transparent"
        assert_refused(matting, case, "background image", ("error",))
    matting.set_background(Background())
    no_crash_notified(matting)


@pytest.fixture(scope="module")
def model_dialog(matting: Any) -> Iterator[Any]:
    from snowai_studio.dialogs.models_dialog import ModelManagerDialog

    dialog = ModelManagerDialog(matting.store)
    dialog.show()
    yield dialog
    dialog.shutdown()
    dialog.close()
    dialog.deleteLater()


@pytest.fixture(scope="module")
def good_entry(matting: Any, dialogs: Dialogs, qapp: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fine image open in the matting dock, for the model cases to work on."""
    path = tmp_path_factory.mktemp("good-image") / "subject.png"
    shutil.copyfile(_case("img-rgba").path, path)
    entry = _open_in_matting(matting, dialogs, path)
    assert entry is not None and entry.image is not None
    return entry


@pytest.mark.parametrize("case_name", cases("matting import"))
def test_matting_import_model_and_use_it(
    case_name: str, matting: Any, model_dialog: Any, good_entry: Any, qtbot: Any, guard: Any
) -> None:
    """The model manager's Import, then the dock runs the imported model (accepted only if it is a
    background-removal model)."""
    case = _case(case_name)
    guard(case)
    store = matting.store
    before = {m.id for m in store.user_models()}
    model_dialog.import_path(case.path, "matting", case.name)
    qtbot.waitUntil(lambda: model_dialog._job is None, timeout=WAIT)
    message = model_dialog.message.text()
    assert one_sentence(message), f"not one sentence: {message!r}"
    assert "(details in the log)" not in message, f"an unexpected error: {message!r}"
    added = [m for m in store.user_models() if m.id not in before]
    if not added:
        assert "#b00020" in model_dialog.message.styleSheet(), f"{case.name} was neither imported nor refused"
        assert not case.accepted_by(MATTING_MODEL), f"{case.name} should import: {message}"
        leftovers = [p for p in (store.root / "user").iterdir() if p.name not in before] if (
            store.root / "user"
        ).exists() else []
        assert not leftovers, f"a refused import left {leftovers}"
        return
    assert message.startswith("Imported"), message
    matting.refresh_models()
    model_id = added[0].id
    index = matting.model_combo.findData(model_id)
    assert index >= 0, f"{model_id} is not offered"
    if not next(c for c in matting.choices if c.id == model_id).ready:
        assert not case.accepted_by(MATTING_MODEL)
        return
    matting.model_combo.setCurrentIndex(index)
    matting.select(good_entry)
    qtbot.waitUntil(lambda: not good_entry.busy, timeout=WAIT)
    good_entry.alpha = None
    with qtbot.waitSignal(matting.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "remove") as done:
        assert matting.remove_background() is not None, matting.last_message
    if case.accepted_by(MATTING_MODEL):
        assert done.args[1], matting.last_message
        assert good_entry.alpha is not None
    else:
        assert not done.args[1], f"{case.name} ran as a matting model"
        assert_refused(matting, case, "remove with an imported model", ("error",))
    no_crash_notified(matting)


def test_matting_still_works_afterwards(matting: Any, dialogs: Dialogs, qtbot: Any, tmp_path: Path) -> None:
    good = tmp_path / "afterwards.png"
    shutil.copyfile(_case("img-cmyk").path.with_name("img-rgba.png"), good)
    entry = _open_in_matting(matting, dialogs, good)
    assert entry is not None and entry.image is not None
    index = matting.model_combo.findData(next(m.id for m in matting.store.user_models() if m.name == "Corpus matting"))
    matting.model_combo.setCurrentIndex(index)
    with qtbot.waitSignal(matting.job_done, timeout=WAIT, check_params_cb=lambda kind, ok: kind == "remove") as done:
        assert matting.remove_background() is not None
    assert done.args[1], matting.last_message
    assert matting.set_background_image(_case("img-16bit").path)
    no_crash_notified(matting)


# ---- face swap -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_swap(home: Path, qapp: Any, dialogs: Dialogs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The face-swap page (consent given, no camera) with the corpus's portrait as its source face."""
    from snowai_studio.face_swap.page import FaceSwapPage
    from workers.models.store import ModelStore

    extras = {"face_swap_consent": lambda parent: True, "face_swap_confirm_mark_off": lambda parent: True}
    dock = FaceSwapPage(context(extras, ModelStore(tmp_path_factory.mktemp("face-store"))))
    dock.resize(1000, 700)
    dock.show()
    dock.outdir = tmp_path_factory.mktemp("face-out")  # type: ignore[attr-defined]
    yield dock
    close(dock)


def _face_job(dock: Any, kind: str, start: Callable[[], Any]) -> bool | None:
    """Run a face-swap job; True/False when it ended well or not, None when it was refused at once."""
    results: list[bool] = []

    def done(k: str, ok: bool) -> None:
        if k == kind:
            results.append(ok)

    dock.job_done.connect(done)
    try:
        if start() is None:
            return None
        wait_until(lambda: bool(results))
    finally:
        dock.job_done.disconnect(done)
    return results[0]


def _good_source(dock: Any, dialogs: Dialogs) -> None:
    if dock.source_summary is None or dock.source_summary.paths[0] != _case("face-jpg").path:
        dialogs.path = str(_case("face-jpg").path)
        assert _face_job(dock, "source", dock.choose_source), dock.last_message


@pytest.mark.parametrize("case_name", cases("face source"))
def test_face_swap_source_photos(case_name: str, face_swap: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dialogs.path = str(case.path)
    ok = _face_job(face_swap, "source", face_swap.choose_source)
    if case.accepted_by(FACE):
        assert ok, face_swap.last_message
        assert face_swap.source_summary is not None and face_swap.source_summary.paths[0] == case.path
    else:
        assert not ok
        assert_refused(face_swap, case, "source photos")
        if case.path.is_dir():
            assert "is a folder" in face_swap.last_message
        _good_source(face_swap, dialogs)
    no_crash_notified(face_swap)


def _written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("case_name", cases("face image"))
def test_face_swap_target_image(case_name: str, face_swap: Any, dialogs: Dialogs, guard: Any, tmp_path: Path) -> None:
    case = _case(case_name)
    guard(case)
    _good_source(face_swap, dialogs)
    dialogs.path = str(case.path)
    dialogs.save = str(tmp_path / "swapped.png")
    ok = _face_job(face_swap, "image", face_swap.open_image)  # shown swapped in the preview, nothing written
    if case.accepted_by(FACE):
        assert ok, face_swap.last_message
        assert _written(tmp_path) == []
        assert _face_job(face_swap, "save", face_swap.save_image), face_swap.last_message
        assert _written(tmp_path) == ["swapped.png"]
    else:
        assert not ok
        assert_refused(face_swap, case, "target image")
        assert _written(tmp_path) == [], "a refused swap left a file"
    no_crash_notified(face_swap)


@pytest.mark.parametrize("case_name", cases("face video"))
def test_face_swap_target_video(case_name: str, face_swap: Any, dialogs: Dialogs, guard: Any, tmp_path: Path) -> None:
    case = _case(case_name)
    guard(case)
    _good_source(face_swap, dialogs)
    dialogs.path = str(case.path)
    dialogs.save = str(tmp_path / "swapped.mp4")
    ok = _face_job(face_swap, "video", face_swap.swap_video_file)
    if case.accepted_by(VIDEO):
        assert ok, face_swap.last_message
    elif ok and (case.accepted_by(IMAGE) or case.kind == "image"):
        pass  # FFmpeg reads many still images (even damaged ones) as a one-frame video: that is fine too
    else:
        assert not ok, f"{case.name} was taken for a video"
        assert_refused(face_swap, case, "target video")
    if ok:
        assert _written(tmp_path) == ["swapped.mp4"]
    else:
        assert _written(tmp_path) == [], "a refused swap left a file"
    no_crash_notified(face_swap)


def test_face_swap_still_works_afterwards(face_swap: Any, dialogs: Dialogs, tmp_path: Path) -> None:
    dialogs.path = str(_case("face-cmyk").path)
    assert _face_job(face_swap, "source", face_swap.choose_source), face_swap.last_message
    dialogs.path, dialogs.save = str(_case("face-jpg").path), str(tmp_path / "a.jpg")
    assert _face_job(face_swap, "image", face_swap.open_image), face_swap.last_message
    assert _face_job(face_swap, "save", face_swap.save_image), face_swap.last_message
    dialogs.path, dialogs.save = str(_case("vid-vfr").path), str(tmp_path / "b.mp4")
    assert _face_job(face_swap, "video", face_swap.swap_video_file), face_swap.last_message
    assert _written(tmp_path) == ["a.jpg", "b.mp4"]
    no_crash_notified(face_swap)


# ---- voice assistant ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def assistant(home: Path, qapp: Any, dialogs: Dialogs, tiny_chat_llm_dir: Path) -> Iterator[Any]:  # noqa: F811
    """The assistant page with its real worker and loaders: the shipped VAD, Whisper and Piper, and a tiny
    transformers language model (loaded once; the corpus cases reload one part each)."""
    from assistant_fixtures import shipped_store

    from snowai_studio.assistant.page import AssistantPage
    from workers.assistant.options import AssistantOptions
    from workers.media.fakes import MemorySink
    from workers.settings import Settings

    settings = Settings.load()
    settings.set_options(
        AssistantOptions(llm_backend="transformers", llm_model=str(tiny_chat_llm_dir), max_new_tokens=4)
    )
    settings.save()
    extras = {"speaker_factory": lambda: MemorySink(48000, 1), "microphone_factory": lambda: None}
    dock = AssistantPage(context(extras, shipped_store()))
    dock.resize(520, 860)
    dock.show()
    assert dock._when_ready("corpus", lambda worker: None)
    wait_until(lambda: dock.ready, 120)
    dock.good_options = copy.deepcopy(dock.options)  # type: ignore[attr-defined]
    yield dock
    close(dock)


def _assistant_reload(dock: Any, change: Callable[[], Any]) -> str:
    """Change a model setting; "loaded" or "error" once the worker has answered."""
    outcome: list[str] = []

    def on_event(event: Any) -> None:
        if getattr(event, "kind", "") == "error":
            outcome.append("error")

    def on_loaded(_info: dict) -> None:
        outcome.append("loaded")

    dock.event_shown.connect(on_event)
    dock.models_loaded.connect(on_loaded)
    try:
        change()
        wait_until(lambda: bool(outcome) and not dock.loading)
    finally:
        dock.event_shown.disconnect(on_event)
        dock.models_loaded.disconnect(on_loaded)
    return outcome[0]


def _assistant_restore(dock: Any, outcome: str) -> None:
    """Back to the first models. After a refused model there is nothing to reload (the worker kept the
    models in use), but the dock waits for a reload that never comes (see
    test_assistant_back_to_the_kept_model_ends_loading): its loading bar is dismissed as its Cancel
    button would."""
    if outcome == "loaded":
        assert _assistant_reload(dock, lambda: dock.set_options(copy.deepcopy(dock.good_options))) == "loaded"
    else:
        dock.set_options(copy.deepcopy(dock.good_options))
        if dock.loading:
            dock.cancel_loading()
    assert not dock.loading and dock.ready


def _pick_backend(panel: Any, choice: str) -> None:
    """Show the file row of a backend without loading anything yet (as before pressing Browse)."""
    panel.llm_combo.blockSignals(True)
    panel.llm_combo.setCurrentIndex(panel.llm_combo.findData(choice))
    panel.llm_combo.blockSignals(False)


@pytest.mark.parametrize("case_name", cases("assistant conversation"))
def test_assistant_load_conversation(case_name: str, assistant: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dialogs.path = str(case.path)
    loaded = assistant.load_conversation()
    if case.accepted_by(CONVERSATION):
        assert loaded, assistant.last_message
        assert assistant.last_level == "info"
    else:
        assert not loaded
        assert_refused(assistant, case, "load conversation", ("error",))
    no_crash_notified(assistant)


@pytest.mark.parametrize("case_name", cases("assistant llm"))
def test_assistant_choose_language_model(case_name: str, assistant: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    panel = assistant.settings_panel.llm
    _pick_backend(panel, "transformers" if case.path.is_dir() else "gguf")
    dialogs.path = str(case.path)
    outcome = _assistant_reload(assistant, panel.browse_llm)
    try:
        if case.accepted_by(LLM_MODEL):
            assert outcome == "loaded", assistant.last_message
        else:
            assert outcome == "error", f"{case.name} loaded as a language model"
            assert_refused(assistant, case, "language model", ("error",))
    finally:
        _assistant_restore(assistant, outcome)
    no_crash_notified(assistant)


@pytest.mark.parametrize("case_name", cases("assistant whisper"))
def test_assistant_choose_whisper_model(case_name: str, assistant: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dialogs.path = str(case.path)
    outcome = _assistant_reload(assistant, assistant.settings_panel.speech.browse_asr)
    try:
        if case.accepted_by(WHISPER_MODEL):
            assert outcome == "loaded", assistant.last_message
        else:
            assert outcome == "error", f"{case.name} loaded as a Whisper model"
            assert_refused(assistant, case, "Whisper model", ("error",))
    finally:
        _assistant_restore(assistant, outcome)
    no_crash_notified(assistant)


@pytest.mark.parametrize("case_name", cases("assistant voice"))
def test_assistant_choose_voice(case_name: str, assistant: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dialogs.path = str(case.path)
    outcome = _assistant_reload(assistant, assistant.settings_panel.voice.browse_voice)
    try:
        if case.accepted_by(PIPER_VOICE):
            assert outcome == "loaded", assistant.last_message
        else:
            assert outcome == "error", f"{case.name} loaded as a voice"
            assert_refused(assistant, case, "voice", ("error",))
    finally:
        _assistant_restore(assistant, outcome)
    no_crash_notified(assistant)


def test_assistant_back_to_the_kept_model_ends_loading(assistant: Any, dialogs: Dialogs) -> None:
    """After a model that failed to load, choosing the model still in use again must not leave the page loading."""
    panel = assistant.settings_panel.llm
    _pick_backend(panel, "gguf")
    dialogs.path = str(_case("mdl-text-gguf").path)
    assert _assistant_reload(assistant, panel.browse_llm) == "error"
    assistant.set_options(copy.deepcopy(assistant.good_options))
    try:
        wait_until(lambda: not assistant.loading, 5)
    finally:
        if assistant.loading:
            assistant.cancel_loading()


def test_assistant_still_works_afterwards(assistant: Any, dialogs: Dialogs) -> None:
    dialogs.path = str(_case("conv-good-md").path)
    assert assistant.load_conversation(), assistant.last_message
    before = len([e for e in assistant.events if e.kind == "done"])
    assert assistant.send_text("Hello there")
    wait_until(lambda: len([e for e in assistant.events if e.kind == "done"]) > before, 60)
    assert not assistant.loading
    no_crash_notified(assistant)


# ---- voice conversion -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def svc_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import svc_fixtures

    return svc_fixtures.fixture_store(tmp_path_factory.mktemp("svc-store") / "store")


@pytest.fixture(scope="module")
def rvc_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The voice model of the index cases (a copy of the corpus's RVC model), loaded once; every other
    model, the corpus file itself included, goes through the loader."""
    good = tmp_path_factory.mktemp("index-model") / "index-model.pth"
    shutil.copyfile(_case("mdl-rvc").path, good)
    cache: dict[str, Any] = {}

    def load(path: Any, config: Any = None, *, device: str = "cpu") -> Any:
        if Path(path) != good or config is not None:
            return _REAL_LOAD_VOICE_MODEL(path, config, device=device)
        if "rvc" not in cache:
            cache["rvc"] = _REAL_LOAD_VOICE_MODEL(path, None, device=device)
        return cache["rvc"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("workers.voice_conversion.checkpoints.load_voice_model", load)
        yield good


def _svc_dock(store: Any) -> Any:
    from snowai_studio.voice_conversion import create_page
    from workers.media.fakes import ArrayMicrophone, MemorySink

    extras = {
        "microphone_factory": lambda: ArrayMicrophone(__import__("numpy").zeros(4800, "float32"), 48000, 48000, 1024),
        "speaker_factory": lambda: MemorySink(48000, 1),
    }
    dock = create_page(context(extras, store))
    dock.resize(900, 700)
    dock.show()
    return dock


@pytest.fixture(scope="module")
def svc(home: Path, qapp: Any, dialogs: Dialogs, svc_store: Any, rvc_once: Path) -> Iterator[Any]:
    """The voice-conversion dock for the model, config and index cases."""
    dock = _svc_dock(svc_store)
    dock.index_model = rvc_once  # type: ignore[attr-defined]
    yield dock
    close(dock)


@pytest.fixture(scope="module")
def svc_files(
    home: Path, qapp: Any, dialogs: Dialogs, svc_store: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The voice-conversion dock with the built-in voice changer, for the files to convert."""
    dock = _svc_dock(svc_store)
    dock.set_output_folder(tmp_path_factory.mktemp("svc-out"))
    yield dock
    close(dock)


def _svc_load(dock: Any, start: Callable[[], bool]) -> bool:
    """Choose a voice (or an index); True when the dock started loading it (then waits for the end)."""
    if not start():
        return False
    wait_until(lambda: dock.pending_model is None and dock.pending_index is None)
    return True


def _svc_rvc_active(dock: Any) -> None:
    good = str(dock.index_model)
    if dock.active_model != good:
        assert _svc_load(dock, lambda: dock.import_rvc(good))
        assert dock.active_model == good, dock.last_message


@pytest.mark.parametrize("case_name", cases("svc model"))
def test_svc_voice_model(case_name: str, svc: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dialogs.path = str(case.path)
    before = svc.active_model
    started = _svc_load(svc, svc.import_sovits if case.path.is_dir() else svc.import_rvc)
    if case.accepted_by(SVC_MODEL):
        assert started and svc.active_model == str(case.path), svc.last_message
    else:
        assert svc.active_model == before, f"{case.name} was taken as a voice model"
        assert_refused(svc, case, "voice model", ("error",))
    no_crash_notified(svc)


@pytest.mark.parametrize("case_name", cases("svc config"))
def test_svc_sovits_config(case_name: str, svc: Any, dialogs: Dialogs, guard: Any, tmp_path: Path) -> None:
    """A so-vits-svc folder whose config.json is the case (next to the corpus model's G_*.pth)."""
    case = _case(case_name)
    guard(case)
    folder = tmp_path / "sovits"
    folder.mkdir()
    generator = next(_case("mdl-sovits-folder").path.glob("G_*.pth"))
    try:
        os.link(generator, folder / generator.name)
    except OSError:
        shutil.copyfile(generator, folder / generator.name)
    if case.path.is_dir():
        shutil.copytree(case.path, folder / "config.json")
    elif case.path.exists():
        shutil.copyfile(case.path, folder / "config.json")
    dialogs.path = str(folder)
    before = svc.active_model
    started = _svc_load(svc, svc.import_sovits)
    if case.accepted_by(SVC_CONFIG):
        assert started and svc.active_model == str(folder), svc.last_message
        _svc_rvc_active(svc)
    else:
        assert svc.active_model == before, f"{case.name} was taken as a so-vits-svc config"
        assert_refused(svc, case, "so-vits config", ("error",))
    no_crash_notified(svc)


@pytest.mark.parametrize("case_name", cases("svc index"))
def test_svc_index(case_name: str, svc: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    _svc_rvc_active(svc)
    dialogs.path = str(case.path)
    assert _svc_load(svc, svc.choose_index)
    if case.accepted_by(SVC_INDEX):
        assert svc.options.index == str(case.path), svc.last_message
        svc.set_index("")
        wait_until(lambda: svc.pending_index is None)
    else:
        assert svc.options.index != str(case.path), f"{case.name} was taken as an index"
        assert_refused(svc, case, "index", ("error",))
    no_crash_notified(svc)


@pytest.mark.parametrize("case_name", cases("svc files"))
def test_svc_files_to_convert(case_name: str, svc_files: Any, dialogs: Dialogs, guard: Any) -> None:
    case = _case(case_name)
    guard(case)
    dock = svc_files
    outdir = dock.output_folder
    before = set(os.listdir(outdir))
    dock._clear_files()
    dialogs.path = str(case.path)
    if dock.add_files() == 0:
        assert not (case.accepted_by(AUDIO) or case.accepted_by(SOUND)), dock.last_message
        assert_refused(dock, case, "add files", ("warning",))
        assert ("is a folder" if case.path.is_dir() else "was not found") in dock.last_message
        return
    results: list[bool] = []
    dock.job_done.connect(lambda kind, ok: results.append(ok))
    try:
        assert dock.convert() is not None
        wait_until(lambda: bool(results))
    finally:
        dock.job_done.disconnect()
    written = set(os.listdir(outdir)) - before
    if case.accepted_by(AUDIO) or case.accepted_by(SOUND):
        assert results[0], dock.last_message
        assert len(written) == 1 and not next(iter(written)).startswith("."), written
    else:
        assert not results[0], f"{case.name} was converted"
        assert_refused(dock, case, "convert files", ("warning", "error"))
        assert not written, f"a failed conversion left {written}"
    no_crash_notified(dock)


def test_svc_still_works_afterwards(svc: Any, svc_files: Any, dialogs: Dialogs) -> None:
    dialogs.path = str(_case("mdl-sovits-folder").path)
    assert _svc_load(svc, svc.import_sovits)
    assert svc.active_model == str(_case("mdl-sovits-folder").path), svc.last_message
    _svc_rvc_active(svc)
    dialogs.path = str(_case("idx-valid").path)
    assert _svc_load(svc, svc.choose_index) and svc.options.index == dialogs.path, svc.last_message
    svc_files._clear_files()
    dialogs.path = str(_case("aud-ogg").path)
    assert svc_files.add_files() == 1
    results: list[bool] = []
    svc_files.job_done.connect(lambda kind, ok: results.append(ok))
    assert svc_files.convert() is not None
    wait_until(lambda: bool(results))
    svc_files.job_done.disconnect()
    assert results[0], svc_files.last_message
    no_crash_notified(svc)
    no_crash_notified(svc_files)

