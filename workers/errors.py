"""Exceptions and the sentences a user reads instead of a traceback."""

from __future__ import annotations

import errno


class UserError(Exception):
    """An error whose message is already a sentence for the user (no traceback needed)."""


class Cancelled(Exception):
    """Raised inside a job when the user cancelled it."""


def describe_exception(exc: BaseException, context: str = "") -> str:
    """Turn any exception into one readable sentence, naming what was being done."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, UserError):
        return f"{prefix}{exc}"
    if isinstance(exc, Cancelled):
        return f"{prefix}cancelled."
    if isinstance(exc, FileNotFoundError):
        return f"{prefix}the file {exc.filename or exc} was not found."
    if isinstance(exc, IsADirectoryError):
        return f"{prefix}{exc.filename} is a folder, not a file."
    if isinstance(exc, PermissionError):
        return f"{prefix}permission denied for {exc.filename or 'a file'}."
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"{prefix}the disk is full; free some space and try again."
    if isinstance(exc, MemoryError):
        return f"{prefix}not enough memory; close other programs or choose a smaller model."
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0]
    if not text.endswith((".", "!", "?")):
        text += "."
    return f"{prefix}{text} (details in the log)"
