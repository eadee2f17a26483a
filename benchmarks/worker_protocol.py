"""Overhead of the worker protocol itself, with no model: what every live tool pays per item.

    python benchmarks/worker_protocol.py [--items 2000] [--json out.json]

Measures, on the offscreen platform:
- stream throughput of a no-op worker (items/s through push -> process -> mailbox);
- push-to-UI latency (push on the UI thread until the UI slot sees the result), p50/p99;
- an overloaded stream (producer 4x faster than the worker): delivered vs dropped, queue bound;
- cancel latency of a running job (cancel() until job_cancelled reaches the UI), p50/p99/max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, write_results
from PySide6.QtCore import QCoreApplication

from workers import base
from workers.queues import StreamItem


class NoOp(base.Worker):
    name = "no-op"

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    def process(self, item: StreamItem) -> object:
        if self.delay:
            time.sleep(self.delay)
        return item.payload


def pump(app: QCoreApplication, until, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not until() and time.monotonic() < end:
        app.processEvents()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/worker_protocol.json"))
    args = parser.parse_args()
    app = QCoreApplication.instance() or QCoreApplication([])

    w = NoOp()
    w.start()
    pump(app, lambda: w.state == "ready")
    latencies: list[float] = []
    seen = {"n": 0}

    def on_ready() -> None:
        r = w.take_result()
        if r is not None:
            latencies.append((time.monotonic() - r.timestamp) * 1000)
            seen["n"] += 1

    w.result_ready.connect(on_ready)
    t0 = time.monotonic()
    for i in range(args.items):
        target = seen["n"] + 1
        w.push(StreamItem(i, seq=i))
        pump(app, lambda t=target: seen["n"] >= t, timeout=2)
    elapsed = time.monotonic() - t0
    throughput = args.items / elapsed
    w.stop()

    slow = NoOp(delay=0.004)
    slow.start()
    pump(app, lambda: slow.state == "ready")
    delivered = {"n": 0}
    slow.result_ready.connect(lambda: (slow.take_result(), delivered.__setitem__("n", delivered["n"] + 1)))
    max_queue = 0
    n_over = 1000
    for i in range(n_over):
        slow.push(StreamItem(i, seq=i))
        max_queue = max(max_queue, len(slow._queue))
        app.processEvents()
        time.sleep(0.001)
    pump(app, lambda: len(slow._queue) == 0, timeout=5)
    app.processEvents()
    over = {"pushed": n_over, "dropped": slow.dropped, "delivered_to_ui": delivered["n"], "max_queued": max_queue}
    slow.stop()

    jobs = base.Worker()
    jobs.start()
    pump(app, lambda: jobs.state == "ready")
    cancels: list[float] = []
    for _ in range(20):
        done = {"t": None}
        jobs.job_cancelled.connect(lambda _id, d=done: d.__setitem__("t", time.monotonic()))
        jobs.submit(lambda ctx: ctx.sleep(30))
        pump(app, lambda: jobs.state == "busy")
        time.sleep(0.02)
        t_cancel = time.monotonic()
        jobs.cancel()
        pump(app, lambda d=done: d["t"] is not None, timeout=5)
        cancels.append((done["t"] - t_cancel) * 1000)
        jobs.job_cancelled.disconnect()
    jobs.stop()

    result = {
        "machine": machine(),
        "stream_items": args.items,
        "stream_items_per_s": round(throughput, 1),
        "push_to_ui_ms_p50": round(statistics.median(latencies), 3),
        "push_to_ui_ms_p99": round(pct(latencies, 0.99), 3),
        "overload": over,
        "cancel_ms_p50": round(statistics.median(cancels), 2),
        "cancel_ms_p99": round(pct(cancels, 0.99), 2),
        "cancel_ms_max": round(max(cancels), 2),
    }
    rows = [
        ("stream throughput (no-op, one at a time)", f"{result['stream_items_per_s']:.0f} items/s"),
        ("push -> UI latency p50 / p99", f"{result['push_to_ui_ms_p50']:.3f} / {result['push_to_ui_ms_p99']:.3f} ms"),
        (
            "overload 4x: pushed / dropped / to UI",
            f"{over['pushed']} / {over['dropped']} / {over['delivered_to_ui']} (queue max {over['max_queued']})",
        ),
        (
            "cancel -> UI p50 / p99 / max",
            f"{result['cancel_ms_p50']:.1f} / {result['cancel_ms_p99']:.1f} / {result['cancel_ms_max']:.1f} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    write_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
