"""PyInstaller run-time hook.

- On Linux, ``ctypes.util.find_library`` finds the libraries collected into the bundle (PortAudio, for
  sound) before the system's, so sound works where libportaudio2 is missing.
- numba (pymatting, librosa) compiles for a generic x86-64 CPU, finds its cache through
  ``snowai_numba_cache.BundleCacheLocator`` (by each module's place in the bundle, whatever the
  current folder), and the functions compiled when the bundle was built (``_internal/numba-cache/``,
  see launcher.py) are copied once into the user's cache folder, which may be written (the bundle's
  own folder may be read-only, under ``/opt``): alpha matting's first use loads them in about a second
  instead of compiling for half a minute or more.
"""

import ctypes.util
import glob
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


def _user_cache_dir():
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA") or os.path.expanduser("~"), "SnowAI Studio", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/SnowAI Studio")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "snowai-studio")


def _seed_numba_cache():
    # A portable cache: the same machine code for every x86-64 CPU (numba keys its cache by CPU).
    os.environ.setdefault("NUMBA_CPU_NAME", "generic")
    # Caches found by the module's place in the bundle, not by the current folder (snowai_numba_cache).
    os.environ.setdefault("NUMBA_CACHE_LOCATOR_CLASSES", "snowai_numba_cache.BundleCacheLocator,UserWideCacheLocator")
    if os.environ.get("SNOWAI_NUMBA_CACHE_DIR"):
        return
    target_root = os.path.join(_user_cache_dir(), "numba")
    shipped = os.path.join(sys._MEIPASS, "numba-cache")
    try:
        for folder, _dirs, files in os.walk(shipped):
            target = os.path.join(target_root, os.path.relpath(folder, shipped))
            for name in files:
                src, dst = os.path.join(folder, name), os.path.join(target, name)
                # Copied when missing or from another build (copy2 keeps the shipped file's time).
                shipped_stat = os.stat(src)
                if os.path.exists(dst):
                    found = os.stat(dst)
                    if (found.st_mtime, found.st_size) == (shipped_stat.st_mtime, shipped_stat.st_size):
                        continue
                os.makedirs(target, exist_ok=True)
                shutil.copy2(src, dst)
    except OSError:
        return  # no writable cache folder: numba compiles on first use, in its own folder
    os.environ["SNOWAI_NUMBA_CACHE_DIR"] = target_root


if getattr(sys, "_MEIPASS", None):
    _seed_numba_cache()
