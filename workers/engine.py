"""The one small contract every engine offers. Engines are plain Python: numpy in, numpy out.

An engine can be driven from a test, the CLI or a Qt worker (:class:`workers.base.EngineWorker`)
alike; it never imports Qt.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Engine(Protocol):
    """Load once, process many items, close to free memory and devices."""

    name: str

    def load(self) -> None:
        """Load models (may be slow); called once before the first item."""

    def process(self, item: Any) -> Any:
        """Turn one input (a frame, an audio block, a file) into one output."""

    def set_param(self, name: str, value: Any) -> None:
        """Change a parameter live (pitch, opacity, model choice...)."""

    def close(self) -> None:
        """Release what ``load`` took."""
