"""Background removal: speed against plain rembg, the first cut-out, live, and quality.

    python benchmarks/matting.py [--sections compare,first,live,quality] [--quick] [--images /tmp/matting-bench]
                                 [--json benchmarks/results/matting.json]

Sections (all by default):

- ``first``: the first cut-out as a user meets it: a fresh process, ``snowai-studio remove-bg`` on one
  photo with the default model (u2netp). Cold: the files that process reads (the model, onnxruntime,
  OpenCV, numpy, Pillow and the studio's own modules) are first dropped from the OS cache with
  ``posix_fadvise(DONTNEED)`` (nothing else is cleared; pages other processes have mapped stay);
  warm: the median of the next runs. Process wall time, model load time and model time (``--timings``).
- ``live``: live frames a second per installed model at 640x360 (mask and composite on a colour, as
  the live worker does), with and without steadying the mask; what the steadier costs; the frame time
  live measures for its choice of model, and the model live would use here; the mask's change from
  frame to frame on a still subject, raw and steadied.
- ``quality``: the IoU of the default model (u2netp) against the true mask on composites whose true
  mask is known (subjects cut from scikit-image's sample photos pasted onto other backgrounds:
  ``benchmarks/matting_composites.py``). ``--images DIR`` saves each composite, its cut-out and the
  mask errors as PNGs.
- ``compare``: the studio's engine against plain rembg, same model file, same images. For every
  matting model installed in the model store (and, when none is, for U²-Net-shaped stand-in
  models that this script builds: the tiny test model, and one with the compute of a real network, a
  stack of 3x3 convolutions at 320x320), it measures side by side in one run:

- ms per image on a 1024x768 photo: ``MattingEngine.process`` (BGRA cutout) against
  ``rembg.remove(image, session=new_session(...))`` (RGBA cutout);
- live frames per second on 640x480 frames (one over the median time per frame), the same two calls;
- the IoU of the two masks (``predict_mask`` against ``remove(..., only_mask=True)``).

With ``--int8`` each installed model also runs from its checked 8-bit copy (made and checked first;
a model the check refuses is left out), and with ``--model-file PATH`` a model file runs both ways.
The summary's ``warm_ratio_vs_rembg`` and ``mask_iou_vs_rembg`` are the worst of the models as they
are, ``int8_warm_ratio_vs_rembg`` and ``int8_mask_iou_vs_rembg`` of their copies.

Both sides run one after the other in each round (A, B, A, B...), so that a busy machine slows
both alike. Nothing is downloaded: a model whose file is absent is skipped.

The table is printed; the JSON file has every figure and a ``summary`` object.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The models as they are unless a row asks for the 8-bit copy (--int8, --model-file): no copy is made
# in the background while something else is timed.
os.environ.setdefault("SNOWAI_INT8_COPIES", "0")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.matting.engine import MattingEngine, physical_cores  # noqa: E402
from workers.matting.options import DEFAULT_MODEL, MattingOptions, spec_for  # noqa: E402
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
        "precision": engine.precision,
        "int8_check": dataclasses.asdict(verdict) if (verdict := engine.int8_verdict()) else None,
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


# ---- the first cut-out ---------------------------------------------------------------------------


def _module_dirs() -> list[Path]:
    """Folders of what ``remove-bg`` reads: the packages it imports and their bundled libraries."""
    import cv2
    import numpy
    import onnxruntime
    import PIL

    dirs = [Path(m.__file__).parent for m in (onnxruntime, cv2, numpy, PIL)]
    site = Path(numpy.__file__).parent.parent
    dirs += sorted(site.glob("*.libs"))
    dirs += [ROOT / "workers", ROOT / "snowai_studio", ROOT / "resources"]
    return dirs


def drop_from_os_cache(paths: list[Path]) -> tuple[int, int]:
    """Ask the OS to forget the cached pages of these files (and of every file under these folders);
    returns (files, bytes). Pages that a running process has mapped stay."""
    files = nbytes = 0
    for top in paths:
        for path in [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file()):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                files += 1
                nbytes += os.fstat(fd).st_size
            except (OSError, AttributeError):
                pass
            finally:
                os.close(fd)
    return files, nbytes


def resident_bytes(paths: list[Path]) -> int | None:
    """Bytes of these files (and of the files under these folders) in the OS cache now (Linux's
    mincore; None where it cannot be asked)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    prot_read, map_shared = 1, 1
    total = 0
    for top in paths:
        for path in [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file()):
            try:
                size = path.stat().st_size
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                if size == 0:
                    continue
                address = libc.mmap(None, size, prot_read, map_shared, fd, 0)
                if address in (None, ctypes.c_void_p(-1).value):
                    continue
                pages = (size + page - 1) // page
                vec = (ctypes.c_ubyte * pages)()
                if libc.mincore(address, size, vec) == 0:
                    total += sum(v & 1 for v in vec) * page
                libc.munmap(address, size)
            finally:
                os.close(fd)
    return total


