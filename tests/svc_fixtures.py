"""Tiny randomly initialised voice models in the exact layouts so-vits-svc and RVC write, and a tiny
content encoder in the layout of ContentVec's transformers port (no download).

- :func:`make_sovits_checkpoint`: ``G_<step>.pth`` = ``{"model": state dict (with the training-only
  ``enc_q``), "iteration", "optimizer": AdamW state, "learning_rate"}`` and the full ``config.json``
  (train / data / model / spk sections, the fields so-vits-svc 4.0 or 4.1 writes);
- :func:`make_rvc_checkpoint`: the small ``.pth`` RVC exports: fp16 ``weight`` without ``enc_q``, the
  18-value ``config`` list, ``info``, ``sr`` ("40k"), ``f0`` (1/0), ``version``;
- :func:`make_content_encoder`: ``config.json`` + ``pytorch_model.bin`` of a 3-layer, 768-wide HuBERT with
  ``final_proj`` to 256 and the old weight-norm names (``weight_g``/``weight_v``), as content-vec-best has;
- :func:`fixture_store`: a model store in which ``contentvec-best`` and ``hubert-base-rvc`` are that encoder.

The networks are the studio's own modules; ``tests/data/svc_layouts.json`` holds the key names and shapes
the original so-vits-svc and RVC code gives for these same configs (see ``test_svc_models.py``).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

SPEAKERS = {"alice": 0, "bob": 1, "carol": 2}
CONTENT_ENCODER_IDS = ("contentvec-best", "hubert-base-rvc")
LAYOUTS = Path(__file__).parent / "data" / "svc_layouts.json"

#: The tiny model part shared by the so-vits-svc fixtures (real models: 192 channels, 6 layers, ...).
_SOVITS_MODEL = {
    "inter_channels": 16,
    "hidden_channels": 32,
    "filter_channels": 64,
    "n_heads": 2,
    "n_layers": 1,
    "kernel_size": 3,
    "p_dropout": 0.1,
    "resblock": "1",
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "upsample_rates": [8, 8, 8],
    "upsample_initial_channel": 32,
    "upsample_kernel_sizes": [16, 16, 16],
    "n_layers_q": 3,
    "use_spectral_norm": False,
    "gin_channels": 16,
    "ssl_dim": 256,
    "n_speakers": 3,
}
#: Fields so-vits-svc 4.1's config template adds to the model section (with its defaults).
_SOVITS_41_MODEL = {
    "n_layers_trans_flow": 3,
    "n_flow_layer": 4,
    "ssl_dim": 768,
    "vocoder_name": "nsf-hifigan",
    "speech_encoder": "vec768l12",
    "speaker_embedding": False,
    "vol_embedding": False,
    "use_depthwise_conv": False,
    "flow_share_parameter": False,
    "use_automatic_f0_prediction": True,
    "use_transformer_flow": False,
}
_RVC_RATES = {
    "32k": ([10, 8, 2, 2], [20, 16, 4, 4], 32000),
    "40k": ([10, 10, 2, 2], [16, 16, 4, 4], 40000),
    "48k": ([12, 10, 2, 2], [24, 20, 4, 4], 48000),
}


def sovits_config(version: str = "4.1", **model: Any) -> dict[str, Any]:
    """A complete so-vits-svc ``config.json`` (4.0 or 4.1 fields) for a tiny model; ``model`` overrides."""
    train = {
        "log_interval": 200, "eval_interval": 800, "seed": 1234, "epochs": 10000, "learning_rate": 0.0001,
        "betas": [0.8, 0.99], "eps": 1e-09, "batch_size": 6, "fp16_run": False, "lr_decay": 0.999875,
        "segment_size": 10240, "init_lr_ratio": 1, "warmup_epochs": 0, "c_mel": 45, "c_kl": 1.0, "use_sr": True,
        "max_speclen": 512, "port": "8001", "keep_ckpts": 3,
    }
    data = {
        "training_files": "filelists/train.txt", "validation_files": "filelists/val.txt", "max_wav_value": 32768.0,
        "sampling_rate": 44100, "filter_length": 2048, "hop_length": 512, "win_length": 2048, "n_mel_channels": 80,
        "mel_fmin": 0.0, "mel_fmax": 22050,
    }
    section = dict(_SOVITS_MODEL)
    if version == "4.1":
        train.update({"half_type": "fp16", "all_in_mem": False, "vol_aug": False})
        data["unit_interpolate_mode"] = "nearest"
        section.update(_SOVITS_41_MODEL)
    elif version != "4.0":
        raise ValueError(version)
    section.update(model)
    return {"train": train, "data": data, "model": section, "spk": dict(SPEAKERS)}


def rvc_config(sr: str = "40k") -> list[Any]:
    """The 18-value ``config`` list an RVC ``.pth`` holds, for a tiny model at ``sr``."""
    rates, kernels, rate = _RVC_RATES[sr]
    return [1025, 32, 16, 32, 64, 2, 1, 3, 0, "1", [3], [[1, 3, 5]], rates, 32, kernels, 2, 16, rate]


def _randomise(module: Any, seed: int) -> None:
    """Random weights everywhere (the flows' output convs start at zero in training, not here)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(0.5 + torch.rand(p.shape, generator=gen))
            elif ".post." in name or name.startswith("post."):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def _sovits_state(config: dict[str, Any], seed: int) -> tuple[dict[str, Any], Any]:
    import torch

    from workers.voice_conversion.models.sovits import SoVitsConfig, SoVitsSynthesizer

    torch.manual_seed(seed)
    net = SoVitsSynthesizer(SoVitsConfig.from_json(config))
    parts = net.training_parts()
    _randomise(net, seed)
    state = dict(net.state_dict())
    params = list(net.parameters())
    for prefix, part in parts.items():
        state.update({f"{prefix}.{k}": v for k, v in part.state_dict().items()})
        params += list(part.parameters())
    return state, params


def make_sovits_checkpoint(
    folder: Path, version: str = "4.1", *, step: int = 100, seed: int = 0, release: bool = False,
    **model: Any,
) -> tuple[Path, Path]:
    """``folder/G_<step>.pth`` and ``folder/config.json`` as so-vits-svc training saves them.

    ``release`` writes the compressed form (fp16 weights, no ``enc_q``, fresh optimizer state)."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = sovits_config(version, **model)
    state, params = _sovits_state(config, seed)
    optimizer = torch.optim.AdamW(params, config["train"]["learning_rate"], betas=config["train"]["betas"],
                                  eps=config["train"]["eps"])
    if release:
        state = {k: v.half() for k, v in state.items() if "enc_q" not in k}
        step = 0
    gen = folder / f"G_{step}.pth"
    torch.save(
        {"model": state, "iteration": step, "optimizer": optimizer.state_dict(),
         "learning_rate": config["train"]["learning_rate"]},
        gen,
    )
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return gen, cfg


def rvc_state(version: str = "v2", f0: bool = True, *, sr: str = "40k", seed: int = 0) -> dict[str, Any]:
    """The full (training) state dict of a tiny RVC synthesizer, ``enc_q`` included."""
    import torch

    from workers.voice_conversion.models.rvc import RVCConfig, RVCSynthesizer

    torch.manual_seed(seed)
    net = RVCSynthesizer(RVCConfig.from_list(rvc_config(sr), version=version, f0=f0))
    _randomise(net, seed)
    state = dict(net.state_dict())
    for prefix, part in net.training_parts().items():
        state.update({f"{prefix}.{k}": v for k, v in part.state_dict().items()})
    return state


def make_rvc_checkpoint(path: Path, version: str = "v2", f0: bool = True, *, sr: str = "40k", seed: int = 0) -> Path:
    """An RVC model ``.pth`` as RVC exports it (``process_ckpt.savee``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = rvc_state(version, f0, sr=sr, seed=seed)
    weight = {k: v.half() for k, v in state.items() if "enc_q" not in k}
    torch.save(
        {"weight": weight, "config": rvc_config(sr), "info": "20epoch", "sr": sr, "f0": int(f0), "version": version},
        path,
    )
    return path


# ---- content encoder --------------------------------------------------------------------------------------------


def _encoder_config() -> dict[str, Any]:
    from transformers import HubertConfig

    config = HubertConfig(
        hidden_size=768, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
        classifier_proj_size=256, feat_extract_norm="group", do_stable_layer_norm=False,
    )
    data = config.to_dict()
    data["architectures"] = ["HubertModelWithFinalProj"]
    return data


def make_content_encoder(folder: Path, *, seed: int = 0) -> Path:
    """A tiny HuBERT + ``final_proj`` folder in content-vec-best's layout (768-d, projection to 256)."""
    import torch
    from transformers import HubertConfig, HubertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = _encoder_config()
    torch.manual_seed(seed)
    net = HubertModel(HubertConfig.from_dict(data))
    state: dict[str, Any] = {}
    for key, value in net.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        state[key] = value.clone()
    proj = torch.nn.Linear(768, 256)
    state["final_proj.weight"] = proj.weight.detach().clone()
    state["final_proj.bias"] = proj.bias.detach().clone()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": False, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                    "padding_side": "right", "padding_value": 0, "return_attention_mask": False,
                    "sampling_rate": 16000}, indent=2),
        encoding="utf-8",
    )
    return folder


