"""The local model store: which models are here, where their files are, and their checksums.

Layout: ``<root>/<model id>/<file name>`` for models from the manifest, and
``<root>/user/<id>/`` for the user's own imported models (with a ``snowai-model.json`` sidecar).
Models shipped inside Python packages are used in place; only files split over several packages
are joined into the store. Nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from workers import paths
from workers.errors import Cancelled, UserError
from workers.models import shipped, wheel_member
from workers.models.manifest import (
    TOOLS,
    Manifest,
    Model,
    ModelFile,
    Source,
    load_manifest,
    pip_command,
)
from workers.models.safety import check_checkpoint, name_problem, relative_name_problem, resolved_inside

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
USER_DIR = "user"
#: Folders of the store that hold what the studio derives from models and can make again: language
#: models converted from GGUF, TensorRT engines built for this machine's GPU.
CONVERTED_DIR = "converted"
TENSORRT_CACHE_DIR = ".tensorrt-cache"
CACHE_DIRS = (CONVERTED_DIR, TENSORRT_CACHE_DIR)
SIDECAR = "snowai-model.json"
EXTRACTED_SUFFIX = ".extracted.json"

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class Status(StrEnum):
    INSTALLED = "installed"
    PARTIAL = "partial"
    MISSING = "missing"
    SHIPPED_AVAILABLE = "shipped-available"
    SHIPPED_MISSING = "shipped-missing"


STATUS_TEXT = {
    Status.INSTALLED: "Installed",
    Status.PARTIAL: "Partly downloaded",
    Status.MISSING: "Not downloaded",
    Status.SHIPPED_AVAILABLE: "Ready (from an installed package)",
    Status.SHIPPED_MISSING: "Needs a package",
}

SIZE_ONLY_NOTE = "could not be verified by checksum (none is published); only its size is checked"


@dataclass
class FileState:
    spec: ModelFile
    #: "store", "package" (in place), "join" (parts installed, not yet joined) or None.
    where: str | None
    path: Path | None
    missing_packages: list[str] = field(default_factory=list)
    partial: bool = False
    #: Why a file that is in the store's folder is not used (a link that leads out of the store).
    refused: str = ""


@dataclass
class ModelState:
    model: Model
    status: Status
    files: list[FileState]
    message: str
    pip_hint: str | None = None

    @property
    def usable(self) -> bool:
        return self.status in (Status.INSTALLED, Status.SHIPPED_AVAILABLE)


@dataclass
class FileCheck:
    name: str
    ok: bool
    message: str


@dataclass
class VerifyReport:
    model_id: str
    checks: list[FileCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def size_only(self) -> bool:
        return any(SIZE_ONLY_NOTE in c.message for c in self.checks)

    def summary(self) -> str:
        if not self.checks:
            return f"{self.model_id}: nothing to verify."
        bad = [c for c in self.checks if not c.ok]
        if bad:
            return f"{self.model_id}: " + " ".join(c.message for c in bad)
        text = f"{self.model_id}: every file matches its checksum."
        if self.size_only:
            text = f"{self.model_id}: all files are present; some {SIZE_ONLY_NOTE}."
        return text


@dataclass
class DiskUsage:
    """Where the model store's disk space goes (:meth:`ModelStore.disk_usage`), and what is used in place.

    ``total`` is everything in the store's folder; ``models`` the models in it (downloaded and imported).
    Models that ship inside installed Python packages are used where they are and are not in the store:
    ``shipped`` says how much of them the studio uses, apart from ``total``.
    """

    #: Bytes in the store per model id (its folder, unfinished downloads included).
    per_model: dict[str, int]
    #: The studio's models, complete files: downloads and parts joined from packages.
    downloaded: int = 0
    #: The user's own imported models.
    imported: int = 0
    #: Unfinished downloads (Download resumes them).
    partial: int = 0
    #: What the studio made from models and can make again (converted GGUF models, TensorRT engines).
    caches: int = 0
    #: Anything else in the store's folder (models no longer known, stray files).
    other: int = 0
    #: Models used in place from installed Python packages (outside the store's folder).
    shipped: int = 0

    @property
    def models(self) -> int:
        return self.downloaded + self.imported

    @property
    def total(self) -> int:
        """Bytes in the store's folder."""
        return self.models + self.partial + self.caches + self.other

    def summary(self) -> str:
        """One sentence for the model manager and the Home page alike."""
        parts = []
        if self.models:
            parts.append(f"{human_size(self.models)} of models downloaded or imported")
        if self.partial:
            parts.append(f"{human_size(self.partial)} of unfinished downloads")
        if self.caches:
            parts.append(f"{human_size(self.caches)} of converted and cached files (made again when needed)")
        if self.other:
            parts.append(f"{human_size(self.other)} of other files")
        text = f"{human_size(self.total)} on disk" + (": " + ", ".join(parts) if parts else "")
        if self.shipped:
            text += f"; {human_size(self.shipped)} more used in place from installed packages"
        return text + "."


