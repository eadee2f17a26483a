"""The local API while the window is open: the server runs as a child process
(``python -m workers.api``), and a status-bar indicator says where it serves and what it holds.

Why a child process and not a thread of the window: the server imports the model runtimes (torch,
onnxruntime, faster-whisper...), which the window never imports; uvicorn wants an event loop and
signal handling of its own; a crash or a runaway model in the server cannot take the window down;
and stopping it gives all its memory back. The key travels in the child's environment, never on its
command line. While serving, the indicator asks ``GET /v1/studio/status`` every few seconds (Qt's
network access, off the UI thread) and names the models the server holds and which are on a GPU.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, QUrl, Signal, Slot
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkReply, QNetworkRequest
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from workers.api.options import API_KEY_ENV, ApiOptions, base_url, host_problem

log = logging.getLogger(__name__)

SERVING_LINE = "Serving the SnowAI Studio API on "
STATUS_POLL_MS = 5000
STOP_WAIT_MS = 8000


class LocalApiServer(QObject):
    """Starts, stops and restarts ``snowai-studio serve`` as the settings say."""

    #: "off", "starting", "serving" or "failed".
    state_changed = Signal(str)
    #: A sentence when the server could not start or stopped on its own.
    failed = Signal(str)

    def __init__(self, settings: Any, parent: QObject | None = None, *, program: list[str] | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        #: The command that runs the server (the interpreter and its arguments before ours).
        self.program = program or server_command()
        self.state = "off"
        self.url = ""
        self.running: ApiOptions | None = None
        self._process: QProcess | None = None
        self._stopping = False
        self._restart = False
        self._errors: list[str] = []

    def options(self) -> ApiOptions:
        return self.settings.options(ApiOptions)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    # ---- commands ------------------------------------------------------------------------------
    @Slot()
    def apply(self) -> None:
        """Start, stop or restart the server so that it matches the settings."""
        options = self.options()
        wanted = _signature(options, self.settings) if options.enabled else None
        current = _signature(self.running, self.settings) if self.running is not None and self._process else None
        if wanted == current:
            return
        if self._process is not None:
            self._restart = wanted is not None
            self.stop(wait=False)
            return
        if wanted is not None:
            self.start()

    def start(self) -> bool:
        options = self.options()
        problem = host_problem(options.host, options.api_key)
        if problem:
            self._fail(problem)
            return False
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.remove(API_KEY_ENV)
        if options.api_key:
            env.insert(API_KEY_ENV, options.api_key)
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        args = [*self.program[1:], "--host", options.host, "--port", str(options.port)]
        args += ["--max-upload-mb", str(options.max_upload_mb), "--store", str(self.settings.models_dir())]
        args += ["--device", self.settings.compute if self.settings.compute in ("auto", "cpu", "cuda") else "auto"]
        process.readyReadStandardOutput.connect(self._read_output)
        process.readyReadStandardError.connect(self._read_errors)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self._process, self.running, self._errors, self._stopping = process, _copy(options), [], False
        self.url = base_url(options.host, options.port)
        self._set_state("starting")
        process.start(self.program[0], args)
        return True

    def stop(self, wait: bool = True) -> None:
        """Ask the server to stop (requests in flight end first); with ``wait``, until it has."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        if process.state() != QProcess.ProcessState.NotRunning:
            process.terminate()
            if wait and not process.waitForFinished(STOP_WAIT_MS):
                process.kill()
                process.waitForFinished(2000)

    # ---- the child process --------------------------------------------------------------------
    @Slot()
    def _read_output(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith(SERVING_LINE):
                self.url = line[len(SERVING_LINE) :].split(" ", 1)[0]
                self._set_state("serving")

    @Slot()
    def _read_errors(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardError().data()).decode("utf-8", "replace")
        self._errors = (self._errors + [ln.strip() for ln in text.splitlines() if ln.strip()])[-20:]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        process, self._process = self._process, None
        if process is not None:
            self._read_errors_from(process)
            process.deleteLater()
        expected = self._stopping
        self._stopping = False
        self.running = None
        if not expected:
            sentence = next(
                (
                    ln[len("Error: ") :] if ln.startswith("Error: ") else ln
                    for ln in reversed(self._errors)
                    if not ln.startswith(("INFO", "WARNING"))
                ),
                "",
            )
            self._fail(sentence or f"The local API server stopped unexpectedly (exit code {code}).")
        else:
            self._set_state("off")
        if self._restart:
            self._restart = False
            QTimer.singleShot(0, self.apply)

    def _read_errors_from(self, process: QProcess) -> None:
        text = bytes(process.readAllStandardError().data()).decode("utf-8", "replace")
        self._errors = (self._errors + [ln.strip() for ln in text.splitlines() if ln.strip()])[-20:]

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._process = None
            self.running = None
            self._fail(f"The local API server could not be started ({self.program[0]} did not run).")

    def _fail(self, sentence: str) -> None:
        log.warning("local API: %s", sentence)
        self._set_state("failed")
        self.failed.emit(sentence)


class LocalApiIndicator(QLabel):
    """``API 127.0.0.1:8765`` in the status bar while the server runs; hidden otherwise."""

    def __init__(self, server: LocalApiServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("localApiLabel")
        self.server = server
        self.held: list[dict[str, Any]] = []
        self._network = QNetworkAccessManager(self)
        self._poll = QTimer(self)
        self._poll.setInterval(STATUS_POLL_MS)
        self._poll.timeout.connect(self.refresh)
        server.state_changed.connect(self._on_state)
        self._on_state(server.state)

    @Slot(str)
    def _on_state(self, state: str) -> None:
        address = self.server.url.removeprefix("http://").removesuffix("/v1")
        texts = {"starting": f"API: starting on {address}…", "serving": f"API: serving on {address}"}
        self.setVisible(state in texts)
        self.setText(texts.get(state, ""))
        self.held = []
        self._update_tip()
        if state == "serving":
            self._poll.start()
            self.refresh()
        else:
            self._poll.stop()

    @Slot()
    def refresh(self) -> None:
        """Ask the server what it holds (answered on the network's own thread)."""
        if self.server.state != "serving" or not self.server.url:
            return
        request = QNetworkRequest(QUrl(self.server.url + "/studio/status"))
        key = self.server.running.api_key if self.server.running is not None else ""
        if key:
            request.setRawHeader(b"Authorization", f"Bearer {key}".encode())
        reply = self._network.get(request)
        reply.finished.connect(lambda: self._on_status(reply))

    def _on_status(self, reply: QNetworkReply) -> None:
        try:
            if reply.error() == QNetworkReply.NetworkError.NoError:
                data = json.loads(bytes(reply.readAll().data()) or b"{}")
                self.held = [m for m in data.get("models", []) if m.get("loaded")]
                self._update_tip()
        except ValueError:
            pass
        finally:
            reply.deleteLater()

    def _update_tip(self) -> None:
        lines = [f"The local API serves other programs at {self.server.url}."]
        running = self.server.running
        if running is not None:
            lines.append("Clients send its key." if running.api_key else "Only this computer can reach it.")
        if self.held:
            names = ", ".join(f"{m['id']} ({m['device']})" for m in self.held)
            lines.append(f"Models it holds: {names}.")
            gpu = [m["id"] for m in self.held if str(m.get("device", "")).startswith("cuda")]
            lines.append(f"It holds the GPU with {', '.join(gpu)}." if gpu else "It holds no GPU.")
        else:
            lines.append("No model is loaded yet; each loads on its first request.")
        lines.append("Settings → Local API turns it off.")
        self.setToolTip("\n".join(lines))


def server_command() -> list[str]:
    """How to run the server: the stand-alone build runs its own ``serve`` command, Python runs the module."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "serve"]
    return [sys.executable, "-m", "workers.api"]


def attach(window: Any, bar: QStatusBar) -> LocalApiServer:
    """Add the local API's indicator to the window's status bar and start the server when it is on."""
    server = LocalApiServer(window.settings, window)
    window.local_api_indicator = LocalApiIndicator(server)
    bar.addPermanentWidget(window.local_api_indicator)
    server.failed.connect(lambda sentence: window.notifications.error(sentence, "local API"))
    server.apply()
    return server


def _copy(options: ApiOptions) -> ApiOptions:
    import dataclasses

    return dataclasses.replace(options)


def _signature(options: ApiOptions | None, settings: Any) -> tuple[Any, ...] | None:
    if options is None:
        return None
    return (
        options.host,
        options.port,
        options.api_key,
        options.max_upload_mb,
        str(settings.models_dir()),
        settings.compute,
    )
