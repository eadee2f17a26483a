"""Security: no network unless a download is asked for, checkpoints that carry code are refused without
running it, and nothing from a manifest, an archive, an import or the store's own folders escapes the
model store.

Network: every command of the CLI and the window with each live tool run in a child process whose Python
socket calls are recorded and refused (tests/netblock.py: an audit hook installed by ``sitecustomize``;
where strace exists, the child's system calls to Internet addresses are traced as well). Each must
succeed with no attempt at all. ``models download`` is the one command that reaches out, to a local
server here, and only when asked.

Pickles: every entry point that reads a user's file with torch or transformers gets a checkpoint whose
unpickling would create a marker file (``builtins.exec``); each refuses it with one sentence naming
what it holds, and the marker never appears, also with the studio's own scan switched off (then torch's
``weights_only`` loading is what refuses it).

Paths: manifest ids and file names, archive members, import sidecars and imported folders are checked
for ``..``, absolute paths, drive letters, backslashes, Windows device names (CON, NUL, COM1...),
characters and endings Windows refuses, links that lead out of the store, and pipes or devices.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import stat
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from llm_fixtures import gemma_store_dir  # noqa: F401  (a session fixture)
from model_server import FileServer, serve_tiny_model
from netblock import Outcome, run_blocked, strace_available

from workers.errors import UserError
from workers.models import safety
from workers.models.manifest import ManifestError, parse_manifest
from workers.models.store import ModelStore, Status

ROOT = Path(__file__).resolve().parent.parent
CODE = "Python objects or code"


# ---- the network ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs for the commands, and a studio home shared by the child processes (so the converted Gemma
    is made once)."""
    from assistant_fixtures import question_wav
    from face_fixtures import astronaut, second_face
    from matting_fixtures import build_u2net_like, subject_image
    from svc_speech import write_speech

    root = tmp_path_factory.mktemp("offline")
    files = {"root": root, "home": root / "home", "out": root / "out"}
    files["home"].mkdir()
    files["out"].mkdir()
    files["onnx"] = build_u2net_like(root / "in" / "tiny.onnx")
    cv2.imwrite(str(root / "in" / "subject.png"), subject_image(96, 128)[0])
    cv2.imwrite(str(root / "in" / "astronaut.png"), astronaut())
    cv2.imwrite(str(root / "in" / "second.png"), second_face())
    files["subject"] = root / "in" / "subject.png"
    files["target"] = root / "in" / "astronaut.png"
    files["source"] = root / "in" / "second.png"
    files["question"] = question_wav(root / "in", rate=16000, channels=1)
    files["speech"] = write_speech(root / "in" / "speech.wav", seconds=2.0)
    return files


def child_env(offline: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(offline["home"]),  # where a library would leave an identifier or a cache (checked below)
        SNOWAI_HOME=str(offline["home"]),
        HF_HUB_OFFLINE="1",
        QT_QPA_PLATFORM="offscreen",
        PYTHONDONTWRITEBYTECODE="1",
    )
    for var in ("SNOWAI_MODELS_DIR", "SNOWAI_SETTINGS_FILE", "SNOWAI_CONFIG_DIR", "SNOWAI_DATA_DIR"):
        env.pop(var, None)
    return env


def studio(offline: dict[str, Path], tmp_path: Path, *args: str, stdin: str | None = None, **kw: Any) -> Outcome:
    """``python -m snowai_studio ARGS`` with the network blocked."""
    env = kw.pop("env", None) or child_env(offline)
    return run_blocked(
        [sys.executable, "-m", "snowai_studio", *args],
        tmp_path / "net",
        env=env,
        cwd=ROOT,
        timeout=240,
        native=True,
        stdin=stdin,
        **kw,
    )


TELEMETRY_DIR = Path(".cache") / "Microsoft"  # where ONNX Runtime keeps its device id and queued events


def assert_offline(outcome: Outcome, home: Path | None = None) -> None:
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.attempts == [], outcome.describe()
    assert not outcome.native, outcome.describe()
    assert "Traceback" not in outcome.stderr, outcome.describe()
    if home is not None:
        assert not (home / TELEMETRY_DIR).exists(), "ONNX Runtime's telemetry was on"


