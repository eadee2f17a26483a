"""Helpers for the model-manager tests: a local HTTP file server and a tiny model served from it.

The ``server`` fixture (tests/conftest.py) starts a :class:`FileServer` on 127.0.0.1 and stops it
after the test; nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

#: Where the server answers for the Hugging Face file ``test/tiny`` / ``tiny.onnx`` (revision main).
TINY_PATH = "/test/tiny/resolve/main/tiny.onnx"


def payload(n: int = 300_000, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """A threaded HTTP server with Range support, byte counting and a connection-dropping mode."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.sent: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        #: path -> number of body bytes to send before dropping the connection.
        self.drop_after: dict[str, int] = {}
        #: seconds to wait between two 8 KB chunks (a slow connection).
        self.chunk_delay = 0.0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                with server._lock:
                    server.requests.append((path, rng))
                data = server.files.get(path)
                if data is None:
                    self.send_response(404, "Not Found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng:
                    m = re.match(r"bytes=(\d+)-$", rng)
                    assert m, rng
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit = server.drop_after.get(path)
                if limit is not None:
                    body = body[:limit]
                for i in range(0, len(body), 8192):
                    chunk = body[i : i + 8192]
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    with server._lock:
                        server.sent[path] = server.sent.get(path, 0) + len(chunk)
                    if server.chunk_delay:
                        time.sleep(server.chunk_delay)
                if limit is not None:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path

    def start(self) -> FileServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_tiny_model(
    server: FileServer, folder: Path, monkeypatch: pytest.MonkeyPatch, extra_toml: str = ""
) -> tuple[Path, bytes]:
    """Serve a tiny ONNX-looking file as a Hugging Face file and write a manifest naming it.

    HF_ENDPOINT points at ``server``; the manifest ``folder/models.toml`` lists the one model
    ``tiny`` (tool matting), followed by ``extra_toml`` (more ``[[model]]`` tables, if any).
    Returns the manifest path and the served bytes.
    """
    data = b"\x08\x07" + bytes(range(256)) * 400
    server.add(TINY_PATH, data)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    path = folder / "models.toml"
    path.write_text(
        f"""
[[model]]
id = "tiny"
tool = "matting"
name = "Tiny test model"
description = "A few bytes that look like ONNX."
licence = "MIT"
kind = "onnx"

[[model.file]]
name = "tiny.onnx"
size = {len(data)}
sha256 = "{sha(data)}"
sources = [{{ hf_repo = "test/tiny", hf_filename = "tiny.onnx" }}]
"""
        + extra_toml,
        encoding="utf-8",
    )
    return path, data
