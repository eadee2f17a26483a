"""Loading what goes live: the face swap pipeline with its source face, and the voice converter.

Both are loaded on the thread that calls (the live worker's, the CLI's); the model runtimes are
imported only here. No Qt here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.errors import UserError

log = logging.getLogger(__name__)


def load_face(photos: Sequence[str | Path], store: Any, *, engine: str = "auto", mark: bool = True) -> Any:
    """A loaded :class:`~workers.face_swap.pipeline.FaceSwapPipeline` with the face of ``photos``; None
    when no photo is given (the picture then goes out unswapped)."""
    if not photos:
        return None
    from workers.face_swap.cli import prepare_source
    from workers.face_swap.options import FaceSwapOptions
    from workers.face_swap.pipeline import FaceSwapPipeline

    paths = [Path(p).expanduser() for p in photos]
    for path in paths:
        if not path.is_file():
            raise UserError(f"The face photo {path} was not found.")
    pipeline = FaceSwapPipeline(store, FaceSwapOptions(engine=engine, mark=mark))
    pipeline.load()
    try:
        prepare_source(pipeline, paths)
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def read_faces(photos: Sequence[str | Path]) -> list[Any]:
    """The pictures of ``photos`` (for a preset's face, handed to a running pipeline)."""
    from workers.face_swap.cli import read_image

    return [read_image(Path(p).expanduser()) for p in photos]


def load_voice(model: str, store: Any, *, pitch: float = 0.0, formant: float = 0.0, device: str = "cpu") -> Any:
    """The built-in voice changer (``model`` empty) or the so-vits-svc / RVC model ``model`` names."""
    from workers.voice_conversion.converter import load_converter
    from workers.voice_conversion.options import VoiceConversionOptions

    options = VoiceConversionOptions(model=model or "", pitch=float(pitch), formant=float(formant))
    return load_converter(options, store=store, device=device)


def voice_name(model: str) -> str:
    return Path(model).name if model else "the built-in voice changer"
