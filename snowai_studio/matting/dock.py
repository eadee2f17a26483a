"""The background-removal dock: open images, cut out the subject, touch up the mask, export.

Everything heavy runs off the UI thread:

- a :class:`~workers.matting.worker.MattingWorker` (built when first needed) owns the model; it
  finds the alpha of one image (``remove``), runs folder batches and video files as jobs, and
  serves the live camera stream (a :class:`~workers.media.worker.CameraWorker` pushes frames to it);
- a plain :class:`~workers.base.Worker` decodes images, refines masks with GrabCut, prepares
  background previews and writes exports; another one makes thumbnails, so a folder of hundreds of
  photos never delays the image being looked at.

The dock talks to them through signals only. Each image keeps its own mask, strokes and undo
history while the user moves between images. Every problem becomes one sentence on the dock's
message line and, through logging, in the notifications panel; nothing is lost on a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPixmap,
    QShowEvent,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.context import StudioContext
from snowai_studio.matting.canvas import VIEW_MODES, MattingCanvas, Stroke
from snowai_studio.matting.state import SEED_BACKGROUND, SEED_SUBJECT, ImageEntry, make_thumbnail, path_key
from snowai_studio.tool_dock import camera_factory, open_model_manager, pictures_dir, videos_dir
from snowai_studio.widgets.problem_bar import ProblemBar
from snowai_studio.widgets.status_rows import MessageLine, ProgressRow, message_icons
from snowai_studio.widgets.video_view import VideoView
from workers.base import Worker
from workers.errors import UserError, describe_exception
from workers.matting.batch import expand_inputs
from workers.matting.compose import Background, background_layer, composite
from workers.matting.options import DEFAULT_MODEL, MattingOptions, ModelChoice, available_models
from workers.matting.refine import grabcut_refine
from workers.media.imageio import IMAGE_EXTENSIONS, load_image, output_path, save_image

log = logging.getLogger(__name__)

FORMATS = {"png": "PNG (transparent)", "webp": "WebP (transparent)", "jpg": "JPEG (with the background)"}
VIDEO_SUFFIXES = {".webm": "WebM, VP9 with transparency", ".mov": "MOV, ProRes 4444 with transparency", ".mp4": "MP4"}
BACKGROUNDS = {"transparent": "Transparent", "color": "Colour…", "blur": "Blur", "image": "Image…"}
IMAGE_FILTER = "Images ({})".format(" ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS)))
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.webm *.avi *.m4v);;All files (*)"
#: Thumbnails of more images than this are still listed; only their pixels load later.
EMPTY_TEXT = "Drop images here or Open…"


@dataclass
class _Job:
    kind: str  # load | thumb | remove | refine | export | layer | batch | video
    entry: ImageEntry | None = None
    extra: Any = None
    ignored: bool = False
    #: What the progress bar says while this job runs, and its step count (0: busy, no count).
    label: str = ""
    total: int = 0


class _ModelCombo(QComboBox):
    """A combo box that refreshes its list just before it opens."""

    about_to_open = Signal()

    def showPopup(self) -> None:
        self.about_to_open.emit()
        super().showPopup()


class MattingDock(QWidget):
    """Background removal for a creator: a canvas, a brush, exports, batches, video and live."""

    #: Emitted when the current image or its mask changes (tests and scripting).
    image_changed = Signal()
    #: A job of the dock ended: its kind ("remove", "export", "batch"...) and whether it succeeded.
    job_done = Signal(str, bool)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mattingDock")
        self.context = context
        self.entries: list[ImageEntry] = []
        self.current: ImageEntry | None = None
        self.background = Background()
        self.options = MattingOptions()
        self.choices: list[ModelChoice] = []
        self.last_message = ""
        self.last_level = "info"
        self.last_report: Any = None
        self._jobs: dict[int, _Job] = {}
        self._matting: Any = None
        self._matting_store: Any = None
        self._camera: Any = None
        self._layer_generation = 0
        self._progress_job: _Job | None = None
        self._closing = False

        self._tasks = self._start_helper("Background removal")
        self._thumbs = self._start_helper("Background removal thumbnails")
        self._build_ui()
        self.setAcceptDrops(True)
        self.refresh_models()
        self._update_actions()

    # ---- construction ----------------------------------------------------------------------------
    def _start_helper(self, name: str) -> Worker:
        worker = Worker()
        worker.name = name
        worker.job_finished.connect(self._on_job_finished)
        worker.job_failed.connect(self._on_job_failed)
        worker.job_cancelled.connect(self._on_job_cancelled)
        worker.start()
        return worker

    def _action(self, text: str, slot: Callable[[], Any], tip: str = "", shortcut: str | QKeySequence = "") -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip or text)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.setToolTip(
                f"{tip or text} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})"
            )
            self.addAction(action)
        return action

    def _toolbar(self) -> QToolBar:
        bar = QToolBar()
        bar.setIconSize(QSize(16, 16))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.setMovable(False)
        return bar

    def _build_ui(self) -> None:
        style = self.style()
        # Row 1: input, model, run.
        top = self._toolbar()
        self.open_action = self._action("Open images…", self.open_images, "Open one or more image files")
        self.open_folder_action = self._action("Open folder…", self.open_folder, "Open every image of a folder")
        top.addAction(self.open_action)
        top.addAction(self.open_folder_action)
        top.addSeparator()
        top.addWidget(QLabel(" Model "))
        self.model_combo = _ModelCombo()
        self.model_combo.setObjectName("mattingModel")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.setMinimumContentsLength(14)
        self.model_combo.about_to_open.connect(self.refresh_models)
        self.model_combo.currentIndexChanged.connect(self._on_model_chosen)
        top.addWidget(self.model_combo)
        self.models_action = self._action("Models…", self.open_model_manager, "Download or import models")
        top.addAction(self.models_action)
        self.alpha_matting = QCheckBox("Alpha matting")
        self.alpha_matting.setToolTip("Finer hair and fur edges (slower)")
        self.alpha_matting.toggled.connect(self._on_alpha_matting)
        top.addWidget(self.alpha_matting)
        self.remove_action = self._action(
            "Remove background", self.remove_background, "Cut out the subject with the chosen model", "Ctrl+R"
        )
        top.addAction(self.remove_action)
        bold = top.widgetForAction(self.remove_action)
        if isinstance(bold, QToolButton):
            bold.setObjectName("removeButton")
            font = bold.font()
            font.setBold(True)
            bold.setFont(font)

        # Row 2: touch-up and view.
        edit = self._toolbar()
        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.brush_add_action = self._action("Brush add", lambda: self._on_tool(), "Paint the subject back in", "B")
        self.brush_erase_action = self._action(
            "Brush erase", lambda: self._on_tool(), "Erase background left over", "E"
        )
        for action in (self.brush_add_action, self.brush_erase_action):
            action.setCheckable(True)
            self.tool_group.addAction(action)
            edit.addAction(action)
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 1000)
        self.brush_size.setValue(20)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush radius in image pixels ([ and ] change it)")
        edit.addWidget(self.brush_size)
        edit.addSeparator()
        self.refine_action = self._action(
            "Refine edges", self.refine_edges, "Let the outline follow the photo's edges, guided by your strokes"
        )
        edit.addAction(self.refine_action)
        edit.addSeparator()
        self.undo_action = self._action("Undo", self.undo, "Undo", QKeySequence("Ctrl+Z"))
        self.redo_action = self._action("Redo", self.redo, "Redo", QKeySequence("Ctrl+Shift+Z"))
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        edit.addSeparator()
        self.view_combo = QComboBox()
        for mode, label in VIEW_MODES.items():
            self.view_combo.addItem(label, mode)
        self.view_combo.setToolTip("What the canvas shows")
        edit.addWidget(self.view_combo)
        self.fit_action = self._action("Fit", lambda: self.canvas.fit(), "Show the whole image", "F")
        self.actual_action = self._action(
            "100%", lambda: self.canvas.actual_size(), "One image pixel per screen pixel", "1"
        )
        edit.addAction(self.fit_action)
        edit.addAction(self.actual_action)

        # Row 3: output.
        out = self._toolbar()
        out.addWidget(QLabel(" Background "))
        self.background_combo = QComboBox()
        for kind, label in BACKGROUNDS.items():
            self.background_combo.addItem(label, kind)
        self.background_combo.setToolTip("What goes behind the subject in the preview and the export")
        self.background_combo.activated.connect(self._on_background_chosen)
        out.addWidget(self.background_combo)
        self.format_combo = QComboBox()
        for fmt, label in FORMATS.items():
            self.format_combo.addItem(label, fmt)
        self.format_combo.setToolTip("The file format of exports and batches")
        out.addWidget(self.format_combo)
        self.export_action = self._action(
            "Export…", self.export_image, "Save the cut-out (the original is kept)", "Ctrl+S"
        )
        out.addAction(self.export_action)
        out.addSeparator()
        self.batch_action = self._action("Batch folder…", self.batch_folder, "Cut out every image of a folder")
        self.video_action = self._action("Video file…", self.open_video, "Replace the background of a video file")
        self.live_action = self._action("Live…", self.toggle_live, "Remove the background of the camera, live")
        out.addAction(self.batch_action)
        out.addAction(self.video_action)
        out.addAction(self.live_action)
        self.live_action.setCheckable(True)

        # Pages: empty state, canvas, live.
        self.stack = QStackedWidget()
        self.empty_page = self._build_empty_page()
        self.canvas = MattingCanvas()
        self.canvas.setObjectName("mattingCanvas")
        self.canvas.stroke_finished.connect(self._on_stroke)
        self.canvas.brush_radius_changed.connect(lambda r: self.brush_size.setValue(round(r)))
        self.brush_size.valueChanged.connect(lambda v: self.canvas.set_brush_radius(float(v)))
        self.view_combo.currentIndexChanged.connect(lambda _i: self.canvas.set_view_mode(self.view_combo.currentData()))
        self.live_page = self._build_live_page()
        self.stack.addWidget(self.empty_page)
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.live_page)

        self.thumbs = QListWidget()
        self.thumbs.setObjectName("mattingThumbnails")
        self.thumbs.setViewMode(QListView.ViewMode.IconMode)
        self.thumbs.setFlow(QListView.Flow.LeftToRight)
        self.thumbs.setWrapping(False)
        self.thumbs.setMovement(QListView.Movement.Static)
        self.thumbs.setIconSize(QSize(52, 52))
        self.thumbs.setGridSize(QSize(104, 78))
        self.thumbs.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.thumbs.setFixedHeight(96)
        self.thumbs.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.thumbs.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.thumbs.currentItemChanged.connect(self._on_thumb_changed)
        self.thumbs.hide()

        # Progress and the batch report.
        self.progress_box = ProgressRow()
        self.progress = self.progress_box.bar
        self.cancel_button = self.progress_box.cancel_button
        self.cancel_button.clicked.connect(self.cancel)

        self.report_list = QListWidget()
        self.report_list.setObjectName("mattingReport")
        self.report_list.setMaximumHeight(110)
        self.report_list.setAlternatingRowColors(True)
        self.report_title = QLabel()
        hide_report = QPushButton("Hide")
        hide_report.clicked.connect(lambda: self.report_box.hide())
        report_head = QHBoxLayout()
        report_head.setContentsMargins(0, 0, 0, 0)
        report_head.addWidget(self.report_title, 1)
        report_head.addWidget(hide_report)
        report_layout = QVBoxLayout()
        report_layout.setContentsMargins(0, 0, 0, 0)
        report_layout.addLayout(report_head)
        report_layout.addWidget(self.report_list)
        self.report_box = QWidget()
        self.report_box.setLayout(report_layout)
        self.report_box.hide()

        self.message_line = MessageLine("mattingMessage")
        self.message_icon = self.message_line.icon
        self.message_label = self.message_line.label
        self._icons = message_icons(style)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(top)
        layout.addWidget(edit)
        layout.addWidget(out)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.thumbs)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.report_box)
        layout.addWidget(self.message_line)

    def _build_empty_page(self) -> QWidget:
        page = QFrame()
        page.setObjectName("mattingEmpty")
        page.setStyleSheet(
            "#mattingEmpty { border: 2px dashed palette(mid); border-radius: 14px; }"
            '#mattingEmpty[dropping="true"] { border-color: palette(highlight); }'
        )
        title = QLabel(EMPTY_TEXT)
        title.setObjectName("mattingEmptyTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        explain = QLabel(
            "Drag photos or whole folders onto this panel. The subject is cut out on this computer; "
            "touch up the edges with the brush, pick a new background, and export a PNG or WebP with "
            "transparency (the original file is never changed)."
        )
        explain.setWordWrap(True)
        explain.setAlignment(Qt.AlignmentFlag.AlignCenter)
        explain.setMaximumWidth(560)
        explain_row = QHBoxLayout()
        explain_row.addStretch(1)
        explain_row.addWidget(explain, 4)
        explain_row.addStretch(1)
        open_images = QPushButton("Open images…")
        open_images.clicked.connect(lambda: self.open_images())
        open_folder = QPushButton("Open folder…")
        open_folder.clicked.connect(lambda: self.open_folder())
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(open_images)
        buttons.addWidget(open_folder)
        buttons.addStretch(1)
        self.model_status = QLabel("Checking the models…")
        self.model_status.setObjectName("mattingModelStatus")
        self.model_status.setWordWrap(True)
        self.model_status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_manager_button = QPushButton("Open the model manager")
        self.model_manager_button.clicked.connect(lambda: self.open_model_manager())
        manager_row = QHBoxLayout()
        manager_row.addStretch(1)
        manager_row.addWidget(self.model_manager_button)
        manager_row.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addSpacing(8)
        layout.addLayout(explain_row)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addSpacing(18)
        layout.addWidget(self.model_status)
        layout.addLayout(manager_row)
        layout.addStretch(3)
        return page

    def _build_live_page(self) -> QWidget:
        page = QWidget()
        self.live_view = VideoView(placeholder="Starting the camera…")
        self.live_view.setObjectName("mattingLiveView")
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the live result to an MP4 file")
        self.record_button.toggled.connect(self._on_record_toggled)
        stop = QPushButton("Stop live")
        stop.clicked.connect(lambda: self.stop_live())
        self.live_status = QLabel()
        # What stopped the live picture (the camera, or the model failing on every frame), with Retry.
        self.live_problem = ProblemBar("mattingLiveProblem")
        self.live_problem.retry_requested.connect(self.retry_live)
        row = QHBoxLayout()
        row.addWidget(self.live_status, 1)
        row.addWidget(self.record_button)
        row.addWidget(stop)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.live_view, 1)
        layout.addWidget(self.live_problem)
        layout.addLayout(row)
        return page

    # ---- messages ------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the dock's message line; warnings and errors also go to the log
        (and so to the notifications panel) unless a worker already reported them."""
        self.last_message = text
        self.last_level = level
        self.message_line.report(text, level, source="Background removal", logger=log, notify=notify)

    # ---- models -----------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.context.model_store

    @Slot()
    def refresh_models(self) -> None:
        """List the matting models and their state (ready ones selectable, others greyed)."""
        store = self.store
        try:
            choices = available_models(store) if store is not None else []
        except Exception as exc:
            choices = []
            self.show_message(describe_exception(exc, "The model list could not be read"), "warning")
        keep = self.model_combo.currentData() or self.options.model
        self.choices = choices
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        model = combo.model()
        for i, choice in enumerate(choices):
            combo.addItem(choice.name, choice.id)
            tip = choice.note if choice.ready else f"{choice.name}: download it in the model manager. {choice.note}"
            combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
            if not choice.ready and isinstance(model, QStandardItemModel):
                item = model.item(i)
                if item is not None:
                    item.setEnabled(False)
        index = combo.findData(keep)
        if index < 0 or not choices[index].ready:
            ready = [i for i, c in enumerate(choices) if c.ready]
            preferred = combo.findData(DEFAULT_MODEL)
            if ready:
                index = preferred if preferred in ready else ready[0]
            elif index < 0:
                index = preferred if preferred >= 0 else (0 if choices else -1)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        self._on_model_chosen(index)
        self._update_model_status()

    def current_choice(self) -> ModelChoice | None:
        index = self.model_combo.currentIndex()
        return self.choices[index] if 0 <= index < len(self.choices) else None

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

    def _update_model_status(self) -> None:
        problem = self._model_problem()
        if problem:
            self.model_status.setText(problem)
            self.model_manager_button.show()
        else:
            choice = self.current_choice()
            assert choice is not None
            self.model_status.setText(f"Model: {choice.name} (ready).")
            self.model_manager_button.hide()

    @Slot(int)
    def _on_model_chosen(self, index: int) -> None:
        choice = self.choices[index] if 0 <= index < len(self.choices) else None
        if choice is None or choice.id == self.options.model:
            self._update_model_status()
            return
        self.options.model = choice.id
        if self._matting is not None:
            self._matting.set_param("model", choice.id)
        self._update_model_status()

    @Slot(bool)
    def _on_alpha_matting(self, on: bool) -> None:
        self.options.alpha_matting = bool(on)
        if self._matting is not None:
            self._matting.set_param("alpha_matting", bool(on))

    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.refresh_models()

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
            worker = MattingWorker(self.store, self.options.copy(), device=device)
            worker.job_finished.connect(self._on_job_finished)
            worker.job_failed.connect(self._on_job_failed)
            worker.job_cancelled.connect(self._on_job_cancelled)
            worker.progress.connect(self._on_progress)
            worker.result_ready.connect(self._on_live_result)
            worker.stats.connect(self._on_live_stats)
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
            if job.kind in ("remove", "batch", "video"):
                self._end_entry_job(job)
                self._finish_job(job_id)
        worker.stop()

    @property
    def matting_worker(self) -> Any:
        return self._matting

    # ---- images -------------------------------------------------------------------------------------
    def open_images(self, paths: Iterable[str | Path] | None = None) -> list[ImageEntry]:
        if paths is None:
            start = str(self.current.path.parent) if self.current else pictures_dir()
            names, _ = QFileDialog.getOpenFileNames(self, "Open images", start, f"{IMAGE_FILTER};;All files (*)")
            paths = names
        return self.add_paths(list(paths))

    def open_folder(self, folder: str | Path | None = None) -> list[ImageEntry]:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", pictures_dir())
            if not folder:
                return []
        return self.add_paths([folder])

    def add_paths(self, paths: list[str | Path]) -> list[ImageEntry]:
        """Add image files and folders (their images) to the list; shows the first new one."""
        if not paths:
            return []
        found, unmatched = expand_inputs([str(p) for p in paths])
        files = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
        unmatched += [str(f) for f in found if f.suffix.lower() not in IMAGE_EXTENSIONS]
        known = {e.key: e for e in self.entries}
        added: list[ImageEntry] = []
        for path in files:
            key = path_key(path)
            if key in known:
                continue
            entry = ImageEntry(Path(path))
            known[key] = entry
            self.entries.append(entry)
            added.append(entry)
            self._add_thumbnail(entry)
        if unmatched:
            names = ", ".join(Path(u).name or u for u in unmatched[:5])
            more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
            if all(not Path(u).expanduser().exists() for u in unmatched):
                self.show_message(f"Not found: {names}{more}.", "warning")
            elif all(Path(u).expanduser().is_dir() for u in unmatched):
                self.show_message(f"There are no images the studio can open in {names}{more}.", "warning")
            else:
                self.show_message(f"Not an image the studio can open: {names}{more}.", "warning")
        elif not added and files:
            self.show_message("These images are already open.")
        first = added[0] if added else (known.get(path_key(files[0])) if files else None)
        if first is not None:
            self.select(first)
        if len(added) > 1:
            self.show_message(f"{len(added)} images added; click a thumbnail to switch between them.")
        self.thumbs.setVisible(len(self.entries) > 1 and self._camera is None)
        self._update_actions()
        return added

    def _add_thumbnail(self, entry: ImageEntry) -> None:
        item = QListWidgetItem(entry.name)
        item.setData(Qt.ItemDataRole.UserRole, entry.key)
        item.setToolTip(str(entry.path))
        item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.thumbs.addItem(item)
        path = entry.path
        job = self._thumbs.submit(lambda ctx: _thumbnail_or_reason(path))
        self._jobs[job] = _Job("thumb", entry)

    def _item_of(self, entry: ImageEntry) -> QListWidgetItem | None:
        for i in range(self.thumbs.count()):
            item = self.thumbs.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == entry.key:
                return item
        return None

    def _entry_of_key(self, key: str) -> ImageEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    @Slot(object, object)
    def _on_thumb_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is None:
            return
        entry = self._entry_of_key(item.data(Qt.ItemDataRole.UserRole))
        if entry is not None and entry is not self.current:
            self.select(entry)

    def select(self, entry: ImageEntry) -> None:
        """Show ``entry`` (its own mask and history come with it)."""
        previous = self.current
        if previous is not None and previous is not entry:
            previous.drop_pixels()
        self.current = entry
        item = self._item_of(entry)
        if item is not None and self.thumbs.currentItem() is not item:
            self.thumbs.blockSignals(True)
            self.thumbs.setCurrentItem(item)
            self.thumbs.blockSignals(False)
        if self.stack.currentWidget() is not self.live_page:
            self.stack.setCurrentWidget(self.canvas)
        if entry.image is None:
            self.canvas.set_image(None)
            self.canvas.set_placeholder(f"Opening {entry.name}…")
            self.canvas.set_hint("")
            if not entry.loading:
                entry.loading = True
                path = entry.path
                job = self._tasks.submit(lambda ctx: load_image(path))
                self._jobs[job] = _Job("load", entry)
        else:
            self._show_entry(entry)
        self._update_actions()

    def _show_entry(self, entry: ImageEntry) -> None:
        image = entry.image
        assert image is not None
        self.canvas.set_image(image.bgr, entry.alpha)
        self._update_hint()
        self._request_layer()
        self.image_changed.emit()

    def _update_hint(self) -> None:
        entry = self.current
        if entry is None or entry.image is None:
            self.canvas.set_hint("")
        elif entry.busy == "remove":
            self.canvas.set_hint("Removing the background…")
        elif entry.busy == "refine":
            self.canvas.set_hint("Refining the edges…")
        elif entry.alpha is None:
            self.canvas.set_hint("Press Remove background to cut out the subject")
        else:
            self.canvas.set_hint("")

    # ---- remove, brush, refine, undo ------------------------------------------------------------------
    def remove_background(self) -> int | None:
        """Run the model on the current image; returns the job id (None when it cannot start)."""
        entry = self.current
        if entry is None:
            self.show_message("Open an image first: drop it here or use Open images….")
            return None
        if entry.image is None:
            if entry.error:
                self.show_message(_strip_source(entry.error), "error", notify=False)
            else:
                self.show_message(f"{entry.name} is still opening; try again in a moment.")
            return None
        if entry.busy:
            self.show_message(f"{entry.name} is already being worked on.")
            return None
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            return None
        worker = self._ensure_matting()
        job = worker.remove(entry.image)
        self._jobs[job] = _Job("remove", entry, label=f"Removing the background of {entry.name}…")
        entry.busy = "remove"
        self._update_busy()
        self._update_hint()
        self._update_actions()
        return job

    def _on_tool(self) -> None:
        if self.brush_add_action.isChecked():
            self.canvas.set_tool("add")
        elif self.brush_erase_action.isChecked():
            self.canvas.set_tool("erase")
        else:
            self.canvas.set_tool("none")

    def set_tool(self, tool: str) -> None:
        """ "add", "erase" or "none" (pan)."""
        self.brush_add_action.setChecked(tool == "add")
        self.brush_erase_action.setChecked(tool == "erase")
        self._on_tool()

    @Slot(object)
    def _on_stroke(self, stroke: Stroke) -> None:
        entry = self.current
        if entry is None or entry.alpha is None or self.canvas.alpha is not entry.alpha:
            return
        entry.add_stroke(stroke.points, stroke.radius, stroke.add)
        self._mark_unsaved(entry)
        self._update_actions()
        self.image_changed.emit()

    def refine_edges(self) -> int | None:
        """GrabCut on the current mask and strokes (off the UI thread); returns the job id."""
        entry = self.current
        if entry is None or entry.image is None or entry.alpha is None:
            self.show_message("Remove the background first; then Refine edges tightens the outline.")
            return None
        if entry.busy:
            self.show_message(f"{entry.name} is already being worked on.")
            return None
        bgr = entry.image.bgr
        alpha = entry.alpha.copy()
        seeds = entry.seeds.copy() if entry.seeds is not None else np.zeros_like(alpha)

        def job(ctx: Any) -> np.ndarray:
            return grabcut_refine(bgr, alpha, sure_fg=seeds == SEED_SUBJECT, sure_bg=seeds == SEED_BACKGROUND)

        job_id = self._tasks.submit(job)
        self._jobs[job_id] = _Job("refine", entry, entry.history.version, label=f"Refining the edges of {entry.name}…")
        entry.busy = "refine"
        self.canvas.editable = False
        self._update_busy()
        self._update_hint()
        self._update_actions()
        return job_id

    def undo(self) -> bool:
        return self._step_history(redo=False)

    def redo(self) -> bool:
        return self._step_history(redo=True)

    def _step_history(self, *, redo: bool) -> bool:
        entry = self.current
        if entry is None or entry.busy or not (entry.redo() if redo else entry.undo()):
            return False
        self.canvas.set_alpha(entry.alpha)
        self._mark_unsaved(entry)
        self._update_actions()
        self.image_changed.emit()
        return True

    def _mark_unsaved(self, entry: ImageEntry) -> None:
        item = self._item_of(entry)
        if item is not None:
            item.setText(("• " if entry.unsaved else "") + entry.name)

    # ---- background ---------------------------------------------------------------------------------
    @Slot(int)
    def _on_background_chosen(self, index: int) -> None:
        kind = self.background_combo.itemData(index)
        if kind == "color":
            r, g, b = self.background.color
            colour = QColorDialog.getColor(QColor(r, g, b), self, "Background colour")
            if colour.isValid():
                self.set_background(Background(kind="color", color=(colour.red(), colour.green(), colour.blue())))
            else:
                self._sync_background_combo()
        elif kind == "image":
            name, _ = QFileDialog.getOpenFileName(self, "Background image", pictures_dir(), IMAGE_FILTER)
            if name:
                self.set_background_image(name)
            else:
                self._sync_background_combo()
        elif kind == "blur":
            self.set_background(Background(kind="blur", blur=self.background.blur or 31))
        else:
            self.set_background(Background())

    def set_background_image(self, path: str | Path) -> bool:
        try:
            image = load_image(path)
        except UserError as exc:
            self.show_message(f"The background image {exc}", "error")
            self._sync_background_combo()
            return False
        self.set_background(Background(kind="image", image=image.bgr))
        return True

    def set_background(self, background: Background) -> None:
        """Preview (and later export) the subject over ``background``."""
        self.background = background
        self._sync_background_combo()
        if self._matting is not None:
            self._matting.set_param("background", background)
        jpeg = self.format_combo.findData("jpg")
        if background.kind == "transparent" and self.format_combo.currentIndex() == jpeg:
            self.format_combo.setCurrentIndex(self.format_combo.findData("png"))
        self._request_layer()

    def _sync_background_combo(self) -> None:
        self.background_combo.blockSignals(True)
        self.background_combo.setCurrentIndex(self.background_combo.findData(self.background.kind))
        self.background_combo.blockSignals(False)
        if self.background.kind == "color":
            r, g, b = self.background.color
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(r, g, b))
            self.background_combo.setItemIcon(self.background_combo.findData("color"), QIcon(swatch))

    def _request_layer(self) -> None:
        """Compute the background behind the preview for the current image (off the UI thread)."""
        self._layer_generation += 1
        entry = self.current
        if entry is None or entry.image is None:
            return
        background = self.background
        if background.kind == "transparent":
            self.canvas.set_background_layer(None)
            return
        bgr = entry.image.bgr
        if background.kind == "color":
            self.canvas.set_background_layer(background_layer(bgr, background))
            return
        job = self._tasks.submit(lambda ctx: background_layer(bgr, background))
        self._jobs[job] = _Job("layer", entry, self._layer_generation)

    # ---- export -----------------------------------------------------------------------------------
    def export_image(self, path: str | Path | None = None) -> int | None:
        """Save the current cut-out (PNG/WebP keep transparency; JPEG gets the background).

        Never writes over the image that was opened. Returns the job id.
        """
        entry = self.current
        if entry is None or entry.image is None or entry.alpha is None:
            self.show_message("Nothing to export yet: open an image and press Remove background.")
            return None
        fmt = self.format_combo.currentData() or "png"
        if path is None:
            default = output_path(entry.path, entry.path.parent, fmt)
            filters = "PNG image (*.png);;WebP image (*.webp);;JPEG image (*.jpg *.jpeg)"
            chosen = {"png": "PNG image (*.png)", "webp": "WebP image (*.webp)", "jpg": "JPEG image (*.jpg *.jpeg)"}
            name, _ = QFileDialog.getSaveFileName(self, "Export the cut-out", str(default), filters, chosen[fmt])
            if not name:
                return None
            path = name
        target = Path(path).expanduser()
        if not target.suffix:
            target = target.with_suffix("." + fmt)
        if path_key(target) == entry.key:
            self.show_message(
                f"{target.name} is the image you opened; choose another name (the original is never overwritten).",
                "warning",
            )
            return None
        background = self.background
        jpeg = target.suffix.lower() in (".jpg", ".jpeg")
        note = ""
        if jpeg and background.kind == "transparent":
            background = Background(kind="color", color=(255, 255, 255))
            note = " JPEG has no transparency, so the background is white."
        bgr = entry.image.bgr
        alpha = entry.alpha.copy()
        version = entry.history.version

        def job(ctx: Any) -> Path:
            return save_image(target, composite(bgr, alpha, background))

        job_id = self._tasks.submit(job)
        self._jobs[job_id] = _Job("export", entry, (version, note))
        self.show_message(f"Saving {target.name}…")
        return job_id

    # ---- batch and video ----------------------------------------------------------------------------
    def batch_folder(self, folder: str | Path | None = None, outdir: str | Path | None = None) -> int | None:
        """Cut out every image of ``folder`` into ``outdir`` (default: a sibling ``<folder>-nobg``)."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Batch: choose a folder of images", pictures_dir())
            if not folder:
                return None
        folder = Path(folder).expanduser()
        if self._busy_with("batch", "video"):
            self.show_message("A batch or video is already running; wait for it or cancel it.")
            return None
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            return None
        files, _ = expand_inputs([str(folder)])
        if not files:
            self.show_message(f"There are no images in {folder}.", "warning")
            return None
        fmt = self.format_combo.currentData() or "png"
        out = Path(outdir).expanduser() if outdir is not None else folder.parent / f"{folder.name}-nobg"
        background = self.background
        if fmt == "jpg" and background.kind == "transparent":
            background = Background(kind="color", color=(255, 255, 255))
        if self._camera is not None:
            self.stop_live()
        worker = self._ensure_matting()
        job = worker.batch(files, out, background, fmt)
        self._jobs[job] = _Job("batch", None, (out, len(files)), label=f"Batch into {out.name}:", total=len(files))
        self.report_box.hide()
        self._update_busy()
        self.show_message(f"Cutting out {len(files)} images from {folder.name} into {out}…")
        self._update_actions()
        return job

    def open_video(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Replace the background of every frame of a video file (.webm/.mov keep transparency)."""
        if src is None:
            src, _ = QFileDialog.getOpenFileName(self, "Choose a video", videos_dir(), VIDEO_FILTER)
            if not src:
                return None
        src = Path(src).expanduser()
        if dst is None:
            suggestion = src.with_name(f"{src.stem}-nobg.webm")
            filters = ";;".join(f"{label} (*{suffix})" for suffix, label in VIDEO_SUFFIXES.items())
            dst, _ = QFileDialog.getSaveFileName(self, "Save the video as", str(suggestion), filters)
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".webm")
        if dst.suffix.lower() not in VIDEO_SUFFIXES:
            self.show_message(f"{dst.name}: choose .webm or .mov (with transparency) or .mp4.", "warning")
            return None
        if path_key(dst) == path_key(src):
            self.show_message("Choose another file name: the source video is never overwritten.", "warning")
            return None
        if self._busy_with("batch", "video"):
            self.show_message("A batch or video is already running; wait for it or cancel it.")
            return None
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            return None
        if self._camera is not None:
            self.stop_live()
        worker = self._ensure_matting()
        job = worker.video(src, dst, self.background)
        self._jobs[job] = _Job("video", None, dst, label=f"Video {src.name} → {dst.name}:", total=100)
        self._update_busy()
        self.show_message(f"Processing {src.name} into {dst.name}…")
        self._update_actions()
        return job

    @Slot()
    def cancel(self) -> None:
        """Stop the running batch, video, removal or refinement; finished work is kept."""
        cancelled = False
        for job_id, job in list(self._jobs.items()):
            if job.kind in ("remove", "batch", "video"):
                cancelled = True
            elif job.kind == "refine":
                job.ignored = True
                self._end_entry_job(job)
                self._finish_job(job_id)
                cancelled = True
        if cancelled and self._matting is not None:
            self._matting.cancel()
        if cancelled:
            self.show_message("Cancelling…")
        self._update_busy()

    # ---- live ----------------------------------------------------------------------------------------
    def toggle_live(self) -> None:
        if self._camera is None:
            self.start_live()
        else:
            self.stop_live()

    def start_live(self) -> bool:
        """Cut out the camera picture live (the camera from Settings, or an injected one)."""
        if self._camera is not None:
            return True
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            self.live_action.setChecked(False)
            return False
        if self._busy_with("batch", "video"):
            self.show_message("Live needs the model: wait for the batch or video to finish, or cancel it.")
            self.live_action.setChecked(False)
            return False
        from workers.media.worker import CameraWorker

        worker = self._ensure_matting()
        if worker.halted:
            worker.resume_stream()  # the model stopped after repeated failures: try it again
        camera = CameraWorker(camera_factory(self.context))
        camera.error.connect(self._on_camera_error)  # a bound slot: runs on the UI thread
        camera.state_changed.connect(self._on_camera_state)
        camera.stream_halted.connect(self._on_stream_halted)
        camera.add_subscriber(worker)
        self._camera = camera
        self.live_problem.clear()
        self.live_view.clear()
        self.live_view.set_placeholder("Starting the camera…")
        self.live_status.setText("")
        self.stack.setCurrentWidget(self.live_page)
        self.thumbs.hide()
        self.live_action.setChecked(True)
        camera.start()
        self.show_message("Live: the background is removed from the camera picture.")
        self._update_actions()
        return True

    def stop_live(self) -> None:
        self._release_live()
        self.live_problem.clear()
        if not self._closing:
            self.stack.setCurrentWidget(self.canvas if self.current is not None else self.empty_page)
            self.thumbs.setVisible(len(self.entries) > 1)
            self._update_actions()

    def _release_live(self) -> None:
        """Stop the camera (its thread joined, the device released) and finish a recording."""
        camera, self._camera = self._camera, None
        if camera is not None:
            if self._matting is not None:
                camera.remove_subscriber(self._matting)
            camera.stop()
        if self._matting is not None and self._matting.recording:
            self._matting.stop_recording()
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.blockSignals(False)
        self.live_action.setChecked(False)

    @Slot()
    def retry_live(self) -> None:
        """Retry after the live picture stopped: the camera and the stream start again, same settings."""
        self.live_problem.clear()
        self._release_live()
        self.start_live()

    def _live_problem(self, message: str) -> None:
        """The camera or the model stopped the live picture: release the camera, keep the last picture
        and say what happened, with Retry."""
        if self._closing:
            return
        self._release_live()
        text = _strip_source(_strip_camera(message))
        self.live_view.set_overlay("")
        self.live_problem.show_problem(text)
        self.live_status.setText("Live stopped.")
        self.show_message(text, "error", notify=False)
        self._update_actions()

    @property
    def live_running(self) -> bool:
        return self._camera is not None

    @Slot(str)
    def _on_camera_error(self, message: str) -> None:
        self.show_message(message, "error", notify=False)

    @Slot(str)
    def _on_stream_halted(self, message: str) -> None:
        if self._camera is not None:
            self._live_problem(message)

    def _on_camera_state(self, state: str) -> None:
        if state == "failed" and self._camera is not None:
            self.live_view.set_placeholder("The camera stopped. Check Devices, then press Live… again.")
            QTimer.singleShot(0, self.stop_live)
        elif state == "ended" and self._camera is not None:
            self._live_problem(CAMERA_STOPPED)

    @Slot()
    def _on_live_result(self) -> None:
        worker = self._matting
        if worker is None:
            return
        result = worker.take_result()
        if result is None or self._camera is None:
            return
        self.live_view.show_frame(result.payload)
        fps = result.meta.get("fps", 0.0) or 0.0
        model_ms = result.meta.get("alpha_ms", result.meta.get("mask_ms", 0.0))
        self.live_view.set_overlay(f"{fps:.1f} fps · {result.latency_ms:.0f} ms latency · model {model_ms:.0f} ms")

    @Slot(dict)
    def _on_live_stats(self, stats: dict) -> None:
        if self._camera is None:
            return
        parts = [f"{stats.get('fps', 0):.1f} fps"]
        if "latency_ms" in stats:
            parts.append(f"{stats['latency_ms']:.0f} ms latency")
        if stats.get("dropped"):
            parts.append(f"{stats['dropped']} frames skipped")
        if stats.get("recording"):
            parts.append(f"recording ({stats.get('recorded_frames', 0)} frames)")
        self.live_status.setText(" · ".join(parts))

    def toggle_recording(self, path: str | Path | None = None) -> bool:
        """Start (with ``path`` or an automatic name) or stop recording the live result."""
        worker = self._matting
        if worker is None or self._camera is None:
            self.show_message("Start Live… first, then record.")
            return False
        if worker.recording:
            worker.stop_recording()
            return False
        if path is None:
            folder = Path(videos_dir())
            path = folder / time.strftime("snowai-live-%Y%m%d-%H%M%S.mp4")
        worker.start_recording(Path(path))
        self.record_button.blockSignals(True)
        self.record_button.setChecked(True)
        self.record_button.blockSignals(False)
        self.show_message(f"Recording to {path}…")
        return True

    @Slot(bool)
    def _on_record_toggled(self, _on: bool) -> None:
        recording = self.toggle_recording()
        self.record_button.blockSignals(True)
        self.record_button.setChecked(recording)
        self.record_button.blockSignals(False)

    @Slot(str)
    def _on_recording_saved(self, path: str) -> None:
        self.show_message(f"Recording saved: {path}")

    @Slot(str)
    def _on_recording_failed(self, message: str) -> None:
        """The recording stopped (say, the disk is full): the Record button says so, the live view goes on."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.blockSignals(False)
        self.show_message(_strip_source(message), "error", notify=False)

    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # Job errors arrive through job_failed as well; this covers the live stream.
        if self._camera is not None:
            self.show_message(_strip_source(message), "error", notify=False)

    # ---- job results --------------------------------------------------------------------------------
    @Slot(int, object)
    def _on_job_finished(self, job_id: int, result: Any) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        self._finish_job(job_id)
        if job.ignored:
            return
        handler = getattr(self, f"_done_{job.kind}")
        try:
            handler(job, result)
        except Exception as exc:  # a bug here must not take the dock down
            log.error("%s", describe_exception(exc, "Background removal"), exc_info=exc)
            self.show_message(describe_exception(exc, "Background removal"), "error", notify=False)
        self.job_done.emit(job.kind, True)

    @Slot(int, str)
    def _on_job_failed(self, job_id: int, message: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        self._finish_job(job_id)
        if job.ignored:
            return
        self._end_entry_job(job)
        entry = job.entry
        if job.kind == "thumb":
            pass
        elif job.kind == "load" and entry is not None:
            entry.loading = False
            entry.error = message
            if entry is self.current:
                self.canvas.set_placeholder(_strip_source(message))
            self.show_message(_strip_source(message), "error", notify=False)
        elif job.kind == "export":
            self.show_message(
                f"{_strip_source(message)} Your edits are kept; export again elsewhere.", "error", notify=False
            )
        elif job.kind == "layer":
            self.show_message(_strip_source(message), "warning", notify=False)
        else:
            self.show_message(_strip_source(message), "error", notify=False)
        self._update_actions()
        self.job_done.emit(job.kind, False)

    @Slot(int)
    def _on_job_cancelled(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        self._finish_job(job_id)
        self._end_entry_job(job)
        if job.kind in ("remove", "batch", "video"):
            self.show_message("Cancelled." if job.kind != "video" else "Cancelled; no video file was written.")
        self._update_actions()
        self.job_done.emit(job.kind, False)

    def _finish_job(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self._update_busy()

    def _end_entry_job(self, job: _Job) -> None:
        entry = job.entry
        if entry is not None and job.kind in ("remove", "refine") and entry.busy == job.kind:
            entry.busy = ""
            if job.kind == "refine":
                self.canvas.editable = True
            if entry is self.current:
                self._update_hint()

    def _done_thumb(self, job: _Job, rgb: np.ndarray | str) -> None:
        entry = job.entry
        assert entry is not None
        item = self._item_of(entry)
        if item is None:
            return
        if isinstance(rgb, str):
            item.setIcon(self._icons["warning"])
            item.setToolTip(f"{entry.path}\n{rgb}")
            return
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
        # Centred on a square so that the names line up under thumbnails of any shape.
        side = max(w, h)
        square = QPixmap(side, side)
        square.fill(Qt.GlobalColor.transparent)
        painter = QPainter(square)
        painter.drawImage((side - w) // 2, (side - h) // 2, image)
        painter.end()
        item.setIcon(QIcon(square))

    def _done_load(self, job: _Job, image: Any) -> None:
        entry = job.entry
        assert entry is not None
        entry.loading = False
        entry.error = ""
        entry.image = image
        if entry is self.current:
            self._show_entry(entry)
            note = getattr(image, "note", "")
            extra = f" ({note})" if note else ""
            if entry.alpha is None:
                self.show_message(
                    f"{entry.name}: {image.bgr.shape[1]}×{image.bgr.shape[0]}{extra}. Press Remove background."
                )
        else:
            entry.drop_pixels()
        self._update_actions()

    def _done_remove(self, job: _Job, result: Any) -> None:
        entry = job.entry
        assert entry is not None
        self._end_entry_job(job)
        alpha = np.asarray(result.alpha)
        if entry.image is None:
            entry.image = result.image
        if alpha.shape != entry.image.bgr.shape[:2]:
            raise UserError(f"The model returned a mask of the wrong size for {entry.name}.")
        entry.set_result(alpha, str(result.model))
        self._mark_unsaved(entry)
        if entry is self.current:
            self.canvas.set_alpha(entry.alpha)
            self._update_hint()
            self.image_changed.emit()
        self.show_message(f"{entry.name}: background removed with {result.model} in {result.ms:.0f} ms.")
        self._update_actions()

    def _done_refine(self, job: _Job, alpha: np.ndarray) -> None:
        entry = job.entry
        assert entry is not None
        self._end_entry_job(job)
        entry.set_refined(alpha)
        self._mark_unsaved(entry)
        if entry is self.current:
            self.canvas.set_alpha(entry.alpha)
            self.image_changed.emit()
        self.show_message(f"{entry.name}: edges refined. Undo (Ctrl+Z) brings the previous mask back.")
        self._update_actions()

    def _done_layer(self, job: _Job, layer: np.ndarray) -> None:
        if job.extra != self._layer_generation or job.entry is not self.current:
            return  # the background or the image changed meanwhile
        self.canvas.set_background_layer(layer)

    def _done_export(self, job: _Job, path: Path) -> None:
        entry = job.entry
        assert entry is not None
        version, note = job.extra
        entry.saved_version = version
        entry.exported_to = Path(path)
        self._mark_unsaved(entry)
        self.show_message(f"Saved {Path(path).name} in {Path(path).parent}.{note}")

    def _done_batch(self, job: _Job, report: Any) -> None:
        out, total = job.extra
        self.last_report = report
        done, failed = len(report.done), len(report.failed)
        stopped = getattr(report, "stopped", "")
        if stopped:
            text = f"Batch stopped: {done} of {total} images saved in {out}. {stopped}"
        elif report.cancelled:
            text = f"Batch cancelled: {done} of {total} images saved in {out}."
        else:
            text = f"Batch finished: {done} images saved in {out}."
        if failed:
            text += f" {failed} skipped (listed below)."
        self.report_list.clear()
        for path, reason in report.failed:
            item = QListWidgetItem(f"{Path(path).name}: {_strip_source(reason)}")
            item.setToolTip(str(path))
            item.setIcon(self._icons["warning"])
            self.report_list.addItem(item)
        if failed:
            self.report_title.setText(f"Skipped files ({failed})")
            self.report_box.show()
        self.show_message(text, "warning" if failed else "info")

    def _done_video(self, job: _Job, path: Path) -> None:
        self.show_message(f"Video saved: {path}")

    # ---- busy state ----------------------------------------------------------------------------------
    def _busy_with(self, *kinds: str) -> bool:
        return any(j.kind in kinds for j in self._jobs.values())

    def _update_busy(self) -> None:
        """Show the progress row for the newest running job that has one, or hide it."""
        visible = [j for j in self._jobs.values() if j.kind in ("remove", "refine", "batch", "video")]
        if not visible:
            self._progress_job = None
            self.progress_box.hide()
            return
        job = visible[-1]
        if job is self._progress_job:
            return
        self._progress_job = job
        if job.total:
            self.progress.setRange(0, job.total)
            self.progress.setFormat(job.label + (" %p%" if job.kind == "video" else " %v of %m"))
        else:
            self.progress.setRange(0, 0)  # busy, no count
            self.progress.setFormat(job.label)
        self.progress.setValue(0)
        self.progress_box.show()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        job = self._progress_job
        if job is None or job.kind not in ("batch", "video") or total <= 0:
            return
        if job.kind == "video":
            self.progress.setValue(int(100 * done / total))
        else:
            self.progress.setMaximum(total)
            self.progress.setValue(done)

    def _update_actions(self) -> None:
        entry = self.current
        has_image = entry is not None and entry.image is not None
        has_mask = has_image and entry is not None and entry.alpha is not None
        busy = bool(entry.busy) if entry is not None else False
        live = self._camera is not None or self.live_problem.active  # a stopped live view keeps its page
        long_job = self._busy_with("batch", "video")
        self.remove_action.setEnabled(has_image and not busy and not live)
        self.refine_action.setEnabled(has_mask and not busy and not live)
        for action in (self.brush_add_action, self.brush_erase_action):
            action.setEnabled(has_mask and not live)
        self.brush_size.setEnabled(has_mask and not live)
        self.undo_action.setEnabled(entry is not None and entry.history.can_undo and not busy and not live)
        self.redo_action.setEnabled(entry is not None and entry.history.can_redo and not busy and not live)
        self.export_action.setEnabled(has_mask and not live)
        self.batch_action.setEnabled(not long_job)
        self.video_action.setEnabled(not long_job)
        self.live_action.setEnabled(not long_job)
        for action in (self.fit_action, self.actual_action):
            action.setEnabled(has_image and not live)
        self.view_combo.setEnabled(has_mask)
        if not live and self.current is None and self.stack.currentWidget() is not self.empty_page:
            self.stack.setCurrentWidget(self.empty_page)

    # ---- drag and drop -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()
            self._set_dropping(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: Any) -> None:
        self._set_dropping(False)

    def _set_dropping(self, on: bool) -> None:
        self.empty_page.setProperty("dropping", on)
        self.empty_page.style().unpolish(self.empty_page)
        self.empty_page.style().polish(self.empty_page)

    def dragMoveEvent(self, event: Any) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_dropping(False)
        paths = _local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if self._camera is not None:
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

    def sizeHint(self) -> QSize:
        return QSize(760, 640)


#: What the live view says when the camera's stream ended without an error.
CAMERA_STOPPED = "The camera stopped sending pictures. Check that it is plugged in, then press Retry."


def _strip_camera(message: str) -> str:
    """Camera errors arrive as "Camera: <sentence>"; the live view shows the sentence."""
    return message[len("Camera: ") :] if message.startswith("Camera: ") else message


def _strip_source(message: str) -> str:
    """Job errors arrive as "Background removal: <sentence>"; the dock shows the sentence."""
    prefix = "Background removal: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _thumbnail_or_reason(path: Path) -> np.ndarray | str:
    """A thumbnail, or why there is none (not an error to report: opening the image tells)."""
    try:
        return make_thumbnail(path)
    except UserError as exc:
        return str(exc)


def _local_paths(mime: Any) -> list[str]:
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]
