"""The Qt worker of the face swap: one pipeline on its own thread, for jobs and a live stream.

:class:`FaceSwapWorker` builds a :class:`~workers.face_swap.pipeline.FaceSwapPipeline` in
:meth:`load` (on its thread: dlib, onnxruntime and insightface are imported there, never on the UI
thread) and then serves

- jobs, each returning a job id whose result arrives through ``job_finished``:
  :meth:`set_source` (the face photos; a :class:`SourceSummary`), :meth:`set_reference`,
  :meth:`swap_image` (an :class:`ImageJobResult`) and :meth:`swap_video` (a :class:`VideoJobResult`),
  with ``progress`` and prompt cancellation; :meth:`render_image` swaps a still for the preview
  without writing anything (a :class:`StillResult`) and :meth:`save_still` writes one;
- a live stream: camera frames pushed by a :class:`~workers.media.worker.CameraWorker` come out
  with the faces swapped (``take_result`` gives a :class:`~workers.queues.StreamResult` whose payload
  is the BGR frame and whose ``meta`` holds the per-stage milliseconds). Stale frames are dropped,
  never queued. The swapped stream can be recorded to an MP4 and sent to a virtual camera.

Parameters change live through :meth:`~workers.base.Worker.set_param`: every
:class:`~workers.face_swap.options.FaceSwapOptions` field.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Signal

from workers.base import JobContext
from workers.errors import UserError
from workers.face_swap.cli import model_of, prepare_source, read_image, save_result, swap_image_file, swap_video_file
from workers.face_swap.options import OPTION_NAMES, FaceSwapOptions, coerce_option
from workers.files import same_file
from workers.media.worker import RecordingWorker
from workers.queues import StreamItem, StreamResult

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

#: Builds the pipeline on the worker's thread: ``factory(store, options)``.
PipelineFactory = Callable[["ModelStore", FaceSwapOptions], Any]

#: Side of the face thumbnails a source job returns.
THUMB_SIZE = 96


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass
class SourceSummary:
    """What the source photos gave: the faces found in each and a thumbnail of the face used."""

    paths: list[Path]
    #: Faces found in each photo (the largest one is used).
    faces_per_image: list[int]
    #: One BGR square thumbnail of the face taken from each photo.
    thumbnails: list[np.ndarray]
    engine: str

    @property
    def count(self) -> int:
        return len(self.paths)

    def describe(self) -> str:
        pairs = zip(self.paths, self.faces_per_image, strict=False)
        many = [f"{p.name} ({n} faces, the largest is used)" for p, n in pairs if n > 1]
        text = f"Source face from {self.count} photo{'s' if self.count != 1 else ''}"
        return text + (f"; {'; '.join(many)}." if many else ".")


@dataclass
class ImageJobResult:
    """A swapped image was saved."""

    source: Path
    path: Path
    faces_found: int
    faces_swapped: int
    engine: str
    ms: dict[str, float] = field(default_factory=dict)
    #: The saved picture (BGR), for a preview.
    image: np.ndarray | None = None
    marked: bool = True


@dataclass
class StillResult:
    """A still swapped for the preview, not saved yet: the picture as read and the swapped one."""

    source: Path
    #: The picture as read (BGR); a re-render with other settings starts from it.
    original: np.ndarray
    #: The swapped picture (BGR), the mark drawn on it when ``marked``.
    image: np.ndarray
    faces_found: int
    faces_swapped: int
    engine: str
    ms: dict[str, float] = field(default_factory=dict)
    marked: bool = True


@dataclass
class VideoJobResult:
    """A swapped video was saved."""

    source: Path
    path: Path
    frames: int
    engine: str
    marked: bool = True


def face_thumbnail(image: np.ndarray, bbox: Any, size: int = THUMB_SIZE) -> np.ndarray:
    """A square BGR crop around a face box (with some margin), ``size`` pixels wide."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(bbox, np.float32)[:4])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * 1.5
    side = max(8.0, min(side, float(max(h, w))))
    left, top = round(cx - side / 2), round(cy - side / 2)
    right, bottom = round(cx + side / 2), round(cy + side / 2)
    pad = ((max(0, -top), max(0, bottom - h)), (max(0, -left), max(0, right - w)), (0, 0))
    crop = image[max(0, top) : min(h, bottom), max(0, left) : min(w, right)]
    if crop.size == 0:
        crop = image
    elif any(p for pair in pad[:2] for p in pair):
        crop = np.pad(crop, pad, mode="edge")
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


