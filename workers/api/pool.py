"""The server's loaded models: each one loaded once, and its requests served one at a time, in order.

``pool.use(key, load)`` loads the model the first time (``load()`` runs once, however many requests
ask for it at the same moment) and holds the model's lock while the caller uses it, so that requests
for one model queue behind each other while requests for other models run beside them. The pool also
says what it holds (:meth:`ModelPool.describe`), for the status endpoint and the window.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: Any = None
    loads: int = 0
    load_seconds: float = 0.0
    device: str = ""
    uses: int = 0
    waiting: int = 0


class ModelPool:
    """Models by key (``("asr", "whisper-base-shipped")``...), each loaded once and used by one request at a time."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._guard = threading.Lock()
        self._closed = False

    def _slot(self, key: tuple[str, str]) -> _Slot:
        with self._guard:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            return slot

    @contextlib.contextmanager
    def use(self, key: tuple[str, str], load: Callable[[], Any]) -> Iterator[Any]:
        """The model ``key`` (loaded by ``load`` the first time), held by this caller until the block ends."""
        slot = self._slot(key)
        with self._guard:
            slot.waiting += 1
        try:
            slot.lock.acquire()
        finally:
            with self._guard:
                slot.waiting -= 1
        try:
            if self._closed:
                from workers.errors import UserError

                raise UserError("The server is shutting down; send the request again once it is back.")
            if slot.model is None:
                started = time.perf_counter()
                slot.model = load()
                slot.loads += 1
                slot.load_seconds = time.perf_counter() - started
                slot.device = _device_of(slot.model)
                log.info("loaded %s:%s in %.1f s on %s", key[0], key[1], slot.load_seconds, slot.device or "cpu")
            slot.uses += 1
            yield slot.model
        finally:
            slot.lock.release()

    def describe(self) -> list[dict[str, Any]]:
        """What is loaded: kind, id, device, how often it was loaded and used, and who waits for it."""
        with self._guard:
            items = list(self._slots.items())
        return [
            {
                "kind": kind,
                "id": model_id,
                "loaded": slot.model is not None,
                "device": slot.device or "cpu",
                "loads": slot.loads,
                "load_seconds": round(slot.load_seconds, 3),
                "requests": slot.uses,
                "waiting": slot.waiting,
            }
            for (kind, model_id), slot in items
        ]

    def gpu_models(self) -> list[str]:
        """The models this process holds on a GPU (``kind:id``)."""
        return [f"{d['kind']}:{d['id']}" for d in self.describe() if d["loaded"] and d["device"].startswith("cuda")]

    def close(self) -> None:
        """Release every model (after waiting for the request that uses it)."""
        self._closed = True
        with self._guard:
            slots = list(self._slots.values())
        for slot in slots:
            with slot.lock:
                model, slot.model = slot.model, None
            close = getattr(model, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing must never stop the others
                    log.warning("closing a model failed", exc_info=True)


def _device_of(model: Any) -> str:
    for attr in ("device", "compute_device"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return ""
