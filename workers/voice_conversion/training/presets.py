"""Architecture settings of the trainable voice models, for each size preset.

``full`` is the published architecture (RVC v2 ``configs/v2/*.json`` and ``configs/v1/40k.json``,
so-vits-svc 4.1 ``configs_template/config_template.json``): only it can start from the published
pretrained bases. ``small`` trains on a CPU in hours; ``tiny`` is a few kilobytes of weights that learns
for a few dozen steps in seconds (tests, trying the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.errors import UserError

ARCHS = ("rvc-v2", "sovits-4.1")
SIZES = ("tiny", "small", "full")
RVC_RATES = (32000, 40000, 48000)

#: RVC v2: sample rate -> (upsample rates, upsample kernels, filter length, mel bands).
_RVC_AUDIO = {
    32000: ([10, 8, 2, 2], [20, 16, 4, 4], 1024, 80),
    40000: ([10, 10, 2, 2], [16, 16, 4, 4], 2048, 125),
    48000: ([12, 10, 2, 2], [24, 20, 4, 4], 2048, 128),
}
#: RVC's decoder segment in samples per rate (``train.segment_size`` of its configs).
_RVC_SEGMENT = {32000: 12800, 40000: 12800, 48000: 17280}


@dataclass(frozen=True)
class Size:
    """The widths of one size preset (the layer counts of the flows and encoders stay the originals')."""

    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_layers: int
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    gin_channels: int
    #: Discriminator widths are the originals' divided by this.
    disc_divisor: int
    #: Frames of the training window (the encoders see it; the decoder a segment of it).
    window_frames: int
    #: Decoder segment in frames (full: the originals').
    segment_frames: int | None
    batch_size: int
    learning_rate: float
    save_every: int
    preview_every: int


SIZE_PRESETS: dict[str, Size] = {
    "tiny": Size(16, 32, 64, 1, 32, (3,), 16, 16, 16, 8, 2, 1e-3, 10, 20),
    "small": Size(96, 96, 384, 3, 128, (3, 7, 11), 128, 4, 100, 24, 4, 2e-4, 200, 200),
    "full": Size(192, 192, 768, 6, 512, (3, 7, 11), 256, 1, 200, None, 4, 1e-4, 1000, 500),
}


@dataclass
class TrainSpec:
    """Everything that fixes a training run's networks and data: architecture, size, rate, speakers."""

    arch: str
    size: str = "tiny"
    sample_rate: int = 40000
    speakers: dict[str, int] = field(default_factory=lambda: {"speaker0": 0})
    f0_method: str = "fcpe"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"Unknown architecture {self.arch!r}; choose {' or '.join(ARCHS)}.")
        if self.size not in SIZES:
            raise UserError(f"Unknown size {self.size!r}; choose one of {', '.join(SIZES)}.")
        if self.arch == "sovits-4.1":
            self.sample_rate = 44100
        elif int(self.sample_rate) not in RVC_RATES:
            raise UserError(f"RVC v2 trains at 32, 40 or 48 kHz, not {self.sample_rate} Hz.")
        self.sample_rate = int(self.sample_rate)

    @property
    def preset(self) -> Size:
        return SIZE_PRESETS[self.size]

    @property
    def family(self) -> str:
        return "rvc" if self.arch == "rvc-v2" else "sovits"

    @property
    def content_dim(self) -> int:
        return 768

    @property
    def hop_length(self) -> int:
        return self.sample_rate // 100 if self.family == "rvc" else 512

    @property
    def filter_length(self) -> int:
        return _RVC_AUDIO[self.sample_rate][2] if self.family == "rvc" else 2048

    @property
    def n_mels(self) -> int:
        return _RVC_AUDIO[self.sample_rate][3] if self.family == "rvc" else 80

    @property
    def mel_fmax(self) -> float | None:
        return None if self.family == "rvc" else 22050.0

    @property
    def segment_frames(self) -> int:
        size = self.preset
        if size.segment_frames is not None:
            return size.segment_frames
        if self.family == "rvc":
            return _RVC_SEGMENT[self.sample_rate] // self.hop_length
        return 10240 // self.hop_length

    @property
    def window_frames(self) -> int:
        return max(self.preset.window_frames, self.segment_frames)

    @property
    def periods(self) -> tuple[int, ...]:
        """Periods of the multi-period discriminator (RVC v2: MultiPeriodDiscriminatorV2)."""
        return (2, 3, 5, 7, 11, 17, 23, 37) if self.family == "rvc" else (2, 3, 5, 7, 11)

    def _generator(self) -> dict[str, Any]:
        size = self.preset
        if self.family == "rvc":
            rates, kernels, _, _ = _RVC_AUDIO[self.sample_rate]
        else:
            rates, kernels = [8, 8, 2, 2, 2], [16, 16, 4, 4, 4]
        return {
            "resblock": "1",
            "resblock_kernel_sizes": list(size.resblock_kernel_sizes),
            "resblock_dilation_sizes": [[1, 3, 5] for _ in size.resblock_kernel_sizes],
            "upsample_rates": list(rates),
            "upsample_initial_channel": size.upsample_initial_channel,
            "upsample_kernel_sizes": list(kernels),
        }

    def rvc_config_list(self) -> list[Any]:
        """The 18-value ``config`` list of an RVC ``.pth`` (RVC's speaker table has 109 rows at full size)."""
        size = self.preset
        gen = self._generator()
        speakers = 109 if self.size == "full" else max(1, len(self.speakers))
        return [
            self.filter_length // 2 + 1,
            self.segment_frames,
            size.inter_channels,
            size.hidden_channels,
            size.filter_channels,
            2,
            size.n_layers,
            3,
            0,
            gen["resblock"],
            gen["resblock_kernel_sizes"],
            gen["resblock_dilation_sizes"],
            gen["upsample_rates"],
            gen["upsample_initial_channel"],
            gen["upsample_kernel_sizes"],
            speakers,
            size.gin_channels,
            self.sample_rate,
        ]

    def sovits_config(self) -> dict[str, Any]:
        """A complete so-vits-svc 4.1 ``config.json`` (the template's train / data / model / spk sections)."""
        size = self.preset
        train = {
            "log_interval": 200,
            "eval_interval": size.save_every,
            "seed": 1234,
            "epochs": 10000,
            "learning_rate": size.learning_rate,
            "betas": [0.8, 0.99],
            "eps": 1e-09,
            "batch_size": size.batch_size,
            "fp16_run": False,
            "half_type": "fp16",
            "lr_decay": 0.999875,
            "segment_size": self.segment_frames * 512,
            "init_lr_ratio": 1,
            "warmup_epochs": 0,
            "c_mel": 45,
            "c_kl": 1.0,
            "use_sr": True,
            "max_speclen": 512,
            "port": "8001",
            "keep_ckpts": 3,
            "all_in_mem": False,
            "vol_aug": False,
        }
        data = {
            "training_files": "filelists/train.txt",
            "validation_files": "filelists/val.txt",
            "max_wav_value": 32768.0,
            "sampling_rate": 44100,
            "filter_length": 2048,
            "hop_length": 512,
            "win_length": 2048,
            "n_mel_channels": 80,
            "mel_fmin": 0.0,
            "mel_fmax": 22050,
            "unit_interpolate_mode": "nearest",
        }
        model = {
            "inter_channels": size.inter_channels,
            "hidden_channels": size.hidden_channels,
            "filter_channels": size.filter_channels,
            "n_heads": 2,
            "n_layers": size.n_layers,
            "kernel_size": 3,
            "p_dropout": 0.1,
            **self._generator(),
            "n_layers_q": 3,
            "n_layers_trans_flow": 3,
            "n_flow_layer": 4,
            "use_spectral_norm": False,
            "gin_channels": 768 if self.size == "full" else size.gin_channels,
            "ssl_dim": 768,
            "n_speakers": 200 if self.size == "full" else max(len(self.speakers), 1),
            "vocoder_name": "nsf-hifigan",
            "speech_encoder": "vec768l12",
            "speaker_embedding": False,
            "vol_embedding": False,
            "use_depthwise_conv": False,
            "flow_share_parameter": False,
            "use_automatic_f0_prediction": True,
            "use_transformer_flow": False,
        }
        return {"train": train, "data": data, "model": model, "spk": dict(self.speakers)}

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "size": self.size,
            "sample_rate": self.sample_rate,
            "speakers": dict(self.speakers),
            "f0_method": self.f0_method,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSpec:
        return cls(
            arch=str(data["arch"]),
            size=str(data["size"]),
            sample_rate=int(data["sample_rate"]),
            speakers={str(k): int(v) for k, v in data["speakers"].items()},
            f0_method=str(data.get("f0_method", "fcpe")),
        )