def test_onnx_runtime_telemetry_is_off(tmp_path: Path) -> None:
    """ONNX Runtime 1.29+ collects telemetry on Linux and macOS (a device id and queued events under
    ~/.cache/Microsoft, uploaded now and then); importing the studio's engines switches it off first."""
    from matting_fixtures import build_u2net_like

    model = build_u2net_like(tmp_path / "m.onnx")
    session = f"import onnxruntime; onnxruntime.InferenceSession({str(model)!r})"
    homes = {"plain": tmp_path / "plain", "studio": tmp_path / "studio"}
    for name, code in (("plain", session), ("studio", "import workers; " + session)):
        homes[name].mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "PYTHONPATH")}
        env["HOME"] = str(homes[name])
        outcome = run_blocked([sys.executable, "-c", code], tmp_path / f"net-{name}", env=env, cwd=ROOT)
        assert outcome.returncode == 0, outcome.describe()
    assert not (homes["studio"] / TELEMETRY_DIR).exists()
    if not (homes["plain"] / TELEMETRY_DIR).exists():
        pytest.skip("this ONNX Runtime build collects no telemetry (nothing to switch off)")


def test_the_network_block_records_and_refuses(tmp_path: Path) -> None:
    code = (
        "import socket, urllib.request\n"
        "for call in (lambda: socket.socket().connect(('192.0.2.1', 80)),\n"
        "             lambda: socket.getaddrinfo('example.org', 443),\n"
        "             lambda: urllib.request.urlopen('http://127.0.0.1:9/', timeout=2)):\n"
        "    try:\n"
        "        call()\n"
        "    except OSError as exc:\n"
        "        print('refused:', exc)\n"
        "import socket as s\n"
        "a, b = s.socketpair()\n"  # a local (AF_UNIX) pair is no network use
        "a.sendall(b'x'); print(b.recv(1))\n"
    )
    outcome = run_blocked([sys.executable, "-c", code], tmp_path / "net", native=True)
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.stdout.count("refused:") == 3
    events = [(a["event"], a["detail"]) for a in outcome.attempts]
    assert ("socket.connect", "192.0.2.1:80") in events
    assert ("socket.getaddrinfo", "example.org:443") in events
    assert all(not a["allowed"] for a in outcome.attempts)
    if outcome.native is not None:
        assert outcome.native == []  # refused before any system call was made


