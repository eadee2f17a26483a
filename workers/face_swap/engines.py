"""The one contract both face engines follow, so the pipeline can drive either.

An engine finds faces, refreshes landmarks for faces a tracker carried from the last frame,
reads identity vectors, prepares a source face from photos, and swaps one target face in a frame.
Coordinates are always those of the image passed in; callers that detect on a downscaled frame
rescale the faces themselves (:meth:`workers.face_swap.options.Face.scaled`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from workers.errors import UserError
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


def prepare_source_faces(
    images: list[np.ndarray],
    *,
    as_bgr: Callable[[np.ndarray], np.ndarray],
    detect: Callable[[np.ndarray], list[Face]],
    embed: Callable[[np.ndarray, Face], np.ndarray | None],
    crop: Callable[[np.ndarray, Face], tuple[np.ndarray, Face]],
    need_embedding: bool,
) -> SourceFace:
    """The largest face of each source photo, its identity vector (averaged over the photos and
    normalised) and a crop around it; a :class:`UserError` sentence naming the photo otherwise."""
    if not images:
        raise UserError("Choose at least one photo of the face to use.")
    faces: list[Face] = []
    crops: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    for number, image in enumerate(images, start=1):
        if image is None or image.ndim < 2 or image.size == 0:
            raise UserError(f"Source photo {number} could not be read as an image.")
        bgr = as_bgr(image)
        found = detect(bgr)
        if not found:
            raise UserError(
                f"No face was found in source photo {number}; choose a photo where the face is "
                "clear, turned to the camera and not too small."
            )
        face = max(found, key=lambda f: f.area)
        vector = embed(bgr, face)
        if vector is None and need_embedding:
            raise UserError(f"The face in source photo {number} could not be read; try another photo.")
        if vector is not None:
            face.embedding = vector
            embeddings.append(vector)
        piece, local = crop(bgr, face)
        faces.append(local)
        crops.append(piece)
    embedding = None
    if embeddings:
        mean = np.mean(embeddings, axis=0)
        embedding = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return SourceFace(embedding=embedding, faces=faces, images=crops, count=len(images))
