"""Every command that reads a file, over the whole bad-input corpus (tests/corpus.py).

Each case runs in-process through ``snowai_studio.cli.main`` against each entry point (a command and
the argument the case is given as). An input the entry point should accept must succeed and leave
its output; any other must end with a non-zero exit code and one sentence on stderr, with no
traceback anywhere, nothing half-written in the output folder, and the input untouched. After the
corpus, a good input still works in every entry point.

The models that every case would load again (Whisper, the face-swap engine) are loaded once per
module and handed to the commands; the model files of the corpus itself always go through the real
loaders.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from corpus import (
    AUDIO,
    CASE_NAMES,
    FACE,
    IMAGE,
    IMAGE_FOLDER,
    IMPORT,
    LLM_MODEL,
    MATTING_MODEL,
    PICKLE_MARKER,
    PIPER_VOICE,
    SOUND,
    SVC_CONFIG,
    SVC_INDEX,
    SVC_MODEL,
    VIDEO,
    WHISPER_MODEL,
    Case,
    corpus_cases,
    corpus_root,
    fingerprint,
)
from llm_fixtures import tiny_chat_llm_dir  # noqa: F401  (a session fixture)

from snowai_studio import cli
from workers.assistant.asr import Transcriber as _REAL_TRANSCRIBER
from workers.face_swap.pipeline import FaceSwapPipeline as _REAL_PIPELINE
from workers.voice_conversion.checkpoints import load_voice_model as _REAL_LOAD_VOICE_MODEL

pytestmark = pytest.mark.timeout(60)

SVC_MODULE = "workers.voice_conversion.cli"
_PROGRESS = re.compile(r"\r?[^\r\n]*\[[#-]+\][^\r\n]*(\r|\n|$)")


# ---- what every entry point needs -------------------------------------------------------------------------
class Env:
    """Good inputs, models and stores shared by the module (built once)."""

    def __init__(self, root: Path) -> None:
        import svc_fixtures

        cases = corpus_cases()
        self.root = root
        self.good_image = cases["img-rgba"].path
        self.face = cases["face-jpg"].path
        self.wav = cases["aud-8k-mono"].path
        self.onnx = cases["mdl-matting"].path
        self.sovits_gen = next(cases["mdl-sovits-folder"].path.glob("G_*.pth"))
        self.svc_store = svc_fixtures.fixture_store(root / "svc-store")
        # The voice model of the --index cases: a copy of the corpus's RVC model, loaded once (the corpus
        # file itself always goes through the loader).
        self.rvc = root / "index-model.pth"
        shutil.copyfile(cases["mdl-rvc"].path, self.rvc)
        self._transcribers: dict[str, Any] = {}
        self._pipeline: Any = None
        self._rvc_model: Any = None

    def transcriber(self, model: str = "whisper-tiny-en-shipped") -> Any:
        if model not in self._transcribers:
            self._transcribers[model] = _REAL_TRANSCRIBER(model, device="cpu")
        return self._transcribers[model]

    def pipeline(self, store: Any, options: Any) -> Any:
        if self._pipeline is None:
            real = _REAL_PIPELINE(store, options)
            real.load()
            self._pipeline = _Loaded(real)
        return self._pipeline

    def voice_model(self, path: Any, config: Any = None, *, device: str = "cpu") -> Any:
        """The --index cases' voice model is loaded once; any other goes through the loader."""
        if Path(path) != self.rvc or config is not None:
            return _REAL_LOAD_VOICE_MODEL(path, config, device=device)
        if self._rvc_model is None:
            self._rvc_model = _REAL_LOAD_VOICE_MODEL(path, None, device=device)
        return self._rvc_model

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.real.close()


