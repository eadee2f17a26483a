"""The face swap on the camera: the page's live panel and Live button, the camera worker feeding the
face-swap worker, before/after, recording into the chosen folder, the virtual camera, and the
Retry bar when the camera or the swap stops the picture."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSettings, Slot

from snowai_studio.icons import icon
from snowai_studio.panels.live_source import LiveSourcePanel, describe_camera
from snowai_studio.panels.tool_page import PRIMARY_ICON_COLOR, push_button
from snowai_studio.tool_dock import camera_factory, open_devices, videos_dir
from workers import paths

if TYPE_CHECKING:
    from snowai_studio.face_swap.page import FaceSwapPage

log = logging.getLogger(__name__)

#: Where the recordings folder is remembered (the window's own settings file).
RECORDINGS_KEY = "face_swap/recordings"
#: What the live view says when the camera's stream ended without an error.
CAMERA_STOPPED = "The camera stopped sending pictures. Check that it is plugged in, then press Retry."
#: The order stages are listed in (the pipeline's own, then what the worker adds).
STAGE_ORDER = ("detect", "track", "swap", "enhance", "mark", "record", "virtual camera")


def stage_text(stages: dict[str, float]) -> str:
    """ "detect 16 · track 6 · swap 2 ms": the stages that took time, in pipeline order."""
    names = [n for n in STAGE_ORDER if n in stages] + [n for n in stages if n not in STAGE_ORDER and n != "total"]
    shown = [f"{name} {stages[name]:.0f}" for name in names if stages[name] >= 0.5]
    return " · ".join(shown) + " ms" if shown else ""


def stats_text(stats: dict) -> str:
    """The live panel's line: frame rate, latency, stages, what was skipped, recording, virtual camera."""
    parts = [f"{stats.get('fps', 0):.1f} fps"]
    if "latency_ms" in stats:
        parts.append(f"{stats['latency_ms']:.0f} ms end to end")
    stages = stage_text(stats.get("stages_ms") or {})
    if stages:
        parts.append(stages)
    if stats.get("dropped"):
        parts.append(f"{stats['dropped']} frames skipped")
    if stats.get("recording"):
        parts.append(f"recording ({stats.get('recorded_frames', 0)} frames)")
    if stats.get("virtual_camera"):
        parts.append("virtual camera on")
    return " · ".join(parts)


def strip_prefix(message: str, *prefixes: str) -> str:
    """Worker sentences arrive as "Face swap: <sentence>" or "Camera: <sentence>"; the page shows the sentence."""
    for prefix in prefixes:
        if message.startswith(f"{prefix}: "):
            return message[len(prefix) + 2 :]
    return message


def window_settings() -> QSettings:
    return QSettings(str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat)


def recordings_folder() -> str:
    """The folder chosen for recordings before (kept in the window's settings), else the videos folder."""
    saved = window_settings().value(RECORDINGS_KEY, "")
    return saved if isinstance(saved, str) and saved and Path(saved).is_dir() else videos_dir()


