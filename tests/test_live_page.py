"""The Go live page end to end with the real engines and fake devices: going live shows what goes out
with each stream's latency, the streamer controls (buttons and hotkeys) apply live, presets pair a
face and a voice, recording saves an MP4 with the voice, a missing virtual microphone is one sentence
while the picture goes on, and stopping releases everything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from snowai_studio.context import StudioContext
from snowai_studio.live import create_page
from snowai_studio.live.page import LivePage
from snowai_studio.notifications import NotificationManager
from workers import base
from workers.errors import UserError
from workers.live.flash_click import FrameLog
from workers.live.options import LiveOptions, LivePreset
from workers.live.virtual_mic import VirtualMicrophone
from workers.media.fakes import ArrayMicrophone, GeneratedCamera, MemorySink
from workers.models.store import ModelStore
from workers.settings import Settings

WAIT = 30000


def _voice(seconds: float = 2.0, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 + 4 * np.sin(2 * np.pi * 5 * t)) / rate
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


class Outputs:
    def __init__(self) -> None:
        self.frames = FrameLog()
        self.voice = MemorySink(48000)

    def virtual_microphone(self) -> VirtualMicrophone:
        self.voice.open()
        return VirtualMicrophone(self.voice, "Test microphone")


@pytest.fixture
def make_page(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SNOWAI_HOME", str(tmp_path / "home"))
    made: list[LivePage] = []

    def make(**extras: Any) -> LivePage:
        outputs = Outputs()
        extras.setdefault("live_camera", lambda: GeneratedCamera(160, 120, 30))
        extras.setdefault("live_microphone", lambda: ArrayMicrophone(_voice(), 48000, blocksize=480, loop=True))
        extras.setdefault("live_virtual_camera", lambda w, h, fps: outputs.frames)
        extras.setdefault("live_virtual_microphone", outputs.virtual_microphone)
        extras.setdefault("live_global_keys", False)
        extras.setdefault("live_record_dir", str(tmp_path / "recordings"))
        settings = Settings.load()
        settings.options(LiveOptions).noise_suppression = False
        context = StudioContext(settings, NotificationManager(), ModelStore(tmp_path / "models"), extras)
        page = create_page(context)
        page.outputs_under_test = outputs  # type: ignore[attr-defined]
        qtbot.addWidget(page)
        page.resize(1100, 700)
        page.show()
        made.append(page)
        return page

    yield make
    for page in made:
        page.shutdown()
    assert not [w for w in base.live_workers() if w.name == "Go live"]


def _go_live(qtbot: Any, page: LivePage) -> None:
    with qtbot.waitSignal(page.live_toggled, timeout=WAIT):
        page.live_action.trigger()
    qtbot.waitUntil(lambda: page.frames_shown > 3 and page.last_stats.get("blocks", 0) > 3, timeout=WAIT)


def test_going_live_sends_the_picture_and_the_voice_and_stopping_releases_them(make_page: Any, qtbot: Any) -> None:
    page = make_page()
    _go_live(qtbot, page)
    out = page.outputs_under_test
    assert len(out.frames.sent) > 3 and out.voice.frames > 0
    stats = page.last_stats
    assert stats["virtual_camera"] == "Frame log" and stats["virtual_microphone"] == "Test microphone"
    assert stats["audio_ms"] > stats["video_ms"] > 0  # the voice is the slower path here...
    assert abs(stats["video_delay_ms"] - (stats["audio_ms"] - stats["video_ms"])) < 1.0  # ...so the picture waits
    assert "picture" in page.status.numbers.text() and "waits" in page.sync.measured.text()
    assert page.status.state.text().startswith("Live")
    page.live_action.trigger()
    assert not page.is_live and not page.live_action.isChecked()
    assert page.status.state.text() == "Not live"


def test_hotkeys_passthrough_mute_and_presets_apply_live(make_page: Any, qtbot: Any) -> None:
    page = make_page()
    page.options.presets = [
        LivePreset("Deep", [], "", -5.0, 0.0).to_dict(),
        LivePreset("High", [], "", 7.0, 2.0).to_dict(),
    ]
    page.presets.show_presets(page.options.preset_list(), -1)
    assert "focus" in page.hotkeys.note.text()  # window shortcuts: said in one sentence
    _go_live(qtbot, page)
    QTest.keyClick(page, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    assert page.mute_action.isChecked()
    qtbot.waitUntil(lambda: page.last_stats.get("muted") is True, timeout=WAIT)
    qtbot.waitUntil(lambda: page.last_stats.get("output_dbfs", 0) < -100, timeout=WAIT)
    page.hotkey("mute")
    page.hotkey("passthrough")
    qtbot.waitUntil(lambda: page.last_stats.get("passthrough") is True and not page.last_stats["muted"], timeout=WAIT)
    page.hotkey("next_preset")
    assert page.options.preset_index == 0 and page.options.pitch == -5.0
    assert page.face_voice.pitch.value() == -5.0 and page.presets.combo.currentText() == "Deep"
    page.hotkey("next_preset")
    assert page.options.preset_index == 1 and page.options.pitch == 7.0
    qtbot.waitUntil(lambda: page.worker.session.converter.pitch == 7.0, timeout=WAIT)
    page.hotkey("toggle_live")
    assert not page.is_live


def test_recording_saves_what_goes_out_with_the_voice(make_page: Any, qtbot: Any) -> None:
    import av

    page = make_page()
    _go_live(qtbot, page)
    page.record_action.trigger()
    qtbot.waitUntil(lambda: page.last_stats.get("recording") is True, timeout=WAIT)
    frames = page.last_stats["frames"]
    qtbot.waitUntil(lambda: page.last_stats.get("frames", 0) > frames + 20, timeout=WAIT)
    page.record_action.trigger()
    qtbot.waitUntil(lambda: bool(page.saved_recordings), timeout=WAIT)
    with av.open(page.saved_recordings[0]) as container:
        kinds = sorted(s.type for s in container.streams)
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert kinds == ["audio", "video"]
    assert np.sqrt(np.mean(audio**2)) > 0.02


def test_a_missing_virtual_microphone_is_one_sentence_and_the_picture_goes_on(make_page: Any, qtbot: Any) -> None:
    def none() -> VirtualMicrophone:
        raise UserError(
            "No virtual audio cable was found: install VB-CABLE, then go live again; the camera keeps going."
        )

    page = make_page(live_virtual_microphone=none)
    _go_live(qtbot, page)
    assert "VB-CABLE" in page.last_message and page.last_stats["virtual_microphone"] == ""
    count = len(page.outputs_under_test.frames.sent)
    qtbot.waitUntil(lambda: len(page.outputs_under_test.frames.sent) > count + 10, timeout=WAIT)


def test_a_preset_with_a_face_starts_the_face_swap_live(make_page: Any, qtbot: Any, tmp_path: Path) -> None:
    import cv2
    from face_fixtures import second_face

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), second_face())
    page = make_page(live_consent=lambda _page: True)
    page.options.presets = [LivePreset("Astronaut", [str(photo)], "", 2.0).to_dict()]
    _go_live(qtbot, page)
    assert page.worker.session.face is None  # no face chosen: the picture went out as it was
    page.next_preset()
    qtbot.waitUntil(lambda: page.worker.session.face is not None, timeout=WAIT)
    face = page.worker.session.face
    frames = face.frames
    qtbot.waitUntil(lambda: face.frames > frames + 5, timeout=WAIT)  # every frame goes through the swap
    assert "Astronaut" in page.status.state.text() and str(photo.name) in page.face_voice.faces_label.text()
