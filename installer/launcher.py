"""The entry point of the stand-alone bundle (PyInstaller): the same command as ``snowai-studio``.

With no arguments the window opens; ``--self-test`` and the subcommands work as in a pip install.
"""

from __future__ import annotations

import multiprocessing
import sys


def _main() -> int:
    # A frozen program must let multiprocessing's child processes run their task, not the studio.
    multiprocessing.freeze_support()
    from snowai_studio.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
