"""Background removal over many files: inputs expanded from files, folders and globs, then a
pipeline where a small thread pool decodes the next images and encodes finished ones while the
model works on the current image. Unreadable files are skipped and listed; a cancel is honoured
between images.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workers.errors import UserError, describe_exception
from workers.files import disk_full_sentence, is_disk_full
from workers.matting.compose import Background, composite
from workers.media.imageio import IMAGE_EXTENSIONS, LoadedImage, load_image, normalize_format, output_path, save_image

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

#: Images decoded ahead of the one the model is working on.
PREFETCH = 2
_GLOB_CHARS = set("*?[")


class MaskPredictor(Protocol):
    options: Any

    def predict_mask(self, bgr: np.ndarray) -> np.ndarray: ...


@dataclass
class BatchReport:
    """What a batch did: (source, output) pairs written, (source, reason) pairs skipped, cancelled or not."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    cancelled: bool = False
    #: Why the batch stopped before the end (a full disk), or "".
    stopped: str = ""

    @property
    def total(self) -> int:
        return len(self.done) + len(self.failed)

    def summary(self) -> str:
        text = f"{len(self.done)} image{'s' if len(self.done) != 1 else ''} saved"
        if self.failed:
            text += f", {len(self.failed)} skipped"
        if self.cancelled:
            text += " (cancelled)"
        text += "."
        if self.stopped:
            text += f" Stopped early: {self.stopped}"
        return text


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files as given, the image files inside folders (sorted), glob matches (sorted).

    Returns the paths (each once, in order) and the inputs that matched nothing.
    """
    found: list[Path] = []
    seen: set[str] = set()
    unmatched: list[str] = []

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            found.append(path)

    for raw in inputs:
        text = str(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            images = sorted((p for p in path.iterdir() if p.is_file() and _is_image(p)), key=lambda p: p.name.lower())
            if not images:
                unmatched.append(text)
            for p in images:
                add(p)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True) if Path(m).is_file())
            images = [m for m in matches if _is_image(m)]
            if not images:
                unmatched.append(text)
            for p in images:
                add(p)
        else:
            unmatched.append(text)
    return found, unmatched


def _decode(path: Path) -> LoadedImage:
    return load_image(path)


def _render(engine: MaskPredictor, image: LoadedImage, background: Background) -> np.ndarray:
    """The engine's mask for one image, composited for saving."""
    predict = getattr(engine, "predict", None)
    if callable(predict):
        alpha, foreground = predict(image.bgr)
    else:
        alpha, foreground = engine.predict_mask(image.bgr), None
    if image.alpha is not None:
        # What the file already made transparent stays transparent.
        alpha = ((alpha.astype(np.uint16) * image.alpha + 127) // 255).astype(np.uint8)
    options = getattr(engine, "options", None)
    if options is not None and getattr(options, "mask_only", False):
        return alpha
    result = composite(foreground if foreground is not None else image.bgr, alpha, background)
    if result.ndim == 3 and result.shape[2] == 4:
        # Colours under full transparency carry nothing; zeroed, they make smaller files.
        result[..., :3][alpha == 0] = 0
    return result


#: The one rendering of a cutout, shared by batches and the local API.
render = _render


def _free_name(src: Path, outdir: Path, fmt: str, claimed: set[Path]) -> Path:
    """``output_path``, also avoiding names of results that are still being written."""
    dest = output_path(src, outdir, fmt)
    n = 2
    while dest in claimed:
        dest = output_path(src, outdir, fmt, suffix=f"-nobg-{n}")
        n += 1
    return dest


def run_batch(
    engine: MaskPredictor,
    inputs: list[Path],
    outdir: Path,
    *,
    background: Background,
    fmt: str = "png",
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    workers: int = 2,
) -> BatchReport:
    """Remove the background of every input and save each result in ``outdir``.

    The model runs on the calling thread (where its session was created); decoding of the next
    images and encoding of finished ones run in a small thread pool at the same time.
    ``progress(done, total)`` is called after each image; ``cancel()`` is checked before each one.
    """
    fmt = normalize_format(fmt)
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"The output folder {outdir} could not be created: {exc.strerror or exc}.") from None
    inputs = [Path(p) for p in inputs]
    total = len(inputs)
    report = BatchReport()
    if progress is not None:
        progress(0, total)
    if not inputs:
        return report
    claimed: set[Path] = set()
    finished = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="matting-batch") as pool:
        pending: deque[tuple[Path, Future[LoadedImage]]] = deque()
        saves: list[tuple[Path, Future[Path]]] = []
        queue = iter(inputs)

        def top_up() -> None:
            while len(pending) < PREFETCH:
                nxt = next(queue, None)
                if nxt is None:
                    return
                pending.append((nxt, pool.submit(_decode, nxt)))

        def collect_saves(block: bool) -> None:
            nonlocal finished
            still: list[tuple[Path, Future[Path]]] = []
            for src, fut in saves:
                if not block and not fut.done():
                    still.append((src, fut))
                    continue
                try:
                    report.done.append((src, fut.result()))
                except Exception as exc:
                    report.failed.append((src, describe_exception(exc)))
                    if is_disk_full(exc) and not report.stopped:
                        # every later image would fail the same way: stop instead of trying them all
                        report.stopped = disk_full_sentence("the cut-outs could not be saved.")
                finished += 1
                if progress is not None:
                    progress(finished, total)
            saves[:] = still

        top_up()
        while pending:
            if report.stopped:
                for src, fut in pending:
                    fut.cancel()
                    report.failed.append((src, report.stopped))
                report.failed.extend((src, report.stopped) for src in queue)
                pending.clear()
                break
            if cancel is not None and cancel():
                report.cancelled = True
                for _src, fut in pending:
                    fut.cancel()
                break
            src, fut = pending.popleft()
            top_up()
            try:
                image = fut.result()
                result = _render(engine, image, background)
            except UserError as exc:
                report.failed.append((src, str(exc)))
                finished += 1
                if progress is not None:
                    progress(finished, total)
                collect_saves(block=False)
                continue
            except Exception as exc:  # one bad image must not stop the batch
                log.exception("background removal failed on %s", src)
                report.failed.append((src, describe_exception(exc, src.name)))
                finished += 1
                if progress is not None:
                    progress(finished, total)
                continue
            dest = _free_name(src, outdir, fmt, claimed)
            claimed.add(dest)
            saves.append((src, pool.submit(save_image, dest, result)))
            collect_saves(block=False)
        collect_saves(block=True)
    order = {p: i for i, p in enumerate(inputs)}
    report.done.sort(key=lambda item: order.get(item[0], 0))
    report.failed.sort(key=lambda item: order.get(item[0], 0))
    log.info("batch into %s: %s", outdir, report.summary())
    return report
