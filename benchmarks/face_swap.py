"""Live face swap speed: the studio's pipeline against a detect-and-swap-every-frame loop.

    python benchmarks/face_swap.py [--frames 60] [--warmup 5] [--json benchmarks/results/face_swap.json]

The reference loop does what Deep-Live-Cam's live mode does: on every frame, detect the faces at
full resolution, then swap each one (no tracking, no downscaled detection). The studio's
:class:`~workers.face_swap.pipeline.FaceSwapPipeline` (``process``) detects on a small copy every
few frames and follows the faces with optical flow in between. Both sides use the same engine
object kind, the same models, the same source face and the same swap options; they run side by
side in one run, one frame each in turn (A, B, A, B...), so a busy machine slows both alike.

Configurations, each at 640x480 and 1280x720:

- ``classic``: the dlib engine with its real models (HOG detector, 68 landmarks, descriptor;
  shipped in face-recognition-models), on the CPU;
- ``insightface (fixture models)``: the InsightFace engine on the small ONNX models the tests build
  (a SCRFD-shaped detector, ArcFace-shaped recogniser, 2d-106 landmarks, inswapper-shaped swapper),
  through the real insightface classes. Those models cost almost nothing, so this measures the
  pipeline's own overhead (alignment, paste-back, tracking), not the models';
- ``insightface (fixture models, real-size compute)``: the same models with a stack of
  convolutions added whose result is multiplied by zero, so that the detector (about 6 GFLOP at
  640x640, growing with its input), the landmark model and the swapper (about 4 GFLOP per face)
  cost roughly what the real ones do.

Frames: the astronaut photo (scikit-image, public domain) on a dark background, drifting a few
pixels per frame and zooming a little, like a webcam picture of someone who moves. The target is
>= 2x the reference loop's frames per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402
from face_fixtures import (  # noqa: E402
    ASTRONAUT_FACE_BOX,
    ASTRONAUT_KPS,
    DetectorFace,
    detector_faces,
    install_face_models,
    moving_frames,
    second_face,
    second_face_layout,
)

from workers.face_swap.options import FaceSwapOptions  # noqa: E402
from workers.face_swap.pipeline import STAGES, FaceSwapPipeline  # noqa: E402
from workers.models.store import ModelStore  # noqa: E402

RESOLUTIONS = [(640, 480), (1280, 720)]
SIZES_QUICK = [(640, 480)]
ENHANCER_CONFIG = "insightface (real-size compute) + GFPGAN-class enhancer"


# ---- frames and models ---------------------------------------------------------------------------
def frames_for(width: int, height: int, count: int) -> list[np.ndarray]:
    return [frame for frame, _shift in moving_frames(count, width, height)]


def moving_face(width: int, height: int) -> DetectorFace:
    """Where :func:`face_fixtures.moving_frames` puts the astronaut's face at rest, relative to the frame."""
    scale = min(width, height) / 512.0 * 0.9
    bx = (width - 512 * scale) / 2
    by = (height - 512 * scale) / 2
    box = [v * scale + (bx if i % 2 == 0 else by) for i, v in enumerate(ASTRONAUT_FACE_BOX)]
    kps = tuple(((x * scale + bx) / width, (y * scale + by) / height) for x, y in ASTRONAUT_KPS)
    rel = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    return DetectorFace(rel, kps, None)


