"""A tool's recommended models in one step ("Get started"): what the set gives, what it costs on disk,
and one download for all of it (no Qt).

:func:`plan` says, before anything is fetched, which models of the set are already usable, how many
bytes are still to come (a part file left by an earlier try counts as done: downloads resume), and
whether that fits on the disk that holds the model store. :func:`fetch` downloads what is missing,
one model after the other, reporting one progress over the whole set; a cancel or a dropped
connection keeps every finished model and the part file of the one in progress, so running it again
resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.errors import UserError
from workers.files import disk_full_sentence
from workers.models.manifest import TOOL_NAMES, TOOLS, Model
from workers.models.store import ModelState, ModelStore, Status, human_size

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

#: Room left free after the set is downloaded, so the disk is never filled to the last byte.
HEADROOM = 200 * 1024 * 1024


@dataclass(frozen=True)
class PlanItem:
    model: Model
    gives: str
    state: ModelState
    #: Bytes still to download (the model's size less what finished or part files already hold).
    to_fetch: int
    #: The tool's options that select this model (see :class:`workers.models.manifest.StarterItem`).
    use: tuple[tuple[str, str], ...] = ()

    @property
    def ready(self) -> bool:
        return self.state.usable

    @property
    def status_text(self) -> str:
        if self.ready:
            return "Ready"
        if self.state.status is Status.PARTIAL or self.to_fetch < self.model.size:
            return f"{human_size(self.model.size - self.to_fetch)} of {human_size(self.model.size)} here; resumes"
        return human_size(self.model.size)


@dataclass(frozen=True)
class StarterPlan:
    tool: str
    summary: str
    items: tuple[PlanItem, ...]
    #: Free bytes on the disk that holds the model store (None when it could not be read).
    free: int | None
    store_root: Path

    @property
    def tool_name(self) -> str:
        return TOOL_NAMES.get(self.tool, self.tool)

    @property
    def missing(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if not i.ready)

    @property
    def total(self) -> int:
        """The size of the whole set."""
        return sum(i.model.size for i in self.items)

    @property
    def to_fetch(self) -> int:
        return sum(i.to_fetch for i in self.missing)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def fits(self) -> bool:
        return self.free is None or self.to_fetch + HEADROOM <= self.free

    def space_sentence(self) -> str:
        """What it costs on disk, in one sentence (and whether it fits)."""
        if self.complete:
            return f"Every recommended model for {self.tool_name} is ready ({human_size(self.total)})."
        free = f"{human_size(self.free)} free" if self.free is not None else "free space unknown"
        text = f"{human_size(self.to_fetch)} to download ({free} on the disk that holds {self.store_root})."
        if not self.fits:
            text += f" That does not fit: free {human_size(self.to_fetch + HEADROOM - (self.free or 0))} first."
        return text

    def check_space(self) -> None:
        """Refuse before the first byte when the set would not fit."""
        if not self.fits:
            raise UserError(
                disk_full_sentence(
                    f"the recommended models for {self.tool_name} need {human_size(self.to_fetch)} "
                    f"but only {human_size(self.free or 0)} is free on the disk that holds {self.store_root}."
                ).replace("The disk is full: the", "Not enough disk space: the")
            )


def free_space(folder: Path) -> int | None:
    """Free bytes on the disk that holds ``folder`` (its nearest existing parent)."""
    path = Path(folder)
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError as exc:
        log.warning("free space of %s unknown: %s", path, exc)
        return None


def _already_here(store: ModelStore, state: ModelState) -> int:
    """Bytes of a model that need not come again: finished files and part files (downloads resume)."""
    have = 0
    base = store.model_dir(state.model.id)
    for fs in state.files:
        if fs.where is not None:
            have += fs.spec.size
            continue
        part = base / (fs.spec.name + ".part")
        with contextlib.suppress(OSError):
            if part.is_file():
                have += min(part.stat().st_size, fs.spec.size)
    return have


def plan(store: ModelStore, tool: str) -> StarterPlan:
    """What "Get started" would do for ``tool`` right now."""
    if tool not in TOOLS:
        raise UserError(f"There is no tool called {tool!r}; choose one of {', '.join(TOOLS)}.")
    starter = store.manifest.starters.get(tool)
    if starter is None:
        raise UserError(f"{TOOL_NAMES[tool]} has no recommended models to get.")
    items = []
    for item in starter.items:
        state = store.state(item.model_id)
        to_fetch = 0 if state.usable else max(0, state.model.size - _already_here(store, state))
        items.append(PlanItem(state.model, item.gives, state, to_fetch, item.use))
    return StarterPlan(tool, starter.summary, tuple(items), free_space(store.root), store.root)


def fetch(
    store: ModelStore,
    tool: str,
    *,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
    cancel: CancelCheck | None = None,
    timeout: float = 30.0,
) -> StarterPlan:
    """Download every missing model of ``tool``'s set; returns the plan as it stands afterwards.

    ``progress(done, total)`` counts bytes over the whole set; ``status(text)`` names the model being
    fetched. Raises :class:`UserError` (the set does not fit, a download failed: finished models stay)
    and :class:`workers.errors.Cancelled`.
    """
    from workers.models.download import download_model  # the network code loads only here

    before = plan(store, tool)
    before.check_space()
    total = before.to_fetch or 1
    finished = 0
    for item in before.missing:
        # download_model counts over the files it still has to make, from what their part files hold
        todo = sum(fs.spec.size for fs in item.state.files if fs.where in (None, "join"))
        start = todo - item.to_fetch

        def scaled(done: int, _total: int, _start: int = start, _before: int = finished) -> None:
            if progress is not None:
                progress(min(total, _before + max(0, done - _start)), total)

        if status is not None:
            status(f"Getting {item.model.name} ({human_size(item.model.size)})…")
        log.info("get started (%s): %s", tool, item.model.id)
        download_model(store, item.model.id, progress=scaled, cancel=cancel, timeout=timeout)
        finished += item.to_fetch
        if progress is not None:
            progress(min(total, finished), total)
    return plan(store, tool)


def choices(plan: StarterPlan) -> dict[str, str]:
    """The tool options that select the set's ready models (empty when the tool finds them alone)."""
    return {key: value for item in plan.items if item.ready for key, value in item.use}


def apply_choices(settings: Any, plan: StarterPlan) -> dict[str, str]:
    """Select the set's ready models in ``settings`` (a :class:`workers.settings.Settings`): the tool's
    section, whether it was read by its tool already (a dataclass) or not (a dict). Returns what
    changed; the caller saves."""
    values = choices(plan)
    if not values:
        return {}
    section = settings.sections.get(plan.tool)
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        known = {f.name for f in dataclasses.fields(section)}
        values = {k: v for k, v in values.items() if k in known}
        for key, value in values.items():
            setattr(section, key, value)
    else:
        merged = dict(section) if isinstance(section, dict) else {}
        merged.update(values)
        settings.sections[plan.tool] = merged
    return values
