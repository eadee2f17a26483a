"""``snowai-studio face-swap``: the face swap from a terminal, and the file jobs the studio shares.

    snowai-studio face-swap --source FACE.jpg [--source MORE.jpg] --target IMAGE|VIDEO -o OUT
        [--engine auto|insightface|classic] [--many-faces] [--mouth-mask] [--enhance] [--no-mark]

The target is an image or a video, told apart by its content. A progress bar is drawn on stderr;
the output path is printed on stdout (exit 0). Every failure is one sentence on stderr (exit 1):
no face in a source photo, an unreadable target, a model missing for ``--engine insightface`` or
``--enhance``. The first run prints a short responsible-use notice (no prompt: this is for batch work).

The functions above :func:`add_parser` read photos, swap an image or a video file and save the
result; the Qt worker runs the same ones on its thread. No Qt here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from workers.cli import EXIT_OK, add_store_argument, run_reporting
from workers.cli import open_store as _store
from workers.errors import UserError
from workers.face_swap.options import ENHANCERS, FaceSwapOptions, SourceFace, SwapResult
from workers.files import free_name, same_file
from workers.progress import ProgressBar

log = logging.getLogger(__name__)


NOTICE = (
    "Face swap: use it only with the consent of the people whose faces you use, and never to deceive, "
    "harass or impersonate anyone. Results carry an 'AI-generated' mark and say in their metadata that "
    "they were generated (--no-mark removes both; please keep them when you publish). "
    "This notice is shown once."
)
_NOTICE_MARKER = "face-swap-notice-shown"


# ---- file jobs shared with the worker -----------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as BGR uint8 (EXIF orientation applied); a UserError sentence when unreadable."""
    from workers.media.imageio import load_image

    return load_image(Path(path).expanduser()).bgr


def save_result(path: Path, bgr: np.ndarray, *, marked: bool, model: str = "") -> Path:
    """Save a swapped image atomically; when ``marked``, with the generated-image label in its
    metadata and signed Content Credentials naming the face swap and ``model``."""
    if marked:
        from workers.face_swap.mark import save_marked_image

        return save_marked_image(path, bgr, credentials=credentials_for(path, model))
    from workers.media.imageio import save_image

    return save_image(path, bgr)


def no_face_sentence(path: Path) -> str:
    return f"No face was found in {path.name}; choose a photo where the face is clear, frontal and well lit."


