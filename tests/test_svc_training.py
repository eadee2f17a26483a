"""Training voices: tiny RVC v2 and so-vits-svc 4.1 models trained for a few dozen steps on speech made by
the shipped Piper voice (a second speaker: the same voice moved down in pitch and formants), with the tiny
content encoder the tests build. Losses fall, the outputs load through the studio's loader and convert,
resume continues from the saved step, the key layouts are the originals', bad input is refused or skipped
and nothing done so far is lost."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from svc_speech import speech

from snowai_studio import cli
from workers.errors import Cancelled, UserError

LAYOUTS = Path(__file__).parent / "data" / "svc_train_layouts.json"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("svc-train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SNOWAI_HOME", str(root / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield root


@pytest.fixture(scope="module")
def encoder(home: Path) -> Path:
    from svc_fixtures import make_content_encoder

    return make_content_encoder(home / "encoder")


def _write(path: Path, audio: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, rate)
    return path


@pytest.fixture(scope="module")
def dataset(home: Path) -> Path:
    """Two speakers (Piper's voice, and it 4 semitones lower with lower formants) and a damaged file."""
    from workers.voice_conversion.dsp import DSPVoiceChanger

    folder = home / "data"
    audio, rate = speech(seconds=13.0)
    _write(folder / "joe" / "take1.wav", audio, rate)
    low = DSPVoiceChanger(rate, pitch=-4.0, formant=-3.0).convert_at(audio, rate)
    _write(folder / "low" / "take1.flac", low.astype(np.float32), rate)
    (folder / "joe" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    return folder


def train(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["svc-train", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def one_sentence(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def rvc_run(home: Path, dataset: Path, encoder: Path) -> tuple[Path, str]:
    out = home / "rvc"
    code, text, err = train(
        dataset,
        "-o",
        out,
        "--arch",
        "rvc-v2",
        "--size",
        "tiny",
        "--rate",
        48000,
        "--encoder",
        encoder,
        "--steps",
        24,
        "--save-every",
        12,
        "--preview-every",
        12,
        "--device",
        "cpu",
        "--store",
        home / "store",
    )
    assert code == 0, err
    return out, text


@pytest.fixture(scope="module")
def sovits_run(home: Path, dataset: Path, encoder: Path) -> Path:
    from workers.voice_conversion.training.trainer import Trainer, TrainOptions

    out = home / "sovits"
    trainer = Trainer(
        TrainOptions(
            dataset, out, arch="sovits-4.1", size="tiny", encoder=str(encoder), steps=24, save_every=12, preview_every=0
        )
    )
    trainer.prepare()
    trainer.run()
    return out


def _history(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "train.json").read_text(encoding="utf-8"))["history"]


def _falls(history: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [h[key] for h in history]
    return float(np.mean(values[:6])), float(np.mean(values[-6:]))


def _convert_check(model_path: Path, encoder: Path, index: Path | None = None) -> np.ndarray:
    """The studio's loader and converter on the trained voice: speech in, finite audible speech out."""
    from workers.voice_conversion.neural import load_neural_converter
    from workers.voice_conversion.options import VoiceConversionOptions

    options = VoiceConversionOptions(model=str(model_path), index=str(index or ""), index_ratio=0.5)
    converter = load_neural_converter(options, content_encoder=encoder)
    audio, rate = speech(seconds=2.0)
    from workers.media.audio import resample

    out = converter.convert(resample(audio[:, None], rate, 16000)[:, 0])
    assert len(out) == round(2.0 * converter.sample_rate)
    assert np.isfinite(out).all() and float(np.sqrt(np.mean(out**2))) > 1e-4
    return out


# ---- RVC v2 ---------------------------------------------------------------------------------------------


def test_rvc_training_reports_the_dataset_and_its_losses_fall(rvc_run: tuple[Path, str]) -> None:
    out, text = rvc_run
    assert "skipped joe/broken.wav: unreadable" in text
    assert "step 1/24: mel" in text and "s/step" in text and "min left" in text
    report = json.loads((out / "train.json").read_text(encoding="utf-8"))["report"]
    assert set(report["seconds"]) == {"joe", "low"} and report["usable_seconds"] > 20
    history = _history(out)
    assert [h["step"] for h in history] == list(range(1, 25))
    for key in ("total", "kl"):
        first, last = _falls(history, key)
        assert last < first, (key, first, last)
    assert (out / "previews" / "step_12.wav").is_file()


def test_rvc_output_is_the_original_small_model_and_index(rvc_run: tuple[Path, str], encoder: Path) -> None:
    import torch
    from svc_fixtures import layouts

    from workers.voice_conversion.checkpoints import inspect_checkpoint

    out, _ = rvc_run
    model = out / "rvc.pth"
    obj = torch.load(model, map_location="cpu", weights_only=True)
    assert obj["version"] == "v2" and obj["f0"] == 1 and obj["sr"] == "48k" and obj["info"] == "24 steps"
    assert all(v.dtype == torch.float16 for v in obj["weight"].values())
    # the layout RVC's own SynthesizerTrnMs768NSFsid gives for this configuration (pinned from its code)
    assert {k: list(v.shape) for k, v in obj["weight"].items()} == layouts()["rvc-v2-f0"]
    info = inspect_checkpoint(model)
    assert info.kind == "rvc-v2" and info.sample_rate == 48000 and len(info.speakers) == 2
    index = next(out.glob("added_IVF*_Flat_nprobe_1_rvc_v2.index"))
    _convert_check(model, encoder, index)


def test_svc_command_takes_a_content_encoder_folder(rvc_run: tuple[Path, str], encoder: Path, home: Path) -> None:
    out, _ = rvc_run
    audio, rate = speech(seconds=1.5)
    src = _write(home / "in.wav", audio, rate)
    code = cli.main(
        [
            "svc",
            "-i",
            str(src),
            "-o",
            str(home / "converted.wav"),
            "--model",
            str(out / "rvc.pth"),
            "--encoder",
            str(encoder),
            "--store",
            str(home / "store"),
        ]
    )
    assert code == 0
    converted, out_rate = soundfile.read(str(home / "converted.wav"))
    assert out_rate == 48000 and abs(len(converted) / out_rate - 1.5) < 0.05


def test_resume_continues_from_the_saved_step(
    rvc_run: tuple[Path, str], home: Path, dataset: Path, encoder: Path
) -> None:
    import torch

    out, _ = rvc_run
    copy = home / "rvc-resumed"
    shutil.copytree(out, copy)
    saved = torch.load(copy / "train" / "G_24.pth", map_location="cpu", weights_only=True)
    assert saved["iteration"] == 24 and "enc_q.pre.weight" in saved["model"]
    code, text, err = train(
        dataset,
        "-o",
        copy,
        "--arch",
        "rvc-v2",
        "--size",
        "tiny",
        "--rate",
        48000,
        "--encoder",
        encoder,
        "--steps",
        26,
        "--resume",
        "--device",
        "cpu",
        "--store",
        home / "store",
    )
    assert code == 0, err
    steps = [line.split(":")[0] for line in text.splitlines() if line.startswith("step ")]
    assert steps == ["step 25/26", "step 26/26"]
    assert [h["step"] for h in _history(copy)] == list(range(1, 27))
    code, _, err = train(
        dataset, "-o", copy, "--arch", "rvc-v2", "--size", "tiny", "--encoder", encoder, "--store", home / "store"
    )
    assert code == 1 and "already holds a training run (step 26)" in one_sentence(err)
    code, _, err = train(
        dataset,
        "-o",
        copy,
        "--arch",
        "sovits-4.1",
        "--size",
        "tiny",
        "--resume",
        "--encoder",
        encoder,
        "--store",
        home / "store",
    )
    assert code == 1 and "holds a rvc-v2 run of the tiny size at 48000 Hz" in one_sentence(err)
    # an earlier saved step becomes the voice
    code, text, err = train(dataset, "-o", copy, "--export", 12, "--encoder", encoder, "--store", home / "store")
    assert code == 0, err
    assert "voice of step 12:" in text
    assert torch.load(copy / "rvc-resumed.pth", map_location="cpu", weights_only=True)["info"] == "12 steps"


# ---- so-vits-svc 4.1 -------------------------------------------------------------------------------------


def test_sovits_training_losses_fall_and_the_voice_loads(sovits_run: Path, encoder: Path) -> None:
    import torch

    from workers.voice_conversion.checkpoints import inspect_checkpoint
    from workers.voice_conversion.index import load_index

    history = _history(sovits_run)
    for key in ("total", "kl"):
        first, last = _falls(history, key)
        assert last < first, (key, first, last)
    assert all("lf0" in h for h in history)
    assert not (sovits_run / "previews").exists()  # previews were turned off
    g = torch.load(sovits_run / "G_24.pth", map_location="cpu", weights_only=True)
    assert set(g) == {"model", "iteration", "optimizer", "learning_rate"} and g["iteration"] == 24
    assert any(k.startswith("enc_q.") for k in g["model"])
    info = inspect_checkpoint(sovits_run)  # the folder: its latest G_*.pth and config.json
    assert info.kind == "sovits-4.1" and info.path.name == "G_24.pth" and info.speakers == {"joe": 0, "low": 1}
    cluster = load_index(sovits_run / "kmeans_10000.pt", content_dim=768, speakers=info.speakers)
    assert cluster.dim == 768
    _convert_check(sovits_run, encoder, sovits_run / "kmeans_10000.pt")


def test_full_size_networks_have_the_originals_key_layouts() -> None:
    """Generators with enc_q and the discriminators, against the layouts RVC's and so-vits-svc's own classes
    give (``tests/data/svc_train_layouts.json``, taken from their code at the published configs)."""
    import torch

    from workers.voice_conversion.training.discriminators import MultiPeriodDiscriminator
    from workers.voice_conversion.training.nets import build_generator, generator_state
    from workers.voice_conversion.training.presets import TrainSpec

    ref = json.loads(LAYOUTS.read_text(encoding="utf-8"))

    def layout(state: dict[str, Any]) -> dict[str, list[int]]:
        return {k: list(v.shape) for k, v in state.items()}

    with torch.device("meta"):
        for rate in (32000, 40000, 48000):
            net, enc_q = build_generator(TrainSpec("rvc-v2", "full", rate))
            assert layout(generator_state(net, enc_q)) == ref[f"rvc-v2-{rate // 1000}k-G"]
        spec = TrainSpec("sovits-4.1", "full")
        net, enc_q = build_generator(spec)
        assert layout(generator_state(net, enc_q)) == ref["sovits-4.1-G"]
        assert layout(MultiPeriodDiscriminator(spec.periods).state_dict()) == ref["sovits-4.1-D"]
        rvc = TrainSpec("rvc-v2", "full")
        assert layout(MultiPeriodDiscriminator(rvc.periods).state_dict()) == ref["rvc-v2-D"]


# ---- bad input and interruptions ----------------------------------------------------------------------------


def test_recordings_are_skipped_with_their_reasons(home: Path) -> None:
    from workers.voice_conversion.training.dataset import prepare_dataset

    folder = home / "mixed"
    audio, rate = speech(seconds=12.0)
    _write(folder / "good.wav", audio, rate)
    _write(folder / "clipped.wav", np.clip(audio * 40, -1, 1), rate)
    _write(folder / "quiet.wav", audio * 0.004, rate)
    _write(folder / "short.wav", audio[: rate // 2], rate)
    stereo = np.stack([audio, audio * 0.5], axis=1)
    _write(folder / "stereo.ogg", stereo[: rate * 4], rate)
    pieces, report = prepare_dataset(folder, 40000)
    reasons = dict(report.skipped)
    assert reasons["clipped.wav"].startswith("clipped")
    assert reasons["quiet.wav"].startswith("too quiet")
    assert reasons["short.wav"].startswith("too short")
    assert "stereo.ogg" not in reasons
    assert all(2.0 <= p.seconds <= 15.0 and p.rate == 40000 for p in pieces)
    levels = [20 * np.log10(np.sqrt(np.mean(p.audio**2))) for p in pieces]
    assert all(-26 < level < -17 for level in levels), levels
    assert np.max(np.abs(np.concatenate([p.audio for p in pieces]))) < 0.95


def test_under_ten_seconds_is_refused_with_the_number(home: Path, encoder: Path) -> None:
    audio, rate = speech(seconds=6.0)
    folder = home / "little"
    _write(folder / "a.wav", audio, rate)
    code, _, err = train(
        folder,
        "-o",
        home / "little-out",
        "--arch",
        "sovits-4.1",
        "--size",
        "tiny",
        "--encoder",
        encoder,
        "--store",
        home / "store",
    )
    assert code == 1
    line = one_sentence(err)
    assert line.startswith("Only 6.0 s of usable speech") and "at least 10 s" in line


def test_a_missing_content_encoder_names_the_download(home: Path, dataset: Path) -> None:
    from svc_fixtures import fixture_store

    store = fixture_store(home / "empty-store", models=())
    code, _, err = train(
        dataset, "-o", home / "no-encoder", "--arch", "rvc-v2", "--size", "tiny", "--store", store.root
    )
    assert code == 1
    line = one_sentence(err)
    assert "download" in line and "snowai-studio models download" in line


def _small_trainer(home: Path, dataset: Path, encoder: Path, name: str, **kwargs: Any) -> Any:
    from workers.voice_conversion.training.trainer import Trainer, TrainOptions

    data = home / "one-speaker"
    if not data.exists():
        shutil.copytree(dataset / "joe", data)
    options = TrainOptions(
        data,
        home / name,
        arch="sovits-4.1",
        size="tiny",
        encoder=str(encoder),
        steps=4,
        save_every=2,
        preview_every=0,
        batch_size=1,
    )
    return Trainer(options, **kwargs)


def test_a_full_disk_keeps_the_previous_checkpoint(
    home: Path, dataset: Path, encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    trainer = _small_trainer(home, dataset, encoder, "disk-full")
    trainer.prepare()
    real_save = torch.save

    def save(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        if "_4.pth" in str(path):
            Path(path).write_bytes(b"partial")  # the disk fills up half way through the file
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(UserError, match="The disk is full"):
        trainer.run()
    out = home / "disk-full"
    assert sorted(p.name for p in out.glob("*.pth*")) == ["D_2.pth", "G_2.pth"]
    assert json.loads((out / "train.json").read_text(encoding="utf-8"))["step"] == 2
    from workers.voice_conversion.checkpoints import load_voice_model

    assert load_voice_model(out / "G_2.pth").info.kind == "sovits-4.1"


def test_cancel_stops_within_a_step_and_keeps_the_steps_done(home: Path, dataset: Path, encoder: Path) -> None:
    state = {"cancel": False, "steps": 0}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            state["steps"] = data["step"]
            state["cancel"] = data["step"] == 3

    trainer = _small_trainer(home, dataset, encoder, "cancelled", on_event=on_event, cancelled=lambda: state["cancel"])
    trainer.prepare()
    with pytest.raises(Cancelled):
        trainer.run()
    out = home / "cancelled"
    assert state["steps"] == 3 and trainer.saved_step == 3
    assert (out / "G_3.pth").is_file() and json.loads((out / "train.json").read_text())["step"] == 3


def test_pretrained_bases_come_from_the_model_manager_or_a_folder(tmp_path: Path) -> None:
    from workers.models.manifest import load_manifest
    from workers.models.store import ModelStore
    from workers.voice_conversion.training.presets import TrainSpec
    from workers.voice_conversion.training.trainer import resolve_base

    manifest = {m.id: m for m in load_manifest()}
    for model_id, files in (
        ("rvc-v2-pretrained-32k", {"f0G32k.pth", "f0D32k.pth"}),
        ("rvc-v2-pretrained-40k", {"f0G40k.pth", "f0D40k.pth"}),
        ("rvc-v2-pretrained-48k", {"f0G48k.pth", "f0D48k.pth"}),
        ("sovits-4.1-pretrained", {"G_0.pth", "D_0.pth"}),
    ):
        assert {f.name for f in manifest[model_id].files} == files
        assert all(f.size > 50_000_000 and len(f.sha256) == 64 for f in manifest[model_id].files)
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "f0G40k.pth").write_bytes(b"g")
    spec = TrainSpec("rvc-v2", "full", 40000)
    with pytest.raises(UserError, match=r"needs f0D40k\.pth"):
        resolve_base(str(folder), spec, None)
    (folder / "f0D40k.pth").write_bytes(b"d")
    assert resolve_base(str(folder), spec, None) == (folder / "f0G40k.pth", folder / "f0D40k.pth")
    with pytest.raises(UserError, match="models download rvc-v2-pretrained-40k"):
        resolve_base("rvc-v2-pretrained-40k", spec, ModelStore(tmp_path / "store"))


def test_noise_suppression_cleans_the_pauses() -> None:
    from workers.voice_conversion.training.dataset import denoise, frame_db

    audio, rate = speech(seconds=4.0)
    noisy = (audio + np.random.default_rng(0).normal(0, 0.02, len(audio))).astype(np.float32)
    clean = denoise(noisy, rate)
    assert len(clean) == len(noisy) and clean.dtype == np.float32
    levels = frame_db(audio, rate)
    pauses = levels < levels.max() - 40

    def floor(x: np.ndarray) -> float:
        return float(np.median(frame_db(x, rate)[pauses]))

    assert floor(clean) < floor(noisy) - 20
    # lined up with the input: RNNoise's own 30 ms and the resamplers' delay are taken out
    from scipy.signal import correlate

    shift = int(np.argmax(correlate(clean, audio, mode="full", method="fft"))) - (len(audio) - 1)
    assert abs(shift) <= rate * 0.005
