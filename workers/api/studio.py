"""The studio's own tools for the API: background removal, face swap and voice conversion.

Each runs the engine its command line runs (``remove-bg``, ``face-swap``, ``svc``), loaded once per
server and reused; the face swap keeps its consent rule (accepted once in the studio) and always
marks its results as generated, visibly and in their metadata.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.api.context import ServerContext
from workers.errors import UserError

IMAGE_FORMATS = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
AUDIO_FORMATS = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}

CONSENT_NEEDED = (
    "Face swap through the local API needs the responsible-use terms accepted once in the studio "
    "(Settings → Local API, or the face swap page): use only faces of people who agreed to it."
)


class ConsentMissing(UserError):
    """The face swap's terms were not accepted in the studio (answered with 403)."""


@dataclass
class MattingRequest:
    model: str = "default"
    alpha_matting: bool = False
    foreground_threshold: int = 240
    background_threshold: int = 10
    erode_size: int = 10
    bg: str = "transparent"
    fmt: str = "png"
    post_process: bool = False
    mask_only: bool = False


# ---- background removal -------------------------------------------------------------------------------
def matting_model(ctx: ServerContext, requested: str | None) -> str:
    from workers.matting.options import DEFAULT_MODEL, spec_for

    name = DEFAULT_MODEL if ctx.is_default(requested, "remove-background") else str(requested).strip()
    spec = spec_for(name)
    if spec is not None:
        name = spec.manifest_id  # u2netp and rembg-u2netp are one model, loaded once
    return ctx.store_model(name, "remove-background", "background-removal model")


def remove_background(ctx: ServerContext, path: Path, request: MattingRequest) -> tuple[bytes, str]:
    """The cutout (or composite, or mask) of an image file, encoded; and its media type."""
    from workers.matting.batch import render
    from workers.matting.compose import parse_background
    from workers.matting.options import MattingOptions, coerce_option
    from workers.media.imageio import encode_image, load_image

    fmt = request.fmt.strip().lower().replace("jpeg", "jpg")
    if fmt not in IMAGE_FORMATS:
        raise UserError(f"Unknown format {request.fmt!r}; choose png, webp (both keep transparency) or jpg.")
    model = matting_model(ctx, request.model)
    background = parse_background(request.bg)
    values = {
        "alpha_matting": request.alpha_matting,
        "foreground_threshold": coerce_option("foreground_threshold", request.foreground_threshold),
        "background_threshold": coerce_option("background_threshold", request.background_threshold),
        "erode_size": coerce_option("erode_size", request.erode_size),
        "post_process": request.post_process,
        "mask_only": request.mask_only,
    }

    def load() -> Any:
        from workers.matting.engine import MattingEngine

        engine = MattingEngine(ctx.store, MattingOptions(model=model), device=ctx.device)
        engine.load()
        return engine

    with ctx.pool.use(("remove-background", model), load) as engine:
        # Decoded only once its turn comes: requests waiting for the model hold files, not pixels.
        image = load_image(path)
        for name, value in values.items():
            engine.set_param(name, value)
        result = render(engine, image, background)
    return encode_image(result, fmt), IMAGE_FORMATS[fmt]


# ---- face swap ------------------------------------------------------------------------------------------
def check_consent(ctx: ServerContext) -> None:
    if not ctx.reload_settings().face_swap.consent_accepted:
        raise ConsentMissing(CONSENT_NEEDED)


def _pipeline_loader(ctx: ServerContext, engine: str) -> Callable[[], Any]:
    def load() -> Any:
        from workers.face_swap.cli import build_options
        from workers.face_swap.pipeline import FaceSwapPipeline

        args = argparse.Namespace(
            preset="gpu" if ctx.device == "cuda" else "cpu",
            engine=engine,
            many_faces=False,
            mouth_mask=False,
            no_mark=False,
            pixel_boost=1,
            occlusion_mask=False,
            face_regions="",
            enhancer_blend=0.8,
            enhancer_fidelity=0.5,
            swapper=None,
            enhance=None,
        )
        pipeline = FaceSwapPipeline(ctx.store, build_options(args, ctx.store), device=ctx.device)
        pipeline.load()
        return pipeline

    return load


