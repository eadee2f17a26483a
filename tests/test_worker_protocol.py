"""The worker protocol: errors become messages, cancel is prompt, streams drop, shutdown joins."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from snowai_studio.notifications import NotificationManager, NotificationPanel
from workers import base
from workers.errors import UserError
from workers.queues import DropOldestQueue, LatestValue, StreamItem


@pytest.fixture
def started():
    """Start workers and make sure every one of them is stopped after the test."""
    made: list[base.Worker] = []

    def start(worker: base.Worker, **kwargs) -> base.Worker:
        made.append(worker)
        worker.start(**kwargs)
        return worker

    yield start
    for w in made:
        w.stop(2000)


class Doubler(base.Worker):
    name = "Doubler"

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.fail_on = fail_on
        self.loaded_on: QThread | None = None
        self.processed: list[int] = []

    def load(self) -> None:
        self.loaded_on = QThread.currentThread()

    def process(self, item: StreamItem) -> int:
        if self.delay:
            time.sleep(self.delay)
        if item.payload == self.fail_on:
            raise ValueError(f"cannot double {item.payload}")
        self.processed.append(item.payload)
        return item.payload * 2 * self.params.get("scale", 1)


def test_drop_oldest_queue_bounds_and_counts() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(10):
        q.put(i)
    assert len(q) == 3
    assert q.dropped == 7
    assert [q.get_nowait() for _ in range(3)] == [7, 8, 9]
    assert q.get(timeout=0.01) is None


def test_latest_value_signals_only_when_taken() -> None:
    box: LatestValue[int] = LatestValue()
    assert box.post(1) is True
    assert box.post(2) is False  # not taken yet: no second notification
    assert box.take() == 2
    assert box.post(3) is True
    assert box.overwritten == 1


def test_models_load_on_the_worker_thread_and_results_flow(qtbot, started) -> None:
    w = Doubler()
    with qtbot.waitSignal(w.ready, timeout=3000):
        started(w)
    assert w.loaded_on is not None and w.loaded_on is not QThread.currentThread()
    with qtbot.waitSignal(w.result_ready, timeout=3000):
        w.push(StreamItem(21, seq=1))
    result = w.take_result()
    assert result.payload == 42 and result.seq == 1 and result.latency_ms >= 0


def test_parameters_change_live(qtbot, started) -> None:
    w = started(Doubler())
    qtbot.waitUntil(lambda: w.state == "ready")
    w.set_param("scale", 10)
    with qtbot.waitSignal(w.result_ready, timeout=3000):
        w.push(1)
    assert w.take_result().payload == 20


def test_exception_in_a_worker_reaches_the_ui_as_a_readable_message(qtbot, started) -> None:
    manager = NotificationManager()
    manager.install_hooks()
    try:
        panel = NotificationPanel(manager)
        qtbot.addWidget(panel)
        w = started(Doubler(fail_on=3))
        qtbot.waitUntil(lambda: w.state == "ready")
        with qtbot.waitSignal(w.error, timeout=3000) as blocker:
            w.push(3)
        message = blocker.args[0]
        assert "cannot double 3" in message and "Traceback" not in message
        qtbot.waitUntil(lambda: any("cannot double 3" in m for m in panel.messages()), timeout=3000)
        # The worker (and the app) keep running: the next item is served.
        with qtbot.waitSignal(w.result_ready, timeout=3000):
            w.push(4)
        assert w.take_result().payload == 8
    finally:
        manager.uninstall_hooks()


def test_user_error_is_shown_as_written(qtbot, started) -> None:
    w = started(base.Worker())

    def job(ctx: base.JobContext) -> None:
        raise UserError("The image is damaged.")

    with qtbot.waitSignal(w.job_failed, timeout=3000) as blocker:
        w.submit(job)
    assert blocker.args[1] == "Worker: The image is damaged."


def test_failed_load_is_reported_and_jobs_fail_with_it(qtbot, started) -> None:
    class Broken(base.Worker):
        name = "Broken model"

        def load(self) -> None:
            raise OSError("model file is truncated")

    w = Broken()
    with qtbot.waitSignal(w.error, timeout=3000) as blocker:
        started(w)
    assert "Broken model could not start" in blocker.args[0]
    with qtbot.waitSignal(w.job_failed, timeout=3000) as failed:
        w.submit(lambda ctx: 1)
    assert "truncated" in failed.args[1]


def test_cancel_returns_within_200_ms(qtbot, started) -> None:
    w = started(base.Worker())
    progress: list[tuple[int, int]] = []
    w.progress.connect(lambda d, t: progress.append((d, t)))

    def long_job(ctx: base.JobContext) -> str:
        for i in range(10_000):
            ctx.progress(i, 10_000)
            ctx.sleep(0.005)
        return "finished"

    with qtbot.waitSignal(w.state_changed, timeout=3000, check_params_cb=lambda s: s == "busy"):
        job_id = w.submit(long_job)
    qtbot.waitUntil(lambda: len(progress) > 2, timeout=3000)
    t0 = time.monotonic()
    with qtbot.waitSignal(w.job_cancelled, timeout=1000) as blocker:
        w.cancel()
    elapsed = time.monotonic() - t0
    assert blocker.args == [job_id]
    assert elapsed < 0.2, f"cancel took {elapsed * 1000:.0f} ms"
    # The worker serves the next job after a cancel.
    with qtbot.waitSignal(w.job_finished, timeout=3000) as done:
        w.submit(lambda ctx: "again")
    assert done.args[1] == "again"


def test_slow_consumer_drops_frames_instead_of_growing(qtbot, started) -> None:
    w = Doubler(delay=0.02)
    started(w)
    qtbot.waitUntil(lambda: w.state == "ready")
    max_queued = 0
    for i in range(300):  # ~10x faster than the worker can serve
        w.push(StreamItem(i, seq=i))
        max_queued = max(max_queued, len(w._queue))
        time.sleep(0.002)
    qtbot.waitUntil(lambda: len(w._queue) == 0, timeout=3000)
    assert max_queued <= w.queue_size
    assert w.dropped > 200
    assert len(w.processed) < 100
    # The newest frames win: the last pushed item is processed, stale ones are gone.
    qtbot.waitUntil(lambda: w.processed and w.processed[-1] == 299, timeout=3000)


def test_ui_is_not_flooded_when_it_does_not_take_results(qtbot, started) -> None:
    w = started(Doubler())
    qtbot.waitUntil(lambda: w.state == "ready")
    notified = []
    w.result_ready.connect(lambda: notified.append(1))
    for i in range(50):
        w.push(i)
        qtbot.waitUntil(lambda: len(w._queue) == 0, timeout=1000)
    qtbot.wait(50)
    assert len(notified) == 1  # one notification until the UI takes the result
    assert w.take_result() is not None


class FakeDevice:
    def __init__(self) -> None:
        self.open = False
        self.released_on: threading.Thread | None = None

    def acquire(self) -> None:
        self.open = True

    def release(self) -> None:
        self.open = False
        self.released_on = threading.current_thread()


class SourceWorker(base.Worker):
    name = "Fake camera"

    def __init__(self, device: FakeDevice, sink: base.Worker) -> None:
        super().__init__()
        self.device = device
        self.sink = sink
        self.frames = 0

    def load(self) -> None:
        self.device.acquire()

    def unload(self) -> None:
        self.device.release()

    def step(self) -> bool:
        time.sleep(0.005)
        self.frames += 1
        self.sink.push(StreamItem(self.frames, seq=self.frames))
        return True


def test_source_loop_feeds_a_stream_and_stop_releases_the_device(qtbot, started) -> None:
    sink = started(Doubler())
    device = FakeDevice()
    src = started(SourceWorker(device, sink), loop=True)
    qtbot.waitUntil(lambda: len(sink.processed) > 5, timeout=3000)
    assert device.open
    t0 = time.monotonic()
    assert src.stop(2000)
    assert time.monotonic() - t0 < 0.5
    assert not device.open
    assert device.released_on is not threading.main_thread()
    assert not src.thread_running


def test_excepthooks_route_to_notifications(qtbot) -> None:
    manager = NotificationManager()
    manager.install_hooks()
    try:
        t = threading.Thread(target=lambda: 1 / 0, name="helper-thread")
        t.start()
        t.join()
        qtbot.waitUntil(lambda: any("helper-thread" in n.message for n in manager.items), timeout=3000)
        note = next(n for n in manager.items if "helper-thread" in n.message)
        assert note.level == "error" and "division by zero" in note.message
        assert "ZeroDivisionError" in note.details
        import sys

        try:
            raise RuntimeError("unexpected in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        qtbot.waitUntil(lambda: any("unexpected in a slot" in n.message for n in manager.items), timeout=3000)
    finally:
        manager.uninstall_hooks()


def test_shutdown_all_joins_every_thread(qtbot) -> None:
    workers = [base.Worker() for _ in range(3)]
    for w in workers:
        w.start()
    busy = workers[0]
    busy.submit(lambda ctx: ctx.sleep(60))
    qtbot.waitUntil(lambda: busy.state == "busy", timeout=3000)
    t0 = time.monotonic()
    assert base.shutdown_all(2000) == []
    assert time.monotonic() - t0 < 1.0
    assert all(not w.thread_running for w in workers)
    assert base.live_workers() == []


def test_many_signal_emissions_do_not_corrupt_the_interpreter(qtbot) -> None:
    """PySide6 6.12.0 released True/False/None once per emission and aborted Python 3.11."""
    import sys

    w = base.Worker()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(20_000):
        w.result_ready.emit()
        w.progress.emit(1, 2)
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert after[0] >= before[0] - 100 and after[1] >= before[1] - 100


def test_a_worker_whose_signals_are_blocked_still_stops(qtbot, started) -> None:
    """An owner that stops listening to a worker blocks its signals (a disconnect while the worker's
    thread emits can hang both threads); stop() reaches the worker all the same."""
    worker = started(Doubler())
    qtbot.waitUntil(lambda: worker.state == "ready", timeout=5000)
    states: list[str] = []
    worker.state_changed.connect(states.append)
    worker.blockSignals(True)
    assert worker.stop(5000)
    assert worker.state == "stopped" and not worker.thread_running
    qtbot.wait(50)
    assert states == []  # nothing reached the owner


class Watching(Doubler):
    name = "Watching"
    watch_interval = 0.05

    def __init__(self, path) -> None:
        super().__init__()
        self.path = path
        self.checks = 0

    def watched_files(self):
        return [self.path]

    def check_model_files(self, force: bool = False) -> bool:
        self.checks += 1
        return super().check_model_files(force)


def test_the_model_file_watch_is_connected_before_the_thread_starts(qtbot, started, tmp_path) -> None:
    """The watch timer is made and connected on the thread that starts the worker and moves with it;
    on the worker's thread it is only started (no connect() there: see Worker.__init__)."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"x")
    worker = Watching(model)
    main = QThread.currentThread()
    assert worker._watch_timer is None
    started(worker)
    timer = worker._watch_timer
    assert timer is not None and timer.thread() is not main
    qtbot.waitUntil(lambda: worker.checks >= 2, timeout=10000)
    assert worker.loaded_on is timer.thread()
