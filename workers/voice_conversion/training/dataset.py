"""A folder of recordings -> training pieces, and the report of what was used.

Every WAV/FLAC/MP3/OGG file under the folder is read (any rate, any channel count, mixed to mono).
Sub-folders that hold recordings are speakers (so-vits-svc's ``dataset_raw/<speaker>/`` layout); files
at the top level belong to one speaker named after the folder. A file is skipped, with its reason, when
it cannot be read, when it is clipped (more than 0.1 % of its samples at full scale), too quiet (peak
below -35 dBFS) or too short (under 2 s of speech). The rest is cut at silences (runs of 0.3 s or more
below the file's level) into pieces of 2-15 s, optionally cleaned by RNNoise (pyrnnoise), brought to
-20 dBFS RMS with peaks under -0.5 dBFS, and resampled to the model's rate. Under 10 s of usable speech
in all is refused with the number found.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import Cancelled, UserError
from workers.media.rnnoise import denoise

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aif", ".aiff")
MIN_PIECE = 2.0
MAX_PIECE = 15.0
MIN_TOTAL = 10.0
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001
QUIET_PEAK_DB = -35.0
SILENCE_RUN = 0.3
TARGET_RMS_DB = -20.0
PEAK_LIMIT = 10 ** (-0.5 / 20)
_HOP = 0.01
_WINDOW = 0.02


class TooLittleSpeech(UserError):
    """Under :data:`MIN_TOTAL` seconds of usable speech; ``report`` says what was found."""

    def __init__(self, message: str, report: DatasetReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Piece:
    """One training piece: mono float32 audio at ``rate`` from ``source`` (starting at ``start`` s)."""

    speaker: str
    source: Path
    start: float
    audio: np.ndarray
    rate: int
    name: str = ""

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate


@dataclass
class DatasetReport:
    """What a dataset folder gave: usable minutes per speaker, pieces, and every skipped file with why."""

    folder: Path
    files: int = 0
    pieces: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def usable_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    @property
    def speakers(self) -> list[str]:
        return sorted(self.seconds)

    def describe(self) -> str:
        lines = [
            f"{self.usable_seconds / 60:.1f} min usable in {self.pieces} pieces from "
            f"{self.files - len(self.skipped)} of {self.files} files"
        ]
        if len(self.seconds) > 1:
            lines.append("speakers: " + ", ".join(f"{s} {t / 60:.1f} min" for s, t in sorted(self.seconds.items())))
        for name, reason in self.skipped:
            lines.append(f"skipped {name}: {reason}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "files": self.files,
            "pieces": self.pieces,
            "usable_seconds": round(self.usable_seconds, 2),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "skipped": [{"file": n, "reason": r} for n, r in self.skipped],
        }


def find_recordings(folder: Path) -> list[tuple[Path, str]]:
    """Every recording under ``folder`` with its speaker name (its top-level sub-folder, else the folder's)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"The dataset folder {folder} was not found.")
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            rel = path.relative_to(folder)
            speaker = rel.parts[0] if len(rel.parts) > 1 else folder.name
            found.append((path, speaker))
    if not found:
        raise UserError(
            f"The folder {folder} holds no recordings (WAV, FLAC, MP3 or OGG); put the voice's recordings in it."
        )
    return found


def frame_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS level (dBFS) of 20 ms windows every 10 ms."""
    hop = max(1, int(rate * _HOP))
    win = max(hop, int(rate * _WINDOW))
    count = max(1, (len(audio) - win) // hop + 1)
    csum = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(count) * hop
    ends = np.minimum(starts + win, len(audio))
    energy = (csum[ends] - csum[starts]) / np.maximum(ends - starts, 1)
    return 10.0 * np.log10(np.maximum(energy, 1e-12))


def check_recording(audio: np.ndarray) -> str | None:
    """Why a whole recording is unusable (clipped, too quiet), or ``None``."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if len(audio) else 0.0
    if clipped > CLIP_FRACTION:
        return f"clipped ({clipped * 100:.1f}% of the samples at full scale)"
    peak_db = 20 * np.log10(max(peak, 1e-9))
    if peak_db < QUIET_PEAK_DB:
        return f"too quiet (peak {peak_db:.0f} dBFS)"
    return None


def slice_at_silences(audio: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """Sample ranges of pieces of 2-15 s cut in the middle of silences (shorter leftovers dropped)."""
    levels = frame_db(audio, rate)
    hop = max(1, int(rate * _HOP))
    loud = float(np.percentile(levels, 95))
    threshold = max(-60.0, loud - 35.0)
    silent = levels < threshold
    run = round(SILENCE_RUN / _HOP)
    # cut points: the middle of every silent run of `run` frames or more
    cuts = [0]
    i = 0
    n = len(silent)
    while i < n:
        if silent[i]:
            j = i
            while j < n and silent[j]:
                j += 1
            if j - i >= run and i > 0 and j < n:
                cuts.append(((i + j) // 2) * hop)
            i = j
        else:
            i += 1
    cuts.append(len(audio))
    regions = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    pieces: list[tuple[int, int]] = []
    start = end = None
    max_len, min_len = int(MAX_PIECE * rate), int(MIN_PIECE * rate)
    for a, b in regions:
        if start is None:
            start, end = a, b
        elif b - start <= max_len:
            end = b
        else:
            pieces.append((start, end))  # type: ignore[arg-type]
            start, end = a, b
    if start is not None:
        pieces.append((start, end))  # type: ignore[arg-type]
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        if b - a > max_len:  # one long phrase without a pause: equal parts under 15 s
            parts = int(np.ceil((b - a) / max_len))
            edges = np.linspace(a, b, parts + 1).astype(int)
            out.extend((int(x), int(y)) for x, y in itertools.pairwise(edges))
        elif b - a >= min_len:
            out.append((a, b))
    return [(a, b) for a, b in out if b - a >= min_len and _has_speech(levels, a // hop, b // hop, threshold)]


def _has_speech(levels: np.ndarray, a: int, b: int, threshold: float) -> bool:
    return bool(np.mean(levels[a:b] >= threshold) > 0.2) if b > a else False


def normalise_loudness(audio: np.ndarray, rate: int) -> np.ndarray:
    """Speech frames brought to :data:`TARGET_RMS_DB`, peaks kept under -0.5 dBFS."""
    levels = frame_db(audio, rate)
    speech = levels[levels > levels.max() - 30.0]
    rms_db = 10 * np.log10(np.mean(10 ** (speech / 10))) if len(speech) else -90.0
    gain = 10 ** ((TARGET_RMS_DB - rms_db) / 20)
    out = audio * gain
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > PEAK_LIMIT:
        out = out * (PEAK_LIMIT / peak)
    return out.astype(np.float32)


def prepare_dataset(
    folder: str | Path,
    rate: int,
    *,
    noise_suppression: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[list[Piece], DatasetReport]:
    """Slice every usable recording of ``folder`` into pieces at ``rate``; refuse under 10 s in all."""
    from workers.media.audio import resample
    from workers.voice_conversion.files import read_audio

    folder = Path(folder).expanduser()
    recordings = find_recordings(folder)
    report = DatasetReport(folder, files=len(recordings))
    pieces: list[Piece] = []
    for done, (path, speaker) in enumerate(recordings):
        if cancelled is not None and cancelled():
            raise Cancelled()
        name = str(path.relative_to(folder))
        try:
            data, src_rate = read_audio(path)
        except UserError as exc:
            report.skipped.append((name, f"unreadable ({str(exc).rstrip('.')})"))
            continue
        mono = data.mean(axis=1).astype(np.float32)
        reason = check_recording(mono)
        if reason is None:
            ranges = slice_at_silences(mono, src_rate)
            if not ranges:
                reason = f"too short ({len(mono) / src_rate:.1f} s; a piece needs {MIN_PIECE:g} s of speech)"
        if reason is not None:
            report.skipped.append((name, reason))
            continue
        for n, (a, b) in enumerate(ranges):
            piece = mono[a:b]
            if noise_suppression:
                piece = denoise(piece, src_rate)
            piece = normalise_loudness(piece, src_rate)
            if src_rate != rate:
                piece = resample(piece.reshape(-1, 1), src_rate, rate)[:, 0]
            stem = "_".join(Path(name).with_suffix("").parts)
            pieces.append(
                Piece(
                    speaker, path, a / src_rate, np.ascontiguousarray(piece, np.float32), rate, name=f"{stem}_{n:03d}"
                )
            )
            report.seconds[speaker] = report.seconds.get(speaker, 0.0) + (b - a) / src_rate
        if progress is not None:
            progress(done + 1, len(recordings))
    report.pieces = len(pieces)
    if report.usable_seconds < MIN_TOTAL:
        raise TooLittleSpeech(
            f"Only {report.usable_seconds:.1f} s of usable speech was found in {folder.name} "
            f"({len(report.skipped)} of {report.files} files skipped); training needs at least {MIN_TOTAL:g} s.",
            report,
        )
    log.info("Dataset %s: %s", folder, report.describe().replace("\n", "; "))
    return pieces, report
