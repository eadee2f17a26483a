"""A job's progress under a page's preview: what runs, how far, the time left, Cancel, and the result."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from snowai_studio.icons import icon
from snowai_studio.widgets.status_rows import MessageLine


def time_left_text(seconds: float) -> str:
    """'About 3 min left', '12 s left'; '' while there is nothing sensible to say."""
    if seconds != seconds or seconds < 0 or seconds > 48 * 3600:
        return ""
    if seconds < 60:
        return f"{max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"About {round(seconds / 60)} min left"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"About {hours} h {rest} min left"


class TimeLeft:
    """Estimates the time left from the rate of progress so far (after a short settling time)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self._first: tuple[float, int] | None = None

    def restart(self) -> None:
        self.started = self.clock()
        self._first = None

    def estimate(self, done: int, total: int) -> float | None:
        now = self.clock()
        if total <= 0 or done <= 0:
            return None
        if self._first is None:
            # The first step includes loading a model: measure the rate from it on.
            self._first = (now, done)
            return None
        t0, d0 = self._first
        if done <= d0 or now - t0 < 0.5:
            return None
        rate = (done - d0) / (now - t0)
        return (total - done) / rate


class JobRunner(QWidget):
    """Shows one job at a time: ``start`` → ``set_progress`` (a count, or busy with total 0) →
    ``finish``. ``cancel_requested`` fires on Cancel; the result stays on the result line."""

    cancel_requested = Signal()

    def __init__(self, object_name: str = "jobRunner", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.label = QLabel()
        self.label.setObjectName(f"{object_name}Label")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.time_left = QLabel()
        self.time_left.setObjectName(f"{object_name}TimeLeft")
        self.cancel_button = QPushButton(icon("stop"), "Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress_row = QWidget()
        row = QHBoxLayout(self.progress_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.bar, 1)
        row.addWidget(self.time_left)
        row.addWidget(self.cancel_button)
        self.progress_row.hide()
        self.result = MessageLine(f"{object_name}Result")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.result)
        self._clock = TimeLeft()
        self.running = False

    def start(self, label: str, total: int = 0, *, cancellable: bool = True) -> None:
        self.running = True
        self.label.setText(label)
        self.bar.setRange(0, total if total > 0 else 0)
        self.bar.setValue(0)
        self.time_left.setText("")
        self.cancel_button.setEnabled(cancellable)
        self.cancel_button.setVisible(cancellable)
        self._clock.restart()
        self.progress_row.show()

    def set_progress(self, done: int, total: int) -> None:
        if not self.running:
            return
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            left = self._clock.estimate(done, total)
            self.time_left.setText(time_left_text(left) if left is not None else "")
        else:
            self.bar.setRange(0, 0)

    def set_label(self, label: str) -> None:
        self.label.setText(label)

    def finish(self, text: str = "", level: str = "info") -> None:
        """End the job; ``text`` (if any) goes on the result line."""
        self.running = False
        self.progress_row.hide()
        self.time_left.setText("")
        if text:
            self.result.set_message(text, level)

    def show_result(self, text: str, level: str = "info") -> None:
        self.result.set_message(text, level)
