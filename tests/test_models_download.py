"""Downloads against a local HTTP server on 127.0.0.1: progress, resume, checksum, cancel, Hugging Face."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from model_server import FileServer, payload, sha

from workers.errors import Cancelled, UserError
from workers.models.download import download_file, download_model, source_url
from workers.models.manifest import Source, parse_manifest
from workers.models.store import ModelStore, Status

ROOT = Path(__file__).resolve().parent.parent


def one_file_manifest(model_id: str, name: str, data: bytes, sources: list[dict[str, Any]], **extra: Any) -> Any:
    file = {"name": name, "size": len(data), "sha256": sha(data), "sources": sources, **extra}
    return parse_manifest(
        {
            "model": [
                {
                    "id": model_id,
                    "tool": "matting",
                    "name": f"Test {model_id}",
                    "licence": "MIT",
                    "kind": "onnx",
                    "file": [file],
                }
            ]
        }
    )


def test_progress_reaches_the_total(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    url = server.add("/m.onnx", data)
    seen: list[tuple[int, int]] = []
    dest = download_file(
        url,
        tmp_path / "m.onnx",
        expected_sha256=sha(data),
        expected_size=len(data),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert dest.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) > 2
    assert not (tmp_path / "m.onnx.part").exists()


def test_dropped_connection_resumes_with_only_the_rest(server: FileServer, tmp_path: Path) -> None:
    data = payload(400_000)
    url = server.add("/big.bin", data)
    half = 150_000
    server.drop_after["/big.bin"] = half
    dest = tmp_path / "big.bin"
    with pytest.raises(UserError, match="resume"):
        download_file(url, dest, expected_sha256=sha(data), expected_size=len(data))
    assert not dest.exists()
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == half
    assert server.sent["/big.bin"] == half

    del server.drop_after["/big.bin"]
    download_file(url, dest, expected_sha256=sha(data), expected_size=len(data))
    assert dest.read_bytes() == data
    assert server.sent["/big.bin"] == len(data)  # the second request sent only the rest
    assert server.requests[-1] == ("/big.bin", f"bytes={half}-")


def test_wrong_checksum_never_becomes_a_model(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    url = server.add("/bad.onnx", data)
    dest = tmp_path / "bad.onnx"
    with pytest.raises(UserError, match="checksum"):
        download_file(url, dest, expected_sha256="0" * 64, expected_size=len(data))
    assert not dest.exists()
    assert not (tmp_path / "bad.onnx.part").exists()


def test_md5_is_verified_when_that_is_what_upstream_publishes(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    url = server.add("/m5.onnx", data)
    download_file(url, tmp_path / "ok.onnx", expected_md5=hashlib.md5(data).hexdigest(), expected_size=len(data))
    assert (tmp_path / "ok.onnx").exists()
    with pytest.raises(UserError, match="md5"):
        download_file(url, tmp_path / "no.onnx", expected_md5="1" * 32, expected_size=len(data))
    assert not (tmp_path / "no.onnx").exists()


def test_cancel_keeps_the_part_for_later(server: FileServer, tmp_path: Path) -> None:
    data = payload(600_000)
    url = server.add("/c.bin", data)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        download_file(url, tmp_path / "c.bin", expected_sha256=sha(data), expected_size=len(data), cancel=cancel)
    assert not (tmp_path / "c.bin").exists()
    assert 0 < (tmp_path / "c.bin.part").stat().st_size < len(data)


def test_unreachable_server_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"Could not reach 127\.0\.0\.1"):
        download_file("http://127.0.0.1:9/x.onnx", tmp_path / "x.onnx", expected_size=10, timeout=2)


def test_only_web_addresses(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="web downloads"):
        download_file("file:///etc/passwd", tmp_path / "p")


def test_hugging_face_source_honours_hf_endpoint(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(50_000, seed=7)
    server.add("/owner/repo/resolve/abc123/sub/model.onnx", data)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    source = Source(hf_repo="owner/repo", hf_filename="sub/model.onnx", revision="abc123")
    assert source_url(source) == server.url + "/owner/repo/resolve/abc123/sub/model.onnx"
    manifest = one_file_manifest(
        "hf-model",
        "model.onnx",
        data,
        [{"hf_repo": "owner/repo", "hf_filename": "sub/model.onnx", "revision": "abc123"}],
    )
    store = ModelStore(tmp_path / "store", manifest)
    state = download_model(store, "hf-model")
    assert state.status is Status.INSTALLED
    assert store.path_of("hf-model").read_bytes() == data


def test_sources_are_tried_in_order(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(20_000, seed=3)
    good = server.add("/mirror/m.onnx", data)
    missing = server.url + "/gone/m.onnx"
    manifest = one_file_manifest("two", "m.onnx", data, [{"url": "https://placeholder.invalid/m.onnx"}])
    # Sources must be HTTPS in the manifest; the test swaps in local addresses after validation.
    spec = manifest.models[0].files[0]
    object.__setattr__(spec, "sources", (Source(url=missing), Source(url=good)))
    store = ModelStore(tmp_path / "store", manifest)
    seen: list[tuple[int, int]] = []
    state = download_model(store, "two", progress=lambda d, t: seen.append((d, t)))
    assert state.status is Status.INSTALLED
    assert [p for p, _ in server.requests] == ["/gone/m.onnx", "/mirror/m.onnx"]
    assert seen[-1][0] == seen[-1][1]


def test_all_sources_failing_reports_each(server: FileServer, tmp_path: Path) -> None:
    data = payload(1000)
    manifest = one_file_manifest("none", "m.onnx", data, [{"url": "https://placeholder.invalid/m.onnx"}])
    spec = manifest.models[0].files[0]
    object.__setattr__(spec, "sources", (Source(url=server.url + "/a"), Source(url=server.url + "/b")))
    store = ModelStore(tmp_path / "store", manifest)
    with pytest.raises(UserError, match=r"No source could provide m\.onnx") as info:
        download_model(store, "none")
    assert "404" in str(info.value)
    assert store.state("none").status is Status.MISSING


def test_zip_pack_is_unpacked_after_verification(server: FileServer, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("det_10g.onnx", b"\x08\x07detector")
        zf.writestr("w600k_r50.onnx", b"\x08\x07recognizer")
    data = buf.getvalue()
    url = server.add("/pack.zip", data)
    manifest = one_file_manifest(
        "pack", "pack.zip", data, [{"url": "https://placeholder.invalid/pack.zip"}], extract="zip"
    )
    object.__setattr__(manifest.models[0].files[0], "sources", (Source(url=url),))
    object.__setattr__(manifest.models[0], "folder", True)
    store = ModelStore(tmp_path / "store", manifest)
    assert download_model(store, "pack").status is Status.INSTALLED
    folder = store.path_of("pack")
    assert (folder / "det_10g.onnx").read_bytes() == b"\x08\x07detector"
    assert not (folder / "pack.zip").exists()
    assert store.verify("pack").ok
    (folder / "w600k_r50.onnx").write_bytes(b"\x08\x07tamperedXX")
    assert not store.verify("pack").ok


def test_zip_with_escaping_member_is_refused(server: FileServer, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    data = buf.getvalue()
    url = server.add("/evil.zip", data)
    manifest = one_file_manifest(
        "evil", "evil.zip", data, [{"url": "https://placeholder.invalid/e.zip"}], extract="zip"
    )
    object.__setattr__(manifest.models[0].files[0], "sources", (Source(url=url),))
    store = ModelStore(tmp_path / "store", manifest)
    with pytest.raises(UserError, match="unsafe path"):
        download_model(store, "evil")
    assert not (tmp_path / "store" / "evil.txt").exists()


def test_importing_never_opens_a_socket() -> None:
    code = (
        "import socket\n"
        "def boom(*a, **k):\n"
        "    raise SystemExit('a socket was opened')\n"
        "socket.socket.connect = boom\n"
        "socket.create_connection = boom\n"
        "socket.getaddrinfo = boom\n"
        "import workers.models, workers.models.download, workers.models.cli, workers.models.shipped\n"
        "from workers.models.store import ModelStore\n"
        "s = ModelStore()\n"
        "s.states(); s.disk_usage()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
