"""Training checkpoints: ``G_<step>.pth`` / ``D_<step>.pth`` as RVC and so-vits-svc write them
(``{"model", "iteration", "optimizer", "learning_rate"}``), written to a temporary file and renamed
into place, so a full disk or a crash while saving leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import Any

from workers.errors import UserError

log = logging.getLogger(__name__)

_STEP = re.compile(r"^[GD]_(\d+)\.pth$")


def step_of(path: Path) -> int:
    found = _STEP.match(path.name)
    return int(found.group(1)) if found else -1


def checkpoint_steps(folder: Path) -> list[int]:
    """Steps that have both a generator and a discriminator checkpoint in ``folder``, oldest first."""
    gens = {step_of(p) for p in folder.glob("G_*.pth")}
    discs = {step_of(p) for p in folder.glob("D_*.pth")}
    return sorted(s for s in gens & discs if s >= 0)


def write_atomic(path: Path, obj: Any) -> None:
    """``torch.save`` to ``path`` through a temporary file in the same folder and a rename."""
    import torch

    tmp = path.with_name(path.name + ".part")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise UserError(
                f"The disk is full: {path.name} could not be saved in {path.parent}; the checkpoints saved "
                "before are kept. Free some space and resume."
            ) from None
        raise UserError(f"{path.name} could not be saved in {path.parent} ({exc.strerror or exc}).") from None


def save_pair(folder: Path, step: int, generator: dict[str, Any], discriminator: dict[str, Any]) -> Path:
    """Write ``G_<step>.pth`` and ``D_<step>.pth``; returns the generator's path."""
    folder.mkdir(parents=True, exist_ok=True)
    g_path = folder / f"G_{step}.pth"
    d_path = folder / f"D_{step}.pth"
    write_atomic(d_path, discriminator)
    try:
        write_atomic(g_path, generator)
    except UserError:
        d_path.unlink(missing_ok=True)  # a lone D_ is no checkpoint
        raise
    return g_path


def prune(folder: Path, keep: int, protect: set[int]) -> None:
    """Delete all but the newest ``keep`` checkpoints (and those in ``protect``)."""
    steps = checkpoint_steps(folder)
    for step in steps[:-keep] if keep > 0 else steps:
        if step in protect:
            continue
        for prefix in ("G", "D"):
            (folder / f"{prefix}_{step}.pth").unlink(missing_ok=True)


def load_pair(folder: Path, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from workers.voice_conversion.checkpoints import torch_load

    g = torch_load(folder / f"G_{step}.pth")
    d = torch_load(folder / f"D_{step}.pth")
    for name, obj in (("G", g), ("D", d)):
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
            raise UserError(f"{name}_{step}.pth in {folder} is not a training checkpoint.")
    return g, d
