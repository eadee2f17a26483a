""" "Get started": each tool's recommended set in the manifest, the plan (sizes, resume, free disk), one
download for the whole set with one progress, cancel and resume, the CLI and the dialog."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_server import FileServer, payload, sha
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from test_models_cli import run

from workers.assistant.options import AssistantOptions
from workers.errors import Cancelled, UserError
from workers.models import get_started
from workers.models.manifest import TOOLS, ManifestError, load_manifest, parse_manifest
from workers.models.store import ModelStore, Status

A = payload(300_000, seed=3)
B = payload(500_000, seed=5)


def model_toml(model_id: str, data: bytes, tool: str = "assistant") -> str:
    return f"""
[[model]]
id = "{model_id}"
tool = "{tool}"
name = "Model {model_id.upper()}"
licence = "MIT"
kind = "onnx"

[[model.file]]
name = "{model_id}.bin"
size = {len(data)}
sha256 = "{sha(data)}"
sources = [{{ hf_repo = "test/{model_id}", hf_filename = "{model_id}.bin" }}]
"""


STARTER = """
[[starter]]
tool = "assistant"
summary = "Two test models."
models = [
  { id = "a", gives = "The first one.", use = { llm_backend = "gguf", llm_model = "a" } },
  { id = "b", gives = "The second one.", use = { asr_model = "b" } },
]
"""


@pytest.fixture
def served(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelStore, Path]:
    """Two served models ``a`` and ``b`` forming the assistant's recommended set."""
    server.add("/test/a/resolve/main/a.bin", A)
    server.add("/test/b/resolve/main/b.bin", B)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    manifest = tmp_path / "models.toml"
    manifest.write_text(model_toml("a", A) + model_toml("b", B) + STARTER, encoding="utf-8")
    return ModelStore(tmp_path / "store", load_manifest(manifest)), manifest


# ---- the shipped manifest ----------------------------------------------------------------------------
def test_every_tool_has_a_recommended_set_that_can_be_downloaded() -> None:
    manifest = load_manifest()
    assert set(manifest.starters) == set(TOOLS)
    for starter in manifest.starters.values():
        assert starter.summary.endswith(".")
        for item in starter.items:
            model = manifest.get(item.model_id)
            assert model.tool == starter.tool
            assert item.gives.endswith(".") and len(item.gives) > 20
            assert all(f.download_sources for f in model.files), model.id
            assert all(f.sha256 for f in model.files), model.id


def test_the_assistant_set_selects_real_options() -> None:
    starter = load_manifest().starters["assistant"]
    fields = {f.name for f in dataclasses.fields(AssistantOptions)}
    used = {key for item in starter.items for key, _ in item.use}
    assert {"llm_model", "asr_model", "voice"} <= used <= fields


def test_the_manifest_names_instruct_llms_with_published_checksums() -> None:
    manifest = load_manifest()
    ids = {m.id for m in manifest.by_tool("assistant") if m.kind == "gguf"}
    assert {
        "qwen2.5-1.5b-instruct-q4-k-m",
        "qwen2.5-3b-instruct-q4-k-m",
        "llama-3.2-3b-instruct-q4-k-m",
        "meta-llama-3-8b-instruct-q4-k-m",
        "glm-4-9b-0414-q4-k-m",
    } <= ids
    for model_id in ids - {"gemma-3-270m-q4-k-m-shipped", "smollm2-135m-instruct-q4-1"}:
        model = manifest.get(model_id)
        (file,) = model.files
        assert len(file.sha256) == 64 and file.size > 500_000_000
        assert file.sources[0].hf_repo and model.licence
    assert "gated" in manifest.get("meta-llama-3-8b-instruct-q4-k-m").access


@pytest.mark.parametrize(
    ("starter", "words"),
    [
        ('[[starter]]\ntool = "assistant"\nsummary = "x"\nmodels = [{ id = "nope", gives = "y" }]', "not in the"),
        ('[[starter]]\ntool = "matting"\nsummary = "x"\nmodels = [{ id = "a", gives = "y" }]', "another tool"),
        ('[[starter]]\ntool = "paint"\nsummary = "x"\nmodels = []', "unknown tool"),
        ('[[starter]]\ntool = "assistant"\nsummary = "x"\nmodels = []', "lists no models"),
        ('[[starter]]\ntool = "assistant"\nsummary = "x"\nmodels = [{ id = "a", gives = "y", use = 3 }]', "use must"),
    ],
)
def test_a_wrong_recommended_set_is_one_sentence(starter: str, words: str) -> None:
    import tomllib

    raw = tomllib.loads(model_toml("a", A) + starter)
    with pytest.raises(ManifestError, match=words):
        parse_manifest(raw)


