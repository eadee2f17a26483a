"""Models that ship inside Python packages (installed with pip), found in place.

A shipped file is looked up as ``<entry>/<module>/<path>`` for every folder on ``sys.path``;
the package is never imported (importing some of them pulls in torch) and the file is never
copied. A file split over several packages (``parts``) is joined once into the store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from workers.errors import Cancelled, UserError
from workers.models.manifest import PackagePath, Source, pip_command

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024


def module_dir(module: str, search_path: Iterable[str] | None = None) -> Path | None:
    """The folder of a top-level package on ``sys.path``, without importing it."""
    for entry in search_path if search_path is not None else sys.path:
        if not entry:
            entry = os.getcwd()
        candidate = Path(entry) / module
        try:
            if candidate.is_dir():
                return candidate
        except OSError:
            continue
    return None


def locate(pkg: PackagePath) -> Path | None:
    """The path of a shipped file, or None when its package is not installed."""
    base = module_dir(pkg.module)
    if base is None:
        return None
    path = base / pkg.path
    return path if path.is_file() else None


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def missing_packages(source: Source) -> list[str]:
    """The pip names of the packages a shipped source needs that are not installed."""
    return sorted({p.package for p in source.packages if locate(p) is None})


def resolve(source: Source) -> Path | None:
    """Where a single-package source lies now (None for parts or a missing package)."""
    if source.shipped is None:
        return None
    return locate(source.shipped)


def join_parts(
    source: Source,
    dest: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> str:
    """Concatenate the parts of a split file into ``dest`` (via a temporary file); returns its sha256."""
    paths = [locate(p) for p in source.parts]
    if any(p is None for p in paths):
        raise UserError("Part of this model is not installed; run: " + pip_command(missing_packages(source)) + ".")
    resolved = [p for p in paths if p is not None]
    total = sum(p.stat().st_size for p in resolved)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".joining")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in resolved:
                with part.open("rb") as src:
                    while block := src.read(CHUNK):
                        if cancel is not None and cancel():
                            raise Cancelled()
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("joined %d parts into %s", len(resolved), dest)
    return digest.hexdigest()