@pytest.mark.parametrize(
    "command",
    ["info", "models-list", "models-import-verify", "remove-bg", "face-swap", "transcribe", "say", "svc"],
)
def test_cli_commands_make_no_connection(offline: dict[str, Path], tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    args: dict[str, list[str]] = {
        "info": ["info", "--json"],
        "models-list": ["models", "list"],
        "remove-bg": ["remove-bg", "-o", str(out), "--model", str(offline["onnx"]), str(offline["subject"])],
        "face-swap": ["face-swap", "--engine", "classic", "--source", str(offline["source"]),
                      "--target", str(offline["target"]), "-o", str(out / "swapped.png")],
        "transcribe": ["transcribe", str(offline["question"]), "-o", str(out / "question.txt")],
        "say": ["say", "Nothing here goes on the network.", "-o", str(out / "said.wav")],
        "svc": ["svc", "-i", str(offline["speech"]), "-o", str(out / "converted.wav"), "--pitch", "3"],
    }
    if command == "models-import-verify":
        store = tmp_path / "store"
        outcome = studio(offline, tmp_path, "models", "--store", str(store), "import", str(offline["onnx"]),
                         "--tool", "matting", "--name", "Tiny")  # fmt: skip
        assert_offline(outcome, offline["home"])
        outcome = studio(offline, tmp_path, "models", "--store", str(store), "verify", "tiny")
        assert_offline(outcome, offline["home"])
        assert "matches its checksum" in outcome.stdout
        return
    outcome = studio(offline, tmp_path, *args[command])
    assert_offline(outcome, offline["home"])
    if command == "remove-bg":
        assert list(out.glob("*.png"))
    elif command == "face-swap":
        assert (out / "swapped.png").is_file()
    elif command == "transcribe":
        assert "capital of france" in (out / "question.txt").read_text().lower()
    elif command in ("say", "svc"):
        assert list(out.glob("*.wav"))


def test_chat_with_the_shipped_gemma_makes_no_connection(
    offline: dict[str, Path], tmp_path: Path, gemma_store_dir: Path  # noqa: F811
) -> None:
    env = child_env(offline)
    env["SNOWAI_MODELS_DIR"] = str(gemma_store_dir)  # the shipped Gemma, converted once per test session
    question = "What is the capital of France?\n/quit\n"
    outcome = studio(offline, tmp_path, "chat", "--max-tokens", "8", stdin=question, env=env)
    assert_offline(outcome, offline["home"])
    assert outcome.stdout.strip(), outcome.describe()  # an answer was printed


WINDOW_SCRIPT = r"""
import json, sys
from pathlib import Path
root, folder, tool = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sys.path[:0] = [str(root / "benchmarks"), str(root / "tests"), str(root)]
import responsiveness as r
from PySide6.QtWidgets import QApplication
app = QApplication([])
studio = r.Studio(folder, components_factory=r.scripted_components, video_frames=30, width=320, height=240)
try:
    if tool != "none":
        studio.run(tool).prepare(120)
        seconds = 10.0 if tool == "assistant" else 2.0  # a spoken question takes a few seconds to be heard
        row = r.measure(studio, [tool], seconds, probe=r.StallProbe(), warmup_timeout=150, settle=0.5)
        print(json.dumps({"tool": tool, "processed": row["per_tool"][tool]["processed"]}))
    else:
        r.spin(2.0)
        print(json.dumps({"docks": sorted(studio.window.pages)}))
finally:
    studio.close()
"""


@pytest.mark.parametrize("tool", ["none", "face_swap", "matting", "assistant", "voice_conversion"])
def test_the_window_and_each_live_tool_make_no_connection(offline: dict[str, Path], tmp_path: Path, tool: str) -> None:
    env = child_env(offline)
    env["SNOWAI_HOME"] = str(tmp_path / "home")  # a fresh home: the window's first start
    outcome = run_blocked(
        [sys.executable, "-c", WINDOW_SCRIPT, str(ROOT), str(tmp_path / "studio"), tool],
        tmp_path / "net",
        env=env,
        cwd=ROOT,
        timeout=240,
        native=True,
    )
    assert_offline(outcome, offline["home"])
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    if tool == "none":
        assert {"face_swap", "matting", "assistant", "voice_conversion"} <= set(result["docks"])
    else:
        assert result["processed"] > 0, outcome.describe()


@pytest.fixture
def local_model(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    manifest, _data = serve_tiny_model(server, tmp_path, monkeypatch)
    host, port = server.httpd.server_address[:2]
    return manifest, f"{host}:{port}"


def test_only_a_download_asked_for_reaches_out(
    offline: dict[str, Path], tmp_path: Path, local_model: tuple[Path, str]
) -> None:
    manifest, address = local_model
    env = child_env(offline)
    env["HF_ENDPOINT"] = os.environ["HF_ENDPOINT"]  # the local server stands in for Hugging Face
    common = ["models", "--store", str(tmp_path / "store"), "--manifest", str(manifest)]
    # Listing and verifying never reach out.
    assert_offline(studio(offline, tmp_path, *common, "list", env=env), offline["home"])
    # Asked to download, it connects (to the local server only) and installs the model.
    outcome = studio(offline, tmp_path, *common, "download", "tiny", env=env, allow=[address])
    assert outcome.returncode == 0, outcome.describe()
    connects = [a for a in outcome.attempts if a["event"] == "socket.connect"]
    assert connects and all(a["detail"] == address and a["allowed"] for a in connects), outcome.describe()
    assert not outcome.refused and not outcome.native, outcome.describe()
    assert (tmp_path / "store" / "tiny" / "tiny.onnx").is_file()
    outcome = studio(offline, tmp_path, *common, "verify", "tiny", env=env)
    assert_offline(outcome, offline["home"])
    # With no network, the same request fails with one sentence and the attempt was made.
    outcome = studio(offline, tmp_path, "models", "--store", str(tmp_path / "other"), "--manifest", str(manifest),
                     "download", "tiny", env=env)  # fmt: skip
    assert outcome.returncode == 1, outcome.describe()
    assert [a["detail"] for a in outcome.refused] and outcome.stderr.count("\n") == 1, outcome.describe()
    assert "Traceback" not in outcome.stderr


def test_native_tracing_is_available_here_or_skipped() -> None:
    if not strace_available():
        pytest.skip("strace is not available: only Python-level socket calls are checked")
    assert strace_available()


# ---- pickles with code ------------------------------------------------------------------------------------


class _Exec:
    """Unpickling this runs ``exec`` on a line that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def evil_checkpoint(path: Path, marker: Path, *, legacy: bool = False, state: dict | None = None) -> Path:
    """A torch checkpoint (zip, or the legacy format) with weights and an object that runs code."""
    import torch

    obj = {"model": state or {"w": torch.zeros(2)}, "weight": {"w": torch.zeros(2)}, "extra": _Exec(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(params=["scan", "weights_only"])
def guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a pickle test twice: with the studio's own scan, and with it off (torch's weights_only alone)."""
    if request.param == "weights_only":
        monkeypatch.setattr(safety, "code_in_pickle", lambda path: None)
    return str(request.param)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "the pickle's code ran"


def refused(call: Callable[[], Any], guard: str, *names: str) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    if guard == "scan":
        assert CODE in message and "builtins.exec" in message, message
        for name in names:
            assert name in message
    return message


def test_the_scan_names_the_code_and_passes_weights(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "ran"
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.zeros(3)}, "config": [1, 2, "x"]}, good)
    legacy_good = tmp_path / "legacy-good.pth"
    torch.save({"w": torch.zeros(3)}, legacy_good, _use_new_zipfile_serialization=False)
    assert safety.code_in_pickle(good) is None and safety.code_in_pickle(legacy_good) is None
    assert safety.code_in_pickle(evil_checkpoint(tmp_path / "a.pth", marker)) == "builtins.exec"
    assert safety.code_in_pickle(evil_checkpoint(tmp_path / "b.pth", marker, legacy=True)) == "builtins.exec"
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": [_Exec(marker)]}, protocol=4))  # STACK_GLOBAL with memoised strings
    assert safety.code_in_pickle(plain) == "builtins.exec"
    plain.write_bytes(pickle.dumps({"a": _Exec(marker)}, protocol=0))  # GLOBAL, text protocol
    assert safety.code_in_pickle(plain) == "builtins.exec"
    noise = tmp_path / "noise.bin"
    noise.write_bytes(b"\x80\x04" + np.random.default_rng(0).bytes(1 << 20))  # a header, then garbage
    assert safety.code_in_pickle(noise) is None
    assert not marker.exists()


