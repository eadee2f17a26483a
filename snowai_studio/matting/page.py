"""The background-removal page: open images, cut out the subject, touch up the mask, export; or run a
folder, a video file or the camera.

The page assembles the shared panels (action bar, inspector, model picker, output panel, live-source
panel, job runner) around what is its own: the canvas with its touch-up bar and thumbnail strip. Its
behaviour is split by subject: :mod:`.images` (the images and their masks), :mod:`.output` (the
background and exports), :mod:`.long_jobs` (batches and video), :mod:`.live` (the camera) and
:mod:`.jobs` (the workers' results and the job runner).

Everything heavy runs off the UI thread: a :class:`~workers.matting.worker.MattingWorker` (built when
first needed) owns the model; a plain :class:`~workers.base.Worker` decodes images, refines masks,
prepares background previews and writes exports; another one makes thumbnails. Every problem is one
sentence shown once on the page (the result line, or the live panel's problem bar) and, through
logging, once in the notifications.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QActionGroup, QDragEnterEvent, QDropEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QCheckBox, QStackedWidget, QWidget

from snowai_studio.context import StudioContext
from snowai_studio.matting.canvas import MattingCanvas
from snowai_studio.matting.images import ImagesMixin
from snowai_studio.matting.inspector_sections import FORMATS, BackgroundChooser
from snowai_studio.matting.jobs import ON_MODEL, FrameRate, Job, JobsMixin
from snowai_studio.matting.live import STARTING, LiveMixin
from snowai_studio.matting.long_jobs import LongJobsMixin
from snowai_studio.matting.output import OutputMixin
from snowai_studio.matting.state import ImageEntry
from snowai_studio.matting.workspace import EditBar, EmptyState, SkippedFiles, ThumbnailStrip
from snowai_studio.panels.job_runner import JobRunner
from snowai_studio.panels.live_source import LiveSourcePanel, describe_camera
from snowai_studio.panels.model_picker import ModelPicker, PickerChoice
from snowai_studio.panels.output_panel import OutputPanel
from snowai_studio.panels.page_settings import remembered_folder
from snowai_studio.panels.tool_page import ToolPage, push_button, shortcut_text
from snowai_studio.tool_dock import open_devices, open_model_manager, pictures_dir, videos_dir
from snowai_studio.widgets.rows import fit_combo, left_aligned
from snowai_studio.widgets.status_rows import message_icons
from snowai_studio.widgets.video_view import VideoView
from workers.errors import describe_exception
from workers.matting.compose import Background
from workers.matting.options import DEFAULT_MODEL, MattingOptions, ModelChoice, available_models, spec_for

log = logging.getLogger(__name__)

SOURCE = "Background removal"


class MattingPage(ImagesMixin, OutputMixin, LongJobsMixin, LiveMixin, JobsMixin, ToolPage):
    """Background removal for a creator: a canvas, a brush, exports, batches, video and live."""

    tool_id = "matting"
    title = "Background removal"

    #: Emitted when the current image or its mask changes (tests and scripting).
    image_changed = Signal()
    #: A job of the page ended: its kind ("remove", "export", "batch"...) and whether it succeeded.
    job_done = Signal(str, bool)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.entries: list[ImageEntry] = []
        self.current: ImageEntry | None = None
        self.background = Background()
        self.options = MattingOptions()
        self.choices: list[ModelChoice] = []
        self.last_message = ""
        self.last_level = "info"
        self.last_report: Any = None
        self._jobs: dict[int, Job] = {}
        self._runner_job: Job | None = None
        self.frame_rate = FrameRate()
        self._matting: Any = None
        self._matting_store: Any = None
        self._camera: Any = None
        self._live_error = ""
        self._layer_generation = 0
        self._closing = False

        self._tasks = self._start_helper(SOURCE)
        self._thumbs = self._start_helper(f"{SOURCE} thumbnails")
        self._build_actions()
        self._build_center()
        self._build_inspector()
        self.setAcceptDrops(True)
        self.refresh_models()
        self._update_output()
        self.devices_changed()
        self._update_actions()

    # ---- construction ----------------------------------------------------------------------------
    def _build_actions(self) -> None:
        open_keys = shortcut_text(QKeySequence(QKeySequence.StandardKey.Open))
        self.open_action = self.action("Open images…", self.open_images, icon_name="open",
                                       tip=f"Open one or more image files ({open_keys})")
        self.open_folder_action = self.action("Open folder…", self.open_folder, icon_name="folder",
                                              tip="Open every image of a folder")
        self.remove_action = self.action("Remove background", self.remove_background, icon_name="cut",
                                         tip="Cut out the subject with the chosen model", shortcut="Ctrl+R",
                                         primary=True)
        self.export_action = self.action("Export…", self.export_image, icon_name="export", shortcut="Ctrl+S",
                                         tip="Save the cut-out as the Output section says (the original is kept)")
        self.batch_action = self.action("Batch folder…", self.batch_folder, icon_name="batch",
                                        tip="Cut out every image of a folder into the output folder")
        self.video_action = self.action("Video file…", self.open_video, icon_name="video",
                                        tip="Replace the background of a video file")
        self.live_action = self.action("Live", self.toggle_live, icon_name="live", shortcut="Ctrl+L",
                                       tip="Remove the background of the camera picture, live; again to stop")
        self.live_action.setCheckable(True)  # checked in the live view; triggered (not toggled) goes in and out
        for action in (self.open_action, self.open_folder_action):
            self.add_action_button(action)
        self.remove_button = self.add_action_button(self.remove_action, primary=True)
        self.remove_button.setObjectName("removeButton")
        self.add_action_button(self.export_action)
        self.add_action_spacer()
        for action in (self.batch_action, self.video_action, self.live_action):
            self.add_action_button(action)

        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.brush_add_action = self.action("Restore", self._on_tool, icon_name="brush", shortcut="B",
                                            checkable=True, tip="Brush: paint the subject back in")
        self.brush_erase_action = self.action("Erase", self._on_tool, icon_name="eraser", shortcut="E",
                                              checkable=True, tip="Brush: erase background left over")
        for action in (self.brush_add_action, self.brush_erase_action):
            self.tool_group.addAction(action)
        self.refine_action = self.action("Refine edges", self.refine_edges, icon_name="refine",
                                         tip="Let the outline follow the photo's edges, guided by your strokes")
        self.undo_action = self.action("Undo", self.undo, icon_name="undo", shortcut=QKeySequence("Ctrl+Z"))
        self.redo_action = self.action("Redo", self.redo, icon_name="redo", shortcut=QKeySequence("Ctrl+Shift+Z"))
        self.fit_action = self.action("Fit", lambda: self.canvas.fit(), icon_name="fit", shortcut="F",
                                      tip="Show the whole image")
        self.actual_action = self.action("100%", lambda: self.canvas.actual_size(), shortcut="1",
                                         tip="One image pixel per screen pixel")

    def _build_center(self) -> None:
        bar = self.edit_bar = EditBar()
        bar.add_action(self.brush_add_action)
        bar.add_action(self.brush_erase_action)
        bar.add_widget(bar.brush_size)
        bar.add_separator()
        bar.add_action(self.refine_action)
        bar.add_separator()
        bar.add_action(self.undo_action, text=False)
        bar.add_action(self.redo_action, text=False)
        bar.add_stretch()
        bar.add_widget(bar.view_combo)
        bar.add_action(self.fit_action, text=False)
        bar.add_action(self.actual_action)
        self.brush_size, self.view_combo = bar.brush_size, bar.view_combo

        self.empty_page = EmptyState()
        self.empty_page.open_images_requested.connect(lambda: self.open_images())
        self.empty_page.open_folder_requested.connect(lambda: self.open_folder())
        self.empty_page.models_requested.connect(self.open_model_manager)
        self.model_status = self.empty_page.model_status
        self.model_manager_button = self.empty_page.model_manager_button
        self.canvas = MattingCanvas()
        self.canvas.setObjectName("mattingCanvas")
        self.canvas.stroke_finished.connect(self._on_stroke)
        self.canvas.brush_radius_changed.connect(lambda r: self.brush_size.setValue(round(r)))
        self.brush_size.valueChanged.connect(lambda v: self.canvas.set_brush_radius(float(v)))
        self.view_combo.currentIndexChanged.connect(lambda _i: self.canvas.set_view_mode(self.view_combo.currentData()))
        self.live_view = self.live_page = VideoView(placeholder=STARTING)
        self.live_view.setObjectName("mattingLiveView")
        self.stack = QStackedWidget()
        for page in (self.empty_page, self.canvas, self.live_page):
            self.stack.addWidget(page)

        self.thumbs = ThumbnailStrip()
        self.thumbs.currentItemChanged.connect(self._on_thumb_changed)
        self.skipped = SkippedFiles(message_icons(self.style())["warning"])
        self.job_runner = JobRunner("mattingJobs")
        self.job_runner.cancel_requested.connect(self.cancel)
        self.message_line = self.job_runner.result
        self.set_preview(self.stack)
        self.center_layout.insertWidget(0, self.edit_bar)
        for widget in (self.thumbs, self.skipped, self.job_runner):
            self.add_below_preview(widget)
        self._show_view(self.empty_page)

    def _build_inspector(self) -> None:
        self.model_picker = ModelPicker("mattingModel")
        self.model_combo = self.model_picker.combo
        self.model_picker.model_chosen.connect(lambda _key: self._apply_model())
        self.model_combo.currentIndexChanged.connect(lambda _i: self._update_model_status())
        self.model_picker.get_requested.connect(lambda _model_id: self.open_model_manager())
        self.model_picker.refresh_requested.connect(self.refresh_models)
        self.alpha_matting = QCheckBox("Alpha matting (finer hair, slower)")
        self.alpha_matting.setToolTip("Finer hair and fur edges; each image takes longer")
        self.alpha_matting.toggled.connect(self._on_alpha_matting)
        self.int8_copy = QCheckBox("Fast 8-bit copy of the model")
        self.int8_copy.setObjectName("mattingInt8")
        self.int8_copy.setToolTip(
            "Faster on a CPU (U²-Net lite and IS-Net about 1.5x). The copy is made and checked once "
            "per model in the background (half a minute to two minutes) and used only if its masks match "
            "the model's."
        )
        self.int8_copy.setChecked(self.options.int8)  # on unless SNOWAI_INT8_COPIES=0
        self.int8_copy.toggled.connect(self._on_int8)
        manage = push_button("Manage models…", "models", tip="Download a model or import your own")
        manage.clicked.connect(self.open_model_manager)
        section = self.inspector.add_section("Model", self.model_picker, key="model")
        section.add(self.alpha_matting)
        section.add(self.int8_copy)
        section.add(left_aligned(manage))

        self.background_chooser = BackgroundChooser()
        self.background_combo = self.background_chooser.combo
        self.background_chooser.kind_chosen.connect(self._on_background_kind)
        self.inspector.add_section("Background", self.background_chooser, key="background")

        folder = remembered_folder(self.tool_id, "batch_folder", str(self._default_batch_folder()))
        self.output = OutputPanel(FORMATS, folder_caption="Batch results go to", folder=folder,
                                  object_name="mattingOutput")
        self.format_combo = self.output.format_combo
        self.output.format_changed.connect(lambda _fmt: self._update_output())
        self.output.folder_changed.connect(self._on_output_folder)
        self.inspector.add_section("Output", self.output, key="output")

        # Live starts and stops with the Live button on top; the panel has the rest.
        self.live_panel = LiveSourcePanel("camera", object_name="mattingLive", recording=True, show_start=False)
        self.live_panel.retry_requested.connect(self.retry_live)
        self.live_panel.record_toggled.connect(self._on_record_toggled)
        self.live_panel.devices_requested.connect(lambda: open_devices(self))
        assert self.live_panel.folder is not None
        self.live_panel.folder.set_folder(remembered_folder(self.tool_id, "recordings_folder", videos_dir()))
        self.live_panel.folder.folder_changed.connect(self._on_recordings_folder)
        self.live_problem, self.record_button = self.live_panel.problem, self.live_panel.record_button
        self._build_live_speed()
        self.live_section = self.inspector.add_section("Live camera", self.live_panel, expanded=False, key="live")
        for combo in (self.model_combo, self.background_combo, self.format_combo):
            fit_combo(combo)

    @staticmethod
    def _default_batch_folder() -> Path:
        return Path(pictures_dir()) / "Cut-outs"

    # ---- state others read -------------------------------------------------------------------------
    @property
    def matting_worker(self) -> Any:
        return self._matting

    @property
    def store(self) -> Any:
        return self.context.model_store

    # ---- messages ------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the page's result line; warnings and errors also go to the log (and so to
        the notifications) unless a worker already reported them."""
        self.last_message = text
        self.last_level = level
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    # ---- models --------------------------------------------------------------------------------------
    @Slot()
    def refresh_models(self) -> None:
        """List the matting models: ready ones, the user's own, and those that can be downloaded."""
        store = self.store
        try:
            choices = available_models(store) if store is not None else []
            own = {m.id for m in store.user_models()} if store is not None else set()
        except Exception as exc:
            choices, own = [], set()
            self.show_message(describe_exception(exc, "The model list could not be read"), "warning")
        self.choices = choices
        by_key = {c.id: c for c in choices}
        keep = by_key.get(self.model_picker.current_key() or self.options.model)
        if keep is None or not keep.ready:
            ready = [c for c in choices if c.ready]
            default = by_key.get(DEFAULT_MODEL)
            if ready:
                keep = default if default is not None and default.ready else ready[0]
            elif keep is None:
                keep = default or (choices[0] if choices else None)
        self.model_picker.set_choices(
            [PickerChoice(c.id, c.name, "download" if not c.ready else "user" if c.id in own else "ready", c.note)
             for c in choices],
            select=keep.id if keep is not None else None,
        )
        self._apply_model()

    def current_choice(self) -> ModelChoice | None:
        key = self.model_picker.current_key()
        return next((c for c in self.choices if c.id == key), None)

    def _model_problem(self) -> str:
        """A sentence when the chosen model cannot run, else ''."""
        if self.store is None:
            return "The model store could not be opened; check the models folder in Settings."
        choice = self.current_choice()
        if choice is None:
            return "No background-removal model is known; open the model manager to import one."
        if not choice.ready:
            return f"{choice.name} is not downloaded: open the model manager to download it."
        return ""

    def _apply_model(self) -> None:
        """The chosen model (when it is ready) is the one the next removal uses."""
        choice = self.current_choice()
        if choice is not None and choice.ready and choice.id != self.options.model:
            self.options.model = choice.id
            if self._matting is not None:
                self._matting.set_param("model", choice.id)
            self._live_model_changed()
        self._update_model_status()

    def _update_model_status(self) -> None:
        problem = self._model_problem()
        choice = self.current_choice()
        ready = f"Model: {choice.name} (ready)." if choice is not None else ""
        self.empty_page.set_model_status(problem or ready, problem=bool(problem))
        self._update_actions()

    @Slot(bool)
    def _on_alpha_matting(self, on: bool) -> None:
        self.options.alpha_matting = bool(on)
        if self._matting is not None:
            self._matting.set_param("alpha_matting", bool(on))

    @Slot(bool)
    def _on_int8(self, on: bool) -> None:
        self.options.int8 = bool(on)
        if self._matting is not None:
            self._matting.set_param("int8", bool(on))

    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.refresh_models()

    def models_changed(self) -> None:
        self.refresh_models()

    def model_imported(self, model_id: str) -> None:
        """Select the model the user just imported (listed by its short name when the manifest knows it)."""
        self.refresh_models()
        spec = spec_for(model_id)
        self.model_picker.select(spec.key if spec is not None else model_id)
        self._apply_model()

    def use_recommended(self, model_ids: list[str]) -> None:
        """The recommended set is ready: use its first model (the all-round one) for stills."""
        if model_ids:
            self.model_imported(model_ids[0])

    def devices_changed(self) -> None:
        camera = describe_camera(self.context.settings.devices.camera, self.context.device_report)
        self.live_panel.set_device_text(camera)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.choices and not any(c.ready for c in self.choices):
            self.refresh_models()  # a model may have been downloaded meanwhile

    # ---- the model worker -----------------------------------------------------------------------------
    def _ensure_matting(self) -> Any:
        worker = self._matting
        if worker is not None and (worker.state == "failed" or self._matting_store is not self.store):
            self._retire_matting()
            worker = None
        if worker is None:
            from workers.matting.worker import MattingWorker

            device = getattr(self.context.settings, "compute", "auto")
            # "matting_live" in the extras: the worker's live settings (fast_model, min_fps, measure) in tests
            worker = MattingWorker(self.store, self.options.copy(), device=device,
                                   **self.context.extras.get("matting_live", {}))
            self._connect_jobs(worker)
            worker.progress.connect(self._on_progress)
            worker.result_ready.connect(self._on_live_result)
            worker.stats.connect(self._on_live_stats)
            worker.live_plan.connect(self._on_live_plan)
            worker.live_measuring.connect(self._on_live_measuring)
            worker.error.connect(self._on_worker_error)
            worker.stream_halted.connect(self._on_stream_halted)
            worker.recording_saved.connect(self._on_recording_saved)
            worker.recording_failed.connect(self._on_recording_failed)
            worker.set_param("background", self.background)
            worker.start()
            self._matting = worker
            self._matting_store = self.store
        return worker

    def _retire_matting(self) -> None:
        worker, self._matting = self._matting, None
        if worker is None:
            return
        for job_id, job in list(self._jobs.items()):
            if job.kind in ON_MODEL:
                self._end_entry_job(job)
                self._finish_job(job_id)
        worker.stop()

    # ---- state ---------------------------------------------------------------------------------------
    def _show_view(self, widget: QWidget) -> None:
        """The empty state, the canvas (with its touch-up bar) or the live view."""
        self.stack.setCurrentWidget(widget)
        self.edit_bar.setVisible(widget is self.canvas)
        self.live_action.setChecked(widget is self.live_page)

    def _update_actions(self) -> None:
        entry = self.current
        has_image = entry is not None and entry.image is not None
        has_mask = has_image and entry is not None and entry.alpha is not None
        busy = bool(entry.busy) if entry is not None else False
        live = self.stack.currentWidget() is self.live_page  # a stopped live view keeps its page
        edit = has_mask and not live
        self.remove_action.setEnabled(has_image and not busy and not live)
        self.refine_action.setEnabled(edit and not busy)
        for action in (self.brush_add_action, self.brush_erase_action):
            action.setEnabled(edit)
        self.brush_size.setEnabled(edit)
        self.undo_action.setEnabled(entry is not None and entry.history.can_undo and not busy and not live)
        self.redo_action.setEnabled(entry is not None and entry.history.can_redo and not busy and not live)
        self.export_action.setEnabled(edit)
        for action in (self.fit_action, self.actual_action):
            action.setEnabled(has_image and not live)
        self.view_combo.setEnabled(has_mask)
        long_job = self._busy_with("batch", "video")
        for action in (self.batch_action, self.video_action, self.live_action):
            action.setEnabled(not long_job)
        if not live and self.current is None and self.stack.currentWidget() is not self.empty_page:
            self._show_view(self.empty_page)
        reason = "Live needs the model: wait for the batch or video to finish." if long_job else self._model_problem()
        self.live_panel.set_available(not reason, reason)

    # ---- drag and drop -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.empty_page.set_dropping(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: Any) -> None:
        self.empty_page.set_dropping(False)

    def dragMoveEvent(self, event: Any) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self.empty_page.set_dropping(False)
        paths = _local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if self.stack.currentWidget() is self.live_page:
            self.stop_live()
        self.add_paths(paths)

    # ---- shutdown ------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the camera, cancel work and join every thread (the window is closing)."""
        if self._closing:
            return
        self._closing = True
        unsaved = [e.name for e in self.entries if e.unsaved]
        if unsaved:
            log.info("Closing with unexported edits on: %s", ", ".join(unsaved))
        self.stop_live()
        for worker in (self._matting, self._tasks, self._thumbs):
            if worker is not None:
                worker.stop()
        self._jobs.clear()


def _local_paths(mime: Any) -> list[str]:
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]

