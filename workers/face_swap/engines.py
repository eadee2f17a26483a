"""The one contract both face engines follow, so the pipeline can drive either.

An engine finds faces, refreshes landmarks for faces a tracker carried from the last frame,
reads identity vectors, prepares a source face from photos, and swaps one target face in a frame.
Coordinates are always those of the image passed in; callers that detect on a downscaled frame
rescale the faces themselves (:meth:`workers.face_swap.options.Face.scaled`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from workers.face_swap.options import Face, FaceSwapOptions, SourceFace


@runtime_checkable
class FaceEngine(Protocol):
    """Face detection, identity and swapping on BGR uint8 images."""

    #: "classic" or "insightface".
    name: str

    def load(self) -> None:
        """Load the models (slow, once, on the thread that will use the engine)."""

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Every face in the image, with box, five key points, landmarks and score (no embedding)."""
        ...

    def landmarks(self, bgr: np.ndarray, faces: list[Face]) -> list[Face]:
        """The same faces with landmarks and key points refreshed from their (tracked) boxes."""
        ...

    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray | None:
        """The face's L2-normalised identity vector (None when the engine has none)."""
        ...

    def prepare_source(self, images: list[np.ndarray]) -> SourceFace:
        """The source face from one or several photos; a UserError sentence when a photo shows no face."""
        ...

    def swap(self, frame: np.ndarray, target: Face, source: SourceFace, options: FaceSwapOptions) -> np.ndarray:
        """The frame with ``target`` replaced by ``source`` (mask, colour, mouth and opacity applied).

        The frame passed in may be modified and returned.
        """
        ...

    def close(self) -> None:
        """Release the models."""
