"""``snowai-studio face-swap``: image and video targets, the notice, exit codes and one-line failures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from face_fixtures import ASTRONAUT_BOX, astronaut, install_face_models, second_face

from snowai_studio import cli
from workers.face_swap.mark import read_generated_label
from workers.models.store import ModelStore


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "source": tmp_path / "face.jpg",
        "target": tmp_path / "astronaut.png",
        "noface": tmp_path / "wall.png",
        "text": tmp_path / "notes.mp4",
        "video": tmp_path / "clip.mp4",
        "store": tmp_path / "models",
    }
    cv2.imwrite(str(paths["source"]), second_face(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(paths["target"]), astronaut())
    cv2.imwrite(str(paths["noface"]), np.full((100, 140, 3), 80, np.uint8))
    paths["text"].write_text("not a video at all\n")
    frame = cv2.resize(astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    with av.open(str(paths["video"]), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 192, 192, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        for i in range(6):
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        sine = (0.2 * np.sin(2 * np.pi * 330 * np.arange(int(0.6 * 48000)) / 48000)).astype(np.float32)
        for k in range(0, len(sine), 1024):
            af = av.AudioFrame.from_ndarray(sine[None, k : k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = 48000, k
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return paths


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main(["face-swap", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def face_changed(path: Path) -> float:
    x1, y1, x2, y2 = ASTRONAUT_BOX
    out = cv2.imread(str(path))
    return float(np.abs(out[y1:y2, x1:x2].astype(int) - astronaut()[y1:y2, x1:x2].astype(int)).mean())


def test_image_target_with_notice_once_then_plain(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["target"].with_name("result.jpg")
    code, stdout, stderr = run(
        capsys, "--source", files["source"], "--target", files["target"], "-o", out, "--store", files["store"]
    )
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert "consent" in stderr and "notice is shown once" in stderr
    assert "Swapped 1 of 1 face (classic engine)" in stderr
    assert read_generated_label(out) is not None
    assert face_changed(out) > 4

    folder = files["target"].parent / "outputs"
    folder.mkdir()
    code, stdout, stderr = run(
        capsys,
        "--source",
        files["source"],
        "--source",
        files["source"],
        "--target",
        files["target"],
        "-o",
        folder,
        "--engine",
        "classic",
        "--mouth-mask",
        "--many-faces",
        "--no-mark",
        "--store",
        files["store"],
    )
    assert code == 0, stderr
    assert "consent" not in stderr  # the notice is printed on the first run only
    saved = Path(stdout.strip())
    assert saved == folder / "astronaut-swapped.png" and saved.is_file()
    assert read_generated_label(saved) is None
    y, x = int(512 * 0.9), int(512 * 0.6)
    corner = np.abs(cv2.imread(str(saved))[y:, x:].astype(int) - astronaut()[y:, x:].astype(int))
    assert corner.mean() < 2  # no visible mark either


def test_video_target_keeps_rate_audio_and_tags(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["video"].with_name("clip-swapped.mp4")
    code, stdout, stderr = run(
        capsys, "--source", files["source"], "--target", files["video"], "-o", out, "--store", files["store"]
    )
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert "face-swap [" in stderr and "6/6" in stderr  # the progress bar
    with av.open(str(out)) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}
        assert c.streams.video[0].average_rate == Fraction(10)
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
        frames = list(c.decode(video=0))
    assert len(frames) == 6 and tags["ai_generated"] == "true"
    from workers.provenance import read_credentials

    credentials = read_credentials(out)  # signed Content Credentials besides the container tags
    assert credentials is not None and credentials.ai_generated
    assert credentials.actions[-1]["parameters"]["model"] == "classic"


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("noface", "No face was found in wall.png"),
        ("unreadable", "notes.mp4 could not be read as an image or a video"),
        ("missing_target", "was not found"),
        ("missing_source", "The source photo"),
        ("same", "is the target itself"),
        ("insightface", "--engine insightface needs"),
        ("enhance", "--enhance needs a face enhancer"),
        ("suffix", "save the swapped image as PNG, JPEG or WebP"),
    ],
)
def test_failures_are_one_sentence_and_exit_1(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], case: str, words: str
) -> None:
    source, target, out = files["source"], files["target"], files["target"].with_name("out.png")
    extra: list[object] = []
    if case == "noface":
        source = files["noface"]
    elif case == "unreadable":
        target = files["text"]
    elif case == "missing_target":
        target = target.with_name("gone.png")
    elif case == "missing_source":
        source = source.with_name("gone.jpg")
    elif case == "same":
        out = target
    elif case == "insightface":
        extra = ["--engine", "insightface"]
    elif case == "enhance":
        extra = ["--enhance"]
    elif case == "suffix":
        out = out.with_suffix(".gif")
    code, stdout, stderr = run(
        capsys, "--source", source, "--target", target, "-o", out, "--store", files["store"], *extra
    )
    assert code == 1
    assert stdout == ""
    last = stderr.strip().splitlines()[-1]
    assert words in last, stderr
    assert "Traceback" not in stderr
    if case in ("insightface", "enhance"):
        assert "snowai-studio models download" in last
    if case != "same":
        assert not out.exists()


def test_insightface_engine_and_enhancer_with_installed_models(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: ModelStore = install_face_models(tmp_path / "face-models")
    # The fixture models carry their own checksums: hand the command the store that knows them.
    monkeypatch.setattr("workers.face_swap.cli._store", lambda args: store)
    out = tmp_path / "insight.png"
    code, stdout, stderr = run(
        capsys,
        "--source",
        files["target"],
        "--target",
        files["target"],
        "-o",
        out,
        "--engine",
        "insightface",
        "--enhance",
        "--store",
        store.root,
    )
    assert code == 0, stderr
    assert "(insightface engine)" in stderr
    assert Path(stdout.strip()) == out and read_generated_label(out)
