"""Alpha matting: the studio's closed-form solver against rembg's (pymatting, numba), same masks.

    python benchmarks/alpha_matting.py [--rounds 3] [--scales 1,2] [--json benchmarks/results/alpha_matting.json]

scikit-image's astronaut, cat and coffee photos, at each scale (1: as shipped, 2: twice the size,
resized with a cubic filter), get their mask from the shipped U2-Net lite through the studio's
engine; then each round runs, one after the other, rembg's ``alpha_matting_cutout`` (pymatting's
closed-form alpha and multilevel foreground, the anchor) and the studio's engine path (the same
trimap, ``closed_form.estimate_alpha`` and ``estimate_foreground``), with the same thresholds
(240, 10) and erosion (10). pymatting is imported and run once before timing, so its numba
compilation is not counted. Reported per image: the median time of each, their ratio, and how far
the studio's alpha lies from rembg's (which is rounded down to 8 bits). Needs the test extra (rembg).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine, write_results  # noqa: E402

from workers import paths  # noqa: E402
from workers.matting import closed_form  # noqa: E402
from workers.matting.engine import MattingEngine  # noqa: E402
from workers.matting.options import MattingOptions  # noqa: E402
from workers.models.store import ModelStore  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee")
FG, BG, ERODE = 240, 10, 10


def ours(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    trimap = closed_form.trimap_from_mask(mask, FG, BG, ERODE)
    alpha = closed_form.estimate_alpha(rgb / 255.0, trimap)
    return alpha, closed_form.estimate_foreground(rgb / 255.0, alpha)


def theirs(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from PIL import Image
    from rembg.bg import alpha_matting_cutout

    return np.asarray(alpha_matting_cutout(Image.fromarray(rgb), Image.fromarray(mask), FG, BG, ERODE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per image (median)")
    parser.add_argument("--scales", default="1,2", help="image scales, comma-separated")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "alpha_matting.json")
    args = parser.parse_args()
    from skimage import data

    engine = MattingEngine(ModelStore(paths.models_dir()), MattingOptions(), device="cpu")
    started = time.perf_counter()
    import pymatting  # noqa: F401 - numba compiles (or loads its cache) here, before any timing

    compile_s = time.perf_counter() - started
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        for name in PHOTOS:
            rgb = getattr(data, name)()[..., :3]
            if scale != 1:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            mask = engine.predict_mask(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            t_ours, t_theirs = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                ref = theirs(rgb, mask)
                t1 = time.perf_counter()
                alpha, _fg = ours(rgb, mask)
                t2 = time.perf_counter()
                t_theirs.append((t1 - t0) * 1000)
                t_ours.append((t2 - t1) * 1000)
            diff = np.abs(alpha - ref[..., 3] / 255.0)
            trimap = closed_form.trimap_from_mask(mask, FG, BG, ERODE)
            rows.append({
                "image": f"{name} {rgb.shape[1]}x{rgb.shape[0]}",
                "unknown_pixels": int(((trimap > 25) & (trimap < 230)).sum()),
                "rembg_ms": round(statistics.median(t_theirs), 1),
                "studio_ms": round(statistics.median(t_ours), 1),
                "speedup": round(statistics.median(t_theirs) / statistics.median(t_ours), 2),
                "alpha_max_diff": round(float(diff.max()), 4),
                "alpha_mean_diff": round(float(diff.mean()), 5),
            })
    print(f"{'image':<22} {'unknown':>8} {'rembg ms':>9} {'studio ms':>10} {'x':>6} {'max |da|':>9} {'mean |da|':>10}")
    for r in rows:
        print(f"{r['image']:<22} {r['unknown_pixels']:>8} {r['rembg_ms']:>9} {r['studio_ms']:>10} "
              f"{r['speedup']:>6} {r['alpha_max_diff']:>9} {r['alpha_mean_diff']:>10}")
    summary = {
        "median_speedup": round(statistics.median(r["speedup"] for r in rows), 2),
        "worst_alpha_max_diff": max(r["alpha_max_diff"] for r in rows),
        "pymatting_import_s": round(compile_s, 1),
    }
    print(f"\nmedian speed-up over rembg/pymatting: {summary['median_speedup']}x; worst alpha difference "
          f"{summary['worst_alpha_max_diff']}; pymatting's import (numba) took {summary['pymatting_import_s']} s")
    write_results(args.json, {"machine": machine(), "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
