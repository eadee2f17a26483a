"""Voice training: seconds per step, and how much a short training moves converted speech to the voice.

    python benchmarks/svc_training.py [--archs rvc-v2 sovits-4.1] [--sizes tiny small full]
        [--timed-steps 3] [--train-steps 150] [--train-size tiny] [--device cpu|cuda]
        [--json benchmarks/results/svc_training.json]

Speech is the shipped Piper voice (the training voice, 30 s) and, as the other speaker whose speech is
converted, the same voice 5 semitones lower with lower formants (the built-in voice changer). Nothing is
downloaded: the content encoder is the small HuBERT-format encoder the tests build (768-d, random
weights), so the content features carry less than ContentVec's and the similarity gain is a lower bound.

1. Seconds per step (the median of ``--timed-steps`` after one warm-up step, the trainer's own batch)
   for every architecture and size, on this machine's CPU, or the GPU with ``--device cuda`` (mixed
   precision there). The full size is the published network at batch 4.
2. Speaker similarity with Resemblyzer's encoder, which training never sees (benchmarks/
   speaker_similarity.py): the other speaker's speech against the training voice ("input"), the same
   speech converted by the untrained network ("step 0") and by the network after ``--train-steps``
   steps ("trained"), each against held-out speech of the training voice.

Prints a table and writes JSON (benchmarks/results/ is not kept in git).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from common import machine, write_results  # noqa: E402


def make_data(folder: Path) -> tuple[Path, np.ndarray, np.ndarray, int]:
    """The training folder (Piper's voice), the other speaker's speech and held-out training-voice speech."""
    import soundfile
    from svc_speech import speech

    from workers.voice_conversion.dsp import DSPVoiceChanger

    audio, rate = speech(seconds=30.0)
    data = folder / "voice"
    data.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(data / "take.wav"), audio, rate)
    other_text = "Please read this sentence in your own voice, slowly and clearly, for the test."
    other, _ = speech(other_text)
    other = DSPVoiceChanger(rate, pitch=-5.0, formant=-4.0).convert_at(other, rate).astype(np.float32)
    held_out, _ = speech("A different sentence from the same speaker, kept out of training for the measure.")
    return data, other, held_out, rate


def trainer_for(arch: str, size: str, data: Path, out: Path, encoder: Path, device: str, **kwargs: Any) -> Any:
    from workers.voice_conversion.training.trainer import Trainer, TrainOptions

    shutil.rmtree(out, ignore_errors=True)
    options = TrainOptions(
        data, out, arch=arch, size=size, encoder=str(encoder), device=device, preview_every=0, **kwargs
    )
    trainer = Trainer(options)
    trainer.prepare()
    return trainer


def time_steps(trainer: Any, count: int) -> float:
    import torch

    threads = torch.get_num_threads()
    if trainer.device == "cpu" and trainer.spec.size == "tiny":
        torch.set_num_threads(1)  # as Trainer.run does for the tiny size
    try:
        trainer.train_step()
        times = []
        for _ in range(count):
            start = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times))


def convert_with(trainer: Any, audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """``audio`` converted by the trainer's current networks (content + F0 of the input, speaker 0)."""
    from workers.media.audio import resample
    from workers.voice_conversion.pitch import make_pitch_estimator
    from workers.voice_conversion.training.features import _to_frames

    spec = trainer.spec
    audio16 = resample(audio.reshape(-1, 1), rate, 16000)[:, 0]
    at_model = resample(audio.reshape(-1, 1), rate, spec.sample_rate)[:, 0]
    content50 = trainer.encoder.encode(audio16, dim=768, layer=12)[0].cpu().numpy()
    f0 = make_pitch_estimator(spec.f0_method, device=trainer.device)(audio16)
    _, content, f0 = _to_frames(at_model, content50, f0, spec)
    return trainer._infer(content, f0, 0), spec.sample_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["rvc-v2", "sovits-4.1"])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "full"])
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--train-size", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "svc_training.json")
    args = parser.parse_args(argv)

    import torch
    from speaker_similarity import similarity
    from svc_fixtures import make_content_encoder

    work = Path(tempfile.mkdtemp(prefix="svc-training-bench-"))
    results: dict[str, Any] = {
        "machine": machine(threads=torch.get_num_threads(), device=args.device, cuda=torch.cuda.is_available())
    }
    try:
        encoder = make_content_encoder(work / "encoder")
        data, other, held_out, rate = make_data(work)
        speed = []
        print(f"{'arch':<11} {'size':<6} {'batch':>5} {'s/step':>8} {'params (G+D)':>14}")
        for arch in args.archs:
            for size in args.sizes:
                trainer = trainer_for(arch, size, data, work / f"speed-{arch}-{size}", encoder, args.device)
                from workers.voice_conversion.training.nets import param_count

                params = param_count(trainer.net, trainer.enc_q, trainer.disc)
                seconds = time_steps(trainer, args.timed_steps)
                row = {
                    "arch": arch,
                    "size": size,
                    "batch": trainer.batch_size,
                    "seconds_per_step": round(seconds, 3),
                    "parameters": params,
                    "device": trainer.device,
                }
                speed.append(row)
                print(f"{arch:<11} {size:<6} {trainer.batch_size:>5} {seconds:>8.3f} {params:>14,}")
        results["speed"] = speed

        quality = []
        archs = args.archs if args.train_steps > 0 else []
        if archs:
            print(
                f"\nspeaker similarity to the training voice (Resemblyzer), {args.train_size} size, "
                f"{args.train_steps} steps"
            )
            print(f"{'arch':<11} {'input':>7} {'step 0':>7} {'trained':>8} {'train s':>8}")
        for arch in archs:
            trainer = trainer_for(
                arch,
                args.train_size,
                data,
                work / f"quality-{arch}",
                encoder,
                args.device,
                steps=args.train_steps,
                save_every=args.train_steps,
            )
            before = similarity(other, rate, held_out, rate)
            untrained, out_rate = convert_with(trainer, other, rate)
            at_zero = similarity(untrained, out_rate, held_out, rate)
            start = time.perf_counter()
            trainer.run()
            took = time.perf_counter() - start
            converted, out_rate = convert_with(trainer, other, rate)
            after = similarity(converted, out_rate, held_out, rate)
            quality.append(
                {
                    "arch": arch,
                    "size": args.train_size,
                    "steps": args.train_steps,
                    "input_similarity": round(before, 3),
                    "step0_similarity": round(at_zero, 3),
                    "trained_similarity": round(after, 3),
                    "train_seconds": round(took, 1),
                }
            )
            print(f"{arch:<11} {before:>7.3f} {at_zero:>7.3f} {after:>8.3f} {took:>8.1f}")
        results["similarity"] = quality
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