def add_compute(path: Path, *, stem: tuple[int, int], layers: int, width: int, seed: int = 0) -> None:
    """Give an ONNX model real work: a stack of 3x3 convolutions on its first input, times zero, added
    to its first output (so the result does not change and the work cannot be skipped).

    ``stem``: (stride of the first convolution, its output channels); then ``layers`` convolutions
    of ``width`` channels at that resolution.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    rng = np.random.default_rng(seed)
    x = graph.input[0].name
    elem = graph.input[0].type.tensor_type.elem_type
    dtype = np.float16 if elem == TensorProto.FLOAT16 else np.float32
    stride, channels = stem
    nodes = []
    inits = []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(dtype), name))
        return name

    nodes.append(
        helper.make_node(
            "Conv", [x, weight("burden_w0", (channels, 3, 3, 3))], ["burden_0"], strides=[stride, stride], pads=[1] * 4
        )
    )
    prev, prev_c = "burden_0", channels
    for i in range(1, layers + 1):
        conv = f"burden_c{i}"
        nodes.append(
            helper.make_node("Conv", [prev, weight(f"burden_w{i}", (width, prev_c, 3, 3))], [conv], pads=[1] * 4)
        )
        nodes.append(helper.make_node("Relu", [conv], [f"burden_{i}"]))
        prev, prev_c = f"burden_{i}", width
    nodes.append(helper.make_node("ReduceMean", [prev], ["burden_mean"], keepdims=0))
    inits.append(numpy_helper.from_array(np.zeros((), dtype), "burden_zero"))
    nodes.append(helper.make_node("Mul", ["burden_mean", "burden_zero"], ["burden_nil"]))
    out = graph.output[0]
    inner = out.name + "_before_burden"
    for node in graph.node:
        for j, name in enumerate(node.output):
            if name == out.name:
                node.output[j] = inner
    nodes.append(helper.make_node("Add", [inner, "burden_nil"], [out.name]))
    graph.node.extend(nodes)
    # The swapper's emap must stay the last initializer: put the new weights before it.
    existing = list(graph.initializer)
    del graph.initializer[:]
    graph.initializer.extend(existing[:-1] + inits + existing[-1:])
    onnx.save(model, str(path))


def fixture_store(root: Path, width: int, height: int, *, compute: bool, enhancer: bool = False) -> ModelStore:
    faces = [moving_face(width, height), *detector_faces(second_face(), second_face_layout())]
    models = ["insightface-buffalo-l", "inswapper-128", *(["gfpgan-1.4"] if enhancer else [])]
    store = install_face_models(root, faces=faces, models=models)
    if compute:
        # Roughly SCRFD-10G's work (it grows with the detector's input), 2d106det's and inswapper_128's.
        pack = Path(store.path_of("insightface-buffalo-l"))
        add_compute(pack / "det_10g.onnx", stem=(2, 24), layers=6, width=24)
        add_compute(pack / "2d106det.onnx", stem=(2, 16), layers=3, width=16)
        add_compute(Path(store.path_of("inswapper-128")), stem=(1, 48), layers=6, width=48)
        if enhancer:
            # A GFPGAN-class restorer at 512x512: 3x3 convolutions at 256x256 (about 10 GFLOP per face,
            # more than twice the swapper stand-in's work).
            add_compute(Path(store.path_of("gfpgan-1.4")), stem=(2, 32), layers=4, width=32)
        _refresh_manifest_sizes(store)
    return store


def _refresh_manifest_sizes(store: ModelStore) -> ModelStore:
    """After editing fixture files in place, record their new sizes so the store still calls them installed."""
    import dataclasses
    import hashlib

    models = []
    for model in store.manifest.models:
        if model.id in ("inswapper-128", "gfpgan-1.4") and (store.root / model.id).is_dir():
            path = store.root / model.id / model.files[0].name
            spec = dataclasses.replace(
                model.files[0], size=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest()
            )
            model = dataclasses.replace(model, files=(spec,))
        models.append(model)
    store.manifest.models[:] = models
    # The unpacked pack is checked against its unpack record: update the member that changed.
    base = store.root / "insightface-buffalo-l"
    marker = next(base.glob(".*.extracted.json"))
    data = json.loads(marker.read_text(encoding="utf-8"))
    for member in data["members"]:
        member["size"] = (base / member["name"]).stat().st_size
    marker.write_text(json.dumps(data), encoding="utf-8")
    return store


# ---- the two loops -------------------------------------------------------------------------------
def swapped(frame: np.ndarray, out: np.ndarray) -> bool:
    """Whether the face was replaced: pixels changed in the top two thirds (the mark sits bottom right)."""
    top = frame.shape[0] * 2 // 3
    return bool(np.any(out[:top] != frame[:top]))


class Ours:
    """The studio's live path: ``FaceSwapPipeline.process``."""

    def __init__(self, store: ModelStore, options: FaceSwapOptions, source: list[np.ndarray]) -> None:
        self.pipeline = FaceSwapPipeline(store, options)
        self.pipeline.load()
        self.pipeline.set_source(source)
        self.stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
        self.swapped = 0

    def __call__(self, frame: np.ndarray, record: bool) -> np.ndarray:
        out = self.pipeline.process(frame)
        if record:
            for stage in STAGES:
                self.stage_ms[stage].append(self.pipeline.timings.get(stage, 0.0))
            self.swapped += swapped(frame, out)
        return out

    def close(self) -> None:
        self.pipeline.close()


