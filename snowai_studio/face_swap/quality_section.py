"""The inspector's "Swapper, boost & masks" section: which swapper model paints the face, pixel boost
with what it costs, the occlusion and face-region masks, and how the face enhancer is blended."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGridLayout, QVBoxLayout, QWidget

from snowai_studio.face_swap.inspector_sections import hint_label
from snowai_studio.panels.model_picker import ModelPicker, PickerChoice
from snowai_studio.widgets.rows import fit_combo
from snowai_studio.widgets.sliders import LabeledSlider
from workers.face_swap.masks import OCCLUSION_MODEL, REGION_MODEL, REGIONS, parse_regions
from workers.face_swap.options import SWAPPERS, FaceSwapOptions
from workers.face_swap.swappers import BOOST_FACTORS, SWAPPER_SPECS

#: The swapper picker's key for "the one the preset prefers".
AUTO_SWAPPER = "auto"
BOOST_NAMES = {1: "Off", 2: "2x2 (sharper)", 3: "3x3 (sharpest)"}


def _usable(store: Any, model_id: str) -> bool:
    try:
        return bool(store.state(model_id).usable) if store is not None else False
    except Exception:
        return False


def _name(store: Any, model_id: str) -> str:
    try:
        return str(store.get(model_id).name)
    except Exception:
        return model_id


def swapper_choices(store: Any) -> list[PickerChoice]:
    """Automatic, then every swapper: ready when installed (with its converter), else to download."""
    choices = [PickerChoice(AUTO_SWAPPER, "Automatic (inswapper first)", "ready", "The preset's swapper")]
    for model_id in SWAPPERS:
        spec = SWAPPER_SPECS[model_id]
        needed = [model_id, *([spec.converter] if spec.converter else [])]
        missing = next((m for m in needed if not _usable(store, m)), None)
        tip = f"{spec.size} px faces"
        if missing is None:
            choices.append(PickerChoice(model_id, _name(store, model_id), "ready", tip))
        else:
            note = f"{tip}; download {_name(store, missing)} in the model manager."
            choices.append(PickerChoice(model_id, _name(store, model_id), "download", note, missing))
    return choices


class QualitySection(QWidget):
    """``option_changed(name, value)`` for each setting; ``models_requested`` to get a model."""

    option_changed = Signal(str, object)
    models_requested = Signal()

    def __init__(self, options: FaceSwapOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store: Any = None
        self.swapper_picker = ModelPicker("faceSwapSwapper")
        self.swapper_picker.setToolTip("The model that paints the new face")
        fit_combo(self.swapper_picker.combo, 12)
        self.swapper_picker.set_choices(swapper_choices(None), select=options.swapper or AUTO_SWAPPER)
        self.swapper_picker.model_chosen.connect(
            lambda key: self.option_changed.emit("swapper", None if key == AUTO_SWAPPER else key)
        )
        self.swapper_picker.model_chosen.connect(lambda _key: self._show_cost())
        self.swapper_picker.get_requested.connect(lambda _m: self.models_requested.emit())
        self.boost_combo = fit_combo(QComboBox(), 8)
        self.boost_combo.setObjectName("faceSwapPixelBoost")
        for factor in BOOST_FACTORS:
            self.boost_combo.addItem(BOOST_NAMES[factor], factor)
        self.boost_combo.setCurrentIndex(max(0, self.boost_combo.findData(options.pixel_boost)))
        self.boost_combo.currentIndexChanged.connect(self._on_boost)
        self.boost_cost = hint_label()
        self.boost_cost.setObjectName("faceSwapBoostCost")

        self.occlusion_check = QCheckBox("Keep hands, hair and glasses in front")
        self.occlusion_check.setObjectName("faceSwapOcclusion")
        self.occlusion_check.setToolTip("XSeg occlusion mask: what covers the face stays in front of the swap")
        self.occlusion_check.setChecked(options.occlusion_mask)
        self.occlusion_check.toggled.connect(lambda on: self.option_changed.emit("occlusion_mask", on))
        self.region_checks: dict[str, QCheckBox] = {}
        regions = QGridLayout()
        regions.setContentsMargins(0, 0, 0, 0)
        chosen = parse_regions(options.face_regions)
        for index, name in enumerate(REGIONS):
            check = QCheckBox(name.capitalize())
            check.setObjectName(f"faceSwapRegion.{name}")
            check.setChecked(name in chosen)
            check.toggled.connect(lambda _on: self._on_regions())
            self.region_checks[name] = check
            regions.addWidget(check, index // 3, index % 3)
        self.mask_note = hint_label()
        self.mask_note.setObjectName("faceSwapMaskNote")
        self.mask_note.setTextFormat(Qt.TextFormat.RichText)
        self.mask_note.linkActivated.connect(lambda _link: self.models_requested.emit())

        self.blend_slider = LabeledSlider(
            "Blend", 0, 100, round(options.enhancer_blend * 100), fmt=lambda v: f"{v} %",
            tip="How much of the enhanced face shows",
        )
        self.blend_slider.setObjectName("faceSwapEnhancerBlend")
        self.blend_slider.value_changed.connect(lambda v: self.option_changed.emit("enhancer_blend", v / 100))
        self.fidelity_slider = LabeledSlider(
            "Fidelity", 0, 100, round(options.enhancer_fidelity * 100), fmt=lambda v: f"{v / 100:.2f}",
            tip="CodeFormer: 0 restores the most, 1 stays closest to the swapped face",
        )
        self.fidelity_slider.setObjectName("faceSwapEnhancerFidelity")
        self.fidelity_slider.value_changed.connect(lambda v: self.option_changed.emit("enhancer_fidelity", v / 100))

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Swapper", self.swapper_picker)
        form.addRow("Pixel boost", self.boost_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.boost_cost)
        layout.addWidget(self.occlusion_check)
        layout.addWidget(hint_label("Swap only these parts (none ticked: the whole face):"))
        layout.addLayout(regions)
        layout.addWidget(self.mask_note)
        layout.addWidget(hint_label("Face enhancer (chosen under Engine & enhancer):"))
        layout.addWidget(self.blend_slider)
        layout.addWidget(self.fidelity_slider)
        self.set_enhancer(options.enhancer)
        self._show_cost()

    # ---- what changes ------------------------------------------------------------------------------
    def _on_boost(self, index: int) -> None:
        self.option_changed.emit("pixel_boost", int(self.boost_combo.itemData(index)))
        self._show_cost()

    def _on_regions(self) -> None:
        names = [name for name, check in self.region_checks.items() if check.isChecked()]
        self.option_changed.emit("face_regions", ", ".join(names))
        self._show_masks()

    def _show_cost(self) -> None:
        spec = SWAPPER_SPECS.get(self.swapper_picker.current_key(), SWAPPER_SPECS["inswapper-128"])
        factor = int(self.boost_combo.currentData() or 1)
        self.boost_cost.setText(spec.cost(factor).capitalize() + ".")

    def _show_masks(self) -> None:
        missing = []
        if self.occlusion_check.isChecked() and not _usable(self.store, OCCLUSION_MODEL):
            missing.append(_name(self.store, OCCLUSION_MODEL))
        if any(c.isChecked() for c in self.region_checks.values()) and not _usable(self.store, REGION_MODEL):
            missing.append(_name(self.store, REGION_MODEL))
        if missing:
            self.mask_note.setText(f'Needs {" and ".join(missing)}: <a href="models">get it in Models…</a>')
        else:
            self.mask_note.setText("Masks run at each detection and follow the face in between.")

    def set_enhancer(self, model_id: str | None) -> None:
        """Blend applies to every enhancer; fidelity only to CodeFormer."""
        self.blend_slider.setEnabled(bool(model_id))
        self.fidelity_slider.setVisible(model_id == "codeformer")

    def set_store(self, store: Any, swapper: str | None) -> None:
        """List the swappers as installed now; say which mask models are missing."""
        self.store = store
        self.swapper_picker.set_choices(swapper_choices(store), select=swapper or AUTO_SWAPPER)
        self._show_cost()
        self._show_masks()