@functools.lru_cache(maxsize=1)
def _encoder_once() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="svc-encoder-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return make_content_encoder(folder / "encoder")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def fixture_store(root: Path, models: tuple[str, ...] = CONTENT_ENCODER_IDS) -> Any:
    """A ModelStore at ``root`` where the content encoders ``models`` are installed as the tiny fixture
    encoder (the manifest's entries with the fixture files' sizes and checksums, no sources)."""
    from workers.models.manifest import Manifest, load_manifest
    from workers.models.store import ModelStore

    root = Path(root)
    source = _encoder_once()
    base = load_manifest()
    replaced = []
    for model in base.models:
        if model.id not in CONTENT_ENCODER_IDS:
            replaced.append(model)
            continue
        files = []
        for spec in model.files:
            target = root / model.id / spec.name
            if model.id in models:
                _link_or_copy(source / spec.name, target)
                files.append(dataclasses.replace(spec, size=target.stat().st_size, sha256=_sha256(target), sources=()))
            else:
                files.append(spec)  # not installed (nothing in a test downloads it)
        replaced.append(dataclasses.replace(model, files=tuple(files)))
    return ModelStore(root, Manifest(replaced, base.path))


def layouts() -> dict[str, dict[str, list[int]]]:
    """The key names and shapes the original code gives for the fixture configs (see the module doc)."""
    return json.loads(LAYOUTS.read_text(encoding="utf-8"))


