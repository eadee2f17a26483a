"""What the studio refuses to trust in model files and model paths, with a sentence for each.

Paths. Every name that becomes a path in the model store (a model id, a file named by the manifest, a
member of a downloaded archive, a file of an imported folder, a name in an import's sidecar) must stay
inside its folder on every platform: relative, no ``..``, no drive letter or UNC prefix, no backslash,
no characters Windows refuses (``< > : " | ? *``, control characters), no trailing dot or space
(Windows drops them, so two names would meet), and no reserved device name (``CON``, ``NUL``,
``COM1``... with or without an extension), which on Windows opens a device instead of a file.
:func:`check_relative_name` says why a name is refused. :func:`resolved_inside` checks that a path, with
every symbolic link followed, still lies inside a root.

Pickles. A PyTorch checkpoint (``.pth``, ``.pt``, ``.ckpt``, ``pytorch_model.bin``) is a pickle, and a
pickle can name any Python function to call while it is read. The loaders read checkpoints with
``torch.load(weights_only=True)``, which refuses such names; :func:`code_in_pickle` walks a checkpoint
with :mod:`pickletools` (nothing is executed) to name what it would have called, so that the refusal
says so in a sentence (:func:`refusal`), and :func:`unsafe_weights` does that for a model folder.
"""

from __future__ import annotations

import io
import logging
import os
import pickletools
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from workers.errors import UserError

log = logging.getLogger(__name__)

#: Device names Windows reserves in every folder, with or without an extension (case does not matter).
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in range(10)]
    + [f"LPT{i}" for i in range(10)]
    + ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
)
#: Characters no Windows file name may hold (besides control characters and the path separators).
_WINDOWS_BAD = set('<>:"|?*')
#: The longest file or folder name most file systems take (bytes in UTF-8).
MAX_NAME_BYTES = 255

#: Modules a weights-only checkpoint's pickle may name (tensors, storages, ordered dicts, numpy arrays).
WEIGHT_MODULES = ("torch", "collections", "numpy", "_codecs")
#: Files that torch or transformers read as pickles when a model folder is loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
#: The most one pickle opcode may ask to read at once while a file is walked (a longer "string" is taken
#: for raw tensor bytes or damage, and the walk stops there instead of reading gigabytes).
_MAX_READ = 64 * 1024 * 1024


# ---- names and paths ----------------------------------------------------------------------------------------


def name_problem(part: str) -> str | None:
    """Why one path component cannot be a file or folder name on every platform, or None."""
    if part in ("", ".", ".."):
        return "would leave its folder" if part == ".." else "has an empty part"
    if any(ord(c) < 32 or ord(c) == 127 for c in part):
        return "contains a control character"
    bad = sorted(_WINDOWS_BAD.intersection(part))
    if bad:
        return f"contains {' '.join(bad)}, which Windows does not allow in file names"
    if part[-1] in ". ":
        return "ends with a dot or a space, which Windows drops"
    stem = part.split(".", 1)[0].rstrip(" ").upper()
    if stem in RESERVED_NAMES:
        return f"uses {stem}, a device name Windows reserves"
    if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"has a part longer than {MAX_NAME_BYTES} bytes"
    return None


def relative_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a relative path inside a folder (``a/b.onnx`` style, '/' separated), or None."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if "\\" in name:
        return "contains a backslash"
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        return "is absolute"
    win = PureWindowsPath(name)
    if win.drive or win.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    for part in name.split("/"):
        problem = name_problem(part)
        if problem:
            return problem
    return None


def check_relative_name(name: object, what: str = "The file name") -> str:
    """``name`` if it is a safe relative path; else a UserError saying why (``what`` starts the sentence)."""
    problem = relative_name_problem(name)
    if problem:
        raise UserError(f"{what} {name!r} {problem}; it must stay inside its model folder.")
    assert isinstance(name, str)
    return name


def resolved_inside(path: Path, root: Path) -> bool:
    """True when ``path`` lies inside ``root`` (or is it) once every symbolic link is followed."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def links_between(path: Path, root: Path) -> list[Path]:
    """The symbolic links on the way from ``root`` (itself not counted) down to ``path``."""
    path, root = Path(path), Path(root)
    try:
        rel = path.relative_to(root)
    except ValueError:
        return [path] if path.is_symlink() else []
    found = []
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            found.append(current)
    return found


# ---- pickles ------------------------------------------------------------------------------------------------

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _globals_in(stream: IO[bytes]) -> Iterator[str]:
    """Every ``module.name`` one pickle names (GLOBAL, INST, STACK_GLOBAL), read without running it."""
    memo: dict[int, object] = {}
    recent: list[object] = []
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in _STRING_OPS:
            recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif name in _GET_OPS:
            recent.append(memo.get(int(arg)))  # type: ignore[arg-type]
        elif name in _PUT_OPS:
            memo[int(arg)] = recent[-1] if recent else None  # type: ignore[arg-type]
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("GLOBAL", "INST") and isinstance(arg, str):
            module, _, attr = arg.partition(" ")
            yield f"{module}.{attr}"
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if isinstance(module, str) and isinstance(attr, str):
                yield f"{module}.{attr}"
            else:
                yield "an object it builds at load time"
            recent.append(None)
        else:
            recent.append(None)
        if len(recent) > 64:
            del recent[:-8]


class _Bounded:
    """A read-only view of a binary stream that refuses single reads longer than :data:`_MAX_READ`."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > _MAX_READ:
            raise ValueError("a pickle opcode asked for more data than a checkpoint's pickle holds")
        return self._stream.read(n)

    def readline(self) -> bytes:
        return self._stream.readline(_MAX_READ)

    def tell(self) -> int:
        return self._stream.tell()


