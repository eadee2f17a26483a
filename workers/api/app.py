"""The FastAPI application: the routes (see :mod:`workers.api.routes` and :mod:`workers.api.studio_routes`),
the API key, upload limits, and errors as one sentence in OpenAI's error shape::

    {"error": {"message": "speech.wav holds no sound.", "type": "invalid_request_error", "param": null, "code": null}}
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.api.context import ServerContext
from workers.api.jobs import JobQueue
from workers.api.studio import ConsentMissing
from workers.errors import Cancelled, UserError, describe_exception

log = logging.getLogger(__name__)

#: Threads that run blocking work (model calls, file reading) beside the event loop.
WORKER_THREADS = 64
_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 413: "request_too_large"}


class ApiError(Exception):
    """An answer other than 400: a status and a sentence."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = _STATUS_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


# ---- the request body limit (pure ASGI, so it also holds for chunked uploads) ------------------------------
class BodyLimit:
    """Refuse a request whose body is larger than ``limit`` bytes with 413 and a sentence, before it is
    read into memory or onto the disk."""

    def __init__(self, app: ASGIApp, limit: int, shown_mb: int) -> None:
        self.app, self.limit, self.shown_mb = app, limit, shown_mb

    def _sentence(self) -> str:
        return f"The upload is larger than the {self.shown_mb} MB this server accepts."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await error_response(413, self._sentence())(scope, receive, send)
            return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not started:
                    # Answer now; the application sees the client gone and stops reading.
                    refused = True
                    await error_response(413, self._sentence())(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:
                raise


# ---- blocking work and streams ------------------------------------------------------------------------------
async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on a worker thread (the event loop keeps answering other requests)."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter())


_LIMITER: list[anyio.CapacityLimiter] = []


def _limiter() -> anyio.CapacityLimiter:
    if not _LIMITER:
        _LIMITER.append(anyio.CapacityLimiter(WORKER_THREADS))
    return _LIMITER[0]


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


async def stream_from_thread(
    produce: Callable[[Callable[[], bool]], Iterator[Any]], buffer: int = 16
) -> AsyncIterator[Any]:
    """The items of ``produce(cancelled)`` run on a thread of its own (it may hold a model for its whole
    length), at most ``buffer`` items ahead of the client. When the client goes away, ``cancelled()``
    turns true and the producer stops at its next check."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            if room.acquire(timeout=0.2):
                loop.call_soon_threadsafe(queue.put_nowait, item)
                return True
        return False

    def run() -> None:
        try:
            for item in produce(stop.is_set):
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            if not stop.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))

    threading.Thread(target=run, name="api-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            room.release()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()


# ---- uploads ------------------------------------------------------------------------------------------------
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def upload_name(upload: UploadFile, fallback: str) -> str:
    """A plain file name for an upload (its own name without folders or odd characters)."""
    raw = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", raw).strip(" .")[:100]
    return name or fallback


async def save_upload(upload: UploadFile | None, field: str, folder: Path, limit: int) -> Path:
    """Copy an uploaded file into ``folder`` (1 MB at a time, at most ``limit`` bytes); its path."""
    if upload is None or not isinstance(upload, StarletteUpload):
        raise UserError(f"The file field {field!r} is missing: send the file as multipart form data.")
    path = folder / upload_name(upload, field)
    if path.exists():
        path = folder / f"{len(list(folder.iterdir()))}-{path.name}"
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise ApiError(
                    413, f"The upload {field!r} is larger than the {limit // (1024 * 1024)} MB this server accepts."
                )
            out.write(chunk)
    if size == 0:
        raise UserError(f"The upload {field!r} ({path.name}) is empty.")
    return path


# ---- the application ----------------------------------------------------------------------------------------
def _validation_sentence(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "The request is not valid.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
    field = ".".join(loc) or None
    kind = str(first.get("type", ""))
    if kind == "missing":
        return f"The field {field!r} is missing.", field
    message = str(first.get("msg", "is not valid")).rstrip(".")
    if field:
        return f"The field {field!r} is not valid: {message[0].lower() + message[1:]}.", field
    return f"The request is not valid: {message[0].lower() + message[1:]}.", None


def create_app(
    ctx: ServerContext,
    *,
    api_key: str = "",
    max_upload_mb: int = 200,
    jobs: JobQueue | None = None,
) -> FastAPI:
    """The API on ``ctx`` (its settings, store and models)."""
    from workers.api import routes, studio_routes

    job_queue = jobs or JobQueue()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _limiter()  # the thread limit, set on the server's own event loop
        yield
        # The server stops: requests in flight have ended (or timed out); jobs are cancelled.
        ctx.stopping.set()
        await anyio.to_thread.run_sync(job_queue.close)
        await anyio.to_thread.run_sync(ctx.pool.close)

    from workers.api.cli import version

    # The interactive docs pages load their scripts from the internet: only the schema is served.
    app = FastAPI(
        title="SnowAI Studio local API",
        version=version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.jobs = job_queue
    app.state.upload_limit = int(max_upload_mb) * 1024 * 1024

    @app.middleware("http")
    async def check_key(request: Request, call_next: Callable[[Request], Any]) -> Any:
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            token = given[7:].strip() if given.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                return error_response(401, "This server needs its API key: send it as 'Authorization: Bearer KEY'.")
        return await call_next(request)

    @app.exception_handler(ConsentMissing)
    async def on_consent(_request: Request, exc: ConsentMissing) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(UserError)
    async def on_user_error(_request: Request, exc: UserError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(Cancelled)
    async def on_cancelled(_request: Request, _exc: Cancelled) -> JSONResponse:
        return error_response(503, "The request was cancelled because the server is shutting down.")

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _validation_sentence(exc)
        return error_response(400, message, field)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, f"There is no {request.url.path} here; /openapi.json lists the routes.")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not used for {request.url.path}.")
        detail = str(exc.detail or "The request is not valid").rstrip(".")
        if "parsing the body" in detail:
            detail = "The request body could not be read as multipart form data or JSON"
        return error_response(exc.status_code, detail + ".")

    @app.exception_handler(Exception)
    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc)
        return error_response(500, describe_exception(exc, "The request failed"))

    routes.install(app)
    studio_routes.install(app)
    # Room for the form fields beside the largest file.
    app.add_middleware(BodyLimit, limit=app.state.upload_limit + 1024 * 1024, shown_mb=int(max_upload_mb))
    return app
