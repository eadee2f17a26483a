"""What every benchmark script writes beside its table: the machine it ran on, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(**extra: Any) -> dict[str, Any]:
    """Python, CPU count, platform and processor, plus what a script adds (threads, GPU...)."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        **extra,
    }


def write_results(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (values JSON does not know become strings) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")