def test_a_damaged_zip_checkpoint_is_one_sentence(tmp_path: Path) -> None:
    import io
    import struct

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": {}}, protocol=2))
    data = bytearray(buf.getvalue())
    at = data.rfind(b"PK\x01\x02")
    data[at + 20 : at + 28] = struct.pack("<II", 5000, 5000)  # the directory says the pickle runs past the end
    path = tmp_path / "short.pth"
    path.write_bytes(bytes(data))
    assert safety.code_in_pickle(path) is None  # the scan itself never raises
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    with pytest.raises(UserError, match="damaged or incomplete"):
        store.import_file(path, "voice_conversion")


def test_a_transformers_language_model_folder(tmp_path: Path, marker: Path, guard: str) -> None:
    from llm_fixtures import make_tiny_llm

    from workers.assistant.llm import load_language_model
    from workers.assistant.options import AssistantOptions

    folder = make_tiny_llm(tmp_path / "llm")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    evil_checkpoint(folder / "pytorch_model.bin", marker)
    options = AssistantOptions(llm_backend="transformers", llm_model=str(folder))
    refused(lambda: load_language_model(options, device="cpu"), guard, "pytorch_model.bin")


def test_a_bark_folder(tmp_path: Path, marker: Path, guard: str) -> None:
    from assistant_fixtures import make_tiny_bark

    from workers.assistant.tts import BarkTTS

    folder = make_tiny_bark(tmp_path / "bark")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    evil_checkpoint(folder / "pytorch_model.bin", marker)
    refused(lambda: BarkTTS(str(folder), device="cpu"), guard, "pytorch_model.bin")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_voice_model_pth(tmp_path: Path, marker: Path, guard: str, legacy: bool) -> None:
    from workers.voice_conversion.checkpoints import load_voice_model

    path = evil_checkpoint(tmp_path / "G_1000.pth", marker, legacy=legacy)
    refused(lambda: load_voice_model(path), guard, "G_1000.pth")