class Reference:
    """Detect at full resolution and swap every face, every frame (Deep-Live-Cam's live loop)."""

    def __init__(self, engine: Any, options: FaceSwapOptions, source: list[np.ndarray]) -> None:
        self.engine = engine
        self.options = options
        engine.load()
        #: Deep-Live-Cam runs its enhancer on every face of every frame.
        self.enhancer = engine.enhancer(options.enhancer) if options.enhancer else None
        if hasattr(engine, "seamless"):
            engine.seamless = False  # the same blending as the pipeline's live path
        self.source = engine.prepare_source(source)
        self.stage_ms: dict[str, list[float]] = {"detect": [], "swap": []}
        self.swapped = 0

    def __call__(self, frame: np.ndarray, record: bool) -> np.ndarray:
        t0 = time.perf_counter()
        faces = self.engine.detect(frame)
        t1 = time.perf_counter()
        out = frame.copy()
        for face in faces:
            out = self.engine.swap(out, face, self.source, self.options)
            if self.enhancer is not None:
                out = self.enhancer.enhance(out, face)
        t2 = time.perf_counter()
        if record:
            self.stage_ms["detect"].append((t1 - t0) * 1000)
            self.stage_ms["swap"].append((t2 - t1) * 1000)
            self.swapped += swapped(frame, out)
        return out

    def close(self) -> None:
        self.engine.close()


