"""What the background-removal inspector holds besides the shared panels: the background chooser,
and the words that say exactly what an export or a batch will write."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from snowai_studio.panels.output_panel import short_path
from workers.matting.compose import Background

#: The export formats (the keys are the files' suffixes).
FORMATS = {"png": "PNG", "webp": "WebP", "jpg": "JPEG"}
BACKGROUNDS = {"transparent": "Transparent", "color": "Colour…", "blur": "Blur", "image": "Image…"}
#: How a background is named in a sentence ("PNG with the colour background").
BACKGROUND_WORDS = {"color": "colour background", "blur": "blurred background", "image": "background image"}


def keeps_transparency(fmt: str, background: Background) -> bool:
    """Whether a file of ``fmt`` over ``background`` keeps the transparency (JPEG never does)."""
    return background.kind == "transparent" and fmt != "jpg"


def effective_background(fmt: str, background: Background) -> Background:
    """What really goes behind the subject in a file of ``fmt``: JPEG has no transparency, so white."""
    if fmt == "jpg" and background.kind == "transparent":
        return Background(kind="color", color=(255, 255, 255))
    return background


def _colour_name(background: Background) -> str:
    r, g, b = background.color
    return f"#{r:02X}{g:02X}{b:02X}"


def format_label(fmt: str, background: Background) -> str:
    """The format's entry in the list, true for the background chosen now ("PNG, transparent")."""
    name = FORMATS[fmt]
    if keeps_transparency(fmt, background):
        return f"{name}, transparent"
    if background.kind == "transparent":
        return f"{name}, on white"
    return f"{name}, {BACKGROUND_WORDS[background.kind]}"


def file_description(fmt: str, background: Background) -> str:
    """'a PNG with transparency', 'a PNG with the colour background (#00FF00), no transparency'."""
    name = FORMATS[fmt]
    article = "an" if name[0] in "AEIOU" else "a"
    if keeps_transparency(fmt, background):
        return f"{article} {name} with transparency"
    if background.kind == "transparent":
        return f"{article} {name} on white (JPEG has no transparency)"
    words = BACKGROUND_WORDS[background.kind]
    if background.kind == "color":
        words += f" ({_colour_name(background)})"
    tail = "" if fmt == "jpg" else ", no transparency"
    return f"{article} {name} with the {words}{tail}"


def output_summary(fmt: str, background: Background, folder: str) -> str:
    """The output section's line: what Export writes and what a batch writes where."""
    applied = (
        "each keeps its transparency" if keeps_transparency(fmt, background)
        else "the background is applied to every image"
    )
    return (
        f"Export writes {file_description(fmt, background)}. "
        f"Batches write one such file per image into {short_path(folder)} (named photo-nobg.{fmt}); {applied}."
    )


class BackgroundChooser(QWidget):
    """'Background [Transparent ▾]' with a swatch of the chosen colour; ``kind_chosen(kind)`` when the
    user picks an entry (the page asks for the colour or the image and confirms with :meth:`show`)."""

    kind_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setObjectName("mattingBackground")
        for kind, label in BACKGROUNDS.items():
            self.combo.addItem(label, kind)
        self.combo.setToolTip("What goes behind the subject in the preview, the exports, batches and video")
        self.combo.activated.connect(lambda index: self.kind_chosen.emit(str(self.combo.itemData(index))))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Background"))
        row.addWidget(self.combo, 1)

    def show_background(self, background: Background) -> None:
        """Show ``background`` as the current entry (no signal)."""
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(self.combo.findData(background.kind))
        self.combo.blockSignals(False)
        if background.kind == "color":
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(*background.color))
            self.combo.setItemIcon(self.combo.findData("color"), QIcon(swatch))
