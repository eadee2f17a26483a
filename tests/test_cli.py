"""The command line: help lists the subcommands, no display gives a sentence, info works."""

from __future__ import annotations

import json
import subprocess
import sys

from snowai_studio import app, cli


def test_help_lists_subcommands(capsys) -> None:
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for command in ("gui", "info", "models"):
        assert command in out


def test_python_dash_m_does_the_same() -> None:
    proc = subprocess.run([sys.executable, "-m", "snowai_studio", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "models" in proc.stdout and "info" in proc.stdout


def test_info_json(capsys) -> None:
    assert cli.main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compute"].startswith(("CPU", "CUDA"))
    assert data["models"] and data["logs"] and data["devices"]


def test_no_display_gives_a_sentence_not_an_abort(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert app.run_gui([]) == 2
    assert "No display was found" in capsys.readouterr().err


def test_unexpected_error_is_one_line(monkeypatch, capsys) -> None:
    def boom(args):
        raise ValueError("the input folder is empty")

    monkeypatch.setattr(cli, "_run_info", boom)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "Error: the input folder is empty. (details in the log)"
