"""Frame sources: the generated pattern, video files read through OpenCV, and camera errors."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.errors import UserError
from workers.media.audio import AudioStatus
from workers.media.camera import TEST_PATTERN, CameraSource, FrameSource, make_frame_source, parse_camera_spec
from workers.media.devices import CameraDevice, DeviceReport, devices_summary, list_cameras
from workers.media.fakes import FailingCamera, GeneratedCamera, VideoFileCamera


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (96, 64), fps: float = 20.0) -> Path:
    """A small MJPG AVI whose frame ``i`` is a flat grey of value ``i * 20``."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(frames):
        writer.write(np.full((h, w, 3), i * 20, np.uint8))
    writer.release()
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


# ---- generated pattern ------------------------------------------------------------------------------


def test_generated_camera_gives_moving_bgr_frames() -> None:
    cam = GeneratedCamera(160, 120, 30, paced=False)
    assert isinstance(cam, FrameSource)
    with cam:
        assert cam.info.width == 160 and cam.info.height == 120 and cam.info.fps == 30
        items = [cam.read() for _ in range(5)]
    assert all(it is not None for it in items)
    frames = [it.payload for it in items if it is not None]
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert [it.seq for it in items if it is not None] == [0, 1, 2, 3, 4]
    stamps = [it.timestamp for it in items if it is not None]
    assert stamps == sorted(stamps)
    assert not np.array_equal(frames[0], frames[1]), "the pattern should move"
    assert cam.open_count == 1 and cam.close_count == 1 and not cam.is_open


def test_generated_camera_ends_after_frames_and_paces() -> None:
    with GeneratedCamera(32, 24, 50, frames=6) as cam:
        start = time.monotonic()
        got = []
        while (item := cam.read()) is not None:
            got.append(item)
        elapsed = time.monotonic() - start
    assert len(got) == 6
    assert elapsed >= 5 / 50 * 0.8, f"paced at 50 fps, 6 frames took {elapsed:.3f} s"


def test_failing_camera_raises_after_n_frames() -> None:
    with FailingCamera(fail_after=2) as cam:
        assert cam.read() is not None
        assert cam.read() is not None
        with pytest.raises(UserError, match="stopped sending frames"):
            cam.read()
    with pytest.raises(UserError):
        FailingCamera(fail_on_open=True).open()


# ---- video files through CameraSource ---------------------------------------------------------------


def test_video_file_read_through_camera_source(clip: Path) -> None:
    src = CameraSource(str(clip), paced=False)
    with src:
        info = src.info
        assert (info.width, info.height) == (96, 64)
        assert info.fps == pytest.approx(20.0)
        assert info.frame_count == 12
        assert info.label == "clip.avi"
        items = []
        while (item := src.read()) is not None:
            items.append(item)
    assert len(items) == 12
    assert [it.seq for it in items] == list(range(12))
    for i, it in enumerate(items):
        assert it.payload.shape == (64, 96, 3) and it.payload.dtype == np.uint8
        assert abs(float(it.payload.mean()) - i * 20) < 6, "frames come back in order with their content"
    assert not src.is_open


def test_video_file_is_paced_at_its_own_fps(clip: Path) -> None:
    with CameraSource(clip.as_posix(), loop=False) as src:
        start = time.monotonic()
        for _ in range(9):
            assert src.read() is not None
        elapsed = time.monotonic() - start
    assert elapsed >= 8 / 20 * 0.85, f"9 frames at 20 fps took only {elapsed:.3f} s"
    assert elapsed < 2.0


def test_video_file_camera_loops(clip: Path) -> None:
    with VideoFileCamera(clip, paced=False) as cam:
        items = [cam.read() for _ in range(30)]
    assert all(it is not None for it in items)
    assert [it.seq for it in items if it is not None] == list(range(30))
    looped = [it for it in items if it is not None and it.meta.get("looped")]
    assert len(looped) == 2  # restarted at frames 12 and 24
    assert float(items[12].payload.mean()) < 10  # back to the first (black) frame


def test_missing_video_file_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"The video file .*nothing\.mp4 was not found"):
        CameraSource(str(tmp_path / "nothing.mp4")).open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="could not be opened as a video"):
        CameraSource(str(junk)).open()


# ---- devices ----------------------------------------------------------------------------------------


def test_missing_camera_index_gives_user_error() -> None:
    index = 63
    if os.path.exists(f"/dev/video{index}"):
        pytest.skip("this machine has a camera node at index 63")
    with pytest.raises(UserError) as err:
        CameraSource(index, 640, 480, 30).open()
    assert str(err.value) == (f"No camera found at index {index}. Connect a camera or choose a video file in Devices.")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.path.exists("/dev/video0"), reason="has a camera")
def test_camera_zero_message_matches_the_one_users_see() -> None:
    with pytest.raises(UserError, match=r"^No camera found at index 0\. Connect a camera or choose a video file"):
        CameraSource("0").open()


def test_read_before_open_is_an_error() -> None:
    with pytest.raises(UserError, match="not open"):
        CameraSource(0).read()


def test_camera_spec_parsing_and_factory(clip: Path) -> None:
    assert parse_camera_spec("2") == 2
    assert parse_camera_spec(1) == 1
    assert parse_camera_spec(str(clip)) == str(clip)
    pattern = make_frame_source(TEST_PATTERN, 64, 48, 15)
    assert isinstance(pattern, GeneratedCamera) and (pattern.width, pattern.height) == (64, 48)
    device = make_frame_source("3", 640, 480, 30)
    assert isinstance(device, CameraSource) and device.is_device and device.spec == 3
    video = make_frame_source(str(clip))
    assert isinstance(video, CameraSource) and video.is_file and video.loop


def test_list_cameras_probes_indices_until_a_gap() -> None:
    seen: list[int] = []

    def probe(index: int, timeout: float) -> bool:
        seen.append(index)
        return index in (0, 1)

    cams = list_cameras(probe=probe)
    assert [c.spec for c in cams] == ["0", "1"]
    assert seen == [0, 1, 2]


def test_devices_summary_lines() -> None:
    none = DeviceReport(audio=AudioStatus(False, "Sound is unavailable: the PortAudio library is not installed."))
    assert devices_summary(none) == "No camera · No microphone · No speaker (PortAudio is not installed)"
    some = DeviceReport(cameras=[CameraDevice("0", "Cam")], audio=AudioStatus(True, "ok", 0, 0))
    assert devices_summary(some) == "1 camera · No microphone · No speaker"
    # the real machine: never raises, always one line
    line = devices_summary()
    assert "camera" in line and "\n" not in line
