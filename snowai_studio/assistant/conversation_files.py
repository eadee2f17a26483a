"""Saving and loading conversations: JSON (loads again, with every turn's timings) or Markdown (to read
or share; it loads again too). Each step returns the sentence the page shows."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

from workers.errors import UserError, describe_exception

log = logging.getLogger(__name__)

CONVERSATION_FILTERS = {"json": "Conversation (*.json)", "md": "Markdown (*.md)"}
SUFFIXES = (".json", ".md", ".markdown")


def conversations_dir() -> str:
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return found or str(Path.home())


def ask_save_path(parent: QWidget) -> Path | None:
    """Where to save (None when the user cancelled); the suffix follows the chosen filter."""
    suggestion = Path(conversations_dir()) / time.strftime("conversation-%Y%m%d-%H%M.json")
    filters = ";;".join(CONVERSATION_FILTERS.values())
    name, chosen = QFileDialog.getSaveFileName(parent, "Save the conversation", str(suggestion), filters)
    if not name:
        return None
    path = Path(name)
    if path.suffix.lower() not in SUFFIXES:
        path = path.with_suffix(".md" if chosen == CONVERSATION_FILTERS["md"] else ".json")
    return path


def ask_load_path(parent: QWidget) -> Path | None:
    filters = "Conversations (*.json *.md *.markdown);;" + ";;".join(CONVERSATION_FILTERS.values())
    name, _ = QFileDialog.getOpenFileName(parent, "Load a conversation", conversations_dir(), filters)
    return Path(name) if name else None


def save(conversation: Any, path: str | Path) -> tuple[Path | None, str, str]:
    """(the file written or None, the sentence, its level)."""
    if not getattr(conversation, "turns", None):
        return None, "Nothing to save yet: ask the assistant something first.", "info"
    path = Path(path).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        return None, f"{path.name}: save the conversation as .json or .md.", "warning"
    try:
        saved = Path(conversation.save(path))
    except Exception as exc:
        return None, sentence(exc, f"The conversation could not be saved to {path.name}"), "error"
    return saved, f"Conversation saved: {saved}", "info"


def load(path: str | Path) -> tuple[Any, str, str]:
    """(the conversation or None, the sentence, its level)."""
    path = Path(path).expanduser()
    try:
        from workers.assistant.conversation import Conversation

        conversation = Conversation.load(path)
    except Exception as exc:
        return None, sentence(exc, f"The conversation {path.name} could not be loaded"), "error"
    count = len(conversation.turns)
    text = f"Loaded {path.name}: {count} turn{'s' if count != 1 else ''}. Go on where it stopped."
    return conversation, text, "info"


def sentence(exc: BaseException, context: str) -> str:
    """A :class:`UserError` is already a sentence for the user; anything else gets ``context``."""
    if isinstance(exc, UserError):
        log.info("%s", exc)
        return str(exc)
    log.info("%s", context, exc_info=exc)  # the traceback goes to the log file only
    return describe_exception(exc, context)