#: The fixture layouts pinned in ``tests/data/svc_layouts.json``: name -> (builder, arguments).
LAYOUT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "sovits-4.0": ("sovits", {"version": "4.0"}),
    "sovits-4.1": ("sovits", {"version": "4.1"}),
    "sovits-4.1-vol-dsconv-shared": (
        "sovits", {"version": "4.1", "vol_embedding": True, "use_depthwise_conv": True, "flow_share_parameter": True,
                   "ssl_dim": 256, "speech_encoder": "vec256l9"},
    ),
    "sovits-4.1-transformer-flow": (
        "sovits", {"version": "4.1", "use_transformer_flow": True, "use_automatic_f0_prediction": False},
    ),
    "rvc-v1-f0": ("rvc", {"version": "v1", "f0": True}),
    "rvc-v1-nof0": ("rvc", {"version": "v1", "f0": False}),
    "rvc-v2-f0": ("rvc", {"version": "v2", "f0": True, "sr": "48k"}),
    "rvc-v2-nof0": ("rvc", {"version": "v2", "f0": False, "sr": "32k"}),
}


def case_config(name: str) -> Any:
    """The config of a layout case: a so-vits-svc config dict or an RVC config list."""
    kind, args = LAYOUT_CASES[name]
    args = copy.deepcopy(args)
    if kind == "sovits":
        version = args.pop("version")
        return sovits_config(version, **args)
    return rvc_config(args.get("sr", "40k"))
