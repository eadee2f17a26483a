"""What the page tests share: a studio context for a page under test, and the page shown at a size."""

from __future__ import annotations

from typing import Any

from snowai_studio.context import StudioContext
from snowai_studio.notifications import NotificationManager
from workers.settings import Settings


def studio_context(store: Any, extras: dict[str, Any] | None = None) -> StudioContext:
    """A context on ``store`` with ``extras``; its notifications' hooks are installed (the test
    uninstalls them: ``context.notifications.uninstall_hooks()``)."""
    notifications = NotificationManager()
    notifications.install_hooks()
    return StudioContext(Settings.load(), notifications, store, dict(extras or {}))


def shown(qtbot: Any, page: Any, width: int, height: int) -> Any:
    """``page`` handed to qtbot, resized and shown; returned."""
    qtbot.addWidget(page)
    page.resize(width, height)
    page.show()
    return page
