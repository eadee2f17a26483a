"""The entry point of the stand-alone bundle (PyInstaller): the same command as ``snowai-studio``.

With no arguments the window opens; ``--self-test`` and the subcommands work as in a pip install.

``--prepare-caches`` is a build step (installer/build_linux.sh runs it on the finished bundle): it
compiles the numba functions that pymatting (alpha matting, through rembg) would otherwise compile on
first use, for a generic x86-64 CPU, and stores them in ``_internal/numba-cache/``, from where the
run-time hook (``pyi_rth_snowai.py``) hands them to numba. Run in an installed bundle it only loads
them and prints how long that took.
"""

from __future__ import annotations

import multiprocessing
import sys

PREPARE_CACHES = "--prepare-caches"


def _prepare_caches() -> int:
    import os
    import time

    bundle = getattr(sys, "_MEIPASS", None)
    building = bool(bundle) and os.environ.get("SNOWAI_BUILD_NUMBA_CACHE") == "1"
    if building:
        # Straight into the bundle's own cache folder (snowai_numba_cache.BundleCacheLocator's layout).
        shipped = os.path.join(bundle, "numba-cache")
        os.environ["SNOWAI_NUMBA_CACHE_DIR"] = shipped
    started = time.perf_counter()
    import pymatting  # noqa: F401 - compiles (or loads) every numba function of pymatting

    seconds = time.perf_counter() - started
    if building:
        stored = sum(len(files) for _folder, _dirs, files in os.walk(shipped))
        print(f"numba: compiled pymatting in {seconds:.1f} s; {stored} cache files stored in {shipped}")
        return 0 if stored else 1
    print(f"numba: pymatting ready in {seconds:.1f} s")
    return 0


def _main() -> int:
    # A frozen program must let multiprocessing's child processes run their task, not the studio.
    multiprocessing.freeze_support()
    if sys.argv[1:] == [PREPARE_CACHES]:
        return _prepare_caches()
    from snowai_studio.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
