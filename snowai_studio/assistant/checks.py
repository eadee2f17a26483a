"""Quick questions the page asks off the UI thread, on one helper worker started when first needed:
which models a local language-model server has, and whether the chosen microphone is there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

NO_MICROPHONE = "No microphone was found: plug one in or choose one in Devices (typed questions still work)."
MISSING_SOUND_FILE = "The sound file {name} chosen as the microphone was not found: choose another one in Devices."


def microphone_reason(choice: str | None) -> str:
    """The sentence that says why there is nothing to listen to with the microphone setting ``choice``."""
    from workers.media.microphone import is_sound_file_choice

    if is_sound_file_choice(choice):
        return MISSING_SOUND_FILE.format(name=PurePath(str(choice).strip()).name)
    return NO_MICROPHONE


class PageChecks(QObject):
    """``server_models(names)`` / ``server_models_failed(sentence)`` answer :meth:`server_models_of`;
    ``microphone_checked(ok, reason)`` answers :meth:`check_microphone`."""

    server_models = Signal(list)
    server_models_failed = Signal(str)
    microphone_checked = Signal(bool, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: Any = None
        self._jobs: dict[int, str] = {}
        self._closed = False

    @property
    def started(self) -> bool:
        """The helper worker runs (it starts with the first question)."""
        return self._worker is not None

    def _submit(self, kind: str, job: Callable[[Any], Any]) -> int:
        if self._worker is None:
            from workers.base import Worker

            worker = Worker()
            worker.name = "Voice assistant tasks"
            worker.job_finished.connect(self._on_finished)
            worker.job_failed.connect(self._on_failed)
            worker.start()
            self._worker = worker
        job_id = self._worker.submit(job)
        self._jobs[job_id] = kind
        return job_id

    def server_models_of(self, url: str) -> int:
        """Ask the server at ``url`` which models it has; returns the job id."""

        def job(_ctx: Any) -> list[str]:
            from workers.assistant.llm import list_server_models

            return [str(n) for n in list_server_models(url)]

        return self._submit("server_models", job)

    def check_microphone(self, available: Callable[[], bool], choice: str | None) -> int:
        """Whether there is a microphone to listen to: ``available()`` runs on the helper thread (it may
        ask the sound system for its devices); ``choice`` is the microphone setting, for the reason."""

        def job(_ctx: Any) -> tuple[bool, str]:
            ok = bool(available())
            return ok, "" if ok else microphone_reason(choice)

        return self._submit("microphone", job)

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: Any) -> None:
        kind = self._jobs.pop(job_id, None)
        if self._closed:
            return
        if kind == "server_models":
            self.server_models.emit(list(result or []))
        elif kind == "microphone":
            ok, reason = result
            self.microphone_checked.emit(bool(ok), str(reason))

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        kind = self._jobs.pop(job_id, None)
        if self._closed:
            return
        if kind == "server_models":
            self.server_models_failed.emit(message)
        elif kind == "microphone":
            self.microphone_checked.emit(False, NO_MICROPHONE)

    def stop(self) -> None:
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
