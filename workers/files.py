"""Saving files in one step (no Qt): a file is complete under its name, or not there at all.

:func:`write_atomic` writes to a temporary file next to the target and renames it into place, so a
failure (a full disk, a cancelled job) keeps whatever the target held before and leaves no partial
file behind; :func:`save_bytes` does the same and turns a failure into one
:class:`~workers.errors.UserError` sentence.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from workers.errors import UserError


def write_atomic(path: Path, data: bytes) -> Path:
    """Write bytes to a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_bytes(path: Path, data: bytes) -> Path:
    """:func:`write_atomic`, with a UserError sentence naming the file when it cannot be saved."""
    path = Path(path)
    try:
        return write_atomic(path, data)
    except PermissionError:
        raise UserError(f"{path.name} could not be saved: permission denied in {path.parent}.") from None
    except OSError as exc:
        raise UserError(f"{path.name} could not be saved: {exc.strerror or exc}.") from None


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file (or would, once created)."""
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.expanduser().resolve() == b.expanduser().resolve()
    except OSError:
        return False


def free_name(candidate: Path, source: Path) -> Path:
    """``candidate``, or the first ``<stem>-2``, ``-3``... that is neither taken nor ``source``
    (so that an output never overwrites its input or an earlier output)."""
    stem, suffix = candidate.stem, candidate.suffix
    n = 2
    while candidate.exists() or same_file(candidate, source):
        candidate = candidate.with_name(f"{stem}-{n}{suffix}")
        n += 1
    return candidate
