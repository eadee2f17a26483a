"""The Qt worker of background removal: one engine on its own thread, for jobs and a live stream.

:class:`MattingWorker` builds a :class:`~workers.matting.engine.MattingEngine` in :meth:`load` (on
its thread: onnxruntime is imported there, never on the UI thread) and then serves

- jobs, each returning a job id whose result arrives through ``job_finished``: :meth:`remove`
  (one image, a :class:`~workers.matting.options.MaskResult`), :meth:`batch` (a folder of images, a
  :class:`~workers.matting.batch.BatchReport`) and :meth:`video` (a video file, the output
  :class:`~pathlib.Path`), with ``progress`` and prompt cancellation;
- a live stream: camera frames pushed by a :class:`~workers.media.worker.CameraWorker` come out
  with their background replaced (``take_result`` gives a :class:`~workers.queues.StreamResult`
  whose payload is the composited BGR frame); a slow model drops stale frames instead of queueing
  them. The composited stream can be recorded to an MP4.

Live keeps up: on the first frame of a stream the worker plans which model live uses
(:func:`~workers.matting.live_speed.plan_live`: on a CPU the chosen model when it reaches
``min_fps`` at the live size, otherwise the fast one; the frame times are measured once and cached in
the model store) and tells the page through ``live_plan``. Jobs keep the chosen model. Live masks
and video masks are steadied between frames (:class:`~workers.matting.steady.MaskSteadier`) unless
the ``steady`` option is off.

Parameters change live through :meth:`~workers.base.Worker.set_param`: ``"background"`` (a
:class:`~workers.matting.compose.Background` or its text form), ``"live_policy"`` (``"auto"``, or
``"chosen"``: live uses the chosen model even when it does not keep up) and every
:class:`~workers.matting.options.MattingOptions` field, ``"model"`` included (a model switch keeps
the worker running).

The model file is watched (see :mod:`workers.base`): the live picture goes on from the session in
memory when the file is removed; a file changed on disk is loaded again between two frames (or the
sentence says why it cannot be); a live stream that keeps failing gets a fresh engine once, then
stops with ``stream_halted``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Signal

from workers.base import JobContext
from workers.errors import Cancelled, UserError
from workers.matting.compose import Background, checkerboard, composite, parse_background
from workers.matting.live_speed import (
    CACHE_NAME,
    FAST_MODEL,
    LIVE_MIN_FPS,
    LivePlan,
    Measure,
    SpeedCache,
    measure_frame_ms,
    plan_live,
)
from workers.matting.options import MaskResult, MattingOptions, coerce_option
from workers.matting.steady import MaskSteadier
from workers.media.pixels import blend
from workers.media.worker import RecordingWorker
from workers.queues import StreamItem, StreamResult

if TYPE_CHECKING:
    from workers.matting.batch import BatchReport
    from workers.media.imageio import LoadedImage
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class MattingWorker(RecordingWorker):
    """Background removal on its own thread: images, batches, videos and a live camera stream."""

    name = "Background removal"
    #: Live frames waiting for the model: the newest one only, so latency stays one frame.
    queue_size = 1
    #: The model live uses and why (a :class:`~workers.matting.live_speed.LivePlan`): sent on the
    #: first frame of a stream, and again when the model, the policy or the frame size changes.
    live_plan = Signal(object)
    #: A model's frame time is being measured (its name): the first live start on this machine.
    live_measuring = Signal(str)

    def __init__(
        self,
        store: ModelStore,
        options: MattingOptions | None = None,
        *,
        device: str = "auto",
        engine_factory: Callable[[ModelStore, MattingOptions, str], Any] | None = None,
        fast_model: str | None = FAST_MODEL,
        min_fps: float = LIVE_MIN_FPS,
        measure: Measure | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.options = options.copy() if options is not None else MattingOptions()
        self.device = device
        self.background = Background()
        self.engine: Any = None
        self._engine_factory = engine_factory
        self._checker: np.ndarray | None = None
        #: Live frames processed so far (the rest were dropped as stale: see ``dropped``).
        self.processed = 0
        #: The model live falls back to on a CPU, and the frame rate that counts as keeping up.
        self.fast_model = fast_model
        self.min_fps = float(min_fps)
        self._measure = measure
        #: "auto" (a model that keeps up) or "chosen" (the chosen model even when it is slow).
        self.live_policy = "auto"
        #: The current live plan (None until the first live frame, and after a change).
        self.plan: LivePlan | None = None
        #: Every model whose frame time this worker measured (the others came from the cache).
        self.measured: list[str] = []
        self._steadier = MaskSteadier()

    # ---- lifecycle (worker thread) ----------------------------------------------------------------
    def load(self) -> None:
        factory = self._engine_factory or _default_engine
        engine = factory(self.store, self.options.copy(), self.device)
        engine.load()
        self.engine = engine
        log.info("Background removal ready: %s", self._model_label())

    def unload(self) -> None:
        self._recording.stop()
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()

    def recover(self) -> bool:
        """A fresh engine (the model file read again) replaces the current one once it has loaded."""
        factory = self._engine_factory or _default_engine
        engine = factory(self.store, self.options.copy(), self.device)
        engine.load()
        old, self.engine = self.engine, engine
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        self.plan = None
        self._steadier.reset()  # another model's masks start afresh, not blended into the old one's
        log.info("Background removal reloaded: %s", self._model_label())
        return True

    def watched_files(self) -> list[Path]:
        """The model file the engine reads (once it resolved the chosen model)."""
        path = getattr(self.engine, "model_path", None)
        return [path] if path else []

    def _engine(self) -> Any:
        if self.engine is None:
            raise UserError("Background removal is not ready yet; wait for the model to load.")
        return self.engine

    def _model_label(self) -> str:
        engine = self.engine
        label = getattr(engine, "model_label", None) if engine is not None else None
        return str(label) if label else self.options.model

    # ---- parameters (worker thread) --------------------------------------------------------------------
    def on_param(self, name: str, value: Any) -> None:
        if name == "background":
            self.background = parse_background(value) if isinstance(value, str) else value
            return
        if name == "live_policy":
            if value not in ("auto", "chosen"):
                raise UserError(f"Live can use the chosen model or one that keeps up, not {value!r}.")
            self.live_policy = str(value)
            self.plan = None  # planned again (from the cache) on the next live frame
            return
        value = coerce_option(name, value)
        setattr(self.options, name, value)
        if name in ("model", "steady"):
            self.plan = None
            self._steadier.reset()
        if self.engine is not None:
            self.engine.set_param(name, value)
        elif self.state == "failed":
            self._retry_load()
        if name == "model":
            log.info("Background removal model: %s", value)

    def _retry_load(self) -> None:
        """The engine could not start (say, its model was not downloaded): try again with the new
        settings, so choosing another model brings the worker back without a restart."""
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

    # ---- jobs (any thread) ------------------------------------------------------------------------
    def remove(self, image: LoadedImage) -> int:
        """Find the alpha of one image; the result is a :class:`MaskResult`."""

        def job(ctx: JobContext) -> MaskResult:
            engine = self._engine()
            start = time.perf_counter()
            alpha = engine.predict_mask(image.bgr)
            ctx.check()
            return MaskResult(image=image, alpha=alpha, model=self._model_label(), ms=_ms(start))

        return self.submit(job)

    def batch(self, inputs: list[Path], outdir: Path, background: Background, fmt: str = "png") -> int:
        """Cut out every image into ``outdir``; the result is a ``BatchReport`` (``cancelled`` set
        when the user stopped it, with the images done so far)."""

        def job(ctx: JobContext) -> BatchReport:
            from workers.matting.batch import run_batch

            def progress(done: int, total: int) -> None:
                if not ctx.cancelled:
                    ctx.progress(done, total)

            return run_batch(
                self._engine(),
                [Path(p) for p in inputs],
                Path(outdir),
                background=background,
                fmt=fmt,
                progress=progress,
                cancel=lambda: ctx.cancelled,
            )

        return self.submit(job)

    def video(self, src: Path, dst: Path, background: Background) -> int:
        """Replace the background of every frame of ``src`` into ``dst`` (format by its suffix:
        .webm and .mov keep transparency, .mp4 does not); the result is the output path."""

        def job(ctx: JobContext) -> Path:
            from workers.media.video import process_video

            engine = self._engine()
            mask_only = self.options.mask_only
            steadier = MaskSteadier() if self.options.steady else None

            def frame_fn(bgr: np.ndarray) -> np.ndarray:
                alpha = engine.predict_mask(bgr)
                if steadier is not None:
                    alpha = steadier(bgr, alpha)
                if mask_only:
                    return np.repeat(alpha[:, :, None], 3, axis=2)
                return composite(bgr, alpha, background)

            return process_video(src, dst, frame_fn, progress=ctx.progress, cancel=lambda: ctx.cancelled)

        return self.submit(job)

    # ---- live stream (worker thread) ------------------------------------------------------------------
    def process(self, item: StreamItem) -> StreamResult | None:
        engine = self._engine()
        bgr = item.payload
        try:
            plan = self._live_plan(engine, bgr)
        except Cancelled:
            return None  # the worker is stopping
        start = time.perf_counter()
        alpha = self._predict(engine, bgr, plan.used)
        mask_ms = _ms(start)
        steady_ms = 0.0
        if self.options.steady:
            start = time.perf_counter()
            alpha = self._steadier(bgr, alpha)
            steady_ms = _ms(start)
            self.timer.add_stage("steady", steady_ms)
        start = time.perf_counter()
        frame = self._compose_live(bgr, alpha)
        compose_ms = _ms(start)
        self.timer.add_stage("mask", mask_ms)
        for stage, ms in (getattr(engine, "timings", None) or {}).items():
            self.timer.add_stage(f"mask.{stage}", float(ms))  # the model's own split: pre, model, post...
        self.timer.add_stage("compose", compose_ms)
        self.record(frame, item.timestamp)
        self.processed += 1
        meta = {
            "mask_ms": round(mask_ms, 2),
            "alpha_ms": round(mask_ms, 2),
            "steady_ms": round(steady_ms, 2),
            "compose_ms": round(compose_ms, 2),
            "fps": self.timer.snapshot()["fps"],
            "model": plan.used_label,
        }
        return StreamResult(frame, item.timestamp, item.seq, meta=meta)

    def _live_plan(self, engine: Any, bgr: np.ndarray) -> LivePlan:
        """The model live uses for frames of this size: planned on the first frame (measured once per
        machine, then read from the cache) and sent to the page."""
        height, width = bgr.shape[:2]
        plan = self.plan
        if plan is not None and plan.chosen == self.options.model and plan.size == (width, height):
            return plan
        if not hasattr(engine, "model_file"):  # an engine of one model (made by a test): nothing to choose
            label = self._model_label()
            self.plan = LivePlan(self.options.model, label, self.options.model, label, size=(width, height))
            return self.plan
        device = str(getattr(engine, "compute_device", "cpu"))
        threads = int(getattr(engine, "threads", 0) or 0)
        cache = SpeedCache(Path(self.store.root) / CACHE_NAME)
        measured: list[str] = []

        def frame_ms(model: str) -> float:
            key = SpeedCache.key(engine.model_file(model), device, threads, (width, height))
            ms = cache.get(key)
            if ms is None:
                label = engine.label_of(model)
                self.live_measuring.emit(label)
                ms = self._measure_ms(engine, model, (width, height))
                cache.put(key, ms, model=label)
                measured.append(model)
                log.info("%s takes %.0f ms a %dx%d frame on %s", label, ms, width, height, device)
            return ms

        plan = plan_live(
            self.options.model,
            label=engine.label_of,
            frame_ms=frame_ms,
            gpu=device != "cpu",
            fast=self.fast_model,
            anyway=self.live_policy == "chosen",
            min_fps=self.min_fps,
            size=(width, height),
        )
        plan = dataclasses.replace(plan, measured=tuple(measured))
        self.measured.extend(measured)
        self.plan = plan
        self._steadier.reset()
        self.live_plan.emit(plan)
        return plan

    def _predict(self, engine: Any, bgr: np.ndarray, model: str) -> np.ndarray:
        """The mask by ``model``: the chosen one is not named (an engine may take the image alone)."""
        return engine.predict_mask(bgr) if model == self.options.model else engine.predict_mask(bgr, model)

    def _measure_ms(self, engine: Any, model: str, size: tuple[int, int]) -> float:
        def run(frame: np.ndarray) -> Any:
            return self._predict(engine, frame, model)

        if self._measure is not None:
            return float(self._measure(model, run, size))
        return measure_frame_ms(run, size, stop=lambda: self._stopping)

    def _compose_live(self, bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """The frame to show: the background replaced (a transparent one shown as a checkerboard)."""
        if self.options.mask_only:
            return np.repeat(alpha[:, :, None], 3, axis=2)
        background = self.background
        if background.kind == "transparent":
            h, w = bgr.shape[:2]
            if self._checker is None or self._checker.shape[:2] != (h, w):
                self._checker = checkerboard(h, w)
            return blend(bgr, alpha, self._checker)
        return composite(bgr, alpha, background)

    def extra_stats(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"model": self._model_label()}
        snap.update(super().extra_stats())
        return snap


def _default_engine(store: ModelStore, options: MattingOptions, device: str) -> Any:
    from workers.matting.engine import MattingEngine

    return MattingEngine(store, options, device=device)
