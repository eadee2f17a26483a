"""numba's cache inside the stand-alone bundle, wherever the bundle lies and whatever the current folder.

In a frozen program numba only uses its user-wide cache folder, under a name made from the absolute
path of each module's folder; but the bundle's modules carry relative file names
(``pymatting/util/kdtree.py``), so that name depends on the current folder, and a cache made at build
time would never be found. :class:`BundleCacheLocator` keeps each module folder's cache under its
path inside the bundle, below ``$SNOWAI_NUMBA_CACHE_DIR``: the run-time hook (``pyi_rth_snowai.py``)
points that at a user cache folder which it fills from the cache compiled when the bundle was built
(``_internal/numba-cache/``, see ``launcher.py --prepare-caches``), and names this class in
``NUMBA_CACHE_LOCATOR_CLASSES``. Like numba's own frozen-program locator, it keys the entries by the
program's content hash, so a new build never loads an older build's machine code.
"""

from __future__ import annotations

import os
import sys

from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin

#: The folder that holds the caches, one sub-folder per module folder of the bundle.
ENV = "SNOWAI_NUMBA_CACHE_DIR"


def bundle_relative_folder(py_file: str) -> str | None:
    """The folder of a module file below the bundle's root (``pymatting/util``), or None outside it."""
    root = getattr(sys, "_MEIPASS", None)
    if not root:
        return None
    folder = os.path.dirname(py_file)
    if os.path.isabs(folder):
        folder = os.path.relpath(folder, root)
    folder = os.path.normpath(folder)
    if folder.startswith(os.pardir) or os.path.isabs(folder):
        return None
    return folder


class BundleCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """numba cache locator for the modules of a PyInstaller bundle (see the module's docstring)."""

    def __init__(self, py_func, py_file: str) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(os.environ[ENV], bundle_relative_folder(py_file) or "")

    def get_cache_path(self) -> str:
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file: str):
        if not getattr(sys, "frozen", False) or not os.environ.get(ENV) or bundle_relative_folder(py_file) is None:
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self