def read_source(path: Path, pipeline: Any = None, check: Callable[[], Any] | None = None) -> list[np.ndarray]:
    """The pictures a source file gives: a photo, or the most different views of a short video."""
    from workers.media.imageio import is_image_file

    path = Path(path).expanduser()
    if not path.is_file() or is_image_file(path):
        return [read_image(path)]
    from workers.face_swap.sources import VIDEO_VIEWS, pick_views, video_frames

    frames = video_frames(path, check=check)
    detect = getattr(pipeline, "detect", None)
    if not callable(detect):
        return frames[:: max(1, len(frames) // VIDEO_VIEWS)][:VIDEO_VIEWS]
    return pick_views(frames, detect)


def prepare_source(
    pipeline: Any, paths: Sequence[Path], check: Callable[[], Any] | None = None
) -> tuple[SourceFace, list[np.ndarray]]:
    """Read the photos (or short videos) and hand them to the pipeline as the source face; returns it
    and the pictures used.

    A UserError sentence names the photo that cannot be read or shows no face.
    """
    if not paths:
        raise UserError("Choose at least one photo of the face to use.")
    images: list[np.ndarray] = []
    owners: list[Path] = []
    for path in paths:
        if check is not None:
            check()
        pictures = read_source(Path(path), pipeline, check)
        images.extend(pictures)
        owners.extend([Path(path)] * len(pictures))
    try:
        source = pipeline.set_source(images)
    except UserError:
        detect = getattr(pipeline, "detect", None)
        if callable(detect):
            for path, image in zip(owners, images, strict=True):  # name the photo without a face
                if check is not None:
                    check()
                if not detect(image):
                    raise UserError(no_face_sentence(Path(path))) from None
        raise
    return source, images


def credentials_for(path: Path, model: str) -> dict[str, Any]:
    """The Content Credentials manifest of a face-swap export."""
    from workers import provenance

    return provenance.manifest("face swap", action="c2pa.edited", model=model, title=Path(path).name)


def model_of(pipeline: Any) -> str:
    """Which model swapped the faces: the swapper's id, or the classic engine."""
    engine = getattr(pipeline, "engine", None)
    return str(getattr(engine, "swapper_id", None) or getattr(engine, "name", "") or "")


def add_credentials(path: Path, model: str) -> None:
    """Sign a saved video or image in place; a file that cannot carry them is left as it is (logged)."""
    from workers import provenance

    if provenance.mime_type(path) is None:
        log.info("%s cannot carry content credentials; it keeps its generated-video tags", path.name)
        return
    try:
        provenance.sign_file(path, credentials_for(path, model))
    except UserError as exc:
        log.warning("%s was saved without content credentials: %s", path.name, exc)


def swap_image_file(pipeline: Any, src: Path, dst: Path, *, marked: bool) -> tuple[SwapResult, Path]:
    """Swap the faces of one image file into ``dst`` (never over ``src``).

    When every face was left alone because no source photo fits it, nothing is saved: the sentence
    naming the photo to add is the error.
    """
    if same_file(src, dst):
        raise UserError(f"{dst.name} is the image you chose; save the result under another name.")
    image = read_image(src)
    result = pipeline.swap_image(image)
    if result.faces_found == 0:
        raise UserError(f"No face was found in {src.name}; nothing was swapped and nothing was saved.")
    notes = list(getattr(result, "notes", None) or [])
    if result.faces_swapped == 0 and notes:
        raise UserError(f"{' '.join(notes)} Nothing was saved.")
    return result, save_result(dst, result.image, marked=marked, model=model_of(pipeline))


def swap_video_file(
    pipeline: Any,
    src: Path,
    dst: Path,
    *,
    marked: bool,
    progress: Callable[[int, int], Any] | None = None,
    cancel: Callable[[], Any] | None = None,
) -> Path:
    """Swap the faces of every frame of ``src`` into ``dst``: frame rate, frame times and audio kept,
    the generated-video tags in the container when ``marked``. ``cancel`` may return true or raise
    :class:`~workers.errors.Cancelled`; a cancelled or failed run leaves no file behind."""
    from workers.face_swap.mark import GENERATED_METADATA
    from workers.media.video import process_video

    if same_file(src, dst):
        raise UserError(f"{dst.name} is the video you chose; save the result under another name.")

    def frame_fn(bgr: np.ndarray) -> np.ndarray:
        return pipeline.swap_image(bgr).image

    # A video goes on with the closest source photo where none fits (a face that comes and goes
    # would flicker); the pipeline says once which photo is missing.
    strict = getattr(pipeline, "strict_views", None)
    if strict is not None:
        pipeline.strict_views = False
    try:
        out = process_video(
            src, dst, frame_fn, progress=progress, cancel=cancel, metadata=dict(GENERATED_METADATA) if marked else None
        )
        if marked:
            add_credentials(Path(out), model_of(pipeline))
        return out
    finally:
        if strict is not None:
            pipeline.strict_views = strict


def target_kind(path: Path) -> str:
    """ "image" or "video", by the file's content; a UserError sentence when it is neither."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"The target {path} was not found.")
    if path.is_dir():
        raise UserError(f"The target {path} is a folder; choose an image or a video file.")
    from workers.media.imageio import is_image_file

    if is_image_file(path):
        return "image"  # an animated image counts as one picture: its first frame
    from workers.media.video import probe_video

    try:
        probe_video(path)
    except UserError:
        raise UserError(
            f"{path.name} could not be read as an image or a video: the file may be damaged, or in a format "
            "the studio does not know."
        ) from None
    return "video"


def image_output(target: Path, out: Path, *, marked: bool) -> Path:
    """Where a swapped image goes: ``out`` itself, or ``<target>-swapped<suffix>`` in a folder ``out``."""
    from workers.face_swap.mark import MARKED_FORMATS

    suffix = target.suffix.lower() if target.suffix.lower() in MARKED_FORMATS else ".png"
    if out.is_dir():
        out = free_name(out / f"{target.stem}-swapped{suffix}", target)
    elif not out.suffix:
        out = out.with_suffix(suffix)
    if out.suffix.lower() not in MARKED_FORMATS:
        raise UserError(f"{out.name}: save the swapped image as PNG, JPEG or WebP (.png, .jpg, .webp).")
    return out


def video_output(target: Path, out: Path) -> Path:
    """Where a swapped video goes: ``out`` itself, or ``<target>-swapped.mp4`` in a folder ``out``."""
    from workers.media.video import output_format

    if out.is_dir():
        out = free_name(out / f"{target.stem}-swapped.mp4", target)
    elif not out.suffix:
        out = out.with_suffix(".mp4")
    output_format(out)  # a sentence for a suffix videos cannot be saved with
    return out


def installed_enhancer(store: Any) -> str | None:
    """The first face enhancer in the store (GFPGAN 1.4, then GPEN-BFR 512), or None."""
    for model_id in ENHANCERS:
        try:
            if store.state(model_id).usable:
                return model_id
        except UserError:
            continue
    return None


def _model_names(store: Any, ids: Sequence[str]) -> str:
    names = []
    for model_id in ids:
        try:
            names.append(f"{store.get(model_id).name} ({model_id})")
        except UserError:
            names.append(model_id)
    return " and ".join(names)


# ---- the command ----------------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> None:
    """Add the ``face-swap`` command to an argparse sub-parser set."""
    parser = subparsers.add_parser(
        "face-swap",
        help="swap a face into an image or a video",
        description="Put the face of the source photos onto the faces of an image or a video. Use it only "
        "with the consent of the people shown.",
    )
    _fill(parser)


def _fill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        dest="sources",
        action="append",
        required=True,
        type=Path,
        metavar="FACE",
        help="a photo of the face to put in, or a short video of it (repeat for several photos of the same "
        "person: each target face gets the photo whose head pose fits it best)",
    )
    parser.add_argument(
        "--target", required=True, type=Path, metavar="IMAGE|VIDEO", help="the image or video to change"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT", help="the output file (or a folder for it)"
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "insightface", "classic"),
        default="auto",
        help="insightface (needs its models from the model manager), classic (dlib, offline) or auto (default)",
    )
    parser.add_argument("--many-faces", action="store_true", help="swap every face (default: the largest one)")
    parser.add_argument("--mouth-mask", action="store_true", help="keep the target's own mouth")
    parser.add_argument(
        "--enhance",
        nargs="?",
        const="auto",
        default=None,
        metavar="MODEL",
        help="restore detail with a face enhancer (the first installed, or gfpgan-1.4, gpen-bfr-512, "
        "gpen-bfr-1024, codeformer)",
    )
    parser.add_argument("--enhancer-blend", type=float, default=0.8, metavar="0..1", help="how much of it shows")
    parser.add_argument(
        "--enhancer-fidelity", type=float, default=0.5, metavar="0..1", help="CodeFormer: 0 restores most, 1 least"
    )
    parser.add_argument(
        "--swapper",
        default=None,
        metavar="MODEL",
        help="the swapper model (inswapper-128, hyperswap-1a-256, simswap-256, simswap-unofficial-512, "
        "uniface-256...; default: the first installed)",
    )
    parser.add_argument(
        "--pixel-boost", type=int, choices=(1, 2, 3), default=1, help="paint the face 2 or 3 times sharper (slower)"
    )
    parser.add_argument(
        "--occlusion-mask", action="store_true", help="keep hands, hair and glasses in front (XSeg model)"
    )
    parser.add_argument(
        "--face-regions", default="", metavar="LIST", help="swap only these regions: skin, brows, eyes, glasses, "
        "nose, mouth, lips (BiSeNet model)"
    )
    parser.add_argument(
        "--no-mark", action="store_true", help="leave out the visible 'AI-generated' label and the metadata"
    )
    parser.add_argument("--preset", choices=("cpu", "gpu"), default="cpu", help=argparse.SUPPRESS)
    add_store_argument(parser)
    parser.set_defaults(func=run)


def show_notice_once(err: TextIO) -> bool:
    """Print the responsible-use notice on the first run; True when it was printed."""
    from workers import paths

    marker = paths.config_dir() / _NOTICE_MARKER
    if marker.exists():
        return False
    err.write(NOTICE + "\n")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("The face-swap responsible-use notice was shown.\n", encoding="utf-8")
    except OSError as exc:
        log.info("could not remember the notice: %s", exc)
    return True


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed ``face-swap`` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    return run_reporting("face-swap", lambda: _run(args, out, err), err, cancelled="\nCancelled; nothing was saved.\n")


def build_options(args: argparse.Namespace, store: Any) -> FaceSwapOptions:
    """The options a command line asks for; a UserError sentence for a model it lacks."""
    from workers.face_swap.options import engine_status

    options = FaceSwapOptions.for_preset(
        args.preset,
        engine=args.engine,
        target="all" if args.many_faces else "largest",
        mouth_mask=bool(args.mouth_mask),
        mark=not args.no_mark,
        pixel_boost=args.pixel_boost,
        occlusion_mask=bool(args.occlusion_mask),
        face_regions=args.face_regions,
        enhancer_blend=args.enhancer_blend,
        enhancer_fidelity=args.enhancer_fidelity,
    )
    if args.swapper:
        options.swapper = _checked_swapper(store, args.swapper)
    if args.engine == "insightface":
        status = engine_status(store, args.preset)
        if not status.insightface_ready:
            ids = status.missing
            raise UserError(
                f"--engine insightface needs {_model_names(store, ids)}: download "
                f"{'them' if len(ids) > 1 else 'it'} in the model manager or with "
                f"snowai-studio models download {ids[0]} (or use --engine classic)."
            )
    if args.enhance and args.enhance != "auto":
        if args.enhance not in ENHANCERS:
            raise UserError(f"--enhance takes one of {', '.join(ENHANCERS)}, not {args.enhance!r}.")
        if not store.state(args.enhance).usable:
            raise UserError(
                f"--enhance {args.enhance} needs {_model_names(store, [args.enhance])}: download it with "
                f"snowai-studio models download {args.enhance}."
            )
        options.enhancer = args.enhance
    elif args.enhance:
        enhancer = installed_enhancer(store)
        if enhancer is None:
            raise UserError(
                f"--enhance needs a face enhancer model, {_model_names(store, ENHANCERS).replace(' and ', ' or ')}: "
                f"download one in the model manager or with snowai-studio models download {ENHANCERS[0]}."
            )
        options.enhancer = enhancer
    return options


def _checked_swapper(store: Any, model_id: str) -> str:
    """``model_id`` when it is a swapper that is installed (with its converter); else a sentence."""
    from workers.face_swap.options import SWAPPERS
    from workers.face_swap.swappers import SWAPPER_SPECS

    if model_id not in SWAPPERS:
        raise UserError(f"--swapper takes one of {', '.join(SWAPPERS)}, not {model_id!r}.")
    spec = SWAPPER_SPECS[model_id]
    for needed in (model_id, *([spec.converter] if spec.converter else [])):
        if not store.state(needed).usable:
            raise UserError(
                f"--swapper {model_id} needs {_model_names(store, [needed])}: download it with "
                f"snowai-studio models download {needed}."
            )
    return model_id


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    show_notice_once(err)
    sources = [Path(p).expanduser() for p in args.sources]
    target = Path(args.target).expanduser()
    for source in sources:
        if not source.is_file():
            raise UserError(f"The source photo {source} was not found.")
    kind = target_kind(target)
    marked = not args.no_mark
    output = Path(args.output).expanduser()
    output = image_output(target, output, marked=marked) if kind == "image" else video_output(target, output)
    if same_file(output, target):
        raise UserError(
            f"{output.name} is the target itself; choose another output name (the target is never changed)."
        )
    store = _store(args)
    options = build_options(args, store)

    from workers.face_swap.pipeline import FaceSwapPipeline  # the model runtimes load only here

    pipeline = FaceSwapPipeline(store, options)
    # stdout carries only the output path; whatever a model library prints goes to stderr.
    with contextlib.redirect_stdout(err):
        saved = _swap(pipeline, sources, target, output, kind, marked, err)
    out.write(f"{saved}\n")
    return EXIT_OK


def _swap(pipeline: Any, sources: list[Path], target: Path, output: Path, kind: str, marked: bool, err: TextIO) -> Path:
    pipeline.load()
    try:
        if getattr(pipeline, "warning", None):
            err.write(f"{pipeline.warning}\n")
        prepare_source(pipeline, sources)
        notes = list(getattr(getattr(pipeline, "source", None), "notes", None) or [])
        for note in notes:
            err.write(f"{note}\n")
        if kind == "image":
            result, saved = swap_image_file(pipeline, target, output, marked=marked)
            for note in getattr(result, "notes", None) or []:
                err.write(f"{note}\n")
            err.write(
                f"Swapped {result.faces_swapped} of {result.faces_found} face{'s' if result.faces_found != 1 else ''} "
                f"({pipeline.engine_name} engine).\n"
            )
        else:
            said = getattr(pipeline, "warning", None)
            bar = ProgressBar("face-swap", err)
            try:
                saved = swap_video_file(pipeline, target, output, marked=marked, progress=bar)
            finally:
                bar.close()
            warning = getattr(pipeline, "warning", None)
            if warning and warning != said:
                err.write(f"{warning}\n")
            err.write(f"Video saved ({pipeline.engine_name} engine; frame rate and audio kept).\n")
    finally:
        pipeline.close()
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-face-swap", description="Swap a face into an image or a video.")
    _fill(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
