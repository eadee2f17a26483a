"""``snowai-studio live`` headless: files as the camera and the microphone, a face photo, the built-in
voice changer; the recording holds the swapped picture and the converted voice; a missing virtual
camera is one sentence while the voice goes on; --measure-sync prints the residual offset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
from face_fixtures import moving_frames, second_face

from snowai_studio.cli import build_parser
from workers.live import cli as live_cli

RATE = 48000


@pytest.fixture
def media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SNOWAI_HOME", str(tmp_path / "home"))
    camera = tmp_path / "camera.mp4"
    writer = cv2.VideoWriter(str(camera), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for frame, _ in moving_frames(30, 320, 240):
        writer.write(frame)
    writer.release()
    t = np.arange(2 * RATE) / RATE
    phase = 2 * np.pi * np.cumsum(150.0 + 3.0 * np.sin(2 * np.pi * 5 * t)) / RATE
    voice = 0.25 * sum(np.sin(k * phase) / k for k in range(1, 8)) / 1.6
    microphone = tmp_path / "voice.wav"
    soundfile.write(microphone, voice.astype(np.float32), RATE)
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), second_face())
    return {"camera": camera, "microphone": microphone, "face": face, "out": tmp_path / "live.mp4"}


def _run(argv: list[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(["live", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = live_cli.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_live_from_files_records_the_picture_and_the_converted_voice(media: dict[str, Path]) -> None:
    import av

    code, out, err = _run([
        "--camera", str(media["camera"]), "--microphone", str(media["microphone"]), "--face", str(media["face"]),
        "--engine", "classic", "--pitch", "5", "--no-noise-suppression", "--record", str(media["out"]),
        "--seconds", "3",
    ])  # fmt: skip
    assert code == 0, err
    assert "Live for" in out and f"Recorded {media['out']}" in out and "picture" in out and "voice" in out
    with av.open(str(media["out"])) as container:
        kinds = sorted(s.type for s in container.streams)
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    with av.open(str(media["out"])) as container:
        video = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert kinds == ["audio", "video"] and len(video) > 30
    # the voice is the converted one: 150 Hz up 5 semitones is about 200 Hz
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    voiced = audio[loud[0] :] if len(loud) else audio[:0]
    assert len(voiced) > RATE
    spectrum = np.abs(np.fft.rfft(voiced[:RATE] * np.hanning(RATE)))
    freqs = np.fft.rfftfreq(RATE, 1 / RATE)
    band = (freqs > 100) & (freqs < 400)
    peak = freqs[band][np.argmax(spectrum[band])]
    assert 190 < peak < 210, peak


def test_without_a_virtual_camera_one_sentence_and_the_voice_goes_on(
    media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.errors import UserError
    from workers.live import session

    def no_camera(width: int, height: int, fps: float) -> None:
        raise UserError("No virtual camera device was found: load v4l2loopback, then try again; the voice keeps going.")

    monkeypatch.setattr(session, "open_virtual_camera", no_camera)
    code, _out, err = _run([
        "--camera", "test-pattern", "--microphone", str(media["microphone"]), "--virtual-camera",
        "--record", str(media["out"]), "--seconds", "1.5",
    ])  # fmt: skip
    assert code == 0
    lines = [line for line in err.splitlines() if "virtual camera" in line]
    assert lines == ["No virtual camera device was found: load v4l2loopback, then try again; the voice keeps going."]
    assert media["out"].is_file()  # the recording (picture and voice) went on


def test_measure_sync_prints_each_stream_and_the_residual(media: dict[str, Path]) -> None:
    code, out, err = _run(["--measure-sync", "--json", "--seconds", "4", "--no-noise-suppression"])
    assert code == 0, err
    data = json.loads(out)
    sync = data["sync"]
    assert sync["events"] >= 2 and abs(sync["residual_ms"]) <= 20.0
    assert sync["audio_latency_ms"] > 50 and data["stats"]["video_delay_ms"] > 0


def test_a_missing_microphone_file_is_one_sentence_and_the_picture_goes_on(media: dict[str, Path]) -> None:
    missing = media["microphone"].with_name("none.wav")
    code, out, err = _run(["--camera", "test-pattern", "--microphone", str(missing), "--seconds", "1"])
    assert code == 0 and "fps" in out
    assert err.splitlines()[0].startswith("The microphone could not start; the picture keeps going: ")
    assert "none.wav" in err.splitlines()[0]


def test_a_missing_face_photo_is_one_sentence(media: dict[str, Path]) -> None:
    code, out, err = _run(["--camera", "test-pattern", "--face", str(media["face"].with_name("nobody.png"))])
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line]
    assert lines[-1] == f"The face photo {media['face'].with_name('nobody.png')} was not found."
    assert all(line.startswith("Face swap: use it only with the consent") for line in lines[:-1])  # the notice, once
