"""Video in and out (workers.media.video), on small videos made here."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from workers.errors import Cancelled, UserError
from workers.media.video import (
    VideoRecorder,
    flatten_on_black,
    output_format,
    probe_video,
    process_video,
    upright,
)

W, H, N, FPS = 64, 48, 15, 15


def source_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A BGR frame: a dark background, a bright block moving right, a marker in the top-left corner."""
    img = np.full((height, width, 3), 30, np.uint8)
    x = 8 + 2 * i
    img[12:36, x : x + 20] = (220, 200, 180)
    img[0:8, 0:8] = (0, 0, 255)  # red marker: shows which way the frame was turned
    return img


def make_video(
    path: Path,
    *,
    frames: int = N,
    fps: int = FPS,
    audio: str | None = None,
    rotation: int = 0,
    pts: list[int] | None = None,
    width: int = W,
    height: int = H,
) -> Path:
    """Write a small test video; ``audio`` names an audio encoder ("aac", "libopus") for a 440 Hz sine
    as long as the video; ``rotation`` is written as a display matrix (counter-clockwise degrees);
    ``pts`` gives frame times in 1/1000 s for a variable frame rate."""
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if pts is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            vs.set_display_rotation(rotation)
        aus = None
        if audio is not None:
            rate = 48000
            aus = out.add_stream(audio, rate=rate)
            aus.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(source_frame(i, width, height), format="bgr24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if aus is not None:
            seconds = frames / fps if pts is None else (pts[-1] + 1000 / fps) / 1000
            t = np.arange(int(seconds * 48000)) / 48000
            sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(sine), 960):
                block = sine[None, k : k + 960]
                af = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


