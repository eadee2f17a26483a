"""What the user asks of the assistant: open and close the microphone (Start listening, Retry),
push-to-talk (Hold to talk or Space in the transcript), a typed question, and Stop reply.

A mixin of :class:`~snowai_studio.assistant.page.AssistantPage`: the commands go to the worker
through the page's :class:`~snowai_studio.assistant.session.AssistantSession` (queued until the
models are loaded).
"""

from __future__ import annotations

from snowai_studio.assistant.session import AssistantSession
from snowai_studio.assistant.status_strip import StatePill, StatusStrip
from snowai_studio.assistant.transcript import ChatView, ComposeRow
from snowai_studio.panels.live_source import LiveSourcePanel
from workers.assistant.options import AssistantOptions


class Listening:
    """The page's part that takes the user's commands (see the module's docstring)."""

    options: AssistantOptions
    session: AssistantSession
    chat: ChatView
    compose: ComposeRow
    strip: StatusStrip
    state_pill: StatePill
    live: LiveSourcePanel
    microphone_ok: bool
    microphone_reason: str
    _listening: bool
    _talking: bool
    _talk_waiting: bool
    _mic_live: bool
    _typed: list[str]

    def send_text(self, text: str | None = None) -> bool:
        """Ask a typed question (works without a microphone). Returns False when there is nothing to send."""
        box = self.compose.input
        text = (box.text() if text is None else text).strip()
        if not text:
            box.setFocus()
            return False
        if not self.session.when_ready("text", lambda w: w.submit_text(text)):
            return False
        self._typed.append(text)
        box.clear()
        if not self.session.ready:
            self.chat.add_waiting(text)
            self.show_message("Your question is sent as soon as the models are loaded.")  # type: ignore[attr-defined]
        return True

    def _on_listen_toggled(self, on: bool) -> None:
        if on:
            if not self.start_listening():
                self._set_listening(False)  # type: ignore[attr-defined]
        else:
            self.stop_listening()

    def retry_listening(self) -> None:
        """Retry after the microphone failed: it is opened again with the same settings."""
        self.live.problem.clear()
        worker = self.session.worker
        if worker is not None and self.session.ready:
            self._set_listening(True)  # type: ignore[attr-defined]
            self.state_pill.set_state("listening", self._idle_text())  # type: ignore[attr-defined]
            worker.restart_listening()
            self.show_message("Opening the microphone again…")  # type: ignore[attr-defined]
        else:
            self.start_listening()

    def start_listening(self) -> bool:
        """Open the microphone (the one chosen in Devices) and answer what is said; False without one."""
        self.live.problem.clear()
        if self._listening:
            return True
        if not self.microphone_ok:
            return False  # Start listening is disabled and says why
        if not self.session.when_ready("listen", lambda w: w.start_listening()):
            return False
        self._set_listening(True)  # type: ignore[attr-defined]
        if self.session.ready:
            self.state_pill.set_state("listening", self._idle_text())  # type: ignore[attr-defined]
        hint = (
            "Listening: speak, then pause; the assistant answers."
            if self.options.mode == "vad"
            else 'Listening: hold "Hold to talk" (or Space in the conversation) while you speak.'
        )
        self.show_message(hint)  # type: ignore[attr-defined]
        return True

    def stop_listening(self) -> None:
        """Close the microphone (an answer being spoken goes on; Stop reply ends it)."""
        self.live.problem.clear()
        if not self._listening:
            return
        self._set_listening(False)  # type: ignore[attr-defined]
        if self._talking:
            self.set_talk(False)
        worker = self.session.worker
        if worker is not None:
            if self.session.ready:
                worker.stop_listening()
            else:
                self.session.drop_pending("listen")
        self.strip.quiet()
        if self.state_pill.state in ("listening", "hearing", "idle"):
            self.state_pill.set_state("idle", self._idle_text())  # type: ignore[attr-defined]
        self.show_message("The microphone is closed.")  # type: ignore[attr-defined]

    @property
    def listening(self) -> bool:
        return self._listening

    def set_talk(self, pressed: bool) -> None:
        """Push-to-talk: True while the user holds the button (or Space), False when released."""
        if pressed == self._talking:
            return
        if pressed and self.options.mode != "ptt":
            self.show_message("Push-to-talk is off: choose it under Listening › Mode.")  # type: ignore[attr-defined]
            return
        self._talking = pressed
        if pressed and not self._listening and not self.start_listening():
            self._talking = False
            return
        worker = self.session.worker
        ready = worker is not None and self.session.ready
        if pressed:
            if ready and self._mic_live:
                worker.set_talk(True)
            else:
                self._talk_waiting = True  # sent when the microphone delivers its first sound
        elif self._talk_waiting:
            self._talk_waiting = False
            self.show_message(  # type: ignore[attr-defined]
                "The microphone was not open yet: hold the talk button a moment longer.", "warning"
            )
        elif ready:
            worker.set_talk(False)
        self.talk_action.setText("Listening… let go to send" if pressed else "Hold to talk")  # type: ignore[attr-defined]
        if pressed and self.session.ready:
            self.state_pill.set_state("hearing", "Talk now…")

    def _on_talk_key(self, pressed: bool) -> None:
        if self.options.mode == "ptt":
            self.set_talk(pressed)

    @property
    def talking(self) -> bool:
        return self._talking

    def interrupt(self) -> None:
        """Stop the answer now: writing and speaking both stop."""
        worker = self.session.worker
        if worker is None or not self.session.ready:
            return
        worker.interrupt()
        self.show_message("Stopped.")  # type: ignore[attr-defined]