class _Loaded:
    """A loaded face-swap pipeline handed to each command: its load and close do nothing (the module
    closes it at the end)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    shared = Env(tmp_path_factory.mktemp("corpus-cli"))
    yield shared
    shared.close()


@pytest.fixture(autouse=True)
def wired(env: Env, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    """The commands as the studio offers them, with the module's loaded models and the svc store."""
    from workers import paths
    from workers.assistant import asr
    from workers.face_swap import pipeline
    from workers.voice_conversion import checkpoints
    from workers.voice_conversion import cli as svc_cli

    if SVC_MODULE not in cli.SUBCOMMAND_MODULES:
        monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", [*cli.SUBCOMMAND_MODULES, SVC_MODULE])
    def transcriber(model: Any = "whisper-tiny-en-shipped", **kwargs: Any) -> Any:
        if str(model) in ("whisper-tiny-en-shipped", "whisper-base-shipped"):  # the shipped ones: loaded once
            return env.transcriber(str(model))
        return _REAL_TRANSCRIBER(model, **kwargs)

    monkeypatch.setattr(asr, "Transcriber", transcriber)
    monkeypatch.setattr(pipeline, "FaceSwapPipeline", lambda store, options, **kw: env.pipeline(store, options))
    monkeypatch.setattr(svc_cli, "open_store", lambda args: env.svc_store)
    monkeypatch.setattr(checkpoints, "load_voice_model", env.voice_model)
    marker = paths.config_dir() / "face-swap-notice-shown"  # the notice is not what these tests read
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("shown\n", encoding="utf-8")


@dataclass(frozen=True)
class EntryPoint:
    """A command and the place of the case in it."""

    name: str
    tool: str
    #: Whether this entry point must accept the case.
    accepts: Callable[[Case], bool]
    #: argv for the case; ``out`` is a fresh output folder.
    argv: Callable[[Env, Path, Path], list[str]]
    #: The file the command writes on success (None: nothing to check).
    product: Callable[[Path], Path | None] = lambda out: None
    stdin: str | None = None
    setup: Callable[[Env, Case, Path], list[str] | None] | None = None
    #: Where the command says what went wrong ("out" for a report such as ``models verify``'s).
    says_on: str = "err"


def _tag(*tags: str) -> Callable[[Case], bool]:
    return lambda case: any(case.accepted_by(t) for t in tags)


def _any_file(out: Path) -> Path | None:
    files = sorted(p for p in out.rglob("*") if p.is_file()) if out.exists() else []
    return files[0] if files else out / "(nothing written)"