def read_video(path: Path) -> dict:
    """Frames (BGR), frame times (s), fps, audio codec and decoded audio seconds of a file."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(vs):
            frames.append(f.to_ndarray(format="bgr24"))
            times.append(float(f.pts * f.time_base))
        info = {"frames": frames, "times": times, "fps": float(vs.average_rate), "codec": vs.codec_context.name}
        info["rotation"] = 0
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(a))
            info["audio_codec"] = a.codec_context.name
            info["audio_seconds"] = samples / a.codec_context.sample_rate
        else:
            info["audio_codec"] = None
    return info


def read_vp9_alpha(path: Path) -> list[np.ndarray]:
    """BGRA frames of a VP9 WebM: FFmpeg's own vp9 decoder drops the alpha layer, libvpx's keeps it."""
    out = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        dec = av.CodecContext.create("libvpx-vp9", "r")
        if vs.codec_context.extradata:
            dec.extradata = vs.codec_context.extradata
        for packet in c.demux(vs):
            if packet.size == 0:
                continue
            out.extend(f.to_ndarray(format="bgra") for f in dec.decode(packet))
        with contextlib.suppress(av.EOFError):
            out.extend(f.to_ndarray(format="bgra") for f in dec.decode(None))
    return out


def alpha_pattern(height: int, width: int, i: int) -> np.ndarray:
    """Opaque left half, transparent right half, a half-transparent band that moves with ``i``."""
    a = np.zeros((height, width), np.uint8)
    a[:, : width // 2] = 255
    a[16:32, (2 * i) % width :][:, :16] = 128
    return a


def with_alpha(bgr: np.ndarray, counter: list[int]) -> np.ndarray:
    i = counter[0]
    counter[0] += 1
    bgra = np.dstack([bgr, alpha_pattern(bgr.shape[0], bgr.shape[1], i)])
    return bgra


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", audio="aac")


# ---- probing ----------------------------------------------------------------------------------


def test_probe_reads_size_rate_frames_and_audio(clip: Path) -> None:
    info = probe_video(clip)
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(FPS)
    assert info.frames == N
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.rotation == 0


def test_probe_without_audio_and_estimated_frame_count(tmp_path: Path) -> None:
    # WebM stores no frame count: it is estimated from the duration.
    info = probe_video(make_video(tmp_path / "v.webm"))
    assert not info.has_audio
    assert abs(info.frames - N) <= 1
    assert info.codec == "vp9"


def test_probe_rotation_swaps_the_displayed_size(tmp_path: Path) -> None:
    info = probe_video(make_video(tmp_path / "phone.mp4", rotation=90))  # 90° counter-clockwise
    assert info.rotation == 270  # i.e. 270° clockwise
    assert (info.width, info.height) == (H, W)
    assert probe_video(make_video(tmp_path / "b.mp4", rotation=-90)).rotation == 90


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.mp4", b"", "empty"),
        ("noise.mp4", bytes(range(256)) * 40, "could not be read"),
    ],
)
def test_unreadable_files_give_a_sentence(tmp_path: Path, name: str, content: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=words) as err:
        probe_video(path)
    assert str(err.value).endswith(".")
    with pytest.raises(UserError):
        process_video(path, tmp_path / "out.mp4", lambda f: f)
    assert not (tmp_path / "out.mp4").exists()


def test_truncated_and_missing_files_give_a_sentence(clip: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) comes last: half a file is unreadable
    with pytest.raises(UserError, match="damaged or incomplete"):
        probe_video(cut)
    with pytest.raises(UserError, match="not found"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(UserError, match="folder"):
        probe_video(tmp_path)


def test_unknown_output_suffix_is_refused(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\.webm"):
        process_video(clip, tmp_path / "out.gif", lambda f: f)
    assert output_format("x.MOV").alpha


# ---- converting -------------------------------------------------------------------------------


def test_webm_keeps_alpha_frames_rate_and_reencodes_aac_to_opus(clip: Path, tmp_path: Path) -> None:
    counter = [0]
    calls: list[tuple[int, int]] = []
    out = process_video(
        clip, tmp_path / "out.webm", lambda f: with_alpha(f, counter), progress=lambda d, t: calls.append((d, t))
    )
    assert out == tmp_path / "out.webm" and out.exists()
    got = read_video(out)
    assert len(got["frames"]) == N
    assert got["fps"] == pytest.approx(FPS, rel=0.01)
    assert got["codec"] == "vp9"
    assert got["audio_codec"] == "opus"
    assert got["audio_seconds"] == pytest.approx(1.0, abs=0.08)
    # The alpha plane survives VP9 (lossy): read back with the libvpx decoder.
    rgba = read_vp9_alpha(out)
    assert len(rgba) == N
    for i in (0, 7, 14):
        want = alpha_pattern(H, W, i).astype(int)
        diff = np.abs(rgba[i][:, :, 3].astype(int) - want)
        assert diff.mean() < 6, diff.mean()
        assert rgba[i][40, 4, 3] > 240 and rgba[i][4, W - 4, 3] < 15
    assert calls[-1] == (N, N)
    assert [d for d, _ in calls] == list(range(1, N + 1))
    assert list(tmp_path.glob(".*part*")) == []


def test_mov_is_prores_4444_with_alpha_and_copies_aac(clip: Path, tmp_path: Path) -> None:
    counter = [0]
    sources: list[np.ndarray] = []

    def fn(bgr: np.ndarray) -> np.ndarray:
        sources.append(bgr)
        return with_alpha(bgr, counter)

    out = process_video(clip, tmp_path / "out.mov", fn)
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        assert vs.codec_context.name == "prores"
        assert vs.codec_context.profile == "4444"
        decoded = [f.to_ndarray(format="bgra") for f in c.decode(vs)]
    assert len(decoded) == N
    for i, frame in enumerate(decoded):
        assert np.abs(frame[:, :, 3].astype(int) - alpha_pattern(H, W, i).astype(int)).max() <= 2
        opaque = alpha_pattern(H, W, i) == 255
        colour = np.abs(frame[:, :, :3].astype(int) - sources[i].astype(int))[opaque]
        assert colour.mean() < 3
    got = read_video(out)
    assert got["fps"] == pytest.approx(FPS, rel=0.01)
    assert got["audio_codec"] == "aac"  # copied, not re-encoded
    assert got["audio_seconds"] == pytest.approx(1.0, abs=0.08)


def test_mp4_flattens_alpha_on_black(clip: Path, tmp_path: Path) -> None:
    counter = [0]
    out = process_video(clip, tmp_path / "out.mp4", lambda f: with_alpha(f, counter))
    got = read_video(out)
    assert got["codec"] == "h264"
    assert len(got["frames"]) == N
    assert got["fps"] == pytest.approx(FPS, rel=0.01)
    assert got["audio_codec"] == "aac"
    frame = got["frames"][3]
    assert frame[:, W // 2 + 4 :].max() < 20  # transparent half: black
    assert frame[4, 4, 2] > 200  # opaque corner marker keeps its red


def test_opus_is_copied_into_webm_and_reencoded_for_mp4(tmp_path: Path) -> None:
    src = make_video(tmp_path / "opus.webm", audio="libopus")
    webm = read_video(process_video(src, tmp_path / "a.webm", lambda f: f))
    assert webm["audio_codec"] == "opus" and webm["audio_seconds"] == pytest.approx(1.0, abs=0.08)
    mp4 = read_video(process_video(src, tmp_path / "a.mp4", lambda f: f))
    assert mp4["audio_codec"] == "aac" and mp4["audio_seconds"] == pytest.approx(1.0, abs=0.08)
    assert len(mp4["frames"]) == N


def test_bgr_frames_become_opaque_in_alpha_formats(tmp_path: Path) -> None:
    src = make_video(tmp_path / "plain.mp4")
    out = process_video(src, tmp_path / "o.mov", lambda f: 255 - f)
    with av.open(str(out)) as c:
        frame = next(iter(c.decode(video=0))).to_ndarray(format="bgra")
    assert frame[:, :, 3].min() >= 254
    assert frame[4, 4, 2] < 40  # the red marker, inverted


def test_rotation_is_applied_before_the_frame_function(tmp_path: Path) -> None:
    src = make_video(tmp_path / "phone.mp4", rotation=90)  # the player turns it 90° counter-clockwise
    seen: list[np.ndarray] = []
    out = process_video(src, tmp_path / "o.mp4", lambda f: seen.append(f) or f)
    assert seen[0].shape == (W, H, 3)
    # The top-left marker ends up bottom-left after a counter-clockwise quarter turn.
    assert seen[0][-4, 4, 2] > 200 and seen[0][4, 4, 2] < 100
    got = read_video(out)
    assert got["frames"][0].shape == (W, H, 3)
    assert probe_video(out).rotation == 0  # frames are upright; no rotation left to apply
    assert np.array_equal(upright(np.arange(4).reshape(2, 2, 1), 90)[:, :, 0], [[2, 0], [3, 1]])


def test_variable_frame_rate_keeps_frame_times(tmp_path: Path) -> None:
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]
    src = make_video(tmp_path / "vfr.mp4", frames=len(pts), pts=pts, audio="aac")
    for suffix in (".mp4", ".webm", ".mov"):
        got = read_video(process_video(src, tmp_path / f"o{suffix}", lambda f: f))
        times = np.array(got["times"]) - got["times"][0]
        assert np.allclose(times, np.array(pts) / 1000, atol=0.002), (suffix, times)


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    src = tmp_path / "odd.mkv"  # lossless FFV1 takes odd sizes; the 4:2:0 outputs need even ones
    with av.open(str(src), "w") as out:
        vs = out.add_stream("ffv1", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 63, 47, "bgr0"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(source_frame(i, 63, 47), format="bgr24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    assert (probe_video(src).width, probe_video(src).height) == (63, 47)
    seen: list[tuple[int, ...]] = []
    for suffix in (".mp4", ".webm", ".mov"):
        out_path = process_video(src, tmp_path / f"o{suffix}", lambda f: seen.append(f.shape) or f)
        info = probe_video(out_path)
        assert (info.width, info.height, info.frames) == (64, 48, 3)
    assert set(seen) == {(47, 63, 3)}


def test_cancel_leaves_no_file(clip: Path, tmp_path: Path) -> None:
    seen = [0]

    def fn(f: np.ndarray) -> np.ndarray:
        seen[0] += 1
        return f

    for suffix in (".webm", ".mov", ".mp4"):
        seen[0] = 0
        with pytest.raises(Cancelled):
            process_video(clip, tmp_path / f"out{suffix}", fn, cancel=lambda: seen[0] >= 5)
        assert seen[0] == 5
        assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_frame_function_errors_leave_no_file(clip: Path, tmp_path: Path) -> None:
    def boom(f: np.ndarray) -> np.ndarray:
        raise UserError("The model failed.")

    with pytest.raises(UserError, match="model failed"):
        process_video(clip, tmp_path / "out.webm", boom)
    with pytest.raises(ValueError, match="keep the size"):
        process_video(clip, tmp_path / "out.mp4", lambda f: f[:10])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm"])
def test_metadata_is_written_on_the_container(clip: Path, tmp_path: Path, suffix: str) -> None:
    tags = {"comment": "Made with a test", "ai_generated": "true"}
    out = process_video(clip, tmp_path / f"tagged{suffix}", lambda f: f, metadata=tags)
    with av.open(str(out)) as c:
        found = {k.lower(): v for k, v in c.metadata.items()}
    assert found["comment"] == "Made with a test"
    assert found["ai_generated"] == "true"
    got = read_video(out)
    assert len(got["frames"]) == N and got["fps"] == pytest.approx(FPS)
    assert got["audio_seconds"] == pytest.approx(1.0, abs=0.08)
    plain = process_video(clip, tmp_path / f"plain{suffix}", lambda f: f)
    with av.open(str(plain)) as c:
        assert "ai_generated" not in {k.lower() for k in c.metadata}


def test_output_may_not_overwrite_the_source(clip: Path) -> None:
    with pytest.raises(UserError, match="source"):
        process_video(clip, clip, lambda f: f)
    assert probe_video(clip).frames == N


def test_flatten_on_black() -> None:
    bgra = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    assert flatten_on_black(bgra).tolist() == [[[200, 100, 50], [0, 0, 0], [100, 50, 25]]]


# ---- recording --------------------------------------------------------------------------------


def test_recorder_times_frames_by_capture_time(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "live.mp4"
    rec = VideoRecorder(path, W, H, fps=30)
    t0 = 1000.0
    for i in range(12):
        rec.write(source_frame(i), t0 + i * 0.1)  # the stream ran at 10 fps, not 30
        assert not path.exists()  # only a temporary file until close
    assert rec.close() == path
    got = read_video(path)
    assert len(got["frames"]) == 12
    times = np.array(got["times"]) - got["times"][0]
    assert np.allclose(times, np.arange(12) * 0.1, atol=0.002)
    assert list(path.parent.glob(".*part*")) == []


def test_recorder_scales_frames_and_spaces_them_at_fps_without_times(tmp_path: Path) -> None:
    path = tmp_path / "r.mp4"
    with VideoRecorder(path, 33, 25, fps=20) as rec:  # odd size: padded to even
        for i in range(6):
            rec.write(source_frame(i))  # 64x48 frames, scaled to 33x25
        rec.write(np.dstack([source_frame(6), np.zeros((H, W), np.uint8)]))  # BGRA: flattened
    got = read_video(path)
    assert len(got["frames"]) == 7
    assert got["frames"][0].shape[:2] == (26, 34)
    assert np.allclose(np.diff(got["times"]), 0.05, atol=0.002)
    assert got["frames"][6].max() < 20


def test_recorder_abort_and_empty_leave_nothing(tmp_path: Path) -> None:
    rec = VideoRecorder(tmp_path / "a.mp4", W, H, 30)
    rec.write(source_frame(0))
    rec.abort()
    empty = VideoRecorder(tmp_path / "b.mp4", W, H, 30)
    with pytest.raises(UserError, match="Nothing was recorded"):
        empty.close()
    with pytest.raises(RuntimeError):
        empty.write(source_frame(0))
    assert list(tmp_path.iterdir()) == []