def _pickle_streams(path: Path) -> Iterator[IO[bytes]]:
    """The pickles a checkpoint holds: ``data.pkl`` of a zip checkpoint, or the file itself (a plain
    pickle, or the legacy torch format: several pickles one after the other, then raw tensor data)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".pkl"):
                    yield io.BytesIO(archive.read(member))
        return
    with path.open("rb") as fh:
        yield fh  # type: ignore[misc]


def pickle_globals(path: Path, *, max_pickles: int = 8) -> list[str]:
    """Every Python object the pickles of ``path`` name, in order (empty when it is not a pickle)."""
    found: list[str] = []
    for stream in _pickle_streams(Path(path)):
        for _ in range(max_pickles):  # the legacy torch format: magic, protocol, sys info, object, keys
            start = stream.tell()
            try:
                found.extend(_globals_in(_Bounded(stream)))  # type: ignore[arg-type]
            except Exception:  # not (or no longer) a pickle: raw tensor bytes, or damage
                break
            if stream.tell() == start:
                break
    return found


def _readable(name: str) -> str:
    return name.replace("__builtin__.", "builtins.")


def code_in_pickle(path: Path) -> str | None:
    """The first Python object (a function, a class) outside the weight types that a checkpoint's pickle
    names, e.g. ``builtins.exec``; None when it names only tensors, arrays and dicts, or is no pickle."""
    try:
        names = pickle_globals(path)
    except Exception as exc:  # damaged (a short zip member, bad compression...): the loader will say so
        log.info("could not walk %s: %s: %s", path, type(exc).__name__, exc)
        return None
    for name in names:
        if name.split(".")[0] not in WEIGHT_MODULES:
            return _readable(name)
    return None


def zip_damage(path: Path) -> str | None:
    """Why a zip checkpoint's pickle cannot be read (a member cut short, bad compression), or None (also for
    files that are no zip: a plain or legacy pickle is judged by its loader)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".pkl"):
                    archive.read(member)
    except Exception as exc:  # EOFError, zipfile.BadZipFile, zlib.error, OSError...
        return f"{type(exc).__name__}: {exc}"
    return None


def check_checkpoint(path: Path) -> None:
    """Raise a UserError for a PyTorch checkpoint that is damaged (a zip whose pickle cannot be read) or
    that names Python code besides weights (:func:`refusal`); nothing in it is executed."""
    damage = zip_damage(path)
    if damage:
        log.info("%s: %s", path, damage)
        raise UserError(
            f"{Path(path).name} is damaged or incomplete (perhaps a download or copy was cut short); "
            "it could not be read."
        )
    found = code_in_pickle(path)
    if found:
        raise refusal(path, found)


def refusal(path: Path, found: str) -> UserError:
    """The sentence for a checkpoint that names Python code or objects besides weights."""
    return UserError(
        f"{Path(path).name} holds Python objects or code ({found}) besides weights, so it was not opened "
        "(loading it could run that code); use a checkpoint that holds only weights, such as a .safetensors file."
    )


def _weight_files(folder: Path, depth: int = 2) -> Iterable[Path]:
    for dirpath, dirs, files in os.walk(folder):
        level = len(Path(dirpath).relative_to(folder).parts)
        if level >= depth:
            dirs[:] = []
        for name in files:
            if name.lower().endswith(PICKLE_SUFFIXES):
                yield Path(dirpath) / name


def unsafe_weights(path: Path) -> tuple[Path, str] | None:
    """The first pickle file (the file itself, or one in the folder) that names code: (file, what)."""
    path = Path(path)
    candidates = [path] if path.is_file() else list(_weight_files(path)) if path.is_dir() else []
    for file in candidates:
        found = code_in_pickle(file)
        if found:
            return file, found
    return None


def check_weights(path: Path) -> None:
    """Raise the :func:`refusal` sentence when ``path`` (a checkpoint or a model folder) names code."""
    bad = unsafe_weights(path)
    if bad is not None:
        raise refusal(*bad)
