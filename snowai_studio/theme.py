"""Light and dark themes on the Fusion style; "system" follows the desktop's colour scheme live."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from workers.paths import resources_dir

_current_mode = "system"
_hooked = False


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(37, 39, 43), QColor(27, 29, 32), QColor(225, 228, 232)
    highlight = QColor(62, 132, 230)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(33, 35, 39),
        QPalette.ColorRole.ToolTipBase: QColor(50, 52, 57),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: QColor(140, 144, 150),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(45, 48, 53),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Link: QColor(110, 170, 255),
        QPalette.ColorRole.Highlight: highlight,
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Light: QColor(60, 63, 69),
        QPalette.ColorRole.Midlight: QColor(52, 55, 60),
        QPalette.ColorRole.Mid: QColor(66, 69, 75),
        QPalette.ColorRole.Dark: QColor(20, 21, 23),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    disabled = QColor(120, 123, 128)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    return style.standardPalette() if style else QPalette()


def effective_mode(mode: str) -> str:
    if mode == "system":
        return "dark" if system_is_dark() else "light"
    return mode


def apply_theme(app: QApplication, mode: str = "system") -> str:
    """Apply "system", "light" or "dark"; returns the mode actually shown ("light" or "dark")."""
    global _current_mode, _hooked
    _current_mode = mode
    app.setStyle("Fusion")
    shown = effective_mode(mode)
    app.setPalette(dark_palette() if shown == "dark" else light_palette())
    app.setStyleSheet(style_sheet(shown))
    app.setProperty("snowai_theme", shown)
    if not _hooked:
        QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _scheme: _follow_system(app))
        _hooked = True
    return shown


def style_sheet(shown: str) -> str:
    """The studio's style sheet, with the dark theme's additions when ``shown`` is "dark"."""
    folder = resources_dir() / "style"
    names = ["studio.qss"] + (["studio-dark.qss"] if shown == "dark" else [])
    parts = [(folder / name).read_text(encoding="utf-8") for name in names if (folder / name).is_file()]
    icons = (resources_dir() / "icons").as_posix()
    return "\n".join(parts).replace("@ICONS@", icons)


def _follow_system(app: QApplication) -> None:
    if _current_mode == "system":
        apply_theme(app, "system")
