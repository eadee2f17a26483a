"""LiveRecording: asked for, opened at the first frame, finished, and salvaged after a failure."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from workers.media.recording import LiveRecording


def _frame(value: int = 120) -> np.ndarray:
    return np.full((48, 64, 3), value, np.uint8)


def _recording(suffix: str | None = None) -> tuple[LiveRecording, list[Path], list[str]]:
    saved: list[Path] = []
    errors: list[str] = []
    rec = LiveRecording(saved.append, lambda exc, what: errors.append(f"{what}: {exc}"), suffix=suffix)
    return rec, saved, errors


def _count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_nothing_is_written_until_asked(tmp_path: Path) -> None:
    rec, saved, errors = _recording()
    assert not rec.write(_frame(), 0.0, lambda: 30.0)
    assert not rec.active and rec.frames == 0 and rec.stop() is None
    assert saved == [] and errors == []


def test_a_recording_is_opened_at_the_first_frame_and_saved_on_stop(tmp_path: Path) -> None:
    rec, saved, errors = _recording(suffix=".mp4")
    target = rec.start(tmp_path / "live.mkv")
    assert target == tmp_path / "live.mp4"
    assert rec.active and rec.stats() == {"recording": True, "recorded_frames": 0}
    for i in range(3):
        assert rec.write(_frame(), i / 30, lambda: None)
    assert rec.frames == 3
    assert rec.stop() == target and saved == [target] and errors == []
    assert not rec.active and _count(target) == 3


def test_starting_again_saves_the_running_recording(tmp_path: Path) -> None:
    rec, saved, _ = _recording()
    rec.start(tmp_path / "a.mp4")
    rec.write(_frame(), 0.0, lambda: 30.0)
    rec.start(tmp_path / "b.mp4")
    assert saved == [tmp_path / "a.mp4"]
    assert rec.active and rec.frames == 0


def test_a_failed_frame_stops_the_recording_and_keeps_what_was_written(tmp_path: Path) -> None:
    rec, saved, errors = _recording()
    rec.start(tmp_path / "live.mp4")
    assert rec.write(_frame(), 0.0, lambda: 30.0)
    assert rec.write(_frame(), 0.1, lambda: 30.0)
    assert not rec.write(np.zeros((48, 64), np.uint8), 0.2, lambda: 30.0)  # not a BGR frame
    assert len(errors) == 1 and errors[0].startswith("recording stopped")
    assert saved == [tmp_path / "live.mp4"] and _count(tmp_path / "live.mp4") == 2
    assert not rec.active


def test_stopping_before_any_frame_reports_nothing_was_recorded(tmp_path: Path) -> None:
    rec, saved, errors = _recording()
    rec.start(tmp_path / "live.mp4")
    assert rec.stop() is None  # the file is only opened by a frame
    assert saved == [] and errors == []
