"""The anchor of the voice-conversion benchmark: RVC's own realtime block, on the same model.

RVC's published package (``rvc`` 0.3.5 on PyPI, from the RVC project) carries the synthesizer its realtime
GUI runs (``rvc/lib/infer_pack/models.py``: ``SynthesizerTrnMs768NSFsid.infer(..., rate)``, which runs
the flow and the decoder on the last ``rate`` of the window). Its source files are taken from the wheel
(fetched once with pip, nothing installed) into a temporary folder and imported from there. A block then
does what RVC's realtime path does: HuBERT features of the whole window (the same transformers encoder the
studio uses, in place of fairseq), the features doubled to 100 frames a second, F0 of the newest
block + 800 samples, cached F0 for the rest, and ``infer`` with ``rate`` = kept frames / window frames.
"""

from __future__ import annotations

import math
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from workers.models.manifest import WheelMember
from workers.models.wheel_member import pip_download

WHEEL = WheelMember(package="rvc", version="0.3.5", member="rvc/lib/infer_pack/models.py")
SOURCES = ("models.py", "attentions.py", "commons.py", "modules.py", "transforms.py")


def import_rvc_models(folder: Path) -> Any:
    """RVC's ``infer_pack.models`` module, from the wheel's source files."""
    wheel = pip_download(WHEEL, folder)
    root = folder / "src"
    pack = root / "rvc" / "lib" / "infer_pack"
    pack.mkdir(parents=True, exist_ok=True)
    for init in (root / "rvc", root / "rvc" / "lib", pack):
        (init / "__init__.py").write_text("", encoding="utf-8")
    with zipfile.ZipFile(wheel) as archive:
        for name in SOURCES:
            (pack / name).write_bytes(archive.read(f"rvc/lib/infer_pack/{name}"))
    sys.path.insert(0, str(root))
    import importlib

    return importlib.import_module("rvc.lib.infer_pack.models")


class RVCRealtime:
    """One RVC realtime block at a time (``convert``), as a converter for the studio's block converter."""

    input_rate = 16000
    context_seconds = 2.0
    delay_seconds = 0.0
    converts_tail = True

    def __init__(self, pth: Path, encoder: Any, pitch: Any, folder: Path, pitch_shift: float = 4.0) -> None:
        import torch

        models = import_rvc_models(folder)
        checkpoint = torch.load(pth, map_location="cpu", weights_only=False)
        config = list(checkpoint["config"])
        config[-3] = checkpoint["weight"]["emb_g.weight"].shape[0]
        self.net = models.SynthesizerTrnMs768NSFsid(*config, is_half=False)
        missing = self.net.load_state_dict(checkpoint["weight"], strict=False)
        assert not [k for k in missing.missing_keys if not k.startswith("enc_q")], missing
        self.net = self.net.float().eval()
        self.net.remove_weight_norm()
        self.sample_rate = int(checkpoint["config"][-1]) if not isinstance(checkpoint["config"][-1], str) else 40000
        self.encoder = encoder
        self.pitch = pitch
        self.shift = pitch_shift
        self.cache = np.zeros(1024, np.float32)
        self.name = "RVC realtime (rvc 0.3.5)"

    def _coarse(self, f0: np.ndarray) -> np.ndarray:
        mel_min, mel_max = 1127 * math.log(1 + 50 / 700), 1127 * math.log(1 + 1100 / 700)
        mel = 1127 * np.log(1 + f0 / 700)
        voiced = mel > 0
        mel[voiced] = (mel[voiced] - mel_min) * 254 / (mel_max - mel_min) + 1
        return np.clip(np.rint(np.maximum(mel, 1)), 1, 255).astype(np.int64)

    def convert(self, audio: np.ndarray, keep_seconds: float | None = None) -> np.ndarray:
        import torch

        audio = np.asarray(audio, np.float32).reshape(-1)
        n = len(audio)
        p_len = n // 160
        keep = p_len if keep_seconds is None else min(p_len, int(np.ceil(keep_seconds * 100)))
        feats = self.encoder.encode(audio, dim=768, layer=12)
        feats = torch.cat([feats, feats[:, -1:]], 1)
        feats = torch.nn.functional.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)[:, :p_len]
        block = keep * 160
        f0 = np.asarray(self.pitch(audio[-(block + 800) :]), np.float32).reshape(-1) * 2 ** (self.shift / 12)
        shift = min(len(self.cache), len(f0))
        self.cache[:-shift] = self.cache[shift:]
        self.cache[-shift:] = f0[-shift:]
        pitchf = self.cache[-p_len:] if p_len <= len(self.cache) else np.pad(self.cache, (p_len - len(self.cache), 0))
        pitch = self._coarse(pitchf.copy())
        rate = torch.tensor([keep / p_len])
        with torch.no_grad():
            out = self.net.infer(
                feats,
                torch.tensor([p_len]),
                torch.from_numpy(pitch)[None],
                torch.from_numpy(pitchf)[None].float(),
                torch.tensor([0]),
                rate,
            )[0]
        audio_out = out[0, 0].numpy()
        total = round(n * self.sample_rate / 16000)
        full = np.zeros(total, np.float32)
        full[total - min(total, len(audio_out)) :] = audio_out[-total:]
        return full


def make_anchor(pth: Path, encoder: Any, pitch: Any) -> RVCRealtime:
    folder = Path(tempfile.mkdtemp(prefix="snowai-rvc-anchor-"))
    return RVCRealtime(pth, encoder, pitch, folder)
