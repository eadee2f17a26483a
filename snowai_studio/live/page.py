"""The Go live page: your swapped face and converted voice, in sync, as a virtual camera and a virtual microphone.

The middle shows what goes out (the picture after the face swap, when it leaves) with each
stream's latency, the levels and the message line; the action bar has Go live, Record,
Passthrough, Mute and Next preset; the inspector holds the face and voice, the presets that pair
them, the microphone's clean-up (RNNoise, the noise gate, the headphone monitor), the outputs,
the sync offset and the hotkeys.

Everything runs in a :class:`~workers.live.worker.LiveWorker` on its own thread, built when going
live and stopped when not; every control applies live through it. The camera and the microphone
are the ones chosen in Devices; tests put fakes in the context's extras (``live_camera``,
``live_microphone``, ``live_monitor``, ``live_virtual_camera``, ``live_virtual_microphone``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from snowai_studio.context import StudioContext
from snowai_studio.live.hotkeys_section import HotkeysSection, StreamerKeys
from snowai_studio.live.sections import FaceVoiceSection, MicrophoneSection, OutputsSection, PresetsSection, SyncSection
from snowai_studio.live.status_strip import LiveStatus
from snowai_studio.panels.tool_page import ToolPage
from snowai_studio.tool_dock import camera_factory, videos_dir
from snowai_studio.widgets.video_view import VideoView
from workers.live.options import LiveOptions, LivePreset

log = logging.getLogger(__name__)


def _voices(store: Any) -> list[tuple[str, str]]:
    if store is None:
        return []
    try:
        models = [m for m in store.user_models() if m.tool == "voice_conversion"]
        return [(m.name, m.id) for m in models if store.state(m.id).usable]
    except Exception as exc:
        log.info("the voices could not be listed: %s", exc)
        return []


def stages_text(stats: dict[str, Any]) -> str:
    """The stages of each stream's latency: "Picture: capture 33 ms, face swap 41 ms… Voice: block 100 ms…"."""
    lines = []
    for title, key in (("Picture", "picture_stages"), ("Voice", "voice_stages")):
        stages = stats.get(key) or {}
        if stages:
            parts = ", ".join(f"{name.replace('_', ' ')} {ms:.0f} ms" for name, ms in stages.items())
            lines.append(f"{title}: {parts}.")
    return "\n".join(lines)


