"""The OpenAI-compatible routes: models, transcriptions and translations, speech, chat completions;
and the server's status."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from workers.api import chat as chat_api
from workers.api import speech
from workers.api.app import ApiError, run_blocking, save_upload, stream_from_thread
from workers.api.context import ServerContext
from workers.api.jobs import Job, JobResult
from workers.api.studio import scratch_dir
from workers.errors import UserError


def _ctx(request: Request) -> ServerContext:
    return request.app.state.ctx


def job_accepted(job: Job) -> JSONResponse:
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def install(app: FastAPI) -> None:
    started = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        rows = await run_blocking(_ctx(request).listed_models)
        return {"object": "list", "data": [_model_row(row, started) for row in rows]}

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> dict[str, Any]:
        rows = await run_blocking(_ctx(request).listed_models)
        for row in rows:
            if row["id"] == model_id:
                return _model_row(row, started)
        raise ApiError(404, f"There is no model called {model_id!r}; GET /v1/models lists them.")

    @app.get("/v1/studio/status")
    async def status(request: Request) -> dict[str, Any]:
        ctx = _ctx(request)
        return {
            "pid": os.getpid(),
            "store": str(ctx.store.root),
            "device": ctx.device,
            "models": ctx.pool.describe(),
            "gpu_models": ctx.pool.gpu_models(),
            "jobs_active": request.app.state.jobs.active(),
        }

    async def audio_route(request: Request, task: str, file: UploadFile | None, fields: dict[str, Any]) -> Response:
        ctx = _ctx(request)
        fmt = (fields["response_format"] or "json").strip().lower()
        if fmt not in speech.TRANSCRIPT_FORMATS:
            raise UserError(f"Unknown response_format {fmt!r}; choose {', '.join(speech.TRANSCRIPT_FORMATS)}.")
        folder = scratch_dir()
        try:
            path = await save_upload(file, "file", folder, request.app.state.upload_limit)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

        def work(job: Job | None = None) -> Any:
            transcript = speech.transcribe(
                ctx,
                path,
                model=fields["model"],
                language=fields["language"],
                task=task,
                progress=job.report if job else None,
                cancel=job.cancelled if job else None,
            )
            return speech.transcript_body(transcript, fmt, task)

        if fields["job"]:

            def job_work(job: Job) -> JobResult:
                body, media = work(job)
                return JobResult(media, text=body)

            return job_accepted(request.app.state.jobs.submit(task, job_work, folder))
        try:
            body, media = await run_blocking(work)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Response(body, media_type=media)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        request: Request,
        file: Annotated[UploadFile | None, File()] = None,
        model: str = Form("default"),
        language: str | None = Form(None),
        prompt: str | None = Form(None),
        response_format: str = Form("json"),
        temperature: float | None = Form(None),
        job: bool = Form(False),
    ) -> Response:
        fields = {"model": model, "language": language, "response_format": response_format, "job": job}
        return await audio_route(request, "transcribe", file, fields)

    @app.post("/v1/audio/translations")
    async def translations(
        request: Request,
        file: Annotated[UploadFile | None, File()] = None,
        model: str = Form("default"),
        prompt: str | None = Form(None),
        response_format: str = Form("json"),
        temperature: float | None = Form(None),
        job: bool = Form(False),
    ) -> Response:
        fields = {"model": model, "language": None, "response_format": response_format, "job": job}
        return await audio_route(request, "translate", file, fields)

    @app.post("/v1/audio/speech")
    async def speak(request: Request) -> Response:
        body = await _json_body(request)
        text = body.get("input")
        if not isinstance(text, str):
            raise UserError("input must be the text to speak.")
        fmt = str(body.get("response_format") or "wav")
        if str(body.get("stream_format") or "audio") != "audio":
            raise UserError("stream_format 'sse' is not offered here; leave it out to get the audio stream.")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or isinstance(speed, bool):
            raise UserError("speed must be a number between 0.25 and 4.0.")
        ctx = _ctx(request)

        def produce(cancelled: Any) -> Iterator[bytes]:
            return speech.speech_stream(
                ctx,
                text,
                model=str(body.get("model") or "default"),
                voice=str(body.get("voice") or "default"),
                fmt=fmt,
                speed=float(speed),
                cancel=cancelled,
            )

        chunks = stream_from_thread(produce)
        first = await anext(chunks)  # a bad voice or text is a 400, not a broken stream

        async def body_iter() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        media = speech.SPEECH_MEDIA_TYPES.get(fmt.strip().lower(), "application/octet-stream")
        return StreamingResponse(body_iter(), media_type=media)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request)
        chat_request = chat_api.parse_request(body)
        if body.get("n", 1) not in (1, None):
            raise UserError("n must be 1: the studio writes one answer per request.")
        ctx = _ctx(request)
        run = chat_api.ChatRun(model=chat_request.model)
        pieces = stream_from_thread(lambda cancelled: chat_api.answer(ctx, chat_request, run, cancelled))
        reply_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not body.get("stream"):
            text = "".join([piece async for piece in pieces])
            return JSONResponse(
                {
                    "id": reply_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": chat_request.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": run.finish_reason,
                            "logprobs": None,
                        }
                    ],
                    "usage": _usage(run),
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            first: str | None = await anext(pieces)  # the model loads before the stream starts
        except StopAsyncIteration:
            first = None

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
            data: dict[str, Any] = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat_request.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
                if delta or finish
                else [],
            }
            if usage is not None:
                data["usage"] = usage
            return f"data: {json.dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                if first is not None:
                    yield chunk({"content": first})
                    async for piece in pieces:
                        yield chunk({"content": piece})
            except UserError as exc:
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
                return
            yield chunk({}, run.finish_reason)
            if include_usage:
                yield chunk({}, None, _usage(run))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _usage(run: chat_api.ChatRun) -> dict[str, int]:
    return {
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "total_tokens": run.prompt_tokens + run.completion_tokens,
    }


def _model_row(row: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "model",
        "created": created,
        "owned_by": "snowai-studio",
        "task": row["task"],
        "name": row["name"],
    }


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise UserError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise UserError("The request body must be a JSON object.")
    return body


def result_response(result: JobResult) -> Response:
    if result.path is not None:
        from fastapi.responses import FileResponse

        return FileResponse(
            result.path, media_type=result.media_type, filename=result.filename or Path(result.path).name
        )
    return Response(result.text or "", media_type=result.media_type)
