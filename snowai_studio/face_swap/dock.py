"""The face-swap dock: choose a face, swap it live on the camera, in an image or in a video.

Everything heavy runs off the UI thread in a :class:`~workers.face_swap.worker.FaceSwapWorker`
(built when first needed, after the responsible-use agreement): it reads the source photos, swaps
image and video files as jobs, and serves the live camera stream that a
:class:`~workers.media.worker.CameraWorker` pushes to it. The dock talks to both through signals.

Responsible use: a first-use agreement (what the tool is for, the consent of the people shown, the
mark) comes before the first swap; declining leaves the tool locked with a sentence. The visible
"AI-generated" mark is on by default; turning it off asks first. Both answers are kept in the
settings. Every problem becomes one sentence on the dock's message line and, through logging, in
the notifications panel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QResizeEvent, QShowEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.context import StudioContext
from snowai_studio.face_swap.consent import LOCKED_TEXT, ask_consent, confirm_mark_off
from snowai_studio.face_swap.widgets import FaceMapEditor, FaceStrip
from snowai_studio.tool_dock import camera_factory, open_model_manager, pictures_dir, videos_dir
from snowai_studio.widgets.problem_bar import ProblemBar
from snowai_studio.widgets.sliders import LabeledSlider
from snowai_studio.widgets.status_rows import MessageLine, ProgressRow
from snowai_studio.widgets.video_view import VideoView
from workers.errors import describe_exception
from workers.face_swap.options import ENGINES, ENHANCERS, FaceSwapOptions, coerce_option, engine_status
from workers.files import free_name, same_file

log = logging.getLogger(__name__)

SOURCE = "Face swap"
ENGINE_CHOICES = {
    "auto": "Automatic (best installed)",
    "insightface": "InsightFace",
    "classic": "Classic (dlib)",
}
ACTIVE_ENGINE = {"classic": "Classic (dlib) — offline default", "insightface": "insightface"}
TARGET_CHOICES = {
    "all": "Every face",
    "largest": "The largest face",
    "reference": "One person (reference photo)",
    "index": "Face number…",
}
ENHANCER_CHOICES = {"": "None", "gfpgan-1.4": "GFPGAN 1.4", "gpen-bfr-512": "GPEN-BFR 512"}
PRESET_CHOICES = {"cpu": "CPU: detect every 3rd frame", "gpu": "GPU: detect every frame"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.webm *.avi *.m4v);;All files (*)"
VIDEO_SUFFIXES = {".mp4": "MP4 (H.264)", ".mov": "MOV (ProRes)", ".webm": "WebM (VP9)"}
NO_SOURCE_HINT = "No source face yet: the camera is shown untouched. Choose face photos… to start swapping."
IDLE_TEXT = "Choose a face photo, then press Live, Image… or Video…"
#: The controls sit beside the preview from this dock width on, above it when narrower.
WIDE_LAYOUT = 720
CONTROLS_WIDTH = 300
QWIDGETSIZE_MAX = (1 << 24) - 1


@dataclass
class _Job:
    kind: str  # source | clear | reference | image | video
    label: str = ""
    total: int = 0
    extra: Any = None


class FaceSwapDock(QWidget):
    """Face swap for a creator: source faces, targets, blending, live camera, files, the mark."""

    #: A job of the dock ended: its kind ("source", "image", "video"...) and whether it succeeded.
    job_done = Signal(str, bool)
    #: The lock changed (True: the agreement was declined).
    lock_changed = Signal(bool)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faceSwapDock")
        self.context = context
        prefs = context.settings.face_swap
        try:
            engine = coerce_option("engine", prefs.engine)
        except Exception:
            engine = "auto"
        self.options = FaceSwapOptions(engine=engine, mark=bool(prefs.mark))
        self.locked = False
        self.last_message = ""
        self.last_level = "info"
        self.source_summary: Any = None
        self.reference_path: Path | None = None
        self.last_result: Any = None
        self._jobs: dict[int, _Job] = {}
        self._worker: Any = None
        self._worker_store: Any = None
        self._camera: Any = None
        self._before = False
        self._closing = False
        self._restored = False
        self._progress_job: _Job | None = None
        self._build_ui()
        self.refresh_engine()
        self._update_actions()

    # ---- construction ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        controls = QWidget()
        controls.setObjectName("faceSwapControls")
        column = QVBoxLayout(controls)
        column.setContentsMargins(2, 2, 6, 2)
        column.addWidget(self._build_source_box())
        column.addWidget(self._build_target_box())
        column.addWidget(self._build_blend_box())
        column.addWidget(self._build_engine_box())
        column.addWidget(self._build_mark_box())
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("faceSwapControlsScroll")
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.controls_scroll = scroll

        # Side by side when the dock is wide; the preview above the controls when it is narrow.
        self._body = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self._body.setContentsMargins(0, 0, 0, 0)
        self._body.setSpacing(6)
        self._body.addWidget(scroll)
        self._body.addLayout(self._build_preview_column(), 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.addLayout(self._body)
        self._arrange(self.width())

    def _arrange(self, width: int) -> None:
        scroll = self.controls_scroll
        if width >= WIDE_LAYOUT:
            self._body.setDirection(QBoxLayout.Direction.LeftToRight)
            scroll.setMinimumWidth(CONTROLS_WIDTH)
            scroll.setMaximumWidth(CONTROLS_WIDTH + 80)
            scroll.setMinimumHeight(0)
            scroll.setMaximumHeight(QWIDGETSIZE_MAX)
        else:
            self._body.setDirection(QBoxLayout.Direction.BottomToTop)
            scroll.setMinimumWidth(0)
            scroll.setMaximumWidth(QWIDGETSIZE_MAX)
            share = max(110, int(self.height() * 0.42))
            scroll.setMinimumHeight(min(share, 200))
            scroll.setMaximumHeight(share)

    @property
    def wide_layout(self) -> bool:
        return self._body.direction() == QBoxLayout.Direction.LeftToRight

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange(event.size().width())

    def minimumSizeHint(self) -> QSize:
        # The narrow arrangement's needs: the layout itself switches to it below WIDE_LAYOUT.
        return QSize(CONTROLS_WIDTH + 20, 300)

    def _build_source_box(self) -> QGroupBox:
        box = QGroupBox("Source face")
        self.choose_button = QPushButton("Choose face photos…")
        self.choose_button.setObjectName("faceSwapChooseSource")
        self.choose_button.setToolTip("One or more photos of the same person (several photos give a steadier face)")
        self.choose_button.clicked.connect(lambda: self.choose_source())
        self.clear_source_button = QPushButton("Clear")
        self.clear_source_button.setToolTip("Forget the source face: the camera is shown untouched")
        self.clear_source_button.clicked.connect(lambda: self.clear_source())
        row = QHBoxLayout()
        row.addWidget(self.choose_button, 1)
        row.addWidget(self.clear_source_button)
        self.faces = FaceStrip()
        self.faces.setObjectName("faceSwapSourceFaces")
        self.faces.hide()
        self.source_label = QLabel("No source face chosen.")
        self.source_label.setObjectName("faceSwapSourceLabel")
        self.source_label.setWordWrap(True)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.faces)
        layout.addWidget(self.source_label)
        return box

    def _build_target_box(self) -> QGroupBox:
        box = QGroupBox("Faces to replace")
        self.target_combo = QComboBox()
        self.target_combo.setObjectName("faceSwapTarget")
        for key, label in TARGET_CHOICES.items():
            self.target_combo.addItem(label, key)
        self.target_combo.setCurrentIndex(self.target_combo.findData(self.options.target))
        self.target_combo.currentIndexChanged.connect(self._on_target_chosen)
        self.index_spin = QSpinBox()
        self.index_spin.setRange(1, 50)
        self.index_spin.setPrefix("face ")
        self.index_spin.setToolTip("Faces are counted from the left of the picture")
        self.index_spin.valueChanged.connect(lambda v: self.set_option("target_index", v - 1))
        self.index_row = QWidget()
        index_layout = QHBoxLayout(self.index_row)
        index_layout.setContentsMargins(0, 0, 0, 0)
        index_layout.addWidget(QLabel("Counted from the left:"))
        index_layout.addWidget(self.index_spin, 1)
        self.reference_button = QPushButton("Reference photo…")
        self.reference_button.setToolTip("A photo of the person whose face should be replaced")
        self.reference_button.clicked.connect(lambda: self.choose_reference())
        self.reference_label = QLabel("No reference photo.")
        self.reference_label.setWordWrap(True)
        self.reference_row = QWidget()
        ref_layout = QVBoxLayout(self.reference_row)
        ref_layout.setContentsMargins(0, 0, 0, 0)
        ref_layout.addWidget(self.reference_button)
        ref_layout.addWidget(self.reference_label)
        self.face_map = FaceMapEditor()
        self.face_map.setObjectName("faceSwapFaceMap")
        self.face_map.map_changed.connect(lambda m: self.set_option("face_map", m))
        self.face_map.hide()
        layout = QVBoxLayout(box)
        layout.addWidget(self.target_combo)
        layout.addWidget(self.index_row)
        layout.addWidget(self.reference_row)
        layout.addWidget(self.face_map)
        self._sync_target_rows()
        return box

    def _build_blend_box(self) -> QGroupBox:
        box = QGroupBox("Blending")
        o = self.options
        self.opacity = LabeledSlider(
            "Opacity", 0, 100, round(o.opacity * 100), fmt=lambda v: f"{v} %", tip="How much of the new face shows"
        )
        self.opacity.value_changed.connect(lambda v: self.set_option("opacity", v / 100.0))
        self.mask_blur = LabeledSlider(
            "Mask blur", 0, 60, o.mask_blur, fmt=lambda v: f"{v} px", tip="Softness of the face's edge"
        )
        self.mask_blur.value_changed.connect(lambda v: self.set_option("mask_blur", v))
        self.mask_erode = LabeledSlider(
            "Mask erode", 0, 40, o.mask_erode, fmt=lambda v: f"{v} px", tip="Pull the face's edge inwards"
        )
        self.mask_erode.value_changed.connect(lambda v: self.set_option("mask_erode", v))
        self.mouth_mask = QCheckBox("Keep the target's mouth")
        self.mouth_mask.setToolTip("Speech and expressions stay natural (mouth mask)")
        self.mouth_mask.setChecked(o.mouth_mask)
        self.mouth_mask.toggled.connect(lambda on: self.set_option("mouth_mask", on))
        self.color_match = QCheckBox("Match colours")
        self.color_match.setToolTip("Match the new face to the target's skin tone and light")
        self.color_match.setChecked(o.color_match)
        self.color_match.toggled.connect(lambda on: self.set_option("color_match", on))
        self.enhancer_combo = QComboBox()
        self.enhancer_combo.setObjectName("faceSwapEnhancer")
        for key, label in ENHANCER_CHOICES.items():
            self.enhancer_combo.addItem(label, key)
        self.enhancer_combo.currentIndexChanged.connect(self._on_enhancer_chosen)
        enhancer_row = QHBoxLayout()
        enhancer_row.addWidget(QLabel("Enhancer"))
        enhancer_row.addWidget(self.enhancer_combo, 1)
        layout = QVBoxLayout(box)
        layout.addWidget(self.opacity)
        layout.addWidget(self.mask_blur)
        layout.addWidget(self.mask_erode)
        layout.addWidget(self.mouth_mask)
        layout.addWidget(self.color_match)
        layout.addLayout(enhancer_row)
        return box

    def _build_engine_box(self) -> QGroupBox:
        box = QGroupBox("Engine")
        self.engine_combo = QComboBox()
        self.engine_combo.setObjectName("faceSwapEngine")
        for key, label in ENGINE_CHOICES.items():
            self.engine_combo.addItem(label, key)
        self.engine_combo.setCurrentIndex(self.engine_combo.findData(self.options.engine))
        self.engine_combo.currentIndexChanged.connect(self._on_engine_chosen)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("faceSwapPreset")
        for key, label in PRESET_CHOICES.items():
            self.preset_combo.addItem(label, key)
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(self.options.preset))
        self.preset_combo.currentIndexChanged.connect(self._on_preset_chosen)
        self.engine_label = QLabel()
        self.engine_label.setObjectName("faceSwapEngineLine")
        self.engine_label.setWordWrap(True)
        self.engine_note = QLabel()
        self.engine_note.setWordWrap(True)
        self.engine_note.setStyleSheet("color: palette(placeholder-text);")
        self.models_button = QPushButton("Get insightface models…")
        self.models_button.setObjectName("faceSwapGetModels")
        self.models_button.setToolTip("Open the model manager to download the InsightFace models")
        self.models_button.clicked.connect(lambda: self.open_model_manager())
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Engine", self.engine_combo)
        form.addRow("Preset", self.preset_combo)
        layout = QVBoxLayout(box)
        layout.addLayout(form)
        layout.addWidget(self.engine_label)
        layout.addWidget(self.engine_note)
        layout.addWidget(self.models_button)
        return box

    def _build_mark_box(self) -> QGroupBox:
        box = QGroupBox("Responsible use")
        self.mark_check = QCheckBox('"AI-generated" mark')
        self.mark_check.setObjectName("faceSwapMark")
        self.mark_check.setToolTip(
            "A small label on every result, and saved files say they were generated. Keep it when you share."
        )
        self.mark_check.setChecked(self.options.mark)
        self.mark_check.toggled.connect(self._on_mark_toggled)
        self.terms_button = QPushButton("Review the terms…")
        self.terms_button.setObjectName("faceSwapTerms")
        self.terms_button.clicked.connect(lambda: self.review_terms())
        layout = QVBoxLayout(box)
        layout.addWidget(self.mark_check)
        layout.addWidget(self.terms_button)
        return box

    def _build_preview_column(self) -> QVBoxLayout:
        self.lock_banner = QFrame()
        self.lock_banner.setObjectName("faceSwapLocked")
        self.lock_banner.setStyleSheet(
            "#faceSwapLocked { border: 1px solid rgb(200, 120, 40); border-radius: 6px; "
            "background: rgba(200, 120, 40, 40); }"
        )
        self.lock_label = QLabel(LOCKED_TEXT)
        self.lock_label.setWordWrap(True)
        unlock = QPushButton("Review the terms…")
        unlock.clicked.connect(lambda: self.review_terms())
        banner = QHBoxLayout(self.lock_banner)
        banner.addWidget(self.lock_label, 1)
        banner.addWidget(unlock)
        self.lock_banner.hide()

        self.live_button = QPushButton("Live")
        self.live_button.setObjectName("faceSwapLive")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip("Swap faces on the camera picture, live")
        self.live_button.toggled.connect(self._on_live_toggled)
        self.before_button = QPushButton("Before/after")
        self.before_button.setObjectName("faceSwapBefore")
        self.before_button.setCheckable(True)
        self.before_button.setToolTip("Show the camera picture as it is (checked) or swapped")
        self.before_button.toggled.connect(self.set_before)
        self.record_button = QPushButton("Record")
        self.record_button.setObjectName("faceSwapRecord")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the swapped picture to an MP4 file")
        self.record_button.toggled.connect(self._on_record_toggled)
        self.vcam_button = QPushButton("Virtual camera")
        self.vcam_button.setObjectName("faceSwapVirtualCamera")
        self.vcam_button.setCheckable(True)
        self.vcam_button.setToolTip("Send the swapped picture to a virtual camera for video calls and streaming")
        self.vcam_button.toggled.connect(self._on_vcam_toggled)
        self.image_button = QPushButton("Image…")
        self.image_button.setObjectName("faceSwapImage")
        self.image_button.setToolTip("Swap the faces of an image file (the original is kept)")
        self.image_button.clicked.connect(lambda: self.swap_image_file())
        self.video_button = QPushButton("Video…")
        self.video_button.setObjectName("faceSwapVideo")
        self.video_button.setToolTip("Swap the faces of a video file (sound and frame rate kept)")
        self.video_button.clicked.connect(lambda: self.swap_video_file())
        bar = QToolBar()
        bar.setObjectName("faceSwapToolbar")
        bar.setMovable(False)
        bar.setFloatable(False)
        for button in (self.live_button, self.before_button, self.record_button, self.vcam_button):
            bar.addWidget(button)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addWidget(self.image_button)
        bar.addWidget(self.video_button)
        self.toolbar = bar

        self.live_hint = QLabel(NO_SOURCE_HINT)
        self.live_hint.setObjectName("faceSwapHint")
        self.live_hint.setWordWrap(True)
        self.live_hint.hide()
        self.preview = VideoView(placeholder=IDLE_TEXT)
        self.preview.setObjectName("faceSwapPreview")
        self.live_status = QLabel()
        self.live_status.setObjectName("faceSwapLiveStatus")
        self.live_status.setWordWrap(True)
        # What stopped the live picture (the camera, or the swap failing on every frame), with Retry.
        self.live_problem = ProblemBar("faceSwapLiveProblem")
        self.live_problem.retry_requested.connect(self.retry_live)

        self.progress_box = ProgressRow()
        self.progress = self.progress_box.bar
        self.cancel_button = self.progress_box.cancel_button
        self.cancel_button.clicked.connect(self.cancel)

        self.message_line = MessageLine("faceSwapMessage")
        self.message_icon = self.message_line.icon
        self.message_label = self.message_line.label

        column = QVBoxLayout()
        column.setSpacing(4)
        column.addWidget(self.lock_banner)
        column.addWidget(bar)
        column.addWidget(self.live_hint)
        column.addWidget(self.preview, 1)
        column.addWidget(self.live_problem)
        column.addWidget(self.live_status)
        column.addWidget(self.progress_box)
        column.addWidget(self.message_line)
        return column

    # ---- messages --------------------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", *, notify: bool = True) -> None:
        """Put a sentence on the message line; warnings and errors also go to the log (and so to the
        notifications panel) unless a worker already reported them."""
        self.last_message = text
        self.last_level = level
        self.message_line.report(text, level, source=SOURCE, logger=log, notify=notify)

    # ---- settings and responsible use -------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.context.model_store

    def _save_settings(self) -> None:
        try:
            self.context.settings.save()
        except OSError as exc:
            self.show_message(describe_exception(exc, "The face-swap settings could not be saved"), "warning")

    @property
    def consent_accepted(self) -> bool:
        return bool(self.context.settings.face_swap.consent_accepted)

    def ensure_consent(self) -> bool:
        """True when the responsible-use terms are accepted (asking the first time); declining locks
        the tool with a sentence."""
        if self.consent_accepted:
            return True
        if self.locked:
            self.show_message(LOCKED_TEXT, "warning")
            return False
        return self._ask()

    def review_terms(self) -> bool:
        """Show the terms again (the way out of the lock)."""
        if self.consent_accepted:
            ask: Callable[[QWidget], bool] = self.context.extras.get("face_swap_consent") or ask_consent
            ask(self)
            return True
        return self._ask()

    def _ask(self) -> bool:
        ask: Callable[[QWidget], bool] = self.context.extras.get("face_swap_consent") or ask_consent
        accepted = bool(ask(self))
        if accepted:
            self.context.settings.face_swap.consent_accepted = True
            self._save_settings()
            self._set_locked(False)
            self.show_message("Thank you. Face swap is ready: choose a face photo to begin.")
            log.info("Face swap: the responsible-use terms were accepted")
        else:
            self._set_locked(True)
            self.show_message(LOCKED_TEXT, "warning")
        return accepted

    def _set_locked(self, locked: bool) -> None:
        if locked == self.locked:
            return
        self.locked = locked
        self.lock_banner.setVisible(locked)
        if locked and self._camera is not None:
            self.stop_live()
        self._update_actions()
        self.lock_changed.emit(locked)

    @Slot(bool)
    def _on_mark_toggled(self, on: bool) -> None:
        if on == self.options.mark:
            return
        if not on:
            confirm: Callable[[QWidget], bool] = (
                self.context.extras.get("face_swap_confirm_mark_off") or confirm_mark_off
            )
            if not confirm(self):
                self.mark_check.blockSignals(True)
                self.mark_check.setChecked(True)
                self.mark_check.blockSignals(False)
                self.show_message('The "AI-generated" mark stays on.')
                return
        self.set_option("mark", on)
        self.context.settings.face_swap.mark = on
        self._save_settings()
        if on:
            self.show_message('The "AI-generated" mark is on again.')
        else:
            self.show_message(
                'The "AI-generated" mark is off: results no longer say they were generated. Label them yourself '
                "when you share them.",
                "warning",
            )

    def set_mark(self, on: bool) -> bool:
        """Turn the mark on or off as the checkbox does (off asks first); returns the mark's state."""
        self.mark_check.setChecked(on)
        return self.options.mark

    # ---- options -------------------------------------------------------------------------------------------
    def set_option(self, name: str, value: Any) -> None:
        """Change one face-swap setting; it applies live."""
        try:
            value = coerce_option(name, value)
        except Exception as exc:
            self.show_message(describe_exception(exc), "warning")
            return
        if name == "preset":
            self.options = self.options.with_preset(value)
        else:
            setattr(self.options, name, value)
        if self._worker is not None:
            self._worker.set_param(name, value)

    @Slot(int)
    def _on_target_chosen(self, index: int) -> None:
        target = self.target_combo.itemData(index)
        self.set_option("target", target)
        self._sync_target_rows()
        if target == "reference" and self.reference_path is None:
            self.show_message("Choose a reference photo of the person whose face should be replaced.")

    def _sync_target_rows(self) -> None:
        target = self.options.target
        self.index_row.setVisible(target == "index")
        self.reference_row.setVisible(target == "reference")

    @Slot(int)
    def _on_enhancer_chosen(self, index: int) -> None:
        self.set_option("enhancer", self.enhancer_combo.itemData(index) or None)

    @Slot(int)
    def _on_engine_chosen(self, index: int) -> None:
        engine = self.engine_combo.itemData(index)
        if engine not in ENGINES or engine == self.options.engine:
            return
        self.set_option("engine", engine)
        self.context.settings.face_swap.engine = engine
        self._save_settings()
        self.refresh_engine()

    @Slot(int)
    def _on_preset_chosen(self, index: int) -> None:
        self.set_option("preset", self.preset_combo.itemData(index))
        self.refresh_engine()

    def _usable(self, model_id: str) -> bool:
        store = self.store
        if store is None:
            return False
        try:
            return bool(store.state(model_id).usable)
        except Exception:
            return False

    @Slot()
    def refresh_engine(self) -> None:
        """Say which engine is active and what can be downloaded; enable the installed enhancers."""
        store = self.store
        status = None
        if store is not None:
            try:
                status = engine_status(store, self.options.preset)
            except Exception as exc:
                log.warning("The face-swap models could not be checked: %s", exc)
        ready = bool(status and status.insightface_ready)
        loaded = self._worker.engine_name if self._worker is not None else ""
        choice = self.options.engine
        if loaded:
            active = loaded
        elif choice == "auto":
            active = status.active if status is not None else "classic"
        else:
            active = choice
        text = f"Engine: {ACTIVE_ENGINE.get(active, active)}"
        if choice == "insightface" and not ready and not loaded:
            text += " — its models are not downloaded yet"
        self.engine_label.setText(text)
        if store is None:
            note = "The model store could not be opened; check the models folder in Settings."
        elif ready:
            note = "InsightFace's detector, identity model and swapper are installed."
        else:
            note = "InsightFace gives a far more convincing swap; download its models in the model manager."
        self.engine_note.setText(note)
        self.models_button.setVisible(not ready)
        # Enhancers: only those installed can be chosen.
        combo = self.enhancer_combo
        model = combo.model()
        any_ready = False
        for i in range(combo.count()):
            key = combo.itemData(i)
            if not key:
                continue
            usable = self._usable(key)
            any_ready = any_ready or usable
            if isinstance(model, QStandardItemModel):
                item = model.item(i)
                if item is not None:
                    item.setEnabled(usable)
            combo.setItemData(
                i,
                "Installed" if usable else "Download it in the model manager to use it",
                Qt.ItemDataRole.ToolTipRole,
            )
        if not self._usable(combo.currentData() or "") and combo.currentIndex() != 0:
            combo.setCurrentIndex(0)
        combo.setEnabled(any_ready)
        combo.setToolTip(
            "Restores detail in the swapped face (slower)"
            if any_ready
            else f"Download a face enhancer ({', '.join(ENHANCER_CHOICES[k] for k in ENHANCERS)}) in the model "
            "manager to use it."
        )

    @Slot()
    def open_model_manager(self) -> None:
        open_model_manager(self, self.store)
        self.refresh_engine()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_engine()  # a model may have been downloaded meanwhile
        if not self._restored:
            self._restored = True
            QTimer.singleShot(0, self._restore_last_source)

    def _restore_last_source(self) -> None:
        """Reopen the source photos of the last session (only once the terms were accepted)."""
        if self._closing or not self.consent_accepted or self.source_summary is not None:
            return
        saved = self.context.settings.face_swap.last_source
        paths = [Path(p) for p in saved if isinstance(p, str)] if isinstance(saved, list) else []
        paths = [p for p in paths if p.is_file()]
        if paths:
            self.choose_source(paths, remember=False)

    # ---- the worker ------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> Any:
        worker = self._worker
        if worker is not None and self._worker_store is not self.store:
            self._retire_worker()
            worker = None
        if worker is None:
            from workers.face_swap.worker import FaceSwapWorker

            worker = FaceSwapWorker(
                self.store,
                self.options.copy(),
                pipeline_factory=self.context.extras.get("face_swap_pipeline_factory"),
                virtual_camera_factory=self.context.extras.get("virtual_camera_factory"),
                device=self.context.settings.compute,
            )
            worker.job_finished.connect(self._on_job_finished)
            worker.job_failed.connect(self._on_job_failed)
            worker.job_cancelled.connect(self._on_job_cancelled)
            worker.progress.connect(self._on_progress)
            worker.result_ready.connect(self._on_live_result)
            worker.stats.connect(self._on_live_stats)
            worker.error.connect(self._on_worker_error)
            worker.stream_halted.connect(self._on_stream_halted)
            worker.warning.connect(self._on_worker_warning)
            worker.ready.connect(self.refresh_engine)
            worker.recording_saved.connect(self._on_recording_saved)
            worker.recording_failed.connect(self._on_recording_failed)
            worker.virtual_camera_changed.connect(self._on_vcam_changed)
            worker.start()
            self._worker = worker
            self._worker_store = self.store
        return worker

    def _retire_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self.stop_live()
        self._jobs.clear()
        self._update_busy()
        worker.stop()

    @property
    def worker(self) -> Any:
        return self._worker

    def _start(
        self, kind: str, submit: Callable[[Any], int], label: str = "", total: int = 0, extra: Any = None
    ) -> int:
        worker = self._ensure_worker()
        job_id = submit(worker)
        self._jobs[job_id] = _Job(kind, label, total, extra)
        self._update_busy()
        self._update_actions()
        return job_id

    def _busy_with(self, *kinds: str) -> bool:
        return any(j.kind in kinds for j in self._jobs.values())

    # ---- source and reference ---------------------------------------------------------------------------
    def choose_source(self, paths: Iterable[str | Path] | None = None, *, remember: bool = True) -> int | None:
        """Use the face in these photos (one person; several photos are averaged). Returns the job id."""
        if not self.ensure_consent():
            return None
        if paths is None:
            names, _ = QFileDialog.getOpenFileNames(
                self, "Choose photos of the face to use", pictures_dir(), IMAGE_FILTER
            )
            paths = names
        chosen = [Path(p).expanduser() for p in paths]
        if not chosen:
            return None
        missing = [p for p in chosen if not p.is_file()]
        if missing:
            if missing[0].is_dir():
                self.show_message(f"{missing[0].name} is a folder; choose the photos inside it.", "warning")
            else:
                self.show_message(f"The photo {missing[0]} was not found.", "warning")
            return None
        self.source_label.setText(f"Looking for the face in {', '.join(p.name for p in chosen)}…")
        return self._start(
            "source",
            lambda w: w.set_source(chosen),
            label="Reading the source face…",
            extra=(chosen, remember),
        )

    def clear_source(self) -> int | None:
        """Forget the source face (the live picture goes back to the untouched camera)."""
        self.source_summary = None
        self.faces.clear()
        self.faces.hide()
        self.face_map.hide()
        self.source_label.setText("No source face chosen.")
        self.context.settings.face_swap.last_source = []
        self._save_settings()
        self._update_hint()
        self._update_actions()
        if self._worker is None:
            return None
        return self._start("clear", lambda w: w.clear_source())

    def choose_reference(self, path: str | Path | None = None) -> int | None:
        """The person to replace when "One person (reference photo)" is chosen."""
        if not self.ensure_consent():
            return None
        if path is None:
            name, _ = QFileDialog.getOpenFileName(
                self, "Choose a photo of the person to replace", pictures_dir(), IMAGE_FILTER
            )
            if not name:
                return None
            path = name
        chosen = Path(path).expanduser()
        self.reference_label.setText(f"Reading {chosen.name}…")
        return self._start("reference", lambda w: w.set_reference(chosen), extra=chosen)

    # ---- image and video files ------------------------------------------------------------------------------
    def _check_ready_for_swap(self) -> bool:
        if not self.ensure_consent():
            return False
        if self.source_summary is None:
            self.show_message("Choose a source face first: press Choose face photos….", "warning")
            return False
        return True

    def swap_image_file(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Swap the faces of an image file into a new file (never over the original). Returns the job id."""
        if not self._check_ready_for_swap():
            return None
        if src is None:
            src, _ = QFileDialog.getOpenFileName(self, "Choose an image to change", pictures_dir(), IMAGE_FILTER)
            if not src:
                return None
        src = Path(src).expanduser()
        if dst is None:
            suffix = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
            suggestion = free_name(src.with_name(f"{src.stem}-swapped{suffix}"), src)
            dst, _ = QFileDialog.getSaveFileName(
                self, "Save the swapped image as", str(suggestion), "PNG (*.png);;JPEG (*.jpg *.jpeg);;WebP (*.webp)"
            )
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".png")
        if same_file(src, dst):
            self.show_message(
                f"{dst.name} is the image you chose; pick another name (the original is never overwritten).",
                "warning",
            )
            return None
        self.show_message(f"Swapping the faces of {src.name}…")
        return self._start("image", lambda w: w.swap_image(src, dst), label=f"Swapping {src.name}…", extra=dst)

    def swap_video_file(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Swap the faces of every frame of a video into a new file (sound and frame rate kept)."""
        if not self._check_ready_for_swap():
            return None
        if src is None:
            src, _ = QFileDialog.getOpenFileName(self, "Choose a video to change", videos_dir(), VIDEO_FILTER)
            if not src:
                return None
        src = Path(src).expanduser()
        if dst is None:
            suggestion = free_name(src.with_name(f"{src.stem}-swapped.mp4"), src)
            filters = ";;".join(f"{label} (*{suffix})" for suffix, label in VIDEO_SUFFIXES.items())
            dst, _ = QFileDialog.getSaveFileName(self, "Save the swapped video as", str(suggestion), filters)
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".mp4")
        if dst.suffix.lower() not in VIDEO_SUFFIXES:
            self.show_message(f"{dst.name}: save the video as .mp4, .mov or .webm.", "warning")
            return None
        if same_file(src, dst):
            self.show_message(
                "Choose another file name: the source video is never overwritten.",
                "warning",
            )
            return None
        if self._busy_with("video"):
            self.show_message("A video is already being swapped; wait for it or cancel it.")
            return None
        if self._camera is not None:
            self.stop_live()
        self.show_message(f"Swapping the faces of {src.name} into {dst.name}…")
        return self._start(
            "video", lambda w: w.swap_video(src, dst), label=f"Video {src.name} → {dst.name}:", total=100, extra=dst
        )

    @Slot()
    def cancel(self) -> None:
        """Stop the running image or video job; nothing half-made is left behind."""
        if self._worker is not None and self._busy_with("image", "video", "source"):
            self._worker.cancel()
            self.show_message("Cancelling…")

    # ---- live ------------------------------------------------------------------------------------------------
    @Slot(bool)
    def _on_live_toggled(self, on: bool) -> None:
        if on and self._camera is None:
            if not self.start_live():
                self._set_checked(self.live_button, False)
        elif not on and self._camera is not None:
            self.stop_live()

    def toggle_live(self) -> None:
        if self._camera is None:
            self.start_live()
        else:
            self.stop_live()

    def start_live(self) -> bool:
        """Swap faces on the camera picture (the camera from Settings, or an injected one)."""
        if self._camera is not None:
            return True
        if not self.ensure_consent():
            return False
        if self._busy_with("video"):
            self.show_message("Live needs the face swap: wait for the video to finish, or cancel it.")
            return False
        from workers.media.worker import CameraWorker

        worker = self._ensure_worker()
        if worker.halted:
            worker.resume_stream()  # the swap stopped after repeated failures: try it again
        camera = CameraWorker(camera_factory(self.context))
        camera.error.connect(self._on_camera_error)
        camera.state_changed.connect(self._on_camera_state)
        camera.stream_halted.connect(self._on_stream_halted)
        camera.result_ready.connect(self._on_camera_frame)
        camera.add_subscriber(worker)
        self._camera = camera
        self.live_problem.clear()
        self.preview.clear()
        self.preview.set_overlay("")
        self.preview.set_placeholder("Starting the camera…")
        self.live_status.setText("")
        self._set_checked(self.live_button, True)
        camera.start()
        self._update_hint()
        if self.source_summary is not None:
            self.show_message("Live: the source face is swapped onto the camera picture.")
        self._update_actions()
        return True

    def stop_live(self) -> None:
        self._release_live()
        self.live_problem.clear()
        if not self._closing:
            self.preview.set_overlay("")
            self.preview.set_placeholder(IDLE_TEXT)
            self.live_status.setText("")
            self._update_hint()
            self._update_actions()

    def _release_live(self) -> None:
        """Stop the camera (its thread joined, the device released), a recording and the virtual camera."""
        camera, self._camera = self._camera, None
        if camera is not None:
            if self._worker is not None:
                camera.remove_subscriber(self._worker)
            camera.stop()
        worker = self._worker
        if worker is not None:
            if worker.recording:
                worker.stop_recording()
            if worker.virtual_camera:
                worker.stop_virtual_camera()
        for button in (self.live_button, self.record_button, self.vcam_button, self.before_button):
            self._set_checked(button, False)
        self._before = False

    @Slot()
    def retry_live(self) -> None:
        """Retry after the live picture stopped: the camera and the swap start again, same settings."""
        self.live_problem.clear()
        self._release_live()
        self.start_live()

    def _live_problem(self, message: str) -> None:
        """The camera or the swap stopped the live picture: release the camera, keep the last picture
        and say what happened, with Retry."""
        if self._closing:
            return
        self._release_live()
        text = _strip_source(message[len("Camera: ") :] if message.startswith("Camera: ") else message)
        self.preview.set_overlay("")
        self.live_problem.show_problem(text)
        self.live_status.setText("Live stopped.")
        self.show_message(text, "error", notify=False)
        self._update_hint()
        self._update_actions()

    @property
    def live_running(self) -> bool:
        return self._camera is not None

    @property
    def camera(self) -> Any:
        return self._camera

    @Slot(str)
    def _on_stream_halted(self, message: str) -> None:
        if self._camera is not None:
            self._live_problem(message)

    @Slot(str)
    def _on_camera_state(self, state: str) -> None:
        if state == "ended" and self._camera is not None:
            self._live_problem(CAMERA_STOPPED)
            return
        if state == "failed" and self._camera is not None:
            QTimer.singleShot(0, self.stop_live)
            QTimer.singleShot(
                0, lambda: self.preview.set_placeholder("The camera stopped. Check Devices, then press Live again.")
            )

    @Slot(bool)
    def set_before(self, on: bool) -> None:
        """Show the camera picture untouched (True) or swapped (False)."""
        self._before = bool(on) and self._camera is not None
        self._set_checked(self.before_button, self._before)
        if self._before and self._camera is not None:
            result = self._camera.take_result()  # re-arms the camera's result_ready
            if result is not None:
                self.preview.show_frame(result.payload)

    @property
    def showing_before(self) -> bool:
        return self._before

    @Slot()
    def _on_camera_frame(self) -> None:
        camera = self._camera
        if camera is None or not self._before:
            return
        result = camera.take_result()
        if result is not None:
            self.preview.show_frame(result.payload)
            self.preview.set_overlay("Before: the camera picture")

    @Slot()
    def _on_live_result(self) -> None:
        worker = self._worker
        if worker is None:
            return
        result = worker.take_result()
        if result is None or self._camera is None or self._before:
            return
        self.preview.show_frame(result.payload)
        meta = result.meta
        stages = meta.get("stages_ms") or {}
        parts = [f"{meta.get('fps', 0.0) or 0.0:.1f} fps", f"{result.latency_ms:.0f} ms latency", stage_text(stages)]
        self.preview.set_overlay(" · ".join(p for p in parts if p))

    @Slot(dict)
    def _on_live_stats(self, stats: dict) -> None:
        if self._camera is None:
            return
        parts = [f"{stats.get('fps', 0):.1f} fps"]
        if "latency_ms" in stats:
            parts.append(f"{stats['latency_ms']:.0f} ms end to end")
        stages = stage_text(stats.get("stages_ms") or {})
        if stages:
            parts.append(stages)
        if stats.get("dropped"):
            parts.append(f"{stats['dropped']} frames skipped")
        if stats.get("recording"):
            parts.append(f"recording ({stats.get('recorded_frames', 0)} frames)")
        if stats.get("virtual_camera"):
            parts.append("virtual camera on")
        self.live_status.setText(" · ".join(parts))

    def toggle_recording(self, path: str | Path | None = None) -> bool:
        """Start (with ``path`` or an automatic name) or stop recording the swapped picture."""
        worker = self._worker
        if worker is None or self._camera is None:
            self.show_message("Start Live first, then record.")
            self._set_checked(self.record_button, False)
            return False
        if worker.recording:
            worker.stop_recording()
            self._set_checked(self.record_button, False)
            return False
        if path is None:
            path = Path(videos_dir()) / time.strftime("snowai-faceswap-%Y%m%d-%H%M%S.mp4")
        worker.start_recording(Path(path))
        self._set_checked(self.record_button, True)
        self.show_message(f"Recording to {path}…")
        return True

    @Slot(bool)
    def _on_record_toggled(self, _on: bool) -> None:
        self.toggle_recording()

    @Slot(str)
    def _on_recording_saved(self, path: str) -> None:
        self._set_checked(self.record_button, False)
        self.show_message(f"Recording saved: {path}")

    @Slot(str)
    def _on_recording_failed(self, message: str) -> None:
        """The recording stopped (say, the disk is full): the Record button says so, the live view goes on."""
        self._set_checked(self.record_button, False)
        self.show_message(_strip_source(message), "error", notify=False)

    def set_virtual_camera(self, on: bool) -> bool:
        """Send the swapped picture to a virtual camera (True) or stop (False)."""
        worker = self._worker
        if on and (worker is None or self._camera is None):
            self.show_message("Start Live first, then turn on the virtual camera.")
            self._set_checked(self.vcam_button, False)
            return False
        if worker is not None:
            if on:
                worker.start_virtual_camera()
                self.show_message("Opening the virtual camera…")
            else:
                worker.stop_virtual_camera()
        self._set_checked(self.vcam_button, on)
        return on

    @Slot(bool)
    def _on_vcam_toggled(self, on: bool) -> None:
        self.set_virtual_camera(on)

    @Slot(bool, str)
    def _on_vcam_changed(self, on: bool, text: str) -> None:
        self._set_checked(self.vcam_button, on)
        if on:
            self.show_message(f"The virtual camera is on ({text}): choose it in your video-call or streaming app.")
        elif text:
            self.show_message(_strip_source(text), "error", notify=False)

    # Worker signals reach the dock through slots of the dock itself (a QObject on the UI thread),
    # so that Qt queues them here; a plain function would run on the worker's thread.
    @Slot(str)
    def _on_worker_warning(self, message: str) -> None:
        self.show_message(_strip_source(message), "warning", notify=False)

    @Slot(str)
    def _on_camera_error(self, message: str) -> None:
        self.show_message(message, "error", notify=False)

    @Slot(str)
    def _on_worker_error(self, message: str) -> None:
        # Job errors arrive through job_failed as well; this covers loading and the live stream.
        if self._camera is not None or not self._jobs:
            self.show_message(_strip_source(message), "error", notify=False)
            self.refresh_engine()

    # ---- job results -------------------------------------------------------------------------------------------
    @Slot(int, object)
    def _on_job_finished(self, job_id: int, result: Any) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self._update_busy()
        try:
            getattr(self, f"_done_{job.kind}")(job, result)
        except Exception as exc:  # a bug here must not take the dock down
            message = describe_exception(exc, SOURCE)
            log.error("%s", message, exc_info=exc)
            self.show_message(message, "error", notify=False)
        self._update_actions()
        self.job_done.emit(job.kind, True)

    @Slot(int, str)
    def _on_job_failed(self, job_id: int, message: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self._update_busy()
        text = _strip_source(message)
        if job.kind == "source":
            self.source_label.setText(
                "No source face chosen." if self.source_summary is None else self.source_summary.describe()
            )
        elif job.kind == "reference":
            self.reference_label.setText(
                "No reference photo." if self.reference_path is None else self.reference_path.name
            )
        self.show_message(text, "error", notify=False)
        self.refresh_engine()
        self._update_actions()
        self.job_done.emit(job.kind, False)

    @Slot(int)
    def _on_job_cancelled(self, job_id: int) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        self._update_busy()
        if job.kind == "video":
            self.show_message("Cancelled; no video file was written.")
        elif job.kind == "image":
            self.show_message("Cancelled; no image was written.")
        elif job.kind == "source":
            self.source_label.setText(
                "No source face chosen." if self.source_summary is None else self.source_summary.describe()
            )
        self._update_actions()
        self.job_done.emit(job.kind, False)

    def _done_source(self, job: _Job, summary: Any) -> None:
        chosen, remember = job.extra
        self.source_summary = summary
        names = [p.name for p in summary.paths]
        faces = []
        for i, (thumb, name) in enumerate(zip(summary.thumbnails, names, strict=False)):
            found = summary.faces_per_image[i] if i < len(summary.faces_per_image) else 1
            tip = f"{summary.paths[i]}\n{found} face{'s' if found != 1 else ''} found; the largest is used."
            faces.append((thumb, name, tip))
        self.faces.set_faces(faces)
        self.faces.show()
        self.source_label.setText(summary.describe())
        several = summary.count > 1
        if several:
            self.face_map.set_sources(summary.thumbnails, names, self.options.face_map)
        self.face_map.setVisible(several)
        if remember:
            self.context.settings.face_swap.last_source = [str(p) for p in chosen]
            self._save_settings()
        self._update_hint()
        self.refresh_engine()
        ready = "Live, Image… or Video… now swap it in." if self._camera is None else "It is swapped live now."
        self.show_message(f"{summary.describe()} {ready}")

    def _done_clear(self, job: _Job, _result: Any) -> None:
        self.show_message("The source face was cleared: the camera picture is shown untouched.")

    def _done_reference(self, job: _Job, faces: int) -> None:
        path: Path = job.extra
        self.reference_path = path
        extra = f" ({faces} faces: the largest is the reference)" if faces > 1 else ""
        self.reference_label.setText(f"Reference: {path.name}{extra}")
        self.show_message(f"Only faces that look like the person in {path.name} are replaced.")

    def _done_image(self, job: _Job, result: Any) -> None:
        self.last_result = result
        if self._camera is None and result.image is not None:
            self.preview.show_frame(result.image)
            self.preview.set_overlay(f"{result.path.name} · {result.engine}")
        total = sum(result.ms.values()) if result.ms else 0.0
        took = f" in {total:.0f} ms" if total else ""
        self.show_message(
            f"Saved {result.path.name} in {result.path.parent}: swapped {result.faces_swapped} of "
            f"{result.faces_found} face{'s' if result.faces_found != 1 else ''} ({result.engine} engine{took})."
        )

    def _done_video(self, job: _Job, result: Any) -> None:
        self.last_result = result
        self.show_message(f"Video saved: {result.path} ({result.frames} frames, sound and frame rate kept).")

    # ---- busy state -----------------------------------------------------------------------------------------------
    def _update_busy(self) -> None:
        visible = [j for j in self._jobs.values() if j.kind in ("source", "image", "video")]
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
            self.progress.setFormat(f"{job.label} %p%")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(job.label)
        self.progress.setValue(0)
        self.cancel_button.setVisible(job.kind in ("image", "video"))
        self.progress_box.show()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        job = self._progress_job
        if job is None or job.kind != "video" or total <= 0:
            return
        self.progress.setValue(int(100 * min(done, total) / total))

    def _update_hint(self) -> None:
        self.live_hint.setVisible(self._camera is not None and self.source_summary is None)

    def _update_actions(self) -> None:
        live = self._camera is not None
        locked = self.locked
        video_job = self._busy_with("video")
        self.choose_button.setEnabled(not locked)
        self.clear_source_button.setEnabled(self.source_summary is not None)
        self.reference_button.setEnabled(not locked)
        self.live_button.setEnabled(not locked and not video_job)
        self.before_button.setEnabled(live)
        self.record_button.setEnabled(live)
        self.vcam_button.setEnabled(live)
        self.image_button.setEnabled(not locked)
        self.video_button.setEnabled(not locked and not video_job)

    @staticmethod
    def _set_checked(button: Any, on: bool) -> None:
        if button.isChecked() != on:
            button.blockSignals(True)
            button.setChecked(on)
            button.blockSignals(False)

    # ---- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the camera, cancel work and join the worker's thread (the window is closing)."""
        if self._closing:
            return
        self._closing = True
        self.stop_live()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        self._jobs.clear()

    def sizeHint(self) -> QSize:
        return QSize(820, 640)


#: The order stages are listed in (the pipeline's own, then what the worker adds).
STAGE_ORDER = ("detect", "track", "swap", "enhance", "mark", "record", "virtual camera")


def stage_text(stages: dict[str, float]) -> str:
    """ "detect 16 · track 6 · swap 2 ms": the stages that took time, in pipeline order."""
    names = [n for n in STAGE_ORDER if n in stages] + [n for n in stages if n not in STAGE_ORDER and n != "total"]
    shown = [f"{name} {stages[name]:.0f}" for name in names if stages[name] >= 0.5]
    return " · ".join(shown) + " ms" if shown else ""


#: What the live view says when the camera's stream ended without an error.
CAMERA_STOPPED = "The camera stopped sending pictures. Check that it is plugged in, then press Retry."


def _strip_source(message: str) -> str:
    """Worker errors arrive as "Face swap: <sentence>"; the dock shows the sentence."""
    prefix = f"{SOURCE}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
