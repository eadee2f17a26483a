"""A worker thread's Python thread state, held from the thread's start to its stop (no Qt)."""

from __future__ import annotations

import threading


class ThreadStateHold:
    """Keeps the worker thread's Python thread state alive from start to stop.

    Qt enters Python for each slot call with a thread state made for that call and dropped after
    it. Native extensions that remember the thread state they first ran on (dlib does) then crash
    when a model loaded in one slot is used in the next; one reference held for the thread's whole
    life keeps the state, and ``threading.current_thread()``, the same for every slot.
    """

    def __init__(self) -> None:
        import ctypes

        self._api = ctypes.pythonapi
        self._api.PyGILState_Ensure.restype = ctypes.c_int
        self._api.PyGILState_Release.argtypes = [ctypes.c_int]
        self._state: int | None = int(self._api.PyGILState_Ensure())
        self._thread = threading.get_ident()

    def release(self) -> None:
        if self._state is not None and threading.get_ident() == self._thread:
            self._api.PyGILState_Release(self._state)
        self._state = None
