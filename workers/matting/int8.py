"""An 8-bit copy of a background-removal model: faster, with masks checked to stay the model's.

On a CPU a matting model's float32 convolutions take most of a cut-out's time. onnxruntime's static
int8 quantization (QDQ, weights per channel, activations calibrated by their range) runs them about
three times faster on CPUs with 8-bit dot products. Whether the masks hold depends on the model and
on the pictures: with every convolution in 8 bits U²-Net lite's fall apart (IoU 0.29 at worst) and
IS-Net's move where it is unsure (a cat's face filling the frame: IoU 0.85); both hold with only
their heaviest convolutions in 8 bits (U²-Net lite 60% of its work, IS-Net 75%). So each model is tried in steps
(``SHARES``: all of its convolution work in 8 bits, then only the heaviest convolutions that do
75%, 60% and 40% of it) and the first copy that passes the check is used:

1. the model is calibrated on four of scikit-image's sample photos and their mirror images (the
   convolutions that draw the one-channel masks stay in float32);
2. the copy and the original then cut out six other pictures (two other photos and crops of the
   first ones). On each, the copy's mask must match the original's with IoU at 0.5 of at least
   ``EQUAL_IOU`` (0.99). Where the model itself is unsure, a change of one level in the picture's
   pixels (noise nobody can see) already moves its own mask further than that (IS-Net on a cat's
   face filling the frame: IoU 0.90 between the mask of the picture and of the picture with that
   noise; on the rocket photo 0.98); there the copy's mask may be at most ``NOISE_FACTOR`` times as
   far (1 - IoU) from the model's as the noise moved it (``required_ious``);
3. the copy must be at least ``MIN_SPEEDUP`` times as fast; a copy with less in 8 bits would be
   slower still, so the steps stop there.

The verdict (``MattingEngine.int8_verdict``), used or not, gives the measured speed, the share in 8
bits and each picture's IoU with what it had to reach. It is written beside the copy
(``<key>.json``) so the check runs once per model file; a new recipe or a changed file makes a new
key. Models whose input side is under ``MIN_SIDE`` pixels are left alone. Copies live in the model
store's folder of converted files (shown as caches, made again when needed).

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Bumped whenever the way copies are made or checked changes: older copies are then made again.
RECIPE = 4
FOLDER = "matting-int8"
MIN_SIDE = 320
#: The IoU at 0.5 a copy's mask must reach against the model's own on each check picture...
EQUAL_IOU = 0.99
#: ...unless one level of noise in the picture moves the model's own mask further: then the copy's
#: mask may be at most this many times as far from the model's (1 - IoU), and IoU at least MIN_IOU.
NOISE_FACTOR = 1.5
MIN_IOU = 0.5
MIN_SPEEDUP = 1.25
#: How much of the model's convolution work is tried in 8 bits, heaviest convolutions first: the
#: first share whose masks hold is used (if it is fast enough).
SHARES = (1.0, 0.75, 0.6, 0.4)
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
    #: The share of the convolution work in 8 bits (1.0: all of it), and how many shares were tried.
    share: float = 0.0
    tries: int = 0
    #: IoU at 0.5 on each check picture, and what each had to reach (see required_ious).
    ious: list[float] = field(default_factory=list)
    required: list[float] = field(default_factory=list)
    #: Every step tried: its share in 8 bits, milliseconds and IoU on each check picture.
    steps: list[dict[str, Any]] = field(default_factory=list)

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
    rgb = {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "motorcycle left": left,
        "motorcycle right": right,
    }
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


def _run_all(
    session: Any, blobs: list[np.ndarray], cancelled: Callable[[], bool] = lambda: False
) -> tuple[list[np.ndarray], float]:
    """Soft masks of every blob and the median milliseconds of a run (each blob run once more, timed);
    InterruptedError as soon as ``cancelled()`` between two runs."""
    name = session.get_inputs()[0].name
    masks = []
    for blob in blobs:
        _stop_if(cancelled)
        masks.append(_soft(session.run(None, {name: blob})[0]))
    times = []
    for blob in blobs:
        _stop_if(cancelled)
        started = time.perf_counter()
        session.run(None, {name: blob})
        times.append((time.perf_counter() - started) * 1000)
    return masks, statistics.median(times)


def _stop_if(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise InterruptedError


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
    try:
        verdict = _build(model, dest, prepare, calibrate, check, threads, cancelled, speedup)
    except InterruptedError:
        verdict = Verdict(False, "cancelled")
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
    else:  # no notification: the model runs as it is, and the result line does not name a copy
        log.info("The 8-bit copy of %s is not used: %s; the model runs as it is.", model.name, verdict.reason)
    return verdict


def _noisy(picture: np.ndarray, seed: int) -> np.ndarray:
    """``picture`` with every value moved by at most one level (-1, 0 or +1 at random): a change
    nobody can see, which tells how far the model's own mask moves on this picture."""
    rng = np.random.default_rng(seed)
    shifted = picture.astype(np.int16) + rng.integers(-1, 2, picture.shape, dtype=np.int16)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def required_ious(float_masks: list[np.ndarray], noise_masks: list[np.ndarray]) -> list[float]:
    """The IoU at 0.5 the copy must reach on each check picture: ``EQUAL_IOU``, or, where one level of
    noise in the picture moves the model's own mask further, a distance (1 - IoU) of at most
    ``NOISE_FACTOR`` times that one (and never an IoU under ``MIN_IOU``)."""
    out = []
    for a, b in zip(float_masks, noise_masks, strict=True):
        own = mask_iou(a > 0.5, b > 0.5)
        out.append(round(max(MIN_IOU, min(EQUAL_IOU, 1.0 - NOISE_FACTOR * (1.0 - own))), 4))
    return out


