"""Language models served by a local OpenAI-compatible chat server: Ollama, llama.cpp's server, LM
Studio (no Qt)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from workers.assistant.llm import CancelCheck, ChatMessage, _first_line, _StopFilter, approx_token_count
from workers.errors import UserError

log = logging.getLogger(__name__)


def normalize_server_url(url: str) -> str:
    """The API base URL: trailing slashes dropped, ``/v1`` added to a bare host."""
    url = (url or "").strip()
    if not url:
        raise UserError("No language model server URL is set; enter one such as http://127.0.0.1:11434/v1.")
    if "://" not in url:
        url = "http://" + url
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"{url} is not a server URL; enter one such as http://127.0.0.1:11434/v1.")
    url = url.rstrip("/")
    if parsed.path in ("", "/"):
        url += "/v1"
    return url


def _opener() -> urllib.request.OpenerDirector:
    # Only the configured URL: no proxies from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _server_down(url: str) -> UserError:
    return UserError(
        f"No language model server answers at {url}. Start Ollama (ollama serve), the llama.cpp server or "
        "LM Studio's local server, or correct the server URL in the settings."
    )


def _http_error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except Exception:
        body = ""
    message = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        data = json.loads(body)
        err = data.get("error", data)
        message = err.get("message") if isinstance(err, dict) else str(err)
    if not message:
        message = body.strip().splitlines()[0] if body.strip() else (exc.reason or "")
    return str(message).strip()


def _open_error(url: str, exc: BaseException) -> UserError:
    if isinstance(exc, urllib.error.HTTPError):
        return UserError(
            f"The language model server at {url} answered with an error (HTTP {exc.code}): "
            f"{_http_error_text(exc) or exc.reason}."
        )
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return UserError(f"The language model server at {url} did not answer in time.")
    if isinstance(reason, (ConnectionRefusedError, ConnectionResetError, socket.gaierror, OSError)):
        return _server_down(url)
    return UserError(f"The language model server at {url} could not be reached: {_first_line(exc)}.")


def list_server_models(url: str, *, timeout: float = 5.0) -> list[str]:
    """The model names an OpenAI-compatible server offers (GET {url}/models)."""
    base = normalize_server_url(url)
    request = urllib.request.Request(base + "/models", headers={"Accept": "application/json"})
    try:
        with _opener().open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise _open_error(base, exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise _open_error(base, exc) from None
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise UserError(f"The server at {base} is not an OpenAI-compatible language model server.") from None
    items = data.get("data") if isinstance(data, dict) else data
    if items is None and isinstance(data, dict):
        items = data.get("models")
    names: list[str] = []
    for item in items or []:
        if isinstance(item, dict):
            name = item.get("id") or item.get("name") or item.get("model")
            if name:
                names.append(str(name))
        elif isinstance(item, str):
            names.append(item)
    return names


def _model_matches(wanted: str, available: str) -> bool:
    return wanted == available or f"{wanted}:latest" == available or wanted == available.split("/")[-1]


_END = object()


class OpenAIServerLM:
    """A local OpenAI-compatible chat server (Ollama, llama.cpp server, LM Studio)."""

    backend = "openai"
    note = ""

    def __init__(
        self,
        url: str,
        model: str = "",
        *,
        check: bool = True,
        timeout: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        self.url = normalize_server_url(url)
        self.timeout = timeout
        self.api_key = api_key if api_key is not None else os.environ.get("SNOWAI_LLM_API_KEY", "")
        self.model = model.strip()
        self.last_stats: dict[str, float] = {}
        if check:
            self._check()
        self.name = self.model or "server default"

    def _check(self) -> None:
        names = list_server_models(self.url)
        if not self.model:
            if not names:
                raise UserError(
                    f"The server at {self.url} offers no models; download one first "
                    "(for Ollama: ollama pull qwen2.5:3b)."
                )
            self.model = names[0]
            return
        if names and not any(_model_matches(self.model, n) for n in names):
            raise UserError(self._missing_model_text(names))

    def _missing_model_text(self, names: Sequence[str]) -> str:
        listed = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
        text = f"The server at {self.url} has no model called {self.model}"
        if names:
            text += f"; it offers: {listed}"
        return text + f". Download it first (for Ollama: ollama pull {self.model}) or choose one of its models."

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int = 120,
        temperature: float = 0.7,
        cancel: CancelCheck | None = None,
    ) -> Iterator[str]:
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "max_tokens": int(max_new_tokens),
            "temperature": max(0.0, float(temperature)),
        }
        if self.model:
            body["model"] = self.model
        return self._stream(body, cancel)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _connect(self) -> tuple[Any, str]:
        import http.client

        parsed = urllib.parse.urlparse(self.url)
        factory = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        conn = factory(parsed.hostname or "127.0.0.1", parsed.port, timeout=self.timeout)
        return conn, (parsed.path.rstrip("/") or "") + "/chat/completions"

    def _stream(self, body: dict[str, Any], cancel: CancelCheck | None) -> Iterator[str]:
        t0 = time.perf_counter()
        self.last_stats = stats = {}
        lines: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        conn, path = self._connect()
        payload = json.dumps(body).encode("utf-8")

        def reader() -> None:
            try:
                conn.request("POST", path, body=payload, headers=self._headers())
                response = conn.getresponse()
                if response.status >= 400:
                    raise urllib.error.HTTPError(
                        self.url + "/chat/completions", response.status, response.reason, response.headers, response
                    )
                for raw in response:
                    if stop.is_set():
                        break
                    lines.put(raw)
            except BaseException as exc:  # handed to the consumer
                if not stop.is_set():
                    lines.put(exc)
            finally:
                lines.put(_END)
                with contextlib.suppress(Exception):
                    conn.close()

        thread = threading.Thread(target=reader, name="llm-server-stream", daemon=True)
        thread.start()
        filt = _StopFilter(())
        text = ""
        n = 0
        finished = False
        try:
            while True:
                if cancel is not None and cancel():
                    return
                try:
                    item = lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise self._error(item) from None
                line = item.decode("utf-8", "replace").strip()
                if not line or line.startswith(":") or not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    finished = True
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    log.debug("unreadable server event: %r", payload[:200])
                    continue
                if isinstance(chunk, dict) and chunk.get("error"):
                    err = chunk["error"]
                    message = err.get("message") if isinstance(err, dict) else str(err)
                    raise UserError(f"The language model server at {self.url} reported an error: {message}.")
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                if not choices:
                    continue
                choice = choices[0]
                piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                if piece:
                    if n == 0:
                        stats["first_token_ms"] = (time.perf_counter() - t0) * 1000.0
                    n += 1
                    text += piece
                    delta = filt.feed(text)
                    if delta:
                        yield delta
                if choice.get("finish_reason"):
                    finished = True
            delta = filt.finish(text)
            if delta:
                yield delta
        finally:
            stop.set()
            stats["tokens"] = float(n)
            if not finished:
                # Unblock the reader at once (closing the response would wait for its next line).
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _error(self, exc: BaseException) -> UserError:
        if isinstance(exc, UserError):
            return exc
        if isinstance(exc, urllib.error.HTTPError) and exc.code == 404 and self.model:
            try:
                names = list_server_models(self.url, timeout=3.0)
            except UserError:
                names = []
            if names and not any(_model_matches(self.model, n) for n in names):
                return UserError(self._missing_model_text(names))
            text = _http_error_text(exc)
            if "not found" in text.lower() and "model" in text.lower():
                return UserError(self._missing_model_text(names))
            return UserError(
                f"The server at {self.url} has no chat completions endpoint (HTTP 404: {text or 'not found'}); "
                "check the URL (it usually ends in /v1)."
            )
        return _open_error(self.url, exc)

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)

    def close(self) -> None:
        pass
