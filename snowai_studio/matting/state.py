"""What the background-removal dock keeps per image: the picture, its mask, the strokes, the history.

No widgets here: plain data the dock and its tests share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.matting.refine import MaskHistory, stroke_coverage

log = logging.getLogger(__name__)

#: Seed values in :attr:`ImageEntry.seeds`: what the user's strokes asked for.
SEED_NONE = 0
SEED_BACKGROUND = 1
SEED_SUBJECT = 2

#: Undo memory per image (the masks' changed rectangles).
HISTORY_BYTES = 192 * 1024 * 1024
SEED_HISTORY_BYTES = 64 * 1024 * 1024
THUMB_SIZE = 72


class EditHistory:
    """Undo/redo over an image's alpha and its stroke seeds together, one step per user action."""

    def __init__(self, max_steps: int = 100) -> None:
        self.alpha = MaskHistory(max_steps, HISTORY_BYTES)
        self.seeds = MaskHistory(max_steps, SEED_HISTORY_BYTES)
        self.max_steps = max_steps
        self._done: list[tuple[bool, bool]] = []
        self._undone: list[tuple[bool, bool]] = []
        #: Bumped on every change; the dock compares it with the version last exported.
        self.version = 0

    def reset(self, alpha: np.ndarray, seeds: np.ndarray) -> None:
        self.alpha.clear()
        self.seeds.clear()
        self.alpha.push(alpha)
        self.seeds.push(seeds)
        self._done.clear()
        self._undone.clear()
        self.version += 1

    def record(self, alpha: np.ndarray, seeds: np.ndarray) -> bool:
        """A new state after a user action; False when nothing changed."""
        if self.alpha.current is None:
            self.reset(alpha, seeds)
            return True
        changed_alpha = self.alpha.push(alpha)
        changed_seeds = self.seeds.push(seeds)
        if not (changed_alpha or changed_seeds):
            return False
        if not changed_alpha:
            self.alpha.discard_redo()
        if not changed_seeds:
            self.seeds.discard_redo()
        self._done.append((changed_alpha, changed_seeds))
        del self._done[: max(0, len(self._done) - self.max_steps)]
        self._undone.clear()
        self.version += 1
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def undo(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The alpha and seeds to show after undoing one action, or None."""
        if not self._done:
            return None
        flags = self._done.pop()
        self._step(flags, undo=True)
        self._undone.append(flags)
        self.version += 1
        return self._state()

    def redo(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self._undone:
            return None
        flags = self._undone.pop()
        self._step(flags, undo=False)
        self._done.append(flags)
        self.version += 1
        return self._state()

    def _step(self, flags: tuple[bool, bool], *, undo: bool) -> None:
        for flag, history in zip(flags, (self.alpha, self.seeds), strict=True):
            if flag:
                # The layer may have forgotten its oldest step (memory bound): then it stays put.
                history.undo() if undo else history.redo()

    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.alpha.current is not None and self.seeds.current is not None
        return self.alpha.current.copy(), self.seeds.current.copy()


@dataclass
class ImageEntry:
    """One image of the dock's list and everything done to it so far."""

    path: Path
    image: object | None = None  # a workers.matting.imageio.LoadedImage once loaded
    alpha: np.ndarray | None = None
    seeds: np.ndarray | None = None
    history: EditHistory = field(default_factory=EditHistory)
    model: str = ""
    error: str = ""
    loading: bool = False
    #: "remove" or "refine" while such a job runs for this image.
    busy: str = ""
    saved_version: int = -1
    exported_to: Path | None = None

    @property
    def key(self) -> str:
        return path_key(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def has_mask(self) -> bool:
        return self.alpha is not None

    @property
    def unsaved(self) -> bool:
        return self.alpha is not None and self.history.version != self.saved_version

    def set_result(self, alpha: np.ndarray, model: str) -> None:
        """A new alpha from the model: a new undoable step (the strokes start afresh)."""
        alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
        seeds = np.zeros_like(alpha)
        if self.alpha is None or self.alpha.shape != alpha.shape:
            self.history.reset(alpha, seeds)
        else:
            self.history.record(alpha, seeds)
        self.alpha = alpha.copy()
        self.seeds = seeds
        self.model = model

    def add_stroke(self, points: list[tuple[float, float]], radius: float, add: bool) -> None:
        """Remember a brush stroke as a sure subject/background seed for the next refinement and
        record the new state (the alpha was already painted)."""
        if self.alpha is None:
            return
        if self.seeds is None or self.seeds.shape != self.alpha.shape:
            self.seeds = np.zeros_like(self.alpha)
        found = stroke_coverage(points, radius, self.alpha.shape)
        if found is not None:
            cover, (x0, y0, x1, y1) = found
            region = self.seeds[y0:y1, x0:x1]
            region[cover >= 128] = SEED_SUBJECT if add else SEED_BACKGROUND
        self.history.record(self.alpha, self.seeds)

    def set_refined(self, alpha: np.ndarray) -> None:
        self.alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
        if self.seeds is None:
            self.seeds = np.zeros_like(self.alpha)
        self.history.record(self.alpha, self.seeds)

    def undo(self) -> bool:
        state = self.history.undo()
        if state is None:
            return False
        self.alpha, self.seeds = state
        return True

    def redo(self) -> bool:
        state = self.history.redo()
        if state is None:
            return False
        self.alpha, self.seeds = state
        return True

    def drop_pixels(self) -> None:
        """Free the decoded image of an image without edits (it is read again when shown)."""
        if self.alpha is None:
            self.image = None


def path_key(path: Path) -> str:
    try:
        return str(path.expanduser().resolve())
    except OSError:
        return str(path)


def make_thumbnail(path: Path, size: int = THUMB_SIZE) -> np.ndarray:
    """A small RGB preview of an image file (fast: JPEG decoding at reduced size)."""
    from PIL import Image, ImageOps

    from workers.errors import UserError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size * 2, size * 2))
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
            im.thumbnail((size, size))
            if im.mode == "RGBA":
                # Show transparency on a light grey so an existing cut-out stays visible.
                flat = Image.new("RGB", im.size, (200, 200, 200))
                flat.paste(im, mask=im.split()[3])
                im = flat
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except FileNotFoundError:
        raise UserError(f"{path.name} was not found.") from None
    except Exception as exc:
        raise UserError(f"{path.name} could not be read: {exc}") from None
