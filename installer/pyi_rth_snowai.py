"""PyInstaller run-time hook.

- On Linux, ``ctypes.util.find_library`` finds the libraries collected into the bundle (PortAudio, for
  sound) before the system's, so sound works where libportaudio2 is missing.
"""

import ctypes.util
import glob
import os
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
