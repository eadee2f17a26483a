"""Where a page's results go: the format, the folder, and a line that says what will be written.
Outputs never replace a file: a free name is chosen beside it ("photo-cutout (2).png")."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from snowai_studio.icons import icon


def short_path(path: str | Path) -> str:
    """``~/Pictures/cut-outs`` rather than ``/home/ana/Pictures/cut-outs``."""
    p = Path(path)
    try:
        return "~/" + p.relative_to(Path.home()).as_posix() if p != Path.home() else "~"
    except ValueError:
        return str(p)


class FolderRow(QWidget):
    """'<caption> ~/Videos  [Change…]'; ``folder_changed`` fires with the new folder."""

    folder_changed = Signal(str)

    def __init__(self, caption: str, folder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self._folder = folder
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.change_button = QPushButton(icon("folder"), "Change…")
        self.change_button.setToolTip(f"{caption}: choose another folder")
        self.change_button.clicked.connect(lambda: self.choose())
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.change_button)
        self._show()

    @property
    def folder(self) -> str:
        return self._folder

    def set_folder(self, folder: str, *, notify: bool = False) -> None:
        self._folder = folder
        self._show()
        if notify:
            self.folder_changed.emit(folder)

    def choose(self, folder: str | None = None) -> str | None:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, self.caption, self._folder or str(Path.home()))
        if not folder:
            return None
        self.set_folder(str(folder), notify=True)
        return str(folder)

    def _show(self) -> None:
        shown = short_path(self._folder) if self._folder else "the folder of each input"
        self.label.setText(f"{self.caption} <b>{shown}</b>")
        self.label.setToolTip(self._folder)


class OutputPanel(QWidget):
    """A format choice, an output folder, and ``summary``: one line saying what will be written.
    The page fills the formats and keeps the summary true with :meth:`set_summary`."""

    format_changed = Signal(str)
    folder_changed = Signal(str)

    def __init__(self, formats: dict[str, str], *, folder_caption: str = "Saved to", folder: str = "",
                 object_name: str = "output", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.format_combo = QComboBox()
        self.format_combo.setObjectName(f"{object_name}Format")
        for key, label in formats.items():
            self.format_combo.addItem(label, key)
        self.format_combo.currentIndexChanged.connect(lambda _i: self.format_changed.emit(self.format))
        self.folder_row = FolderRow(folder_caption, folder)
        self.folder_row.folder_changed.connect(self.folder_changed)
        self.summary = QLabel()
        self.summary.setObjectName(f"{object_name}Summary")
        self.summary.setWordWrap(True)
        self.summary.setProperty("hint", True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        row = QHBoxLayout()
        row.addWidget(QLabel("Format"))
        row.addWidget(self.format_combo, 1)
        layout.addLayout(row)
        layout.addWidget(self.folder_row)
        layout.addWidget(self.summary)

    @property
    def format(self) -> str:
        return str(self.format_combo.currentData() or "")

    def set_format(self, key: str) -> None:
        index = self.format_combo.findData(key)
        if index >= 0:
            self.format_combo.setCurrentIndex(index)

    @property
    def folder(self) -> str:
        return self.folder_row.folder

    def set_folder(self, folder: str) -> None:
        self.folder_row.set_folder(folder)

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)
