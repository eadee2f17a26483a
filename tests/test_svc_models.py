"""The neural voice models: checkpoint layouts, strict loading, content encoder, indexes, conversion of
real speech, and clear errors for bad files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import svc_fixtures
import torch
from svc_speech import speech

from workers.errors import UserError
from workers.media.audio import resample
from workers.voice_conversion.checkpoints import (
    KIND_NAMES,
    RVC_V1,
    RVC_V2,
    SOVITS_40,
    SOVITS_41,
    fill_unvoiced,
    inspect_checkpoint,
    load_voice_model,
)
from workers.voice_conversion.content import ContentEncoder
from workers.voice_conversion.index import ClusterModel, FeatureIndex, SpeakerFeatureIndex, load_index
from workers.voice_conversion.neural import NeuralConverter, load_neural_converter
from workers.voice_conversion.options import VoiceConversionOptions

# The config.json fields so-vits-svc writes (its configs_template/config_template.json of 4.0 and 4.1).
SOVITS_FIELDS = {
    "4.0": {
        "train": {
            "log_interval", "eval_interval", "seed", "epochs", "learning_rate", "betas", "eps", "batch_size",
            "fp16_run", "lr_decay", "segment_size", "init_lr_ratio", "warmup_epochs", "c_mel", "c_kl", "use_sr",
            "max_speclen", "port", "keep_ckpts",
        },
        "data": {
            "training_files", "validation_files", "max_wav_value", "sampling_rate", "filter_length", "hop_length",
            "win_length", "n_mel_channels", "mel_fmin", "mel_fmax",
        },
        "model": {
            "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size", "p_dropout",
            "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates",
            "upsample_initial_channel", "upsample_kernel_sizes", "n_layers_q", "use_spectral_norm", "gin_channels",
            "ssl_dim", "n_speakers",
        },
    },
}
SOVITS_FIELDS["4.1"] = {
    "train": SOVITS_FIELDS["4.0"]["train"] | {"half_type", "all_in_mem", "vol_aug"},
    "data": SOVITS_FIELDS["4.0"]["data"] | {"unit_interpolate_mode"},
    "model": SOVITS_FIELDS["4.0"]["model"] | {
        "n_layers_trans_flow", "n_flow_layer", "vocoder_name", "speech_encoder", "speaker_embedding", "vol_embedding",
        "use_depthwise_conv", "flow_share_parameter", "use_automatic_f0_prediction", "use_transformer_flow",
    },
}
# The positional config list of an RVC .pth (process_ckpt.savee): 18 values of these types.
RVC_CONFIG_TYPES = [
    int, int, int, int, int, int, int, int, (int, float), str, list, list, list, int, list, int, int, int,
]
KINDS = (SOVITS_40, SOVITS_41, RVC_V1, RVC_V2)


def build_case(name: str, folder: Path) -> Path:
    """The fixture checkpoint of a layout case (a so-vits-svc folder or an RVC .pth)."""
    kind, args = svc_fixtures.LAYOUT_CASES[name]
    args = dict(args)
    if kind == "sovits":
        gen, _ = svc_fixtures.make_sovits_checkpoint(folder / name, args.pop("version"), **args)
        return gen.parent
    return svc_fixtures.make_rvc_checkpoint(
        folder / f"{name}.pth", args["version"], args["f0"], sr=args.get("sr", "40k")
    )


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One fixture checkpoint per kind (so-vits folders, RVC files), built once."""
    root = tmp_path_factory.mktemp("svc-models")
    return {
        SOVITS_40: svc_fixtures.make_sovits_checkpoint(root / "sovits40", "4.0")[0].parent,
        SOVITS_41: svc_fixtures.make_sovits_checkpoint(root / "sovits41", "4.1")[0].parent,
        RVC_V1: svc_fixtures.make_rvc_checkpoint(root / "rvc-v1.pth", "v1"),
        RVC_V2: svc_fixtures.make_rvc_checkpoint(root / "rvc-v2.pth", "v2"),
    }


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return svc_fixtures.fixture_store(tmp_path_factory.mktemp("svc-store"))


