"""Global hotkeys for the streamer controls, through pynput (X11 on Linux, Windows, macOS).

Keys are written in pynput's notation (``<ctrl>+<alt>+l``). :class:`GlobalHotkeys` listens on its
own thread and calls ``on_action(name)``; where global capture is not possible (a Wayland session,
no X server, macOS without the accessibility permission, pynput missing) :meth:`GlobalHotkeys.start`
returns the sentence that says so, and the page falls back to shortcuts that work while the studio
window has the focus (:func:`qt_sequence` gives their Qt spelling).

No Qt here.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_QT_NAMES = {
    "ctrl": "Ctrl",
    "alt": "Alt",
    "shift": "Shift",
    "cmd": "Meta",
    "super": "Meta",
    "space": "Space",
    "enter": "Return",
    "esc": "Esc",
    "tab": "Tab",
    "pause": "Pause",
    "home": "Home",
    "end": "End",
}


def qt_sequence(hotkey: str) -> str:
    """``<ctrl>+<alt>+l`` → ``Ctrl+Alt+L`` (for a window shortcut); "" for an empty hotkey."""
    parts = []
    for part in hotkey.split("+"):
        name = part.strip().strip("<>").lower()
        if not name:
            continue
        if name in _QT_NAMES:
            parts.append(_QT_NAMES[name])
        elif len(name) > 1 and name[0] == "f" and name[1:].isdigit():
            parts.append(name.upper())
        else:
            parts.append(name.upper() if len(name) == 1 else name.capitalize())
    return "+".join(parts)


def from_qt_sequence(sequence: str) -> str:
    """``Ctrl+Alt+L`` → ``<ctrl>+<alt>+l`` (what a key-sequence editor gives, for pynput)."""
    back = {"ctrl": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>"}
    parts = []
    for part in sequence.split("+"):
        name = part.strip().lower()
        if not name:
            continue
        if name in back:
            parts.append(back[name])
        elif len(name) == 1:
            parts.append(name)
        else:
            parts.append(f"<{name}>")
    return "+".join(parts)


#: The key names a hotkey may use between angle brackets (pynput's names), besides single characters.
MODIFIERS = {
    "ctrl",
    "alt",
    "shift",
    "cmd",
    "alt_gr",
    "ctrl_l",
    "ctrl_r",
    "alt_l",
    "alt_r",
    "shift_l",
    "shift_r",
    "cmd_l",
    "cmd_r",
}
NAMED_KEYS = {
    "space",
    "enter",
    "esc",
    "tab",
    "backspace",
    "delete",
    "insert",
    "home",
    "end",
    "page_up",
    "page_down",
    "up",
    "down",
    "left",
    "right",
    "pause",
    "print_screen",
    "scroll_lock",
    "caps_lock",
    "num_lock",
    "menu",
    "media_play_pause",
    "media_next",
    "media_previous",
    "media_volume_mute",
} | {f"f{i}" for i in range(1, 25)}


def check_hotkey(hotkey: str) -> str | None:
    """None when ``hotkey`` is a key combination (or empty), else the sentence that says how to write one."""
    text = hotkey.strip()
    if not text:
        return None
    keys = [part.strip() for part in text.split("+")]
    plain = []
    for key in keys:
        name = key[1:-1] if key.startswith("<") and key.endswith(">") else None
        if name is not None and name in MODIFIERS:
            continue
        if (name is not None and name in NAMED_KEYS) or (name is None and len(key) == 1):
            plain.append(key)
            continue
        return f"{hotkey} is not a key combination the studio understands; write it like <ctrl>+<alt>+l."
    if len(plain) != 1 or len(set(keys)) != len(keys):
        return f"{hotkey} needs exactly one key besides ctrl, alt, shift or cmd; write it like <ctrl>+<alt>+l."
    return None


def global_capture_problem() -> str | None:
    """Why global hotkeys cannot work here, or None when they can be tried."""
    if sys.platform.startswith("linux"):
        if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
            return "Global hotkeys need X11 and this is a Wayland session, so they work while the studio has the focus."
        if not os.environ.get("DISPLAY"):
            return "Global hotkeys need an X server, so they work only while the studio has the focus."
    return None


class GlobalHotkeys:
    """Listens for ``bindings`` (action → hotkey) anywhere on the desktop; see the module text."""

    def __init__(self, bindings: dict[str, str], on_action: Callable[[str], None]) -> None:
        self.bindings = {name: key for name, key in bindings.items() if key and key.strip()}
        self.on_action = on_action
        self._listener: Any = None

    @property
    def active(self) -> bool:
        return self._listener is not None

    def start(self) -> str | None:
        """Start listening; None when it works, else the sentence saying why the keys are window shortcuts."""
        self.stop()
        problem = global_capture_problem()
        if problem:
            return problem
        try:
            from pynput import keyboard

            handlers = {key: (lambda name=name: self._fire(name)) for name, key in self.bindings.items()}
            listener = keyboard.GlobalHotKeys(handlers)
            listener.daemon = True
            listener.start()
        except Exception as exc:  # no backend, no permission, a key pynput cannot map
            log.info("global hotkeys are unavailable: %s", exc)
            return "Global hotkeys are unavailable here, so they work only while the studio has the focus."
        self._listener = listener
        return None

    def _fire(self, name: str) -> None:
        try:
            self.on_action(name)
        except Exception:
            log.exception("the hotkey %s failed", name)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.stop()
            except Exception as exc:
                log.debug("stopping the hotkey listener: %s", exc)
