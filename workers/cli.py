"""What every command of the studio's command line shares (no Qt).

- the exit codes;
- ``--store`` and the model store a command opens (the folder given, or the one in the settings);
- :func:`run_reporting`, the one place where a command's failure becomes one sentence on stderr
  (never a traceback) and an exit code.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from workers.errors import Cancelled, UserError, describe_exception

if TYPE_CHECKING:
    from workers.models.manifest import Manifest
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--store FOLDER``: the model store to use instead of the one in the settings."""
    parser.add_argument("--store", type=Path, default=None, help="model store folder (default: from settings)")


def store_root(args: argparse.Namespace) -> Path:
    """The model store folder a command uses: ``--store``, or else the one in the settings."""
    root = getattr(args, "store", None)
    if root is None:
        from workers.settings import Settings

        root = Settings.load().models_dir()
    return Path(root)


def open_store(args: argparse.Namespace, manifest: Manifest | None = None) -> ModelStore:
    """The model store a command uses (see :func:`store_root`)."""
    from workers.models.store import ModelStore

    return ModelStore(store_root(args), manifest)


def run_reporting(
    what: str,
    body: Callable[[], int],
    err: TextIO,
    *,
    cancelled: str,
    interrupted: str | None = None,
) -> int:
    """Run a command's ``body`` and return its exit code; a failure is one sentence on ``err``.

    ``cancelled`` is written when the command was cancelled, ``interrupted`` (``cancelled`` when not
    given) on Ctrl+C. An error that is not a :class:`~workers.errors.UserError` is logged with its
    traceback and described as a failure of ``what``.
    """
    try:
        return body()
    except Cancelled:
        err.write(cancelled)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        err.write(cancelled if interrupted is None else interrupted)
        return EXIT_CANCELLED
    except UserError as exc:
        err.write(f"{exc}\n")
        return EXIT_FAILED
    except Exception as exc:
        log.exception("%s failed", what)
        err.write(describe_exception(exc, what) + "\n")
        return EXIT_FAILED
