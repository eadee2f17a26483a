"""The training loop for RVC v2 and so-vits-svc 4.1 voices (no Qt).

One step = a discriminator update (LSGAN on real and generated segments) then a generator update
(mel L1 x 45 + KL + LSGAN + feature matching, and for so-vits-svc the F0 predictor's MSE), AdamW
(betas 0.8/0.99, eps 1e-9) with the originals' learning-rate decay of 0.999875 an epoch. On CUDA it
runs in mixed precision (fp16 autocast with a gradient scaler), on the CPU in fp32.

The run's folder holds ``train.json`` (the settings, the loss history, the checkpoints with their
validation loss), the checkpoints (so-vits-svc: ``G_*.pth``/``D_*.pth`` beside ``config.json``; RVC:
under ``train/``), ``features/`` and ``previews/``. A stopped or crashed run resumes at its last saved
step; a cancel (checked between the parts of a step) saves the steps done so far first. Events reach the
caller through one callback: ``report``, ``stage``, ``step``, ``checkpoint``, ``preview``, ``exported``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.errors import Cancelled, UserError
from workers.voice_conversion.training import checkpoints as ckpt
from workers.voice_conversion.training.presets import TrainSpec

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

DEFAULT_STEPS = {"tiny": 40, "small": 3000, "full": 20000}
KEEP_CHECKPOINTS = 3
C_MEL = 45.0
C_KL = 1.0
LR_DECAY = 0.999875

Event = Callable[[str, dict[str, Any]], None]


@dataclass
class TrainOptions:
    data: Path
    out: Path
    arch: str = "rvc-v2"
    size: str = "tiny"
    sample_rate: int = 40000
    base: str = ""
    encoder: str = ""
    steps: int | None = None
    resume: bool = False
    f0_method: str = "fcpe"
    device: str = "cpu"
    noise_suppression: bool = False
    save_every: int | None = None
    preview_every: int | None = None
    batch_size: int | None = None
    preview: str = ""
    seed: int = 1234
    extra: dict[str, Any] = field(default_factory=dict)


def _device(name: str) -> str:
    import torch

    name = (name or "cpu").lower()
    if name in ("auto", "gpu", "cuda"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


class Trainer:
    """Prepares a run (dataset, features, networks, resume or base) and trains it step by step."""

    def __init__(
        self,
        options: TrainOptions,
        *,
        store: ModelStore | None = None,
        on_event: Event | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.options = options
        self.store = store
        self.emit: Event = on_event or (lambda kind, data: None)
        self.cancelled = cancelled or (lambda: False)
        self.out = Path(options.out).expanduser()
        self.device = _device(options.device)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.saved: list[dict[str, float]] = []
        self.saved_step = 0
        self.elapsed = 0.0
        self.report: Any = None

    # ---- preparing ------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.out / "train.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "train" if self.spec.family == "rvc" else self.out

    def _check(self) -> None:
        if self.cancelled():
            raise Cancelled()

    def prepare(self) -> None:
        import torch

        from workers.voice_conversion.training.dataset import prepare_dataset
        from workers.voice_conversion.training.features import extract_features, load_encoder

        opts = self.options
        previous = self._read_state()
        if previous and not opts.resume:
            raise UserError(
                f"{self.out} already holds a training run (step {previous.get('step', 0)}); resume it or "
                "choose an empty folder."
            )
        if opts.resume and not previous:
            raise UserError(f"{self.out} holds no training run to resume.")
        spec = TrainSpec(opts.arch, opts.size, opts.sample_rate, f0_method=opts.f0_method)
        self.emit("stage", {"stage": "dataset", "text": "Slicing the recordings"})
        pieces, self.report = prepare_dataset(
            opts.data,
            spec.sample_rate,
            noise_suppression=opts.noise_suppression,
            progress=lambda d, t: self.emit("progress", {"stage": "dataset", "done": d, "total": t}),
            cancelled=self.cancelled,
        )
        speakers = {name: i for i, name in enumerate(self.report.speakers)}
        if previous:
            asked = spec
            spec = TrainSpec.from_json(previous["spec"])
            if (asked.arch, asked.size, asked.sample_rate) != (spec.arch, spec.size, spec.sample_rate):
                raise UserError(
                    f"{self.out.name} holds a {spec.arch} run of the {spec.size} size at {spec.sample_rate} Hz; "
                    "continue it with the same model and size, or choose another name."
                )
            missing = sorted(set(speakers) - set(spec.speakers))
            if missing:
                raise UserError(f"The dataset has speakers the run was not started with ({', '.join(missing)}).")
        else:
            spec.speakers = speakers
        self.spec = spec
        self.emit("report", self.report.to_json())
        self.emit("stage", {"stage": "features", "text": "Reading content and pitch"})
        encoder = load_encoder(spec, opts.encoder or None, self.store, self.device)
        self.encoder = encoder
        self.items = extract_features(
            pieces,
            spec,
            encoder,
            self.out / "features",
            device=self.device,
            progress=lambda d, t: self.emit("progress", {"stage": "features", "done": d, "total": t}),
            cancelled=self.cancelled,
        )
        self._check()
        torch.manual_seed(opts.seed)
        self._build()
        if previous:
            self._resume(previous)
        elif opts.base:
            self._load_base(opts.base)
        self.target = int(opts.steps or DEFAULT_STEPS[spec.size])
        self.save_every = int(opts.save_every or spec.preset.save_every)
        preview_every = spec.preset.preview_every if opts.preview_every is None else opts.preview_every
        self.preview_every = max(0, int(preview_every))  # 0: no previews
        self._write_state()

    def _build(self) -> None:
        import torch

        from workers.voice_conversion.training.discriminators import MultiPeriodDiscriminator
        from workers.voice_conversion.training.nets import build_generator, fill_f0

        spec = self.spec
        self.net, self.enc_q = build_generator(spec)
        self.disc = MultiPeriodDiscriminator(spec.periods, spec.preset.disc_divisor)
        for module in (self.net, self.enc_q, self.disc):
            module.to(self.device).train()
        lr = spec.preset.learning_rate
        kwargs = {"lr": lr, "betas": (0.8, 0.99), "eps": 1e-9}
        self.optim_g = torch.optim.AdamW([*self.net.parameters(), *self.enc_q.parameters()], **kwargs)
        self.optim_d = torch.optim.AdamW(self.disc.parameters(), **kwargs)
        self.base_lr = lr
        self.amp = self.device == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.window = max(1, min(spec.window_frames, min(item.frames for item in self.items)))
        if self.window < spec.segment_frames:
            raise UserError("The training pieces are shorter than one decoder segment.")
        self.filled = [fill_f0(item.f0) for item in self.items]
        self.rng = np.random.default_rng(self.options.seed + self.step)
        batch = self.options.batch_size or spec.preset.batch_size
        self.batch_size = int(batch)
        self.steps_per_epoch = max(1, len(self.items) // self.batch_size)

    def _resume(self, previous: dict[str, Any]) -> None:
        from workers.voice_conversion.training.nets import load_generator_state

        steps = ckpt.checkpoint_steps(self.checkpoint_dir)
        if not steps:
            raise UserError(f"{self.out} has no saved checkpoint to resume from; start a new run.")
        step = steps[-1]
        g, d = ckpt.load_pair(self.checkpoint_dir, step)
        load_generator_state(self.net, self.enc_q, g["model"])
        self.disc.load_state_dict({k: v.float() for k, v in d["model"].items()})
        if isinstance(g.get("optimizer"), dict):
            self.optim_g.load_state_dict(g["optimizer"])
        if isinstance(d.get("optimizer"), dict):
            self.optim_d.load_state_dict(d["optimizer"])
        self.step = self.saved_step = step
        self.history = [h for h in previous.get("history", []) if h["step"] <= step]
        self.saved = [s for s in previous.get("checkpoints", []) if s["step"] <= step]
        self.elapsed = float(previous.get("elapsed", 0.0))
        self.rng = np.random.default_rng(self.options.seed + step)
        log.info("Resumed %s at step %d", self.out, step)

    def _load_base(self, base: str) -> None:
        from workers.voice_conversion.checkpoints import torch_load
        from workers.voice_conversion.training.nets import load_generator_state

        if self.spec.size != "full":
            raise UserError(
                f"A pretrained base fits only the full size; the {self.spec.size} size trains from scratch."
            )
        g_path, d_path = resolve_base(base, self.spec, self.store)
        g, d = torch_load(g_path), torch_load(d_path)
        g_state = g.get("model", g) if isinstance(g, dict) else None
        d_state = d.get("model", d) if isinstance(d, dict) else None
        if not isinstance(g_state, dict) or not isinstance(d_state, dict):
            raise UserError(f"{g_path.name} / {d_path.name} are not pretrained generator/discriminator weights.")
        skipped = load_generator_state(self.net, self.enc_q, g_state, strict=False)
        own = self.disc.state_dict()
        usable = {k: v.float() for k, v in d_state.items() if k in own and own[k].shape == v.shape}
        if len(usable) < len(own) // 2 or len(skipped) > 4:
            raise UserError(f"{g_path.name} does not fit {self.spec.arch} at {self.spec.sample_rate} Hz.")
        self.disc.load_state_dict(usable, strict=False)
        log.info(
            "Started from %s and %s (%d generator weights kept at their start values)", g_path, d_path, len(skipped)
        )

    # ---- state file ------------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.state_file} is damaged ({exc}); choose another folder.") from None

    def _write_state(self) -> None:
        best = self.best_step()
        data = {
            "spec": self.spec.to_json(),
            "step": self.saved_step,
            "target": self.target,
            "elapsed": self.elapsed,
            "history": self.history,
            "checkpoints": self.saved,
            "best": best,
            "report": self.report.to_json() if self.report else None,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".json.part")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"The training state could not be saved in {self.out} ({exc.strerror or exc}).") from None

    def best_step(self) -> int | None:
        measured = [s for s in self.saved if s.get("val_mel") is not None]
        if not measured:
            return None
        return int(min(measured, key=lambda s: s["val_mel"])["step"])

    # ---- batches --------------------------------------------------------------------------------------
    def _batch(self) -> dict[str, Any]:
        import torch

        from workers.voice_conversion.training.nets import spectrogram

        spec, hop, w = self.spec, self.spec.hop_length, self.window
        picks = self.rng.integers(0, len(self.items), self.batch_size)
        audio, content, f0, filled, speaker = [], [], [], [], []
        for i in picks:
            item = self.items[int(i)]
            s = int(self.rng.integers(0, item.frames - w + 1))
            audio.append(item.audio[s * hop : (s + w) * hop])
            content.append(item.content[s : s + w])
            f0.append(item.f0[s : s + w])
            filled.append(self.filled[int(i)][s : s + w])
            speaker.append(item.speaker)
        dev = self.device
        wave = torch.from_numpy(np.stack(audio)).to(dev)
        return {
            "wave": wave,
            "spec": spectrogram(wave, spec.filter_length, hop),
            "content": torch.from_numpy(np.stack(content)).to(dev),
            "f0": torch.from_numpy(np.stack(f0)).to(dev),
            "f0_filled": torch.from_numpy(np.stack(filled)).to(dev),
            "speaker": torch.tensor(speaker, dtype=torch.long, device=dev),
        }

    # ---- one step -----------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        import torch
        from torch.nn import functional as F

        from workers.voice_conversion.training.losses import (
            discriminator_loss,
            feature_loss,
            generator_loss,
            kl_loss,
        )
        from workers.voice_conversion.training.nets import generator_pass, mel_spectrogram, spec_to_mel, take_segments

        spec = self.spec
        lr = self.base_lr * LR_DECAY ** (self.step / self.steps_per_epoch)
        for opt in (self.optim_g, self.optim_d):
            for group in opt.param_groups:
                group["lr"] = lr
        batch = self._batch()
        hop, size = spec.hop_length, spec.segment_frames
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=self.amp)
        with autocast:
            out = generator_pass(self.net, self.enc_q, batch, spec)
            y_hat = out["audio"]
            starts = out["starts"]
            real = take_segments(batch["wave"][:, None], starts * hop, size * hop)
            d_real, d_fake, _, _ = self.disc(real, y_hat.detach())
        loss_d = discriminator_loss(d_real, d_fake)
        self._check()
        self.optim_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.optim_d)
        self._check()
        with autocast:
            d_real, d_fake, maps_real, maps_fake = self.disc(real, y_hat)
        mel = spec_to_mel(
            take_segments(batch["spec"], starts, size), spec.filter_length, spec.n_mels, spec.sample_rate, spec.mel_fmax
        )
        mel_hat = mel_spectrogram(y_hat[:, 0].float(), spec)
        loss_mel = F.l1_loss(mel, mel_hat) * C_MEL
        loss_kl = kl_loss(out["z_p"], out["logs_q"], out["m_p"], out["logs_p"], out["mask"]) * C_KL
        loss_fm = feature_loss(maps_real, maps_fake)
        loss_gen = generator_loss(d_fake)
        loss_g = loss_gen + loss_fm + loss_mel + loss_kl
        losses = {"mel": float(loss_mel.detach()) / C_MEL}
        if "pred_lf0" in out:
            loss_lf0 = F.mse_loss(out["pred_lf0"].float(), out["lf0"].float())
            loss_g = loss_g + loss_lf0
            losses["lf0"] = float(loss_lf0.detach())
        self.optim_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.optim_g)
        self.scaler.update()
        losses.update(
            disc=float(loss_d.detach()),
            gen=float(loss_gen.detach()),
            fm=float(loss_fm.detach()),
            kl=float(loss_kl.detach()) / C_KL,
            total=float(loss_g.detach()),
            lr=lr,
        )
        if not all(math.isfinite(v) for v in losses.values()):
            raise UserError(
                f"Training diverged at step {self.step + 1} (a loss is not a number); resume from the last "
                "checkpoint with a smaller size or another base."
            )
        return losses

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self) -> list[Path]:
        """Train up to the target step; returns the exported voice files (model first)."""
        import torch

        self.emit("stage", {"stage": "training", "text": f"Training {self.spec.arch} ({self.spec.size})"})
        threads = torch.get_num_threads()
        if self.device == "cpu" and self.spec.size == "tiny":
            torch.set_num_threads(1)  # tensors this small run faster without the threads' hand-offs
        try:
            return self._loop()
        finally:
            torch.set_num_threads(threads)

    def _loop(self) -> list[Path]:
        recent: list[float] = []
        try:
            while self.step < self.target:
                self._check()
                start = time.perf_counter()
                losses = self.train_step()
                took = time.perf_counter() - start
                self.step += 1
                self.elapsed += took
                recent = ([*recent, took])[-20:]
                per_step = float(np.mean(recent))
                record = {"step": self.step, **{k: round(v, 5) for k, v in losses.items()}, "seconds": round(took, 4)}
                self.history.append(record)
                self.emit(
                    "step",
                    {
                        **record,
                        "target": self.target,
                        "per_step": per_step,
                        "eta": per_step * (self.target - self.step),
                    },
                )
                if self.step % self.save_every == 0 or self.step == self.target:
                    self.save()
                if self.preview_every and self.step % self.preview_every == 0:
                    self.preview()
        except Cancelled:
            if self.step > self.saved_step:
                self.save(validate=False)  # promptly: the window may be closing
            raise
        return self.export()

    def save(self, *, validate: bool = True) -> None:
        """Checkpoint the current step (with its validation loss unless ``validate`` is off)."""
        from workers.voice_conversion.training.nets import generator_state

        val = self.validate() if validate else None
        lr = self.optim_g.param_groups[0]["lr"]
        g = {
            "model": generator_state(self.net, self.enc_q),
            "iteration": self.step,
            "optimizer": self.optim_g.state_dict(),
            "learning_rate": lr,
        }
        d = {
            "model": self.disc.state_dict(),
            "iteration": self.step,
            "optimizer": self.optim_d.state_dict(),
            "learning_rate": lr,
        }
        if self.spec.family == "sovits":
            (self.out / "config.json").write_text(json.dumps(self.spec.sovits_config(), indent=2), encoding="utf-8")
        path = ckpt.save_pair(self.checkpoint_dir, self.step, g, d)
        self.saved_step = self.step
        self.saved = [s for s in self.saved if s["step"] != self.step] + [{"step": self.step, "val_mel": val}]
        best = self.best_step()
        ckpt.prune(self.checkpoint_dir, KEEP_CHECKPOINTS, {best} if best is not None else set())
        kept = set(ckpt.checkpoint_steps(self.checkpoint_dir))
        self.saved = [s for s in self.saved if s["step"] in kept]
        self._write_state()
        self.emit("checkpoint", {"step": self.step, "path": str(path), "val_mel": val, "best": best})

    # ---- inference with the training networks -------------------------------------------------------
    def _infer(self, content: np.ndarray, f0: np.ndarray, speaker: int) -> np.ndarray:
        import torch

        from workers.voice_conversion.checkpoints import DEFAULT_SEED, fill_unvoiced

        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(DEFAULT_SEED)
        c = torch.from_numpy(np.ascontiguousarray(content))[None].to(dev)
        f = torch.from_numpy(np.ascontiguousarray(f0))[None].to(dev)
        self.net.eval()
        try:
            with torch.no_grad():
                if self.spec.family == "rvc":
                    from workers.voice_conversion.models.rvc import f0_to_coarse

                    audio = self.net.infer(
                        c, f0_to_coarse(f), f, torch.tensor([speaker], device=dev), noise_scale=0.0, generator=gen
                    )
                else:
                    filled, uv = fill_unvoiced(f0, "4.1", hop=self.spec.hop_length, rate=self.spec.sample_rate)
                    audio, _ = self.net.infer(
                        c.transpose(1, 2),
                        torch.from_numpy(filled)[None].to(dev),
                        torch.from_numpy(uv)[None].to(dev),
                        torch.tensor([[speaker]], device=dev),
                        noise_scale=0.0,
                        generator=gen,
                    )
        finally:
            self.net.train()
        return audio[0, 0].float().cpu().numpy()

    def validate(self) -> float:
        """Mel L1 between up to four pieces and their conversion by the current networks (content + F0 in)."""
        import torch

        from workers.voice_conversion.training.nets import mel_spectrogram

        losses = []
        for item in self.items[:4]:
            n = min(item.frames, 400)
            audio = self._infer(item.content[:n], item.f0[:n], item.speaker)
            real = torch.from_numpy(item.audio[: n * self.spec.hop_length])[None]
            fake = torch.from_numpy(audio[: real.shape[1]])[None]
            m = min(real.shape[1], fake.shape[1])
            losses.append(
                float(
                    torch.mean(
                        torch.abs(mel_spectrogram(real[:, :m], self.spec) - mel_spectrogram(fake[:, :m], self.spec))
                    )
                )
            )
        return round(float(np.mean(losses)), 5)

    def preview_source(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Content and F0 of the preview: the chosen file, else the first training piece."""
        from workers.media.audio import resample
        from workers.voice_conversion.files import read_audio
        from workers.voice_conversion.pitch import make_pitch_estimator
        from workers.voice_conversion.training.features import _to_frames

        if not getattr(self, "_preview", None):
            if self.options.preview:
                data, rate = read_audio(self.options.preview)
                mono = data.mean(axis=1)
                audio = resample(mono.reshape(-1, 1), rate, self.spec.sample_rate)[:, 0]
                audio16 = resample(mono.reshape(-1, 1), rate, 16000)[:, 0]
                c50 = self.encoder.encode(audio16, dim=768, layer=12)[0].cpu().numpy()
                f0 = make_pitch_estimator(self.spec.f0_method, device=self.device)(audio16)
                _, content, f0 = _to_frames(audio, c50, f0, self.spec)
            else:
                item = self.items[0]
                content, f0 = item.content, item.f0
            self._preview = (content, f0, 0)
        return self._preview

    def preview(self) -> Path:
        import soundfile

        content, f0, speaker = self.preview_source()
        audio = self._infer(content, f0, speaker)
        folder = self.out / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step}.wav"
        soundfile.write(str(path), audio, self.spec.sample_rate)
        self.emit("preview", {"step": self.step, "path": str(path), "rate": self.spec.sample_rate})
        return path

    # ---- export -----------------------------------------------------------------------------------------
    def vectors(self) -> dict[str, np.ndarray]:
        names = {v: k for k, v in self.spec.speakers.items()}
        out: dict[str, list[np.ndarray]] = {}
        for item in self.items:
            out.setdefault(names[item.speaker], []).append(item.content50)
        return {k: np.concatenate(v) for k, v in out.items()}

    def export(self, step: int | None = None) -> list[Path]:
        """Write the voice of ``step`` (default: the last saved) in the original format."""
        from workers.voice_conversion.training.export import export_voice

        step = self.saved_step if step is None else int(step)
        g, _ = ckpt.load_pair(self.checkpoint_dir, step)
        paths = export_voice(self.out, self.spec, g["model"], step, self.vectors())
        self.emit("exported", {"step": step, "paths": [str(p) for p in paths]})
        return paths


def resolve_base(base: str, spec: TrainSpec, store: ModelStore | None) -> tuple[Path, Path]:
    """The pretrained generator and discriminator files of ``base``: a model-store id, a folder holding
    both (f0G*/f0D* or G_*/D_*), or the generator file with its discriminator beside it."""
    path = Path(base).expanduser()
    if not path.exists():
        if any(sep in base for sep in ("/", "\\")) or path.suffix:
            raise UserError(f"The pretrained base {path} was not found.")
        if store is None:
            from workers.models.store import ModelStore

            store = ModelStore()
        path = Path(store.path_of(base))
    folder = path if path.is_dir() else path.parent
    if spec.family == "rvc":
        khz = f"{spec.sample_rate // 1000}k"
        g = path if path.is_file() else folder / f"f0G{khz}.pth"
        d = folder / g.name.replace("G", "D", 1) if g.name.startswith("f0G") else folder / f"f0D{khz}.pth"
    else:
        g = path if path.is_file() else folder / "G_0.pth"
        d = folder / g.name.replace("G_", "D_", 1)
    for file in (g, d):
        if not file.is_file():
            raise UserError(f"The pretrained base needs {file.name} in {folder}; it is not there.")
    return g, d
