"""Faster CPU inference for so-vits-svc and RVC models: their decoder and content encoder on ONNX Runtime.

Most of a live block's time goes to the HiFi-GAN decoder (about 45 billion multiply-adds per second of
40 kHz audio for a full-size RVC v2 model), the rest mostly to the HuBERT-sized content encoder. Both are
exported once per model to ONNX and, for ``int8``, quantized:

- the decoder's generator (``HiFiGAN.body``: latent frames + excitation + speaker -> audio), with static
  int8 quantization of its convolutions (per channel), calibrated on the decoder inputs the model itself
  produces for a voiced pitch contour; the excitation (NSF sine source) stays in torch, so its
  phase and random draws are those of the torch path;
- the content encoder up to the layer the model reads (plus ContentVec's projection), with dynamic int8
  quantization of its matrix products (the transformer).

The exported files are cached in the studio's data folder (``onnx-cache/``; nothing is written next to the
user's files), keyed by the model file's path, size and modification time and the export's own version, so
a changed model is exported again. ``precision`` "fp32" keeps the weights as they
are (the same numbers as torch to about 1e-6); "int8" trades a small error (measured in
benchmarks/voice_conversion.py against the torch path) for speed on CPUs with int8 instructions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import UserError

if TYPE_CHECKING:
    import torch

    from workers.voice_conversion.checkpoints import VoiceModel
    from workers.voice_conversion.content import ContentEncoder

log = logging.getLogger(__name__)

#: Bumped whenever what is exported changes, so that old cached files are not used.
EXPORT_VERSION = 1
PRECISIONS = ("fp32", "int8")
CALIBRATION_SECONDS = 3.0


def _key(path: Path, *parts: object) -> str:
    try:
        stat = path.stat()
        stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
    except OSError:
        stamp = "unknown"
    text = "|".join(str(p) for p in (path.resolve(), stamp, EXPORT_VERSION, *parts))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_folder(model_path: Path) -> Path:
    """Where a model's exports are kept: the studio's data folder (``onnx-cache``), never next to the user's
    own files; the key names the model's path, size and time, so a changed model is exported again."""
    from workers.paths import data_dir

    folder = data_dir() / "onnx-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _export(module: Any, args: tuple, path: Path, names: list[str], dynamic: dict[str, dict[int, str]]) -> None:
    """torch -> ONNX into ``path`` (through a temporary file, so a stopped export leaves nothing behind)."""
    import warnings

    import torch

    tmp = path.with_name(path.name + ".part")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=names[:-1],
                output_names=names[-1:],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
                do_constant_folding=True,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _Body:
    """The decoder's generator as an ``nn.Module`` with plain tensor inputs, for export."""

    @staticmethod
    def make(dec: Any, nsf: bool, speaker: bool) -> Any:
        from torch import nn

        class Body(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.dec = dec

            def forward(self, *inputs: Any) -> Any:
                x = inputs[0]
                source = inputs[1] if nsf else None
                g = inputs[-1] if speaker else None
                return self.dec.body(x, source, g)

        return Body().eval()


class OnnxDecoder:
    """Runs a model's decoder generator on ONNX Runtime; a :data:`~...vocoder.BodyRunner`."""

    def __init__(self, model: VoiceModel, precision: str = "int8", *, folder: Path | None = None) -> None:
        if precision not in PRECISIONS:
            raise UserError(f"The precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
        self.precision = precision
        dec = model.net.dec  # type: ignore[union-attr]
        self.nsf = bool(dec.nsf)
        self.speaker = hasattr(dec, "cond")
        self.upp = int(dec.upp)
        folder = folder or cache_folder(model.info.path)
        key = _key(model.info.path, "decoder", model.info.family)
        fp32 = folder / f"{model.info.path.stem}-{key}-decoder.onnx"
        body = _Body.make(dec, self.nsf, self.speaker)
        channels = int(dec.conv_pre.in_channels)
        gin = int(dec.cond.in_channels) if self.speaker else 0
        if not fp32.is_file():
            import torch

            frames = 20
            args: list[Any] = [torch.randn(1, channels, frames)]
            names = ["x"]
            dynamic: dict[str, dict[int, str]] = {"x": {2: "frames"}, "audio": {2: "samples"}}
            if self.nsf:
                args.append(torch.randn(1, 1, frames * self.upp))
                names.append("source")
                dynamic["source"] = {2: "samples"}
            if self.speaker:
                args.append(torch.randn(1, gin, 1))
                names.append("g")
            log.info("exporting the decoder of %s to %s", model.info.path.name, fp32)
            _export(body, tuple(args), fp32, [*names, "audio"], dynamic)
        path = fp32
        if precision == "int8":
            path = folder / f"{model.info.path.stem}-{key}-decoder-int8.onnx"
            if not path.is_file():
                self._quantize(model, fp32, path)
        self.path = path
        self.session = _session(path, _threads())
        self.input_names = [i.name for i in self.session.get_inputs()]

    def _quantize(self, model: VoiceModel, fp32: Path, out: Path) -> None:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        feeds = [self._feed(*inputs) for inputs in _decoder_inputs(model)]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter(feeds)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.items, None)

        log.info("quantizing the decoder of %s (%d calibration windows)", model.info.path.name, len(feeds))
        tmp = out.with_name(out.name + ".part")
        with tempfile.TemporaryDirectory() as work:
            cwd = os.getcwd()
            os.chdir(work)  # the quantizer leaves temporary files in the working folder
            try:
                quantize_static(
                    str(fp32),
                    str(tmp),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"],
                    per_channel=True,
                )
                os.replace(tmp, out)
            finally:
                os.chdir(cwd)
                tmp.unlink(missing_ok=True)

    def _feed(self, x: Any, source: Any, g: Any) -> dict[str, np.ndarray]:
        feed = {"x": x.detach().float().cpu().numpy()}
        if self.nsf:
            feed["source"] = source.detach().float().cpu().numpy()
        if self.speaker:
            feed["g"] = g.detach().float().cpu().numpy()
        return {k: v for k, v in feed.items() if k in getattr(self, "input_names", feed)}

    def __call__(self, x: torch.Tensor, source: torch.Tensor | None, g: torch.Tensor | None) -> torch.Tensor:
        import torch

        out = self.session.run(None, self._feed(x, source, g))[0]
        return torch.from_numpy(out)


def _decoder_inputs(model: VoiceModel) -> list[tuple[Any, Any, Any]]:
    """Decoder inputs the model produces for a voiced F0 contour (100-260 Hz with unvoiced gaps), 1 s each."""
    import torch

    captured: list[tuple[Any, Any, Any]] = []

    def capture(x: Any, source: Any, g: Any) -> Any:
        captured.append((x.clone(), None if source is None else source.clone(), None if g is None else g.clone()))
        return model.net.dec.body(x, source, g)  # type: ignore[union-attr]

    rate = 16000
    frames = model.frames_for(rate)
    # the prior sees content of the encoders' scale (unit variance) and the calibration signal's F0
    # contour (voiced, with its unvoiced gaps), which is what sets the decoder's activation ranges
    t = np.arange(int(CALIBRATION_SECONDS * 100)) / 100.0
    f0_all = (100 + 160 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t))).astype(np.float32)
    f0_all[(np.floor(t / 0.7) % 3 == 2) & ((t % 0.7) < 0.12)] = 0.0
    generator = torch.Generator().manual_seed(0)
    previous, model.decoder_body = model.decoder_body, capture
    try:
        for start in range(0, len(f0_all) - 100 + 1, 100):
            f0 = f0_all[start : start + 100]
            f0 = np.interp(np.linspace(0, len(f0) - 1, frames), np.arange(len(f0)), f0).astype(np.float32)
            content = torch.randn(1, frames, model.content_dim, generator=generator)
            model.infer(content, torch.from_numpy(f0)[None], noise_scale=model.default_noise_scale, tail=frames)
    finally:
        model.decoder_body = previous
    return captured


