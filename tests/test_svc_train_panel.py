"""The Train section of the voice-conversion page, with the real training worker: choosing recordings
shows what they give (a damaged file listed), Train runs a tiny RVC v2 model with progress, curves,
previews and saved steps, "Use this voice now" loads the trained voice into the page, and Stop keeps
the steps done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from page_fixtures import shown, studio_context
from svc_speech import speech

from snowai_studio.voice_conversion import create_page
from snowai_studio.voice_conversion.page import VoiceConversionPage
from workers import base

WAIT = 120000


@pytest.fixture
def page(qtbot: Any, tmp_path: Path) -> Iterator[VoiceConversionPage]:
    from svc_fixtures import fixture_store

    extras = {"svc_train_options": {"save_every": 3, "preview_every": 3, "batch_size": 1}}
    context = studio_context(fixture_store(tmp_path / "store"), extras)
    dock = shown(qtbot, create_page(context), 1210, 630)
    yield dock
    dock.shutdown()
    context.notifications.uninstall_hooks()
    assert not [w.name for w in base.live_workers() if w.name == "Voice training"]


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    audio, rate = speech(seconds=12.0)
    soundfile.write(str(folder / "take.wav"), audio, rate)
    soundfile.write(str(folder / "hum.flac"), np.zeros(rate * 3, np.float32), rate)  # silence: too quiet
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(100))
    return folder


def test_train_section_trains_a_voice_and_uses_it(page: VoiceConversionPage, recordings: Path, qtbot: Any) -> None:
    section, control = page.train_section, page.training
    page.inspector.sections["train"].set_expanded(True)  # the section fits the inspector's width
    qtbot.wait(50)
    assert page.inspector.widget().minimumSizeHint().width() <= page.inspector.viewport().width()
    control.choose_folder(recordings)
    qtbot.waitUntil(lambda: "min usable" in section.report.text(), timeout=WAIT)
    report = section.report.text()
    assert "Skipped broken.mp3: unreadable" in report and "Skipped hum.flac: too quiet" in report
    section.size_combo.setCurrentIndex(section.size_combo.findData("tiny"))
    section.steps.setValue(6)
    section.train_button.click()
    assert section.train_button.text() == "Stop" and not section.arch_combo.isEnabled()
    qtbot.waitUntil(lambda: not control.training, timeout=WAIT)
    assert section.train_button.text() == "Train"
    assert section.progress.value() == 6 and section.progress.maximum() == 6
    assert section.chart.steps == list(range(1, 7))
    assert [section.checkpoint_combo.itemData(i) for i in range(section.checkpoint_combo.count())] == [3, 6]
    assert "(best)" in section.checkpoint_combo.currentText()
    assert section.listen_button.isEnabled() and "step 6" in section.preview_label.text()
    assert "Trained:" in section.status.text()
    section.use_button.click()
    qtbot.waitUntil(lambda: page.active_model.endswith("my-voice.pth"), timeout=WAIT)
    assert "RVC v2" in page.model_info_label.text()


def test_stop_keeps_the_steps_done(page: VoiceConversionPage, recordings: Path, qtbot: Any) -> None:
    section, control = page.train_section, page.training
    control.choose_folder(recordings)
    section.size_combo.setCurrentIndex(section.size_combo.findData("tiny"))
    section.arch_combo.setCurrentIndex(section.arch_combo.findData("sovits-4.1:44100"))
    section.steps.setValue(500)
    section.train_button.click()
    qtbot.waitUntil(lambda: control.last_step.get("step", 0) >= 1, timeout=WAIT)
    section.train_button.click()
    qtbot.waitUntil(lambda: not control.training, timeout=WAIT)
    assert "Stopped at step" in section.status.text()
    step = control.last_step["step"]
    assert step < 500
    assert (control.out_folder() / f"G_{step}.pth").is_file()