def source_summary(pipeline: Any, paths: list[Path], images: list[np.ndarray], source: Any) -> SourceSummary:
    """Thumbnails of the faces a source was made of, and how many faces each photo showed."""
    counts: list[int] = []
    detect = getattr(pipeline, "detect", None)
    for image in images:
        faces = None
        if callable(detect):
            try:
                faces = detect(image)
            except Exception as exc:  # a count is a nicety; the source itself is fine
                log.debug("face count failed: %s", exc)
        counts.append(len(faces) if faces is not None else 1)
    thumbs: list[np.ndarray] = []
    crops = list(getattr(source, "images", None) or [])
    faces = list(getattr(source, "faces", None) or [])
    for i, image in enumerate(images):
        if i < len(crops) and i < len(faces):
            thumbs.append(face_thumbnail(crops[i], faces[i].bbox))
        else:
            thumbs.append(face_thumbnail(image, (0, 0, image.shape[1], image.shape[0])))
    return SourceSummary(list(paths), counts, thumbs, str(getattr(pipeline, "engine_name", "")))


class FaceSwapWorker(RecordingWorker):
    """The face swap on its own thread: source photos, images, videos and a live camera stream."""

    name = "Face swap"
    record_suffix = ".mp4"
    #: Live frames waiting for the model: the newest one only, so latency stays one frame.
    queue_size = 1
    #: The virtual camera started (True, its device name) or stopped (False, a sentence or "").
    virtual_camera_changed = Signal(bool, str)

    def __init__(
        self,
        store: ModelStore | None,
        options: FaceSwapOptions | None = None,
        *,
        pipeline_factory: PipelineFactory | None = None,
        virtual_camera_factory: Callable[[int, int, float], Any] | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__()
        self.store = store
        self.device = device
        self.options = options.copy() if options is not None else FaceSwapOptions()
        self.pipeline: Any = None
        self._factory = pipeline_factory
        self._vcam_factory = virtual_camera_factory
        self._source_paths: list[Path] = []
        self._source_images: list[np.ndarray] = []
        self._reference: np.ndarray | None = None
        self._vcam_lock = threading.Lock()
        self._vcam: Any = None
        self._vcam_wanted = False
        self._last_warning: str | None = None
        #: Live frames processed so far.
        self.processed = 0

    # ---- lifecycle (worker thread) ----------------------------------------------------------------
    def load(self) -> None:
        if self._factory is not None:
            pipeline = self._factory(self.store, self.options.copy())
        else:
            pipeline = _default_pipeline(self.store, self.options.copy(), self.device)
        pipeline.load()
        self.pipeline = pipeline
        if self._source_images:
            pipeline.set_source(list(self._source_images))
        if self._reference is not None:
            pipeline.set_reference(self._reference)
        self._last_warning = None
        log.info("Face swap ready: %s engine", self.engine_name)
        self._check_warning()

    def unload(self) -> None:
        self._recording.stop()
        self._close_virtual_camera()
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.close()

    def recover(self) -> bool:
        """A fresh pipeline (models read again, the source face and reference prepared again)
        replaces the current one once it has loaded."""
        if self._factory is not None:
            pipeline = self._factory(self.store, self.options.copy())
        else:
            pipeline = _default_pipeline(self.store, self.options.copy(), self.device)
        pipeline.load()
        if self._source_images:
            pipeline.set_source(list(self._source_images))
        if self._reference is not None:
            pipeline.set_reference(self._reference)
        old, self.pipeline = self.pipeline, pipeline
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                log.debug("closing a failed pipeline: %s", exc)
        log.info("Face swap restarted: %s engine", self.engine_name)
        return True

    @property
    def engine_name(self) -> str:
        pipeline = self.pipeline
        return str(getattr(pipeline, "engine_name", "") or "") if pipeline is not None else ""

    @property
    def load_failure(self) -> str | None:
        """Why the pipeline could not start (a sentence), or None."""
        return self._load_error

    @property
    def has_source(self) -> bool:
        return bool(self._source_images)

    def _check_warning(self) -> None:
        """Pass on the pipeline's sentence when it had to settle for less (engine, enhancer)."""
        pipeline = self.pipeline
        text = getattr(pipeline, "warning", None) if pipeline is not None else None
        if text and text != self._last_warning:
            self._emit_warning(str(text))
        self._last_warning = text

    def _pipeline(self) -> Any:
        if self.pipeline is None:
            if self._load_error:
                raise UserError(self._load_error)
            raise UserError("The face swap is not ready yet; wait for its models to load.")
        return self.pipeline

    # ---- parameters (worker thread) ----------------------------------------------------------------
    def on_param(self, name: str, value: Any) -> None:
        if name not in OPTION_NAMES:
            raise UserError(f"Face swap has no setting called {name!r}.")
        value = coerce_option(name, value)
        if name == "preset":
            self.options = self.options.with_preset(value)
        else:
            setattr(self.options, name, value)
        if self.pipeline is not None:
            self.pipeline.set_param(name, value)
            self._check_warning()
        elif self.state == "failed":
            self._retry_load()

    def _retry_load(self) -> None:
        """The pipeline could not start (say, the insightface models are missing): try again with
        the new settings, so choosing another engine brings the worker back without a restart."""
        self._set_state("loading")
        try:
            self.load()
        except BaseException as exc:
            self._load_error = self.report(exc, f"{self.name} could not start")
            self._set_state("failed")
            return
        self._load_error = None
        self._set_state("ready")
        self.ready.emit()
        self._start_watch()

    # ---- jobs (any thread) ---------------------------------------------------------------------------
    def set_source(self, paths: list[str | Path]) -> int:
        """Use the face of these photos (one person, several photos averaged); the result is a
        :class:`SourceSummary`, or a sentence naming the photo without a face."""
        chosen = [Path(p).expanduser() for p in paths]

        def job(ctx: JobContext) -> SourceSummary:
            pipeline = self._pipeline()
            source, images = prepare_source(pipeline, chosen, ctx.check)
            self._source_paths = chosen
            self._source_images = images
            self._check_warning()  # photos left out (turned too far) are said
            log.info("Face swap source: %s", ", ".join(p.name for p in chosen))
            return source_summary(pipeline, chosen, images, source)

        return self.submit(job)

    def clear_source(self) -> int:
        """Forget the source face: the live picture goes back to the untouched camera."""

        def job(ctx: JobContext) -> None:
            self._source_paths = []
            self._source_images = []
            pipeline = self.pipeline
            if pipeline is not None:
                clear = getattr(pipeline, "clear_source", None)
                if callable(clear):
                    clear()
                else:
                    pipeline.set_source([])

        return self.submit(job)

    def set_reference(self, path: str | Path | None) -> int:
        """The person to replace when the target is "reference" (None forgets it); the result is the
        number of faces found on the reference photo."""
        chosen = Path(path).expanduser() if path is not None else None

        def job(ctx: JobContext) -> int:
            pipeline = self._pipeline()
            if chosen is None:
                pipeline.set_reference(None)
                self._reference = None
                return 0
            image = read_image(chosen)
            faces = pipeline.detect(image)
            if not faces:
                raise UserError(f"No face was found in {chosen.name}; choose a photo of the person to replace.")
            pipeline.set_reference(image)
            self._reference = image
            return len(faces)

        return self.submit(job)

    def swap_image(self, src: str | Path, dst: str | Path) -> int:
        """Swap the faces of an image file into ``dst`` (never over ``src``); the result is an
        :class:`ImageJobResult`."""
        src_path, dst_path = Path(src).expanduser(), Path(dst).expanduser()

        def job(ctx: JobContext) -> ImageJobResult:
            pipeline = self._pipeline()
            self._need_source()
            marked = bool(self.options.mark)
            ctx.progress(0, 1)
            result, saved = swap_image_file(pipeline, src_path, dst_path, marked=marked)
            self._check_warning()
            ctx.progress(1, 1)
            log.info("Swapped %d of %d faces in %s -> %s", result.faces_swapped, result.faces_found, src_path, saved)
            return ImageJobResult(
                src_path,
                saved,
                int(result.faces_found),
                int(result.faces_swapped),
                str(result.engine),
                dict(result.ms),
                result.image,
                marked,
            )

        return self.submit(job)

    def render_image(self, src: str | Path, original: np.ndarray | None = None) -> int:
        """Swap the faces of a still for the preview, with the settings of the moment; nothing is
        written. ``original`` is the picture already read (a re-render); the result is a
        :class:`StillResult`, or a sentence when the picture shows no face."""
        src_path = Path(src).expanduser()

        def job(ctx: JobContext) -> StillResult:
            pipeline = self._pipeline()
            self._need_source()
            image = original if original is not None else read_image(src_path)
            ctx.check()
            marked = bool(self.options.mark)
            result = pipeline.swap_image(image)
            self._check_warning()
            if result.faces_found == 0:
                raise UserError(f"No face was found in {src_path.name}; nothing was swapped.")
            return StillResult(
                src_path, image, result.image, int(result.faces_found), int(result.faces_swapped),
                str(result.engine), dict(result.ms), marked,
            )

        return self.submit(job)

    def save_still(self, still: StillResult, dst: str | Path) -> int:
        """Write a rendered still to ``dst`` (never over the picture it came from), labelled as
        generated in its metadata when it carries the mark; the result is an :class:`ImageJobResult`."""
        dst_path = Path(dst).expanduser()

        def job(ctx: JobContext) -> ImageJobResult:
            if same_file(still.source, dst_path):
                raise UserError(
                    f"{dst_path.name} is the image you opened; save the result under another name "
                    "(the original is never overwritten)."
                )
            saved = save_result(dst_path, still.image, marked=still.marked, model=model_of(self._pipeline()))
            log.info("Saved the swapped %s -> %s", still.source, saved)
            return ImageJobResult(
                still.source, saved, still.faces_found, still.faces_swapped, still.engine, dict(still.ms),
                still.image, still.marked,
            )

        return self.submit(job)

    def swap_video(self, src: str | Path, dst: str | Path) -> int:
        """Swap the faces of every frame of a video file into ``dst`` (frame rate and audio kept,
        the generated-video tags written); the result is a :class:`VideoJobResult`."""
        src_path, dst_path = Path(src).expanduser(), Path(dst).expanduser()

        def job(ctx: JobContext) -> VideoJobResult:
            pipeline = self._pipeline()
            self._need_source()
            marked = bool(self.options.mark)
            frames = [0]

            def progress(done: int, total: int) -> None:
                frames[0] = done
                ctx.progress(done, total)

            path = swap_video_file(pipeline, src_path, dst_path, marked=marked, progress=progress, cancel=ctx.check)
            return VideoJobResult(src_path, path, frames[0], self.engine_name, marked)

        return self.submit(job)

    def _need_source(self) -> None:
        if not self._source_images:
            raise UserError("Choose a source face first: the photo of the face to put in.")

    # ---- live stream (worker thread) -----------------------------------------------------------------
    def process(self, item: StreamItem) -> StreamResult:
        pipeline = self._pipeline()
        frame = item.payload
        start = time.perf_counter()
        out = pipeline.process(frame)
        total_ms = _ms(start)
        stages = {str(k): float(v) for k, v in (getattr(pipeline, "timings", None) or {}).items()}
        for stage, ms in stages.items():
            self.timer.add_stage(stage, ms)
        self.timer.add_stage("total", total_ms)
        self._check_warning()
        self.record(out, item.timestamp)
        self._send_virtual(out)
        self.processed += 1
        meta = {
            "stages_ms": {k: round(v, 2) for k, v in stages.items()},
            "total_ms": round(total_ms, 2),
            "fps": self.timer.snapshot()["fps"],
            "engine": self.engine_name,
            "swapping": self.has_source,
            "source_frame": frame,
        }
        return StreamResult(out, item.timestamp, item.seq, meta=meta)

    def extra_stats(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"engine": self.engine_name, "swapping": self.has_source}
        snap.update(super().extra_stats())
        with self._vcam_lock:
            snap["virtual_camera"] = self._vcam is not None
        return snap

    # ---- virtual camera (start/stop from any thread; opened and fed on the worker thread) ----------
    @property
    def virtual_camera(self) -> bool:
        """The virtual camera was asked for (it opens with the next frame)."""
        with self._vcam_lock:
            return self._vcam_wanted

    def start_virtual_camera(self) -> None:
        """Send the swapped picture to a virtual camera (OBS's, or v4l2loopback on Linux), from the
        next frame on. A sentence arrives through ``error`` and ``virtual_camera_changed`` when none
        can be opened."""
        with self._vcam_lock:
            self._vcam_wanted = True

    def stop_virtual_camera(self) -> None:
        with self._vcam_lock:
            self._vcam_wanted = False
            was_open = self._vcam is not None
        self._close_virtual_camera()
        if was_open:
            self.virtual_camera_changed.emit(False, "")

    def _close_virtual_camera(self) -> None:
        with self._vcam_lock:
            cam, self._vcam = self._vcam, None
            if cam is not None:
                try:
                    cam.close()
                except Exception as exc:
                    log.warning("The virtual camera did not close cleanly: %s", exc)

    def _send_virtual(self, frame: np.ndarray) -> None:
        with self._vcam_lock:
            if not self._vcam_wanted:
                return
            start = time.perf_counter()
            h, w = frame.shape[:2]
            try:
                if self._vcam is None:
                    fps = float(self.timer.snapshot()["fps"] or 30.0)
                    self._vcam = open_virtual_camera(w, h, fps, self._vcam_factory)
                    device = str(getattr(self._vcam, "device", "") or "the virtual camera")
                    log.info("Virtual camera on %s (%dx%d)", device, w, h)
                    self.virtual_camera_changed.emit(True, device)
                cam = self._vcam
                cw, ch = int(getattr(cam, "width", w)), int(getattr(cam, "height", h))
                if (cw, ch) != (w, h):
                    import cv2

                    frame = cv2.resize(frame, (cw, ch), interpolation=cv2.INTER_AREA)
                cam.send(np.ascontiguousarray(frame))
            except Exception as exc:
                cam, self._vcam, self._vcam_wanted = self._vcam, None, False
                if cam is not None:
                    try:
                        cam.close()
                    except Exception as close_exc:
                        log.debug("closing a failed virtual camera: %s", close_exc)
                message = self.report(exc, "Virtual camera")
                self.virtual_camera_changed.emit(False, message)
                return
        self.timer.add_stage("virtual camera", _ms(start))


def open_virtual_camera(
    width: int, height: int, fps: float, factory: Callable[[int, int, float], Any] | None = None
) -> Any:
    """A pyvirtualcam camera taking BGR frames (``factory``'s, when given); a UserError sentence when there is none."""
    if factory is not None:
        return factory(width, height, fps)
    from workers.media.virtual_camera import open_virtual_camera as open_camera

    return open_camera(width, height, fps)


def _default_pipeline(store: ModelStore | None, options: FaceSwapOptions, device: str = "auto") -> Any:
    from workers.face_swap.pipeline import FaceSwapPipeline

    return FaceSwapPipeline(store, options, device=device)
