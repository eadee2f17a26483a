"""Logging to a rotating file in the user log folder (and to stderr for warnings)."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from workers import paths

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"
_configured = False
_console: logging.Handler | None = None
QUIET = logging.CRITICAL + 10


def setup_logging(level: int = logging.INFO, *, console_level: int = logging.WARNING) -> Path | None:
    """Send records to ``<log dir>/snowai-studio.log`` and those at ``console_level`` or above to stderr.

    Returns the log file, or None if it cannot be written (the studio goes on without it).
    """
    global _configured, _console
    root = logging.getLogger()
    if _configured:
        if _console is not None:
            _console.setLevel(console_level)
        return log_file()
    root.setLevel(level)
    path: Path | None = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    except OSError as exc:  # a read-only or full disk must not stop the studio
        path = None
        print(f"SnowAI Studio: cannot write the log file ({exc}); logging to the console only.", file=sys.stderr)
    _console = logging.StreamHandler()
    _console.setLevel(console_level)
    _console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(_console)
    _configured = True
    return path


def log_file() -> Path:
    return paths.log_dir() / "snowai-studio.log"
