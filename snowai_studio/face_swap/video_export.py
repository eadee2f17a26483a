"""A video file through the face swap: the source video and a new file to write (never over it),
the job's progress with the time left and Cancel in the page's job runner, and the result line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from snowai_studio.face_swap.jobs import Job
from snowai_studio.tool_dock import videos_dir
from workers.files import free_name, same_file

if TYPE_CHECKING:
    from snowai_studio.face_swap.page import FaceSwapPage

VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.webm *.avi *.m4v);;All files (*)"
VIDEO_SUFFIXES = {".mp4": "MP4 (H.264)", ".mov": "MOV (ProRes)", ".webm": "WebM (VP9)"}


class VideoExport(QObject):
    """Swaps the faces of every frame of a video into a new file (sound and frame rate kept)."""

    def __init__(self, page: FaceSwapPage) -> None:
        super().__init__(page)
        self.page = page
        page.jobs.on("video", self._done, cancelled=self._cancelled)

    @property
    def running(self) -> bool:
        return self.page.jobs.busy_with("video")

    def start(self, src: str | Path | None = None, dst: str | Path | None = None) -> int | None:
        """Ask for the video and the new file when not given; returns the job id."""
        page = self.page
        if not page.check_ready_for_swap():
            return None
        if src is None:
            src, _ = QFileDialog.getOpenFileName(page, "Choose a video to change", videos_dir(), VIDEO_FILTER)
            if not src:
                return None
        src = Path(src).expanduser()
        if dst is None:
            suggestion = free_name(src.with_name(f"{src.stem}-swapped.mp4"), src)
            filters = ";;".join(f"{label} (*{suffix})" for suffix, label in VIDEO_SUFFIXES.items())
            dst, _ = QFileDialog.getSaveFileName(page, "Save the swapped video as", str(suggestion), filters)
            if not dst:
                return None
        dst = Path(dst).expanduser()
        if not dst.suffix:
            dst = dst.with_suffix(".mp4")
        if dst.suffix.lower() not in VIDEO_SUFFIXES:
            page.show_message(f"{dst.name}: save the video as .mp4, .mov or .webm.", "warning")
            return None
        if same_file(src, dst):
            page.show_message("Choose another file name: the source video is never overwritten.", "warning")
            return None
        if self.running:
            page.show_message("A video is already being swapped; wait for it or cancel it.")
            return None
        if page.live.running:
            page.live.stop()
        page.show_message(f"Swapping the faces of {src.name} into {dst.name}…")
        job_id = page.jobs.start(
            "video", lambda w: w.swap_video(src, dst), key=page.store, label=f"Video {src.name} → {dst.name}",
            extra=dst,
        )
        page.update_state()
        return job_id

    def _done(self, job: Job, result: Any) -> None:
        self.page.show_message(f"Video saved: {result.path} ({result.frames} frames, sound and frame rate kept).")

    def _cancelled(self, job: Job) -> None:
        self.page.show_message("Cancelled; no video file was written.")
