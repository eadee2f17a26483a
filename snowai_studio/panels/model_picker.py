"""The model choice of a page: the models that are ready (shipped with the studio or downloaded),
the user's own, and those that can be downloaded, with "Get it" into the model manager. A model
imported from here (or in the manager) is selected once it is in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from snowai_studio.icons import icon

#: Group order and headings in the list.
GROUPS = {
    "ready": "Ready to use",
    "user": "Your models",
    "download": "Can be downloaded",
}


@dataclass(frozen=True)
class PickerChoice:
    key: str
    name: str
    group: str  # a key of GROUPS
    note: str = ""
    #: The model manager's id (for "Get it"); the key when empty.
    model_id: str = ""

    @property
    def ready(self) -> bool:
        return self.group in ("ready", "user")


def choices_from_store(
    store: Any, tool: str, key_of: Callable[[str], str] | None = None, *, kinds: Iterable[str] | None = None
) -> list[PickerChoice]:
    """The store's models of ``tool`` (of these ``kinds`` only, when given: "ctranslate2", "piper-voice"...)
    as picker choices (no Qt, no model runtime: files are only looked at)."""
    if store is None:
        return []
    wanted = set(kinds) if kinds is not None else None
    found: list[PickerChoice] = []
    for model in store.models():
        if model.tool != tool or (wanted is not None and model.kind not in wanted):
            continue
        key = key_of(model.id) if key_of else model.id
        try:
            state = store.state(model.id)
            usable, message = state.usable, state.message
        except Exception as exc:  # a damaged entry is listed with why it can't be used
            usable, message = False, str(exc)
        group = "download" if not usable else "user" if model.user else "ready"
        found.append(PickerChoice(key, model.name, group, message, model.id))
    return found


class _Combo(QComboBox):
    about_to_open = Signal()

    def showPopup(self) -> None:
        self.about_to_open.emit()
        super().showPopup()


class ModelPicker(QWidget):
    """``model_chosen(key)`` when the user picks a ready model; ``get_requested(model_id)`` for "Get it"
    (the page opens the model manager); ``refresh_requested`` just before the list opens."""

    model_chosen = Signal(str)
    get_requested = Signal(str)
    refresh_requested = Signal()

    def __init__(self, object_name: str = "modelPicker", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.combo = _Combo()
        self.combo.setObjectName(f"{object_name}Combo")
        self.combo.about_to_open.connect(self.refresh_requested)
        self.combo.currentIndexChanged.connect(self._on_index)
        self.get_button = QPushButton(icon("download"), "Get it…")
        self.get_button.setObjectName(f"{object_name}Get")
        self.get_button.setToolTip("Download this model, or import your own, in the model manager")
        self.get_button.clicked.connect(lambda: self.get_requested.emit(self.current_model_id()))
        self.note = QLabel()
        self.note.setObjectName(f"{object_name}Note")
        self.note.setWordWrap(True)
        self.note.setProperty("hint", True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.get_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.choices: list[PickerChoice] = []
        self._filling = False

    # ---- content ------------------------------------------------------------------------------
    def set_choices(self, choices: Iterable[PickerChoice], select: str | None = None) -> None:
        """Fill the list grouped under headings; keep (or set) the selection without emitting."""
        keep = select if select is not None else self.current_key()
        self.choices = list(choices)
        self._filling = True
        try:
            self.combo.clear()
            model = self.combo.model()
            for group, heading in GROUPS.items():
                members = [c for c in self.choices if c.group == group]
                if not members:
                    continue
                self.combo.addItem(heading)
                header = model.item(self.combo.count() - 1) if isinstance(model, QStandardItemModel) else None
                if header is not None:
                    header.setEnabled(False)
                    font = header.font()
                    font.setBold(True)
                    header.setFont(font)
                for choice in members:
                    label = choice.name if choice.ready else f"{choice.name} (not downloaded)"
                    self.combo.addItem(f"   {label}", choice.key)
                    self.combo.setItemData(self.combo.count() - 1, choice.note, Qt.ItemDataRole.ToolTipRole)
            index = self.combo.findData(keep) if keep else -1
            if index < 0:
                index = next((i for i in range(self.combo.count()) if self.combo.itemData(i) is not None), -1)
            self.combo.setCurrentIndex(index)
        finally:
            self._filling = False
        self._show_note()

    def select(self, key: str, *, emit: bool = True) -> bool:
        """Select ``key`` (after an import, for example); False when it is not listed."""
        index = self.combo.findData(key)
        if index < 0:
            return False
        if not emit:
            self._filling = True
        try:
            self.combo.setCurrentIndex(index)
        finally:
            self._filling = False
        self._show_note()
        return True

    def current_key(self) -> str:
        return str(self.combo.currentData() or "")

    def current(self) -> PickerChoice | None:
        key = self.current_key()
        return next((c for c in self.choices if c.key == key), None)

    def current_model_id(self) -> str:
        choice = self.current()
        return (choice.model_id or choice.key) if choice else ""

    def _on_index(self, _index: int) -> None:
        self._show_note()
        if self._filling:
            return
        choice = self.current()
        if choice is not None and choice.ready:
            self.model_chosen.emit(choice.key)

    def _show_note(self) -> None:
        choice = self.current()
        self.get_button.setVisible(choice is not None and not choice.ready)
        self.note.setText(choice.note if choice is not None and not choice.ready else "")
        self.note.setVisible(bool(self.note.text()))  # no empty line under a ready model