@pytest.fixture(scope="session")
def encoder(store: Any) -> ContentEncoder:
    return ContentEncoder("contentvec-best", store=store)


@pytest.fixture(scope="session")
def speech16k() -> np.ndarray:
    audio, rate = speech()
    return resample(audio[:, None], rate, 16000)[:, 0]


# ---- layouts as the originals write them ------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(svc_fixtures.LAYOUT_CASES))
def test_fixture_checkpoints_have_the_original_key_layout(case: str, tmp_path: Path) -> None:
    path = build_case(case, tmp_path)
    expected = {k: tuple(v) for k, v in svc_fixtures.layouts()[case].items()}
    if case.startswith("sovits"):
        ckpt = torch.load(next(path.glob("G_*.pth")), map_location="cpu", weights_only=True)
        assert set(ckpt) == {"model", "iteration", "optimizer", "learning_rate"}
        state = ckpt["model"]
        assert any(k.startswith("enc_q.") for k in state)  # training checkpoints keep the posterior encoder
        assert set(ckpt["optimizer"]) == {"state", "param_groups"}
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert set(ckpt) == {"weight", "config", "info", "sr", "f0", "version"}
        state = ckpt["weight"]
        assert all(v.dtype == torch.float16 for v in state.values())
        assert len(ckpt["config"]) == 18
        for value, kind in zip(ckpt["config"], RVC_CONFIG_TYPES, strict=True):
            assert isinstance(value, kind)
        assert ckpt["sr"] in ("32k", "40k", "48k") and ckpt["f0"] in (0, 1) and ckpt["version"] in ("v1", "v2")
    layout = {k: tuple(v.shape) for k, v in state.items()}
    assert layout == expected
    # weight norm is stored the old way (weight_g / weight_v), never as parametrizations
    assert any(k.endswith(".weight_g") for k in layout) and not any("parametrizations" in k for k in layout)


@pytest.mark.parametrize("version", ["4.0", "4.1"])
def test_sovits_config_has_the_original_fields(version: str) -> None:
    config = svc_fixtures.sovits_config(version)
    assert set(config) == {"train", "data", "model", "spk"}
    for section, fields in SOVITS_FIELDS[version].items():
        assert set(config[section]) == fields, section


# ---- inspecting and loading --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_inspect_describes_each_kind(models: dict[str, Path], kind: str) -> None:
    info = inspect_checkpoint(models[kind])
    assert info.kind == kind
    assert info.f0 is True
    if kind.startswith("sovits"):
        assert info.sample_rate == 44100 and info.hop_length == 512
        assert info.speakers == svc_fixtures.SPEAKERS
        assert info.content_dim == (256 if kind == SOVITS_40 else 768)
        assert info.config_path == models[kind] / "config.json"
        assert info.path.name == "G_100.pth"
    else:
        assert info.sample_rate == 40000 and info.hop_length == 400
        assert info.content_dim == (256 if kind == RVC_V1 else 768)
        assert info.speakers == {"0": 0, "1": 1}
    assert (info.content_layer, info.content_projection) == ((9, True) if info.content_dim == 256 else (12, False))
    assert info.describe().startswith(KIND_NAMES[kind])


