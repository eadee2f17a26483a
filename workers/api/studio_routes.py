"""The studio's own routes (multipart uploads) and the jobs of long files.

- ``POST /v1/images/remove-background``: field ``image``; the options of ``snowai-studio remove-bg``;
  PNG or WebP with alpha (or JPEG on a background).
- ``POST /v1/images/face-swap``: fields ``source`` (one or more photos of the face) and ``target``
  (an image; a video only as a job); needs the terms accepted in the studio; always marked.
- ``POST /v1/audio/voice-conversion``: field ``file``; the voice model (or the built-in voice changer),
  pitch and formant; audio out.
- ``job=true`` on these and on the transcription routes answers 202 with a job; ``GET /v1/jobs/{id}``
  says its progress, ``POST /v1/jobs/{id}/cancel`` stops it, ``GET /v1/jobs/{id}/result`` gives the
  result, ``DELETE /v1/jobs/{id}`` forgets it and its files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response

from workers.api import studio
from workers.api.app import ApiError, run_blocking, save_upload
from workers.api.jobs import Job, JobResult
from workers.api.routes import _ctx, job_accepted, result_response
from workers.errors import UserError


def install(app: FastAPI) -> None:
    def limit(request: Request) -> int:
        return int(request.app.state.upload_limit)

    @app.post("/v1/images/remove-background")
    async def remove_background(
        request: Request,
        image: Annotated[UploadFile | None, File()] = None,
        model: str = Form("default"),
        alpha_matting: bool = Form(False),
        foreground_threshold: int = Form(240),
        background_threshold: int = Form(10),
        erode_size: int = Form(10),
        bg: str = Form("transparent"),
        format: str = Form("png"),
        post_process: bool = Form(False),
        mask_only: bool = Form(False),
        job: bool = Form(False),
    ) -> Response:
        ctx = _ctx(request)
        options = studio.MattingRequest(
            model,
            alpha_matting,
            foreground_threshold,
            background_threshold,
            erode_size,
            bg,
            format,
            post_process,
            mask_only,
        )
        _check_bg(bg)
        folder = studio.scratch_dir()
        try:
            path = await save_upload(image, "image", folder, limit(request))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if job:

            def job_work(job: Job) -> JobResult:
                data, media = studio.remove_background(ctx, path, options)
                out = folder / f"{path.stem}-nobg.{media.split('/')[1].replace('jpeg', 'jpg')}"
                out.write_bytes(data)
                return JobResult(media, path=out)

            return job_accepted(request.app.state.jobs.submit("remove-background", job_work, folder))
        try:
            data, media = await run_blocking(studio.remove_background, ctx, path, options)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Response(data, media_type=media)

    @app.post("/v1/images/face-swap")
    async def face_swap(
        request: Request,
        source: Annotated[list[UploadFile] | None, File()] = None,
        target: Annotated[UploadFile | None, File()] = None,
        engine: str = Form("auto"),
        many_faces: bool = Form(False),
        mouth_mask: bool = Form(False),
        format: str = Form("png"),
        job: bool = Form(False),
    ) -> Response:
        ctx = _ctx(request)
        await run_blocking(studio.check_consent, ctx)  # before anything is uploaded to disk
        if not source:
            raise UserError("The file field 'source' is missing: send one or more photos of the face to put in.")
        if len(source) > 8:
            raise UserError("Send at most 8 source photos.")
        folder = studio.scratch_dir()
        try:
            sources = [await save_upload(s, "source", folder, limit(request)) for s in source]
            target_path = await save_upload(target, "target", folder, limit(request))
            is_video = await run_blocking(studio.target_is_video, target_path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        out_dir = folder / "out"
        out_dir.mkdir()

        def work(job: Job | None = None) -> tuple[Path, list[str]]:
            return studio.face_swap(
                ctx,
                sources,
                target_path,
                out_dir,
                engine=engine,
                many_faces=many_faces,
                mouth_mask=mouth_mask,
                fmt=format,
                progress=job.report if job else None,
                cancel=job.cancelled if job else None,
            )

        if job:

            def job_work(job: Job) -> JobResult:
                saved, notes = work(job)
                job.notes = notes
                return JobResult(_media_of(saved), path=saved)

            return job_accepted(request.app.state.jobs.submit("face-swap", job_work, folder))
        if is_video:
            shutil.rmtree(folder, ignore_errors=True)
            raise UserError("The target is a video, a long file: send it again with job=true and fetch the result.")
        try:
            saved, notes = await run_blocking(work)
            data = saved.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        headers = {"X-SnowAI-Notes": " ".join(notes).encode("ascii", "replace").decode()[:500]} if notes else {}
        return Response(data, media_type=_media_of(saved), headers=headers)

    @app.post("/v1/audio/voice-conversion")
    async def voice_conversion(
        request: Request,
        file: Annotated[UploadFile | None, File()] = None,
        model: str = Form("default"),
        pitch: float = Form(0.0),
        formant: float = Form(0.0),
        f0: str | None = Form(None),
        format: str = Form("wav"),
        job: bool = Form(False),
    ) -> Response:
        ctx = _ctx(request)
        options = await run_blocking(studio.converter_options, ctx, model, pitch, formant, f0)
        if format.strip().lower() not in studio.AUDIO_FORMATS:
            raise UserError(f"Unknown format {format!r}; choose {', '.join(studio.AUDIO_FORMATS)}.")
        folder = studio.scratch_dir()
        try:
            path = await save_upload(file, "file", folder, limit(request))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        out_dir = folder / "out"
        out_dir.mkdir()

        def work(job: Job | None = None) -> Path:
            return studio.convert_voice(
                ctx,
                path,
                out_dir,
                options,
                fmt=format,
                progress=job.report if job else None,
                cancel=job.cancelled if job else None,
            )

        if job:

            def job_work(job: Job) -> JobResult:
                saved = work(job)
                return JobResult(studio.AUDIO_FORMATS[saved.suffix.lstrip(".")], path=saved)

            return job_accepted(request.app.state.jobs.submit("voice-conversion", job_work, folder))
        try:
            saved = await run_blocking(work)
            data = saved.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Response(data, media_type=studio.AUDIO_FORMATS[saved.suffix.lstrip(".")])

    # ---- jobs -------------------------------------------------------------------------------------------
    def find(request: Request, job_id: str) -> Job:
        try:
            return request.app.state.jobs.get(job_id)
        except KeyError:
            raise ApiError(404, f"There is no job {job_id!r}; it may have been removed.") from None

    @app.get("/v1/jobs")
    async def list_jobs(request: Request) -> dict[str, Any]:
        return {"object": "list", "data": [j.to_dict() for j in request.app.state.jobs.list()]}

    @app.get("/v1/jobs/{job_id}")
    async def get_job(request: Request, job_id: str) -> dict[str, Any]:
        return find(request, job_id).to_dict()

    @app.post("/v1/jobs/{job_id}/cancel")
    async def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
        find(request, job_id)
        return request.app.state.jobs.cancel(job_id).to_dict()

    @app.delete("/v1/jobs/{job_id}")
    async def delete_job(request: Request, job_id: str) -> dict[str, Any]:
        find(request, job_id)
        job = request.app.state.jobs.remove(job_id)
        return {"id": job.id, "object": "job", "deleted": True}

    @app.get("/v1/jobs/{job_id}/result")
    async def job_result(request: Request, job_id: str) -> Response:
        job = find(request, job_id)
        if job.status == "failed":
            raise UserError(job.error or "The job failed.")
        if job.status != "succeeded" or job.result is None:
            raise ApiError(409, f"The job is {job.status}; its result is there once it has succeeded.")
        return result_response(job.result)


def _check_bg(bg: str) -> None:
    """A background image would be a path on the server: only transparent, a colour or blur are taken."""
    text = bg.strip().lower()
    if any(sep in text for sep in ("/", "\\")) or text.endswith((".png", ".jpg", ".jpeg", ".webp")):
        raise UserError("bg takes transparent, a colour (#00ff00, green) or blur (blur:51), not a file.")


def _media_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"mp4": "video/mp4", "jpeg": "image/jpeg"}.get(suffix) or studio.IMAGE_FORMATS.get(
        suffix, "application/octet-stream"
    )
