"""Content features for voice models: a HuBERT-style encoder in transformers format (ContentVec
"content-vec-best", RVC's HuBERT base) run on 16 kHz audio, 50 frames a second.

768-d features are the output of transformer layer 12 (so-vits-svc 4.1 "vec768l12", RVC v2); 256-d
features are layer 9 passed through ``final_proj`` (so-vits-svc 4.0 / "vec256l9", RVC v1). The folder
holds ``config.json`` and ``pytorch_model.bin`` or ``model.safetensors``; the weights may carry a
``hubert.`` prefix and the old weight-norm names (``weight_g``/``weight_v``). They are read with
``torch.load(weights_only=True)`` (or safetensors) and matched strictly against the model.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    import torch

    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: The layers the published models read (of a 12-layer base encoder).
LAYER_768 = 12
LAYER_256 = 9
#: The shortest input the convolutional front end accepts (one 25 ms frame).
MIN_SAMPLES = 400
#: Keys a checkpoint may carry that inference does not need.
_IGNORED = ("masked_spec_embed", "label_embs_concat")


def resolve_folder(model: str | Path, store: ModelStore | None = None) -> Path:
    """A content-encoder folder: a path, or a model id from the model store."""
    path = Path(model).expanduser()
    if path.exists():
        if path.is_file():
            path = path.parent
        return path
    if isinstance(model, Path) or any(sep in str(model) for sep in ("/", "\\")):
        raise UserError(f"The content encoder folder {path} was not found.")
    if store is None:
        from workers.models.store import ModelStore

        store = ModelStore()
    return Path(store.path_of(str(model)))


def _read_weights(folder: Path) -> dict[str, Any]:
    from workers.voice_conversion.checkpoints import torch_load

    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        try:
            from safetensors.torch import load_file

            return dict(load_file(str(safetensors_file)))
        except Exception as exc:
            raise UserError(f"{safetensors_file.name} in {folder} is damaged ({exc}).") from None
    for name in ("pytorch_model.bin", "model.pt", "model.pth"):
        file = folder / name
        if file.is_file():
            obj = torch_load(file)
            if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
                obj = obj["model"]
            if not isinstance(obj, dict):
                raise UserError(f"{file.name} in {folder} holds no weights.")
            return obj
    raise UserError(f"The content encoder folder {folder} has no weights (pytorch_model.bin or model.safetensors).")


def _normalise_keys(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in state.items():
        key = str(key)
        if key.startswith("hubert."):
            key = key[len("hubert."):]
        if key.endswith(".weight_g"):
            key = key[: -len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith(".weight_v"):
            key = key[: -len("weight_v")] + "parametrizations.weight.original1"
        out[key] = value
    return out


class ContentEncoder:
    """HuBERT/ContentVec features of 16 kHz audio, ``[1, frames, dim]`` at 50 frames a second."""

    def __init__(self, model: str | Path, *, store: ModelStore | None = None, device: str = "cpu") -> None:
        import torch
        from torch import nn

        self.folder = resolve_folder(model, store)
        self.device = device
        config_file = self.folder / "config.json"
        if not config_file.is_file():
            raise UserError(f"The content encoder folder {self.folder} has no config.json.")
        try:
            data = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"The content encoder's config.json is not valid JSON ({exc}).") from None
        if not isinstance(data, dict) or data.get("model_type") != "hubert":
            kind = data.get("model_type") if isinstance(data, dict) else None
            raise UserError(
                f"The folder {self.folder} holds a {kind or 'non-HuBERT'} model, not a HuBERT/ContentVec "
                "content encoder."
            )
        from transformers import HubertConfig, HubertModel

        config = HubertConfig.from_dict(data)
        state = _normalise_keys(_read_weights(self.folder))
        proj_weight = state.pop("final_proj.weight", None)
        proj_bias = state.pop("final_proj.bias", None)
        with torch.device("meta"):
            net = HubertModel(config)
        expected = net.state_dict()
        for key in _IGNORED:
            if key not in expected:
                state.pop(key, None)
        if "masked_spec_embed" in expected and "masked_spec_embed" not in state:
            state["masked_spec_embed"] = torch.zeros(expected["masked_spec_embed"].shape)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            detail = f"{len(missing)} weights missing" if missing else f"{len(unexpected)} unknown weights"
            example = (missing or unexpected)[0]
            raise UserError(
                f"The weights in {self.folder} do not match its config.json ({detail}, e.g. {example}); "
                "it is not a HuBERT/ContentVec content encoder or the files are mismatched."
            )
        for key, ref in expected.items():
            if tuple(state[key].shape) != tuple(ref.shape):
                raise UserError(
                    f"The weights in {self.folder} do not match its config.json ({key} is "
                    f"{tuple(state[key].shape)}, expected {tuple(ref.shape)})."
                )
        state = {k: v.detach().to(dtype=torch.float32, copy=True) for k, v in state.items()}
        net.load_state_dict(state, strict=True, assign=True)
        self.net = net.float().eval()
        self.final_proj: nn.Linear | None = None
        if proj_weight is not None:
            out_dim, in_dim = (int(s) for s in proj_weight.shape)
            if in_dim != config.hidden_size:
                raise UserError(f"The final projection in {self.folder} does not fit the encoder ({in_dim} inputs).")
            linear = nn.Linear(in_dim, out_dim, bias=proj_bias is not None)
            with torch.no_grad():
                linear.weight.copy_(proj_weight.float())
                if proj_bias is not None:
                    linear.bias.copy_(proj_bias.float())
            self.final_proj = linear.eval().requires_grad_(False)
        self.hidden_size = int(config.hidden_size)
        self.num_layers = int(config.num_hidden_layers)
        self.projected_size = int(proj_weight.shape[0]) if proj_weight is not None else None
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            self.net.to(device)
            if self.final_proj is not None:
                self.final_proj.to(device)
        except (RuntimeError, AssertionError) as exc:
            raise UserError(f"The device {device} cannot be used for the content encoder ({exc}).") from None
        self._full_layers = self.net.encoder.layers
        self._lock = threading.Lock()
        self._onnx_runners: dict[tuple[int, int, str], Any] = {}
        log.info(
            "Content encoder %s: %d layers, %d-d%s", self.folder.name, self.num_layers, self.hidden_size,
            f", final_proj to {self.projected_size}-d" if self.projected_size else "",
        )

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.hidden_size,) + ((self.projected_size,) if self.projected_size else ())

    def layer_index(self, layer: int) -> int:
        """The hidden state to read for a base-model layer number (12 or 9); encoders with fewer than 12
        layers read proportionally placed layers."""
        if self.num_layers >= layer:
            return layer
        return max(1, min(self.num_layers, round(layer * self.num_layers / LAYER_768)))

    def encode(
        self, audio16k: np.ndarray, *, dim: int, layer: int | None = None, onnx: str | None = None
    ) -> torch.Tensor:
        """Content features ``[1, frames, dim]`` of mono float32 audio at 16 kHz (50 frames a second).

        ``dim`` equal to the encoder's width reads ``layer`` (default 12) directly; ``dim`` equal to the
        final projection's size reads ``layer`` (default 9) through ``final_proj``. ``onnx`` ("fp32" or
        "int8") runs it on ONNX Runtime on the CPU (see :mod:`workers.voice_conversion.accel`)."""
        import torch

        if dim == self.hidden_size:
            projected = False
        elif self.projected_size is not None and dim == self.projected_size:
            projected = True
        else:
            have = " or ".join(str(d) for d in self.dims)
            raise UserError(
                f"The content encoder gives {have}-d features but the voice model needs {dim}-d; choose the "
                "content encoder this model was trained with."
            )
        wanted = self.layer_index(layer if layer is not None else (LAYER_256 if projected else LAYER_768))
        audio = np.asarray(audio16k, dtype=np.float32).reshape(-1)
        if len(audio) < MIN_SAMPLES:
            audio = np.pad(audio, (0, MIN_SAMPLES - len(audio)))
        if onnx and str(self.device) == "cpu":
            return self._onnx(wanted, dim, onnx)(audio)
        x = torch.from_numpy(np.ascontiguousarray(audio))[None].to(self.device)
        encoder = self.net.encoder
        with self._lock:
            return self._run(encoder, x, wanted, projected)

    def _onnx(self, wanted: int, dim: int, precision: str) -> Any:
        """The ONNX Runtime session of this encoder up to ``wanted`` (exported on first use)."""
        from workers.voice_conversion.accel import OnnxContentEncoder

        key = (wanted, dim, precision)
        with self._lock:
            runner = self._onnx_runners.get(key)
            if runner is None:
                runner = OnnxContentEncoder(self, wanted, dim, precision)
                self._onnx_runners[key] = runner
        return runner

    def export_module(self, *, layer: int | None, dim: int) -> Any:
        """The encoder up to ``layer`` (+ the final projection for its size) as a module mapping audio
        [1, N] to features [1, frames, dim], sharing this encoder's weights (for ONNX export)."""
        from torch import nn

        projected = dim != self.hidden_size
        layers = nn.ModuleList(list(self._full_layers)[: layer or self.num_layers])
        owner = self

        class Upto(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = owner.net
                self.proj = owner.final_proj if projected else None

            def forward(self, audio: Any) -> Any:
                encoder = self.net.encoder
                full = encoder.layers
                encoder.layers = layers
                try:
                    feats = self.net(audio).last_hidden_state
                finally:
                    encoder.layers = full
                return self.proj(feats) if self.proj is not None else feats

        return Upto().eval()

    def _run(self, encoder: Any, x: torch.Tensor, wanted: int, projected: bool) -> torch.Tensor:
        import torch
        from torch import nn

        try:
            encoder.layers = nn.ModuleList(list(self._full_layers)[:wanted])
            with torch.inference_mode():
                feats = self.net(x).last_hidden_state  # the output of layer `wanted`
                if projected:
                    assert self.final_proj is not None
                    feats = self.final_proj(feats)
        finally:
            encoder.layers = self._full_layers
        return feats.float()
