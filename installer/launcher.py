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
    import hashlib
    import os
    import shutil
    import tempfile
    import time

    bundle = getattr(sys, "_MEIPASS", None)
    shipped = os.path.join(bundle, "numba-cache") if bundle else ""
    building = bool(bundle) and os.environ.get("SNOWAI_BUILD_NUMBA_CACHE") == "1"
    scratch = tempfile.mkdtemp(prefix="snowai-numba-") if building else ""
    if building:
        # In a frozen program numba keeps its cache only in the user-wide folder (<cache home>/numba),
        # keyed by the program's own hash: point that folder at the scratch one for this run.
        os.environ["XDG_CACHE_HOME"] = scratch
    started = time.perf_counter()
    import pymatting  # noqa: F401 - compiles (or loads) every numba function of pymatting

    seconds = time.perf_counter() - started
    stored = 0
    if building:
        # numba names a module folder's cache "<folder>_<sha1 of its absolute path>"; store it under
        # the folder's path inside the bundle instead, which the run-time hook maps back to numba's
        # name for wherever the bundle is unpacked.
        for module in list(sys.modules.values()):
            source = getattr(module, "__file__", None)
            if not source or not os.path.abspath(source).startswith(bundle + os.sep):
                continue
            folder = os.path.dirname(os.path.abspath(source))
            name = os.path.basename(folder) + "_" + hashlib.sha1(folder.encode()).hexdigest()
            found = os.path.join(scratch, "numba", name)
            if os.path.isdir(found):
                target = os.path.join(shipped, os.path.relpath(folder, bundle))
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(found, target)
                stored += len(os.listdir(target))
        shutil.rmtree(scratch, ignore_errors=True)
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