def test_a_voice_model_through_the_cli(tmp_path: Path, marker: Path) -> None:
    import argparse
    import io

    from svc_speech import write_speech

    from workers.voice_conversion import cli as svc_cli

    path = evil_checkpoint(tmp_path / "voice.pth", marker)
    speech = write_speech(tmp_path / "speech.wav", seconds=1.0)
    parser = argparse.ArgumentParser()
    svc_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["svc", "-i", str(speech), "-o", str(tmp_path / "out.wav"), "--model", str(path)])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    assert code == 1 and CODE in err.getvalue() and "Traceback" not in err.getvalue(), err.getvalue()
    assert not (tmp_path / "out.wav").exists()


def test_a_so_vits_cluster_model(tmp_path: Path, marker: Path, guard: str) -> None:
    from workers.voice_conversion.index import load_index

    path = evil_checkpoint(tmp_path / "kmeans_10000.pt", marker)
    refused(lambda: load_index(path, content_dim=256), guard, "kmeans_10000.pt")


def test_a_so_vits_feature_index(tmp_path: Path, marker: Path) -> None:
    from workers.voice_conversion.index import load_index

    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(pickle.dumps({0: _Exec(marker)}))
    with pytest.raises(UserError, match="Python objects"):
        load_index(path, content_dim=256)


def test_a_content_encoder_folder(tmp_path: Path, marker: Path, guard: str) -> None:
    import svc_fixtures

    from workers.voice_conversion.neural import load_content_encoder

    folder = svc_fixtures.make_content_encoder(tmp_path / "encoder")
    for weights in list(folder.glob("*.bin")) + list(folder.glob("*.safetensors")):
        weights.unlink()
    evil_checkpoint(folder / "pytorch_model.bin", marker)
    refused(lambda: load_content_encoder("sovits", 256, encoder=folder), guard, "pytorch_model.bin")


def test_a_matting_onnx_that_is_a_pickle(tmp_path: Path, marker: Path) -> None:
    from workers.matting.engine import MattingEngine
    from workers.matting.options import MattingOptions

    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    for name, data in {
        "plain.onnx": pickle.dumps(_Exec(marker)),
        "torch.onnx": evil_checkpoint(tmp_path / "t.pth", marker).read_bytes(),
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError, match="not an ONNX model"):
            store.import_file(path, "matting")
        with pytest.raises(UserError, match="not an ONNX model"):
            MattingEngine(store, MattingOptions(model=str(path))).load()
    assert store.user_models() == []


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt", ".bin"])
def test_importing_a_checkpoint_with_code_is_refused(tmp_path: Path, marker: Path, suffix: str) -> None:
    store = ModelStore(tmp_path / "store", parse_manifest({"model": []}))
    path = evil_checkpoint(tmp_path / f"voice{suffix}", marker)
    with pytest.raises(UserError, match=CODE):
        store.import_file(path, "voice_conversion")
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    evil_checkpoint(folder / f"pytorch_model{suffix}", marker)
    with pytest.raises(UserError, match=CODE):
        store.import_file(folder, "assistant")
    assert store.user_models() == []


# ---- paths: the manifest ----------------------------------------------------------------------------------


