"""An 8-bit copy of a large background-removal model, for those who want speed over exactness.

IS-Net and its kin look at 1024x1024 pixels; on a CPU their float32 convolutions take most of a
cut-out's time. onnxruntime's static int8 quantization (QDQ, weights per channel, activations
calibrated by their range) runs the same model about three times faster on CPUs with 8-bit dot
products. Its masks are not the float32 model's: on pictures with a clear subject they match closely
(IS-Net: IoU 0.993 on average, 0.975 at worst, on 22 composites, and as close to the true masks as
the float32 model's); where the model itself is unsure (a cat's face filling the frame: most of the
mask between 0.2 and 0.8) the soft masks still look alike (mean difference 0.02) but the cut at 0.5
moves (IoU 0.85); and it does not suit every model: U²-Net lite's masks fall apart (IoU 0.29 at
worst on the check pictures, soft masks 0.12 apart on average). So the copy is asked for
(MattingOptions.int8, off by default) and checked before it is used:

1. the model is calibrated on four of scikit-image's sample photos and their mirror images (the
   convolutions that draw the one-channel masks stay in float32);
2. the copy and the original then cut out six other pictures (two other photos and crops of the
   first ones); the copy is kept only when its masks stay near the original's (IoU at 0.5 at least
   ``MIN_MEAN_IOU`` on average and ``MIN_IOU`` on each picture: a floor that catches a broken copy,
   not a promise of equal masks) and it is at least ``MIN_SPEEDUP`` times faster. The verdict
   (``MattingEngine.int8_verdict``) gives the measured speed and IoU.

The verdict, kept or not, is written beside the copy (``<key>.json``) so the check runs once per
model file; a new recipe or a changed file makes a new key. Only models whose input side is at
least ``MIN_SIDE`` pixels are tried: on the small ones the gain is small and the risk large.
Copies live in the model store's folder of converted files (shown as caches, made again when needed).

onnxruntime.quantization and onnx are imported only when a copy is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Bumped whenever the way copies are made or checked changes: older copies are then made again.
RECIPE = 1
FOLDER = "matting-int8"
MIN_SIDE = 512
MIN_MEAN_IOU = 0.95
MIN_IOU = 0.80
MIN_SPEEDUP = 1.25
#: scikit-image sample photos: the first ones calibrate, the others (and crops) check.
CALIBRATION_PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle left")
CHECK_PHOTOS = ("rocket", "motorcycle right")

Prepare = Callable[[np.ndarray], np.ndarray]


@dataclass
class Verdict:
    """Whether the 8-bit copy of one model file is used, and what the check measured."""

    used: bool
    reason: str
    iou_mean: float = 0.0
    iou_min: float = 0.0
    float_ms: float = 0.0
    int8_ms: float = 0.0
    build_s: float = 0.0
    recipe: int = RECIPE
    #: Mean absolute difference of the soft masks (0..1): where the model itself is unsure, IoU at
    #: 0.5 flips on tiny changes while the masks look the same.
    alpha_diff_mean: float = 0.0
    alpha_diff_max: float = 0.0

    @property
    def speedup(self) -> float:
        return self.float_ms / self.int8_ms if self.int8_ms > 0 else 0.0


def copy_key(model: Path) -> str:
    """The name a model file's copy goes by: its content's hash and the recipe."""
    digest = hashlib.sha256()
    with model.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{digest.hexdigest()[:24]}-r{RECIPE}"


def copy_paths(folder: Path, key: str) -> tuple[Path, Path]:
    """The copy and its verdict."""
    return folder / f"{key}.onnx", folder / f"{key}.json"


def read_verdict(path: Path) -> Verdict | None:
    """A verdict written earlier, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        verdict = Verdict(**data)
    except (OSError, ValueError, TypeError):
        return None
    return verdict if verdict.recipe == RECIPE else None


def sample_photos() -> dict[str, np.ndarray]:
    """scikit-image's colour sample photos that the check uses, as BGR uint8."""
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    rgb = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
           "rocket": data.rocket(), "motorcycle left": left, "motorcycle right": right}
    return {name: np.ascontiguousarray(np.asarray(image)[..., 2::-1]) for name, image in rgb.items()}


