"""Converting audio files: WAV, FLAC, OGG and MP3 in and out at any rate and channel count, long files in
chunks cut at pauses (with progress and cancel), atomic output that never replaces the input, and a
clear sentence for files that are not audio."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from svc_speech import speech, write_speech

from workers.errors import Cancelled, UserError
from workers.media.audio import resample
from workers.voice_conversion.dsp import DSPVoiceChanger
from workers.voice_conversion.files import (
    convert_audio,
    convert_file,
    default_output,
    file_channels,
    file_rate,
    read_audio,
    save_audio,
    split_points,
)
from workers.voice_conversion.pitch import make_pitch_estimator


class Identity:
    """A converter that returns its input (at another output rate when asked)."""

    name = "identity"

    def __init__(self, input_rate: int = 16000, sample_rate: int = 16000) -> None:
        self.input_rate = input_rate
        self.sample_rate = sample_rate
        self.calls: list[int] = []

    def set_params(self, **params: Any) -> None:
        pass

    def convert(self, audio: np.ndarray) -> np.ndarray:
        self.calls.append(len(audio))
        if self.sample_rate == self.input_rate:
            return np.asarray(audio, np.float32).copy()
        return resample(np.asarray(audio, np.float32)[:, None], self.input_rate, self.sample_rate)[:, 0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name]


@pytest.mark.parametrize(
    ("suffix", "rate", "channels"),
    [
        (".wav", 44100, 2),
        (".flac", 22050, 1),
        (".ogg", 48000, 2),
        (".mp3", 32000, 1),
        (".wav", 8000, 6),
        (".flac", 11025, 3),
    ],
)
def test_reads_and_converts_common_formats_at_any_rate_and_channel_count(
    suffix: str, rate: int, channels: int, tmp_path: Path
) -> None:
    src = write_speech(tmp_path / f"in{suffix}", seconds=2.0, rate=rate, channels=channels)
    data, got_rate = read_audio(src)
    assert got_rate == rate and data.ndim == 2 and data.shape[1] == channels and data.dtype == np.float32
    assert abs(len(data) - 2.0 * rate) < 0.1 * rate  # MP3 and OGG add a little padding
    for out_suffix in (".wav", ".mp3"):
        written = convert_file(src, tmp_path / f"out{out_suffix}", DSPVoiceChanger(pitch=3.0))
        out, out_rate = read_audio(written)
        assert written.suffix == out_suffix and out.shape[1] == 1  # mono
        assert abs(len(out) / out_rate - len(data) / rate) < 0.08
        assert np.abs(out).max() > 0.05
    assert no_leftovers(tmp_path)


def test_the_dsp_changer_keeps_the_file_rate_and_shifts_the_pitch(tmp_path: Path) -> None:
    src = write_speech(tmp_path / "voice.flac", seconds=3.0, rate=44100, channels=2)
    written = convert_file(src, tmp_path / "voice-up.flac", DSPVoiceChanger(pitch=5.0))
    out, rate = read_audio(written)
    assert rate == 44100 and len(out) == int(3.0 * 44100)
    before, _ = read_audio(src)
    f0 = make_pitch_estimator("harvest")
    a = f0(resample(before.mean(axis=1, keepdims=True), rate, 16000)[:, 0])
    b = f0(resample(out, rate, 16000)[:, 0])
    both = (a > 0) & (b > 0)
    assert np.median(12 * np.log2(b[both] / a[both])) == pytest.approx(5.0, abs=0.3)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_the_voice_goes_on_every_channel_of_a_stereo_input_when_asked(suffix: str, tmp_path: Path) -> None:
    src = write_speech(tmp_path / "duet.wav", seconds=2.0, rate=44100, channels=2)
    kept = convert_file(src, tmp_path / f"kept{suffix}", DSPVoiceChanger(pitch=2.0), channels="input")
    out, rate = read_audio(kept)
    assert rate == 44100 and out.shape[1] == 2
    assert np.abs(out).max() > 0.05
    assert np.allclose(out[:, 0], out[:, 1], atol=1e-3)  # the converted voice on both channels
    mono = convert_file(src, tmp_path / f"mono{suffix}", DSPVoiceChanger(pitch=2.0), channels="mono")
    assert read_audio(mono)[0].shape[1] == 1
    assert no_leftovers(tmp_path)


def test_what_a_converted_file_holds_is_told_before_it_is_written() -> None:
    assert file_channels("WAV", 2, "input") == 2 and file_channels("WAV", 2, "mono") == 1
    assert file_channels("MP3", 6, "input") == 2 and file_channels("FLAC", 12, "input") == 8
    assert file_rate("WAV", 40000) == 40000 and file_rate("MP3", 40000) == 44100 and file_rate("MP3", 32000) == 32000
    with pytest.raises(UserError, match="channel"):
        file_channels("WAV", 2, "surround")


def test_a_model_converter_gets_its_rate_and_gives_its_own(tmp_path: Path) -> None:
    src = write_speech(tmp_path / "v.wav", seconds=2.0, rate=48000)
    conv = Identity(16000, 40000)
    written = convert_file(src, tmp_path / "v-out.wav", conv)
    out, rate = read_audio(written)
    assert rate == 40000 and len(out) == 80000
    assert all(n <= 2.0 * 16000 + 1 for n in conv.calls)


def test_long_files_are_cut_at_pauses_and_joined_seamlessly(tmp_path: Path) -> None:
    audio, rate = speech(seconds=12.0)
    cuts = split_points(audio, rate, 3.0)
    assert cuts[0] == 0 and cuts[-1] == len(audio) and np.all(np.diff(cuts) <= 3.0 * rate)
    assert len(cuts) - 1 >= 4
    # every cut lies in the quietest part of its search range
    frame = rate // 100
    level = np.sqrt(np.convolve(audio**2, np.ones(frame) / frame, mode="same"))
    assert all(level[c] <= np.percentile(level[c - rate : c + rate], 25) + 1e-4 for c in cuts[1:-1])
    # an identity converter through the chunking gives the input back exactly
    seen: list[tuple[int, int]] = []
    conv = Identity(rate, rate)
    out, out_rate = convert_audio(audio, rate, conv, max_chunk_seconds=3.0, progress=lambda d, t: seen.append((d, t)))
    assert out_rate == rate and len(out) == len(audio)
    assert np.abs(out - audio).max() < 1e-5
    assert len(conv.calls) == len(cuts) - 1 and max(conv.calls) < 3.0 * rate + 1.3 * rate
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (len(audio), len(audio))
    # ... and through a rate change, too
    out2, rate2 = convert_audio(audio, rate, Identity(rate, 2 * rate), max_chunk_seconds=3.0)
    assert rate2 == 2 * rate and abs(len(out2) - 2 * len(audio)) <= 1
    reference = resample(audio[:, None], rate, 2 * rate)[:, 0]
    assert np.abs(out2[1000:-1000] - reference[1000:-1000]).max() < 0.02


def test_chunked_dsp_conversion_sounds_like_the_whole_file(tmp_path: Path) -> None:
    audio, rate = speech(seconds=8.0)
    changer = DSPVoiceChanger(pitch=-3.0)
    whole = changer.convert_at(audio, rate)
    chunked, _ = convert_audio(audio, rate, changer, max_chunk_seconds=2.5)
    assert len(chunked) == len(whole)
    frame = rate // 100

    def contour(x: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1))

    assert np.corrcoef(contour(chunked), contour(whole))[0, 1] > 0.97
    f0 = make_pitch_estimator("harvest")
    a = f0(resample(whole[:, None], rate, 16000)[:, 0])
    b = f0(resample(chunked[:, None], rate, 16000)[:, 0])
    both = (a > 0) & (b > 0)
    assert np.median(np.abs(12 * np.log2(b[both] / a[both]))) < 0.1
    # no click where the chunks meet
    d2 = np.abs(np.diff(chunked, 2))
    for c in split_points(audio, rate, 2.5)[1:-1]:
        near, far = int(0.03 * rate), int(0.3 * rate)
        at = d2[c - near : c + near].max()
        around = max(d2[c - far : c - near].max(), d2[c + near : c + far].max())
        assert at <= 1.5 * around + 1e-4


def test_cancel_leaves_no_output(tmp_path: Path) -> None:
    src = write_speech(tmp_path / "long.wav", seconds=10.0)
    dst = tmp_path / "out" / "long-converted.wav"
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done > 0:
            stop.set()  # cancel after the first chunk

    with pytest.raises(Cancelled):
        convert_file(src, dst, DSPVoiceChanger(pitch=2.0), progress=progress, cancel=stop, max_chunk_seconds=2.0)
    assert not dst.exists()
    assert not (tmp_path / "out").exists() or no_leftovers(tmp_path / "out")
    flag = {"n": 0}

    def cancel() -> bool:
        flag["n"] += 1
        return flag["n"] > 2

    with pytest.raises(Cancelled):
        convert_file(src, dst, DSPVoiceChanger(pitch=2.0), cancel=cancel, max_chunk_seconds=2.0)
    assert not dst.exists()


def test_the_input_and_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    src = write_speech(tmp_path / "take.wav", seconds=1.5)
    before = digest(src)
    written = convert_file(src, src, DSPVoiceChanger(pitch=2.0))
    assert written == tmp_path / "take-2.wav" and digest(src) == before
    other = tmp_path / "result.wav"
    other.write_bytes(b"keep me")
    written2 = convert_file(src, other, DSPVoiceChanger(pitch=2.0))
    assert written2 == tmp_path / "result-2.wav" and other.read_bytes() == b"keep me"
    folder = tmp_path / "outdir"
    folder.mkdir()
    assert convert_file(src, folder, DSPVoiceChanger()) == default_output(src, folder) == folder / "take-converted.wav"
    assert no_leftovers(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"not audio at all " * 100, bytes(range(256)) * 40]
)
@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".ogg"])
def test_unreadable_files_give_a_sentence(content: bytes, suffix: str, tmp_path: Path) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    with pytest.raises(UserError, match=r"bad\.(wav|mp3|ogg)"):
        convert_file(bad, tmp_path / "out.wav", DSPVoiceChanger(pitch=1.0))
    assert not (tmp_path / "out.wav").exists() and no_leftovers(tmp_path)


def test_missing_folders_and_unknown_targets_give_sentences(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_audio(tmp_path / "nothing.wav")
    with pytest.raises(UserError, match="folder"):
        read_audio(tmp_path)
    src = write_speech(tmp_path / "a.wav", seconds=0.5)
    with pytest.raises(UserError, match=r"\.wav, \.flac, \.ogg or \.mp3"):
        convert_file(src, tmp_path / "a.xyz", DSPVoiceChanger())
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(UserError, match="could not be saved"):
        save_audio(blocker / "out.wav", np.zeros(100, np.float32), 16000)


def test_other_containers_are_read_through_pyav(tmp_path: Path) -> None:
    import av

    audio, rate = speech(seconds=1.0)
    path = tmp_path / "clip.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data, got = read_audio(path)
    assert got == rate and data.shape[1] == 1 and abs(len(data) - rate) < 0.1 * rate
    written = convert_file(path, tmp_path / "clip.ogg", DSPVoiceChanger(pitch=-2.0))
    info = soundfile.info(str(written))
    assert info.format == "OGG" and info.channels == 1


def test_mp3_is_written_through_pyav_where_libsndfile_lacks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    formats = {k: v for k, v in soundfile.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(soundfile, "available_formats", lambda: formats)
    src = write_speech(tmp_path / "in.wav", seconds=1.5, rate=40000)  # not an MP3 rate: resampled to 44.1 kHz
    written = convert_file(src, tmp_path / "out.mp3", DSPVoiceChanger(pitch=2.0))
    data, rate = read_audio(written)
    assert rate == 44100 and abs(len(data) / rate - 1.5) < 0.08
    assert no_leftovers(tmp_path)


def test_long_files_stream_through_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.voice_conversion import files

    src = write_speech(tmp_path / "talk.flac", seconds=40.0, rate=16000)
    reads: list[int] = []
    original = files._FileSource.read

    def spy(self: Any, start: int, stop: int) -> np.ndarray:
        reads.append(stop - start)
        return original(self, start, stop)

    monkeypatch.setattr(files._FileSource, "read", spy)
    steps: list[int] = []
    written = convert_file(
        src,
        tmp_path / "talk-low.flac",
        DSPVoiceChanger(pitch=-4.0),
        max_chunk_seconds=5.0,
        progress=lambda done, total: steps.append(done),
    )
    assert max(reads) <= (5.0 + 1.0 + 0.2 + 0.05) * 16000  # never the whole file at once
    assert len(steps) >= 9 and steps[-1] == 40 * 16000
    out, rate = read_audio(written)
    assert rate == 16000 and len(out) == 40 * 16000


def test_stereo_mp3_is_written_through_pyav_where_libsndfile_has_no_mp3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    formats = {k: v for k, v in soundfile.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(soundfile, "available_formats", lambda: formats)
    src = write_speech(tmp_path / "duet.wav", seconds=2.0, rate=40000, channels=2)
    written = convert_file(src, tmp_path / "duet.mp3", DSPVoiceChanger(pitch=2.0), channels="input")
    out, rate = read_audio(written)
    assert rate == 44100 and out.shape[1] == 2  # MP3 holds no 40 kHz: raised to the next rate it holds
    assert abs(len(out) / rate - 2.0) < 0.1 and np.abs(out).max() > 0.05
    assert no_leftovers(tmp_path)