def test_rvc_without_pitch_is_recognised(tmp_path: Path) -> None:
    path = svc_fixtures.make_rvc_checkpoint(tmp_path / "nof0.pth", "v2", f0=False, sr="48k")
    info = inspect_checkpoint(path)
    assert info.kind == RVC_V2 and info.f0 is False and info.sample_rate == 48000
    model = load_voice_model(path)
    out = model.infer(torch.randn(1, 30, 768), torch.zeros(1, 30))
    assert out.shape == (30 * 480,) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_models_infer_deterministically(models: dict[str, Path], kind: str) -> None:
    model = load_voice_model(models[kind])
    frames = 40
    content = torch.randn(1, frames, model.content_dim, generator=torch.Generator().manual_seed(1))
    f0 = torch.full((1, frames), 180.0)
    f0[0, 10:15] = 0
    a = model.infer(content, f0, speaker=1, noise_scale=0.5, seed=3)
    b = model.infer(content, f0, speaker=1, noise_scale=0.5, seed=3)
    c = model.infer(content, f0, speaker=1, noise_scale=0.5, seed=4)
    assert a.shape == (frames * model.hop_length,)
    assert torch.isfinite(a).all() and a.abs().max() <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    # weight norm is folded into plain weights once loaded
    assert not any(name.endswith(("weight_g", "weight_v")) for name, _ in model.net.named_parameters())
    with pytest.raises(UserError, match="Speaker 7"):
        model.infer(content, f0, speaker=7)


def test_sovits_release_form_loads(tmp_path: Path) -> None:
    """so-vits-svc's compressed release (fp16, no enc_q, fresh optimizer) loads like the training file."""
    full, _ = svc_fixtures.make_sovits_checkpoint(tmp_path / "full", "4.1", seed=5)
    small, _ = svc_fixtures.make_sovits_checkpoint(tmp_path / "small", "4.1", seed=5, release=True)
    assert small.name == "G_0.pth"
    content = torch.randn(1, 20, 768, generator=torch.Generator().manual_seed(2))
    f0 = torch.full((1, 20), 220.0)
    a = load_voice_model(full.parent).infer(content, f0)
    b = load_voice_model(small.parent).infer(content, f0)
    assert torch.isfinite(b).all()
    assert float((a - b).abs().max()) < 0.05  # the same weights, rounded to fp16


def test_sovits_41_variants_load(tmp_path: Path) -> None:
    gen, _ = svc_fixtures.make_sovits_checkpoint(
        tmp_path / "v", "4.1", vol_embedding=True, use_depthwise_conv=True, flow_share_parameter=True
    )
    model = load_voice_model(gen)
    assert model.needs_volume and model.can_predict_f0
    content = torch.randn(1, 25, 768)
    f0 = torch.full((1, 25), 150.0)
    quiet = model.infer(content, f0, volume=torch.full((1, 25), 0.01))
    loud = model.infer(content, f0, volume=torch.full((1, 25), 0.3))
    assert not torch.equal(quiet, loud)
    predicted = model.infer(content, f0, predict_f0=True)
    assert torch.isfinite(predicted).all()


def test_fill_unvoiced_interpolates_between_voiced_frames() -> None:
    f0 = np.array([0, 100, 0, 0, 160, 0], np.float32)
    filled, uv = fill_unvoiced(f0, "4.1", hop=512, rate=44100)
    assert uv.tolist() == [0, 1, 0, 0, 1, 0]
    assert filled == pytest.approx([100, 100, 120, 140, 160, 160], abs=1e-3)
    # 4.0 reaches the next voiced value one frame early and holds the end
    filled40, _ = fill_unvoiced(f0, "4.0")
    assert filled40 == pytest.approx([100, 100, 130, 160, 160, 160], abs=1e-3)
    assert fill_unvoiced(np.zeros(4), "4.1")[0].tolist() == [0, 0, 0, 0]


# ---- bad files: one clear sentence -------------------------------------------------------------------------------


