"""The studio's line icons (resources/icons/ui/*.svg), drawn at paint time in the palette's text
colour, so that one icon reads in the light and the dark theme and follows a theme change."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from workers.paths import resources_dir


def icon_names() -> list[str]:
    return sorted(p.stem for p in (resources_dir() / "icons" / "ui").glob("*.svg"))


@cache
def _svg(name: str) -> str:
    path = resources_dir() / "icons" / "ui" / f"{name}.svg"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


class _TintedSvg(QIconEngine):
    """Renders one SVG whose strokes say ``currentColor`` in the palette colour of the moment."""

    def __init__(self, name: str, color: QColor | None) -> None:
        super().__init__()
        self.name = name
        self.color = color

    def _tint(self, mode: QIcon.Mode) -> str:
        palette = QGuiApplication.palette()
        if mode == QIcon.Mode.Disabled:
            return palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText).name()
        if self.color is not None:
            return self.color.name()
        if mode == QIcon.Mode.Selected:
            return palette.color(QPalette.ColorRole.HighlightedText).name()
        return palette.color(QPalette.ColorRole.ButtonText).name()

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        svg = _svg(self.name)
        if not svg:
            return
        renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", self._tint(mode)).encode()))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(rect))

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(0, 0, size.width(), size.height()), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> QIconEngine:
        return _TintedSvg(self.name, self.color)


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """The icon ``name`` (a file in resources/icons/ui), in ``color`` or the palette's button text;
    an empty icon when the file is missing, so a missing icon never stops a page from opening."""
    if not _svg(name):
        return QIcon()
    return QIcon(_TintedSvg(name, QColor(color) if color is not None else None))
