"""so-vits-svc and RVC checkpoints: recognise them, read them safely and load them into the studio's own
networks with strict key matching.

- so-vits-svc 4.0 / 4.1: ``G_<step>.pth`` = ``{"model": state_dict, "iteration", "optimizer",
  "learning_rate"}`` (or the released form without optimizer state / ``enc_q``) plus the ``config.json``
  it was trained with (next to it, or given). 4.1 is told from 4.0 by its config's 4.1-only fields.
- RVC v1 / v2: ``.pth`` = ``{"weight": state_dict (fp16, no enc_q), "config": [18 values], "info", "sr",
  "f0": 0|1, "version": "v1"|"v2"}``.

Files are read with ``torch.load(weights_only=True)`` (or safetensors): a pickle that refers to Python
code or objects is refused before anything runs. The checkpoint's keys must match the network its
config describes exactly (same names, same shapes); the training-only posterior encoder ``enc_q`` is
either absent or complete, and is then dropped. Weight-norm pairs (``weight_g``/``weight_v``) load as they
are and are folded into plain weights for inference.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

SOVITS_40 = "sovits-4.0"
SOVITS_41 = "sovits-4.1"
RVC_V1 = "rvc-v1"
RVC_V2 = "rvc-v2"
KINDS = (SOVITS_40, SOVITS_41, RVC_V1, RVC_V2)
KIND_NAMES = {SOVITS_40: "so-vits-svc 4.0", SOVITS_41: "so-vits-svc 4.1", RVC_V1: "RVC v1", RVC_V2: "RVC v2"}
#: Seed of every random draw during inference (so-vits-svc 4.1's default), so a fixed input gives a fixed output.
DEFAULT_SEED = 52468
#: Noise scale of the prior latent each family uses by default (so-vits-svc's inference default, RVC's fixed one).
DEFAULT_NOISE = {"sovits": 0.4, "rvc": 0.66666}
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


@dataclass
class CheckpointInfo:
    """What a voice checkpoint is, read from its header and config (no network built)."""

    kind: str  # one of KINDS
    f0: bool  # whether the model is driven by pitch (every so-vits-svc model; RVC "f0" models)
    sample_rate: int
    content_dim: int  # 256 or 768
    speakers: dict[str, int]
    config: dict[str, Any]
    path: Path
    config_path: Path | None = None
    hop_length: int = 0
    #: ContentVec/HuBERT layer whose output the model takes (12 or 9), and whether through ``final_proj``.
    content_layer: int = 12
    content_projection: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return "rvc" if self.kind.startswith("rvc") else "sovits"

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def describe(self) -> str:
        khz = f"{self.sample_rate / 1000:g} kHz"
        pitch = "" if self.f0 else ", no pitch"
        n = len(self.speakers)
        who = f", {n} speakers" if n > 1 else ""
        return f"{KIND_NAMES[self.kind]} ({khz}, {self.content_dim}-d content{pitch}{who})"


# ---- reading files ------------------------------------------------------------------------------------

_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")


#: Modules a weights-only checkpoint's pickle may name (tensors, storages, ordered dicts).
_WEIGHT_MODULES = ("torch", "collections", "numpy", "_codecs")


def _foreign_global(path: Path) -> str | None:
    """The first Python object a pickle names outside :data:`_WEIGHT_MODULES`, read with pickletools
    (nothing is executed); ``None`` when there is none or the pickle cannot be walked."""
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _pos in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                module, _, attr = arg.partition(" ")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, attr = strings[-2], strings[-1]
            else:
                continue
            if module.split(".")[0] not in _WEIGHT_MODULES:
                return f"{module}.{attr}"
    except Exception:  # damaged: the caller says so
        return None
    return None


def _refusal(path: Path, exc: BaseException) -> UserError:
    """A sentence for a pickle that ``weights_only`` refused: Python objects, or just damage."""
    text = str(exc)
    found = _GLOBAL.search(text)
    name = found.group(1) if found else _foreign_global(path)
    if name:
        return UserError(
            f"{path.name} holds Python objects or code ({name}) besides weights, so it was not "
            "opened (loading it could run that code); use a checkpoint that contains only weights."
        )
    return UserError(f"{path.name} is damaged or is not a PyTorch checkpoint; it could not be read.")


def torch_load(path: Path, *, safe_globals: list[Any] | None = None) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a UserError.

    Memory-maps zip checkpoints (big optimizer states are then never read)."""
    import torch

    from workers.models.store import sniff_file

    path = Path(path)
    if not path.exists():
        raise UserError(f"The file {path} was not found.")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file.")
    if path.stat().st_size == 0:
        raise UserError(f"{path.name} is empty; it is not a checkpoint.")
    if path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin"):
        try:
            sniff_file(path)  # a clear sentence for an image, a WAV, no pickle/zip header, or code inside
        except UserError:
            raise
        except Exception as exc:  # a damaged archive can fail in many ways while it is looked into
            log.info("Looking into %s failed: %s: %s", path, type(exc).__name__, exc)
            raise UserError(
                f"{path.name} is damaged or incomplete (perhaps a download or copy was cut short); "
                "it could not be read."
            ) from None
    context = torch.serialization.safe_globals(safe_globals) if safe_globals else contextlib.nullcontext()
    with context, warnings.catch_warnings():
        # torch warns on stderr about pickle protocols it did not write; the outcome is what counts.
        warnings.simplefilter("ignore", UserWarning)
        try:
            if not zipfile.is_zipfile(path):
                # A plain (legacy) pickle is read from memory: a length field of a damaged or hostile
                # file then cannot make the unpickler ask the file for gigabytes at once.
                return torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _refusal(path, exc) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):
            raise
        except Exception as exc:  # a damaged archive or pickle fails in many ways inside torch.load
            log.info("Reading %s failed: %s: %s", path, type(exc).__name__, exc)
            raise UserError(
                f"{path.name} is damaged or incomplete (perhaps a download or copy was cut short); "
                "it could not be read."
            ) from None


