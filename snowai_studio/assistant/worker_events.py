"""What the assistant's worker tells the page, shown: each
:class:`~workers.assistant.pipeline.AssistantEvent` (state, microphone level, the user's words, the
answer as it streams, its timings, barge-in, warnings and errors) and the microphone stopping.

A mixin of :class:`~snowai_studio.assistant.page.AssistantPage`: it reads and updates the page's
widgets and listening state.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from snowai_studio.assistant.latency import LatencyRow
from snowai_studio.assistant.session import SOURCE, AssistantSession
from snowai_studio.assistant.status_strip import StatePill, StatusStrip
from snowai_studio.assistant.transcript import ChatView
from snowai_studio.panels.live_source import LiveSourcePanel
from workers.assistant.options import AssistantOptions
from workers.errors import describe_exception

log = logging.getLogger(__name__)

#: How the worker names a microphone problem; the stream_halted that always follows it brings the
#: same sentence to the microphone line's Retry bar.
MICROPHONE = "Microphone"


def strip_source(message: str, *sources: str) -> str:
    """Worker messages arrive as "Assistant: <sentence>"; the page shows the sentence."""
    for prefix in (*(f"{s}: " for s in sources), f"{SOURCE}: ", "Assistant: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def same_problem(a: str, b: str) -> bool:
    """Two reports of one problem: one sentence starts the other."""
    return bool(a and b) and (a.startswith(b) or b.startswith(a))


class WorkerEvents:
    """The page's part that shows the worker's events (see the module's docstring)."""

    options: AssistantOptions
    state: str
    events: deque[Any]
    last_timings: dict[str, Any]
    session: AssistantSession
    chat: ChatView
    strip: StatusStrip
    state_pill: StatePill
    latency: LatencyRow
    live: LiveSourcePanel
    last_message: str
    last_level: str
    _listening: bool
    _talking: bool
    _talk_waiting: bool
    _mic_live: bool
    _mic_reported: str
    _typed: list[str]
    _closing: bool

    def _on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind != "level":
            self.events.append(event)
        handler = getattr(self, f"_event_{kind}", None)
        if handler is not None:
            try:
                handler(event)
            except Exception as exc:  # a bug in showing an event must not take the page down
                message = describe_exception(exc, SOURCE)
                log.error("%s", message, exc_info=exc)
        self.event_shown.emit(event)  # type: ignore[attr-defined]

    def _idle_text(self) -> str | None:
        if self._listening:
            return "Listening" if self.options.mode == "vad" else "Hold to talk"
        return "Ready (not listening)"

    def _show_state(self, state: str) -> None:
        if state in ("idle", "listening", "stopped", "off"):
            self.state_pill.set_state("listening" if self._listening else "idle", self._idle_text())
        elif state == "hearing" and self.options.mode == "ptt":
            self.state_pill.set_state(state, "Talk now…")
        else:
            self.state_pill.set_state(state)

    def _event_state(self, event: Any) -> None:
        state = str(event.text)
        self.state = state
        if state == "stopped":
            self._set_listening(False)  # type: ignore[attr-defined]
        self._show_state(state)
        if state in ("idle", "listening", "stopped"):
            for turn in self.chat.streaming_turns():
                self.chat.finish_reply(turn)
        if state in ("stopped", "idle") and not self._listening:
            self.strip.quiet()
        self._update_actions()  # type: ignore[attr-defined]

    def _event_level(self, event: Any) -> None:
        if not self._mic_live and self._listening:
            self._mic_live = True
            worker = self.session.worker
            if self._talk_waiting and self._talking and worker is not None:
                self._talk_waiting = False
                worker.set_talk(True)
        data = event.data or {}
        dbfs = data.get("dbfs")
        if isinstance(dbfs, int | float):
            self.strip.level_meter.set_level(float(dbfs))
        vad = data.get("vad")
        if isinstance(vad, int | float):
            self.strip.voice_label.setText(f"voice {vad:.0%}")

    def _event_user(self, event: Any) -> None:
        text = str(event.text)
        source = str((event.data or {}).get("source") or "")
        if not source:
            source = "text" if text in self._typed else "voice"
        if text in self._typed:
            self._typed.remove(text)
        self.chat.add_user(int(event.turn), text, source)
        self.chat.begin_reply(int(event.turn))

    def _event_delta(self, event: Any) -> None:
        self.chat.append_reply(int(event.turn), str(event.text))

    def _event_done(self, event: Any) -> None:
        interrupted = bool((event.data or {}).get("interrupted"))
        self.chat.finish_reply(int(event.turn), str(event.text), interrupted=interrupted)

    def _event_timings(self, event: Any) -> None:
        from snowai_studio.assistant.latency import timings_text

        data = dict(event.data or {})
        self.last_timings = data
        typed = data.get("source") == "text"
        if "source" not in data:
            bubble = self.chat.bubble(int(event.turn), "user")
            typed = bubble is not None and bubble.header.text().endswith("(typed)")
        self.chat.set_timings(int(event.turn), timings_text(data, typed=typed))
        self.latency.show_timings(data)

    def _event_barge_in(self, event: Any) -> None:
        self.show_message("You spoke over the assistant, so it stopped to listen.")  # type: ignore[attr-defined]

    def _event_echo(self, event: Any) -> None:
        self.strip.voice_label.setText("own voice ignored")

    # The worker logs its warnings and errors (so the notifications have them once already).
    def _event_warning(self, event: Any) -> None:
        text = str(event.text)
        if text.startswith(f"{MICROPHONE}: "):
            # Shown on the microphone line with Retry when listening_halted brings it.
            self._mic_reported = strip_source(text, MICROPHONE)
            return
        self._show_worker_problem(text, "warning")

    def _event_error(self, event: Any) -> None:
        self._show_worker_problem(str(event.text), "error")
        for turn in self.chat.streaming_turns():
            self.chat.finish_reply(turn)

    def _show_worker_problem(self, text: str, level: str) -> None:
        """A problem the worker reported (and logged): on the message line, unless the microphone
        line shows it already."""
        text = strip_source(text)
        if self.live.problem.active and same_problem(strip_source(text, MICROPHONE), self.live.problem.text):
            return
        self.show_message(text, level, notify=False)  # type: ignore[attr-defined]

    def _on_listening_halted(self, message: str) -> None:
        """The microphone could not open, failed or went quiet: listening stops, and the microphone
        line says why with Retry (the message line does not say it again)."""
        if self._closing:
            return
        text = strip_source(message, MICROPHONE)
        if self._talking:
            self.set_talk(False)  # type: ignore[attr-defined]
        self._set_listening(False)  # type: ignore[attr-defined]
        self.strip.quiet()
        if self.state_pill.state in ("listening", "hearing", "idle"):
            self.state_pill.set_state("idle", self._idle_text())
        if same_problem(self.last_message, text):
            self.message_line.set_message("")  # type: ignore[attr-defined]
            self.last_message = ""
        if not same_problem(self._mic_reported, text):  # the worker did not log this one
            log.warning("%s", text, extra={"source": SOURCE})
        self._mic_reported = ""
        self.live.show_problem(text)
