"""Run the API with uvicorn: bind the port (a sentence when it is taken), say where it serves, stop
in order on Ctrl+C or SIGTERM (requests in flight end first, then jobs are cancelled and the models
released), and leave a small status file that tells the window a server is running."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from workers.api.options import base_url, host_problem
from workers.errors import UserError

log = logging.getLogger(__name__)

#: Seconds requests in flight get to finish when the server is asked to stop.
GRACEFUL_SECONDS = 30


def status_file() -> Path:
    """``<data dir>/local-api.json`` while a server runs: its pid, address and store."""
    from workers import paths

    return paths.data_dir() / "local-api.json"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a UserError sentence when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise UserError(f"Port {port} on {host} is already in use; choose another with --port.") from None
        raise UserError(f"The server could not listen on {host}:{port} ({exc.strerror or exc}).") from None
    sock.set_inheritable(True)
    return sock


def serve(
    host: str,
    port: int,
    *,
    api_key: str = "",
    store_root: Path | None = None,
    device: str | None = None,
    max_upload_mb: int = 200,
    out: TextIO,
) -> int:
    """Serve until stopped; the exit code."""
    from workers.api.app import create_app
    from workers.api.context import ServerContext

    problem = host_problem(host, api_key)
    if problem:
        raise UserError(problem)
    if not 0 <= port <= 65535:
        raise UserError(f"The port must be between 1 and 65535, not {port}.")
    if max_upload_mb < 1:
        raise UserError("--max-upload-mb must be at least 1.")
    ctx = ServerContext.open(store_root, device)
    app = create_app(ctx, api_key=api_key, max_upload_mb=max_upload_mb)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
        log_config=None,  # the studio's own logging (the log file) takes uvicorn's records
    )
    server = StudioServer(config, app.state.jobs.cancel_all)
    url = base_url(host, port)
    _write_status({"pid": os.getpid(), "url": url, "store": str(ctx.store.root), "started": time.time()})
    out.write(f"Serving the SnowAI Studio API on {url} (models from {ctx.store.root}); Ctrl+C stops it.\n")
    out.flush()
    # uvicorn catches SIGINT and SIGTERM while it runs, stops in order, and then raises the signal
    # again for the handlers it found: these ones let the command end normally, with its sentence.
    stop_signals = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.signal(sig, _stopped) for sig in stop_signals}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        _remove_status()
    out.write("The API server stopped.\n")
    return 0


class StudioServer(uvicorn.Server):
    """uvicorn's server that, the moment it is asked to stop, cancels the jobs: they are no requests,
    so uvicorn would not wait for them, but they may hold a model that the requests in flight wait for."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], Any]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: Any = None) -> None:
        self._on_stop()
        await super().shutdown(sockets)


def _stopped(_signum: int, _frame: Any) -> None:
    """A stop signal after the server has stopped: nothing more to do."""


def _write_status(data: dict[str, Any]) -> None:
    from workers.files import write_atomic

    try:
        write_atomic(status_file(), json.dumps(data).encode("utf-8"))
    except OSError as exc:
        log.info("could not write %s: %s", status_file(), exc)


def _remove_status() -> None:
    path = status_file()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
