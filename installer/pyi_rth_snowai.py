"""PyInstaller run-time hook.

- On Linux, ``ctypes.util.find_library`` finds the libraries collected into the bundle (PortAudio, for
  sound) before the system's, so sound works where libportaudio2 is missing.
- numba (pymatting, librosa) compiles for a generic x86-64 CPU, and the functions compiled when the
  bundle was built (``_internal/numba-cache/``, see launcher.py) are copied once into numba's
  user-wide cache folder, under the names numba looks for at this bundle's place: alpha matting's
  first use loads them in about a second instead of compiling for half a minute or more. In a frozen
  program numba uses only that folder (its entries are keyed by the program's own hash, so a new
  build never reads an old build's code).
"""

import ctypes.util
import glob
import hashlib
import os
import shutil
import sys

_BUNDLED = ("portaudio",)

if sys.platform.startswith("linux"):
    _system_find_library = ctypes.util.find_library

    def _find_library(name):
        if name in _BUNDLED:
            found = sorted(glob.glob(os.path.join(sys._MEIPASS, f"lib{name}.so*")))
            if found:
                return found[0]
        return _system_find_library(name)

    ctypes.util.find_library = _find_library


def _numba_cache_dir():
    """numba's user-wide cache folder (numba.misc.appdirs.user_cache_dir("numba"), without importing numba)."""
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA") or os.path.expanduser("~"), "numba", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/numba")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "numba")


def _seed_numba_cache():
    # A portable cache: the same machine code for every x86-64 CPU (numba keys its cache by CPU).
    os.environ.setdefault("NUMBA_CPU_NAME", "generic")
    shipped = os.path.join(sys._MEIPASS, "numba-cache")
    if not os.path.isdir(shipped):
        return
    target_root = _numba_cache_dir()
    try:
        for folder, _dirs, files in os.walk(shipped):
            cached = [name for name in files if name.endswith((".nbi", ".nbc"))]
            if not cached:
                continue
            source = os.path.abspath(os.path.join(sys._MEIPASS, os.path.relpath(folder, shipped)))
            # numba's own name for the cache of the modules in `source` (caching.py, get_suitable_cache_subpath)
            numba_name = os.path.basename(source) + "_" + hashlib.sha1(source.encode()).hexdigest()
            target = os.path.join(target_root, numba_name)
            os.makedirs(target, exist_ok=True)
            for name in cached:
                src, dst = os.path.join(folder, name), os.path.join(target, name)
                # Copied when missing or from another build (copy2 keeps the shipped file's time).
                shipped_stat = os.stat(src)
                if not os.path.exists(dst) or (os.stat(dst).st_mtime, os.stat(dst).st_size) != (
                    shipped_stat.st_mtime,
                    shipped_stat.st_size,
                ):
                    shutil.copy2(src, dst)
    except OSError:
        return  # no writable cache folder: numba compiles on first use, as without a shipped cache


if getattr(sys, "_MEIPASS", None):
    _seed_numba_cache()