def conv_costs(model: Any) -> dict[str, float]:
    """Multiply-adds of each convolution (by name), from the shapes the model's graph records."""
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in list(model.graph.value_info) + list(model.graph.output)
    }
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    costs: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
            continue
        out = shapes.get(node.output[0], [])
        area = float(np.prod(out[2:])) if len(out) > 2 and all(d > 0 for d in out[2:]) else 1.0
        costs[node.name] = area * float(np.prod(weights[node.input[1]]))
    return costs


def heaviest(costs: dict[str, float], share: float) -> set[str]:
    """The heaviest convolutions that together do at least ``share`` of the work."""
    total = sum(costs.values()) or 1.0
    chosen: set[str] = set()
    done = 0.0
    for name in sorted(costs, key=lambda n: -costs[n]):
        if done >= share * total - 1e-9:
            break
        chosen.add(name)
        done += costs[name]
    return chosen


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
    blobs = [prepare(p) for p in check]
    float_masks, float_ms = _run_all(reference, blobs, cancelled)
    noise_masks = _run_all(reference, [prepare(_noisy(p, i)) for i, p in enumerate(check)], cancelled)[0]
    required = required_ious(float_masks, noise_masks)
    del reference
    if cancelled():
        return Verdict(False, "cancelled")
    verdict = Verdict(False, "", float_ms=round(float_ms, 1), required=required)
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="int8-", dir=dest.parent) as scratch:
        tmp = Path(scratch)
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        proto = onnx.load(str(prepared))
        for i, node in enumerate(proto.graph.node):  # the quantizer tells nodes apart by name
            node.name = node.name or f"node{i}"
        masks = set(_mask_convolutions(proto))
        costs = {n: c for n, c in conv_costs(proto).items() if n not in masks}
        every = [node.name for node in proto.graph.node]
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)
        if opset < 13:  # weights quantized per channel need QuantizeLinear's axis (opset 13)
            from onnx import version_converter

            proto = version_converter.convert_version(proto, 13)
        onnx.save(proto, str(prepared))
        del proto
        calibration = [prepare(p) for p in calibrate]
        for share in SHARES:
            if share >= 1.0:
                excluded = sorted(masks)
            else:  # only the heaviest convolutions are quantized; everything else stays float32
                chosen = heaviest(costs, share)
                excluded = [n for n in every if n not in chosen]
            quantized = tmp / "int8.onnx"
            try:
                quantize_static(
                    str(prepared),
                    str(quantized),
                    Pictures(calibration, input_name),
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
            if cancelled():
                return Verdict(False, "cancelled")
            int8_masks, int8_ms = _run_all(_session(quantized, threads), blobs, cancelled)
            ious = [round(mask_iou(a > 0.5, b > 0.5), 4) for a, b in zip(float_masks, int8_masks, strict=True)]
            diffs = [float(np.abs(a - b).mean()) for a, b in zip(float_masks, int8_masks, strict=True)]
            verdict = Verdict(
                False,
                "",
                round(statistics.fmean(ious), 4),
                min(ious),
                round(float_ms, 1),
                round(int8_ms, 1),
                alpha_diff_mean=round(statistics.fmean(diffs), 4),
                alpha_diff_max=round(max(diffs), 4),
                share=share,
                tries=verdict.tries + 1,
                ious=ious,
                required=required,
                steps=steps,
            )
            steps.append({"share": share, "int8_ms": verdict.int8_ms, "ious": ious})
            if any(iou < need for iou, need in zip(ious, required, strict=True)):
                verdict.reason = (
                    f"its masks differ from the model's own (IoU {verdict.iou_min:.3f} at worst with "
                    f"{share:.0%} of its work in 8 bits)"
                )
                continue  # fewer convolutions in 8 bits next
            if verdict.speedup < min_speedup:
                verdict.reason = f"it is only {verdict.speedup:.2f}x as fast on this CPU"
                break  # a copy with less in 8 bits would be slower still
            verdict.used = True
            verdict.reason = (
                f"{verdict.speedup:.1f}x as fast with {share:.0%} of its work in 8 bits; masks IoU "
                f"{verdict.iou_mean:.3f} on average, {verdict.iou_min:.3f} at worst"
            )
            os.replace(quantized, dest)
            break
    return verdict


def _lower_priority() -> None:
    """The calling thread (and the onnxruntime threads it starts) yields the CPU to the studio's own
    work: a copy is made while the model serves pictures or a live camera."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread


_shared_lock = threading.Lock()
_shared: dict[str, tuple[Copies, int]] = {}


class Copies:
    """The 8-bit copies of one folder: found through the folder's index, or made and checked on a
    background thread while the float32 model serves (it then takes over on the next picture).

    Engines share one per folder (:meth:`acquire`, :meth:`release`): the image page, live and the
    local API never make the same copy twice at once."""

    INDEX = "index.json"

    @classmethod
    def acquire(cls, folder: Path) -> Copies:
        """The folder's shared copies (made on first use); give it back with :meth:`release`."""
        key = str(folder)
        with _shared_lock:
            copies, users = _shared.get(key, (None, 0))
            if copies is None or copies._closed:
                copies, users = cls(folder), 0
            _shared[key] = (copies, users + 1)
            return copies

    def release(self) -> None:
        """One engine is done with these copies; the last one stops a copy being made."""
        key = str(self.folder)
        with _shared_lock:
            copies, users = _shared.get(key, (None, 0))
            if copies is not self:
                return
            if users > 1:
                _shared[key] = (self, users - 1)
                return
            del _shared[key]
        self.close()

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
            # Not a daemon: one ended by the interpreter's exit inside onnxruntime aborts the process
            # ("terminate called without an active exception"). The copy stops at its next picture
            # once the main thread ends (or close() is called), and the exit waits for that.
            job = threading.Thread(target=self._make, args=(model, prepare, threads), name="matting-int8")
            self._jobs[name] = job
        job.start()

    def _make(self, model: Path, prepare: Prepare, threads: int) -> None:
        _lower_priority()
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
                    model, path, prepare, threads=threads, cancelled=self._stopping, min_speedup=self.min_speedup
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

    def _stopping(self) -> bool:
        return self._closed or not threading.main_thread().is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the copies being made (tests and benchmarks)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.join(timeout)

    def close(self) -> None:
        """Stop making copies (a copy half made is dropped, and made again next time)."""
        self._closed = True
