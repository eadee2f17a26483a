"""The checked 8-bit copy of large background-removal models (workers/matting/int8.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from matting_fixtures import build_u2net_like, iou, subject_image

from workers.matting import int8
from workers.matting.engine import MattingEngine
from workers.matting.options import INT8_ENV, MattingOptions, coerce_option
from workers.models.store import ModelStore
from workers.paths import wheel_members_dir


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return int8.sample_photos()


@pytest.fixture
def large_model(tmp_path: Path) -> Path:
    # 512 px: large enough to be tried; 16-channel convolutions to quantize, one-channel ones kept.
    return build_u2net_like(tmp_path / "large.onnx", size=512, compute=2)


def _prepare(model: Path, store_root: Path) -> int8.Prepare:
    engine = MattingEngine(ModelStore(store_root), MattingOptions(model=str(model)), threads=2)
    return engine._current().fresh_input


def test_sample_photos_calibrate_and_check_apart(photos: dict[str, np.ndarray]) -> None:
    calibrate, check = int8.calibration_and_check(photos)
    assert len(calibrate) == 2 * len(int8.CALIBRATION_PHOTOS)
    assert len(check) == len(int8.CHECK_PHOTOS) + len(int8.CALIBRATION_PHOTOS)
    for picture in calibrate + check:
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    # The crops are other pictures than the calibration ones, not the same shape.
    assert {p.shape for p in check[len(int8.CHECK_PHOTOS) :]}.isdisjoint({p.shape for p in calibrate})


def test_a_copy_that_holds_is_written_with_its_verdict(tmp_path: Path, large_model: Path, photos) -> None:
    dest = tmp_path / "copies" / "large.onnx"
    verdict = int8.build_copy(large_model, dest, _prepare(large_model, tmp_path / "s"), photos=photos, min_speedup=0)
    assert verdict.used, verdict.reason
    assert verdict.share in int8.SHARES and verdict.tries == int8.SHARES.index(verdict.share) + 1
    assert len(verdict.ious) == len(verdict.required) == 6
    assert all(iou >= need for iou, need in zip(verdict.ious, verdict.required, strict=True))
    assert verdict.iou_mean >= 0.99 and verdict.iou_min >= 0.95
    assert 0 <= verdict.alpha_diff_mean <= verdict.alpha_diff_max < 0.01
    assert verdict.float_ms > 0 and verdict.int8_ms > 0
    import onnx

    ops = {node.op_type for node in onnx.load(str(dest)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    saved = json.loads(dest.with_suffix(".json").read_text())
    assert saved["used"] is True and saved["recipe"] == int8.RECIPE
    assert int8.read_verdict(dest.with_suffix(".json")) == verdict


def test_a_slower_copy_is_not_kept(tmp_path: Path, large_model: Path, photos) -> None:
    dest = tmp_path / "large-int8.onnx"
    verdict = int8.build_copy(
        large_model, dest, _prepare(large_model, tmp_path / "s"), photos=photos, min_speedup=1000.0
    )
    assert not verdict.used and "as fast" in verdict.reason
    assert not dest.exists() and dest.with_suffix(".json").exists()


def test_u2net_lite_holds_only_with_its_heaviest_convolutions_in_8_bits(tmp_path: Path, photos) -> None:
    """The shipped U²-Net lite falls apart with every convolution in 8 bits (IoU 0.29 at worst); the
    steps go on to fewer, heavier convolutions until the masks match the model's."""
    model = next(wheel_members_dir().rglob("u2netp.onnx"))
    dest = tmp_path / "u2netp-int8.onnx"
    verdict = int8.build_copy(model, dest, _prepare(model, tmp_path / "s"), photos=photos, min_speedup=0)
    assert verdict.used, verdict.reason
    assert verdict.tries >= 2 and verdict.share in int8.SHARES[1:]
    assert [step["share"] for step in verdict.steps] == list(int8.SHARES[: verdict.tries])
    assert min(verdict.steps[0]["ious"]) < 0.9  # every convolution in 8 bits: the masks fell apart
    assert all(iou >= need for iou, need in zip(verdict.ious, verdict.required, strict=True)), verdict
    assert verdict.iou_mean >= 0.98 and verdict.alpha_diff_mean < 0.01
    import onnx

    nodes = onnx.load(str(dest)).graph.node
    dequantized = {out for n in nodes if n.op_type == "DequantizeLinear" for out in n.output}
    convs = [n for n in nodes if n.op_type == "Conv"]
    quantized = [n for n in convs if n.input[0] in dequantized]
    assert 0 < len(quantized) < len(convs)  # some convolutions in 8 bits, the rest float32
    saved = json.loads(dest.with_suffix(".json").read_text())
    assert saved["share"] == verdict.share and saved["required"] == verdict.required