class _Code:
    """Pickles as a call to os.system (a checkpoint carrying code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_corrupt_truncated_and_empty_files_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    good = models[RVC_V2].read_bytes()
    cases = {
        "truncated.pth": good[: len(good) // 2],
        "random.pth": np.random.default_rng(0).bytes(4096),
        "empty.pth": b"",
        "text.pth": b"this is not a model at all",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError) as err:
            inspect_checkpoint(path)
        message = str(err.value)
        assert name in message and "\n" not in message
    with pytest.raises(UserError, match="not found"):
        inspect_checkpoint(tmp_path / "missing.pth")


def test_a_pickle_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": {"emb_g.weight": torch.zeros(2, 2)}, "config": _Code(marker)}, path)
    with pytest.raises(UserError, match=r"Python objects or code \(.*system\)"):
        load_voice_model(path)
    assert not marker.exists()


def test_a_plain_pickle_with_code_is_refused_and_named(tmp_path: Path) -> None:
    """A .pth written by pickle itself (protocol 4, not torch.save) that calls os.system."""
    import pickle

    marker = tmp_path / "ran"
    path = tmp_path / "plain-evil.pth"
    path.write_bytes(pickle.dumps({"weight": _Code(marker)}, protocol=4))
    with pytest.raises(UserError, match=r"Python objects or code \(.*system\)"):
        load_voice_model(path)
    assert not marker.exists()


def test_checkpoints_of_other_kinds_are_named(models: dict[str, Path], tmp_path: Path) -> None:
    disc = tmp_path / "D_100.pth"
    torch.save({"model": {"discriminators.0.convs.0.weight_g": torch.zeros(1)}, "iteration": 1}, disc)
    with pytest.raises(UserError, match="discriminator"):
        inspect_checkpoint(disc)
    hubert = tmp_path / "hubert.pth"
    torch.save({"feature_extractor.conv_layers.0.conv.weight": torch.zeros(2), "final_proj.weight": torch.zeros(1)},
               hubert)
    with pytest.raises(UserError, match="content encoder"):
        inspect_checkpoint(hubert)
    other = tmp_path / "other.pth"
    torch.save({"state": torch.zeros(3)}, other)
    with pytest.raises(UserError, match="not a so-vits-svc or RVC voice model"):
        inspect_checkpoint(other)
    image = tmp_path / "photo.pth"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(UserError, match="PNG"):
        inspect_checkpoint(image)


def test_sovits_needs_its_config(models: dict[str, Path], tmp_path: Path) -> None:
    gen = next(models[SOVITS_41].glob("G_*.pth"))
    lonely = tmp_path / "G_100.pth"
    lonely.write_bytes(gen.read_bytes())
    with pytest.raises(UserError, match=r"needs the config\.json"):
        inspect_checkpoint(lonely)
    # the config may also be given separately
    assert inspect_checkpoint(lonely, models[SOVITS_41] / "config.json").kind == SOVITS_41
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="not a valid JSON"):
        inspect_checkpoint(lonely, broken)


def test_mismatched_config_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    gen = next(models[SOVITS_40].glob("G_*.pth"))
    # a 4.1 config (768-d content) with a 4.0 checkpoint (256-d)
    with pytest.raises(UserError, match="does not match"):
        inspect_checkpoint(gen, models[SOVITS_41] / "config.json")
    # same content size, other hidden sizes: caught by strict key/shape matching at load
    _other, cfg = svc_fixtures.make_sovits_checkpoint(tmp_path / "wide", "4.0", filter_channels=96)
    with pytest.raises(UserError, match=r"does not match config\.json: .*ffn_layers"):
        load_voice_model(gen, cfg)
    # a checkpoint with a weight too many
    extra = tmp_path / "extra" / "G_1.pth"
    extra.parent.mkdir()
    ckpt = torch.load(gen, weights_only=True)
    ckpt["model"]["emb_spk.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, extra)
    (extra.parent / "config.json").write_bytes((models[SOVITS_40] / "config.json").read_bytes())
    with pytest.raises(UserError, match="unknown"):
        load_voice_model(extra.parent)


def test_unsupported_sovits_variants_are_named(tmp_path: Path) -> None:
    gen, cfg = svc_fixtures.make_sovits_checkpoint(tmp_path / "a", "4.1", speech_encoder="whisper-ppg")
    with pytest.raises(UserError, match="whisper-ppg"):
        inspect_checkpoint(gen)
    gen, cfg = svc_fixtures.make_sovits_checkpoint(tmp_path / "b", "4.1")
    import json

    data = json.loads(cfg.read_text())
    data["model"]["vocoder_name"] = "nsf-snake-hifigan"
    cfg.write_text(json.dumps(data))
    with pytest.raises(UserError, match="nsf-snake-hifigan"):
        inspect_checkpoint(gen)
    gen, cfg = svc_fixtures.make_sovits_checkpoint(tmp_path / "c", "4.0")
    data = json.loads(cfg.read_text())
    data["model"]["type_"] = "mb-istft"  # so-vits-svc-fork's other decoders
    cfg.write_text(json.dumps(data))
    with pytest.raises(UserError, match="mb-istft"):
        inspect_checkpoint(gen)


def test_a_folder_resolves_to_its_latest_generator(tmp_path: Path) -> None:
    svc_fixtures.make_sovits_checkpoint(tmp_path / "m", "4.0", step=800)
    svc_fixtures.make_sovits_checkpoint(tmp_path / "m", "4.0", step=1600)
    torch.save({"model": {"discriminators.0.convs.0.bias": torch.zeros(1)}}, tmp_path / "m" / "D_1600.pth")
    assert inspect_checkpoint(tmp_path / "m").path.name == "G_1600.pth"
    (tmp_path / "rvc").mkdir()
    svc_fixtures.make_rvc_checkpoint(tmp_path / "rvc" / "a.pth", "v1")
    assert inspect_checkpoint(tmp_path / "rvc").kind == RVC_V1
    svc_fixtures.make_rvc_checkpoint(tmp_path / "rvc" / "b.pth", "v1")
    with pytest.raises(UserError, match="several checkpoints"):
        inspect_checkpoint(tmp_path / "rvc")


def test_inconsistent_rvc_files_are_refused(tmp_path: Path) -> None:
    path = svc_fixtures.make_rvc_checkpoint(tmp_path / "m.pth", "v2", f0=False)
    ckpt = torch.load(path, weights_only=True)
    ckpt["f0"] = 1  # says pitch, has no pitch weights
    torch.save(ckpt, tmp_path / "f0.pth")
    with pytest.raises(UserError, match="missing"):
        load_voice_model(tmp_path / "f0.pth")
    ckpt["f0"], ckpt["version"] = 0, "v1"  # 768-d weights labelled v1
    torch.save(ckpt, tmp_path / "v1.pth")
    with pytest.raises(UserError, match="inconsistent"):
        inspect_checkpoint(tmp_path / "v1.pth")
    ckpt["version"] = "v3"
    torch.save(ckpt, tmp_path / "v3.pth")
    with pytest.raises(UserError, match="v3"):
        inspect_checkpoint(tmp_path / "v3.pth")
    ckpt["version"], ckpt["config"] = "v2", ckpt["config"][:10]
    torch.save(ckpt, tmp_path / "short.pth")
    with pytest.raises(UserError, match="invalid RVC config"):
        inspect_checkpoint(tmp_path / "short.pth")
    ckpt = torch.load(path, weights_only=True)
    ckpt["weight"]["enc_p.proj.bias"] = torch.full_like(ckpt["weight"]["enc_p.proj.bias"], float("nan"))
    torch.save(ckpt, tmp_path / "nan.pth")
    with pytest.raises(UserError, match="NaN"):
        load_voice_model(tmp_path / "nan.pth")


# ---- content encoder --------------------------------------------------------------------------------------------


def test_content_encoder_gives_both_feature_sizes(encoder: ContentEncoder, speech16k: np.ndarray) -> None:
    audio = speech16k[:16000]
    wide = encoder.encode(audio, dim=768)
    narrow = encoder.encode(audio, dim=256)
    assert wide.shape == (1, 49, 768) and narrow.shape == (1, 49, 256)
    assert torch.isfinite(wide).all() and torch.isfinite(narrow).all()
    assert encoder.layer_index(12) == 3 and encoder.layer_index(9) == 2  # a 3-layer test encoder
    # the 256-d path reads an earlier layer through final_proj
    manual = encoder.final_proj(encoder.encode(audio, dim=768, layer=9))  # type: ignore[misc]
    assert torch.allclose(manual, narrow, atol=1e-5)
    assert encoder.encode(np.zeros(100, np.float32), dim=768).shape[1] == 1  # shorter than one frame: padded
    with pytest.raises(UserError, match="512-d"):
        encoder.encode(audio, dim=512)


def test_content_encoder_folder_errors(tmp_path: Path) -> None:
    folder = svc_fixtures.make_content_encoder(tmp_path / "enc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"config\.json"):
        ContentEncoder(tmp_path / "empty")
    bad = tmp_path / "bert"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(UserError, match="bert"):
        ContentEncoder(bad)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["encoder.layers.0.attention.k_proj.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="do not match"):
        ContentEncoder(folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(UserError, match="no weights"):
        ContentEncoder(folder)
    with pytest.raises(UserError, match="not installed"):
        ContentEncoder("contentvec-best")  # the real store of this test is empty


# ---- indexes ----------------------------------------------------------------------------------------------------


def _faiss_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    return index


def test_rvc_feature_index_blends(tmp_path: Path) -> None:
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 768)).astype(np.float32)
    faiss.write_index(_faiss_index(vectors), str(tmp_path / "added.index"))
    index = load_index(tmp_path / "added.index", content_dim=768)
    assert isinstance(index, FeatureIndex) and index.dim == 768
    feats = torch.from_numpy(vectors[:5] + 0.01)[None]
    assert torch.equal(index.apply(feats, 0.0), feats)
    pulled = index.apply(feats, 1.0)
    assert float((pulled[0] - torch.from_numpy(vectors[:5])).abs().max()) < 0.05
    half = index.apply(feats, 0.5)
    assert torch.allclose(half, 0.5 * pulled + 0.5 * feats, atol=1e-5)
    with pytest.raises(UserError, match="768-d features but the voice model uses 256-d"):
        load_index(tmp_path / "added.index", content_dim=256)
    (tmp_path / "broken.index").write_bytes(b"IxF2" + bytes(20))
    with pytest.raises(UserError, match=r"broken\.index"):
        load_index(tmp_path / "broken.index", content_dim=768)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="not an index"):
        load_index(tmp_path / "notes.txt", content_dim=768)


def test_sovits_cluster_model_and_feature_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centers = {name: rng.normal(size=(6, 256)).astype(np.float32) for name in ("alice", "bob")}
    # as so-vits-svc's cluster/train_cluster.py saves it: numpy arrays in a torch file
    torch.save({k: {"n_features_in_": 256, "_n_threads": 4, "cluster_centers_": v} for k, v in centers.items()},
               tmp_path / "kmeans_10000.pt")
    cluster = load_index(tmp_path / "kmeans_10000.pt", content_dim=256, speakers={"alice": 0, "bob": 1})
    assert isinstance(cluster, ClusterModel)
    feats = torch.from_numpy(centers["bob"][[2, 4]] + 0.01)[None]
    snapped = cluster.apply(feats, 1.0, speaker=1)
    assert torch.allclose(snapped[0], torch.from_numpy(centers["bob"][[2, 4]]))
    # feature_and_index.pkl: a plain pickle of faiss indexes per speaker id
    with open(tmp_path / "feature_and_index.pkl", "wb") as fh:
        pickle.dump({0: _faiss_index(centers["alice"]), 1: _faiss_index(centers["bob"])}, fh)
    fidx = load_index(tmp_path / "feature_and_index.pkl", content_dim=256)
    assert isinstance(fidx, SpeakerFeatureIndex) and set(fidx.indexes) == {0, 1}
    near = fidx.apply(feats, 1.0, speaker=1)
    assert float((near[0] - torch.from_numpy(centers["bob"][[2, 4]])).abs().max()) < 0.05
    # a .pkl that carries code is refused without running it
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump({0: _Code(marker)}, fh)
    with pytest.raises(UserError, match="Python objects"):
        load_index(tmp_path / "evil.pkl", content_dim=256)
    assert not marker.exists()


# ---- the converter on real speech -------------------------------------------------------------------------------


def _options(model: Path, **kw: Any) -> VoiceConversionOptions:
    return VoiceConversionOptions(model=str(model), **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_converter_converts_real_speech(models: dict[str, Path], store: Any, speech16k: np.ndarray, kind: str) -> None:
    converter = load_neural_converter(_options(models[kind], f0_method="harvest", pitch=3.0), store=store)
    assert isinstance(converter, NeuralConverter)
    assert converter.input_rate == 16000 and converter.sample_rate == (44100 if "sovits" in kind else 40000)
    audio = speech16k[:24000]  # 1.5 s
    out = converter.convert(audio)
    assert out.dtype == np.float32 and len(out) == round(len(audio) * converter.sample_rate / 16000)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0 and float(np.sqrt(np.mean(out**2))) > 1e-4
    assert np.array_equal(out, converter.convert(audio))  # deterministic
    voiced = converter.last_f0 > 0
    assert voiced.mean() > 0.3  # speech is mostly voiced
    shifted = converter.last_f0[voiced].copy()
    converter.set_params(pitch=0.0)
    converter.convert(audio)
    assert np.median(shifted / converter.last_f0[voiced]) == pytest.approx(2 ** (3 / 12), rel=1e-3)
    assert len(converter.convert(audio[:1000])) == round(1000 * converter.sample_rate / 16000)
    assert len(converter.convert(np.zeros(0, np.float32))) == 0


def test_converter_parameters_and_index(models: dict[str, Path], store: Any, speech16k: np.ndarray,
                                        tmp_path: Path) -> None:
    import faiss

    rng = np.random.default_rng(3)
    faiss.write_index(_faiss_index(rng.normal(size=(40, 768)).astype(np.float32)), str(tmp_path / "v2.index"))
    converter = load_neural_converter(
        _options(models[RVC_V2], f0_method="harvest", index=str(tmp_path / "v2.index"), index_ratio=0.0), store=store
    )
    audio = speech16k[8000:16000]
    plain = converter.convert(audio)
    converter.set_params(index_ratio=0.8, speaker=1, formant=5.0, unknown=1)
    assert converter.index_ratio == 0.8 and converter.speaker == 1
    assert not np.array_equal(plain, converter.convert(audio))
    with pytest.raises(UserError, match="Speaker 5"):
        converter.set_params(speaker=5)
    converter.set_params(auto_pitch=True, pitch=0.0)
    converter.convert(audio)
    from workers.voice_conversion.pitch import voiced_median

    assert voiced_median(converter.last_f0) == pytest.approx(200.0, rel=1e-3)
    with pytest.raises(UserError, match="index"):
        load_neural_converter(_options(models[RVC_V1], index=str(tmp_path / "v2.index")), store=store)


def test_sovits_auto_pitch_uses_its_f0_predictor(models: dict[str, Path], store: Any, speech16k: np.ndarray) -> None:
    converter = load_neural_converter(_options(models[SOVITS_41], f0_method="harvest"), store=store)
    audio = speech16k[:12000]
    plain = converter.convert(audio)
    converter.set_params(auto_pitch=True)
    predicted = converter.convert(audio)
    assert np.isfinite(predicted).all() and not np.array_equal(plain, predicted)


def test_converter_errors(models: dict[str, Path], store: Any, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_neural_converter(_options(tmp_path / "none.pth"), store=store)
    with pytest.raises(UserError, match=r"There is no model called"):
        load_neural_converter(_options(Path("no-such-model-id")), store=store)
    empty = svc_fixtures.fixture_store(tmp_path / "empty-store", models=())
    with pytest.raises(UserError, match="not installed"):
        load_neural_converter(_options(models[SOVITS_40]), store=empty)
    with pytest.raises(UserError, match="Speaker 9"):
        load_neural_converter(_options(models[SOVITS_40], speaker=9), store=store)