def manifest_entry(**change: Any) -> dict[str, Any]:
    file = {"name": "m.onnx", "size": 10, "sha256": "a" * 64, "sources": [{"url": "https://example.org/m.onnx"}]}
    file.update(change.pop("file", {}))
    entry = {"id": "m", "tool": "matting", "name": "M", "licence": "MIT", "kind": "onnx", "file": [file]}
    entry.update(change)
    return {"model": [entry]}


BAD_FILE_NAMES = [
    "../m.onnx", "a/../../m.onnx", "/etc/passwd", "C:/models/m.onnx", "C:m.onnx", "c:\\m.onnx",
    "\\\\server\\share\\m.onnx", "a\\..\\m.onnx", "CON", "nul.onnx", "sub/aux.json", "com1", "LPT9.txt",
    "conin$", "m.onnx:stream", "m?.onnx", "m*.onnx", 'm".onnx', "m<.onnx", "m|x", "m.onnx.", "m.onnx ",
    "a//b.onnx", "./m.onnx", "a/./b.onnx", "m\x01.onnx", "m\x00.onnx", ".hidden", "x" * 300,
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_manifest_file_names_stay_inside(name: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest_entry(file={"name": name}))
    assert "\n" not in str(err.value)
    with pytest.raises(ManifestError):
        parse_manifest(manifest_entry(file={"sources": [{"hf_repo": "a/b", "hf_filename": name}]}))
    with pytest.raises(ManifestError):
        parse_manifest(manifest_entry(file={"sources": [{"package": "p", "module": "p", "path": name}]}))


@pytest.mark.parametrize("model_id", ["con", "nul", "aux.onnx", "com1", "lpt3.x", "prn", "abc.", "..", "a/b"])
def test_manifest_ids_cannot_be_device_names_or_paths(model_id: str) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(manifest_entry(id=model_id))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"hf_repo": "a/../b", "hf_filename": "m.onnx"}, "owner/name"),
        ({"hf_repo": "../a/b", "hf_filename": "m.onnx"}, "owner/name"),
        ({"hf_repo": "a/b", "hf_filename": "m.onnx", "revision": "../../x"}, "branch, tag or commit"),
        ({"hf_repo": "a/b", "hf_filename": "m.onnx", "revision": "main/../../x"}, "branch, tag or commit"),
        ({"package": "p", "module": "..", "path": "m.onnx"}, "not a Python package name"),
        ({"package": "p", "module": "a/b", "path": "m.onnx"}, "not a Python package name"),
        ({"package": "p", "module": ".hidden", "path": "m.onnx"}, "not a Python package name"),
        ({"url": "file:///etc/passwd"}, "https://"),
        ({"url": "http://example.org/m.onnx"}, "https://"),
    ],
)
def test_manifest_sources_are_checked(source: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(manifest_entry(file={"sources": [source]}))


def test_the_shipped_manifest_passes_the_checks() -> None:
    from workers.models.manifest import load_manifest

    manifest = load_manifest()
    assert len(manifest) > 10
    for model in manifest:
        assert safety.name_problem(model.id) is None
        for f in model.files:
            assert safety.relative_name_problem(f.name) is None


# ---- paths: the store's own folders -----------------------------------------------------------------------


ONNX = b"\x08\x07\x12\x07pytorch" + bytes(range(200))


def served_manifest(data: bytes = ONNX, **file: Any) -> Any:
    import hashlib

    entry = {
        "name": "m.onnx",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sources": [{"url": "https://example.org/m.onnx"}],
        **file,
    }
    return parse_manifest({"model": [{"id": "m", "tool": "matting", "name": "Model M", "licence": "MIT",
                                      "kind": "onnx", "file": [entry]}]})  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(ONNX)
    (folder / "secret.txt").write_text("keep out")
    return folder


def test_a_model_folder_that_links_out_of_the_store_is_not_used(tmp_path: Path, outside: Path) -> None:
    store = ModelStore(tmp_path / "store", served_manifest())
    store.root.mkdir()
    (store.root / "m").symlink_to(outside, target_is_directory=True)
    state = store.state("m")
    assert state.status is Status.MISSING and "outside the store" in state.message
    with pytest.raises(UserError, match="outside the store"):
        store.path_of("m")
    with pytest.raises(UserError, match="outside the store"):
        store.model_dir("m")  # so a download never writes there
    with pytest.raises(UserError, match="not inside the model store"):
        store.remove("m")
    assert (outside / "m.onnx").read_bytes() == ONNX and (outside / "secret.txt").exists()


def test_a_model_file_that_links_out_of_the_store_is_not_used(tmp_path: Path, outside: Path) -> None:
    store = ModelStore(tmp_path / "store", served_manifest())
    (store.root / "m").mkdir(parents=True)
    (store.root / "m" / "m.onnx").symlink_to(outside / "m.onnx")
    assert store.state("m").status is Status.MISSING
    with pytest.raises(UserError, match=r"m\.onnx of Model M in the model store is a link"):
        store.path_of("m")


def test_a_link_inside_the_store_is_replaced_not_written_through(tmp_path: Path, outside: Path) -> None:
    store = ModelStore(tmp_path / "store", served_manifest())
    (store.root / "m").mkdir(parents=True)
    (store.root / "m" / "m.onnx.part").symlink_to(outside / "secret.txt")
    (store.root / "m" / "m.onnx").symlink_to(outside / "secret.txt")
    target = store.file_target("m", "m.onnx")
    assert target == store.root / "m" / "m.onnx"
    assert not target.is_symlink() and not target.with_name("m.onnx.part").exists()
    assert (outside / "secret.txt").read_text() == "keep out"
    with pytest.raises(UserError):
        store.file_target("m", "../escape.onnx")


def test_downloads_write_through_no_link(
    tmp_path: Path, outside: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.models.download import download_model

    manifest_path, _data = serve_tiny_model(server, tmp_path, monkeypatch)
    from workers.models.manifest import load_manifest

    store = ModelStore(tmp_path / "store", load_manifest(manifest_path))
    (store.root / "tiny").mkdir(parents=True)
    (store.root / "tiny" / "tiny.onnx.part").symlink_to(outside / "secret.txt")
    with contextlib.suppress(UserError):  # refusing is fine too; writing through the link is not
        download_model(store, "tiny")
    assert (outside / "secret.txt").read_text() == "keep out"


def zip_with(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "/abs.txt", "a/../../evil.txt", "C:evil.txt", "CON", "sub/nul.txt", "x:stream", "a\\..\\..\\e"],
)
def test_archive_members_cannot_escape(tmp_path: Path, member: str) -> None:
    data = zip_with({"ok.txt": b"fine", member: b"evil"})
    store = ModelStore(tmp_path / "store", served_manifest(data, name="pack.zip", extract="zip"))
    model = store.get("m")
    archive = tmp_path / "pack.zip"
    archive.write_bytes(data)
    with pytest.raises(UserError, match="unsafe path"):
        store.unpack(model, model.files[0], archive, "")
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))


