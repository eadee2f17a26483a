"""The lock files in requirements/ agree with pyproject.toml: every requirement is pinned to one
version with its hashes, the version meets pyproject's range, and the packages installed without
their dependencies are locked apart (scripts/lock.sh writes them; scripts/setup.sh installs them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*\\?$")
REFRESH = "run `bash scripts/lock.sh --keep` and commit requirements/"


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of one lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (LOCKS / name).read_text(encoding="utf-8").splitlines():
        match = ENTRY.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            entries[current] = (match.group(2), [])
        elif line.strip().startswith("--hash=sha256:") and current:
            entries[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
        elif line.strip() and not line.lstrip().startswith("#"):
            current = ""
    return entries


def _check(requirements: list[str], lock_name: str) -> None:
    lock = _lock(lock_name)
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # for another platform (the lock is for Linux x86_64, CPython 3.11)
        name = canonicalize_name(req.name)
        assert name in lock, f"pyproject.toml names {req.name}, which requirements/{lock_name} lacks: {REFRESH}"
        version = Version(lock[name][0])
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{lock_name} pins {req.name} {version}, outside pyproject.toml's {req.specifier}: {REFRESH}"
        )


@pytest.mark.parametrize("name", ["studio.txt", "test.txt", "bundle.txt", "no-deps.txt", "all.txt"])
def test_every_entry_is_one_version_with_sha256_hashes(name: str) -> None:
    lock = _lock(name)
    assert lock
    for package, (version, hashes) in lock.items():
        assert hashes, f"{package}=={version} in requirements/{name} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in hashes), package


def test_the_locks_hold_what_pyproject_asks_for() -> None:
    _check(PROJECT["dependencies"], "studio.txt")
    _check(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"], "test.txt")
    _check(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["bundle"], "bundle.txt")


def test_the_locks_agree_with_each_other() -> None:
    everything = _lock("all.txt")
    for name in ("studio.txt", "test.txt", "bundle.txt"):
        for package, (version, _hashes) in _lock(name).items():
            assert everything[package][0] == version, f"{package}: {name} and all.txt differ"
    studio = _lock("studio.txt")
    assert set(studio) <= set(_lock("test.txt")) and set(studio) <= set(_lock("bundle.txt"))
    assert "pytest" not in studio and "pyinstaller" not in studio


def test_torch_is_the_cpu_build_and_nothing_pulls_cuda() -> None:
    studio = _lock("studio.txt")
    assert studio["torch"][0].endswith("+cpu")
    assert not [name for name in _lock("all.txt") if name.startswith("nvidia-")]


def test_no_deps_packages_are_locked_apart() -> None:
    wanted = []
    for line in (LOCKS / "no-deps.in").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            wanted.append(Requirement(line))
    no_deps = _lock("no-deps.txt")
    everything = _lock("all.txt")
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in no_deps, f"{req.name} is missing from requirements/no-deps.txt: {REFRESH}"
        assert req.specifier.contains(Version(no_deps[name][0]))
        assert name not in everything, f"{req.name} must not be resolved with its dependencies"
    # Their unwanted dependencies never come in through the main lock.
    assert "opencv-python" not in everything and "torchaudio" not in everything


def test_setup_and_the_installer_build_install_only_from_the_lock() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    build = (ROOT / "installer" / "build_linux.sh").read_text(encoding="utf-8")
    for script in (setup, build):
        assert "--require-hashes --no-deps" in script
        assert "requirements/no-deps.txt" in script
    assert "requirements/test.txt" in setup and "requirements/studio.txt" in setup
    assert "requirements/bundle.txt" in build
    # The studio itself goes in without resolving anything.
    assert "pip install -q --no-deps -e ." in setup
