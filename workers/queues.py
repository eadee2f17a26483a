"""Bounded, thread-safe buffers that drop the oldest item instead of growing.

A slow model lowers the frame rate; it never grows memory or latency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class StreamItem:
    """One item of a stream (a frame, an audio block) with the time it was captured."""

    payload: Any
    timestamp: float = field(default_factory=time.monotonic)
    seq: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StreamResult:
    """What a stream worker made of one item; carries the source timestamp for latency."""

    payload: Any
    timestamp: float
    seq: int
    done_at: float = field(default_factory=time.monotonic)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return (self.done_at - self.timestamp) * 1000.0


class DropOldestQueue(Generic[T]):
    """A FIFO of at most ``maxsize`` items; ``put`` on a full queue discards the oldest one."""

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self.dropped = 0
        self.accepted = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def put(self, item: T) -> int:
        """Add an item; returns how many old items were dropped to make room (0 or more)."""
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self.dropped += dropped
            self.accepted += 1
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout`` seconds; None when nothing came."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items.popleft()

    def get_nowait(self) -> T | None:
        with self._cond:
            return self._items.popleft() if self._items else None

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class LatestValue(Generic[T]):
    """A one-item mailbox between threads: the writer overwrites, the reader takes the newest.

    ``post`` returns True only when the mailbox was empty, so a producer emits one
    notification per value the consumer will actually see and never floods the UI thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._has = False
        self.overwritten = 0

    def post(self, value: T) -> bool:
        with self._lock:
            was_empty = not self._has
            if self._has:
                self.overwritten += 1
            self._value = value
            self._has = True
            return was_empty

    def take(self) -> T | None:
        with self._lock:
            value, self._value, self._has = self._value, None, False
            return value
