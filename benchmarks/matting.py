"""Background removal speed: the studio's engine against plain rembg, same model file, same images.

    python benchmarks/matting.py [--repeats 20] [--frames 60] [--json benchmarks/results/matting.json]

For every matting model installed in the model store (and, when none is, for U²-Net-shaped stand-in
models that this script builds: the tiny test model, and one with the compute of a real network, a
stack of 3x3 convolutions at 320x320), it measures side by side in one run:

- ms per image on a 1024x768 photo: ``MattingEngine.process`` (BGRA cutout) against
  ``rembg.remove(image, session=new_session(...))`` (RGBA cutout);
- live frames per second on 640x480 frames (one over the median time per frame), the same two calls;
- the IoU of the two masks (``predict_mask`` against ``remove(..., only_mask=True)``).

Both sides run one after the other in each round (A, B, A, B...), so that a busy machine slows
both alike. Nothing is downloaded: a model whose file is absent is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.matting.engine import MattingEngine, physical_cores  # noqa: E402
from workers.matting.options import MattingOptions, spec_for  # noqa: E402
from workers.models.store import ModelStore  # noqa: E402


def build_conv_stack(path: Path, size: int = 320, width: int = 32, layers: int = 4, seed: int = 0) -> Path:
    """A U²-Net-shaped model (input ``input.1`` 1x3xSxS, outputs d0..d6 1x1xSxS) with real compute:
    a stack of 3x3 convolutions whose small contribution is added to a brightness detector, so the
    mask still outlines the bright subject of the test images."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits = []
    nodes = []

    def weight(name: str, shape: tuple[int, ...], scale: float) -> str:
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, shape, data.flatten()))
        return name

    x = "input.1"
    cin = 3
    for i in range(layers):
        w = weight(f"w{i}", (width, cin, 3, 3), (2.0 / (cin * 9)) ** 0.5)
        b = weight(f"b{i}", (width,), 0.0)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x, cin = f"r{i}", width
    nodes.append(
        helper.make_node(
            "Conv", [x, weight("wo", (1, width, 3, 3), 0.01), weight("bo", (1,), 0.0)], ["deep"], pads=[1, 1, 1, 1]
        )
    )
    bright = np.full((1, 3, 1, 1), 1.0, np.float32)
    inits.append(helper.make_tensor("wl", TensorProto.FLOAT, bright.shape, bright.flatten()))
    inits.append(helper.make_tensor("bl", TensorProto.FLOAT, (1,), [0.0]))
    nodes.append(helper.make_node("Conv", ["input.1", "wl", "bl"], ["light"]))
    nodes.append(helper.make_node("Add", ["light", "deep"], ["logits"]))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["d0"]))
    outputs = [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, size, size])]
    for i in range(1, 7):
        nodes.append(helper.make_node("Identity", ["d0"], [f"d{i}"]))
        outputs.append(helper.make_tensor_value_info(f"d{i}", TensorProto.FLOAT, [1, 1, size, size]))
    graph = helper.make_graph(
        nodes,
        "conv_stack",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="snowai-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@contextlib.contextmanager
def rembg_home(folder: Path) -> Iterator[None]:
    saved = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("U2NET_HOME", None)
        else:
            os.environ["U2NET_HOME"] = saved


def plain_rembg_session(engine: MattingEngine) -> Any:
    """A fresh rembg session on the very file the engine loaded, made the way a rembg user would."""
    from rembg import new_session
    from rembg.sessions import sessions

    loaded = engine._current()
    path = loaded.target.path
    with rembg_home(path.parent):
        if loaded.session_name in ("u2net_custom", "dis_custom", "ben_custom"):
            return new_session(loaded.session_name, model_path=str(path))
        if sessions[loaded.session_name].resolve_existing(f"{loaded.session_name}.onnx") is None:
            raise RuntimeError(f"rembg would download {loaded.session_name}; skipped")
        return new_session(loaded.session_name)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a >= 128, b >= 128
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def alternate(fns: dict[str, Callable[[int], Any]], rounds: int, block: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in blocks taken in turn (A B, B A, A B...).

    Each block starts with one untimed call, so that the previous side's idle threads and caches
    settle before timing starts.
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    done = 0
    turn = 0
    while done < rounds:
        n = min(block, rounds - done)
        for name in names if turn % 2 == 0 else reversed(names):
            fn = fns[name]
            fn(done)
            for i in range(done, done + n):
                t = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t)
        done += n
        turn += 1
    return times


def rembg_folder(session: Any, files: list[Path], outdir: Path) -> None:
    """What rembg's own folder command does: read the bytes, ``remove``, write the PNG."""
    from rembg import remove

    outdir.mkdir(parents=True, exist_ok=True)
    for path in files:
        (outdir / f"{path.stem}.png").write_bytes(remove(path.read_bytes(), session=session))


def bench_model(
    label: str,
    engine: MattingEngine,
    photo: np.ndarray,
    frames: list[np.ndarray],
    repeats: int,
    files: list[Path],
    workdir: Path,
) -> dict:
    from rembg import remove

    from workers.matting.batch import run_batch
    from workers.matting.compose import Background

    engine.load()
    session = plain_rembg_session(engine)
    photo_rgb = np.ascontiguousarray(photo[..., ::-1])
    frames_rgb = [np.ascontiguousarray(f[..., ::-1]) for f in frames]

    ours_mask = engine.predict_mask(photo)
    theirs_mask = np.asarray(remove(photo_rgb, session=session, only_mask=True))
    frame_iou = iou(engine.predict_mask(frames[0]), np.asarray(remove(frames_rgb[0], session=session, only_mask=True)))

    image_times = alternate(
        {
            "engine": lambda i: engine.process(photo),
            "rembg": lambda i: remove(photo_rgb, session=session),
        },
        repeats,
    )
    n = len(frames)
    live_times = alternate(
        {
            "engine": lambda i: engine.process(frames[i % n]),
            "rembg": lambda i: remove(frames_rgb[i % n], session=session),
        },
        n,
    )
    batch_times = alternate(
        {
            "engine": lambda i: run_batch(engine, files, workdir / f"ours-{i}", background=Background()),
            "rembg": lambda i: rembg_folder(session, files, workdir / f"rembg-{i}"),
        },
        2,
        block=1,
    )
    engine.process(photo)
    stages = {k: round(v, 2) for k, v in engine.timings.items()}
    image_ms = {k: statistics.median(v) * 1000 for k, v in image_times.items()}
    fps = {k: 1.0 / statistics.median(v) for k, v in live_times.items()}
    folder_ips = {k: len(files) / statistics.median(v) for k, v in batch_times.items()}
    return {
        "model": label,
        "session": type(engine.session()).__name__,
        "input": "x".join(map(str, engine.input_size or ())),
        "image_1024_ms": {k: round(v, 2) for k, v in image_ms.items()},
        "image_speedup": round(image_ms["rembg"] / image_ms["engine"], 2),
        "live_640x480_fps": {k: round(v, 1) for k, v in fps.items()},
        "live_speedup": round(fps["engine"] / fps["rembg"], 2),
        "folder_1024_jpeg_to_png_images_per_s": {k: round(v, 2) for k, v in folder_ips.items()},
        "folder_speedup": round(folder_ips["engine"] / folder_ips["rembg"], 2),
        "mask_iou_vs_rembg": {"image": round(iou(ours_mask, theirs_mask), 4), "frame": round(frame_iou, 4)},
        "engine_stages_ms_1024": stages,
        "fastest_call_ms": {
            "image_1024": {k: round(min(v) * 1000, 2) for k, v in image_times.items()},
            "live_640x480": {k: round(min(v) * 1000, 2) for k, v in live_times.items()},
        },
    }


def installed_models(store: ModelStore) -> list[str]:
    ids = []
    for st in store.states():
        if st.model.tool == "matting" and st.usable:
            spec = spec_for(st.model.id)
            ids.append(spec.key if spec else st.model.id)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds at 1024 px")
    parser.add_argument("--frames", type=int, default=60, help="timed live frames at 640x480")
    parser.add_argument("--files", type=int, default=8, help="1024x768 JPEG files in the folder test")
    parser.add_argument("--store", type=Path, default=None, help="model store (default: from settings)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "matting.json")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from matting_fixtures import build_u2net_like, subject_image

    if args.store is None:
        from workers.settings import Settings

        args.store = Settings.load().models_dir()
    store = ModelStore(args.store)
    photo, _ = subject_image(768, 1024, seed=1)
    frames = [subject_image(480, 640, seed=10 + i)[0] for i in range(8)]
    frames = [frames[i % len(frames)] for i in range(args.frames)]

    results = []
    with tempfile.TemporaryDirectory(prefix="snowai-bench-") as tmp:
        import cv2

        files = []
        for i in range(args.files):
            path = Path(tmp) / "photos" / f"photo{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), subject_image(768, 1024, seed=100 + i)[0], [cv2.IMWRITE_JPEG_QUALITY, 92])
            files.append(path)
        models: list[tuple[str, MattingEngine]] = []
        for model_id in installed_models(store):
            models.append((model_id, MattingEngine(store, MattingOptions(model=model_id), device=args.device)))
        if not models:
            print("No matting model is installed; measuring stand-in models built for this run.", file=sys.stderr)
            stand_store = ModelStore(Path(tmp) / "store")
            tiny = stand_store.import_file(build_u2net_like(Path(tmp) / "tiny.onnx"), "matting", name="stand-in tiny")
            deep = stand_store.import_file(
                build_conv_stack(Path(tmp) / "conv.onnx"), "matting", name="stand-in conv stack"
            )
            for model in (tiny, deep):
                engine = MattingEngine(stand_store, MattingOptions(model=model.id), device=args.device)
                models.append((model.name, engine))
        for label, engine in models:
            try:
                print(f"measuring {label}...", file=sys.stderr)
                results.append(
                    bench_model(label, engine, photo, frames, args.repeats, files, Path(tmp) / "out" / label)
                )
            except Exception as exc:  # one unusable model must not stop the others
                print(f"  skipped {label}: {exc}", file=sys.stderr)
            finally:
                engine.close()

    header = (
        f"{'model':<20} {'session':<19} {'1024px ms: engine':>17} {'rembg':>6} {'x':>5} | "
        f"{'640x480 fps: engine':>19} {'rembg':>6} {'x':>5} | {'folder img/s: engine':>20} {'rembg':>6} {'x':>5} | "
        f"{'IoU':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        folder = r["folder_1024_jpeg_to_png_images_per_s"]
        print(
            f"{r['model']:<20} {r['session']:<19} {r['image_1024_ms']['engine']:>17.1f} "
            f"{r['image_1024_ms']['rembg']:>6.1f} {r['image_speedup']:>5.2f} | "
            f"{r['live_640x480_fps']['engine']:>19.1f} {r['live_640x480_fps']['rembg']:>6.1f} "
            f"{r['live_speedup']:>5.2f} | {folder['engine']:>20.1f} {folder['rembg']:>6.1f} "
            f"{r['folder_speedup']:>5.2f} | {min(r['mask_iou_vs_rembg'].values()):>6.4f}"
        )
    import onnxruntime
    import rembg

    data = {
        "machine": machine(physical_cores=physical_cores()),
        "versions": {"onnxruntime": onnxruntime.__version__, "rembg": getattr(rembg, "__version__", "?")},
        "settings": {
            "repeats_1024": args.repeats,
            "frames_640x480": args.frames,
            "folder_files": args.files,
            "device": args.device,
        },
        "results": results,
    }
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
