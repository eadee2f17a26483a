"""Running the flash-and-click measurement through the real live path (see :mod:`workers.live.flash_click`).

No Qt here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from workers.live.flash_click import ClickMicrophone, EventClock, FlashCamera, FrameLog, SyncMeasurement, measure
from workers.live.options import LiveOptions
from workers.live.session import LiveSession
from workers.media.fakes import PacedSpeaker


@dataclass
class SyncRun:
    measurement: SyncMeasurement
    stats: dict[str, Any]
    warnings: list[str]


def run_flash_click(
    options: LiveOptions,
    *,
    face: Any = None,
    converter: Any = None,
    seconds: float = 6.0,
    period: float | None = None,
    settle: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: float = 30.0,
    samplerate: int = 48000,
    flash_frames: int = 3,
) -> SyncRun:
    """Flashes and bursts every ``period`` s for ``seconds`` through a live session with ``face`` and
    ``converter``; events in the first ``settle`` seconds (while the latencies are being learnt) are
    left out of the measurement. A slow face engine needs a longer flash (``flash_frames``) so that
    it does not skip all of it."""
    if converter is not None:  # a model's slow first call must not fall inside the measurement
        from workers.live.session import warm_up_voice

        warm_up_voice(converter, samplerate, options)
    # an event every second, or further apart for a voice with long blocks (its latency nears a second)
    period = period or max(1.0, 4.0 * options.block_seconds)
    clock = EventClock(period=period, first=0.8)
    log = FrameLog(width, height, fps)
    speaker = PacedSpeaker(samplerate, buffer_seconds=max(0.1, 2.0 * options.block_seconds + 0.05))
    opts = replace(options, virtual_camera=True, virtual_microphone=True)
    session = LiveSession(
        opts,
        camera=FlashCamera(clock, width, height, fps, flash_frames=flash_frames),
        microphone=ClickMicrophone(clock, samplerate),
        face=face,
        converter=converter,
        virtual_camera=lambda w, h, f: log,
        virtual_microphone=lambda: _speaker_mic(speaker),
        capture_ms=0.0,
        camera_out_ms=0.0,
    )
    session.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and session.running:
            time.sleep(0.05)
        time.sleep(0.9)  # the last burst still on its way out
        stats = session.stats()
    finally:
        session.stop()
    result = measure(clock, log, speaker, fps=fps, skip_first=settle)
    return SyncRun(result, stats, list(session.warnings))


def _speaker_mic(speaker: PacedSpeaker) -> Any:
    from workers.live.virtual_mic import VirtualMicrophone

    speaker.open()
    return VirtualMicrophone(speaker, "Test speaker")
