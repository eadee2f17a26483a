"""Give back the OpenMP worker threads a thread holds (no Qt, no model runtime imported).

torch and CTranslate2 each carry GNU OpenMP (libgomp). Every thread that runs a parallel operation
keeps its own team of worker threads, and once the process holds more such threads than the computer
has cores, libgomp makes all of them spin only briefly before sleeping, so that every operation pays
for waking its workers: on a 2-core CPU the assistant's language model took 18-19 ms a token in the
pipeline's thread after being loaded in another one, against 11 ms (benchmarks/assistant.py). A thread
that has finished its model work (loading, warming up) calls :func:`release_openmp_threads`; its workers
exit and the thread that does the real work keeps the cores to itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: omp_pause_hard: the calling thread's OpenMP threads and their state are freed (OpenMP 5.0).
_PAUSE_HARD = 2


def loaded_openmp_libraries() -> list[Path]:
    """The OpenMP runtimes mapped into this process (Linux; elsewhere none are found)."""
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.is_file():
        return []
    found: dict[str, None] = {}
    try:
        for line in maps.read_text(errors="replace").splitlines():
            path = line.split(None, 5)[-1] if line.count(" ") >= 5 else ""
            name = Path(path).name
            if path.startswith("/") and (name.startswith("libgomp") or name.startswith("libomp")):
                found.setdefault(path)
    except OSError:
        return []
    return [Path(p) for p in found]


_PAUSE: dict[Path, Any] = {}


def _pause_function(path: Path) -> Any:
    """The runtime's ``omp_pause_resource_all`` (looked up once per library), or None."""
    if path not in _PAUSE:
        try:
            pause = ctypes.CDLL(str(path)).omp_pause_resource_all
            pause.argtypes = [ctypes.c_int]
            pause.restype = ctypes.c_int
        except (OSError, AttributeError):
            pause = None
        _PAUSE[path] = pause
    return _PAUSE[path]


def release_openmp_threads() -> int:
    """Free the calling thread's OpenMP worker threads in every OpenMP runtime loaded (they come back
    by themselves if this thread computes in parallel again); how many runtimes did it."""
    released = 0
    for path in loaded_openmp_libraries():
        pause = _pause_function(path)
        if pause is None:
            continue
        try:
            if pause(_PAUSE_HARD) == 0:
                released += 1
        except Exception as exc:  # pragma: no cover - a runtime without the OpenMP 5.0 call
            log.debug("omp_pause_resource_all failed in %s: %s", path.name, exc)
    return released


def import_ctranslate2() -> Any:
    """``import ctranslate2`` so that it keeps its own OpenMP runtime.

    CTranslate2's wheel brings its own libgomp, but once torch has put its libgomp in the process's
    global symbol scope, CTranslate2 binds to torch's instead; its worker thread then adds a third team
    to torch's runtime, which throttles every team's spinning on a 2-core CPU (the assistant's tokens
    took 18 ms instead of 11 after the first transcription). Imported before torch it binds its own;
    imported after, it is loaded with RTLD_DEEPBIND, which makes it look in its own libraries first.
    """
    if "ctranslate2" in sys.modules:
        return sys.modules["ctranslate2"]
    deep = getattr(os, "RTLD_DEEPBIND", 0)
    if "torch" not in sys.modules or not deep or not hasattr(sys, "setdlopenflags"):
        import ctranslate2

        return ctranslate2
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | deep)
    try:
        import ctranslate2
    finally:
        sys.setdlopenflags(flags)
    return ctranslate2
