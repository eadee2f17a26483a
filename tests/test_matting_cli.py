"""``snowai-studio remove-bg``: outputs, exit codes, skipped files and one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image

from snowai_studio import cli
from workers.media.imageio import load_image
from workers.models.store import ModelStore


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        cv2.imwrite(str(inputs / f"photo{i}.jpg"), subject_image(60, 80, seed=i)[0], [cv2.IMWRITE_JPEG_QUALITY, 98])
    return {"in": inputs, "out": tmp_path / "out", "model": build_u2net_like(tmp_path / "tiny.onnx")}


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main(["remove-bg", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_to_png_with_alpha(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, setup["in"], "-o", setup["out"], "--model", setup["model"])
    assert code == 0, err
    assert "Saved 2 images" in out
    assert "remove-bg [" in err and "2/2" in err  # the progress bar
    assert "Traceback" not in err
    for i in range(2):
        saved = load_image(setup["out"] / f"photo{i}-nobg.png")
        assert saved.alpha is not None
        assert iou(saved.alpha, subject_image(60, 80, seed=i)[1]) > 0.9


def test_timings_say_how_long_loading_and_each_stage_took(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    code, _, err = _run(capsys, setup["in"] / "photo0.jpg", "-o", setup["out"], "--model", setup["model"],
                        "--timings")
    assert code == 0, err
    line = next(line for line in err.splitlines() if line.startswith("Timings (ms): "))
    figures = dict(re.findall(r"(\w+) ([\d.]+)", line.split(": ", 1)[1]))
    assert {"load", "pre", "model", "post"} <= figures.keys() and float(figures["model"]) > 0


def test_imported_model_glob_colour_and_jpeg(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(tmp_path / "store")
    model = store.import_file(setup["model"], "matting", name="Tiny one")
    code, _, err = _run(
        capsys,
        setup["in"] / "*.jpg",
        "-o",
        setup["out"],
        "--store",
        store.root,
        "--model",
        model.id,
        "--bg",
        "#0000ff",
        "--format",
        "jpg",
        "--post-process",
    )
    assert code == 0, err
    result = load_image(setup["out"] / "photo0-nobg.jpg")
    assert result.alpha is None
    assert result.bgr[2, 2, 0] > 200 and result.bgr[2, 2, 2] < 60  # blue behind the subject


def test_mask_only_webp(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys,
        setup["in"] / "photo1.jpg",
        "-o",
        setup["out"],
        "--model",
        setup["model"],
        "--mask-only",
        "--format",
        "webp",
    )
    assert code == 0, err
    mask = load_image(setup["out"] / "photo1-nobg.webp").bgr[..., 0]
    assert iou(mask, subject_image(60, 80, seed=1)[1]) > 0.9


def test_unreadable_input_exit_1_others_done(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (setup["in"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = _run(
        capsys, setup["in"], setup["in"] / "missing-*.png", "-o", setup["out"], "--model", setup["model"]
    )
    assert code == 1
    assert "Saved 2 images" in out
    assert "broken.png could not be read" in err
    assert "missing-*.png: no image matched" in err
    assert err.strip().splitlines()[-1] == "2 inputs could not be read; every other image was saved."
    assert sorted(p.name for p in setup["out"].iterdir()) == ["photo0-nobg.png", "photo1-nobg.png"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model", "u2net"], "not installed; open Models and click Download"),
        (["--model", "nowhere/model.onnx"], "does not exist"),
        (["--bg", "sparkly"], "is not understood"),
    ],
)
def test_failures_are_one_line(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    argv = [setup["in"], "-o", setup["out"], "--store", tmp_path / "empty-store", *extra]
    if "--model" not in extra:
        argv += ["--model", setup["model"]]
    code, _, err = _run(capsys, *argv)
    assert code == 1
    assert expected in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_no_image_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, tmp_path / "nothing*.png", "-o", tmp_path / "out")
    assert code == 1 and err.startswith("No image was found in")


def test_help_lists_remove_bg() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snowai_studio", "remove-bg", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for flag in ("--model", "--alpha-matting", "--bg", "--format", "--post-process", "--mask-only", "-o"):
        assert flag in proc.stdout
