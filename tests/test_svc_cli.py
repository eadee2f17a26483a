"""``snowai-studio svc``: files through the built-in voice changer and the fixture checkpoints, live
conversion from a sound file played as the microphone, exit codes and one-sentence failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from svc_speech import pitch_shift, speech, write_speech

from snowai_studio import cli

MODULE = "workers.voice_conversion.cli"


@pytest.fixture(autouse=True)
def svc_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command as the studio's command line offers it."""
    if MODULE not in cli.SUBCOMMAND_MODULES:
        monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", [*cli.SUBCOMMAND_MODULES, MODULE])


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main(["svc", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_sentence(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[-1]


def test_help_lists_svc(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    assert "svc" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["svc", "--help"])
    text = capsys.readouterr().out
    for flag in ("--model", "--config", "--index", "--pitch", "--formant", "--f0", "--speaker", "--realtime"):
        assert flag in text


def test_builtin_voice_changer_converts_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = write_speech(tmp_path / "take.wav", rate=44100, channels=2)
    dst = tmp_path / "out" / "take-high.flac"
    code, out, err = run(capsys, "-i", src, "-o", dst, "--pitch", "5", "--f0", "harvest")
    assert code == 0, err
    assert dst.is_file() and "built-in voice changer" in out and "real time" in out
    assert "svc take.wav [" in err  # the progress bar
    data, rate = soundfile.read(str(dst), dtype="float32")
    audio, src_rate = speech()
    assert rate == 44100 and data.ndim == 1
    assert len(data) / rate == pytest.approx(len(audio) / src_rate, abs=0.05)
    assert pitch_shift(audio, src_rate, data, rate) == pytest.approx(5.0, abs=0.7)


def test_several_files_into_a_folder_never_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = write_speech(tmp_path / "a.wav")
    b = write_speech(tmp_path / "b.mp3", rate=24000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a-converted.wav").write_bytes(b"keep me")
    code, out, err = run(capsys, "-i", a, b, "-o", tmp_path / "out", "--pitch", "-3")
    assert code == 0, err
    assert (tmp_path / "out" / "a-converted.wav").read_bytes() == b"keep me"
    assert (tmp_path / "out" / "a-converted-2.wav").is_file()
    assert (tmp_path / "out" / "b-converted.wav").is_file()
    assert out.count("Converted") == 2
    # An output named like its input is not written over it.
    code, _, err = run(capsys, "-i", a, "-o", a)
    assert code == 0, err
    assert (tmp_path / "a-converted.wav").is_file()


def fixture_store_for_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str) -> tuple[str, Any]:
    """A fixture checkpoint, and the command's model store made the fixtures' one (whose manifest says
    that the tiny content encoder is the installed ContentVec / HuBERT)."""
    import svc_fixtures
    from test_svc_worker import fixture_model

    from workers.voice_conversion import cli as svc_cli

    model, store = fixture_model(svc_fixtures, tmp_path, kind)
    monkeypatch.setattr(svc_cli, "open_store", lambda args: store)
    return model, store


@pytest.mark.parametrize("kind", ["sovits-4.0", "rvc-v1"])
def test_fixture_checkpoints_convert_through_the_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    model, store = fixture_store_for_cli(monkeypatch, tmp_path, kind)
    src = write_speech(tmp_path / "speech.wav")
    dst = tmp_path / "converted.wav"
    code, out, err = run(
        capsys, "-i", src, "-o", dst, "--model", model, "--store", store.root, "--pitch", "2", "--f0", "harvest"
    )
    assert code == 0, err
    data, rate = soundfile.read(str(dst), dtype="float32")
    assert np.isfinite(data).all() and len(data) / rate == pytest.approx(soundfile.info(str(src)).duration, abs=0.1)
    assert Path(model).name in out


def test_speaker_by_name_or_number(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, _store = fixture_store_for_cli(monkeypatch, tmp_path, "sovits-4.1")
    src = write_speech(tmp_path / "speech.wav")
    code, _, err = run(capsys, "-i", src, "-o", tmp_path / "bob.wav", "--model", model, "--speaker", "bob")
    assert code == 0, err
    code, _, err = run(capsys, "-i", src, "-o", tmp_path / "two.wav", "--model", model, "--speaker", "2")
    assert code == 0, err
    code, _, err = run(capsys, "-i", src, "-o", tmp_path / "x.wav", "--model", model, "--speaker", "dave")
    assert code == 1 and "dave" in one_sentence(err)
    code, _, err = run(capsys, "-i", src, "-o", tmp_path / "y.wav", "--model", model, "--speaker", "7")
    assert code == 1 and "7" in one_sentence(err)


def test_sovits_config_elsewhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, store = fixture_store_for_cli(monkeypatch, tmp_path, "sovits-4.1")
    gen = next(Path(model).glob("G_*.pth"))
    config = Path(model) / "config.json"
    elsewhere = tmp_path / "configs" / "my-config.json"
    elsewhere.parent.mkdir()
    config.rename(elsewhere)
    src = write_speech(tmp_path / "speech.wav")
    code, _out, err = run(
        capsys, "-i", src, "-o", tmp_path / "o.wav", "--model", gen, "--config", elsewhere, "--store", store.root
    )
    assert code == 0, err
    assert (tmp_path / "o.wav").is_file()
    code, _, err = run(capsys, "-i", src, "-o", tmp_path / "p.wav", "--model", gen, "--config", tmp_path / "no.json")
    assert code == 1 and "no.json" in one_sentence(err)


def test_corrupt_checkpoint_is_one_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "G_1000.pth"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    src = write_speech(tmp_path / "speech.wav")
    code, _out, err = run(capsys, "-i", src, "-o", tmp_path / "o.wav", "--model", bad)
    assert code == 1
    assert "G_1000.pth" in one_sentence(err)
    assert not (tmp_path / "o.wav").exists()


def test_unreadable_input_is_one_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_text("not audio")
    code, _, err = run(capsys, "-i", bad, "-o", tmp_path / "o.wav")
    assert code == 1
    line = one_sentence(err.split("\r")[-1])
    assert "noise.wav" in line
    code, _, err = run(capsys, "-i", tmp_path / "missing.wav", "-o", tmp_path / "o.wav")
    assert code == 1 and "missing.wav" in one_sentence(err)
    code, _, err = run(capsys, "-i", write_speech(tmp_path / "s.wav"), "-o", tmp_path / "o.aiff2")
    assert code == 1 and ".wav" in one_sentence(err)


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "-i" in err
    code, _, err = run(capsys, "-i", tmp_path / "a.wav")
    assert code == 2
    code, _, err = run(capsys, "--realtime", "--seconds", "0")
    assert code == 2


def test_realtime_from_a_sound_file_to_a_sound_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = write_speech(tmp_path / "mic.wav", rate=48000)
    dst = tmp_path / "live.wav"
    code, out, err = run(capsys, "--realtime", "--input", src, "--output", dst, "--pitch", "4", "--preset", "gpu")
    assert code == 0, err
    assert "Converting" in err and "Ctrl+C" in err
    assert "inference" in out and "latency" in out and "RTF" in out
    data, rate = soundfile.read(str(dst), dtype="float32")
    audio, src_rate = speech()
    assert rate == 48000
    assert len(data) / rate == pytest.approx(len(audio) / src_rate, abs=0.6)
    assert pitch_shift(audio, src_rate, data, rate) == pytest.approx(4.0, abs=0.7)


def test_realtime_stops_after_seconds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = write_speech(tmp_path / "mic.wav", seconds=30.0)
    code, _out, err = run(
        capsys, "--realtime", "--input", src, "--output", tmp_path / "o.wav", "--seconds", "1.5", "--block", "0.2"
    )
    assert code == 0, err
    assert soundfile.info(str(tmp_path / "o.wav")).duration < 4.0


def test_realtime_with_a_missing_device_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--realtime", "--input", "No Such Microphone 1234", "--seconds", "1")
    assert code == 1
    line = one_sentence(err)
    assert "No Such Microphone 1234" in line or "Sound is unavailable" in line


def test_list_devices(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--list-devices")
    assert code == 0, err
    assert out.strip()


def test_options_from_args(tmp_path: Path) -> None:
    import argparse

    from workers.voice_conversion import cli as svc_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    svc_cli.add_parser(sub)
    args = parser.parse_args(["svc", "--f0", "crepe", "--preset", "gpu", "--block", "0.15", "--index-ratio", "3"])
    options: Any = svc_cli.options_from_args(args)
    assert options.f0_method == "crepe-full"
    assert options.block_seconds == 0.15 and options.extra_seconds == 1.0
    assert options.index_ratio == 1.0
