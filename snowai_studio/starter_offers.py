"""Where the studio offers each tool's recommended models: the banner on the tool's page (until the
set is there or the user hides it), the Home page's cards and Tools → Get started; and what happens
when a set is ready (the page selects its models)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QWidget

from snowai_studio.panels.page_settings import remember, remembered
from snowai_studio.panels.tool_page import ToolPage
from workers.errors import describe_exception
from workers.models import get_started
from workers.models.store import human_size

if TYPE_CHECKING:
    from snowai_studio.context import StudioContext

log = logging.getLogger(__name__)

DISMISSED_KEY = "get_started_dismissed"


def offer_text(plan: get_started.StarterPlan) -> str:
    return (
        f"<b>Better results:</b> {plan.summary} {len(plan.missing)} of {len(plan.items)} recommended "
        f"models to get ({human_size(plan.to_fetch)})."
    )


class StarterOffers:
    def __init__(self, context: StudioContext, pages: dict[str, QWidget], parent: QWidget) -> None:
        self.context = context
        self.pages = pages
        self.parent = parent
        #: The dialog open now (kept for tests and scripting).
        self.dialog: Any = None
        for tool, page in pages.items():
            if isinstance(page, ToolPage):
                page.get_started_requested.connect(lambda t=tool: self.open(t))
                page.get_started_dismissed.connect(lambda t=tool: remember(t, DISMISSED_KEY, "1"))

    def plan(self, tool: str) -> get_started.StarterPlan | None:
        store = self.context.model_store
        if store is None or tool not in store.manifest.starters:
            return None
        try:
            return get_started.plan(store, tool)
        except Exception as exc:  # an unreadable store: no offer, the page says why elsewhere
            log.warning("%s", describe_exception(exc, "The recommended models could not be checked"))
            return None

    def refresh(self) -> None:
        """Show or hide each page's banner."""
        for tool, page in self.pages.items():
            if not isinstance(page, ToolPage):
                continue
            plan = self.plan(tool)
            if plan is None or plan.complete or remembered(tool, DISMISSED_KEY):
                page.starter_banner.hide()
            else:
                page.starter_banner.offer(offer_text(plan))

    def open(self, tool: str) -> bool:
        """Open "Get started" for ``tool``; True when its set ended up ready and in use."""
        from snowai_studio.dialogs.get_started_dialog import GetStartedDialog

        store = self.context.model_store
        if store is None:
            return False
        try:
            dialog = GetStartedDialog(store, tool, self.parent)
        except Exception as exc:
            log.error("%s", describe_exception(exc, "Get started could not open"), exc_info=exc)
            return False
        used: list[list[str]] = []
        dialog.ready.connect(lambda _tool, ids: (used.append(ids), self._use(tool, ids)))
        self.dialog = dialog
        try:
            dialog.exec()
        finally:
            self.dialog = None
        self.refresh()
        return bool(used)

    def _use(self, tool: str, model_ids: list[str]) -> None:
        page = self.pages.get(tool)
        if isinstance(page, ToolPage):
            page.use_recommended(list(model_ids))
        if self.dialog is not None:
            self.dialog.accept()
