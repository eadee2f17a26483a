"""Each downloadable swapper's pipeline cost, live, against a Deep-Live-Cam-style loop in the same run.

    python benchmarks/face_swappers.py [--frames 40] [--warmup 5] [--json benchmarks/results/face_swappers.json]

For every swapper the model manager offers (inswapper, HyperSwap 1a/1b/1c, SimSwap 256/512, UniFace),
and for inswapper with pixel boost 2x2 and with the occlusion and region masks, the studio's live path
(:class:`~workers.face_swap.pipeline.FaceSwapPipeline`: detection on a small copy every few frames,
tracking in between) runs beside the loop Deep-Live-Cam's live mode runs (detect at full size and
swap every face, every frame), one frame each in turn, on the same frames (benchmarks/face_swap.py's
drifting astronaut, 640x480), with the same engine class and models.

The models are the tests' stand-ins: graphs with each real model's inputs and outputs (crop size,
template, normalisation, identity path) that cost almost nothing. The numbers are therefore the
pipeline's own cost for each swapper (alignment at its size, normalisation, identity conversion,
pixel-boost splitting, masks, paste-back), not the real networks' inference time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
from common import machine, write_results  # noqa: E402
from face_fixtures import EXTRA_BUILDERS, detector_faces, install_face_models, second_face, second_face_layout  # noqa: E402
from face_swap import Ours, Reference, frames_for, moving_face, side_by_side, summary  # noqa: E402

from workers.face_swap.insight import InsightEngine  # noqa: E402
from workers.face_swap.options import SWAPPERS, FaceSwapOptions  # noqa: E402
from workers.face_swap.swappers import SWAPPER_SPECS  # noqa: E402

WIDTH, HEIGHT = 640, 480


def configurations() -> list[tuple[str, dict[str, Any]]]:
    rows = [(model_id, {"swapper": model_id}) for model_id in SWAPPERS if model_id != "inswapper-128-fp16"]
    rows.append(("inswapper-128, pixel boost 2x2", {"swapper": "inswapper-128", "pixel_boost": 2}))
    rows.append(("inswapper-128, occlusion + skin mask", {
        "swapper": "inswapper-128", "occlusion_mask": True, "face_regions": "skin"}))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "face_swappers.json")
    args = parser.parse_args()
    cv2.setNumThreads(os.cpu_count() or 1)
    frames = frames_for(WIDTH, HEIGHT, args.frames + args.warmup)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="snowai-swappers-") as tmp:
        faces = [moving_face(WIDTH, HEIGHT), *detector_faces(second_face(), second_face_layout())]
        models = ["insightface-buffalo-l", "inswapper-128", *EXTRA_BUILDERS]
        store = install_face_models(Path(tmp) / "models", faces=faces, models=models)
        for label, extra in configurations():
            print(f"measuring {label}...", file=sys.stderr)
            options = FaceSwapOptions(engine="insightface", preset="cpu", **extra)
            source = [second_face()]
            ours = Ours(store, options, source)
            reference = Reference(
                InsightEngine(store, swapper=extra["swapper"], preset="cpu", det_size=640), options.copy(), source
            )
            try:
                times = side_by_side({"ours": ours, "reference": reference}, frames, args.warmup)
            finally:
                ours.close()
                reference.close()
            a = summary(times["ours"], ours.stage_ms, ours.swapped)
            b = summary(times["reference"], reference.stage_ms, reference.swapped)
            spec = SWAPPER_SPECS[extra["swapper"]]
            rows.append({
                "config": label,
                "crop_px": spec.size * int(extra.get("pixel_boost", 1)),
                "identity": spec.source,
                "ours": a,
                "reference": b,
                "speedup": round(a["fps"] / b["fps"], 2),
            })  # fmt: skip

    header = f"{'swapper (stand-in models)':<38} {'crop':>5} {'identity':>9} {'ours fps':>9} {'DLC-loop fps':>13} " \
             f"{'x':>6} {'ours swap ms':>13} {'swapped':>9}"  # fmt: skip
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['config']:<38} {r['crop_px']:>5} {r['identity']:>9} {r['ours']['fps']:>9.1f} "
            f"{r['reference']['fps']:>13.1f} {r['speedup']:>5.2f}x {r['ours']['stage_ms'].get('swap', 0.0):>13.2f} "
            f"{r['ours']['frames_swapped']:>4}/{args.frames}"
        )
    speedups = [r["speedup"] for r in rows]
    data = {
        "machine": machine(),
        "frames": args.frames,
        "resolution": f"{WIDTH}x{HEIGHT}",
        "rows": rows,
        "summary": {
            "configurations": len(rows),
            "min_speedup_vs_dlc_loop": min(speedups),
            "max_speedup_vs_dlc_loop": max(speedups),
            "every_frame_swapped": all(r["ours"]["frames_swapped"] == args.frames for r in rows),
            "note": "stand-in models: the pipeline's own cost per swapper, not the real networks' inference",
        },
    }
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