def side_by_side(sides: dict[str, Callable[[np.ndarray, bool], np.ndarray]], frames: list[np.ndarray], warmup: int):
    """Feed every frame to each side in turn; per side the frame times (ms) after the warm-up."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i, frame in enumerate(frames):
        for name, side in sides.items():
            t0 = time.perf_counter()
            side(frame, i >= warmup)
            dt = (time.perf_counter() - t0) * 1000
            if i >= warmup:
                times[name].append(dt)
    return times


def summary(times: list[float], stage_ms: dict[str, list[float]], count: int) -> dict[str, Any]:
    mean = statistics.fmean(times)
    return {
        "fps": round(1000.0 / mean, 2),
        "ms_per_frame": {"mean": round(mean, 2), "median": round(statistics.median(times), 2)},
        "stage_ms": {k: round(statistics.fmean(v), 2) for k, v in stage_ms.items() if v},
        "frames_swapped": count,
    }


def bench(
    label: str,
    make: Callable[[int, int], tuple[Ours, Reference]],
    frames_n: int,
    warmup: int,
    sizes: list[tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for width, height in sizes or RESOLUTIONS:
        print(f"measuring {label} at {width}x{height}...", file=sys.stderr)
        frames = frames_for(width, height, frames_n + warmup)
        ours, ref = make(width, height)
        try:
            times = side_by_side({"ours": ours, "reference": ref}, frames, warmup)
        finally:
            ours.close()
            ref.close()
        a = summary(times["ours"], ours.stage_ms, ours.swapped)
        b = summary(times["reference"], ref.stage_ms, ref.swapped)
        rows.append(
            {
                "config": label,
                "resolution": f"{width}x{height}",
                "frames": frames_n,
                "ours": a,
                "reference": b,
                "speedup": round(a["fps"] / b["fps"], 2),
                "detections_ours": ours.pipeline.detections,
            }
        )
    return rows


def cadence_quality(tmp: Path, count: int) -> dict[str, Any]:
    """The live enhancer at the detection interval against the enhancer on every frame, on the same
    frames: the mean absolute difference over the face (0-255) and the enhancer runs of each."""
    store = fixture_store(tmp / "cadence" / "models", 640, 480, compute=False, enhancer=True)
    frames = frames_for(640, 480, count)
    outputs: dict[int, list[np.ndarray]] = {}
    runs: dict[int, int] = {}
    for every in (1, 3):
        options = FaceSwapOptions(engine="insightface", preset="cpu", enhancer="gfpgan-1.4", enhance_every=every)
        pipeline = FaceSwapPipeline(store, options)
        pipeline.load()
        pipeline.set_source([second_face()])
        outputs[every] = [pipeline.process(frame).copy() for frame in frames]
        enhancer = pipeline._enhancer
        runs[every] = count - (enhancer.reused if enhancer is not None else 0)
        pipeline.close()
    x1, y1, x2, y2 = moving_face(640, 480).box
    box = (slice(int(y1 * 480), int(y2 * 480)), slice(int(x1 * 640), int(x2 * 640)))
    pairs = zip(outputs[1], outputs[3], strict=True)
    diffs = [np.abs(a[box].astype(int) - b[box].astype(int)).mean() for a, b in pairs]
    return {
        "frames": count,
        "enhancer_runs_every_frame": runs[1],
        "enhancer_runs_cadence_3": runs[3],
        "face_mad_vs_every_frame": round(float(np.mean(diffs)), 3),
        "face_mad_max": round(float(np.max(diffs)), 3),
    }


# ---- configurations ----------------------------------------------------------------------------
def classic_maker(store: ModelStore) -> Callable[[int, int], tuple[Ours, Reference]]:
    from workers.face_swap.classic import ClassicEngine

    def make(width: int, height: int) -> tuple[Ours, Reference]:
        options = FaceSwapOptions(engine="classic", preset="cpu")
        source = [second_face()]
        return Ours(store, options, source), Reference(ClassicEngine(store), options.copy(), source)

    return make


def insight_maker(tmp: Path, compute: bool, enhancer: bool = False) -> Callable[[int, int], tuple[Ours, Reference]]:
    from workers.face_swap.insight import InsightEngine

    def make(width: int, height: int) -> tuple[Ours, Reference]:
        name = f"insight-{width}x{height}-{'compute' if compute else 'bare'}{'-enhancer' if enhancer else ''}"
        store = fixture_store(tmp / name / "models", width, height, compute=compute, enhancer=enhancer)
        options = FaceSwapOptions(engine="insightface", preset="cpu", enhancer="gfpgan-1.4" if enhancer else None)
        source = [second_face()]
        ours = Ours(store, options, source)
        ref = Reference(InsightEngine(store, preset="cpu", det_size=640), options.copy(), source)
        return ours, ref

    return make


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'configuration':<44} {'size':>9} {'ours fps':>9} {'ref fps':>8} {'x':>6}  "
        f"{'ours ms: detect/track/swap/mark':<34} {'ref ms: detect/swap':<20} {'swapped frames':>14}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        o, f = r["ours"]["stage_ms"], r["reference"]["stage_ms"]
        ours_stages = "/".join(f"{o.get(s, 0.0):.1f}" for s in ("detect", "track", "swap", "mark"))
        ref_stages = "/".join(f"{f.get(s, 0.0):.1f}" for s in ("detect", "swap"))
        lines.append(
            f"{r['config']:<44} {r['resolution']:>9} {r['ours']['fps']:>9.1f} {r['reference']['fps']:>8.1f} "
            f"{r['speedup']:>5.2f}x  {ours_stages:<34} {ref_stages:<20} "
            f"{r['ours']['frames_swapped']:>6}/{r['reference']['frames_swapped']:<7}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="measured frames per configuration and size")
    parser.add_argument("--warmup", type=int, default=5, help="frames run first and not measured")
    parser.add_argument("--only", choices=("classic", "insightface"), help="run one engine's configurations")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "face_swap.json")
    parser.add_argument("--quick", action="store_true", help="fewer frames (20), 640x480 only")
    parser.add_argument("--quality-frames", type=int, default=12, help="frames for the enhancer cadence's quality")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.warmup = min(args.frames, 20), min(args.warmup, 3)
        RESOLUTIONS[:] = SIZES_QUICK
    enhancer_quality: dict[str, Any] = {}

    cv2.setNumThreads(os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="snowai-face-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "classic"):
            store = ModelStore(tmp / "classic-models")
            rows += bench("classic (dlib, real models)", classic_maker(store), args.frames, args.warmup)
        if args.only in (None, "insightface"):
            rows += bench("insightface (fixture models)", insight_maker(tmp, False), args.frames, args.warmup)
            rows += bench(
                "insightface (fixture models, real-size compute)", insight_maker(tmp, True), args.frames, args.warmup
            )
            rows += bench(
                ENHANCER_CONFIG, insight_maker(tmp, True, enhancer=True), args.frames, args.warmup, sizes=SIZES_QUICK
            )
            enhancer_quality = cadence_quality(tmp, args.quality_frames)

    print()
    print(table(rows))
    import onnxruntime

    data = {
        "machine": machine(),
        "versions": {"onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__},
        "settings": {
            "frames": args.frames,
            "warmup": args.warmup,
            "options": "FaceSwapOptions(preset='cpu'): detect_every=3, detect_size=320; reference: det_size 640",
        },
        "results": rows,
        "enhancer_cadence_quality": enhancer_quality,
        "summary": summary_of(rows),
    }
    write_results(args.json, data)
    return 0


def summary_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a script reads: the real-size insightface figures at 640x480, with and without enhancer."""

    def row(config: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["config"] == config and r["resolution"] == "640x480"), None)

    plain = row("insightface (fixture models, real-size compute)")
    enhanced = row(ENHANCER_CONFIG)
    return {
        "insightface_real_size_fps_640": plain["ours"]["fps"] if plain else None,
        "insightface_real_size_enhancer_fps_640": enhanced["ours"]["fps"] if enhanced else None,
        "ratio_vs_dlc_loop_640": plain["speedup"] if plain else None,
        "enhancer_ratio_vs_dlc_loop_640": enhanced["speedup"] if enhanced else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
