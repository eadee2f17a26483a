"""The streamer hotkeys: one key-combination editor per control, global where the desktop allows it.

Where global capture is possible (X11, Windows, macOS) the keys work in any program through
:class:`~workers.live.hotkeys.GlobalHotkeys`; elsewhere they become shortcuts of the studio's
window, and one sentence under the editors says so.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFormLayout, QKeySequenceEdit, QLabel, QWidget

from workers.live.hotkeys import GlobalHotkeys, from_qt_sequence, qt_sequence
from workers.live.options import HOTKEY_LABELS


class HotkeysSection(QWidget):
    """An editor per action; ``changed(action, pynput hotkey)`` when the user sets one."""

    changed = Signal(str, str)

    def __init__(self, hotkeys: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.editors: dict[str, QKeySequenceEdit] = {}
        for action, label in HOTKEY_LABELS.items():
            editor = QKeySequenceEdit(QKeySequence(qt_sequence(hotkeys.get(action, ""))))
            editor.setMaximumSequenceLength(1)
            editor.setObjectName(f"live.hotkey.{action}")
            editor.editingFinished.connect(lambda a=action, e=editor: self._edited(a, e))
            self.editors[action] = editor
            form.addRow(label, editor)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setProperty("hint", True)
        self.note.setObjectName("live.hotkeys.note")
        form.addRow(self.note)

    def _edited(self, action: str, editor: QKeySequenceEdit) -> None:
        text = editor.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        self.changed.emit(action, from_qt_sequence(text))


class _Bridge(QObject):
    fired = Signal(str)


class StreamerKeys(QObject):
    """Runs the hotkeys: global when possible, window shortcuts of ``window`` otherwise; ``triggered(action)``."""

    triggered = Signal(str)

    def __init__(self, window: QWidget, on_note: Callable[[str], None], *, use_global: bool = True) -> None:
        super().__init__(window)
        self.window = window
        self.on_note = on_note
        self.use_global = use_global
        self.shortcuts: dict[str, QShortcut] = {}
        self.global_keys: GlobalHotkeys | None = None
        self._bridge = _Bridge()
        self._bridge.fired.connect(self.triggered, Qt.ConnectionType.QueuedConnection)

    @property
    def is_global(self) -> bool:
        return self.global_keys is not None and self.global_keys.active

    def apply(self, hotkeys: dict[str, str]) -> None:
        self.stop()
        note = "The hotkeys work in every program."
        if self.use_global:
            keys = GlobalHotkeys(hotkeys, self._bridge.fired.emit)
            problem = keys.start()
            if problem is None:
                self.global_keys = keys
                self.on_note(note)
                return
            note = problem
        else:
            note = "The hotkeys work while the studio has the focus."
        for action, key in hotkeys.items():
            sequence = qt_sequence(key)
            if not sequence:
                continue
            shortcut = QShortcut(QKeySequence(sequence), self.window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(lambda a=action: self._fire(a))
            self.shortcuts[action] = shortcut
        self.on_note(note)

    @Slot(str)
    def _fire(self, action: str) -> None:
        self.triggered.emit(action)

    def stop(self) -> None:
        if self.global_keys is not None:
            self.global_keys.stop()
            self.global_keys = None
        for shortcut in self.shortcuts.values():
            shortcut.setEnabled(False)
            shortcut.deleteLater()
        self.shortcuts = {}