def test_a_tampered_unpack_record_is_not_trusted(tmp_path: Path) -> None:
    data = zip_with({"ok.txt": b"fine"})
    store = ModelStore(tmp_path / "store", served_manifest(data, name="pack.zip", extract="zip"))
    model = store.get("m")
    archive = tmp_path / "pack.zip"
    archive.write_bytes(data)
    store.unpack(model, model.files[0], archive, model.files[0].sha256)
    assert store.state("m").status is Status.INSTALLED
    marker = store.root / "m" / ".pack.zip.extracted.json"
    record = json.loads(marker.read_text())
    (tmp_path / "secret.txt").write_text("keep out")
    record["members"] = [{"name": "../../secret.txt", "size": 8, "sha256": "0" * 64}]
    marker.write_text(json.dumps(record))
    assert store.state("m").status is not Status.INSTALLED


# ---- paths: imports ---------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store", parse_manifest({"model": []}))


def llm_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes((2).to_bytes(8, "little") + b"{}" + bytes(16))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def no_links(folder: Path) -> bool:
    return not any(p.is_symlink() for p in folder.rglob("*"))


def test_a_linked_file_in_an_imported_folder_is_refused(tmp_path: Path, store: ModelStore, outside: Path) -> None:
    src = llm_folder(tmp_path / "llm")
    (src / "vocab.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(UserError, match=r"vocab\.txt in llm is a link to .*outside the folder"):
        store.import_file(src, "assistant")
    assert store.user_models() == []


def test_a_linked_folder_in_an_imported_folder_is_refused(tmp_path: Path, store: ModelStore, outside: Path) -> None:
    src = llm_folder(tmp_path / "llm")
    (src / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="extra in llm is a link"):
        store.import_file(src, "assistant")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_in_an_imported_folder_is_refused_without_hanging(tmp_path: Path, store: ModelStore) -> None:
    src = llm_folder(tmp_path / "llm")
    os.mkfifo(src / "weights.pipe")
    with pytest.raises(UserError, match="not a regular file"):
        store.import_file(src, "assistant")
    pipe = tmp_path / "model.onnx"
    os.mkfifo(pipe)
    with pytest.raises(UserError, match="not a regular file"):
        store.import_file(pipe, "matting")


def test_links_inside_the_folder_and_hugging_face_snapshots_are_copied_as_files(
    tmp_path: Path, store: ModelStore
) -> None:
    src = llm_folder(tmp_path / "llm")
    (src / "tokenizer-copy.json").symlink_to(src / "tokenizer.json")  # a link inside the folder: its content
    repo = tmp_path / "hub" / "models--owner--name"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name, data in {"config.json": b'{"model_type": "llama"}', "tokenizer.json": b"{}",
                       "model.safetensors": (2).to_bytes(8, "little") + b"{}" + bytes(16)}.items():  # fmt: skip
        blob = repo / "blobs" / f"blob-{name}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
    for folder, tool in ((src, "assistant"), (snapshot, "assistant")):
        model = store.import_file(folder, tool)
        dest = store.model_dir(model.id)
        assert no_links(dest) and (dest / "config.json").is_file()
        assert stat.S_ISREG((dest / "model.safetensors").lstat().st_mode)


def test_a_chosen_link_imports_the_real_files(tmp_path: Path, store: ModelStore) -> None:
    src = llm_folder(tmp_path / "llm")
    link = tmp_path / "link-to-llm"
    link.symlink_to(src, target_is_directory=True)
    model = store.import_file(link, "assistant", "Linked")
    assert no_links(store.model_dir(model.id))


@pytest.mark.parametrize("name", ["aux.json", "con", "x:y.json", "what?.json", "trailing.", "ctl\x07.json"])
def test_imported_file_names_that_windows_refuses_are_refused(tmp_path: Path, store: ModelStore, name: str) -> None:
    src = llm_folder(tmp_path / "llm")
    (src / name).write_text("{}")
    with pytest.raises(UserError, match="cannot be kept in the model store"):
        store.import_file(src, "assistant")


@pytest.mark.parametrize("name", ["con", "NUL", "Com1", "lpt1"])
def test_an_imported_model_named_like_a_device_gets_another_folder(
    tmp_path: Path, store: ModelStore, name: str
) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(ONNX)
    model = store.import_file(src, "matting", name)
    assert safety.name_problem(model.id) is None and model.id.endswith("-model")


def test_a_tampered_import_sidecar_is_ignored(tmp_path: Path, store: ModelStore, outside: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(ONNX)
    model = store.import_file(src, "matting", "Mine")
    sidecar = store.model_dir(model.id) / "snowai-model.json"
    data = json.loads(sidecar.read_text())
    data["files"][0]["name"] = "../../../outside/secret.txt"
    sidecar.write_text(json.dumps(data))
    assert store.user_models() == []
    with pytest.raises(UserError):
        store.path_of(model.id)


def test_a_linked_import_folder_inside_the_store_is_ignored(tmp_path: Path, store: ModelStore) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(ONNX)
    model = store.import_file(src, "matting", "Mine")
    elsewhere = tmp_path / "moved"
    store.model_dir(model.id).rename(elsewhere)
    (store.root / "user" / model.id).symlink_to(elsewhere, target_is_directory=True)
    assert store.user_models() == []