def test_the_masks_must_match_as_closely_as_the_model_matches_itself() -> None:
    square = np.zeros((100, 100), np.float32)
    square[20:80, 20:80] = 1.0
    moved = np.roll(square, 1, axis=1)  # one column off: IoU 60/61 per row
    steady, unsure = int8.required_ious([square, square], [square, moved])
    assert steady == int8.EQUAL_IOU  # where noise does not move the model's mask: 0.99
    own = int8.mask_iou(square > 0.5, moved > 0.5)
    assert own < int8.EQUAL_IOU and unsure == pytest.approx(1 - int8.NOISE_FACTOR * (1 - own), abs=1e-4)
    nothing = np.zeros_like(square)
    assert int8.required_ious([square], [nothing]) == [int8.MIN_IOU]  # a floor where the model is lost
    noisy = int8._noisy(np.full((8, 8, 3), 128, np.uint8), seed=1)
    assert set(np.unique(noisy)) <= {127, 128, 129} and int8._noisy(noisy, 1).dtype == np.uint8


def test_the_heaviest_convolutions_are_chosen_first() -> None:
    costs = {"a": 50.0, "b": 30.0, "c": 15.0, "d": 5.0}
    assert int8.heaviest(costs, 1.0) == {"a", "b", "c", "d"}
    assert int8.heaviest(costs, 0.75) == {"a", "b"}
    assert int8.heaviest(costs, 0.6) == {"a", "b"}
    assert int8.heaviest(costs, 0.4) == {"a"}


def test_float16_models_are_refused_in_a_sentence(tmp_path: Path, photos) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w16", TensorProto.FLOAT16, (1, 3, 1, 1), np.ones(3, np.float16).view(np.uint16))
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT),
            helper.make_node("Conv", ["input", "w"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["mask"]),
        ],
        "half",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 512, 512])],
        initializer=[weight],
    )
    model = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    verdict = int8.build_copy(model, tmp_path / "half-int8.onnx", _prepare(model, tmp_path / "s"), photos=photos)
    assert not verdict.used and "float16" in verdict.reason


def test_the_engine_switches_to_the_copy_and_finds_it_next_time(
    tmp_path: Path, large_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8, "MIN_SPEEDUP", 0.0)
    store = ModelStore(tmp_path / "store")
    image, _ = subject_image(300, 400, seed=3)
    engine = MattingEngine(store, MattingOptions(model=str(large_model), int8=True), threads=2)
    first = engine.predict_mask(image)
    assert engine.precision == "float32"  # the float32 model serves while the copy is made
    engine.wait_int8()
    verdict = engine.int8_verdict()
    assert verdict is not None and verdict.used, verdict
    second = engine.predict_mask(image)
    assert engine.precision == "int8"
    assert engine.model_label == "large.onnx (8-bit copy)"  # the result line names it
    assert iou(first, second) >= 0.99
    engine.set_param("int8", False)
    engine.predict_mask(image)
    assert engine.precision == "float32"
    engine.close()

    # A new engine (the studio started again) loads the copy at once: nothing is made again.
    monkeypatch.setattr(int8, "build_copy", lambda *a, **k: pytest.fail("the copy was made again"))
    again = MattingEngine(store, MattingOptions(model=str(large_model), int8=True), threads=2)
    again.predict_mask(image)
    assert again.precision == "int8"
    again.close()