class LiveController(QObject):
    """Starts and stops the camera for the page and shows what the live picture does."""

    def __init__(self, page: FaceSwapPage) -> None:
        super().__init__(page)
        self.page = page
        # Live on the action bar starts and stops the camera: the panel has no second Start button.
        self.panel = panel = LiveSourcePanel("camera", object_name="faceSwapLive", recording=True, show_start=False)
        self.vcam_button = push_button("Virtual camera", "camera")
        self.vcam_button.setObjectName("faceSwapVirtualCamera")
        self.vcam_button.setCheckable(True)
        self.vcam_button.setToolTip("Send the swapped picture to a virtual camera for video calls and streaming")
        self.vcam_button.toggled.connect(lambda on: self.set_virtual_camera(on))
        self.camera: Any = None
        self.before = False
        assert panel.folder is not None and panel.record_button is not None
        panel.folder.set_folder(recordings_folder())
        panel.folder.folder_changed.connect(self._remember_folder)
        panel.start_requested.connect(lambda: self.start())
        panel.stop_requested.connect(lambda: self.stop())
        panel.retry_requested.connect(lambda: self.retry())
        panel.record_toggled.connect(lambda _on: self.toggle_recording())
        panel.devices_requested.connect(self._open_devices)
        self.show_device()

    @property
    def running(self) -> bool:
        return self.camera is not None

    def show_device(self) -> None:
        context = self.page.context
        self.panel.set_device_text(describe_camera(context.settings.devices.camera, context.device_report))

    def _open_devices(self) -> None:
        open_devices(self.page)

    @Slot(str)
    def _remember_folder(self, folder: str) -> None:
        settings = window_settings()
        settings.setValue(RECORDINGS_KEY, folder)
        settings.sync()

    def wire(self, worker: Any) -> None:
        """Connect the face-swap worker's live signals (to slots of this QObject, so that they queue)."""
        worker.result_ready.connect(self._on_result)
        worker.stats.connect(self._on_stats)
        worker.stream_halted.connect(self._on_halted)
        worker.recording_saved.connect(self._on_recording_saved)
        worker.recording_failed.connect(self._on_recording_failed)
        worker.virtual_camera_changed.connect(self._on_vcam_changed)

    # ---- start and stop ----------------------------------------------------------------------------------
    def start(self) -> bool:
        page = self.page
        if self.camera is not None:
            return True
        if not page.ensure_consent():
            self._show_running(False)
            return False
        if page.jobs.busy_with("video"):
            page.show_message("Live needs the face swap: wait for the video to finish, or cancel it.")
            self._show_running(False)
            return False
        from workers.media.worker import CameraWorker

        if page.jobs.worker is not None and page.jobs.worker.load_failure:
            page.jobs.retire(quietly=False)  # it could not start: build it again (the models may be there now)
        worker = page.ensure_worker()
        if worker.halted:
            worker.resume_stream()  # the swap stopped after repeated failures: try it again
        camera = CameraWorker(camera_factory(page.context))
        camera.error.connect(self._on_camera_error)
        camera.state_changed.connect(self._on_camera_state)
        camera.stream_halted.connect(self._on_halted)
        camera.result_ready.connect(self._on_camera_frame)
        camera.add_subscriber(worker)
        self.camera = camera
        self.panel.problem.clear()
        page.preview.clear()
        page.preview.set_overlay("")
        page.preview.set_placeholder("Starting the camera…")
        self._show_running(True)
        camera.start()
        if page.source_summary is not None:
            page.show_message("Live: the source face is swapped onto the camera picture.")
        page.update_state()
        return True

    def stop(self) -> None:
        self._release()
        self.panel.problem.clear()
        if not self.page.closing:
            self.page.preview.set_overlay("")
            self.page.show_idle()

    def retry(self) -> None:
        """Start again after the live picture stopped: the camera and the swap, same settings."""
        self.panel.problem.clear()
        self._release()
        self.start()

    def _release(self) -> None:
        """Stop the camera (its thread joined, the device released), a recording and the virtual camera."""
        camera, self.camera = self.camera, None
        worker = self.page.jobs.worker
        if camera is not None:
            if worker is not None:
                camera.remove_subscriber(worker)
            camera.stop()
        if worker is not None:
            if worker.recording:
                worker.stop_recording()
            if worker.virtual_camera:
                worker.stop_virtual_camera()
        self.before = False
        self._show_running(False)
        self.page.update_state()

    def _show_running(self, running: bool) -> None:
        self.panel.set_running(running)
        action = self.page.live_action
        action.blockSignals(True)
        action.setChecked(running)
        action.blockSignals(False)
        action.setText("Stop live" if running else "Live")
        action.setIcon(icon("stop" if running else "live", PRIMARY_ICON_COLOR))
        if not running:
            self._set_checked(self.vcam_button, False)

    def problem(self, message: str) -> None:
        """The camera or the swap stopped the live picture: release the camera, keep the last picture
        and say what happened once, on the live panel's bar with Retry (the worker logged it)."""
        if self.page.closing:
            return
        self._release()
        text = strip_prefix(message, "Camera", "Face swap")
        self.page.preview.set_overlay("")
        self.panel.show_problem(text)
        self.page.message_line.set_message("")  # "Live: …" is not true any more; the bar says why
        self.page.note(text, "error")

    # ---- what the camera and the worker say -----------------------------------------------------------
    def _from_old_camera(self) -> bool:
        """The signal being handled comes from a camera stopped since (say, before a Retry)."""
        sender = self.sender()
        return self.camera is None or (sender is not self.camera and sender is not self.page.jobs.worker)

    @Slot(str)
    def _on_halted(self, message: str) -> None:
        if not self._from_old_camera():
            self.problem(message)

    @Slot(str)
    def _on_camera_error(self, message: str) -> None:
        if not self._from_old_camera():
            self.problem(message)

    @Slot(str)
    def _on_camera_state(self, state: str) -> None:
        if state == "ended" and not self._from_old_camera():
            self.problem(CAMERA_STOPPED)

    def worker_error(self, message: str) -> bool:
        """A worker error while live: True when it stopped the live picture (the swap could not
        start); a failing frame says nothing here, the halt after repeated failures does."""
        worker = self.page.jobs.worker
        if self.camera is None:
            return False
        if worker is not None and worker.load_failure:
            self.problem(message)
        return True

    @Slot()
    def _on_camera_frame(self) -> None:
        camera = self.camera
        if camera is None or not self.before or self.sender() is not camera:
            return
        result = camera.take_result()
        if result is not None:
            self.page.preview.show_frame(result.payload)
            self.page.preview.set_overlay("Before: the camera picture")

    @Slot()
    def _on_result(self) -> None:
        worker = self.page.jobs.worker
        if worker is None:
            return
        result = worker.take_result()
        if result is None or self.camera is None or self.before:
            return
        self.page.preview.show_frame(result.payload)
        meta = result.meta
        parts = [f"{meta.get('fps', 0.0) or 0.0:.1f} fps", f"{result.latency_ms:.0f} ms latency",
                 stage_text(meta.get("stages_ms") or {})]
        self.page.preview.set_overlay(" · ".join(p for p in parts if p))

    @Slot(dict)
    def _on_stats(self, stats: dict) -> None:
        if self.camera is not None:
            self.panel.set_stats(stats_text(stats))

    # ---- before/after, recording, virtual camera ------------------------------------------------------------
    def set_before(self, on: bool) -> None:
        """Show the camera picture untouched (True) or swapped (False)."""
        self.before = bool(on) and self.camera is not None
        if self.before:
            result = self.camera.take_result()  # re-arms the camera's result_ready
            if result is not None:
                self.page.preview.show_frame(result.payload)

    def toggle_recording(self, path: str | Path | None = None) -> bool:
        """Start (into ``path``, or a new file in the recordings folder) or stop recording the swapped picture."""
        worker = self.page.jobs.worker
        if worker is None or self.camera is None:
            self.page.show_message("Start Live first, then record.")
            self.panel.set_recording(False)
            return False
        if worker.recording:
            worker.stop_recording()
            self.panel.set_recording(False)
            return False
        if path is None:
            folder = self.panel.folder.folder if self.panel.folder is not None else videos_dir()
            path = Path(folder) / time.strftime("snowai-faceswap-%Y%m%d-%H%M%S.mp4")
        worker.start_recording(Path(path))
        self.panel.set_recording(True)
        self.page.show_message(f"Recording to {path}…")
        return True

    @Slot(str)
    def _on_recording_saved(self, path: str) -> None:
        self.panel.set_recording(False)
        self.page.show_message(f"Recording saved: {path}")

    @Slot(str)
    def _on_recording_failed(self, message: str) -> None:
        """The recording stopped (say, the disk is full): Record says so, the live view goes on."""
        self.panel.set_recording(False)
        self.page.show_message(strip_prefix(message, "Face swap"), "error", notify=False)

    def set_virtual_camera(self, on: bool) -> bool:
        """Send the swapped picture to a virtual camera (True) or stop (False)."""
        worker = self.page.jobs.worker
        if on and (worker is None or self.camera is None):
            self.page.show_message("Start Live first, then turn on the virtual camera.")
            self._set_checked(self.vcam_button, False)
            return False
        if worker is not None:
            if on:
                worker.start_virtual_camera()
                self.page.show_message("Opening the virtual camera…")
            else:
                worker.stop_virtual_camera()
        self._set_checked(self.vcam_button, on)
        return on

    @Slot(bool, str)
    def _on_vcam_changed(self, on: bool, text: str) -> None:
        self._set_checked(self.vcam_button, on)
        if on:
            self.page.show_message(f"The virtual camera is on ({text}): choose it in your video-call or streaming app.")
        elif text:
            self.page.show_message(strip_prefix(text, "Face swap"), "error", notify=False)

    @staticmethod
    def _set_checked(button: Any, on: bool) -> None:
        if button.isChecked() != on:
            button.blockSignals(True)
            button.setChecked(on)
            button.blockSignals(False)

    def shutdown(self) -> None:
        self._release()
