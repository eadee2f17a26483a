"""Batches: inputs from files, folders and globs; a corrupt file among good ones; progress; cancel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image

from workers.matting.batch import BatchReport, expand_inputs, run_batch
from workers.matting.compose import Background
from workers.matting.engine import MattingEngine
from workers.matting.options import MattingOptions
from workers.media.imageio import load_image
from workers.models.store import ModelStore


@pytest.fixture
def engine(tmp_path: Path) -> MattingEngine:
    store = ModelStore(tmp_path / "store")
    model = store.import_file(build_u2net_like(tmp_path / "tiny.onnx"), "matting", name="tiny")
    return MattingEngine(store, MattingOptions(model=model.id), device="cpu")


def _images(folder: Path, n: int, ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}{ext}"
        cv2.imwrite(str(path), subject_image(48, 64, seed=i)[0])
        paths.append(path)
    return paths


def test_expand_inputs(tmp_path: Path) -> None:
    pics = _images(tmp_path / "pics", 3)
    (tmp_path / "pics" / "notes.txt").write_text("x")
    (tmp_path / "pics" / "sub").mkdir()
    other = _images(tmp_path / "more", 2, ".jpg")
    (tmp_path / "empty").mkdir()
    files, unmatched = expand_inputs(
        [
            str(tmp_path / "pics"),
            str(pics[0]),  # already listed: kept once
            str(tmp_path / "more" / "*.jpg"),
            str(tmp_path / "nothing-*.png"),
            str(tmp_path / "absent.png"),
            str(tmp_path / "empty"),
        ]
    )
    assert files == [*pics, *other]
    assert unmatched == [str(tmp_path / "nothing-*.png"), str(tmp_path / "absent.png"), str(tmp_path / "empty")]


def test_batch_skips_a_corrupt_file_and_does_the_others(engine: MattingEngine, tmp_path: Path) -> None:
    good = _images(tmp_path / "in", 3)
    corrupt = tmp_path / "in" / "broken.png"
    corrupt.write_bytes(good[0].read_bytes()[:60])
    inputs = [good[0], corrupt, good[1], good[2]]
    calls: list[tuple[int, int]] = []
    report = run_batch(
        engine, inputs, tmp_path / "out", background=Background(), progress=lambda d, t: calls.append((d, t))
    )
    assert isinstance(report, BatchReport) and not report.cancelled
    assert [src for src, _ in report.done] == good
    assert [src for src, _ in report.failed] == [corrupt]
    assert "broken.png could not be read" in report.failed[0][1]
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    for i, (src, out) in enumerate(report.done):
        assert out.parent == tmp_path / "out" and out.name == f"{src.stem}-nobg.png"
        saved = load_image(out)
        assert saved.alpha is not None
        assert iou(saved.alpha, subject_image(48, 64, seed=i)[1]) > 0.9


def test_batch_same_stems_colour_background_and_mask_only(engine: MattingEngine, tmp_path: Path) -> None:
    a = _images(tmp_path / "one", 1)[0]
    b = _images(tmp_path / "two", 1, ".jpg")[0]  # same stem "img0"
    report = run_batch(engine, [a, b], tmp_path / "out", background=Background("color", (0, 255, 0)), fmt="jpg")
    outs = [out for _, out in report.done]
    assert len(set(outs)) == 2 and all(o.suffix == ".jpg" for o in outs)
    image = load_image(outs[0])
    assert image.alpha is None
    assert image.bgr[0, 0, 1] > 200 and image.bgr[0, 0, 2] < 60  # green behind the subject
    engine.set_param("mask_only", True)
    report = run_batch(engine, [a], tmp_path / "masks", background=Background())
    mask = load_image(report.done[0][1]).bgr[..., 0]
    assert iou(mask, subject_image(48, 64, seed=0)[1]) > 0.9


def test_file_alpha_is_kept(engine: MattingEngine, tmp_path: Path) -> None:
    bgr, _ = subject_image(48, 64)
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:, 32:] = 0  # the right half was already transparent
    path = tmp_path / "half.png"
    cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    report = run_batch(engine, [path], tmp_path / "out", background=Background())
    out = load_image(report.done[0][1])
    assert out.alpha is not None and out.alpha[:, 32:].max() == 0 and out.alpha[24, 28] > 240


def test_cancel_stops_between_images(engine: MattingEngine, tmp_path: Path) -> None:
    inputs = _images(tmp_path / "in", 5)
    checks: list[int] = []

    def cancel_on_third_check() -> bool:  # cancel() is asked before each image
        checks.append(1)
        return len(checks) >= 3

    report = run_batch(engine, inputs, tmp_path / "out", background=Background(), cancel=cancel_on_third_check)
    assert report.cancelled
    assert len(report.done) == 2 and not report.failed
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(out.name for _, out in report.done)  # no partial files


def test_empty_batch(engine: MattingEngine, tmp_path: Path) -> None:
    report = run_batch(engine, [], tmp_path / "out", background=Background())
    assert report.done == [] and report.failed == [] and not report.cancelled
