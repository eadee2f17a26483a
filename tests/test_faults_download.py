"""Fault injection: model downloads cut off, against the local HTTP model server (tests/model_server.py).

A connection dropped mid-file, a server that stops sending (the read times out), a file whose
checksum is wrong, and a disk that fills up during the download. Each ends with one sentence; what
was received is kept as ``<name>.part`` for a resume (or deleted when it is wrong), the model is
never installed as complete, and the next attempt resumes with an HTTP Range request and installs it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from model_server import TINY_PATH, FileServer, serve_tiny_model

from workers.errors import UserError
from workers.models.download import download_model
from workers.models.manifest import load_manifest
from workers.models.store import ModelStore, Status

WAIT = 30000


@pytest.fixture
def tiny(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelStore, bytes, Path]:
    """A store whose manifest lists the served model ``tiny`` (about 100 KB), and where its part goes."""
    manifest, data = serve_tiny_model(server, tmp_path, monkeypatch)
    store = ModelStore(tmp_path / "store", load_manifest(manifest))
    part = store.model_dir("tiny") / "tiny.onnx.part"
    return store, data, part


def installed(store: ModelStore) -> bool:
    return store.state("tiny").status is Status.INSTALLED


def final_file(store: ModelStore) -> Path:
    return store.model_dir("tiny") / "tiny.onnx"


def test_a_dropped_connection_keeps_the_part_and_a_retry_resumes(server: FileServer, tiny: Any) -> None:
    store, data, part = tiny
    server.drop_after[TINY_PATH] = 40_000
    with pytest.raises(UserError) as info:
        download_model(store, "tiny")
    assert "dropped after" in str(info.value) and "click Download again to resume" in str(info.value)
    assert part.stat().st_size == 40_000 and not final_file(store).exists() and not installed(store)
    del server.drop_after[TINY_PATH]
    state = download_model(store, "tiny")
    assert state.status is Status.INSTALLED and final_file(store).read_bytes() == data
    assert server.requests[-1] == (TINY_PATH, "bytes=40000-") and not part.exists()


def test_a_server_that_stalls_times_out_with_a_sentence_and_resumes(server: FileServer, tiny: Any) -> None:
    store, data, part = tiny
    server.chunk_delay = 0.8  # 8 KB, then nothing for longer than the timeout
    with pytest.raises(UserError) as info:
        download_model(store, "tiny", timeout=0.3)
    text = str(info.value)
    assert "stopped sending tiny.onnx for 0.3 seconds" in text and "resume" in text, text
    have = part.stat().st_size
    assert 0 < have < len(data), "what arrived before the stall is kept"
    assert not final_file(store).exists() and not installed(store)
    server.chunk_delay = 0.0
    assert download_model(store, "tiny", timeout=5).status is Status.INSTALLED
    assert final_file(store).read_bytes() == data
    assert server.requests[-1] == (TINY_PATH, f"bytes={have}-")


def test_a_wrong_checksum_deletes_the_download_and_installs_nothing(server: FileServer, tiny: Any) -> None:
    store, data, part = tiny
    server.files[TINY_PATH] = data[:-10] + b"0123456789"  # same size, other bytes
    with pytest.raises(UserError) as info:
        download_model(store, "tiny")
    assert "does not match its sha256 checksum" in str(info.value) and "deleted" in str(info.value)
    assert not part.exists() and not final_file(store).exists() and not installed(store)
    server.files[TINY_PATH] = data
    assert download_model(store, "tiny").status is Status.INSTALLED


def test_a_part_that_went_wrong_before_a_resume_is_caught_by_the_checksum(server: FileServer, tiny: Any) -> None:
    store, data, part = tiny
    server.drop_after[TINY_PATH] = 30_000
    with pytest.raises(UserError):
        download_model(store, "tiny")
    part.write_bytes(b"\0" * 30_000)  # the part on disk was damaged meanwhile
    del server.drop_after[TINY_PATH]
    with pytest.raises(UserError, match="checksum"):
        download_model(store, "tiny")
    assert not part.exists() and not installed(store)
    assert download_model(store, "tiny").status is Status.INSTALLED  # from the start this time
    assert final_file(store).read_bytes() == data


class _FillingFile:
    """A download's part file on a disk with ``room`` bytes left."""

    def __init__(self, inner: Any, room: int) -> None:
        self._inner = inner
        self._room = room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            self._inner.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.close()


def fill_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    real = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real(self, mode, *args, **kwargs)
        if self.name.endswith(".part") and ("w" in mode or "a" in mode):
            return _FillingFile(handle, room)
        return handle

    monkeypatch.setattr(Path, "open", open_)


def test_a_full_disk_during_the_download_says_so_and_a_retry_resumes(
    server: FileServer, tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, data, part = tiny
    server.chunk_delay = 0.01  # arrives in pieces, as over a network
    with monkeypatch.context() as m:
        fill_disk(m, room=20_000)
        with pytest.raises(UserError) as info:
            download_model(store, "tiny")
    text = str(info.value)
    assert text.startswith("The disk is full: tiny.onnx could not be saved in"), text
    assert "Free some space, then click Download again to resume." in text and "Errno" not in text
    assert part.stat().st_size == 20_000, "what fitted is kept for the resume"
    assert not final_file(store).exists() and not installed(store)
    assert len(server.requests) == 1, "another source would fill the same disk: not tried"
    server.chunk_delay = 0.0
    assert download_model(store, "tiny").status is Status.INSTALLED
    assert server.requests[-1] == (TINY_PATH, "bytes=20000-")
    assert final_file(store).read_bytes() == data


def test_the_model_manager_worker_reports_a_full_disk_once(
    qtbot: Any, server: FileServer, tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.models.worker import ModelDownloadWorker

    store, data, part = tiny
    worker = ModelDownloadWorker(store, timeout=5)
    errors: list[str] = []
    worker.error.connect(errors.append)
    worker.start()
    try:
        with monkeypatch.context() as m:
            fill_disk(m, room=10_000)
            with qtbot.waitSignal(worker.job_failed, timeout=WAIT) as failed:
                worker.download("tiny")
        message = failed.args[1]
        assert message.startswith("Model manager: The disk is full: tiny.onnx could not be saved"), message
        assert "Traceback" not in message and errors == [message]
        assert not installed(store) and part.stat().st_size == 10_000
        with qtbot.waitSignal(worker.job_finished, timeout=WAIT) as done:
            worker.download("tiny")
        assert done.args[1].status is Status.INSTALLED and final_file(store).read_bytes() == data
    finally:
        assert worker.stop()
