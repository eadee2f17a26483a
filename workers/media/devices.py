"""Which cameras, microphones and speakers this machine has, in words a user understands.

No Qt here. On Linux cameras are found from the ``/dev/video*`` nodes (no device is opened);
elsewhere indices 0..4 are probed with OpenCV, each with a short time limit.
"""

from __future__ import annotations

import glob
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workers.media.audio import AudioDevice, AudioStatus, audio_status, list_input_devices, list_output_devices

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraDevice:
    #: What goes into the camera setting: the index as text ("0").
    spec: str
    name: str

    @property
    def index(self) -> int:
        return int(self.spec)


@dataclass(slots=True)
class DeviceReport:
    """One look at the machine's media devices."""

    cameras: list[CameraDevice] = field(default_factory=list)
    microphones: list[AudioDevice] = field(default_factory=list)
    speakers: list[AudioDevice] = field(default_factory=list)
    audio: AudioStatus = field(default_factory=lambda: AudioStatus(False, "Sound was not checked."))


# ---- cameras ---------------------------------------------------------------------------------------


def _linux_cameras(root: str = "/dev", sysfs: str = "/sys/class/video4linux") -> list[CameraDevice]:
    found = []
    for node in glob.glob(f"{root}/video*"):
        m = re.fullmatch(r"video(\d+)", Path(node).name)
        if not m:
            continue
        n = int(m.group(1))
        meta = Path(sysfs) / f"video{n}"
        # A UVC webcam shows up as two nodes: the capture node (index 0) and a metadata node.
        try:
            if int((meta / "index").read_text().strip()) != 0:
                continue
        except (OSError, ValueError):
            pass
        try:
            name = (meta / "name").read_text().strip()
        except OSError:
            name = ""
        found.append(CameraDevice(str(n), f"{name} ({node})" if name else f"Camera {n} ({node})"))
    return sorted(found, key=lambda c: c.index)


def _probe_index(index: int, timeout: float) -> bool:
    """Open camera ``index`` in a helper thread; a driver that hangs counts as absent."""
    result: list[bool] = []

    def probe() -> None:
        try:
            import cv2

            cap = cv2.VideoCapture(index)
            try:
                result.append(bool(cap.isOpened()))
            finally:
                cap.release()
        except Exception as exc:  # a broken driver must not break the dialog
            log.debug("Probing camera %d failed: %s", index, exc)
            result.append(False)

    t = threading.Thread(target=probe, name=f"camera-probe-{index}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        log.warning("Camera %d did not answer within %.1f s; skipped", index, timeout)
        return False
    return bool(result and result[0])


def list_cameras(
    *, max_index: int = 4, timeout: float = 1.5, probe: Callable[[int, float], bool] | None = None
) -> list[CameraDevice]:
    """Cameras on this machine (``spec`` is the index as text)."""
    if sys.platform.startswith("linux") and probe is None:
        return _linux_cameras()
    probe = probe or _probe_index
    found = []
    for i in range(max_index + 1):
        if probe(i, timeout):
            found.append(CameraDevice(str(i), f"Camera {i}"))
        elif i > 0:
            break  # indices are contiguous; stop at the first gap
    return found


def list_microphones() -> list[AudioDevice]:
    return list_input_devices()


def list_speakers() -> list[AudioDevice]:
    return list_output_devices()


def scan_devices() -> DeviceReport:
    """Cameras, microphones, speakers and whether sound works at all. Never raises."""
    try:
        cameras = list_cameras()
    except Exception as exc:
        log.warning("Looking for cameras failed: %s", exc)
        cameras = []
    status = audio_status()
    return DeviceReport(cameras, list_microphones(), list_speakers(), status)


def _count(n: int, one: str, many: str) -> str:
    if n == 0:
        return f"No {one}"
    return f"1 {one}" if n == 1 else f"{n} {many}"


def devices_summary(report: DeviceReport | None = None) -> str:
    """One line for the status bar, e.g. "No camera · No microphone (PortAudio is not installed)"."""
    report = report if report is not None else scan_devices()
    parts = [_count(len(report.cameras), "camera", "cameras")]
    mics = _count(len(report.microphones), "microphone", "microphones")
    speakers = _count(len(report.speakers), "speaker", "speakers")
    if not report.audio.available and not report.microphones and not report.speakers:
        msg = report.audio.message
        if "PortAudio" in msg:
            reason = "PortAudio is not installed"
        elif "sounddevice" in msg:
            reason = "sounddevice is not installed"
        else:
            reason = ""
        parts.append(f"No microphone · No speaker ({reason})" if reason else "No microphone · No speaker")
    else:
        parts += [mics, speakers]
    return " · ".join(parts)