def _load_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:  # pragma: no cover - safetensors comes with transformers
        raise UserError("Reading .safetensors checkpoints needs the safetensors package.") from exc
    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types
        raise UserError(f"{path.name} is damaged or is not a safetensors file ({exc}).") from None


def _step_of(path: Path) -> int:
    found = re.search(r"(\d+)", path.stem)
    return int(found.group(1)) if found else -1


def resolve_model_path(path: str | Path) -> Path:
    """A checkpoint file, or the generator inside a so-vits-svc folder (the ``G_*.pth`` of the latest step)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"The voice model {path} was not found.")
    if path.is_file():
        return path
    generators = sorted(path.glob("G_*.pth"), key=_step_of)
    if generators:
        return generators[-1]
    candidates = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES]
    candidates = [p for p in candidates if not p.name.startswith("D_")]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UserError(f"The folder {path} holds no voice model (.pth); choose the model file itself.")
    names = ", ".join(p.name for p in candidates[:4])
    raise UserError(f"The folder {path} holds several checkpoints ({names}); choose one of them.")


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _not_a_voice_model(path: Path, obj: Any) -> UserError:
    """The sentence for a readable checkpoint that is not a so-vits-svc generator or an RVC model."""
    name = path.name
    if isinstance(obj, dict):
        inner = obj.get("model") if isinstance(obj.get("model"), dict) else obj
        keys = [str(k) for k in inner] if isinstance(inner, dict) else []
        if any(k.startswith("discriminators.") for k in keys):
            return UserError(
                f"{name} is a so-vits-svc discriminator (D_*.pth); choose the generator G_*.pth next to it."
            )
        if obj and all(isinstance(v, dict) and "cluster_centers_" in v for v in obj.values()):
            return UserError(f"{name} is a so-vits-svc cluster model; choose it as the index, not as the voice model.")
        if any(k.startswith(("feature_extractor.", "encoder.layers.", "final_proj.")) for k in keys):
            return UserError(f"{name} is a content encoder (HuBERT/ContentVec), not a voice model.")
        if any(k.startswith(("decoder.", "unit_embed.", "diff_model.")) for k in keys):
            return UserError(f"{name} is a so-vits-svc diffusion model, which the studio does not use; choose G_*.pth.")
    return UserError(f"{name} is not a so-vits-svc or RVC voice model.")


def read_checkpoint(path: str | Path, config: str | Path | None = None) -> tuple[CheckpointInfo, dict[str, Any]]:
    """Read a voice checkpoint: its description and its state dict (tensors may be memory-mapped)."""
    file = resolve_model_path(path)
    if file.suffix.lower() == ".safetensors":
        obj: Any = {"model": _load_safetensors(file)}
    else:
        obj = torch_load(file)
    if not isinstance(obj, dict):
        raise _not_a_voice_model(file, obj)
    if "weight" in obj and "config" in obj:
        return _rvc_info(file, obj), obj["weight"]
    state = obj.get("model") if isinstance(obj.get("model"), dict) else (obj if _is_tensor_dict(obj) else None)
    if state is not None and _is_tensor_dict(state) and any(
        str(k).startswith(("emb_g.", "enc_p.", "dec.")) for k in state
    ):
        if any(str(k).startswith("enc_p.emb_phone.") for k in state):
            raise UserError(
                f"{file.name} is an RVC training checkpoint without its settings; export the small model "
                "(the .pth in assets/weights) from RVC and load that."
            )
        info = _sovits_info(file, state, config)
        return info, state
    raise _not_a_voice_model(file, obj)


def inspect_checkpoint(path: str | Path, config: str | Path | None = None) -> CheckpointInfo:
    """Describe a so-vits-svc (G_*.pth + config.json, or their folder) or RVC (.pth) checkpoint.

    Raises UserError for a missing, corrupt or truncated file, a pickle holding code, a checkpoint of
    another kind, a missing or mismatched config.json."""
    info, _ = read_checkpoint(path, config)
    return info


# ---- so-vits-svc --------------------------------------------------------------------------------------


def find_sovits_config(file: Path, config: str | Path | None) -> Path:
    if config is not None and str(config) != "":
        cfg = Path(config).expanduser()
        if cfg.is_dir():
            cfg = cfg / "config.json"
        if not cfg.is_file():
            raise UserError(f"The config file {cfg} was not found.")
        return cfg
    candidate = file.parent / "config.json"
    if candidate.is_file():
        return candidate
    raise UserError(
        f"{file.name} is a so-vits-svc model, which needs the config.json it was trained with; "
        "put config.json next to it or choose it."
    )


def _sovits_config(cfg_path: Path) -> tuple[dict[str, Any], Any]:
    from workers.voice_conversion.models.sovits import SoVitsConfig

    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{cfg_path.name} is not a valid JSON config file ({exc}).") from None
    except RecursionError:
        raise UserError(f"{cfg_path.name} is not a so-vits-svc config (its JSON is nested far too deep).") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or not isinstance(data.get("data"), dict):
        raise UserError(f"{cfg_path.name} is not a so-vits-svc config (it has no 'model' and 'data' sections).")
    try:
        parsed = SoVitsConfig.from_json(data)
    except KeyError as exc:
        raise UserError(f"{cfg_path.name} is not a complete so-vits-svc config: it lacks {exc}.") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{cfg_path.name} has a value of the wrong type ({exc}).") from None
    return data, parsed


def _sovits_info(file: Path, state: dict[str, Any], config: str | Path | None) -> CheckpointInfo:
    from workers.voice_conversion.models.sovits import SPEECH_ENCODERS

    cfg_path = find_sovits_config(file, config)
    data, cfg = _sovits_config(cfg_path)
    if cfg.decoder_type != "hifi-gan":
        raise UserError(
            f"{file.name} uses so-vits-svc-fork's {cfg.decoder_type} decoder; the studio runs the NSF-HiFiGAN "
            "(hifi-gan) decoder only."
        )
    if cfg.vocoder_name != "nsf-hifigan":
        raise UserError(
            f"{file.name} uses the {cfg.vocoder_name} vocoder; the studio runs so-vits-svc models with the "
            "nsf-hifigan vocoder only."
        )
    if cfg.speech_encoder not in SPEECH_ENCODERS:
        raise UserError(
            f"{file.name} was trained on the {cfg.speech_encoder} speech encoder; the studio feeds ContentVec "
            f"features only ({', '.join(sorted(SPEECH_ENCODERS))})."
        )
    layer, projected = SPEECH_ENCODERS[cfg.speech_encoder]
    dim = 256 if projected else 768
    if cfg.ssl_dim != dim:
        raise UserError(
            f"{cfg_path.name} says ssl_dim {cfg.ssl_dim} but its speech encoder {cfg.speech_encoder} gives {dim}."
        )
    weight = state.get("pre.weight")
    if weight is not None and tuple(weight.shape[:2]) != (cfg.hidden_channels, cfg.ssl_dim):
        raise UserError(
            f"{file.name} does not match {cfg_path.name}: the content input is {tuple(weight.shape[:2])} in the "
            f"checkpoint but ({cfg.hidden_channels}, {cfg.ssl_dim}) in the config; choose the config.json "
            "that belongs to this model."
        )
    speakers = {name: sid for name, sid in cfg.speakers.items() if 0 <= sid < cfg.n_speakers}
    if not speakers:
        speakers = {"0": 0}
    return CheckpointInfo(
        kind=SOVITS_41 if cfg.version == "4.1" else SOVITS_40,
        f0=True,
        sample_rate=cfg.sampling_rate,
        content_dim=cfg.ssl_dim,
        speakers=speakers,
        config=data,
        path=file,
        config_path=cfg_path,
        hop_length=cfg.hop_length,
        content_layer=layer,
        content_projection=projected,
        extra={"speech_encoder": cfg.speech_encoder, "vol_embedding": cfg.vol_embedding,
               "unit_interpolate_mode": cfg.unit_interpolate_mode},
    )


# ---- RVC ----------------------------------------------------------------------------------------------


def _rvc_info(file: Path, obj: dict[str, Any]) -> CheckpointInfo:
    from workers.voice_conversion.models.rvc import CONFIG_FIELDS, RVCConfig

    weight = obj["weight"]
    if not _is_tensor_dict(weight):
        raise UserError(f"{file.name} looks like an RVC model but its weights are missing or malformed.")
    version = str(obj.get("version", "v1"))
    if version not in ("v1", "v2"):
        raise UserError(f"{file.name} is an RVC model of version {version!r}; the studio loads v1 and v2 models.")
    try:
        f0 = int(obj.get("f0", 1))
    except (TypeError, ValueError):
        raise UserError(f"{file.name} has an invalid 'f0' field ({obj.get('f0')!r}).") from None
    raw = obj["config"]
    if not isinstance(raw, (list, tuple)):
        raise UserError(f"{file.name} has an invalid RVC config (not a list).")
    values = list(raw)
    if "emb_g.weight" in weight and len(values) == len(CONFIG_FIELDS):
        values[-3] = int(weight["emb_g.weight"].shape[0])  # like RVC: the speaker count comes from the weights
    try:
        cfg = RVCConfig.from_list(values, version=version, f0=bool(f0))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{file.name} has an invalid RVC config ({exc}).") from None
    phone = weight.get("enc_p.emb_phone.weight")
    if phone is not None and int(phone.shape[1]) != cfg.content_dim:
        raise UserError(
            f"{file.name} says it is RVC {version} ({cfg.content_dim}-d content) but its weights take "
            f"{int(phone.shape[1])}-d content; the file is inconsistent."
        )
    n_speakers = cfg.spk_embed_dim
    named = dict(zip(CONFIG_FIELDS, values, strict=True))
    config = {
        "version": version, "f0": f0, "sr": obj.get("sr"), "info": obj.get("info"),
        "config": values, **{k: named[k] for k in CONFIG_FIELDS},
    }
    return CheckpointInfo(
        kind=RVC_V1 if version == "v1" else RVC_V2,
        f0=bool(f0),
        sample_rate=cfg.sr,
        content_dim=cfg.content_dim,
        speakers={str(i): i for i in range(n_speakers)},
        config=config,
        path=file,
        hop_length=cfg.hop_length,
        content_layer=9 if version == "v1" else 12,
        content_projection=version == "v1",
    )


# ---- building and strict loading --------------------------------------------------------------------


def build_network(info: CheckpointInfo) -> nn.Module:
    """The studio's network for ``info`` (parameters uninitialised)."""
    if info.family == "rvc":
        from workers.voice_conversion.models.rvc import RVCConfig, RVCSynthesizer

        cfg = RVCConfig.from_list(info.config["config"], version=info.config["version"], f0=info.f0)
        return RVCSynthesizer(cfg)
    from workers.voice_conversion.models.sovits import SoVitsConfig, SoVitsSynthesizer

    return SoVitsSynthesizer(SoVitsConfig.from_json(info.config))


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _summarise(keys: list[str], limit: int = 3) -> str:
    head = ", ".join(keys[:limit])
    return head + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_keys(info: CheckpointInfo, state: dict[str, Any], net: nn.Module) -> dict[str, Any]:
    """Compare the checkpoint with the network (names and shapes); returns the state dict to load
    (without the training-only parts). Raises UserError on any difference."""
    import torch

    expected = {k: _shape(v) for k, v in net.state_dict().items()}
    optional: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        for prefix, part in net.training_parts().items():  # type: ignore[operator]
            optional.update({f"{prefix}.{k}": _shape(v) for k, v in part.state_dict().items()})
    present = {str(k): v for k, v in state.items()}
    config_name = info.config_path.name if info.config_path else "its settings"
    training = [k for k in present if k in optional]
    if training and len(training) != len(optional):
        missing_part = sorted(set(optional) - set(training))
        raise UserError(
            f"{info.path.name} is incomplete: its training part enc_q lacks {_summarise(missing_part)}."
        )
    for key in training:
        if _shape(present[key]) != optional[key]:
            raise UserError(
                f"{info.path.name} does not match {config_name}: {key} is {_shape(present[key])}, expected "
                f"{optional[key]}."
            )
    load = {k: v for k, v in present.items() if k not in optional}
    missing = sorted(set(expected) - set(load))
    unexpected = sorted(set(load) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights are missing ({_summarise(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} are unknown ({_summarise(unexpected)})")
        hint = " choose the config.json that belongs to this model." if info.family == "sovits" else ""
        raise UserError(f"{info.path.name} does not match {config_name}: {'; '.join(parts)}.{hint}")
    for key, shape in expected.items():
        if _shape(load[key]) != shape:
            hint = " Choose the config.json that belongs to this model." if info.family == "sovits" else ""
            raise UserError(
                f"{info.path.name} does not match {config_name}: {key} is {_shape(load[key])}, expected {shape}.{hint}"
            )
    for key, value in load.items():
        if not torch.is_floating_point(value) or not torch.isfinite(value).all():
            if torch.is_floating_point(value):
                raise UserError(f"{info.path.name} is damaged: {key} holds NaN or infinite values.")
            raise UserError(f"{info.path.name} is damaged: {key} is not a floating-point tensor.")
    return load


def load_voice_model(path: str | Path, config: str | Path | None = None, *, device: str = "cpu") -> VoiceModel:
    """Load a so-vits-svc or RVC checkpoint into the studio's network, ready for :meth:`VoiceModel.infer`."""
    import torch

    from workers.voice_conversion.models import fuse_weight_norm

    info, state = read_checkpoint(path, config)
    with torch.device("meta"):
        net = build_network(info)
    load = check_keys(info, state, net)
    load = {k: v.detach().to(dtype=torch.float32, copy=True) for k, v in load.items()}
    net.load_state_dict(load, strict=True, assign=True)
    net = fuse_weight_norm(net).float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        net = net.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"The device {device} cannot be used for the voice model ({exc}).") from None
    log.info("Loaded %s from %s", info.describe(), info.path)
    return VoiceModel(info, net, device=device)


# ---- the loaded model -----------------------------------------------------------------------------------


def fill_unvoiced(
    f0: np.ndarray, version: str = "4.1", *, hop: int = 512, rate: int = 44100
) -> tuple[np.ndarray, np.ndarray]:
    """so-vits-svc's F0 input: unvoiced frames take values interpolated between their voiced neighbours
    (held at the ends); returns (filled F0, voiced flags 0/1).

    4.1 interpolates over frame times (its F0 predictors' ``interpolate_f0``); 4.0 steps linearly from
    the last voiced value so that the gap's final frame already reaches the next voiced value, and holds
    the last value over a gap that runs into the final frame (as its ``utils.interpolate_f0`` does)."""
    f0 = np.asarray(f0, dtype=np.float64).reshape(-1)
    n = len(f0)
    uv = (f0 > 0).astype(np.float32)
    voiced = np.nonzero(f0 > 0)[0]
    if len(voiced) == 0:
        return np.zeros(n, np.float32), uv
    if len(voiced) == 1:
        return np.full(n, f0[voiced[0]], np.float32), uv
    if version != "4.0":
        times = (hop / rate * voiced.astype(np.float32)).astype(np.float32)
        grid = np.arange(n) * hop / rate
        filled = np.interp(grid, times, f0[voiced], left=f0[voiced[0]], right=f0[voiced[-1]])
        return filled.astype(np.float32), uv
    out = f0.copy()
    last = 0.0
    i = 0
    while i < n:
        if out[i] > 0:
            last = out[i]
            i += 1
            continue
        j = i + 1
        while j < n - 1 and out[j] <= 0:
            j += 1
        if j < n - 1:
            if last > 0:
                step = (out[j] - out[i - 1]) / float(j - i)
                for k in range(i, j):
                    out[k] = out[i - 1] + step * (k - i + 1)
            else:
                out[i:j] = out[j]
            i = j
        else:
            out[i:] = last
            break
    return out.astype(np.float32), uv


class VoiceModel:
    """A loaded so-vits-svc or RVC network: content + F0 frames in, audio out."""

    def __init__(self, info: CheckpointInfo, net: nn.Module, *, device: str = "cpu") -> None:
        self.info = info
        self.net = net
        self.device = device
        self.sample_rate = info.sample_rate
        self.hop_length = info.hop_length
        self.content_dim = info.content_dim
        self.n_speakers = int(net.emb_g.weight.shape[0])  # type: ignore[union-attr]
        self.default_noise_scale = DEFAULT_NOISE[info.family]
        self.needs_volume = bool(info.extra.get("vol_embedding", False))
        self.can_predict_f0 = info.family == "sovits" and hasattr(net, "f0_decoder")
        #: Runs the decoder's generator instead of torch (see workers.voice_conversion.accel); None: torch.
        self.decoder_body: Any = None

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def frames_for(self, n_samples_16k: int) -> int:
        """Model frames for ``n_samples_16k`` input samples (as many as fit in the model-rate audio)."""
        return max(1, int(n_samples_16k) * self.sample_rate // 16000 // self.hop_length)

    def align_content(self, content: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Stretch 50 Hz content ``[1, T, C]`` to ``n_frames`` model frames: RVC repeats each frame twice
        (100 frames a second), so-vits-svc expands by its config's ``unit_interpolate_mode``."""
        import torch
        from torch.nn import functional as F

        if content.shape[1] == 0:
            raise ValueError("no content frames")
        if self.info.family == "rvc":
            doubled = content.repeat_interleave(2, dim=1)
            if doubled.shape[1] >= n_frames:
                return doubled[:, :n_frames]
            pad = doubled[:, -1:].expand(-1, n_frames - doubled.shape[1], -1)
            return torch.cat([doubled, pad], dim=1)
        mode = self.info.extra.get("unit_interpolate_mode", "left")
        src = content.transpose(1, 2)  # [1, C, T]
        if mode == "left":
            t = src.shape[-1]
            # frame i takes the source frame whose span [k, k+1) * n/t holds i
            idx = torch.searchsorted(
                torch.arange(1, t + 1, dtype=torch.float64) * n_frames / t,
                torch.arange(n_frames, dtype=torch.float64), right=True,
            ).clamp(max=t - 1)
            out = src[:, :, idx]
        else:
            out = F.interpolate(src, size=n_frames, mode=mode if mode in ("nearest", "linear") else "nearest")
        return out.transpose(1, 2)

    def volume(self, audio16k: np.ndarray, n_frames: int) -> torch.Tensor:
        """so-vits-svc 4.1's loudness input: RMS per hop of the input brought to the model's rate."""
        import torch
        from torch.nn import functional as F

        from workers.media.audio import resample

        audio = resample(np.asarray(audio16k, np.float32).reshape(-1, 1), 16000, self.sample_rate)[:, 0]
        hop = self.hop_length
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None] ** 2
        if x.shape[-1] <= hop:
            x = F.pad(x, (0, hop + 1 - x.shape[-1]))
        x = F.pad(x[:, None], (hop // 2, (hop + 1) // 2), mode="reflect")[:, 0]
        frames = x.shape[-1] // hop
        vol = torch.sqrt(x[:, : frames * hop].reshape(1, frames, hop).mean(-1))
        if vol.shape[1] >= n_frames:
            return vol[:, :n_frames]
        return torch.cat([vol, vol[:, -1:].expand(1, n_frames - vol.shape[1])], dim=1)

    def infer(
        self, content: torch.Tensor, f0: torch.Tensor, *, speaker: int = 0, noise_scale: float = 0.0,
        volume: torch.Tensor | None = None, seed: int = DEFAULT_SEED, predict_f0: bool = False,
        tail: int | None = None,
    ) -> torch.Tensor:
        """``content`` [1, T, C] at the model's frame rate, ``f0`` [1, T] in Hz (0 = unvoiced) ->
        audio [T * hop_length] at :attr:`sample_rate`, or only the last ``tail`` frames' audio (a live
        block). Random draws come from ``seed``. The decoder runs on :attr:`decoder_body` when one is set
        (an ONNX Runtime session of the same generator), else on torch."""
        import torch

        if content.dim() != 3 or content.shape[0] != 1 or content.shape[2] != self.content_dim:
            raise ValueError(f"content must be [1, T, {self.content_dim}], got {tuple(content.shape)}")
        f0 = f0.reshape(1, -1)
        if f0.shape[1] != content.shape[1]:
            raise ValueError(f"f0 has {f0.shape[1]} frames, content {content.shape[1]}")
        if not 0 <= int(speaker) < self.n_speakers:
            raise UserError(f"Speaker {speaker} does not exist in this model (it has {self.n_speakers}).")
        device = torch.device(self.device)
        generator = torch.Generator(device=device).manual_seed(int(seed))
        content = content.to(device=device, dtype=torch.float32)
        with torch.inference_mode():
            if self.info.family == "rvc":
                from workers.voice_conversion.models.rvc import f0_to_coarse

                f0 = f0.to(device=device, dtype=torch.float32).clamp(min=0)
                pitch = f0_to_coarse(f0) if self.info.f0 else None
                audio = self.net.infer(  # type: ignore[operator]
                    content, pitch, f0, torch.tensor([int(speaker)], device=device),
                    noise_scale=float(noise_scale), generator=generator, tail=tail, body=self.decoder_body,
                )
            else:
                filled, uv = fill_unvoiced(
                    f0.detach().cpu().numpy(), self.net.cfg.version, hop=self.hop_length, rate=self.sample_rate  # type: ignore[union-attr]
                )
                vol = None
                if volume is not None and self.needs_volume:
                    vol = volume.reshape(1, -1).to(device=device, dtype=torch.float32)
                audio, _ = self.net.infer(  # type: ignore[operator]
                    content.transpose(1, 2), torch.from_numpy(filled)[None].to(device),
                    torch.from_numpy(uv)[None].to(device), torch.tensor([[int(speaker)]], device=device),
                    noise_scale=float(noise_scale), predict_f0=predict_f0 and self.can_predict_f0, vol=vol,
                    generator=generator, tail=tail, body=self.decoder_body,
                )
        return audio[0, 0].float().cpu()