class LivePage(ToolPage):
    tool_id = "live"
    title = "Go live"

    #: Going live started (True) or stopped (False).
    live_toggled = Signal(bool)

    def __init__(self, context: StudioContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.options: LiveOptions = context.settings.options(LiveOptions)
        self.worker: Any = None
        self.last_stats: dict[str, Any] = {}
        self.last_message = ""
        self.saved_recordings: list[str] = []
        self.frames_shown = 0
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(400)
        self._save_timer.timeout.connect(self._save_settings)
        self._build()
        self.keys = StreamerKeys(
            self, self.hotkeys.note.setText, use_global=context.extras.get("live_global_keys", True)
        )
        self.keys.triggered.connect(self.hotkey)
        # the keyboard is listened to (globally where the desktop allows) from the first time this page is
        # shown, not as soon as the window opens: no key hook for people who never go live
        self._keys_started = False
        self.presets.show_presets(self.options.preset_list(), self.options.preset_index)
        self.show_message("Choose a face and a voice, then press Go live.")
        # a SnowAI Microphone that a crashed studio left goes now, off the UI thread
        from workers.live.virtual_mic import clean_stale_at_start

        threading.Thread(target=clean_stale_at_start, name="live-clean-up", daemon=True).start()

    # ---- construction -----------------------------------------------------------------------------
    def _build(self) -> None:
        self.live_action = self.action(
            "Go live",
            self.toggle_live,
            icon_name="live",
            checkable=True,
            primary=True,
            tip="Send the swapped face and the converted voice out together",
        )
        self.record_action = self.action(
            "Record",
            self.toggle_record,
            icon_name="record",
            checkable=True,
            tip="Record what goes out (MP4 with the converted voice)",
        )
        self.passthrough_action = self.action(
            "Passthrough",
            self.toggle_passthrough,
            icon_name="mic",
            checkable=True,
            tip="Send your own voice, unconverted",
        )
        self.mute_action = self.action(
            "Mute", self.toggle_mute, icon_name="stop", checkable=True, tip="Send silence on the virtual microphone"
        )
        self.next_action = self.action(
            "Next preset", self.next_preset, icon_name="redo", tip="The next face and voice preset"
        )
        self.live_button = self.add_action_button(self.live_action, primary=True)
        for action in (self.record_action, self.passthrough_action, self.mute_action, self.next_action):
            self.add_action_button(action)
        self.record_action.setEnabled(False)
        self.passthrough_action.setChecked(self.options.passthrough)
        self.mute_action.setChecked(self.options.muted)

        self.view = VideoView(placeholder="Not live: press Go live to send your face and voice out")
        self.set_preview(self.view)
        self.status = LiveStatus()
        self.add_below_preview(self.status)

        self.face_voice = FaceVoiceSection(self.options, _voices(self.context.model_store))
        self.presets = PresetsSection()
        self.microphone = MicrophoneSection(self.options)
        self.outputs = OutputsSection(self.options)
        self.sync = SyncSection(self.options)
        self.hotkeys = HotkeysSection(self.options.hotkeys)
        self.inspector.add_section("Face and voice", self.face_voice, key="face_voice")
        self.inspector.add_section("Presets", self.presets, key="presets")
        self.inspector.add_section("Microphone", self.microphone, key="microphone")
        self.inspector.add_section("Outputs", self.outputs, key="outputs")
        self.inspector.add_section("Sync", self.sync, key="sync")
        self.inspector.add_section("Hotkeys", self.hotkeys, key="hotkeys", expanded=False)

        self.face_voice.faces_changed.connect(self._faces_changed)
        self.face_voice.voice_changed.connect(self._voice_changed)
        self.face_voice.param_changed.connect(self._param)
        self.presets.chosen.connect(self.use_preset)
        self.presets.save_requested.connect(self.save_preset)
        self.presets.remove_requested.connect(self.remove_preset)
        self.microphone.changed.connect(self._param)
        self.outputs.changed.connect(self._param)
        self.sync.offset_changed.connect(lambda v: self._param("offset_ms", v))
        self.hotkeys.changed.connect(self._hotkey_changed)
        self.remember_default_layout()

    # ---- messages and settings ------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        self.last_message = text
        self.status.message.report(text, level, source=self.title, logger=log, notify=False)

    def _save_settings(self) -> None:
        self.context.settings.set_options(self.options)
        try:
            self.context.settings.save()
        except OSError as exc:
            log.warning("the live settings could not be saved: %s", exc)

    def _changed(self) -> None:
        self._save_timer.start()

    def _param(self, name: str, value: Any) -> None:
        setattr(self.options, name, value)
        self._changed()
        if self.worker is not None:
            self.worker.set_param(name, value)
            if name in ("virtual_camera", "virtual_microphone", "monitor"):
                self.show_message("The outputs change the next time you go live.")

    def _faces_changed(self, paths: list[str]) -> None:
        self._param("faces", list(paths))
        if self.worker is not None:
            self.worker.set_param("preset", self._current_as_preset("Chosen"))

    def _voice_changed(self, model: str) -> None:
        self._param("voice", model)
        if self.worker is not None:
            self.worker.set_param("preset", self._current_as_preset("Chosen"))

    def _current_as_preset(self, name: str) -> LivePreset:
        o = self.options
        return LivePreset(name, list(o.faces), o.voice, o.pitch, o.formant)

    # ---- going live ---------------------------------------------------------------------------------
    @property
    def is_live(self) -> bool:
        return self.worker is not None

    def toggle_live(self) -> None:
        if self.live_action.isChecked() and not self.is_live:
            self.start_live()
        elif not self.live_action.isChecked() and self.is_live:
            self.stop_live()

    def _consent(self) -> bool:
        settings = self.context.settings.face_swap
        if not self.options.faces or settings.consent_accepted:
            return True
        ask = self.context.extras.get("live_consent")
        if ask is not None:
            ok = bool(ask(self))
        else:
            from workers.face_swap.cli import NOTICE

            answer = QMessageBox.question(
                self, "Face swap", NOTICE.replace(" This notice is shown once.", "") + "\n\nDo you accept these terms?"
            )
            ok = answer == QMessageBox.StandardButton.Yes
        if ok:
            settings.consent_accepted = True
            self._changed()
        return ok

    def _devices(self) -> Any:
        from workers.live.cli import RATE, make_microphone
        from workers.live.worker import LiveDevices

        extras = self.context.extras
        devices = self.context.settings.devices

        def monitor() -> Any:
            from workers.media.audio import AudioOutput

            buffer = max(0.2, 2.0 * self.options.block_seconds + 0.05)  # two blocks: a block is written at once
            return AudioOutput(devices.speaker, RATE, 480, buffer_seconds=buffer, drop_when_full=True)

        return LiveDevices(
            camera=extras.get("live_camera") or camera_factory(self.context),
            microphone=extras.get("live_microphone") or (lambda: make_microphone(devices.microphone)),
            monitor=extras.get("live_monitor") or monitor,
            virtual_camera=extras.get("live_virtual_camera"),
            virtual_microphone=extras.get("live_virtual_microphone"),
        )

    def start_live(self) -> None:
        from workers.live.worker import LiveWorker

        if not self._consent():
            self.live_action.setChecked(False)
            self.show_message("Without accepting the face swap's terms, go live with no face chosen.", "warning")
            return
        worker = LiveWorker(
            replace(self.options, hotkeys=dict(self.options.hotkeys)), self._devices(), self.context.model_store
        )
        worker.result_ready.connect(self._show_frame)
        worker.stats.connect(self._show_stats)
        worker.warning.connect(lambda m: self.show_message(m, "warning"))
        worker.error.connect(lambda m: self.show_message(m, "error"))
        worker.state_changed.connect(self._state_changed)
        worker.recording_saved.connect(self._recording_saved)
        worker.preset_applied.connect(lambda name: self.status.show_state(True, name))
        self.worker = worker
        self.status.show_state(False, "starting…")
        self.show_message("Loading the face swap and the voice…")
        worker.start(loop=True)
        self.live_toggled.emit(True)

    def stop_live(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop(5000)
            worker.deleteLater()
        self.live_action.setChecked(False)
        self.record_action.setChecked(False)
        self.record_action.setEnabled(False)
        self.status.show_state(False)
        self.view.clear()
        self.live_toggled.emit(False)

    def _state_changed(self, state: str) -> None:
        if state == "ready":
            self.status.show_state(True)
            self.record_action.setEnabled(True)
            if self.last_message.startswith("Loading"):
                self.show_message("Live.")
        elif state in ("failed", "ended") and self.worker is not None:
            self.stop_live()

    def _show_frame(self) -> None:
        worker = self.worker
        result = worker.take_result() if worker is not None else None
        if result is not None:
            self.view.show_frame(result.payload)
            self.frames_shown += 1

    def _show_stats(self, stats: dict[str, Any]) -> None:
        self.last_stats = dict(stats)
        self.status.show_stats(stats)
        outputs = [n for n in (stats.get("virtual_camera"), stats.get("virtual_microphone")) if n]
        if outputs:
            self.outputs.state.setText("Going out on " + " and ".join(outputs) + ".")
        if "video_ms" in stats:
            self.sync.measured.setText(
                f"Picture {stats['video_ms']:.0f} ms, voice {stats['audio_ms']:.0f} ms from the devices; "
                f"the picture waits {stats.get('video_delay_ms', 0):.0f} ms, "
                f"the voice {stats.get('audio_delay_ms', 0):.0f} ms."
            )
            self.sync.measured.setToolTip(stages_text(stats))

    # ---- controls ---------------------------------------------------------------------------------------
    def toggle_record(self) -> None:
        if self.worker is None:
            self.record_action.setChecked(False)
            return
        if self.record_action.isChecked():
            folder = Path(self.context.extras.get("live_record_dir") or videos_dir())
            path = folder / time.strftime("SnowAI live %Y-%m-%d %H-%M-%S.mp4")
            self.worker.set_param("record", str(path))
            self.show_message(f"Recording what goes out to {path}.")
        else:
            self.worker.set_param("record", None)

    def _recording_saved(self, path: str) -> None:
        self.saved_recordings.append(path)
        self.show_message(f"Recording saved: {path}")

    def toggle_passthrough(self) -> None:
        self._param("passthrough", self.passthrough_action.isChecked())

    def toggle_mute(self) -> None:
        self._param("muted", self.mute_action.isChecked())

    def hotkey(self, action: str) -> None:
        """A streamer hotkey was pressed (anywhere, or in the window)."""
        if action == "toggle_live":
            self.live_action.toggle()
        elif action == "passthrough":
            self.passthrough_action.toggle()
        elif action == "mute":
            self.mute_action.toggle()
        elif action == "next_preset":
            self.next_preset()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._keys_started:
            self._keys_started = True
            self.keys.apply(self.options.hotkeys)

    def _hotkey_changed(self, action: str, key: str) -> None:
        from workers.live.hotkeys import check_hotkey

        problem = check_hotkey(key)
        if problem:
            self.show_message(problem, "warning")
            return
        self.options.hotkeys[action] = key
        self._keys_started = True
        self.keys.apply(self.options.hotkeys)
        self._changed()

    # ---- presets ----------------------------------------------------------------------------------------
    def use_preset(self, index: int) -> None:
        preset = self.options.apply_preset(index)
        if preset is None:
            self.show_message("No presets yet: choose a face and a voice, then Save as preset.")
            return
        self.face_voice.show_preset(preset)
        self.presets.show_presets(self.options.preset_list(), self.options.preset_index)
        self._changed()
        if self.worker is not None:
            if preset.faces and not self._consent():
                self.show_message("The face swap's terms were not accepted: the face of this preset is not used.")
                preset = LivePreset(preset.name, [], preset.voice, preset.pitch, preset.formant)
            self.worker.set_param("preset", preset)
        self.show_message(f"Preset: {preset.name}.")

    def next_preset(self) -> None:
        self.use_preset(self.options.preset_index + 1)

    def save_preset(self, name: str) -> None:
        self.options.presets.append(self._current_as_preset(name).to_dict())
        self.options.preset_index = len(self.options.presets) - 1
        self.presets.show_presets(self.options.preset_list(), self.options.preset_index)
        self._changed()

    def remove_preset(self, index: int) -> None:
        if 0 <= index < len(self.options.presets):
            del self.options.presets[index]
            self.options.preset_index = min(self.options.preset_index, len(self.options.presets) - 1)
            self.presets.show_presets(self.options.preset_list(), self.options.preset_index)
            self._changed()

    # ---- the window ---------------------------------------------------------------------------------------
    def page_shortcuts(self) -> list[tuple[str, str]]:
        from workers.live.hotkeys import qt_sequence
        from workers.live.options import HOTKEY_LABELS

        keys = [(qt_sequence(k), HOTKEY_LABELS.get(a, a)) for a, k in self.options.hotkeys.items() if k]
        return super().page_shortcuts() + keys

    def shutdown(self) -> None:
        self.keys.stop()
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._save_settings()
        if self.worker is not None:
            self.stop_live()
