"""The local API's building blocks without a server: the model pool (one load, one user at a time)
and the job queue (progress, cancel, bounded, files removed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from workers.api.jobs import Job, JobQueue, JobResult
from workers.api.pool import ModelPool
from workers.errors import Cancelled, UserError


def test_a_model_is_loaded_once_and_used_by_one_request_at_a_time() -> None:
    pool = ModelPool()
    loads: list[int] = []
    inside = 0
    most = 0
    lock = threading.Lock()

    def load() -> object:
        loads.append(1)
        time.sleep(0.05)  # a slow load: every thread asks for the model while it runs
        return object()

    def use() -> None:
        nonlocal inside, most
        with pool.use(("asr", "tiny"), load):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.005)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and most == 1
    (row,) = pool.describe()
    assert (row["kind"], row["id"], row["loads"], row["requests"], row["waiting"]) == ("asr", "tiny", 1, 8, 0)
    pool.close()
    with pytest.raises(UserError, match="shutting down"), pool.use(("asr", "tiny"), load):
        pass


def test_a_failed_load_is_tried_again_by_the_next_request() -> None:
    pool = ModelPool()
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise UserError("The model file is damaged.")
        return "model"

    with pytest.raises(UserError), pool.use(("chat", "x"), load):
        pass
    with pool.use(("chat", "x"), load) as model:
        assert model == "model"


def _wait(job: Job) -> Job:
    deadline = time.monotonic() + 30
    while job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.01)
    return job


def test_jobs_report_progress_keep_only_their_result_and_can_be_cancelled(tmp_path: Path) -> None:
    queue = JobQueue(max_running=1)
    work_dir = tmp_path / "job"
    work_dir.mkdir()
    (work_dir / "upload.wav").write_bytes(b"input")

    def convert(job: Job) -> JobResult:
        job.report(1, 2)
        out = work_dir / "out" / "converted.wav"
        out.parent.mkdir()
        out.write_bytes(b"result")
        job.report(2, 2)
        return JobResult("audio/wav", path=out)

    done = _wait(queue.submit("voice-conversion", convert, work_dir))
    assert done.status == "succeeded" and done.progress == 1.0
    assert done.to_dict()["result_url"] == f"/v1/jobs/{done.id}/result"
    assert not (work_dir / "upload.wav").exists() and (work_dir / "out" / "converted.wav").read_bytes() == b"result"

    release = threading.Event()

    def slow(job: Job) -> JobResult:
        while not job.cancelled():
            if release.wait(0.01):
                break
        if job.cancelled():
            raise Cancelled()
        return JobResult("text/plain", text="done")

    running = queue.submit("transcribe", slow)
    waiting = queue.submit("transcribe", slow, tmp_path / "waiting")
    assert waiting.status == "queued"  # one job runs at a time here
    queue.cancel(waiting.id)
    assert waiting.status == "cancelled"
    queue.cancel(running.id)
    assert _wait(running).status == "cancelled" and running.result is None
    failed = _wait(queue.submit("transcribe", lambda job: (_ for _ in ()).throw(UserError("q.wav holds no sound."))))
    assert failed.status == "failed" and failed.to_dict()["error"] == "q.wav holds no sound."
    queue.remove(done.id)
    assert not work_dir.exists()
    with pytest.raises(KeyError):
        queue.get(done.id)
    queue.close()
    with pytest.raises(UserError, match="shutting down"):
        queue.submit("transcribe", slow)


def test_finished_jobs_are_bounded(tmp_path: Path) -> None:
    queue = JobQueue(max_running=1, max_kept=3)
    folders = []
    for i in range(6):
        folder = tmp_path / f"job{i}"
        folder.mkdir()
        (folder / "result.txt").write_text("x")
        folders.append(folder)
        _wait(
            queue.submit(
                "remove-background", lambda job, f=folder: JobResult("text/plain", path=f / "result.txt"), folder
            )
        )
    assert len(queue.list()) <= 4  # the newest ones (the one being added may not have finished yet)
    assert not folders[0].exists() and folders[-1].exists()
    queue.close()