def face_swap(
    ctx: ServerContext,
    sources: list[Path],
    target: Path,
    out_dir: Path,
    *,
    engine: str = "auto",
    many_faces: bool = False,
    mouth_mask: bool = False,
    fmt: str = "png",
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], Any] | None = None,
) -> tuple[Path, list[str]]:
    """Swap the source face into an image or video file; the marked result's path and the notes."""
    from workers.face_swap import cli as face_cli

    check_consent(ctx)
    if engine not in ("auto", "insightface", "classic"):
        raise UserError(f"Unknown face swap engine {engine!r}; choose auto, insightface or classic.")
    kind = face_cli.target_kind(target)
    if kind == "image":
        fmt = fmt.strip().lower().replace("jpeg", "jpg")
        if fmt not in IMAGE_FORMATS:
            raise UserError(f"Unknown format {fmt!r}; choose png, webp or jpg.")
        output = out_dir / f"swapped.{fmt}"
    else:
        output = out_dir / "swapped.mp4"
    with ctx.pool.use(("face-swap", engine), _pipeline_loader(ctx, engine)) as pipeline:
        pipeline.set_param("target", "all" if many_faces else "largest")
        pipeline.set_param("mouth_mask", bool(mouth_mask))
        pipeline.set_param("mark", True)  # the visible mark always applies to what leaves the studio
        notes = [pipeline.warning] if pipeline.warning else []

        def check() -> None:
            if ctx.stopping.is_set() or (cancel is not None and cancel()):
                from workers.errors import Cancelled

                raise Cancelled()

        face_cli.prepare_source(pipeline, sources, check)
        if kind == "image":
            result, saved = face_cli.swap_image_file(pipeline, target, output, marked=True)
            notes += list(getattr(result, "notes", None) or [])
            notes.append(f"Swapped {result.faces_swapped} of {result.faces_found} faces ({pipeline.engine_name}).")
        else:
            saved = face_cli.swap_video_file(
                pipeline, target, output, marked=True, progress=progress, cancel=lambda: check() or False
            )
    return Path(saved), [n for n in notes if n]


def target_is_video(target: Path) -> bool:
    from workers.face_swap.cli import target_kind

    return target_kind(target) == "video"


# ---- voice conversion -----------------------------------------------------------------------------------
def converter_options(ctx: ServerContext, model: str | None, pitch: float, formant: float, f0: str | None) -> Any:
    from workers.voice_conversion.options import F0_METHODS, VoiceConversionOptions

    options = ctx.reload_settings().options(VoiceConversionOptions)
    chosen = VoiceConversionOptions(
        model=options.model, config=options.config, index=options.index, index_ratio=options.index_ratio
    )
    name = (model or "").strip()
    if name in ("builtin", "voice-changer"):
        chosen.model, chosen.config, chosen.index = "", "", ""
    elif not ctx.is_default(name, "voice-conversion"):
        chosen.model = ctx.store_model(name, "voice-conversion", "voice model")
        chosen.config, chosen.index = "", ""
    for what, value in (("pitch", pitch), ("formant", formant)):
        if not -24.0 <= value <= 24.0:
            raise UserError(f"{what} must be between -24 and 24 semitones.")
    chosen.pitch, chosen.formant = float(pitch), float(formant)
    if f0:
        method = "crepe-full" if f0 == "crepe" else f0
        if method not in F0_METHODS:
            raise UserError(f"Unknown pitch estimator {f0!r}; choose {', '.join(F0_METHODS)}.")
        chosen.f0_method = method
    return chosen


def convert_voice(
    ctx: ServerContext,
    path: Path,
    out_dir: Path,
    options: Any,
    *,
    fmt: str = "wav",
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Convert a sound file with the voice the options name; the converted file's path."""
    from workers.voice_conversion.converter import converter_params, load_converter
    from workers.voice_conversion.files import convert_file

    kind = fmt.strip().lower()
    if kind not in AUDIO_FORMATS:
        raise UserError(f"Unknown format {fmt!r}; choose {', '.join(AUDIO_FORMATS)}.")
    device = "cuda" if ctx.device == "cuda" else "cpu"

    def load() -> Any:
        return load_converter(options, store=ctx.store, device=device)

    def stop() -> bool:
        return ctx.stopping.is_set() or bool(cancel and cancel())

    with ctx.pool.use(("voice-conversion", options.model or "voice-changer"), load) as converter:
        converter.set_params(**converter_params(options))
        return convert_file(path, out_dir / f"converted.{kind}", converter, progress=progress, cancel=stop)


def scratch_dir(prefix: str = "snowai-api-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
