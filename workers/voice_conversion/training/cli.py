"""``snowai-studio svc-train``: train an RVC v2 or so-vits-svc 4.1 voice from a folder of recordings.

    snowai-studio svc-train DATA -o OUT --arch rvc-v2|sovits-4.1 [--size tiny|small|full]
        [--rate 32000|40000|48000] [--base ID|PATH] [--encoder ID|PATH] [--steps N] [--resume]
        [--f0 fcpe|crepe-tiny|crepe-full|rmvpe] [--denoise] [--save-every N] [--preview-every N]
        [--device cpu|cuda|auto] [--export STEP]

It prints the dataset report, then one line per step (losses and seconds per step) and the files
written. Ctrl+C saves the steps done so far; ``--resume`` continues a stopped or crashed run from its
last checkpoint. ``--export STEP`` writes the voice of an earlier saved step (for instance the best one)
without training. Every failure is one sentence on stderr and exit code 1. No Qt here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from workers.cli import EXIT_OK, add_store_argument, open_store, run_reporting
from workers.voice_conversion.training.presets import ARCHS, RVC_RATES, SIZES

F0_CHOICES = ("fcpe", "crepe-tiny", "crepe-full", "rmvpe")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "svc-train",
        help="train an RVC v2 or so-vits-svc 4.1 voice from recordings",
        description="Train a voice model (RVC v2 or so-vits-svc 4.1) from a folder of recordings of one "
        "voice (sub-folders: several speakers). The outputs load in the studio and in the original projects.",
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="folder of recordings (WAV, FLAC, MP3, OGG)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="folder of the run")
    parser.add_argument("--arch", choices=ARCHS, default="rvc-v2", help="architecture (default rvc-v2)")
    parser.add_argument("--size", choices=SIZES, default="small", help="model size (default small)")
    parser.add_argument("--rate", type=int, choices=RVC_RATES, default=40000, help="RVC sample rate (default 40000)")
    parser.add_argument("--base", default="", metavar="ID|PATH", help="pretrained base (full size only)")
    parser.add_argument("--encoder", default="", metavar="ID|PATH", help="content encoder (HuBERT format)")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="train up to step N")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    parser.add_argument("--f0", choices=F0_CHOICES, default="fcpe", help="pitch estimator (default fcpe)")
    parser.add_argument("--denoise", action="store_true", help="clean the recordings with RNNoise first")
    parser.add_argument("--save-every", type=int, default=None, metavar="N", help="checkpoint every N steps")
    parser.add_argument("--preview-every", type=int, default=None, metavar="N", help="preview every N steps (0: off)")
    parser.add_argument("--batch", type=int, default=None, metavar="N", help="batch size")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    parser.add_argument("--export", type=int, default=None, metavar="STEP", help="export a saved step and stop")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> Any:
    import json

    from workers.voice_conversion.training.trainer import TrainOptions

    if args.export is not None:  # exporting a saved step: the run's own model and size
        try:
            spec = json.loads((Path(args.output) / "train.json").read_text(encoding="utf-8"))["spec"]
            args.arch, args.size, args.rate = spec["arch"], spec["size"], int(spec["sample_rate"])
        except (OSError, ValueError, KeyError):
            pass  # the trainer says what is wrong with the folder
    return TrainOptions(
        data=args.data,
        out=args.output,
        arch=args.arch,
        size=args.size,
        sample_rate=args.rate,
        base=args.base,
        encoder=args.encoder,
        steps=args.steps,
        resume=args.resume or args.export is not None,
        f0_method=args.f0,
        device=args.device,
        noise_suppression=args.denoise,
        save_every=args.save_every,
        preview_every=args.preview_every,
        batch_size=args.batch,
    )


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    return run_reporting(
        "svc-train",
        lambda: _train(args, out),
        err,
        cancelled="\nStopped; the steps done so far are saved (continue with --resume).\n",
    )


def _train(args: argparse.Namespace, out: TextIO) -> int:
    from workers.voice_conversion.training.trainer import Trainer

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "report":
            out.write(
                f"Dataset: {data['usable_seconds'] / 60:.1f} min usable in {data['pieces']} pieces "
                f"from {data['files']} files\n"
            )
            for entry in data["skipped"]:
                out.write(f"  skipped {entry['file']}: {entry['reason']}\n")
        elif kind == "stage":
            out.write(f"{data['text']}...\n")
        elif kind == "step":
            extra = f" lf0 {data['lf0']:.3f}" if "lf0" in data else ""
            out.write(
                f"step {data['step']}/{data['target']}: mel {data['mel']:.3f} kl {data['kl']:.3f} "
                f"gen {data['gen']:.3f} fm {data['fm']:.3f} disc {data['disc']:.3f}{extra} "
                f"({data['seconds']:.2f} s/step, {data['eta'] / 60:.1f} min left)\n"
            )
        elif kind == "checkpoint":
            val = "not measured" if data["val_mel"] is None else f"{data['val_mel']:.3f}"
            out.write(f"saved step {data['step']} (validation mel {val}; best step {data['best']})\n")
        elif kind == "exported":
            out.write(f"voice of step {data['step']}: " + ", ".join(data["paths"]) + "\n")
        out.flush()

    options = options_from_args(args)
    trainer = Trainer(options, store=open_store(args), on_event=on_event)
    trainer.prepare()
    if args.export is not None:
        trainer.export(args.export)
        return EXIT_OK
    trainer.run()
    return EXIT_OK