def test_small_models_and_the_default_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8, "build_copy", lambda *a, **k: pytest.fail("a copy was made"))
    small = build_u2net_like(tmp_path / "small.onnx", size=256)
    image, _ = subject_image(240, 320, seed=1)
    for options in (MattingOptions(model=str(small), int8=True), MattingOptions(model=str(tmp_path / "small.onnx"))):
        engine = MattingEngine(ModelStore(tmp_path / "store"), options, threads=2)
        engine.predict_mask(image)
        engine.wait_int8()
        assert engine.precision == "float32" and engine.int8_verdict() is None
        engine.close()
    assert MattingOptions().int8 is False  # the tests' default (SNOWAI_INT8_COPIES=0)
    assert coerce_option("int8", "on") is True


def test_copies_are_on_by_default_unless_the_environment_says_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INT8_ENV, raising=False)
    assert MattingOptions().int8 is True
    for off in ("0", "off", "False"):
        monkeypatch.setenv(INT8_ENV, off)
        assert MattingOptions().int8 is False
    assert MattingOptions(int8=True).int8 is True


def test_engines_of_one_store_share_one_copy_in_the_making(
    tmp_path: Path, large_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image page, live and the local API each have an engine: the copy is made once for all."""
    monkeypatch.setattr(int8, "MIN_SPEEDUP", 0.0)
    made: list[Path] = []
    real = int8.build_copy

    def counted(model: Path, *args, **kwargs):
        made.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(int8, "build_copy", counted)
    store = ModelStore(tmp_path / "store")
    image, _ = subject_image(240, 320, seed=5)
    first, second = (MattingEngine(store, MattingOptions(model=str(large_model), int8=True), threads=2) for _ in "ab")
    first.predict_mask(image)
    second.predict_mask(image)
    first.close()  # one engine closing does not stop the copy the other still waits for
    second.wait_int8()
    second.predict_mask(image)
    assert made == [large_model] and second.precision == "int8"
    second.close()
    third = MattingEngine(store, MattingOptions(model=str(large_model), int8=True), threads=2)
    third.predict_mask(image)
    assert third.precision == "int8" and made == [large_model]
    third.close()
    third.close()  # closing twice gives the copies back once


def test_a_failing_copy_leaves_the_float32_model_working(
    tmp_path: Path, large_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(int8, "build_copy", full_disk)
    engine = MattingEngine(ModelStore(tmp_path / "store"), MattingOptions(model=str(large_model), int8=True), threads=2)
    image, _ = subject_image(240, 320, seed=2)
    engine.predict_mask(image)
    engine.wait_int8()
    verdict = engine.int8_verdict()
    assert verdict is not None and not verdict.used and "could not be made" in verdict.reason
    assert engine.predict_mask(image).shape == image.shape[:2]
    assert engine.precision == "float32"
    engine.close()


def test_the_cli_makes_the_copy_first_and_says_what_it_uses(
    tmp_path: Path, large_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from snowai_studio import cli

    monkeypatch.setattr(int8, "MIN_SPEEDUP", 0.0)
    photo = tmp_path / "in" / "photo.jpg"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), subject_image(240, 320, seed=4)[0])
    small = build_u2net_like(tmp_path / "small.onnx", size=256)
    for model, said in ((large_model, "Using the 8-bit copy: "), (small, "too small to gain")):
        code = cli.main(["remove-bg", str(photo), "-o", str(tmp_path / "out"), "--model", str(model), "--int8"])
        captured = capsys.readouterr()
        err = captured.err
        assert code == 0, err
        assert said in err
        assert ("(8-bit copy)" in captured.out) == (model == large_model), captured.out
        assert (tmp_path / "out" / "photo-nobg.png").is_file()


def test_the_cli_uses_a_copy_made_earlier_and_makes_none_unasked(
    tmp_path: Path, large_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from snowai_studio import cli
    from workers.settings import Settings

    monkeypatch.setattr(int8, "MIN_SPEEDUP", 0.0)
    monkeypatch.delenv(INT8_ENV, raising=False)  # the studio's own default: copies on
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), subject_image(240, 320, seed=6)[0])
    args = ["remove-bg", str(photo), "-o", str(tmp_path / "out"), "--model", str(large_model)]
    real = int8.build_copy
    monkeypatch.setattr(int8, "build_copy", lambda *a, **k: pytest.fail("a short run made a copy"))
    assert cli.main(args) == 0
    assert "(8-bit copy)" not in capsys.readouterr().out  # none made yet: the model as it is
    monkeypatch.setattr(int8, "build_copy", real)
    studio = MattingEngine(ModelStore(Settings.load().models_dir()), MattingOptions(model=str(large_model)))
    studio.predict_mask(subject_image(240, 320, seed=6)[0])  # the studio makes the copy in the background
    studio.wait_int8()
    studio.close()
    assert cli.main(args) == 0
    assert "(8-bit copy)" in capsys.readouterr().out
    assert cli.main([*args, "--no-int8"]) == 0
    assert "(8-bit copy)" not in capsys.readouterr().out


def test_a_cancelled_copy_leaves_nothing_and_is_made_next_time(tmp_path: Path, large_model: Path, photos) -> None:
    dest = tmp_path / "copies" / "large.onnx"
    prepare = _prepare(large_model, tmp_path / "s")
    verdict = int8.build_copy(large_model, dest, prepare, photos=photos, cancelled=lambda: True, min_speedup=0)
    assert not verdict.used and verdict.reason == "cancelled"
    assert not dest.exists() and not dest.with_suffix(".json").exists()
    assert int8.build_copy(large_model, dest, prepare, photos=photos, min_speedup=0).used


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are set on Linux")
def test_copies_are_made_at_low_priority() -> None:
    """The copy is made while the model serves pictures or a live camera: its thread (and the
    onnxruntime threads it starts) yields the CPU."""
    import threading

    seen: dict[str, int] = {}

    def job() -> None:
        int8._lower_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert seen["nice"] > os.getpriority(os.PRIO_PROCESS, 0)


EXIT_WHILE_COPYING = """
import sys, threading
from pathlib import Path

import onnxruntime

from workers.matting.engine import MattingEngine
from workers.matting.options import MattingOptions
from workers.models.store import ModelStore

inside = threading.Event()
run = onnxruntime.InferenceSession.run


def watched_run(self, *args, **kwargs):
    if threading.current_thread().name == "matting-int8":
        inside.set()  # the copy's thread is about to run a model in onnxruntime
    return run(self, *args, **kwargs)


onnxruntime.InferenceSession.run = watched_run
engine = MattingEngine(ModelStore(Path(sys.argv[1])), MattingOptions(int8=True))
engine.load()
assert inside.wait(300), "the copy never ran the model"
print("leaving while the copy is made", flush=True)
"""


def test_leaving_while_a_copy_is_made_ends_the_process_cleanly(tmp_path: Path) -> None:
    """The copy's thread stops at its next picture when the program ends; a daemon thread ended by the
    interpreter inside onnxruntime aborted the process ("terminate called without an active exception")."""
    import subprocess
    import sys

    env = {**os.environ, INT8_ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_COPYING, str(tmp_path / "models")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "leaving while the copy is made" in done.stdout
    assert "terminate called" not in done.stderr
    assert not list((tmp_path / "models").rglob("*.json.tmp"))
