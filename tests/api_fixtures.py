"""A real ``snowai-studio serve`` on 127.0.0.1 for the local API's tests (one per test session).

:func:`start_server` runs the command in a child process with a home, settings and model store of its
own (the shipped models resolve from their packages; the language model is a tiny one the tests build),
on a free port (``--port 0``; the port is read from the line the server prints). The session fixture
``api_server`` is shared by every API test module (import ``api_server_fixture`` into a test module
with a "noqa: F401" comment, and ``tiny_chat_llm_dir`` from llm_fixtures); tests that stop a server
start their own.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVING = "Serving the SnowAI Studio API on "
#: The session server's upload limit (small, so that a test can go over it cheaply).
UPLOAD_LIMIT_MB = 8


@dataclass
class ApiServer:
    process: subprocess.Popen[str]
    base_url: str  # http://127.0.0.1:PORT/v1
    home: Path
    settings_file: Path
    api_key: str = ""
    output: list[str] = field(default_factory=list)
    #: The id of a small stand-in background-removal model imported into the server's store (fast on
    #: a busy CPU, unlike the shipped U2-Net lite).
    tiny_matting: str = ""

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def client(self, **kwargs: Any) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key or "none", max_retries=0, timeout=120, **kwargs)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def status(self) -> dict[str, Any]:
        import requests

        return requests.get(f"{self.base_url}/studio/status", headers=self.headers(), timeout=30).json()

    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_file.read_text(encoding="utf-8"))

    def write_settings(self, data: dict[str, Any]) -> None:
        self.settings_file.write_text(json.dumps(data), encoding="utf-8")

    def rss(self) -> int:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def server_env(home: Path, settings_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWAI_")}
    env.update(SNOWAI_HOME=str(home), SNOWAI_SETTINGS_FILE=str(settings_file), HF_HUB_OFFLINE="1")
    env["SNOWAI_INT8_COPIES"] = "0"  # no 8-bit copy made in the background while requests are measured
    env.pop("QT_QPA_PLATFORM", None)
    return env


def start_server(home: Path, settings: dict[str, Any], *args: str, api_key: str = "", wait: float = 120) -> ApiServer:
    """``snowai-studio serve --port 0 ARGS`` with its own home and settings; returns once it serves."""
    home.mkdir(parents=True, exist_ok=True)
    settings_file = home / "settings.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    env = server_env(home, settings_file)
    if api_key:
        env["SNOWAI_API_KEY"] = api_key
    command = [sys.executable, "-m", "snowai_studio", "serve", "--port", "0", "--store", str(home / "models"), *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            process.kill()
            raise RuntimeError("the API server did not start in time:\n" + "\n".join(output)) from None
        if line is None:
            raise RuntimeError("the API server exited:\n" + "\n".join(output))
        if line.startswith(SERVING):
            url = line[len(SERVING) :].split(" ", 1)[0]
            return ApiServer(process, url, home, settings_file, api_key, output)


def import_tiny_matting(store_root: Path, scratch: Path) -> str:
    """Import a small U2-Net-shaped model (tests/matting_fixtures.py) into the store; its id."""
    from matting_fixtures import build_u2net_like

    from workers.models.store import ModelStore

    return ModelStore(store_root).import_file(build_u2net_like(scratch, size=64), "matting", name="tiny cutout").id


def session_settings(llm_dir: Path) -> dict[str, Any]:
    """Settings of the session server: Whisper tiny.en, the shipped Piper voice, a tiny chat model."""
    return {
        "assistant": {
            "asr_model": "whisper-tiny-en-shipped",
            "language": "en",
            "llm_backend": "transformers",
            "llm_model": str(llm_dir),
            "max_new_tokens": 8,
            "temperature": 0.0,
            "system_prompt": "You are a test.",
        },
        "face_swap": {"consent_accepted": True},
    }


@pytest.fixture(scope="session", name="api_server")
def api_server_fixture(tiny_chat_llm_dir: Path) -> Iterator[ApiServer]:
    """The session's server (upload limit :data:`UPLOAD_LIMIT_MB`), stopped when the session ends."""
    home = Path(tempfile.mkdtemp(prefix="snowai-api-"))
    tiny = import_tiny_matting(home / "models", home / "tiny-matting.onnx")
    server = start_server(home, session_settings(tiny_chat_llm_dir), "--max-upload-mb", str(UPLOAD_LIMIT_MB))
    server.tiny_matting = tiny
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def one_sentence(message: str) -> bool:
    """A message a user can read: one line, ending like a sentence, no traceback."""
    return (
        bool(message)
        and "\n" not in message.strip()
        and "Traceback" not in message
        and message.rstrip().endswith((".", "!", "?", ")"))
    )