def accelerate(model: VoiceModel, precision: str = "int8") -> Callable[..., Any]:
    """Put ``model``'s decoder on ONNX Runtime (exported and cached on first use); returns the runner."""
    runner = OnnxDecoder(model, precision)
    model.decoder_body = runner
    return runner


class OnnxContentEncoder:
    """A content encoder's forward up to one layer (+ projection) on ONNX Runtime; see the module text."""

    def __init__(self, encoder: ContentEncoder, layer: int | None, dim: int, precision: str = "int8") -> None:
        import torch

        self.encoder = encoder
        self.layer = layer
        self.dim = dim
        folder = cache_folder(Path(encoder.folder) / "config.json")
        key = _key(Path(encoder.folder) / "config.json", "content", layer, dim, precision)
        path = folder / f"content-{key}.onnx"
        if not path.is_file():
            wrapper = encoder.export_module(layer=layer, dim=dim)
            fp32 = folder / f"content-{key}-fp32.onnx"
            _export(
                wrapper,
                (torch.randn(1, 16000),),
                fp32,
                ["audio", "units"],
                {"audio": {1: "samples"}, "units": {1: "frames"}},
            )
            if precision == "int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                tmp = path.with_name(path.name + ".part")
                with tempfile.TemporaryDirectory() as work:
                    cwd = os.getcwd()
                    os.chdir(work)
                    try:
                        quantize_dynamic(
                            str(fp32), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
                        )
                        os.replace(tmp, path)
                    finally:
                        os.chdir(cwd)
                        tmp.unlink(missing_ok=True)
                fp32.unlink(missing_ok=True)
            else:
                os.replace(fp32, path)
        self.session = _session(path, _threads())

    def __call__(self, audio16k: np.ndarray) -> torch.Tensor:
        import torch

        x = np.ascontiguousarray(np.asarray(audio16k, np.float32).reshape(1, -1))
        return torch.from_numpy(self.session.run(None, {"audio": x})[0])
