"""The live conversion of the voice-conversion page: Start/Stop (the live panel's button and the page's
Live action), the microphone and output it opens, the live numbers, whether there is a microphone at
all, and the Retry bar when a device or the voice stops it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QComboBox

from snowai_studio.icons import icon
from snowai_studio.panels.live_source import describe_microphone
from snowai_studio.panels.tool_page import shortcut_text
from snowai_studio.tool_dock import microphone_available, microphone_factory, open_devices, speaker_factory
from snowai_studio.voice_conversion import prefs
from snowai_studio.voice_conversion.texts import IDLE_STATS, live_text, looks_like_cable
from workers import base

if TYPE_CHECKING:
    from snowai_studio.voice_conversion.page import VoiceConversionPage

log = logging.getLogger(__name__)

#: Device combo data: the device chosen in Devices (Settings), or the system default.
DEVICES_ITEM = "<devices>"
#: Item roles of the device lists: the device found, and the name the device line shows.
DEVICE_ROLE = Qt.ItemDataRole.UserRole + 1
DEVICE_NAME_ROLE = Qt.ItemDataRole.UserRole + 2
NO_MICROPHONE = "No microphone found. Connect one, or choose a sound file as the microphone in Devices."


def missing_microphone_reason(choice: str | None) -> str:
    """Why there is nothing to listen to, for the microphone setting ``choice``."""
    from workers.media.microphone import is_sound_file_choice

    if is_sound_file_choice(choice):
        name = describe_microphone(choice).removeprefix("Sound file ").removesuffix(" (looped)")
        return f"The sound file {name} chosen as the microphone was not found; choose another in Devices."
    return NO_MICROPHONE


class LiveControl(QObject):
    """Drives :attr:`VoiceConversionPage.live_view` and the worker's realtime conversion."""

    def __init__(self, page: VoiceConversionPage) -> None:
        super().__init__(page)
        self.page = page
        self.view = page.live_view
        self.panel = page.live_view.panel
        self.running = False
        self.starting = False
        self.available = True
        self.reason = ""
        self._probe: base.Worker | None = None
        self._probe_job = -1
        #: Whether the devices were looked for yet (until then a chosen device is not "not connected").
        self.scanned = False
        self.panel.start_requested.connect(self.start)
        self.panel.stop_requested.connect(self.stop)
        self.panel.retry_requested.connect(self.retry)
        self.panel.devices_requested.connect(self._open_devices)

    # ---- start and stop ----------------------------------------------------------------------------------
    def start(self) -> bool:
        """Convert the microphone live to the output (``realtime_toggled(True)`` once it runs)."""
        if self.running or self.starting:
            return True
        self.panel.problem.clear()
        worker = self.page.ensure_worker()
        self.view.history.clear()
        self.starting = True
        self.show_state()
        self.panel.set_stats("Opening the microphone and the output…")
        worker.start_realtime(self.device_choice(self.page.input_combo), self.device_choice(self.page.output_combo))
        return True

    def stop(self) -> None:
        """Stop the live conversion; the devices are released."""
        self.panel.problem.clear()
        self.starting = False
        if self.page.worker is not None:
            self.page.worker.stop_realtime()
        self.set_running(False)

    @Slot()
    def retry(self) -> None:
        """Retry after the live conversion stopped: both devices are opened again, same settings."""
        self.panel.problem.clear()
        if self.running:
            self.stop()
        self.start()

    def toggle(self, on: bool) -> None:
        """The Live action was pressed."""
        if on:
            self.start()
        else:
            self.stop()
        self.show_state()

    def set_running(self, on: bool) -> None:
        changed = on != self.running
        self.running = on
        self.show_state()
        if not on and not self.page.closing:
            self.view.reset()
        if changed:
            self.page.realtime_toggled.emit(on)

    def show_state(self) -> None:
        """The live panel's button, the Live action and the idle line, as the state is now."""
        on = self.running
        busy = on or self.starting
        self.panel.set_running(on)
        self.view.show_state("live" if on else "starting" if self.starting else "stopped")
        action = self.page.live_action
        action.blockSignals(True)
        action.setChecked(busy)
        action.blockSignals(False)
        action.setText("Stop live" if on else "Starting…" if self.starting else "Start live")
        action.setIcon(icon("stop" if busy else "live"))
        action.setEnabled(self.available or busy)
        tip = "Stop the live conversion and release the devices" if busy else (
            "Convert the microphone live to the output" if self.available else self.reason
        )
        action.setToolTip(f"{tip} ({shortcut_text(action.shortcut())})")
        if not on and not self.starting and not self.page.closing:
            self.panel.set_stats(IDLE_STATS if self.available else self.reason)

    @Slot(bool, str, str)
    def on_realtime_changed(self, running: bool, message: str, level: str) -> None:
        self.starting = False
        self.set_running(running)
        if self.page.closing:
            return
        if running:
            self.panel.problem.clear()
        if level == "error" and not running and message:
            # A device or the voice failed: said once, on the problem bar with Retry (the worker logged it).
            self.page.note(message, "error")
            self.panel.show_problem(message)
        elif message:
            self.page.show_message(message, level, notify=False)

    @Slot(dict)
    def on_stats(self, stats: dict) -> None:
        if not stats.get("realtime") or not self.running:
            return
        self.page.last_stats = dict(stats)
        self.view.show_stats(stats)
        self.panel.set_stats(live_text(stats))

    # ---- the microphone -----------------------------------------------------------------------------------
    def set_available(self, ok: bool, reason: str = "") -> None:
        """Without a microphone Start is disabled and says why."""
        self.available = ok
        self.reason = "" if ok else (reason or NO_MICROPHONE)
        self.panel.set_available(ok, self.reason)
        self.show_state()

    def check_devices(self) -> None:
        """Look (off the UI thread) for a microphone and the outputs; the lists and Start follow."""
        if self.page.closing:
            return
        if self._probe is None:
            self._probe = base.Worker()
            self._probe.name = "Voice conversion devices"
            self._probe.job_finished.connect(self._on_scanned)
            self._probe.start()
        context = self.page.context

        def scan(_ctx: Any) -> tuple[bool, list[Any], list[Any]]:
            from workers.media.audio import list_input_devices, list_output_devices

            return microphone_available(context), list_input_devices(), list_output_devices()

        self._probe_job = self._probe.submit(scan)

    @Slot(int, object)
    def _on_scanned(self, job_id: int, result: Any) -> None:
        if job_id != self._probe_job or self.page.closing:
            return
        ok, inputs, outputs = result
        self.scanned = True
        self.fill_devices(inputs, outputs)
        self.set_available(ok, "" if ok else missing_microphone_reason(self.page.context.settings.devices.microphone))

    def fill_devices(self, inputs: list[Any] | None = None, outputs: list[Any] | None = None) -> None:
        """The device lists (``None``: keep the devices found before), keeping the choices."""
        page = self.page
        devices = page.context.settings.devices
        for combo, found, key, in_settings in (
            (page.input_combo, inputs, "input_device", devices.microphone),
            (page.output_combo, outputs, "output_device", devices.speaker),
        ):
            chosen = self.device_choice(combo) or prefs.load(key) or None
            if found is None:
                found = [combo.itemData(i, DEVICE_ROLE) for i in range(combo.count())]
                found = [d for d in found if d is not None]
            self._fill(combo, found, chosen, in_settings, "input" if key == "input_device" else "output")
        self.show_devices()

    def _fill(self, combo: QComboBox, found: list[Any], chosen: str | None, in_settings: str | None, kind: str) -> None:
        combo.blockSignals(True)
        combo.clear()
        what = "microphone" if kind == "input" else "speaker"
        if f"{what}_factory" in self.page.context.extras:
            combo.addItem(f"The studio's {what}", DEVICES_ITEM)
        else:
            combo.addItem("Chosen in Devices", DEVICES_ITEM)
            default = describe_microphone(in_settings) if kind == "input" else in_settings or "The default output"
            combo.setItemData(0, default, Qt.ItemDataRole.ToolTipRole)
            combo.setItemData(0, default, DEVICE_NAME_ROLE)
        for d in found:
            label = f"{d.name} ({d.hostapi})" if d.hostapi else d.name
            combo.addItem(label + (" — virtual cable" if looks_like_cable(d.name) else ""), d.name)
            combo.setItemData(combo.count() - 1, d.name, Qt.ItemDataRole.ToolTipRole)
            combo.setItemData(combo.count() - 1, d, DEVICE_ROLE)
        if chosen and combo.findData(chosen) < 0:
            combo.addItem(f"{chosen} (not connected)" if self.scanned else chosen, chosen)
        combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
        combo.setToolTip(f"Found {len(found)} {what}{'s' if len(found) != 1 else ''}" if found else f"No {what} found")
        combo.blockSignals(False)

    @staticmethod
    def device_choice(combo: QComboBox) -> str | None:
        data = combo.currentData()
        return None if data in (None, DEVICES_ITEM) else str(data)

    def on_device_chosen(self, kind: str) -> None:
        combo = self.page.input_combo if kind == "input" else self.page.output_combo
        choice = self.device_choice(combo)
        prefs.save(f"{kind}_device", choice or "")
        if self.page.worker is not None:
            self.page.worker.set_param(f"{kind}_device", choice)
        self.show_devices()

    def show_devices(self) -> None:
        """The live panel's device line: which microphone goes to which output."""
        mic, out = (combo.currentData(DEVICE_NAME_ROLE) or combo.currentText()
                    for combo in (self.page.input_combo, self.page.output_combo))
        self.panel.set_device_text(f"{mic}  →  {out}")

    def _open_devices(self) -> None:
        open_devices(self.page)

    # ---- the devices the worker opens (on its thread) ---------------------------------------------------------
    def make_source(self, device: str | None, samplerate: int | None, blocksize: int) -> Any:
        """The microphone: the one chosen on the page, else the studio's (Devices, or injected)."""
        if device is None:
            return microphone_factory(self.page.context)()
        from workers.media.audio import AudioInput

        return AudioInput(device, samplerate, blocksize, channels=1)

    def make_sink(self, device: str | None, samplerate: int | None, blocksize: int) -> Any:
        """The output: the one chosen on the page (a speaker or a virtual cable), else the studio's."""
        if device is None and "speaker_factory" in self.page.context.extras:
            return speaker_factory(self.page.context)()
        from workers.media.audio import AudioOutput

        name = device if device is not None else self.page.context.settings.devices.speaker
        return AudioOutput(name, samplerate, blocksize, channels=1, buffer_seconds=0.3, drop_when_full=True)

    def shutdown(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.stop()
