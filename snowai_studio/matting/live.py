"""Live background removal: the camera (from Devices, or an injected one) feeds the model's worker,
the cut-out shows in the page's live view, and the shared live-source panel has Start/Stop, the frame
rate and latency, Retry when the camera or the model stops, and Record into a chosen folder.

Live keeps up: the worker measures each model's frame time once on this computer and, on a CPU, uses
a fast model when the chosen one is too slow; the panel says so in one sentence with a link to use the
chosen model anyway (remembered per model). A check box turns the steadying of the mask on and off.
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel

from snowai_studio.matting.jobs import strip_source
from snowai_studio.panels.page_settings import remember, remembered
from snowai_studio.tool_dock import camera_factory

log = logging.getLogger(__name__)

#: What the live view says when the camera's stream ended without an error.
CAMERA_STOPPED = "The camera stopped sending pictures. Check that it is plugged in, then press Retry."
#: What the live view says before the first picture, and after the live picture stopped without one.
STARTING = "Starting the camera…"
STOPPED = "Live stopped. Retry (in the Live camera section) starts it again."


def fps_text(ms: float | None) -> str:
    """'2.6 fps', '24 fps' for a frame time in milliseconds."""
    fps = 1000.0 / ms if ms else 0.0
    return f"{fps:.1f} fps" if fps < 9.95 else f"{fps:.0f} fps"


def live_plan_sentence(plan: Any) -> tuple[str, str, str]:
    """What the live panel says about the model live uses: (sentence, link text, link target).

    The link target is "anyway" (use the chosen model even though it is slow) or "auto" (let live use
    the model that keeps up again); empty texts when there is nothing to say (the chosen model keeps
    up, or it runs on a GPU)."""
    if plan is None or plan.gpu or plan.chosen_ms is None or plan.chosen_keeps_up:
        return "", "", ""
    slow = f"{plan.chosen_label} takes {plan.chosen_ms:.0f} ms a frame here ({fps_text(plan.chosen_ms)})"
    fast_ms = plan.fast_ms
    fast_faster = bool(plan.fast) and fast_ms is not None and fast_ms < plan.chosen_ms
    if plan.switched:
        keeps = 1000.0 / plan.used_ms >= plan.min_fps if plan.used_ms else False
        how = "which keeps up" if keeps else "which is faster"
        return (f"{slow}; live uses {plan.used_label}, {how} ({fps_text(plan.used_ms)}).",
                f"Use {plan.chosen_label} anyway", "anyway")
    if plan.anyway and fast_faster:
        return (f"{slow}; live uses it as you asked.",
                f"Use {plan.fast_label} ({fps_text(fast_ms)}) instead", "auto")
    if plan.chosen == plan.fast:
        return f"{slow}; it is the fastest model, so live shows fewer frames a second.", "", ""
    if plan.fast and fast_ms is not None and not fast_faster:
        return (f"{slow}; {plan.fast_label} is no faster here ({fps_text(fast_ms)}), so live shows fewer "
                "frames a second."), "", ""
    return f"{slow}; live shows fewer frames a second.", "", ""


def strip_camera(message: str) -> str:
    """Camera errors arrive as "Camera: <sentence>"; the page shows the sentence."""
    return message[len("Camera: ") :] if message.startswith("Camera: ") else message


class LiveMixin:
    """``self._camera`` is the running :class:`~workers.media.worker.CameraWorker` (None when not live)."""

    _camera: Any
    _closing: bool
    #: The camera's last error sentence (shown when the camera gives up).
    _live_error: str

    @property
    def live_running(self) -> bool:
        return self._camera is not None

    # ---- the model live uses, and steadying --------------------------------------------------------
    def _build_live_speed(self) -> None:
        """The sentence about the live model (with its link) and the steadying check box, under the
        live panel's figures."""
        self.live_plan: Any = None
        self.live_note_text = ""
        self.live_note = QLabel()
        self.live_note.setObjectName("mattingLiveModel")
        self.live_note.setWordWrap(True)
        self.live_note.setTextFormat(Qt.TextFormat.RichText)
        self.live_note.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse
                                               | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.live_note.linkActivated.connect(self._on_live_note_link)
        self.live_note.hide()
        self.steady_box = QCheckBox("Steady the mask between frames")
        self.steady_box.setObjectName("mattingSteady")
        self.steady_box.setToolTip("No flicker on a still subject: the mask is smoothed where the picture is "
                                   "still and follows at once where it moves (live and video files)")
        self.steady_box.setChecked(self.options.steady)
        self.steady_box.toggled.connect(self._on_steady)
        layout = self.live_panel.layout()
        at = layout.indexOf(self.live_panel.stats_label) + 1
        layout.insertWidget(at, self.live_note)
        layout.insertWidget(at + 1, self.steady_box)

    def _live_anyway(self) -> list[str]:
        """The models the user wants live even when they do not keep up (kept between sessions)."""
        return [m for m in remembered(self.tool_id, "live_anyway").split("\n") if m]

    def _live_policy(self) -> str:
        return "chosen" if self.options.model in self._live_anyway() else "auto"

    def _set_live_note(self, sentence: str, link: str = "", href: str = "") -> None:
        self.live_note_text = f"{sentence} {link}".strip()
        text = html.escape(sentence)
        if link:
            text += f' <a href="{href}">{html.escape(link)}</a>'
        self.live_note.setText(text)
        self.live_note.setVisible(bool(sentence))

    def _on_live_measuring(self, label: str) -> None:
        self._set_live_note(f"Measuring how fast {label} runs on this computer (once)…")

    def _on_live_plan(self, plan: Any) -> None:
        self.live_plan = plan
        if plan is not None and plan.chosen == self.options.model:
            self._set_live_note(*live_plan_sentence(plan))

    def _on_live_note_link(self, href: str) -> None:
        """"Use IS-Net anyway" (href "anyway") or "Use U2-Net lite instead" (href "auto")."""
        model = self.options.model
        chosen = [m for m in self._live_anyway() if m != model]
        if href == "anyway":
            chosen.append(model)
        remember(self.tool_id, "live_anyway", "\n".join(chosen))
        if self._matting is not None:
            self._matting.set_param("live_policy", self._live_policy())

    def _live_model_changed(self) -> None:
        """Another model was chosen: the sentence about the previous one goes; live plans again."""
        self.live_plan = None
        self._set_live_note("")
        if self._matting is not None:
            self._matting.set_param("live_policy", self._live_policy())

    def _on_steady(self, on: bool) -> None:
        self.options.steady = bool(on)
        if self._matting is not None:
            self._matting.set_param("steady", bool(on))

    def toggle_live(self) -> None:
        """The Live button: into the live view (the camera starts), or out of it back to the images."""
        if self._camera is None and self.stack.currentWidget() is not self.live_page:
            self.start_live()
        else:
            self.stop_live()

    def start_live(self) -> bool:
        """Cut out the camera picture live (the camera from Devices, or an injected one)."""
        if self._camera is not None:
            return True
        problem = self._model_problem()
        if problem:
            self.show_message(problem, "warning")
            self._show_live_state(False)
            return False
        if self._busy_with("batch", "video"):
            self.show_message("Live needs the model: wait for the batch or video to finish, or cancel it.")
            self._show_live_state(False)
            return False
        from workers.media.worker import CameraWorker

        worker = self._ensure_matting()
        if worker.halted:
            worker.resume_stream()  # the model stopped after repeated failures: try it again
        worker.set_param("live_policy", self._live_policy())  # plans the live model on the first frame
        camera = CameraWorker(camera_factory(self.context))
        camera.error.connect(self._on_camera_error)  # bound slots: they run on the UI thread
        camera.state_changed.connect(self._on_camera_state)
        camera.stream_halted.connect(self._on_stream_halted)
        camera.add_subscriber(worker)
        self._camera = camera
        self._live_error = ""
        self.live_problem.clear()
        self.live_view.clear()
        self.live_view.set_overlay("")
        self.live_view.set_placeholder(STARTING)
        self._show_view(self.live_page)
        self.thumbs.hide()
        self._show_live_state(True)
        self.live_section.set_expanded(True)
        camera.start()
        self.show_message("Live: the background is removed from the camera picture.")
        self._update_actions()
        return True

    def stop_live(self) -> None:
        self._release_live()
        self.live_problem.clear()
        if not self._closing:
            self._leave_live_view()

    def _leave_live_view(self) -> None:
        self._show_view(self.canvas if self.current is not None else self.empty_page)
        self.thumbs.setVisible(len(self.entries) > 1)
        self._update_actions()

    def _release_live(self) -> None:
        """Stop the camera (its thread joined, the device released) and finish a recording."""
        camera, self._camera = self._camera, None
        if camera is not None:
            if self._matting is not None:
                camera.remove_subscriber(self._matting)
            camera.stop()
        if self._matting is not None and self._matting.recording:
            self._matting.stop_recording()
        self._show_live_state(False)

    def _show_live_state(self, running: bool) -> None:
        self.live_panel.set_running(running)
        self.live_action.setChecked(self.stack.currentWidget() is self.live_page)

    def retry_live(self) -> None:
        """Retry after the live picture stopped: the camera and the stream start again, same settings."""
        self.live_problem.clear()
        self._release_live()
        self.start_live()

    # ---- problems -----------------------------------------------------------------------------------
    def _show_live_problem(self, text: str, *, logged: bool) -> None:
        """The problem bar of the live panel says ``text`` with Retry (the page's one place for it);
        unless a worker logged it already it is logged once for the notifications."""
        self.last_message, self.last_level = text, "error"
        self.message_line.set_message("")  # "Live: …" is over; the problem bar says what happened
        self.live_problem.show_problem(text)
        self.live_section.set_expanded(True)
        if not logged:
            log.error("%s", text, extra={"source": "Background removal"})

    def _live_problem(self, message: str, *, logged: bool = True) -> None:
        """The camera or the model stopped the live picture: release the camera, keep the last picture
        and say what happened, with Retry."""
        if self._closing:
            return
        self._release_live()
        self.live_view.set_overlay("")
        self.live_view.set_placeholder(STOPPED)  # shown when no picture came before it stopped
        self._show_live_problem(strip_source(strip_camera(message)), logged=logged)
        self._update_actions()

    def _on_camera_error(self, message: str) -> None:
        self._live_error = strip_camera(message)
        if self._camera is None and self.live_problem.active:
            self._show_live_problem(self._live_error, logged=True)  # it came after the camera gave up

    def _on_stream_halted(self, message: str) -> None:
        if self._camera is not None:
            self._live_problem(message)

    def _on_camera_state(self, state: str) -> None:
        if self._camera is None:
            return
        if state == "failed":
            # The camera did not open: nothing to show live; the problem bar says why, with Retry.
            self._release_live()
            self._show_live_problem(self._live_error or "The camera could not be opened. Check Devices.",
                                    logged=bool(self._live_error))
            self._leave_live_view()
        elif state == "ended":
            self._live_problem(CAMERA_STOPPED, logged=False)

    def _on_worker_error(self, message: str) -> None:
        # Job errors arrive through job_failed; this covers a live frame that failed. A halt is shown
        # by the problem bar (stream_halted), not here as well.
        worker = self._matting
        if self._camera is not None and (worker is None or message != worker.halted):
            self.show_message(strip_source(message), "error", notify=False)

    # ---- pictures and figures -------------------------------------------------------------------------
    def _on_live_result(self) -> None:
        worker = self._matting
        if worker is None:
            return
        result = worker.take_result()
        if result is None or self._camera is None:
            return
        self.live_view.show_frame(result.payload)
        fps = result.meta.get("fps", 0.0) or 0.0
        model_ms = result.meta.get("alpha_ms", result.meta.get("mask_ms", 0.0))
        model = result.meta.get("model") or "model"
        self.live_view.set_overlay(f"{fps:.1f} fps · {result.latency_ms:.0f} ms latency · {model} {model_ms:.0f} ms")

    def _on_live_stats(self, stats: dict) -> None:
        if self._camera is None:
            return
        parts = [f"{stats.get('fps', 0):.1f} fps"]
        if "latency_ms" in stats:
            parts.append(f"{stats['latency_ms']:.0f} ms latency")
        if stats.get("dropped"):
            parts.append(f"{stats['dropped']} frames skipped")
        if stats.get("recording"):
            parts.append(f"recording ({stats.get('recorded_frames', 0)} frames)")
        self.live_panel.set_stats(" · ".join(parts))

    # ---- recording ------------------------------------------------------------------------------------
    @property
    def recordings_folder(self) -> str:
        folder = self.live_panel.folder
        return folder.folder if folder is not None else ""

    def toggle_recording(self, path: str | Path | None = None) -> bool:
        """Start (into ``path``, or a new file in the recordings folder) or stop recording the live result."""
        worker = self._matting
        if worker is None or self._camera is None:
            self.show_message("Start live first, then record.")
            self.live_panel.set_recording(False)
            return False
        if worker.recording:
            worker.stop_recording()
            self.live_panel.set_recording(False)
            return False
        if path is None:
            folder = Path(self.recordings_folder)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / time.strftime("snowai-live-%Y%m%d-%H%M%S.mp4")
        worker.start_recording(Path(path))
        self.live_panel.set_recording(True)
        self.show_message(f"Recording to {path}…")
        return True

    def _on_record_toggled(self, _on: bool) -> None:
        self.live_panel.set_recording(self.toggle_recording())

    def _on_recordings_folder(self, folder: str) -> None:
        remember(self.tool_id, "recordings_folder", folder)

    def _on_recording_saved(self, path: str) -> None:
        self.show_message(f"Recording saved: {path}")

    def _on_recording_failed(self, message: str) -> None:
        """The recording stopped (say, the disk is full): Record says so, the live view goes on."""
        self.live_panel.set_recording(False)
        self.show_message(strip_source(message), "error", notify=False)