def _remove_bg(photo: Path, outdir: Path, store_root: Path, model: str) -> dict:
    import re
    import subprocess

    script = Path(sys.executable).with_name("snowai-studio")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "snowai_studio.cli"]
    command += ["remove-bg", str(photo), "-o", str(outdir), "--model", model, "--store", str(store_root),
                "--timings"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"remove-bg failed: {done.stderr.strip()[-400:]}")
    line = next((x for x in done.stderr.splitlines() if x.startswith("Timings (ms): ")), "")
    figures = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)", line.split(": ", 1)[-1])}
    return {"wall_s": round(wall, 3), "load_ms": figures.get("load"), "model_ms": figures.get("model"),
            "stages_ms": figures}


def bench_first_cutout(store: ModelStore, model: str, photo: Path, workdir: Path, warm_runs: int = 3) -> dict:
    """A fresh process cuts out one photo: cold (its files dropped from the OS cache first), then warm."""
    try:
        model_file = store.path_of(spec_for(model).manifest_id if spec_for(model) else model)
    except Exception as exc:
        raise RuntimeError(f"{model} is not installed: {exc}") from None
    files = [Path(model_file), photo, *_module_dirs()]
    before = resident_bytes(files)
    dropped = drop_from_os_cache(files)
    still = resident_bytes(files)
    cold = _remove_bg(photo, workdir / "cold", store.root, model)
    warm = [_remove_bg(photo, workdir / f"warm{i}", store.root, model) for i in range(warm_runs)]
    best = sorted(warm, key=lambda r: r["wall_s"])[len(warm) // 2]
    return {
        "model": model,
        "photo": f"{photo.name}",
        "dropped_from_os_cache": {
            "files": dropped[0],
            "mb": round(dropped[1] / 1e6, 1),
            "cached_mb_before": round(before / 1e6, 1) if before is not None else None,
            "cached_mb_after": round(still / 1e6, 1) if still is not None else None,
        },
        "cold": cold,
        "warm_median": best,
        "warm_runs_s": [r["wall_s"] for r in warm],
    }


# ---- live ---------------------------------------------------------------------------------------


def live_frames(count: int, size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    """A webcam-like sequence at ``size``: a person on a studio backdrop who stands still for the first
    half and then sways (a few pixels a frame), with a little sensor noise."""
    import cv2
    from matting_composites import background, subjects

    width, height = size
    image, mask = subjects()["astronaut"]
    scale = height / image.shape[0]
    person = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    back = background("studio", height, width).astype(np.float32)
    rng = np.random.default_rng(3)
    frames = []
    for i in range(count):
        dx = 0 if i < count // 2 else round(12 * np.sin((i - count // 2) / 4))
        x0 = (width - person.shape[1]) // 2 + dx
        frame = back.copy()
        region = frame[:, x0 : x0 + person.shape[1]]
        a = alpha[..., None]
        region[:] = person * a + region * (1 - a)
        frame += rng.normal(0, 2.0, frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def _mean_change(masks: list[np.ndarray]) -> float:
    """The mean absolute change of a mask from one frame to the next (0..255)."""
    return statistics.mean(
        float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) for a, b in itertools.pairwise(masks)
    )


def bench_live(store: ModelStore, models: list[str], frames: int, device: str) -> list[dict]:
    from workers.matting.compose import Background, composite
    from workers.matting.live_speed import FAST_MODEL, LIVE_MIN_FPS, measure_frame_ms, plan_live
    from workers.matting.steady import MaskSteadier

    size = (640, 360)
    sequence = live_frames(max(frames, 8), size)
    still = sequence[: len(sequence) // 2]
    green = Background(kind="color", color=(0, 255, 0))
    measured: dict[str, float] = {}
    engines: dict[str, MattingEngine] = {}
    rows = []
    for model in models:
        engine = engines[model] = MattingEngine(store, MattingOptions(model=model), device=device)
        engine.load()
        steadier = MaskSteadier()

        def plain(i: int, engine: MattingEngine = engine) -> None:
            frame = sequence[i % len(sequence)]
            composite(frame, engine.predict_mask(frame), green)

        def steady(i: int, engine: MattingEngine = engine, steadier: MaskSteadier = steadier) -> None:
            frame = sequence[i % len(sequence)]
            composite(frame, steadier(frame, engine.predict_mask(frame)), green)

        times = alternate({"plain": plain, "steady": steady}, frames)
        measured[model] = measure_frame_ms(engine.predict_mask, size)
        # The steadier alone, and the flicker on the still half.
        masks = [engine.predict_mask(f) for f in still]
        steadier.reset()
        t0 = time.perf_counter()
        steadied = [steadier(f, m) for f, m in zip(still, masks, strict=True)]
        steady_ms = (time.perf_counter() - t0) * 1000 / len(still)
        settle = min(4, len(still) - 2)
        raw_change = _mean_change(masks[settle:])
        steady_change = _mean_change(steadied[settle:])
        rows.append({
            "model": model,
            "label": engine.model_label,
            "device": engine.compute_device,
            "fps_640x360": {k: round(1.0 / statistics.median(v), 2) for k, v in times.items()},
            "frame_ms_live_measure": round(measured[model], 1),
            "steady_ms_640x360": round(steady_ms, 2),
            "still_mask_change_per_frame": {"raw": round(raw_change, 3), "steady": round(steady_change, 3)},
        })

    def frame_ms(model: str) -> float:
        if model not in measured:
            engine = engines.setdefault(model, MattingEngine(store, MattingOptions(model=model), device=device))
            measured[model] = measure_frame_ms(engine.predict_mask, size)
        return measured[model]

    for row in rows:
        engine = engines[row["model"]]
        plan = plan_live(row["model"], label=engine.label_of, frame_ms=frame_ms, gpu=engine.compute_device != "cpu",
                         fast=FAST_MODEL, min_fps=LIVE_MIN_FPS, size=size)
        row["live_uses_here"] = plan.used_label
    for engine in engines.values():
        engine.close()
    return rows


# ---- quality ------------------------------------------------------------------------------------


def bench_quality(store: ModelStore, model: str, device: str, images: Path | None) -> list[dict]:
    import cv2
    from matting_composites import composites

    from workers.matting.compose import checkerboard
    from workers.media.pixels import blend

    engine = MattingEngine(store, MattingOptions(model=model), device=device)
    rows = []
    if images is not None:
        images.mkdir(parents=True, exist_ok=True)
    for item in composites():
        alpha = engine.predict_mask(item.bgr)
        rows.append({"composite": item.name, "size": f"{item.bgr.shape[1]}x{item.bgr.shape[0]}",
                     "iou": round(iou(alpha, item.truth), 4)})
        if images is not None:
            h, w = alpha.shape
            cut = blend(item.bgr, alpha, checkerboard(h, w))
            errors = np.zeros((h, w, 3), np.uint8)
            errors[(alpha >= 128) & (item.truth == 0)] = (0, 0, 255)  # red: background kept
            errors[(alpha < 128) & (item.truth > 0)] = (255, 128, 0)  # blue: subject lost
            errors[(alpha >= 128) & (item.truth > 0)] = (90, 90, 90)
            name = item.name.replace(" ", "-")
            cv2.imwrite(str(images / f"{name}.png"), np.hstack([item.bgr, cut, errors]))
    engine.close()
    return rows


# ---- the run ------------------------------------------------------------------------------------

SECTIONS = ("first", "live", "quality", "compare")


def copy_engine(store: ModelStore, model: str, label: str, device: str) -> list[tuple[str, MattingEngine]]:
    """The engine of ``model``'s checked 8-bit copy (made and checked first), or none when the check
    refused it."""
    engine = MattingEngine(store, MattingOptions(model=model, int8=True), device=device)
    engine.load()
    engine.wait_int8()
    engine.load()  # the copy takes over once made
    verdict = engine.int8_verdict()
    print(f"  8-bit copy of {label}: {verdict.reason if verdict else 'not tried'}", file=sys.stderr)
    if engine.precision != "int8":
        engine.close()
        return []
    return [(f"{label} 8-bit", engine)]


def run_compare(args: argparse.Namespace, store: ModelStore) -> list[dict]:
    from matting_fixtures import build_u2net_like, subject_image

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
        for model_id in installed_models(store) if not args.model_file else []:
            models.append((model_id, MattingEngine(store, MattingOptions(model=model_id), device=args.device)))
            if args.int8:
                models += copy_engine(store, model_id, model_id, args.device)
        for path in args.model_file:
            # A model file (IS-Net, say): as it is, and from its 8-bit copy (made and checked first).
            model = str(path.resolve())
            models.append((path.name, MattingEngine(store, MattingOptions(model=model), device=args.device)))
            models += copy_engine(store, model, path.name, args.device)
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
                print(f"comparing {label} with rembg...", file=sys.stderr)
                results.append(
                    bench_model(label, engine, photo, frames, args.repeats, files, Path(tmp) / "out" / label)
                )
            except Exception as exc:  # one unusable model must not stop the others
                print(f"  skipped {label}: {exc}", file=sys.stderr)
            finally:
                engine.close()
    return results


def print_compare(results: list[dict]) -> None:
    header = (
        f"{'model':<20} {'session':<19} {'1024px ms: engine':>17} {'rembg':>6} {'x':>5} | "
        f"{'640x480 fps: engine':>19} {'rembg':>6} {'x':>5} | {'folder img/s: engine':>20} {'rembg':>6} {'x':>5} | "
        f"{'IoU':>6}"
    )
    print("\nEngine against plain rembg")
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


def print_first(first: dict) -> None:
    cold, warm = first["cold"], first["warm_median"]
    print(f"\nFirst cut-out, a fresh process (remove-bg, {first['model']}, {first['photo']})")
    print(f"{'':<6} {'process s':>10} {'load ms':>8} {'model ms':>9}")
    for name, run in (("cold", cold), ("warm", warm)):
        print(f"{name:<6} {run['wall_s']:>10.2f} {run['load_ms'] or 0:>8.1f} {run['model_ms'] or 0:>9.1f}")
    dropped = first["dropped_from_os_cache"]
    print(f"(cold: {dropped['files']} files, {dropped['mb']} MB, dropped from the OS cache first: "
          f"{dropped['cached_mb_before']} MB of them were cached, {dropped['cached_mb_after']} MB stayed, "
          "mapped by running programs)")


def print_live(rows: list[dict]) -> None:
    print("\nLive at 640x360 (mask + composite)")
    header = (f"{'model':<26} {'fps':>6} {'steadied':>9} {'steady ms':>10} {'measured ms':>12} "
              f"{'still change raw':>17} {'steadied':>9}  live uses here")
    print(header)
    print("-" * len(header))
    for r in rows:
        fps, change = r["fps_640x360"], r["still_mask_change_per_frame"]
        print(f"{r['label']:<26} {fps['plain']:>6.1f} {fps['steady']:>9.1f} {r['steady_ms_640x360']:>10.2f} "
              f"{r['frame_ms_live_measure']:>12.1f} {change['raw']:>17.3f} {change['steady']:>9.3f}  "
              f"{r['live_uses_here']}")


def print_quality(model: str, rows: list[dict]) -> None:
    print(f"\nQuality of {model} on composites with a known mask (IoU)")
    for r in rows:
        print(f"  {r['composite']:<26} {r['size']:>8} {r['iou']:>7.4f}")
    ious = [r["iou"] for r in rows]
    print(f"  {'mean':<26} {'':>8} {statistics.mean(ious):>7.4f}")


def summarize(data: dict) -> dict:
    summary: dict[str, Any] = {}
    first = data.get("first_cutout")
    if first:
        summary["first_cutout_s"] = {"cold": first["cold"]["wall_s"], "warm": first["warm_median"]["wall_s"]}
        summary["first_cutout_model_ms"] = {"cold": first["cold"]["model_ms"], "warm": first["warm_median"]["model_ms"]}
        summary["first_cutout_load_ms"] = {"cold": first["cold"]["load_ms"], "warm": first["warm_median"]["load_ms"]}
    live = data.get("live")
    if live:
        summary["live_fps_640x360"] = {r["model"]: r["fps_640x360"] for r in live}
        summary["live_uses_here"] = {r["model"]: r["live_uses_here"] for r in live}
        summary["steady_ms_640x360"] = {r["model"]: r["steady_ms_640x360"] for r in live}
        summary["still_mask_change_per_frame"] = {r["model"]: r["still_mask_change_per_frame"] for r in live}
    quality = data.get("quality")
    if quality:
        ious = [r["iou"] for r in quality["composites"]]
        summary["quality"] = {"model": quality["model"], "composites": len(ious),
                              "mean_iou": round(statistics.mean(ious), 4), "min_iou": round(min(ious), 4)}
    compare = data.get("compare")
    if compare:
        summary["engine_vs_rembg_speedup"] = {
            r["model"]: {"image": r["image_speedup"], "live": r["live_speedup"], "folder": r["folder_speedup"]}
            for r in compare
        }
        # The figures the speed issue tracks: the same model against rembg, warm; masks alike. The
        # models as they are, and (--int8, --model-file) from their checked 8-bit copies.
        for key, rows in (("", [r for r in compare if r["precision"] != "int8"]),
                          ("int8_", [r for r in compare if r["precision"] == "int8"])):
            if rows:
                summary[f"{key}warm_ratio_vs_rembg"] = min(min(r["image_speedup"], r["folder_speedup"]) for r in rows)
                summary[f"{key}mask_iou_vs_rembg"] = min(min(r["mask_iou_vs_rembg"].values()) for r in rows)
    if first:
        summary["cold_first_image_s"] = first["cold"]["wall_s"]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"which sections to run ({', '.join(SECTIONS)})")
    parser.add_argument("--repeats", type=int, default=20, help="compare: timed rounds at 1024 px")
    parser.add_argument("--frames", type=int, default=60, help="compare and live: timed live frames")
    parser.add_argument("--files", type=int, default=8, help="compare: 1024x768 JPEG files in the folder test")
    parser.add_argument("--warm-runs", type=int, default=3, help="first: warm runs after the cold one")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="first and quality: the model (default u2netp)")
    parser.add_argument("--store", type=Path, default=None, help="model store (default: from settings)")
    parser.add_argument("--images", type=Path, default=None, help="quality: save composites and cut-outs here")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "matting.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and files (a few minutes here)")
    parser.add_argument("--model-file", type=Path, action="append", default=[],
                        help="compare: an .onnx model file instead of the installed models, as it is and "
                        "from its checked 8-bit copy (repeatable)")
    parser.add_argument("--int8", action="store_true",
                        help="compare: each installed model also from its checked 8-bit copy")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.frames, args.files, args.warm_runs = 6, 20, 4, 1
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    if args.store is None:
        from workers.settings import Settings

        args.store = Settings.load().models_dir()
    store = ModelStore(args.store)
    models = installed_models(store)
    data: dict[str, Any] = {}

    if "first" in sections:
        print("first cut-out, cold and warm...", file=sys.stderr)
        from matting_composites import composites

        with tempfile.TemporaryDirectory(prefix="snowai-first-") as tmp:
            import cv2

            photo = Path(tmp) / "astronaut-on-launch-pad.jpg"
            image = composites()[0].bgr
            cv2.imwrite(str(photo), cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_CUBIC),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            try:
                data["first_cutout"] = bench_first_cutout(store, args.model, photo, Path(tmp) / "out", args.warm_runs)
                print_first(data["first_cutout"])
            except RuntimeError as exc:
                print(f"  skipped: {exc}", file=sys.stderr)
    if "live" in sections and models:
        print("live...", file=sys.stderr)
        data["live"] = bench_live(store, models, args.frames, args.device)
        print_live(data["live"])
    if "quality" in sections:
        print("quality...", file=sys.stderr)
        try:
            rows = bench_quality(store, args.model, args.device, args.images)
            data["quality"] = {"model": args.model, "composites": rows}
            print_quality(args.model, rows)
        except Exception as exc:
            print(f"  skipped: {exc}", file=sys.stderr)
    if "compare" in sections:
        data["compare"] = run_compare(args, store)
        print_compare(data["compare"])

    import onnxruntime

    versions = {"onnxruntime": onnxruntime.__version__}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions["rembg"] = version("rembg")
    out = {
        "machine": machine(physical_cores=physical_cores()),
        "versions": versions,
        "settings": {
            "sections": sections,
            "repeats_1024": args.repeats,
            "frames": args.frames,
            "folder_files": args.files,
            "device": args.device,
            "model": args.model,
        },
        "summary": summarize(data),
        **data,
    }
    write_results(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