def _same_bytes(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def _verify_setup(env: Env, case: Case, out: Path) -> list[str]:
    """A store with one imported model whose file is then replaced by the case (or removed)."""
    from workers.models.store import ModelStore

    store = ModelStore(out.parent / "verify-store")
    model = store.import_file(env.onnx, "matting", name="Verify me")
    installed = store.model_dir(model.id) / env.onnx.name
    installed.unlink()
    if case.path.is_dir():
        shutil.copytree(case.path, installed)
    elif case.path.exists():
        shutil.copyfile(case.path, installed)
    return ["models", "--store", str(store.root), "verify", model.id]


ENTRY_POINTS: dict[str, EntryPoint] = {
    e.name: e
    for e in [
        EntryPoint(
            "remove-bg", "matting", _tag(IMAGE, IMAGE_FOLDER),
            lambda env, p, out: ["remove-bg", str(p), "-o", str(out), "--model", str(env.onnx)],
            _any_file,
        ),
        EntryPoint(
            "remove-bg --model", "matting", _tag(MATTING_MODEL),
            lambda env, p, out: ["remove-bg", str(env.good_image), "-o", str(out), "--model", str(p)],
            _any_file,
        ),
        EntryPoint(
            "remove-bg --bg", "matting", _tag(IMAGE),
            lambda env, p, out: ["remove-bg", str(env.good_image), "-o", str(out), "--model", str(env.onnx),
                                 "--bg", str(p)],
            _any_file,
        ),
        EntryPoint(
            "face-swap --source", "face_swap", _tag(FACE),
            lambda env, p, out: ["face-swap", "--source", str(p), "--target", str(env.face), "-o",
                                 str(out / "swapped.png"), "--engine", "classic"],
            lambda out: out / "swapped.png",
        ),
        EntryPoint(
            "face-swap --target", "face_swap",
            # told apart by content: what Pillow opens is an image (swapped only with a face in it)
            lambda case: case.accepted_by(FACE) or (case.accepted_by(VIDEO) and not case.accepted_by(IMAGE)),
            lambda env, p, out: ["face-swap", "--source", str(env.face), "--target", str(p), "-o", str(out),
                                 "--engine", "classic"],
            _any_file,
        ),
        EntryPoint(
            "transcribe", "assistant", _tag(SOUND),
            lambda env, p, out: ["transcribe", str(p), "-o", str(out / "text.srt"), "--format", "srt"],
            lambda out: out / "text.srt",
        ),
        EntryPoint(
            "transcribe --model", "assistant", _tag(WHISPER_MODEL),
            lambda env, p, out: ["transcribe", str(env.wav), "-o", str(out / "text.txt"), "--model", str(p)],
            lambda out: out / "text.txt",
        ),
        EntryPoint(
            "say --voice", "assistant", _tag(PIPER_VOICE),
            lambda env, p, out: ["say", "Hello there.", "-o", str(out / "hello.wav"), "--voice", str(p)],
            lambda out: out / "hello.wav",
        ),
        EntryPoint(
            "chat --model", "assistant", _tag(LLM_MODEL),
            lambda env, p, out: ["chat", "--model", str(p), "--store", str(out.parent / "chat-store")],
            stdin="/quit\n",
        ),
        EntryPoint(
            "svc -i", "voice_conversion", _tag(AUDIO, SOUND),
            lambda env, p, out: ["svc", "-i", str(p), "-o", str(out / "converted.wav"), "--pitch", "3"],
            lambda out: out / "converted.wav",
        ),
        EntryPoint(
            "svc --model", "voice_conversion", _tag(SVC_MODEL),
            lambda env, p, out: ["svc", "-i", str(env.wav), "-o", str(out / "converted.wav"), "--model", str(p),
                                 "--f0", "harvest"],
            lambda out: out / "converted.wav",
        ),
        EntryPoint(
            "svc --config", "voice_conversion", _tag(SVC_CONFIG),
            lambda env, p, out: ["svc", "-i", str(env.wav), "-o", str(out / "converted.wav"), "--model",
                                 str(env.sovits_gen), "--config", str(p), "--f0", "harvest"],
            lambda out: out / "converted.wav",
        ),
        EntryPoint(
            "svc --index", "voice_conversion", _tag(SVC_INDEX),
            lambda env, p, out: ["svc", "-i", str(env.wav), "-o", str(out / "converted.wav"), "--model",
                                 str(env.rvc), "--index", str(p), "--f0", "harvest"],
            lambda out: out / "converted.wav",
        ),
        *[
            EntryPoint(
                f"models import --tool {tool}", "models", _tag(IMPORT),
                lambda env, p, out, tool=tool: ["models", "--store", str(out), "import", str(p), "--tool", tool],
                lambda out: out / "user",
            )
            for tool in ("matting", "face_swap", "assistant", "voice_conversion")
        ],
        EntryPoint(
            "models verify", "models", lambda case: _same_bytes(case.path, corpus_cases()["mdl-matting"].path),
            lambda env, p, out: [],
            setup=_verify_setup,
            says_on="out",
        ),
    ]
}


# ---- checks -----------------------------------------------------------------------------------------------------
def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


def error_text(err: str) -> list[str]:
    """The lines of stderr that are not progress bars."""
    text = _PROGRESS.sub("\n", err)
    return [line.strip() for line in text.splitlines() if line.strip()]


def is_sentence(line: str) -> bool:
    core = line.removesuffix("(details in the log)").strip()
    return len(core) >= 12 and core[-1] in ".!?)" and "Traceback" not in line


def run_case(
    env: Env, entry: EntryPoint, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str, str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    argv = entry.setup(env, case, out) if entry.setup is not None else None
    if argv is None:
        argv = entry.argv(env, case.path, out)
    if entry.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(entry.stdin))
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


#: Defects outside the files these tests may change: (entry point, case) -> what is wrong.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def _params() -> list[Any]:
    return [
        pytest.param(
            entry,
            name,
            id=f"{entry.replace(' ', '_')}:{name}",
            marks=[pytest.mark.xfail(strict=False, reason=KNOWN_DEFECTS[entry, name])]
            if (entry, name) in KNOWN_DEFECTS
            else [],
        )
        for entry in ENTRY_POINTS
        for name in CASE_NAMES
    ]


@pytest.mark.parametrize(("entry_name", "case_name"), _params())
def test_corpus_case(
    env: Env, entry_name: str, case_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = ENTRY_POINTS[entry_name]
    case = corpus_cases()[case_name]
    root = corpus_root()
    before_tree = _tree(root)
    before = fingerprint(case.path)
    code, out, err, outdir = run_case(env, entry, case, tmp_path, capsys, monkeypatch)
    assert "Traceback" not in out + err, err
    assert fingerprint(case.path) == before, "the input was changed"
    assert _tree(root) == before_tree, "something was written next to the corpus"
    assert not (root / PICKLE_MARKER).exists(), "a pickle was executed"
    leftovers = [p for p in _tree(outdir) if ".part" in p or Path(p).name.startswith(".")]
    assert not leftovers, f"half-written files: {leftovers}"
    if entry.accepts(case):
        assert code == 0, f"{case.name} ({case.note}) should be accepted by {entry.name}: {err}"
        product = entry.product(outdir)
        if product is not None:
            assert product.exists(), f"no output: {sorted(_tree(outdir))}"
    else:
        assert code != 0, f"{case.name} ({case.note}) should be refused by {entry.name}"
        lines = error_text(out if entry.says_on == "out" else err)
        assert len(lines) == 1, f"not one line: {err!r}"
        assert is_sentence(lines[0]), f"not a sentence: {lines[0]!r}"
        assert "(details in the log)" not in lines[0], f"an unexpected error: {lines[0]!r}"
        if entry.setup is None:
            written = [p for p in _tree(outdir) if (outdir / p).is_file()]
            assert not written, f"written although refused: {written}"


# ---- the studio keeps working afterwards ---------------------------------------------------------------------------
GOOD = {
    "remove-bg": "img-rgba",
    "remove-bg --model": "mdl-matting",
    "remove-bg --bg": "img-cmyk",
    "face-swap --source": "face-jpg",
    "face-swap --target": "vid-with-audio",
    "transcribe": "aud-flac",
    "svc -i": "aud-flac",
    "svc --model": "mdl-rvc",
    "svc --config": "cfg-good",
    "svc --index": "idx-valid",
    "models import --tool matting": "mdl-matting",
    "models import --tool face_swap": "mdl-matting",
    "models import --tool assistant": "mdl-llm-broken",
    "models import --tool voice_conversion": "mdl-rvc",
}


@pytest.mark.parametrize("entry_name", sorted(GOOD))
def test_good_input_still_works_afterwards(
    env: Env, entry_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = ENTRY_POINTS[entry_name]
    case = corpus_cases()[GOOD[entry_name]]
    code, _out, err, outdir = run_case(env, entry, case, tmp_path, capsys, monkeypatch)
    assert code == 0, err
    product = entry.product(outdir)
    assert product is None or product.exists()


def test_say_and_chat_still_work_afterwards(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tiny_chat_llm_dir: Path,  # noqa: F811
) -> None:
    out = tmp_path / "hello.wav"
    assert cli.main(["say", "Hello there.", "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.stat().st_size > 1000
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n/quit\n"))
    code = cli.main(["chat", "--backend", "transformers", "--model", str(tiny_chat_llm_dir), "--max-tokens", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip()


def test_no_pickle_was_ever_executed() -> None:
    assert not (corpus_root() / PICKLE_MARKER).exists()
    assert not (Path(os.getcwd()) / PICKLE_MARKER).exists()