def file_digest(
    path: Path,
    algorithm: str = "sha256",
    *,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
) -> str:
    digest = hashlib.new(algorithm)
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            if cancel is not None and cancel():
                raise Cancelled()
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def check_digest(spec: ModelFile, path: Path, **kwargs: object) -> tuple[bool, str]:
    """Compare a file with its manifest entry: (ok, sentence)."""
    size = path.stat().st_size
    if size != spec.size:
        return False, f"{spec.name} has {size} bytes instead of {spec.size}; download it again."
    if spec.verify == "size-only":
        return True, f"{spec.name} {SIZE_ONLY_NOTE}."
    algorithm = "sha256" if spec.verify == "sha256" else "md5"
    expected = spec.sha256 if algorithm == "sha256" else spec.md5
    actual = file_digest(path, algorithm, **kwargs)  # type: ignore[arg-type]
    if actual != expected:
        return False, f"{spec.name} does not match its {algorithm} checksum; it is damaged or not the expected file."
    return True, f"{spec.name} matches its {algorithm} checksum."


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _inside(path: Path, root: Path) -> bool:
    return resolved_inside(path, root)


def _link_target(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return "somewhere else"


class ModelStore:
    """The models on this machine: status, paths, verification, import and removal."""

    def __init__(self, root: Path | None = None, manifest: Manifest | None = None) -> None:
        self.root = Path(root) if root is not None else paths.models_dir()
        self.manifest = manifest if manifest is not None else load_manifest()

    # ---- listing ---------------------------------------------------------------------------
    def models(self) -> list[Model]:
        """Every known model: the manifest's, then the user's imported ones."""
        return [*self.manifest.models, *self.user_models()]

    def get(self, model_id: str) -> Model:
        if model_id in self.manifest:
            return self.manifest.get(model_id)
        for model in self.user_models():
            if model.id == model_id:
                return model
        return self.manifest.get(model_id)  # raises a UserError naming the id

    def model_dir(self, model_id: str) -> Path:
        """The model's folder in the store, where downloads and imports write. Raises UserError when it is a
        link that leads out of the store; links inside it that lead out are removed (never written through)."""
        model = self.get(model_id)
        base = self._dir(model)
        problem = self._escape(model, base)
        if problem:
            raise UserError(problem)
        self._drop_outside_links(base)
        return base

    def _drop_outside_links(self, base: Path) -> None:
        if not base.is_dir():
            return
        for dirpath, dirs, names in os.walk(base, followlinks=False):
            for name in [*dirs, *names]:
                path = Path(dirpath) / name
                if path.is_symlink() and not _inside(path, self.root):
                    log.warning("removing %s: a link in the model store that leads to %s", path, _link_target(path))
                    path.unlink()

    def _dir(self, model: Model) -> Path:
        return self.root / USER_DIR / model.id if model.user else self.root / model.id

    def _escape(self, model: Model, path: Path) -> str:
        """A sentence when ``path`` (in the model's folder) exists but, links followed, lies outside the store."""
        if not (path.exists() or path.is_symlink()) or _inside(path, self.root):
            return ""
        what = "The folder" if path == self._dir(model) else f"The file {path.name}"
        return (
            f"{what} of {model.name} in the model store is a link to {_link_target(path)}, outside the store, "
            "so the studio does not use it; remove the link, then download or import the model again."
        )

    def file_target(self, model_id: str, name: str) -> Path:
        """Where a file of the model may be written: inside the model's folder, never through a link (a
        stray link there is removed first). Raises UserError for a name or a folder that would leave it."""
        model = self.get(model_id)
        return self._target(model, name)

    def _target(self, model: Model, name: str) -> Path:
        problem = relative_name_problem(name)
        if problem:
            raise UserError(f"The file name {name!r} of {model.name} {problem}; it was not written.")
        base = self._dir(model)
        escape = self._escape(model, base)
        if escape:
            raise UserError(escape)
        target = base / name
        current = base
        for part in Path(name).parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise UserError(
                    f"{current.name} in the folder of {model.name} is a link, so nothing is written through it; "
                    "remove it and try again."
                )
        for path in (target, target.with_name(target.name + ".part")):
            if path.is_symlink():
                log.warning("removing the link %s in the model store before writing there", path)
                path.unlink()
        return target

    # ---- status ----------------------------------------------------------------------------
    def file_state(self, model: Model, spec: ModelFile) -> FileState:
        base = self._dir(model)
        refused = self._escape(model, base)
        if refused:
            return FileState(spec, None, None, refused=refused)
        if spec.extract:
            members = self._extracted_members(base, spec)
            if members is not None:
                outside = [base / str(m["name"]) for m in members if not _inside(base / str(m["name"]), self.root)]
                if outside:
                    return FileState(spec, None, None, refused=self._escape(model, outside[0]))
                return FileState(spec, "store", base)
        else:
            path = base / spec.name
            if path.is_file() and path.stat().st_size == spec.size:
                refused = self._escape(model, path)
                if refused:
                    return FileState(spec, None, None, refused=refused)
                return FileState(spec, "store", path)
        partial = (base / (spec.name + ".part")).exists() or (not spec.extract and (base / spec.name).is_file())
        missing: list[str] = []
        for source in spec.shipped_sources:
            if source.wheel is not None:
                found = wheel_member.locate(source.wheel, spec.size)
                if found is not None:
                    return FileState(spec, "package", found)
                continue
            if source.shipped is not None:
                found = shipped.resolve(source)
                if found is not None:
                    return FileState(spec, "package", found)
            elif not shipped.missing_packages(source):
                return FileState(spec, "join", base / spec.name)
            missing.extend(shipped.missing_packages(source))
        return FileState(spec, None, None, sorted(set(missing)), partial)

    def state(self, model_id: str) -> ModelState:
        model = self.get(model_id)
        files = [self.file_state(model, f) for f in model.files]
        refused = next((f.refused for f in files if f.refused), "")
        if refused:
            return ModelState(model, Status.MISSING, files, refused)
        if all(f.where == "store" for f in files):
            msg = "Installed in the model store."
            if model.size_only:
                msg += " Some files " + SIZE_ONLY_NOTE + "."
            return ModelState(model, Status.INSTALLED, files, msg)
        if all(f.where is not None for f in files):
            joining = any(f.where == "join" for f in files)
            members = paths.wheel_members_dir()
            in_place = [f.path for f in files if f.where == "package"]
            if in_place and all(p is not None and p.is_relative_to(members) for p in in_place):
                msg = "Ready: it was installed with the studio"
            else:
                msg = "Ready: it ships inside an installed Python package"
            msg += "; its parts are joined into the store on first use." if joining else "."
            return ModelState(model, Status.SHIPPED_AVAILABLE, files, msg)
        absent = [f for f in files if f.where is None]
        needs_pip = [f for f in absent if not f.spec.download_sources]
        if needs_pip:
            packages = sorted({p for f in needs_pip for p in f.missing_packages})
            hint = pip_command(packages)
            return ModelState(
                model,
                Status.SHIPPED_MISSING,
                files,
                f"This model ships in a Python package that is not installed; run: {hint}",
                hint,
            )
        if any(f.where == "store" or f.partial for f in files):
            return ModelState(model, Status.PARTIAL, files, "Partly downloaded; click Download to finish.")
        return ModelState(model, Status.MISSING, files, "Not downloaded; nothing is fetched until you click Download.")

    def states(self) -> list[ModelState]:
        return [self.state(m.id) for m in self.models()]

    # ---- paths -----------------------------------------------------------------------------
    def path_of(self, model_id: str, file_name: str | None = None) -> Path:
        """The file (or, for folder models, the folder) to load. Raises UserError when unusable."""
        st = self.state(model_id)
        model = st.model
        if not st.usable:
            refused = next((f.refused for f in st.files if f.refused), "")
            if refused:
                raise UserError(refused)
            if st.status is Status.SHIPPED_MISSING:
                raise UserError(f"The model {model.name} is not available: {st.pip_hint}.")
            raise UserError(
                f"The model {model.name} is not installed; open Models and click Download "
                f"(or run: snowai-studio models download {model.id})."
            )
        if file_name is not None:
            fs = next((f for f in st.files if f.spec.name == file_name), None)
            if fs is None:
                raise UserError(f"The model {model.name} has no file called {file_name}.")
            if fs.where == "join":
                self.join(model.id)
                return self._dir(model) / fs.spec.name
            if fs.spec.extract:
                return self._dir(model)
            assert fs.path is not None
            return fs.path
        if not model.folder and len(model.files) == 1 and not model.files[0].extract:
            return self.path_of(model_id, model.files[0].name)
        return self.materialize(model.id)

    def materialize(self, model_id: str) -> Path:
        """Make one folder that holds every file of a folder model, and return it.

        When all files already sit in one folder (the store, or one package) that folder is
        returned as it is; otherwise shipped files are copied and parts joined into the store.
        """
        st = self.state(model_id)
        model = st.model
        base = self._dir(model)
        if any(f.where == "join" for f in st.files):
            self.join(model_id)
            st = self.state(model_id)
        folders = set()
        for f in st.files:
            if f.where == "store":
                folders.add(base.resolve())
            elif f.path is not None:
                rel_parts = len(Path(f.spec.name).parts)
                folders.add(f.path.resolve().parents[rel_parts - 1])
        if len(folders) == 1:
            return folders.pop()
        for f in st.files:
            if f.where == "package" and f.path is not None:
                target = self._target(model, f.spec.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.path, target)
        return base

    def join(self, model_id: str, *, progress: Progress | None = None, cancel: CancelCheck | None = None) -> None:
        """Join every split file of a model into the store and check its checksum."""
        model = self.get(model_id)
        for spec in model.files:
            state = self.file_state(model, spec)
            if state.where != "join":
                continue
            source = next(s for s in spec.shipped_sources if s.parts)
            dest = self._target(model, spec.name)
            digest = shipped.join_parts(source, dest, progress=progress, cancel=cancel)
            if spec.verify == "sha256" and digest != spec.sha256:
                dest.unlink(missing_ok=True)
                raise UserError(
                    f"The joined file {spec.name} does not match its sha256 checksum; "
                    "reinstall the packages it comes from."
                )

    # ---- verification ----------------------------------------------------------------------
    def verify(
        self, model_id: str, *, progress: Progress | None = None, cancel: CancelCheck | None = None
    ) -> VerifyReport:
        """Re-hash every present file of a model against the manifest (or the import sidecar)."""
        model = self.get(model_id)
        checks: list[FileCheck] = []
        for spec in model.files:
            fs = self.file_state(model, spec)
            if fs.where is None or fs.where == "join":
                checks.append(FileCheck(spec.name, False, f"{spec.name} is not installed."))
                continue
            if spec.extract:
                checks.extend(self._verify_extracted(model, spec, cancel))
                continue
            assert fs.path is not None
            ok, msg = check_digest(spec, fs.path, progress=progress, cancel=cancel)
            if not ok and fs.where == "package":
                pkg = next((s.shipped.package for s in spec.shipped_sources if s.shipped), "")
                version = shipped.package_version(pkg) if pkg else None
                msg += f" It comes from the package {pkg} {version or ''}".rstrip() + (
                    "; another version of that package may ship a different file."
                )
            checks.append(FileCheck(spec.name, ok, msg))
        return VerifyReport(model.id, checks)

    # ---- archives --------------------------------------------------------------------------
    def _marker(self, base: Path, spec: ModelFile) -> Path:
        return base / f".{spec.name}{EXTRACTED_SUFFIX}"

    def _extracted_members(self, base: Path, spec: ModelFile) -> list[dict[str, object]] | None:
        marker = self._marker(base, spec)
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
            members = data["members"]
            if spec.sha256 and data.get("archive_sha256") != spec.sha256:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        for m in members:
            if relative_name_problem(m.get("name")):
                return None
            path = base / str(m["name"])
            if not path.is_file() or path.stat().st_size != m["size"]:
                return None
        return members

    def _verify_extracted(self, model: Model, spec: ModelFile, cancel: CancelCheck | None) -> list[FileCheck]:
        base = self._dir(model)
        members = self._extracted_members(base, spec) or []
        checks = []
        for m in members:
            name = str(m["name"])
            actual = file_digest(base / name, cancel=cancel)
            if actual == m["sha256"]:
                checks.append(FileCheck(name, True, f"{name} (from {spec.name}) matches its checksum."))
            else:
                checks.append(FileCheck(name, False, f"{name} (from {spec.name}) has changed since it was unpacked."))
        return checks

    def unpack(self, model: Model, spec: ModelFile, archive: Path, archive_sha256: str) -> None:
        """Unpack a verified zip into the model folder, refusing members that would escape it."""
        base = self._dir(model)
        members: list[dict[str, object]] = []
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                for info in infos:
                    name = info.filename.replace("\\", "/")
                    target = base / name
                    problem = relative_name_problem(name)
                    if problem or not _inside(target, base):
                        why = f" (it {problem})" if problem else ""
                        raise UserError(
                            f"The archive {spec.name} contains an unsafe path {name!r}{why}; it was not unpacked."
                        )
                for info in infos:
                    name = info.filename.replace("\\", "/")
                    target = self._target(model, name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256()
                    with zf.open(info) as src, target.open("wb") as out:
                        while block := src.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                    members.append({"name": name, "size": info.file_size, "sha256": digest.hexdigest()})
        except zipfile.BadZipFile as exc:
            raise UserError(f"The archive {spec.name} could not be opened as a zip file.") from exc
        marker = self._marker(base, spec)
        marker.write_text(
            json.dumps({"archive": spec.name, "archive_sha256": archive_sha256, "members": members}, indent=1),
            encoding="utf-8",
        )
        archive.unlink(missing_ok=True)

    # ---- removal and disk usage ------------------------------------------------------------
    def remove(self, model_id: str) -> int:
        """Delete a model's files from the store; returns the bytes freed."""
        model = self.get(model_id)
        base = self._dir(model)
        if not _inside(base, self.root) or base.resolve() == self.root.resolve():
            raise UserError(f"Refusing to delete {base}: it is not inside the model store.")
        if not base.exists():
            st = self.state(model_id)
            if st.status is Status.SHIPPED_AVAILABLE:
                packages = sorted({p.package for f in model.files for s in f.shipped_sources for p in s.packages})
                raise UserError(
                    f"{model.name} ships inside the Python package {', '.join(packages)}; "
                    f"to remove it run: pip uninstall {' '.join(packages)}."
                )
            raise UserError(f"{model.name} is not in the model store; there is nothing to remove.")
        if base.is_symlink():  # a link inside the store to a folder inside it: remove the link only
            base.unlink()
            return 0
        freed = _tree_size(base)
        shutil.rmtree(base)
        log.info("removed %s (%d bytes)", base, freed)
        return freed

    def disk_usage_total(self) -> int:
        """Bytes used by the whole store folder: :attr:`DiskUsage.total` of :meth:`disk_usage`."""
        return self.disk_usage().total

    def disk_usage(self) -> DiskUsage:
        """Where the store's disk space goes: downloaded and imported models, unfinished downloads, caches,
        other files (together everything in the store's folder), and apart from that the models used in
        place from installed packages. The one computation behind every size the studio shows."""
        usage = DiskUsage({})
        known_dirs = set()
        for model in self.manifest.models:
            base = self._dir(model)
            known_dirs.add(base.name)
            size = _tree_size(base) if base.exists() else 0
            usage.per_model[model.id] = size
            if size:
                partial = _partial_size(base)
                usage.partial += partial
                usage.downloaded += size - partial
        for model in self.user_models():
            base = self._dir(model)
            size = _tree_size(base) if base.exists() else 0
            usage.per_model[model.id] = size
            usage.imported += size
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name in known_dirs:
                    continue
                size = _tree_size(entry)
                if entry.name == USER_DIR:
                    usage.other += max(0, size - usage.imported)  # folders without a readable description
                elif entry.name in CACHE_DIRS:
                    usage.caches += size
                else:
                    usage.other += size
        usage.shipped = self._shipped_size()
        return usage

    def _shipped_size(self) -> int:
        """Bytes of the package files that models are used from in place (each file once)."""
        seen: dict[str, int] = {}
        for model in self.manifest.models:
            for spec in model.files:
                if not spec.shipped_sources:
                    continue
                try:
                    fs = self.file_state(model, spec)
                except Exception as exc:  # a broken package must not hide the sizes of the others
                    log.debug("sizing %s of %s failed: %s", spec.name, model.id, exc)
                    continue
                if fs.where == "package" and fs.path is not None:
                    with contextlib.suppress(OSError):
                        seen[str(fs.path.resolve())] = _tree_size(fs.path)
        return sum(seen.values())

    # ---- the user's own models ------------------------------------------------------------
    def user_models(self) -> list[Model]:
        folder = self.root / USER_DIR
        if not folder.is_dir():
            return []
        models = []
        for entry in sorted(folder.iterdir()):
            sidecar = entry / SIDECAR
            if not sidecar.is_file():
                continue
            if entry.is_symlink() or sidecar.is_symlink() or not _inside(entry, folder):
                log.warning("ignoring %s: it is a link, and imported models live in the store itself", entry)
                continue
            if name_problem(entry.name):
                log.warning("ignoring %s: %s", entry, name_problem(entry.name))
                continue
            try:
                models.append(_model_from_sidecar(entry.name, json.loads(sidecar.read_text(encoding="utf-8"))))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring the unreadable sidecar %s: %s", sidecar, exc)
        return models

    def import_file(
        self,
        src: Path | str,
        tool: str,
        name: str | None = None,
        *,
        kind: str | None = None,
        companions: Iterable[Path | str] = (),
        progress: Progress | None = None,
        cancel: CancelCheck | None = None,
    ) -> Model:
        """Copy the user's own model file or folder into ``<root>/user/<id>/`` and describe it.

        ``companions`` are files that must sit beside a model file to use it (a Piper voice's
        ``.onnx.json``, a so-vits-svc ``config.json``): they are copied next to it, and the model is
        then kept as a folder. :func:`workers.models.detect.detect_model` says which tool, kind and
        companions a file has."""
        src = Path(src).expanduser()
        if tool not in TOOLS:
            raise UserError(f"Unknown tool {tool!r}; choose one of {', '.join(TOOLS)}.")
        if not src.exists():
            raise UserError(f"{src} does not exist.")
        if src.is_symlink():  # the user chose a link: import what it leads to, as real files
            src = src.resolve()
        name = (name or src.stem).strip()
        if not name:
            raise UserError("Give the imported model a name.")
        if "/" in name or "\\" in name or ".." in name or name.startswith("."):
            raise UserError(f"The name {name!r} may not contain '/', '\\' or '..'; choose a plain name.")
        slug = _slug(name)
        if name_problem(slug):  # "con", "nul"...: a device name on Windows
            slug = f"{slug}-model"
        model_id = _unique_id(slug, {m.id for m in self.user_models()} | set(m.id for m in self.manifest))
        dest = self.root / USER_DIR / model_id
        if not _inside(dest, self.root / USER_DIR):
            raise UserError(f"The name {name!r} would place the model outside the model store.")
        if _inside(src, self.root):
            raise UserError(f"{src} is already inside the model store.")
        if not src.is_dir() and not stat.S_ISREG(src.stat().st_mode):
            raise UserError(f"{src} is not a regular file (a device or a pipe); choose the model file itself.")
        files = [src] if src.is_file() else _files_to_import(src)
        extra = [Path(c).expanduser() for c in companions]
        if extra and not src.is_file():
            raise UserError("Only a model file, not a folder, takes companion files; put them in the folder.")
        for companion in extra:
            if companion.is_symlink():
                companion = companion.resolve()
            if not companion.is_file() or not stat.S_ISREG(companion.stat().st_mode):
                raise UserError(f"{companion.name}, which {src.name} needs beside it, was not found.")
            if companion.name in {p.name for p in files}:
                continue
            files.append(companion)
        detected = sniff_model(src)
        kind = kind or detected
        total = sum(p.stat().st_size for p in files)
        dest.mkdir(parents=True, exist_ok=False)
        entries = []
        done = 0
        try:
            for path in files:
                rel = path.name if src.is_file() else path.relative_to(src).as_posix()
                problem = relative_name_problem(rel)
                if problem:
                    raise UserError(f"The file name {rel!r} {problem}; rename it before importing.")
                target = dest / rel
                if not _inside(target, dest):
                    raise UserError(f"{path} would be copied outside the model store; import refused.")
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with path.open("rb") as fin, target.open("wb") as fout:
                    while block := fin.read(CHUNK):
                        if cancel is not None and cancel():
                            raise Cancelled()
                        fout.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
                entries.append({"name": rel, "size": path.stat().st_size, "sha256": digest.hexdigest()})
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        sidecar = {
            "name": name,
            "tool": tool,
            "kind": kind,
            "folder": src.is_dir() or len(files) > 1,
            "original_path": str(src.resolve()),
            "imported": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "files": entries,
            "sha256": entries[0]["sha256"] if src.is_file() and len(files) == 1 else None,
        }
        (dest / SIDECAR).write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
        log.info("imported %s as %s (%s, %s)", src, model_id, tool, kind)
        return _model_from_sidecar(model_id, sidecar)


def _hf_blob_link(link: Path, top: Path) -> bool:
    """True for a file of a Hugging Face cache snapshot: ``<repo>/snapshots/<rev>/name`` links to
    ``<repo>/blobs/<hash>`` (the cache keeps every file once, there; its content is copied)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    for parent in (top, *top.parents):
        if parent.parent.name == "snapshots":
            repo = parent.parent.parent
            return target.parent == (repo / "blobs").resolve() and target.is_file()
    return False


def _files_to_import(src: Path) -> list[Path]:
    """The regular files of a folder to import, in order; raises UserError for a link that leads out of
    it (other than a Hugging Face cache's own), a device or pipe, or a name that cannot be stored."""
    found: list[Path] = []
    for dirpath, dirs, names in os.walk(src, followlinks=False):
        folder = Path(dirpath)
        for name in sorted(dirs):
            if (folder / name).is_symlink():
                raise UserError(
                    f"{(folder / name).relative_to(src).as_posix()} in {src.name} is a link to "
                    f"{_link_target(folder / name)}; the studio imports only the files that are really in the "
                    "folder: copy them there instead of linking them."
                )
        for name in sorted(names):
            path = folder / name
            rel = path.relative_to(src).as_posix()
            problem = relative_name_problem(rel)
            if problem:
                raise UserError(f"{rel} in {src.name} {problem}, so it cannot be kept in the model store; rename it.")
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                if not (_inside(path, src) or _hf_blob_link(path, src)):
                    raise UserError(
                        f"{rel} in {src.name} is a link to {_link_target(path)}, outside the folder; the studio "
                        "imports only the files that are really in the folder: copy the file there instead."
                    )
                mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise UserError(f"{rel} in {src.name} is not a regular file (a device or a pipe); remove it first.")
            found.append(path)
    return sorted(found)


def summarize(store: ModelStore) -> dict[str, dict[str, int]]:
    """Per tool, how many models are known and how many are ready to use (installed or shipped)."""
    counts = {tool: {"known": 0, "ready": 0} for tool in TOOLS}
    for st in store.states():
        counts[st.model.tool]["known"] += 1
        if st.usable:
            counts[st.model.tool]["ready"] += 1
    return counts


def _model_from_sidecar(model_id: str, data: dict[str, object]) -> Model:
    raw_files = data["files"]
    if not isinstance(raw_files, list):
        raise TypeError("files must be a list")
    for f in raw_files:
        problem = relative_name_problem(f.get("name") if isinstance(f, dict) else None)
        if problem:
            raise ValueError(f"the file name {f.get('name') if isinstance(f, dict) else f!r} {problem}")
    files = tuple(
        ModelFile(name=str(f["name"]), size=int(f["size"]), sha256=str(f["sha256"]), verify="sha256", sources=())
        for f in raw_files
    )
    tool = str(data["tool"])
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool}")
    return Model(
        id=model_id,
        tool=tool,
        name=str(data["name"]),
        description=f"Imported from {data.get('original_path', '?')} on {data.get('imported', '?')}.",
        licence="your own model",
        kind=str(data.get("kind", "unknown")),
        files=files,
        folder=bool(data.get("folder", False)),
        user=True,
    )


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    return slug[:60] or "model"


def _unique_id(base: str, taken: set[str]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    return candidate


def _partial_size(folder: Path) -> int:
    """Bytes of unfinished downloads (``*.part``) in a model's folder."""
    total = 0
    for part in folder.rglob("*.part"):
        with contextlib.suppress(OSError):
            if part.is_file():
                total += part.stat().st_size
    return total


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / n).stat().st_size
    return total


# ---- sniffing --------------------------------------------------------------------------------
_IMAGE_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"%PDF": "a PDF document",
}
_WEIGHT_SUFFIXES = {".onnx", ".pth", ".pt", ".ckpt", ".safetensors", ".gguf", ".bin"}


def _describe_foreign(head: bytes) -> str | None:
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV sound file"
    return None


def _looks_like_pickle_or_zip(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _refuse_code(path: Path) -> None:
    """A PyTorch checkpoint that is damaged, or whose pickle names Python code besides weights, is refused
    here, before anything loads it (the loaders use ``weights_only=True`` too; this names what the file
    would have run)."""
    check_checkpoint(path)


def sniff_file(path: Path) -> str:
    """The kind of one model file, judged by its first bytes. Raises UserError when it is not one."""
    suffix = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(64)
    size = path.stat().st_size
    foreign = _describe_foreign(head)
    label = f"{path.name} looks like {foreign}, not a model" if foreign else None
    if suffix == ".onnx":
        # An ONNX model is a protobuf ModelProto: it starts with field 1 (ir_version), tag 0x08.
        if len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 64:
            return "onnx"
        raise UserError((label or f"{path.name} is not an ONNX model (its first bytes are not an ONNX header)") + ".")
    if suffix in (".pth", ".pt", ".ckpt"):
        if _looks_like_pickle_or_zip(head):
            _refuse_code(path)
            return "torch"
        raise UserError((label or f"{path.name} is not a PyTorch checkpoint (no zip or pickle header)") + ".")
    if suffix == ".safetensors":
        if len(head) >= 9:
            (header_len,) = struct.unpack("<Q", head[:8])
            if 2 <= header_len < size and head[8:9] == b"{":
                return "safetensors"
        raise UserError((label or f"{path.name} is not a safetensors file (bad header)") + ".")
    if suffix == ".gguf":
        if head.startswith(b"GGUF"):
            return "gguf"
        raise UserError((label or f"{path.name} is not a GGUF model (no GGUF magic)") + ".")
    if suffix == ".bin":
        if _looks_like_pickle_or_zip(head):
            _refuse_code(path)
            return "torch"
        if len(head) >= 4 and 1 <= struct.unpack("<I", head[:4])[0] <= 64 and not foreign:
            return "ctranslate2"
        raise UserError((label or f"{path.name} is neither a PyTorch nor a CTranslate2 model file") + ".")
    raise UserError(
        f"{path.name} is not a model file the studio can import; choose an ONNX (.onnx), PyTorch "
        "(.pth, .pt), safetensors, GGUF or .bin file, or a model folder."
    )


def sniff_model(path: Path) -> str:
    """The kind of a model file or folder (transformers, ctranslate2, piper-voice...)."""
    if path.is_file():
        return sniff_file(path)
    if not path.is_dir():
        raise UserError(f"{path} is neither a file nor a folder.")
    weights = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _WEIGHT_SUFFIXES]
    if not weights:
        raise UserError(f"The folder {path} holds no model weights (.onnx, .safetensors, .bin, .pth, .gguf).")
    kinds = {sniff_file(p) for p in weights}
    if (path / "config.json").is_file() and "ctranslate2" in kinds and (path / "model.bin").is_file():
        return "ctranslate2"
    if (path / "config.json").is_file():
        return "transformers"
    if "onnx" in kinds and any(p.name.endswith(".onnx.json") for p in path.iterdir()):
        return "piper-voice"
    return "folder"


def sources_of(model: Model) -> Iterable[Source]:
    for f in model.files:
        yield from f.sources