# ---- the plan -------------------------------------------------------------------------------------------
def test_the_plan_counts_what_is_left_and_a_part_file_resumes(served: tuple[ModelStore, Path]) -> None:
    store, _ = served
    plan = get_started.plan(store, "assistant")
    assert [i.model.id for i in plan.items] == ["a", "b"]
    assert plan.to_fetch == len(A) + len(B) == plan.total
    assert plan.fits and not plan.complete
    assert "to download" in plan.space_sentence() and "free" in plan.space_sentence()
    folder = store.model_dir("b")
    folder.mkdir(parents=True)
    (folder / "b.bin.part").write_bytes(B[:200_000])
    plan = get_started.plan(store, "assistant")
    assert plan.to_fetch == len(A) + len(B) - 200_000
    assert "resumes" in plan.items[1].status_text


def test_a_set_that_does_not_fit_is_refused_before_the_first_byte(
    served: tuple[ModelStore, Path], server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = served
    monkeypatch.setattr(get_started, "free_space", lambda _folder: 1000)
    plan = get_started.plan(store, "assistant")
    assert not plan.fits
    assert "does not fit" in plan.space_sentence()
    with pytest.raises(UserError, match="Not enough disk space") as caught:
        get_started.fetch(store, "assistant")
    assert "\n" not in str(caught.value)
    assert server.requests == []


def test_one_download_for_the_set_with_one_progress(served: tuple[ModelStore, Path], server: FileServer) -> None:
    store, _ = served
    folder = store.model_dir("b")
    folder.mkdir(parents=True)
    (folder / "b.bin.part").write_bytes(B[:200_000])
    seen: list[tuple[int, int]] = []
    steps: list[str] = []
    after = get_started.fetch(store, "assistant", progress=lambda d, t: seen.append((d, t)), status=steps.append)
    assert after.complete
    assert store.state("a").status is Status.INSTALLED and store.state("b").status is Status.INSTALLED
    total = len(A) + len(B) - 200_000
    assert {t for _, t in seen} == {total}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (total, total)
    assert server.sent["/test/b/resolve/main/b.bin"] == len(B) - 200_000  # resumed, not fetched again
    assert steps == ["Getting Model A (300.0 KB)…", "Getting Model B (500.0 KB)…"]
    assert get_started.choices(after) == {"llm_backend": "gguf", "llm_model": "a", "asr_model": "b"}


def test_cancel_keeps_the_finished_models(served: tuple[ModelStore, Path]) -> None:
    store, _ = served
    steps: list[str] = []
    with pytest.raises(Cancelled):
        get_started.fetch(store, "assistant", status=steps.append, cancel=lambda: len(steps) > 1)
    assert store.state("a").status is Status.INSTALLED
    assert store.state("b").status is not Status.INSTALLED
    assert get_started.plan(store, "assistant").to_fetch <= len(B)


def test_choices_go_into_the_settings_read_or_not() -> None:
    from workers.settings import Settings

    plan = get_started.StarterPlan(
        "assistant",
        "",
        (
            get_started.PlanItem(
                load_manifest().get("faster-whisper-small"),
                "",
                type("S", (), {"usable": True})(),  # type: ignore[arg-type]
                0,
                (("asr_model", "faster-whisper-small"), ("not_an_option", "x")),
            ),
        ),
        None,
        Path("."),
    )
    unread = Settings()
    get_started.apply_choices(unread, plan)
    assert unread.sections["assistant"]["asr_model"] == "faster-whisper-small"
    read = Settings()
    read.options(AssistantOptions)
    changed = get_started.apply_choices(read, plan)
    assert changed == {"asr_model": "faster-whisper-small"}
    assert read.options(AssistantOptions).asr_model == "faster-whisper-small"


# ---- the command line ----------------------------------------------------------------------------------
def test_cli_shows_the_set_then_downloads_it_with_yes(
    served: tuple[ModelStore, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, manifest = served
    settings_file = tmp_path / "settings.json"
    monkeypatch.setenv("SNOWAI_SETTINGS_FILE", str(settings_file))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    common = ("--store", str(store.root), "--manifest", str(manifest))
    code, out, _ = run(*common, "get-started", "assistant")
    assert code == 0
    assert "Model A" in out and "The first one." in out and "to download" in out
    assert "Nothing was downloaded" in out
    assert store.state("a").status is Status.MISSING
    code, out, err = run(*common, "get-started", "assistant", "--yes")
    assert code == 0, err
    assert "Ready: Model A, Model B." in out
    assert store.state("b").status is Status.INSTALLED
    saved = json.loads(settings_file.read_text())
    assert saved["assistant"]["llm_model"] == "a" and saved["assistant"]["asr_model"] == "b"
    code, out, _ = run(*common, "get-started", "assistant")
    assert code == 0 and "is ready" in out


@pytest.mark.parametrize(("tool", "words"), [("paint", "no tool called"), ("matting", "no recommended models")])
def test_cli_refuses_an_unknown_tool_in_a_sentence(served: tuple[ModelStore, Path], tool: str, words: str) -> None:
    store, manifest = served
    code, _out, err = run("--store", str(store.root), "--manifest", str(manifest), "get-started", tool)
    assert code != 0 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_says_when_the_set_does_not_fit(served: tuple[ModelStore, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    store, manifest = served
    monkeypatch.setattr(get_started, "free_space", lambda _folder: 1000)
    code, _out, err = run("--store", str(store.root), "--manifest", str(manifest), "get-started", "assistant", "--yes")
    assert code != 0 and "Not enough disk space" in err
    assert store.state("a").status is Status.MISSING


def test_cli_knows_the_tools_by_their_plain_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, _ = run("--store", str(tmp_path), "get-started", "background")
    assert code == 0 and out.startswith("Background removal:") and "IS-Net general use" in out


# ---- the dialog ----------------------------------------------------------------------------------------
@pytest.fixture
def dialogs(qtbot: QtBot) -> Iterator[list]:
    made: list = []
    yield made
    for d in made:
        d.shutdown()


def open_dialog(qtbot: QtBot, made: list, store: ModelStore):
    from snowai_studio.dialogs.get_started_dialog import GetStartedDialog

    dlg = GetStartedDialog(store, "assistant")
    qtbot.addWidget(dlg)
    made.append(dlg)
    dlg.show()
    return dlg


def test_the_dialog_downloads_the_set_in_one_click(
    qtbot: QtBot, dialogs: list, served: tuple[ModelStore, Path]
) -> None:
    store, _ = served
    dlg = open_dialog(qtbot, dialogs, store)
    assert dlg.download_button.text() == "Download 800.0 KB"
    assert "The first one." in " ".join(w.text() for w in dlg.findChildren(type(dlg.space_label)))
    ready: list[tuple[str, list]] = []
    dlg.ready.connect(lambda tool, ids: ready.append((tool, ids)))
    values: list[int] = []
    dlg.progress.valueChanged.connect(values.append)
    qtbot.mouseClick(dlg.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.running, timeout=20_000)
    assert ready == [("assistant", ["a", "b"])]
    assert values and values[-1] == 1000
    assert "Ready: Model A, Model B." in dlg.message.text()
    assert store.state("b").status is Status.INSTALLED
    assert dlg.download_button.text() == "Use them"


def test_the_dialog_cancels_and_resumes(
    qtbot: QtBot, dialogs: list, served: tuple[ModelStore, Path], server: FileServer
) -> None:
    store, _ = served
    server.chunk_delay = 0.01
    dlg = open_dialog(qtbot, dialogs, store)
    dlg.start()
    # Cancel once part of the first file is on disk (bytes the server sent may still be in flight).
    qtbot.waitUntil(
        lambda: any(i.to_fetch < i.model.size for i in get_started.plan(store, "assistant").missing), timeout=10_000
    )
    assert dlg.cancel_button.isVisible() and not dlg.close_button.isEnabled()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.running, timeout=10_000)
    assert "cancelled" in dlg.message.text() and "Resume" in dlg.message.text()
    assert dlg.download_button.text().startswith("Resume")
    server.chunk_delay = 0.0
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running, timeout=20_000)
    assert get_started.plan(store, "assistant").complete
    # resumed: at most the chunks in flight at the cancel come twice, never the whole file
    assert server.sent["/test/a/resolve/main/a.bin"] < len(A) + 64 * 1024


def test_a_cancel_before_any_byte_arrived_says_download_not_resume(
    qtbot: QtBot, dialogs: list, served: tuple[ModelStore, Path], server: FileServer
) -> None:
    store, _ = served
    server.chunk_delay = 0.5  # the first bytes take a while
    dlg = open_dialog(qtbot, dialogs, store)
    dlg.start()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.running, timeout=10_000)
    if dlg.download_button.text().startswith("Download"):
        assert "Click Download" in dlg.message.text() or "click Download" in dlg.message.text()
        assert "Resume" not in dlg.message.text()
    else:  # a byte made it to the disk after all: then the message offers Resume, as the button does
        assert "click Resume" in dlg.message.text()


def test_the_dialog_says_when_the_set_does_not_fit(
    qtbot: QtBot, dialogs: list, served: tuple[ModelStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = served
    monkeypatch.setattr(get_started, "free_space", lambda _folder: 1000)
    dlg = open_dialog(qtbot, dialogs, store)
    assert not dlg.download_button.isEnabled()
    assert "does not fit" in dlg.space_label.text()


def test_a_failed_download_keeps_what_finished(
    qtbot: QtBot, dialogs: list, served: tuple[ModelStore, Path], server: FileServer
) -> None:
    store, _ = served
    del server.files["/test/b/resolve/main/b.bin"]
    dlg = open_dialog(qtbot, dialogs, store)
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running, timeout=20_000)
    text = dlg.message.text()
    assert "b.bin" in text and "Kept: Model A." in text and "Traceback" not in text
    assert store.state("a").status is Status.INSTALLED


# ---- the window ----------------------------------------------------------------------------------------
def place_sparse(store: ModelStore, model_id: str) -> None:
    """Make ``model_id`` look downloaded (files of the right size, sparse: no disk used)."""
    model = store.get(model_id)
    for spec in model.files:
        target = store.model_dir(model_id) / spec.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            fh.truncate(spec.size)


def test_the_window_offers_each_missing_set_and_remembers_a_dismissal(qtbot: QtBot) -> None:
    from snowai_studio.app import create_window
    from workers import base
    from workers.settings import Settings

    window = create_window(Settings.load())
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitExposed(window)
        store = window.context.model_store
        for tool in TOOLS:
            assert window.home.findChild(type(window.home.tool_buttons[tool]), f"home.getStarted.{tool}") is not None
        window.show_page("matting")
        banner = window.pages["matting"].starter_banner
        assert banner.isVisible()
        assert "IS-Net" not in banner.label.text() and "recommended" in banner.label.text()
        assert "Get started" in banner.button.text()
        banner._dismiss()
        window.starters.refresh()
        assert not banner.isVisible()
        # A set that is there is not offered, and its page takes the models when told.
        ids = [i.model_id for i in store.manifest.starters["assistant"].items]
        for model_id in ids:
            place_sparse(store, model_id)
        window.starters.refresh()
        window.show_page("assistant")
        page = window.pages["assistant"]
        assert not page.starter_banner.isVisible()
        window.starters._use("assistant", ids)
        assert page.options.asr_model == "faster-whisper-small"
        assert page.options.voice == "piper-en-us-lessac-medium"
        assert page.options.llm_backend == "gguf"
        assert page.options.llm_model == "qwen2.5-1.5b-instruct-q4-k-m"
        assert page.settings_panel.llm.llm_combo.currentText() == "Qwen2.5 1.5B Instruct, Q4_K_M GGUF"
        menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tools")
        starter_menu = next(a.menu() for a in menu.actions() if a.menu() is not None)
        assert [a.text() for a in starter_menu.actions()] == [
            "Face swap…",
            "Background removal…",
            "Voice assistant…",
            "Voice conversion…",
        ]
    finally:
        window.close()
        window.notifications.uninstall_hooks()
        base.shutdown_all()
