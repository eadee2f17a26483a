"""``snowai-studio remove-bg INPUT... -o OUTDIR``: background removal from a terminal.

Inputs are files, folders (their images) and glob patterns. A progress bar is drawn on stderr;
files that could not be read are skipped, listed with the reason, and make the exit code 1 (every
other file is still done). Failures print one sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from workers.cli import EXIT_FAILED, EXIT_OK, add_store_argument, open_store, run_reporting
from workers.matting.options import DEFAULT_MODEL, MattingOptions, int8_default
from workers.progress import ProgressBar

FORMATS = ("png", "webp", "jpg")


def add_parser(subparsers: Any) -> None:
    """Add the ``remove-bg`` command to an argparse sub-parser set."""
    parser = subparsers.add_parser(
        "remove-bg",
        help="remove the background of images (files, folders, globs)",
        description="Remove the background of images and save cutouts (PNG/WebP with alpha) or composites.",
    )
    _fill(parser)


def _fill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", dest="outdir", type=Path, required=True, metavar="OUTDIR")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|PATH",
        help=f"a model id (default {DEFAULT_MODEL}), a model you imported, or an .onnx file",
    )
    parser.add_argument("--alpha-matting", action="store_true", help="refine soft edges (hair) with alpha matting")
    parser.add_argument("--foreground-threshold", type=int, default=240, help=argparse.SUPPRESS)
    parser.add_argument("--background-threshold", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--erode-size", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument(
        "--bg",
        default="transparent",
        metavar="transparent|COLOR|blur|IMAGE",
        help="what goes behind the subject: transparent (default), a colour (#00ff00, green), blur, blur:51 "
        "or an image",
    )
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="png", help="output format (default png)")
    parser.add_argument("--post-process", action="store_true", help="smooth the mask's edges")
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--int8: make the model's checked 8-bit copy first if there is none (once per model, up to "
        "two minutes) and run from it; faster on a CPU (U2-Net lite and IS-Net about 1.5x), used only if "
        "its masks match the model's. --no-int8: the model as it is. Neither: a copy made earlier is used",
    )
    parser.add_argument("--mask-only", action="store_true", help="save the mask itself (white subject on black)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    parser.add_argument("--timings", action="store_true",
                        help="print how long loading the model and each stage of the last image took")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed ``remove-bg`` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    return run_reporting(
        "remove-bg", lambda: _run(args, out, err), err, cancelled="\nCancelled; the images saved so far are kept.\n"
    )


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.matting.batch import expand_inputs, run_batch
    from workers.matting.compose import parse_background
    from workers.matting.options import coerce_option

    background = parse_background(args.bg)
    files, unmatched = expand_inputs(list(args.inputs))
    if not files:
        err.write(f"No image was found in {', '.join(unmatched) or 'the inputs'}.\n")
        return EXIT_FAILED
    options = MattingOptions(
        model=coerce_option("model", args.model),
        alpha_matting=args.alpha_matting,
        foreground_threshold=coerce_option("foreground_threshold", args.foreground_threshold),
        background_threshold=coerce_option("background_threshold", args.background_threshold),
        erode_size=coerce_option("erode_size", args.erode_size),
        post_process=args.post_process,
        mask_only=args.mask_only,
        int8=int8_default() if args.int8 is None else args.int8,
    )
    from workers.matting.engine import MattingEngine  # the model runtime loads only here

    # A copy is made only when asked for: a short run would end before it is ready.
    engine = MattingEngine(open_store(args), options, device=args.device, make_int8=bool(args.int8))
    started = time.perf_counter()
    engine.load()
    if args.int8:
        engine.wait_int8()  # made and checked once per model file; later runs find it
        engine.load()
        verdict = engine.int8_verdict()
        if engine.precision == "int8" and verdict is not None:
            err.write(f"Using the 8-bit copy: {verdict.reason}.\n")
        elif verdict is not None:
            err.write(f"The 8-bit copy is not used: {verdict.reason}.\n")
        else:
            err.write("This model is too small to gain from an 8-bit copy; it runs as it is.\n")
    load_ms = (time.perf_counter() - started) * 1000
    model_label = engine.model_label  # before close(): "… (8-bit copy)" while the copy serves
    bar = ProgressBar("remove-bg", err)
    try:
        report = run_batch(engine, files, args.outdir, background=background, fmt=args.fmt, progress=bar)
    finally:
        bar.close()
        engine.close()
    saved = len(report.done)
    if getattr(args, "timings", False):
        stages = ", ".join(f"{name} {ms:.1f}" for name, ms in engine.timings.items())
        err.write(f"Timings (ms): load {load_ms:.1f}, {stages}\n")
    out.write(f"Saved {saved} image{'s' if saved != 1 else ''} to {args.outdir} (model: {model_label}).\n")
    skipped = [(str(path), reason) for path, reason in report.failed]
    skipped += [(text, "no image matched this input.") for text in unmatched]
    if report.stopped:
        err.write(f"{report.stopped} {saved} of {len(files)} images were saved.\n")
        return EXIT_FAILED
    if not skipped:
        return EXIT_OK
    if len(skipped) == 1 and not saved:
        # One input and it failed: its sentence is the whole message.
        name, reason = skipped[0]
        err.write(f"{reason}\n" if Path(name).name in reason else f"{name}: {reason}\n")
        return EXIT_FAILED
    err.write("Skipped:\n")
    for name, reason in skipped:
        err.write(f"  {name}: {reason}\n")
    n = len(skipped)
    err.write(
        f"{n} input{'s' if n != 1 else ''} could not be read; "
        f"{'every other image was' if saved else 'no image was'} saved.\n"
    )
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-remove-bg", description="Remove the background of images.")
    _fill(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
