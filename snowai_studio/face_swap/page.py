"""The face-swap page: choose a face, swap it live on the camera, in an image or in a video.

Everything heavy runs off the UI thread in a :class:`~workers.face_swap.worker.FaceSwapWorker`
(built when first needed, after the responsible-use agreement): it reads the source photos, renders
and saves stills, swaps video files as jobs (:mod:`.jobs`), and serves the live camera stream
(:mod:`.live`). The page assembles the shared panels (live source, job runner, model pickers) with
its own sections (:mod:`.inspector_sections`) and the still preview (:mod:`.still_preview`).

Responsible use: a first-use agreement comes before the first swap; declining leaves the tool locked
with a banner. The visible "AI-generated" mark is on by default; turning it off asks first. Each
problem is shown once on the page (the live panel's bar for the camera and the live stream, the
message line under the preview otherwise) and reaches the notifications through logging.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from snowai_studio.context import StudioContext
from snowai_studio.face_swap.consent import LOCKED_TEXT, LockBanner, ResponsibleUse
from snowai_studio.face_swap.inspector_sections import (
    NO_ENHANCER,
    BlendingSection,
    EngineSection,
    OutputSection,
    SourceFacesSection,
    TargetSection,
)
from snowai_studio.face_swap.jobs import FaceJobs
from snowai_studio.face_swap.live import LiveController, strip_prefix
from snowai_studio.face_swap.quality_section import QualitySection
from snowai_studio.face_swap.sources import SourceFaces
from snowai_studio.face_swap.still_preview import StillPreview
from snowai_studio.face_swap.video_export import VideoExport
from snowai_studio.panels.job_runner import JobRunner
from snowai_studio.panels.tool_page import ToolPage
from snowai_studio.tool_dock import open_model_manager
from snowai_studio.widgets.video_view import VideoView
from workers.errors import UserError, describe_exception
from workers.face_swap.options import ENGINES, FaceSwapOptions, coerce_option, engine_status

log = logging.getLogger(__name__)

SOURCE = "Face swap"
IDLE_TEXT = "Choose a face photo, then open an image or a video, or press Live."
READY_TEXT = "The face is ready: open an image or a video, or press Live to swap it on the camera picture."
NO_SOURCE_HINT = "No source face yet: the camera is shown untouched. Choose face photos… to start swapping."
#: Options that only the live stream uses: changing them does not render the still again.
LIVE_ONLY = ("preset", "detect_every", "detect_size")


class FaceSwapPage(ToolPage):
    """Face swap for a creator: source faces, targets, blending, live camera, stills, videos, the mark."""

    tool_id = "face_swap"
    title = "Face swap"

    #: A job of the page ended: its kind ("source", "image", "save", "video"...) and whether it succeeded.
    job_done = Signal(str, bool)
    #: The lock changed (True: the agreement was declined).
    lock_changed = Signal(bool)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        prefs = context.settings.face_swap
        try:
            engine = coerce_option("engine", prefs.engine)
        except Exception:
            engine = "auto"
        self.options = FaceSwapOptions(engine=engine, mark=bool(prefs.mark))
        self.closing = False
        self.last_message = ""
        self.last_level = "info"
        self._restored = False
        self._build_actions()
        self._build_center()
        self.jobs = FaceJobs(self.runner, self._make_worker, self._wire, self._job_ended, self.report, self)
        self.responsible = ResponsibleUse(self)
        self.live = LiveController(self)
        self.live_panel, self.vcam_button = self.live.panel, self.live.vcam_button
        self.live_problem, self.record_button = self.live_panel.problem, self.live_panel.record_button
        self.still = StillPreview(self)
        self.video = VideoExport(self)
        self.sources = SourceFaces(self)
        self._build_inspector()
        self.refresh_engine()
        self.update_state()

    # ---- construction ------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        # File → Open (Ctrl+O) of the window triggers the open action: it has no shortcut of its own.
        self.open_action = self.choose_action = self.action(
            "Choose face photos…", lambda: self.choose_source(), icon_name="face_swap",
            tip="Choose photos of the face to put in (Ctrl+O)",
        )
        self.image_action = self.action("Open image…", lambda: self.open_image(), icon_name="image",
                                        tip="Swap the faces of an image: the result shows here, Save writes it")
        self.video_action = self.action("Open video…", lambda: self.swap_video_file(), icon_name="video",
                                        tip="Swap the faces of a video into a new file (sound and frame rate kept)")
        self.live_action = self.action("Live", None, icon_name="live", checkable=True, primary=True,
                                       shortcut="Ctrl+L", tip="Swap faces on the camera picture, live")
        self.live_action.toggled.connect(self._on_live_toggled)
        self.before_action = self.action("Before/after", None, icon_name="compare", checkable=True,
                                         shortcut="Ctrl+B", tip="Show the picture as it was (checked) or swapped")
        self.before_action.toggled.connect(self.set_before)
        self.save_action = self.action("Save image…", lambda: self.save_image(), icon_name="save", shortcut="Ctrl+S",
                                       tip="Save the swapped image as a new file (the original is kept)")
        self.choose_button = self.add_action_button(self.choose_action)
        self.image_button = self.add_action_button(self.image_action)
        self.video_button = self.add_action_button(self.video_action)
        self.live_button = self.add_action_button(self.live_action, primary=True)
        self.action_bar.addSeparator()
        self.before_button = self.add_action_button(self.before_action)
        self.save_button = self.add_action_button(self.save_action)

    def _build_center(self) -> None:
        self.lock_banner = LockBanner()
        self.lock_banner.review_requested.connect(lambda: self.review_terms())
        self.preview = VideoView(placeholder=IDLE_TEXT)
        self.preview.setObjectName("faceSwapPreview")
        self.set_preview(self.preview)
        self.center_layout.insertWidget(0, self.lock_banner)
        self.live_hint = QLabel(NO_SOURCE_HINT)
        self.live_hint.setObjectName("faceSwapHint")
        self.live_hint.setWordWrap(True)
        self.live_hint.setProperty("hint", True)
        self.live_hint.hide()
        self.add_below_preview(self.live_hint)
        self.runner = JobRunner("faceSwapJob")
        self.runner.cancel_requested.connect(self.cancel)
        self.add_below_preview(self.runner)
        #: The page's one message line, under the job's progress.
        self.message_line = self.runner.result

    def _build_inspector(self) -> None:
        add = self.inspector.add_section
        self.source_section = SourceFacesSection()
        self.source_section.choose_requested.connect(lambda: self.choose_source())
        self.source_section.clear_requested.connect(lambda: self.clear_source())
        self.source_section.face_map.map_changed.connect(lambda m: self.set_option("face_map", m))
        add("Source faces", self.source_section, key="source")
        live = QVBoxLayout()
        live.addWidget(self.live_panel)
        live.addWidget(self.vcam_button)
        add("Live camera", live, key="live")
        self.target_section = TargetSection(self.options.target)
        self.target_section.target_chosen.connect(self._on_target_chosen)
        self.target_section.index_chosen.connect(lambda i: self.set_option("target_index", i))
        self.target_section.reference_requested.connect(lambda: self.choose_reference())
        add("Faces to replace", self.target_section, key="target")
        self.blending = BlendingSection(self.options)
        self.blending.option_changed.connect(self.set_option)
        add("Blending", self.blending, key="blending")
        self.engine_section = engine = EngineSection(self.options)
        engine.engine_picker.model_chosen.connect(self._on_engine_chosen)
        engine.enhancer_picker.model_chosen.connect(
            lambda key: self.set_option("enhancer", None if key == NO_ENHANCER else key))
        for picker in (engine.engine_picker, engine.enhancer_picker):
            picker.get_requested.connect(lambda _model_id: self.open_model_manager())
            picker.refresh_requested.connect(self.refresh_engine)
        engine.preset_chosen.connect(self._on_preset_chosen)
        engine.models_requested.connect(lambda: self.open_model_manager())
        add("Engine & enhancer", engine, key="engine")
        self.quality = QualitySection(self.options)
        self.quality.option_changed.connect(self.set_option)
        self.quality.models_requested.connect(lambda: self.open_model_manager())
        engine.enhancer_picker.model_chosen.connect(
            lambda key: self.quality.set_enhancer(None if key == NO_ENHANCER else key))
        add("Swapper, boost & masks", self.quality, expanded=False, key="quality")
        self.output_section = OutputSection(self.options.mark)
        self.output_section.mark_toggled.connect(self.responsible.mark_toggled)
        self.output_section.terms_requested.connect(lambda: self.review_terms())
        add("Output & mark", self.output_section, key="output")

    # ---- messages -------------------------------------------------------------------------------------------
    def note(self, text: str, level: str = "info") -> None:
        """Remember the last sentence the page showed (on the message line or the live panel's bar)."""
        self.last_message, self.last_level = text, level

    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications) unless a worker reported them already."""
        self.note(text, level)
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    def report(self, message: str) -> None:
        """A sentence a worker logged already (a failed job): on the message line only."""
        self.show_message(strip_prefix(message, SOURCE), "error", notify=False)

    # ---- settings and responsible use -------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.context.model_store

    def save_settings(self) -> None:
        try:
            self.context.settings.save()
        except OSError as exc:
            self.show_message(describe_exception(exc, "The face-swap settings could not be saved"), "warning")

    @property
    def consent_accepted(self) -> bool:
        return self.responsible.accepted

    @property
    def locked(self) -> bool:
        return self.responsible.locked

    def ensure_consent(self) -> bool:
        """True when the responsible-use terms are accepted (asking the first time); declining locks
        the tool with a sentence."""
        return self.responsible.ensure()

    def review_terms(self) -> bool:
        """Show the terms again (the way out of the lock)."""
        return self.responsible.review()

    def set_mark(self, on: bool) -> bool:
        """Turn the mark on or off as the checkbox does (off asks first); returns the mark's state."""
        self.mark_check.setChecked(on)
        return self.options.mark

    @property
    def mark_check(self) -> Any:
        return self.output_section.mark_check

    # ---- options ---------------------------------------------------------------------------------------------
    def set_option(self, name: str, value: Any) -> None:
        """Change one face-swap setting; it applies live, and the still on show is rendered again."""
        try:
            value = coerce_option(name, value)
        except UserError as exc:  # a value this setting cannot take: say which
            self.show_message(str(exc), "warning")
            return
        if name == "preset":
            self.options = self.options.with_preset(value)
        else:
            setattr(self.options, name, value)
        if self.jobs.worker is not None:
            self.jobs.worker.set_param(name, value)
        if name not in LIVE_ONLY:
            self.still.schedule()

    @Slot(str)
    def _on_target_chosen(self, target: str) -> None:
        self.set_option("target", target)
        self.target_section.show_rows(target)
        if target == "reference" and self.reference_path is None:
            self.show_message("Choose a reference photo of the person whose face should be replaced.")

    @Slot(str)
    def _on_engine_chosen(self, engine: str) -> None:
        if engine not in ENGINES or engine == self.options.engine:
            return
        self.set_option("engine", engine)
        self.context.settings.face_swap.engine = engine
        self.save_settings()
        self.refresh_engine()

    @Slot(str)
    def _on_preset_chosen(self, preset: str) -> None:
        self.set_option("preset", preset)
        self.refresh_engine()

    @Slot()
    def refresh_engine(self) -> None:
        """Say which engine is active and what can be downloaded; list the enhancers as installed."""
        store, status = self.store, None
        if store is not None:
            try:
                status = engine_status(store, self.options.preset)
            except Exception as exc:
                log.warning("The face-swap models could not be checked: %s", exc)
        loaded = self.jobs.worker.engine_name if self.jobs.worker is not None else ""
        self.engine_section.show_status(store, status, self.options.engine, loaded, self.options.enhancer or "")
        self.quality.set_store(store, self.options.swapper)
        picker = self.engine_section.enhancer_picker
        if self.options.enhancer and not (picker.current() and picker.current().ready):
            picker.select(NO_ENHANCER, emit=False)
            self.set_option("enhancer", None)  # its model is gone

    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.refresh_engine()

    def models_changed(self) -> None:
        self.refresh_engine()

    def model_imported(self, model_id: str) -> None:
        self.refresh_engine()
        self.engine_section.enhancer_picker.select(model_id)  # an enhancer is put to use at once

    def devices_changed(self) -> None:
        self.live.show_device()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_engine()  # a model may have been downloaded meanwhile
        if not self._restored:
            self._restored = True
            QTimer.singleShot(0, self, self.sources.restore)

    # ---- the worker -------------------------------------------------------------------------------------------
    def _make_worker(self) -> Any:
        from workers.face_swap.worker import FaceSwapWorker

        extras = self.context.extras
        return FaceSwapWorker(
            self.store, self.options.copy(), pipeline_factory=extras.get("face_swap_pipeline_factory"),
            virtual_camera_factory=extras.get("virtual_camera_factory"), device=self.context.settings.compute,
        )

    def _wire(self, worker: Any) -> None:
        # Worker signals reach the page through slots of QObjects on the UI thread, so that Qt queues them.
        worker.error.connect(self._on_worker_error)
        worker.warning.connect(self._on_worker_warning)
        worker.ready.connect(self.refresh_engine)
        self.live.wire(worker)

    def ensure_worker(self) -> Any:
        return self.jobs.ensure_worker(self.store)

    @property
    def worker(self) -> Any:
        return self.jobs.worker

    @Slot(str)
    def _on_worker_warning(self, message: str) -> None:
        self.show_message(strip_prefix(message, SOURCE), "warning", notify=False)

    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # A job's error arrives through job_failed as well, a live one stops the stream with a halt.
        if self.live.worker_error(message) or self.jobs.pending:
            return
        self.report(message)
        self.refresh_engine()

    def _job_ended(self, kind: str, ok: bool) -> None:
        self.update_state()
        self.job_done.emit(kind, ok)

    # ---- source and reference ---------------------------------------------------------------------------
    @property
    def source_summary(self) -> Any:
        return self.sources.summary

    @property
    def reference_path(self) -> Path | None:
        return self.sources.reference

    def choose_source(self, paths: Iterable[str | Path] | None = None, *, remember: bool = True) -> int | None:
        """Use the face in these photos (one person; several photos are averaged). Returns the job id."""
        return self.sources.choose(paths, remember=remember)

    def clear_source(self) -> int | None:
        """Forget the source face (the live picture goes back to the untouched camera)."""
        return self.sources.clear()

    def choose_reference(self, path: str | Path | None = None) -> int | None:
        """The person to replace when "One person (reference photo)" is chosen."""
        return self.sources.choose_reference(path)

    # ---- stills, videos, live ------------------------------------------------------------------------------
    def check_ready_for_swap(self) -> bool:
        if not self.ensure_consent():
            return False
        if self.source_summary is None:
            self.show_message("Choose a source face first: press Choose face photos….", "warning")
            return False
        return True

    def open_image(self, path: str | Path | None = None) -> int | None:
        """Show an image swapped in the preview (nothing is written until Save)."""
        return self.still.open(path)

    def save_image(self, dst: str | Path | None = None) -> int | None:
        """Write the swapped image under a new name (never over the original)."""
        return self.still.save(dst)

    def swap_video_file(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Swap the faces of every frame of a video into a new file (sound and frame rate kept)."""
        return self.video.start(src, dst)

    @Slot()
    def cancel(self) -> None:
        """Stop the running image or video job; nothing half-made is left behind."""
        if self.jobs.cancel():
            self.show_message("Cancelling…")

    def start_live(self) -> bool:
        """Swap faces on the camera picture (the camera from Settings, or an injected one)."""
        return self.live.start()

    def toggle_live(self) -> None:
        self.live.stop() if self.live.running else self.live.start()

    def stop_live(self) -> None:
        self.live.stop()

    @Slot(bool)
    def _on_live_toggled(self, on: bool) -> None:
        if on != self.live.running:
            self.toggle_live()

    @property
    def live_running(self) -> bool:
        return self.live.running

    @property
    def camera(self) -> Any:
        return self.live.camera

    def toggle_recording(self, path: str | Path | None = None) -> bool:
        return self.live.toggle_recording(path)

    def set_virtual_camera(self, on: bool) -> bool:
        return self.live.set_virtual_camera(on)

    @Slot(bool)
    def set_before(self, on: bool) -> None:
        """Show the picture untouched (True) or swapped (False): the camera's while live, else the still's."""
        if self.live.running:
            self.live.set_before(on)
        else:
            self.still.set_before(on)
        self.update_state()

    @property
    def showing_before(self) -> bool:
        return self.live.before if self.live.running else self.still.before

    # ---- state ------------------------------------------------------------------------------------------------
    def show_idle(self) -> None:
        """Without the camera: the still when there is one, else a sentence saying what to do next."""
        if self.still.result is not None:
            self.still.show()
        else:
            self.preview.clear()
            self.preview.set_overlay("")
        self.update_state()

    def update_state(self) -> None:
        live, locked = self.live.running, self.locked
        video = self.jobs.busy_with("video") if hasattr(self, "jobs") else False
        for action in (self.choose_action, self.image_action):
            action.setEnabled(not locked)
        self.video_action.setEnabled(not locked and not video)
        self.live_action.setEnabled(not locked and not video)
        self.live_panel.set_available(not locked and not video, LOCKED_TEXT if locked else "A video is being swapped.")
        has_still = self.still.result is not None
        self.before_action.setEnabled(live or has_still)
        before = self.live.before if live else self.still.before
        if self.before_action.isChecked() != before:
            self.before_action.blockSignals(True)
            self.before_action.setChecked(before)
            self.before_action.blockSignals(False)
        self.save_action.setEnabled(self.still.can_save and not locked)
        self.vcam_button.setEnabled(live)
        self.source_section.choose_button.setEnabled(not locked)
        self.source_section.clear_button.setEnabled(self.source_summary is not None)
        self.target_section.reference_button.setEnabled(not locked)
        self.live_hint.setVisible(live and self.source_summary is None)
        if not live:
            self.preview.set_placeholder(IDLE_TEXT if self.source_summary is None else READY_TEXT)

    # ---- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the camera, cancel work and join the worker's thread (the window is closing)."""
        if self.closing:
            return
        self.closing = True
        self.still.timer.stop()
        self.live.shutdown()
        self.jobs.retire()

