"""OpenMP workers given back: a thread that loaded or ran models frees its OpenMP threads, so that the
thread doing the live work keeps the cores (libgomp throttles every team once a process holds more
OpenMP threads than cores); CTranslate2 keeps its own OpenMP runtime even when torch came first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from workers.media.openmp import loaded_openmp_libraries, release_openmp_threads

ROOT = Path(__file__).resolve().parent.parent


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libgomp and /proc are Linux's")
def test_a_thread_gives_back_its_openmp_workers() -> None:
    import torch

    assert any(p.name.startswith("libgomp") for p in loaded_openmp_libraries())
    if torch.get_num_threads() < 2:
        pytest.skip("one core: torch starts no OpenMP workers")
    counts: dict[str, int] = {}

    def work() -> None:
        x = torch.randn(256, 256)
        for _ in range(5):
            x = torch.tanh(x @ x.T) + 1.0  # parallel operations: this thread gets a team of workers
        counts["with"] = os_threads()
        assert release_openmp_threads() >= 1
        counts["without"] = os_threads()
        torch.tanh(x @ x.T)  # and they come back when needed
        counts["again"] = os_threads()
        release_openmp_threads()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert counts["without"] < counts["with"]
    assert counts["again"] > counts["without"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the dynamic linker's bindings are Linux's")
def test_ctranslate2_keeps_its_own_openmp_after_torch() -> None:
    """torch first, then CTranslate2 through the studio's import: CTranslate2's calls bind to the libgomp
    its wheel carries, not torch's (the dynamic linker says where each symbol went)."""
    pytest.importorskip("ctranslate2")
    script = textwrap.dedent(
        """
        import numpy as np
        import torch
        from workers.media.openmp import import_ctranslate2
        ct = import_ctranslate2()
        ct.StorageView.from_array(np.ones((4, 4), np.float32))
        """
    )
    env = {**os.environ, "LD_DEBUG": "bindings", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    bindings = [
        line for line in out.stderr.splitlines()
        if "libctranslate2" in line.split(" to ")[0] and "`GOMP_parallel'" in line
    ]  # fmt: skip
    assert bindings, "no binding of GOMP_parallel for CTranslate2 was reported"
    assert all("ctranslate2.libs/libgomp" in line.split(" to ")[1] for line in bindings), bindings[:2]
