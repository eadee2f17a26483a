"""The face-swap page's inspector: one widget per section (source faces, the faces to replace, blending,
engine and enhancer, output and mark). Each holds its controls and says what the user changed
through signals; the page applies the changes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.face_swap.widgets import FaceMapEditor, FaceStrip
from snowai_studio.panels.model_picker import ModelPicker, PickerChoice
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.sliders import LabeledSlider
from workers.face_swap.options import ENHANCERS, EngineStatus, FaceSwapOptions

NO_SOURCE = "No source face chosen."
TARGET_CHOICES = {
    "all": "Every face",
    "largest": "The largest face",
    "reference": "One person (reference photo)",
    "index": "Face number…",
}
ENGINE_NAMES = {"auto": "Automatic (best installed)", "insightface": "InsightFace", "classic": "Classic (dlib)"}
ACTIVE_ENGINE = {"classic": "Classic (dlib) — offline default", "insightface": "insightface"}
ENHANCER_NAMES = {
    "gfpgan-1.4": "GFPGAN 1.4",
    "gpen-bfr-512": "GPEN-BFR 512",
    "gpen-bfr-1024": "GPEN-BFR 1024",
    "codeformer": "CodeFormer",
}
#: The enhancer picker's key for "no enhancer".
NO_ENHANCER = "none"
PRESET_CHOICES = {"cpu": "CPU: detect every 3rd frame", "gpu": "GPU: detect every frame"}


def hint_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("hint", True)
    return label


class SourceFacesSection(QWidget):
    """The photos of the face to put in: thumbnails, a sentence, and the face map for several people."""

    choose_requested = Signal()
    clear_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choose_button = push_button("Choose photos…", "face_swap")
        self.choose_button.setObjectName("faceSwapChooseSource")
        self.choose_button.setToolTip("One or more photos of the same person (several photos give a steadier face)")
        self.choose_button.clicked.connect(self.choose_requested)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the source face: the camera is shown untouched")
        self.clear_button.clicked.connect(self.clear_requested)
        self.faces = FaceStrip()
        self.faces.setObjectName("faceSwapSourceFaces")
        self.faces.hide()
        self.label = QLabel(NO_SOURCE)
        self.label.setObjectName("faceSwapSourceLabel")
        self.label.setWordWrap(True)
        self.face_map = FaceMapEditor()
        self.face_map.setObjectName("faceSwapFaceMap")
        self.face_map.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.choose_button, 1)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.faces)
        layout.addWidget(self.label)
        layout.addWidget(self.face_map)

    def show_summary(self, summary: Any, face_map: dict[int, int]) -> None:
        """The faces a source job found (a :class:`~workers.face_swap.worker.SourceSummary`)."""
        names = [p.name for p in summary.paths]
        faces = []
        for i, (thumb, name) in enumerate(zip(summary.thumbnails, names, strict=False)):
            found = summary.faces_per_image[i] if i < len(summary.faces_per_image) else 1
            tip = f"{summary.paths[i]}\n{found} face{'s' if found != 1 else ''} found; the largest is used."
            faces.append((thumb, name, tip))
        self.faces.set_faces(faces)
        self.faces.show()
        self.label.setText(summary.describe())
        several = summary.count > 1
        if several:
            self.face_map.set_sources(summary.thumbnails, names, face_map)
        self.face_map.setVisible(several)

    def forget(self) -> None:
        self.faces.clear()
        self.faces.hide()
        self.face_map.hide()
        self.label.setText(NO_SOURCE)


class TargetSection(QWidget):
    """Which faces of the picture are replaced: every face, the largest, one person, or face number N."""

    target_chosen = Signal(str)
    index_chosen = Signal(int)
    reference_requested = Signal()

    def __init__(self, target: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setObjectName("faceSwapTarget")
        for key, label in TARGET_CHOICES.items():
            self.combo.addItem(label, key)
        self.combo.setCurrentIndex(self.combo.findData(target))
        self.combo.currentIndexChanged.connect(lambda i: self.target_chosen.emit(self.combo.itemData(i)))
        self.index_spin = QSpinBox()
        self.index_spin.setRange(1, 50)
        self.index_spin.setPrefix("face ")
        self.index_spin.setToolTip("Faces are counted from the left of the picture")
        self.index_spin.valueChanged.connect(lambda v: self.index_chosen.emit(v - 1))
        self.index_row = QWidget()
        index_layout = QHBoxLayout(self.index_row)
        index_layout.setContentsMargins(0, 0, 0, 0)
        index_layout.addWidget(QLabel("Counted from the left:"))
        index_layout.addWidget(self.index_spin, 1)
        self.reference_button = push_button("Reference photo…", "image")
        self.reference_button.setToolTip("A photo of the person whose face should be replaced")
        self.reference_button.clicked.connect(self.reference_requested)
        self.reference_label = hint_label("No reference photo.")
        self.reference_row = QWidget()
        ref_layout = QVBoxLayout(self.reference_row)
        ref_layout.setContentsMargins(0, 0, 0, 0)
        ref_layout.addWidget(self.reference_button)
        ref_layout.addWidget(self.reference_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.index_row)
        layout.addWidget(self.reference_row)
        self.show_rows(target)

    def show_rows(self, target: str) -> None:
        self.index_row.setVisible(target == "index")
        self.reference_row.setVisible(target == "reference")


class BlendingSection(QWidget):
    """How the new face is blended in; ``option_changed(name, value)`` for each change."""

    option_changed = Signal(str, object)

    def __init__(self, options: FaceSwapOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.opacity = LabeledSlider("Opacity", 0, 100, round(options.opacity * 100), fmt=lambda v: f"{v} %",
                                     tip="How much of the new face shows")
        self.opacity.value_changed.connect(lambda v: self.option_changed.emit("opacity", v / 100.0))
        self.mask_blur = LabeledSlider(
            "Mask blur", 0, 60, options.mask_blur, fmt=lambda v: f"{v} px", tip="Softness of the face's edge"
        )
        self.mask_blur.value_changed.connect(lambda v: self.option_changed.emit("mask_blur", v))
        self.mask_erode = LabeledSlider(
            "Mask erode", 0, 40, options.mask_erode, fmt=lambda v: f"{v} px", tip="Pull the face's edge inwards"
        )
        self.mask_erode.value_changed.connect(lambda v: self.option_changed.emit("mask_erode", v))
        self.mouth_mask = QCheckBox("Keep the target's mouth")
        self.mouth_mask.setToolTip("Speech and expressions stay natural (mouth mask)")
        self.mouth_mask.setChecked(options.mouth_mask)
        self.mouth_mask.toggled.connect(lambda on: self.option_changed.emit("mouth_mask", on))
        self.color_match = QCheckBox("Match colours")
        self.color_match.setToolTip("Match the new face to the target's skin tone and light")
        self.color_match.setChecked(options.color_match)
        self.color_match.toggled.connect(lambda on: self.option_changed.emit("color_match", on))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.opacity, self.mask_blur, self.mask_erode, self.mouth_mask, self.color_match):
            layout.addWidget(widget)


def engine_choices(status: EngineStatus | None) -> list[PickerChoice]:
    """Automatic, InsightFace (ready, or to download) and the classic engine, for the engine picker."""
    ready = bool(status and status.insightface_ready)
    missing = status.missing[0] if status is not None and status.missing else "insightface-buffalo-l"
    return [
        PickerChoice("auto", ENGINE_NAMES["auto"], "ready", "InsightFace when its models are installed, else Classic"),
        PickerChoice(
            "insightface", ENGINE_NAMES["insightface"], "ready" if ready else "download",
            "" if ready else "Download its detector, identity model and swapper in the model manager.", missing,
        ),
        PickerChoice("classic", ENGINE_NAMES["classic"], "ready", "dlib landmarks and a warp; works offline"),
    ]


def enhancer_choices(store: Any) -> list[PickerChoice]:
    """No enhancer, then GFPGAN and GPEN: ready when installed, else to download."""
    choices = [PickerChoice(NO_ENHANCER, "None", "ready", "No enhancer: the fastest")]
    for model_id in ENHANCERS:
        try:
            usable = bool(store.state(model_id).usable) if store is not None else False
        except Exception:
            usable = False
        note = "" if usable else "Download it in the model manager to restore detail in the swapped face."
        choices.append(PickerChoice(model_id, ENHANCER_NAMES.get(model_id, model_id), "ready" if usable else "download",
                                    note, model_id))
    return choices


class EngineSection(QWidget):
    """The engine (a model picker), the live preset, which engine is active, and the face enhancer."""

    preset_chosen = Signal(str)
    models_requested = Signal()

    def __init__(self, options: FaceSwapOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine_picker = ModelPicker("faceSwapEngine")
        self.engine_picker.set_choices(engine_choices(None), select=options.engine)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("faceSwapPreset")
        for key, label in PRESET_CHOICES.items():
            self.preset_combo.addItem(label, key)
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(options.preset))
        self.preset_combo.currentIndexChanged.connect(lambda i: self.preset_chosen.emit(self.preset_combo.itemData(i)))
        self.engine_label = QLabel()
        self.engine_label.setObjectName("faceSwapEngineLine")
        self.engine_label.setWordWrap(True)
        self.engine_note = hint_label()
        self.models_button = push_button("Get insightface models…", "download")
        self.models_button.setObjectName("faceSwapGetModels")
        self.models_button.setToolTip("Open the model manager to download the InsightFace models")
        self.models_button.clicked.connect(self.models_requested)
        self.enhancer_picker = ModelPicker("faceSwapEnhancer")
        self.enhancer_picker.setToolTip("Restores detail in the swapped face (slower)")
        self.enhancer_picker.set_choices(enhancer_choices(None), select=options.enhancer or NO_ENHANCER)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Engine", self.engine_picker)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Enhancer", self.enhancer_picker)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.engine_label)
        layout.addWidget(self.engine_note)
        layout.addWidget(self.models_button)

    def show_status(self, store: Any, status: EngineStatus | None, engine: str, loaded: str, enhancer: str) -> None:
        """Say which engine works now and what can be downloaded; list the enhancers as they are."""
        ready = bool(status and status.insightface_ready)
        if loaded:
            active = loaded
        elif engine == "auto":
            active = status.active if status is not None else "classic"
        else:
            active = engine
        text = f"Engine: {ACTIVE_ENGINE.get(active, active)}"
        if engine == "insightface" and not ready and not loaded:
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
        self.engine_picker.set_choices(engine_choices(status), select=engine)
        self.enhancer_picker.set_choices(enhancer_choices(store), select=enhancer or NO_ENHANCER)


class OutputSection(QWidget):
    """What every result carries: the visible mark (turning it off asks first) and the terms."""

    mark_toggled = Signal(bool)
    terms_requested = Signal()

    def __init__(self, mark: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mark_check = QCheckBox('"AI-generated" mark')
        self.mark_check.setObjectName("faceSwapMark")
        self.mark_check.setToolTip(
            "A small label on every result, and saved files say they were generated. Keep it when you share."
        )
        self.mark_check.setChecked(mark)
        self.mark_check.toggled.connect(self.mark_toggled)
        self.terms_button = QPushButton("Review the terms…")
        self.terms_button.setObjectName("faceSwapTerms")
        self.terms_button.clicked.connect(self.terms_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.mark_check)
        layout.addWidget(hint_label(
            "Saved images and videos never replace the original. With the mark on, their metadata says "
            "they were generated."
        ))
        layout.addWidget(self.terms_button)

    def set_mark_quietly(self, on: bool) -> None:
        self.mark_check.blockSignals(True)
        self.mark_check.setChecked(on)
        self.mark_check.blockSignals(False)
