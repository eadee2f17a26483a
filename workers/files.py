"""Saving files in one step (no Qt): a file is complete under its name, or not there at all.

:func:`write_atomic` writes to a temporary file next to the target and renames it into place, so a
failure (a full disk, a cancelled job) keeps whatever the target held before and leaves no partial
file behind; :func:`save_bytes` does the same and turns a failure into one
:class:`~workers.errors.UserError` sentence. :func:`atomic_target` gives writers that need a file name
(a video muxer, a sound-file library) the same guarantee: they write to ``.<name>.partial<suffix>``
in the target's folder, which is renamed into place only when the block ends without an error.

:func:`is_disk_full` tells whether an error (or any error it was raised from) is a full disk, and
:func:`disk_full_sentence` says so in a sentence that starts with "The disk is full".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from workers.errors import UserError

#: errno values that mean "no room left": a full disk, or the user's quota used up.
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: How libraries spell ENOSPC in their messages (stripped from a sentence that now says it first).
_NO_SPACE = re.compile(
    r"\s*[(:;,-]?\s*(\[errno \d+\]\s*)?no space left on device(\s*:\s*(?:'[^']*'|\"[^\"]*\"))?\)?", re.IGNORECASE
)


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc``, or an exception it was raised from or while handling, is a full disk."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        if getattr(exc, "errno", None) in _FULL:  # av.FFmpegError and friends
            return True
        if "no space left on device" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_sentence(detail: str = "") -> str:
    """ "The disk is full: <detail> Free some space and try again." (``detail`` is a sentence of what
    could not be written; a "No space left on device" in it is dropped, the sentence says so first)."""
    text = _NO_SPACE.sub("", str(detail or "")).strip()
    if text.lower().startswith("the disk is full"):
        return text
    if not text:
        return "The disk is full. Free some space and try again."
    if text[-1] not in ".!?":
        text += "."
    return f"The disk is full: {text} Free some space and try again."


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``path``:
    ``.<stem>.<random>.partial<suffix>`` in the same folder (same disk, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; it is renamed to ``path`` when the block
    ends normally, and removed when it raises (``path`` keeps what it held before)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        if is_disk_full(exc):
            raise UserError(disk_full_sentence(f"{path.name} could not be saved in {path.parent}.")) from exc
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