def _crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[h // 8 : h - h // 8, w // 6 : w - w // 6])


def calibration_and_check(photos: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The calibration pictures (photos and mirror images) and the check pictures (other photos and
    crops of the calibration photos, which the model sees at another scale)."""
    calibrate = [photos[n] for n in CALIBRATION_PHOTOS]
    calibrate += [np.ascontiguousarray(p[:, ::-1]) for p in calibrate]
    check = [photos[n] for n in CHECK_PHOTOS] + [_crop(photos[n]) for n in CALIBRATION_PHOTOS]
    return calibrate, check


def _soft(output: np.ndarray) -> np.ndarray:
    """The model's first output as rembg reads it: scaled to 0..1 by its own range."""
    pred = np.asarray(output, np.float32).reshape(output.shape[-2:])
    lo, hi = float(pred.min()), float(pred.max())
    if not np.isfinite(hi - lo) or hi <= lo:
        return np.zeros(pred.shape, np.float32)
    return (pred - lo) / (hi - lo)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _has_float16(model: Any) -> bool:
    return any(init.data_type == 10 for init in model.graph.initializer)  # TensorProto.FLOAT16


def _mask_convolutions(model: Any) -> list[str]:
    """The convolutions that draw one-channel maps (the side outputs and the fused mask)."""
    from onnx import numpy_helper

    weights = {init.name: init for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is not None and numpy_helper.to_array(weight).shape[0] == 1:
            names.append(node.name)
    return names


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _run_all(session: Any, blobs: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Soft masks of every blob and the median milliseconds of a run (each blob run once more, timed)."""
    name = session.get_inputs()[0].name
    masks = [_soft(session.run(None, {name: blob})[0]) for blob in blobs]
    times = []
    for blob in blobs:
        started = time.perf_counter()
        session.run(None, {name: blob})
        times.append((time.perf_counter() - started) * 1000)
    return masks, statistics.median(times)


def build_copy(
    model: Path,
    dest: Path,
    prepare: Prepare,
    *,
    threads: int = 2,
    photos: dict[str, np.ndarray] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    min_speedup: float | None = None,
) -> Verdict:
    """Make the 8-bit copy of ``model`` at ``dest``, check it, and write the verdict beside it
    (``dest`` with ``.json``). ``prepare`` turns a BGR picture into the model's input blob. The copy
    stays on disk only when it is used."""
    started = time.perf_counter()
    verdict_path = dest.with_suffix(".json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    calibrate, check = calibration_and_check(photos or sample_photos())
    speedup = MIN_SPEEDUP if min_speedup is None else min_speedup
    verdict = _build(model, dest, prepare, calibrate, check, threads, cancelled, speedup)
    verdict.build_s = round(time.perf_counter() - started, 1)
    if not verdict.used:
        with contextlib.suppress(OSError):
            dest.unlink()
    if verdict.reason == "cancelled":
        return verdict  # no verdict on disk: the copy is made again next time
    tmp = verdict_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(verdict), indent=1), encoding="utf-8")
    os.replace(tmp, verdict_path)
    if verdict.used:
        log.info("the 8-bit copy of %s is used: %s", model.name, verdict.reason)
    else:  # a warning reaches the studio's notifications: the user asked for the copy
        log.warning("The 8-bit copy of %s is not used: %s; the model runs as it is.", model.name, verdict.reason)
    return verdict


def _build(
    model: Path,
    dest: Path,
    prepare: Prepare,
    calibrate: list[np.ndarray],
    check: list[np.ndarray],
    threads: int,
    cancelled: Callable[[], bool],
    min_speedup: float,
) -> Verdict:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = onnx.load(str(model))
    if _has_float16(graph):
        return Verdict(False, "the model keeps float16 weights; only float32 models are made 8-bit")
    del graph

    class Pictures(CalibrationDataReader):
        def __init__(self, blobs: list[np.ndarray], name: str) -> None:
            self._feeds = iter([{name: blob} for blob in blobs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            if cancelled():
                raise InterruptedError
            return next(self._feeds, None)

    reference = _session(model, threads)
    input_name = reference.get_inputs()[0].name
    with tempfile.TemporaryDirectory(prefix="int8-", dir=dest.parent) as scratch:
        tmp = Path(scratch)
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        proto = onnx.load(str(prepared))
        for i, node in enumerate(proto.graph.node):  # the quantizer tells nodes apart by name
            node.name = node.name or f"node{i}"
        excluded = _mask_convolutions(proto)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
        if opset < 13:  # weights quantized per channel need QuantizeLinear's axis (opset 13)
            from onnx import version_converter

            proto = version_converter.convert_version(proto, 13)
        onnx.save(proto, str(prepared))
        del proto
        quantized = tmp / "int8.onnx"
        try:
            quantize_static(
                str(prepared),
                str(quantized),
                Pictures([prepare(p) for p in calibrate], input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=excluded,
                extra_options={"CalibMovingAverage": True},
            )
        except InterruptedError:
            return Verdict(False, "cancelled")
        os.replace(quantized, dest)
    if cancelled():
        return Verdict(False, "cancelled")
    blobs = [prepare(p) for p in check]
    float_masks, float_ms = _run_all(reference, blobs)
    del reference
    int8_masks, int8_ms = _run_all(_session(dest, threads), blobs)
    ious = [mask_iou(a > 0.5, b > 0.5) for a, b in zip(float_masks, int8_masks, strict=True)]
    diffs = [float(np.abs(a - b).mean()) for a, b in zip(float_masks, int8_masks, strict=True)]
    verdict = Verdict(
        False, "", round(statistics.fmean(ious), 4), round(min(ious), 4), round(float_ms, 1), round(int8_ms, 1),
        alpha_diff_mean=round(statistics.fmean(diffs), 4), alpha_diff_max=round(max(diffs), 4),
    )
    if verdict.iou_mean < MIN_MEAN_IOU or verdict.iou_min < MIN_IOU:
        verdict.reason = (
            f"its masks differ from the model's own (IoU {verdict.iou_mean:.3f} on average, "
            f"{verdict.iou_min:.3f} at worst)"
        )
    elif verdict.speedup < min_speedup:
        verdict.reason = f"it is only {verdict.speedup:.2f}x as fast on this CPU"
    else:
        verdict.used = True
        verdict.reason = (
            f"{verdict.speedup:.1f}x as fast, masks IoU {verdict.iou_mean:.3f} on average, "
            f"{verdict.iou_min:.3f} at worst"
        )
    return verdict


class Copies:
    """The 8-bit copies one engine uses: found through the folder's index, or made and checked on a
    background thread while the float32 model serves (it then takes over on the next picture)."""

    INDEX = "index.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._ready: dict[str, Path | None] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._jobs: dict[str, threading.Thread] = {}
        self._looked: set[str] = set()
        self._closed = False
        #: How much faster a copy must be to be used (None: MIN_SPEEDUP).
        self.min_speedup: float | None = None

    @staticmethod
    def _stamp(model: Path) -> str:
        stat = model.stat()
        return f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def _index(self) -> dict[str, str]:
        try:
            data = json.loads((self.folder / self.INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, stamp: str, key: str) -> None:
        with self._lock:
            index = self._index()
            index[stamp] = key
            tmp = self.folder / (self.INDEX + ".tmp")
            tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
            os.replace(tmp, self.folder / self.INDEX)

    def ready(self, model: Path) -> Path | None:
        """The checked copy of ``model`` when one is ready to use, else None. Reads the index once per
        model; never hashes or builds."""
        name = str(model)
        with self._lock:
            if name in self._ready or name in self._looked:
                return self._ready.get(name)
            self._looked.add(name)  # a miss is not looked up again: start() makes the copy
        try:
            key = self._index().get(self._stamp(model))
        except OSError:
            return None
        if key is None:
            return None
        copy, verdict_path = copy_paths(self.folder, key)
        verdict = read_verdict(verdict_path)
        if verdict is None or (verdict.used and not copy.is_file()):
            return None  # never checked, or the copy was deleted: made again by start()
        with self._lock:
            self._verdicts[name] = verdict
            self._ready[name] = copy if verdict.used and copy.is_file() else None
            return self._ready[name]

    def verdict(self, model: Path) -> Verdict | None:
        with self._lock:
            return self._verdicts.get(str(model))

    def start(self, model: Path, prepare: Prepare, threads: int) -> None:
        """Make and check the copy of ``model`` in the background, unless that was done already."""
        name = str(model)
        with self._lock:
            if self._closed or name in self._ready or name in self._jobs:
                return
            job = threading.Thread(
                target=self._make, args=(model, prepare, threads), name="matting-int8", daemon=True
            )
            self._jobs[name] = job
        job.start()

    def _make(self, model: Path, prepare: Prepare, threads: int) -> None:
        name = str(model)
        copy: Path | None = None
        verdict: Verdict | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = self._stamp(model)
            key = copy_key(model)
            path, verdict_path = copy_paths(self.folder, key)
            verdict = read_verdict(verdict_path)
            if verdict is None or (verdict.used and not path.is_file()):
                verdict = build_copy(
                    model, path, prepare, threads=threads, cancelled=lambda: self._closed, min_speedup=self.min_speedup
                )
            if verdict.reason != "cancelled":
                self._remember(stamp, key)
            copy = path if verdict.used and path.is_file() else None
        except Exception as exc:  # a full disk, a model the quantizer cannot read: float32 it stays
            log.warning("The 8-bit copy of %s could not be made (%s); the model runs as it is.", model.name, exc)
            verdict = Verdict(False, f"the copy could not be made ({exc})")
        with self._lock:
            self._ready[name] = copy
            self._verdicts[name] = verdict
            self._jobs.pop(name, None)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the copies being made (tests and benchmarks)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.join(timeout)

    def close(self) -> None:
        """Stop making copies (a copy half made is dropped, and made again next time)."""
        self._closed = True
