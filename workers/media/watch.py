"""Devices read on a thread of their own and watched for failures (no Qt).

A camera or a microphone can fail in three ways while it streams: it raises (unplugged, taken by
another program), it stops delivering (a driver that hands out nothing, or a read that never
returns), or its stream ends. :class:`WatchedSource` wraps any
:class:`~workers.media.camera.FrameSource` or :class:`~workers.media.audio.AudioSource` so that the
code reading it sees each of these as a plain outcome, promptly:

- a reader thread opens, reads and closes the device (one thread owns it, as drivers like) and
  hands items over a small queue; when the queue is full it waits, so nothing is dropped here;
- :meth:`WatchedSource.read` waits at most its ``timeout``; when the device delivered nothing for
  ``stall_seconds`` (``first_item_seconds`` before the first item) it raises :class:`DeviceStalled`
  with a sentence ("The camera stopped sending pictures. …");
- a device error is raised by ``read`` after the items read before it, and the device is already
  released by then; the end of a stream is ``read`` returning None with :attr:`WatchedSource.ended`;
- :meth:`WatchedSource.close` (and :meth:`WatchedSource.interrupt`, callable from any thread) never
  wait long: a read that hangs is broken by closing the device from outside; only if even that
  leaves the read hanging is the (daemon) reader thread left behind, with a log line.

``on_failure(sentence)`` is called once with the sentence of a failure (the device could not open,
raised, or stalled), for owners that must tell the user even when their own reader swallows it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Self

from workers.errors import Cancelled, UserError, describe_exception
from workers.queues import StreamItem

log = logging.getLogger(__name__)

#: What a camera that stopped delivering reads as.
CAMERA_STALLED = (
    "The camera stopped sending pictures. Check that it is plugged in and not in use by another program, "
    "then press Retry."
)
#: What a microphone that stopped delivering reads as.
MICROPHONE_STALLED = (
    "The microphone stopped sending sound. Check that it is plugged in and not in use by another program, "
    "then press Retry."
)


class DeviceStalled(UserError):
    """A device delivered nothing for too long (it hangs, or was unplugged without an error)."""


class WatchedSource:
    """A camera or microphone read on its own thread, with stall detection and a prompt close.

    ``kind`` is ``"camera"`` (the wrapped source's ``read()`` takes no argument) or
    ``"microphone"`` (``read(timeout)``, and None with ``ended`` False means "no block yet").
    Everything else (``info``, ``samplerate``, ``channels``, ``blocksize``...) is the wrapped
    source's.
    """

    #: Seconds without an item, once items flowed, before the device counts as stalled.
    stall_seconds: ClassVar[float] = 3.0
    #: Seconds the first item may take after opening (a webcam warming up, a driver starting).
    first_item_seconds: ClassVar[float] = 8.0
    #: Seconds :meth:`open` waits for the device before it gives up with a sentence.
    open_seconds: ClassVar[float] = 20.0
    #: Seconds :meth:`close` waits for the reader before it closes the device from outside.
    close_seconds: ClassVar[float] = 0.5
    #: How long one wait inside :meth:`read` lasts (and the reader's read timeout for microphones).
    poll: ClassVar[float] = 0.05
    #: A pause this long between two reads means the reading code itself did not run (the process was
    #: busy, say loading a model): the stall clock starts again instead of blaming the device.
    gap_seconds: ClassVar[float] = 0.5

    def __init__(
        self,
        inner: Any,
        kind: str = "camera",
        *,
        queue_size: int | None = None,
        on_failure: Callable[[str], object] | None = None,
        stall_seconds: float | None = None,
        first_item_seconds: float | None = None,
        name: str = "",
    ) -> None:
        if kind not in ("camera", "microphone"):
            raise ValueError(f"unknown device kind {kind!r}")
        self.inner = inner
        self.kind = kind
        self.on_failure = on_failure
        if stall_seconds is not None:
            self.stall_seconds = float(stall_seconds)
        if first_item_seconds is not None:
            self.first_item_seconds = float(first_item_seconds)
        self.name = name or ("Camera" if kind == "camera" else "Microphone")
        size = queue_size if queue_size is not None else (2 if kind == "camera" else 32)
        self._queue: queue.Queue[StreamItem] = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._close_lock = threading.Lock()
        self._inner_closed = False
        self._thread: threading.Thread | None = None
        self._open_error: BaseException | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._opened_at = 0.0
        self._last_item_at: float | None = None
        self._last_read_at = 0.0
        self._watch_since = 0.0
        #: Items read from the device so far.
        self.items = 0

    # ---- the wrapped source's attributes ----------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def stall_message(self) -> str:
        return CAMERA_STALLED if self.kind == "camera" else MICROPHONE_STALLED

    @property
    def is_open(self) -> bool:
        return self._opened.is_set() and self._open_error is None and not self._done.is_set()

    @property
    def ended(self) -> bool:
        """The stream ended (a file played to its end) and every item was read."""
        return self._ended and self._done.is_set() and self._queue.empty()

    @property
    def reader_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # ---- open / close (the owner's thread) ----------------------------------------------------
    def open(self) -> None:
        """Start the reader and wait until the device is open; raises its sentence when it cannot be."""
        if self._thread is not None:
            if self._open_error is not None:
                raise self._open_error
            return
        self._stop.clear()
        self._opened_at = time.monotonic()
        thread = threading.Thread(target=self._main, name=f"{self.name} reader", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + self.open_seconds
        while not self._opened.wait(self.poll):
            if self._stop.is_set():
                raise Cancelled()
            if time.monotonic() > deadline:
                self._stop.set()
                message = (
                    f"The {self.kind} did not open within {self.open_seconds:.0f} seconds. Check that it is "
                    "plugged in and not in use by another program, then press Retry."
                )
                self._fail(message)
                self.close()
                raise UserError(message)
        if self._open_error is not None:
            self._fail(describe_exception(self._open_error, self.name))
            raise self._open_error
        self._opened_at = time.monotonic()

    def interrupt(self) -> None:
        """Make a pending :meth:`open` or :meth:`read` return now (any thread); the owner closes next."""
        self._stop.set()

    def close(self) -> None:
        """Stop the reader and release the device (safe to call twice, from any thread)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.close_seconds)
            if thread.is_alive() and self._opened.is_set():
                log.warning("%s does not answer; closing it while a read is pending", self.name)
                self._close_inner()
                thread.join(1.0)
            if thread.is_alive():
                # Still opening (the reader closes the device itself once ``open`` returns), or stuck in
                # the driver for good: the daemon thread is left behind rather than blocking the caller.
                log.warning("%s's reader is stuck in the driver; it is left behind", self.name)
        else:
            self._close_inner()
        self._drain()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- reading (the owner's thread) ---------------------------------------------------------
    def read(self, timeout: float | None = None) -> StreamItem | None:
        """The next item; None when ``timeout`` passed without one or the stream ended (see
        :attr:`ended`). Raises the device's error, or :class:`DeviceStalled` when it delivers nothing."""
        if self._thread is None:
            raise UserError(f"The {self.kind} is not open.")
        now = time.monotonic()
        if now - self._last_read_at > self.gap_seconds:
            self._watch_since = now  # we were not reading: that time says nothing about the device
        self._last_read_at = now
        deadline = None if timeout is None else now + max(0.0, timeout)
        while True:
            wait = self.poll if deadline is None else min(self.poll, max(0.0, deadline - time.monotonic()))
            try:
                return self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                pass
            if self._done.is_set() and self._queue.empty():
                if self._error is not None:
                    error, self._error = self._error, None
                    self._fail(describe_exception(error, self.name) if not isinstance(error, UserError) else str(error))
                    raise error
                return None
            if self._stop.is_set():
                return None
            stalled = self._stalled()
            if stalled:
                self._stop.set()
                self._fail(self.stall_message)
                raise DeviceStalled(self.stall_message)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _stalled(self) -> bool:
        now = time.monotonic()
        if now - self._last_read_at > self.gap_seconds:
            self._watch_since = now  # this very read was held up (the process was busy): start again
        self._last_read_at = now
        last = self._last_item_at
        if last is None:
            return now - max(self._opened_at, self._watch_since) > self.first_item_seconds
        return now - max(last, self._watch_since) > self.stall_seconds

    def _fail(self, sentence: str) -> None:
        callback, self.on_failure = self.on_failure, None  # once
        if callback is not None:
            try:
                callback(sentence)
            except Exception as exc:
                log.warning("A device failure listener failed: %s", exc)

    # ---- the reader thread ------------------------------------------------------------------------
    def _main(self) -> None:
        inner = self.inner
        try:
            inner.open()
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            self._close_inner()
            self._done.set()
            return
        self._opened.set()
        audio = self.kind == "microphone"
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                item = inner.read(self.poll) if audio else inner.read()
                if item is None:
                    if audio and not getattr(inner, "ended", False):
                        if time.monotonic() - started < self.poll / 2:
                            self._stop.wait(self.poll)  # a device that returns at once must not make us spin
                        continue
                    self._ended = True
                    break
                self.items += 1
                self._last_item_at = time.monotonic()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=self.poll)
                        break
                    except queue.Full:
                        continue
                self._last_item_at = time.monotonic()  # handed over: a slow reader is not a stalled device
        except BaseException as exc:
            if not self._stop.is_set():
                self._error = exc
            else:
                log.debug("%s failed while closing: %s", self.name, exc)
        finally:
            self._close_inner()
            self._done.set()

    def _close_inner(self) -> None:
        with self._close_lock:
            if self._inner_closed:
                return
            self._inner_closed = True
        try:
            self.inner.close()
        except Exception as exc:
            log.warning("Closing %s failed: %s", self.name, exc)

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
