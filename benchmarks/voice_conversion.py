"""Voice conversion speed: realtime blocks and whole files, for the built-in voice changer and neural models.

    python benchmarks/voice_conversion.py [--models dsp tiny sovits rvc] [--blocks 0.1 0.2 0.3 0.4 0.5]
        [--device cpu|cuda] [--f0 fcpe] [--session] [--json benchmarks/results/voice_conversion.json]

Converters (nothing is downloaded; the neural ones have random weights, which cost the same compute as
trained ones):

- ``dsp``: the built-in voice changer (no model file), the offline default;
- ``tiny``: the so-vits-svc 4.1 checkpoint and content encoder the tests build (svc_fixtures);
- ``sovits``: a so-vits-svc 4.1 model of the size so-vits-svc trains (192 channels, 6 layers, NSF-HiFiGAN
  at 44.1 kHz), saved as its release checkpoint, with a HuBERT-base-sized content encoder;
- ``rvc``: an RVC v2 40 kHz model of the size RVC trains, exported as RVC does, same encoder.

For each converter and block size, real speech (the shipped Piper voice) is fed block by block at a
sound card's 48 kHz through the realtime :class:`~workers.voice_conversion.realtime.BlockConverter`
with the CPU preset's crossfade and context, measuring:

- inference ms per block (median and 90th percentile, after a warm-up block);
- the real-time factor (ms of work per ms of audio; below 1 keeps up with a microphone);
- the algorithmic latency the block converter reports, and the total latency with one 512-frame device
  buffer each way, against the target 2 x block + crossfade + 20 ms ("ok" also needs the p90 inference
  to fit in a block);
- with ``--session``, the latency a live :class:`~workers.voice_conversion.realtime.RealtimeSession`
  measures between a paced fake microphone and a fake speaker (real time: a few seconds per row).

Each neural model runs its blocks on every engine of ``--engines``: ``whole`` (torch synthesising the
whole window, as the studio did before), ``torch`` (only the kept tail synthesised; the reference),
``onnx`` and ``onnx-int8`` (the decoder and content encoder on ONNX Runtime; int8 is the default live
engine on a CPU), with each stage's cost (content encoder, pitch, synthesizer) for one window. The
full-size RVC model also runs RVC's own realtime block from the ``rvc`` 0.3.5 package (benchmarks/
rvc_anchor.py), the anchor. Each engine's live output is compared with torch's: SNR, and the similarity of
Resemblyzer's speaker embeddings (benchmarks/speaker_similarity.py); the models have random weights, so
the output is not speech and a word error rate says nothing here.

Then the real-time factor of converting a file (``convert_file``, ``--file-seconds`` of speech).
Prints a table and writes JSON (benchmarks/results/ is not kept in git).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.voice_conversion.options import PRESETS, VoiceConversionOptions  # noqa: E402

DEVICE_BLOCK = 512  # frames per microphone/speaker buffer in the latency estimate


def speech(seconds: float) -> tuple[np.ndarray, int]:
    """Real speech from the shipped Piper voice, repeated to ``seconds``."""
    from piper import PiperVoice

    from workers.models.store import ModelStore

    folder = Path(ModelStore().path_of("piper-en-us-joe-medium-shipped"))
    model = folder / "en_US-joe-medium.onnx" if folder.is_dir() else folder
    voice = PiperVoice.load(str(model))
    text = (
        "The quick brown fox jumps over the lazy dog. A voice changer should sound natural, "
        "keep every word clear and follow the singer without a delay you can hear."
    )
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text)]).astype(np.float32)
    rate = int(voice.config.sample_rate)
    reps = int(np.ceil(seconds * rate / len(audio)))
    return np.tile(audio, reps)[: int(seconds * rate)], rate


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    from workers.media.audio import resample as _resample

    return _resample(audio[:, None], src, dst)[:, 0]


def dsp_converter(device: str, folder: Path) -> tuple[str, Any, VoiceConversionOptions]:
    from workers.voice_conversion.converter import load_converter

    options = VoiceConversionOptions(pitch=4.0, formant=1.0)
    return "DSP voice changer", load_converter(options, device=device), options


def _neural(model: Path, encoder: Path, device: str, f0: str) -> tuple[Any, VoiceConversionOptions]:
    from workers.voice_conversion.neural import load_neural_converter

    options = VoiceConversionOptions(model=str(model), pitch=4.0, f0_method=f0)
    return load_neural_converter(options, device=device, content_encoder=encoder), options


def tiny_sovits(device: str, folder: Path, f0: str) -> tuple[str, Any, VoiceConversionOptions]:
    """The so-vits-svc 4.1 checkpoint and content encoder the tests use."""
    import svc_fixtures

    gen, _config = svc_fixtures.make_sovits_checkpoint(folder / "tiny-sovits", version="4.1")
    encoder = svc_fixtures.make_content_encoder(folder / "tiny-encoder")
    converter, options = _neural(gen, encoder, device, f0)
    return "so-vits-svc 4.1, test fixture size", converter, options


def full_encoder(folder: Path) -> Path:
    """A HuBERT-base-sized content encoder (12 layers, 768-d, final_proj to 256), random weights, in
    content-vec-best's layout: the compute of the real ContentVec."""
    import torch
    from transformers import HubertConfig, HubertModel

    folder.mkdir(parents=True, exist_ok=True)
    config = HubertConfig(classifier_proj_size=256)
    data = config.to_dict()
    data["architectures"] = ["HubertModelWithFinalProj"]
    torch.manual_seed(0)
    net = HubertModel(HubertConfig.from_dict(data))
    state = {}
    for key, value in net.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        state[key.replace("parametrizations.weight.original1", "weight_v")] = value
    proj = torch.nn.Linear(768, 256)
    state["final_proj.weight"], state["final_proj.bias"] = proj.weight.detach(), proj.bias.detach()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def full_sovits(device: str, folder: Path, f0: str) -> tuple[str, Any, VoiceConversionOptions]:
    """A so-vits-svc 4.1 model of the size so-vits-svc trains (44.1 kHz), random weights, with a
    HuBERT-base-sized content encoder."""
    import svc_fixtures

    gen, _config = svc_fixtures.make_sovits_checkpoint(
        folder / "full-sovits",
        version="4.1",
        release=True,
        inter_channels=192,
        hidden_channels=192,
        filter_channels=768,
        n_layers=6,
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        upsample_rates=[8, 8, 2, 2, 2],
        upsample_initial_channel=512,
        upsample_kernel_sizes=[16, 16, 4, 4, 4],
        gin_channels=768,
    )
    converter, options = _neural(gen, full_encoder(folder / "full-encoder"), device, f0)
    return "so-vits-svc 4.1, full size", converter, options


def full_rvc(device: str, folder: Path, f0: str) -> tuple[str, Any, VoiceConversionOptions]:
    """An RVC v2 40 kHz model of the size RVC trains, random weights, exported as RVC does, with a
    HuBERT-base-sized content encoder."""
    import torch

    from workers.voice_conversion.models.rvc import RVCConfig, RVCSynthesizer

    values = [1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5]] * 3, [10, 10, 2, 2], 512,
              [16, 16, 4, 4], 109, 256, 40000]  # fmt: skip
    torch.manual_seed(0)
    net = RVCSynthesizer(RVCConfig.from_list(values, version="v2", f0=True))
    weight = {k: v.half() for k, v in net.state_dict().items() if "enc_q" not in k}
    path = folder / "full-rvc-v2.pth"
    torch.save({"weight": weight, "config": values, "info": "0epoch", "sr": "40k", "f0": 1, "version": "v2"}, path)
    encoder = folder / "full-encoder"
    if not (encoder / "pytorch_model.bin").is_file():
        full_encoder(encoder)
    converter, options = _neural(path, encoder, device, f0)
    return "RVC v2 40k, full size", converter, options


def bench_blocks(
    converter: Any,
    options: VoiceConversionOptions,
    audio: np.ndarray,
    rate: int,
    block_seconds: float,
    max_blocks: int,
    collect: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    from workers.voice_conversion.realtime import BlockConverter

    crossfade = min(options.crossfade_seconds, block_seconds / 2)
    block = BlockConverter(
        converter,
        samplerate=rate,
        block_seconds=block_seconds,
        crossfade_seconds=crossfade,
        extra_seconds=options.extra_seconds,
    )
    n = round(block_seconds * rate)
    times = []
    blocks = [audio[i : i + n] for i in range(0, len(audio) - n + 1, n)][: max_blocks + 1]
    outputs = [block.process(blocks[0])]  # warm-up: first calls allocate and load lazily
    for chunk in blocks[1:]:
        t = time.perf_counter()
        outputs.append(block.process(chunk))
        times.append((time.perf_counter() - t) * 1000.0)
    if collect is not None:
        collect.append(np.concatenate(outputs))
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    algo_ms = float(block.latency_seconds) * 1000.0
    device_ms = 2 * DEVICE_BLOCK / rate * 1000.0
    target_ms = 2 * block_seconds * 1000.0 + crossfade * 1000.0 + 20.0
    return {
        "block_ms": round(block_seconds * 1000.0, 1),
        "crossfade_ms": round(crossfade * 1000.0, 1),
        "extra_ms": round(options.extra_seconds * 1000.0, 1),
        "blocks": len(times),
        "infer_ms_median": round(median, 2),
        "infer_ms_p90": round(p90, 2),
        "rtf": round(median / (block_seconds * 1000.0), 3),
        "rtf_p90": round(p90 / (block_seconds * 1000.0), 3),
        "algorithmic_latency_ms": round(algo_ms, 1),
        "total_latency_ms": round(algo_ms + device_ms, 1),
        "target_ms": round(target_ms, 1),
        "meets_target": algo_ms + device_ms <= target_ms and p90 < block_seconds * 1000.0,
    }


def bench_session(converter: Any, options: VoiceConversionOptions, audio: np.ndarray, rate: int, block: float) -> dict:
    """A paced fake microphone → RealtimeSession → fake speaker; the latency the session measures."""
    from workers.media.fakes import ArrayMicrophone, MemorySink
    from workers.voice_conversion.realtime import BlockConverter, RealtimeSession

    stats: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    mic = ArrayMicrophone(audio[: int(4 * rate)], rate, rate, DEVICE_BLOCK, paced=True)
    sink = MemorySink(rate, 1)
    mic.open()
    sink.open()

    def make(samplerate: int | None = None) -> Any:
        return BlockConverter(
            converter,
            samplerate=int(samplerate or rate),
            block_seconds=block,
            crossfade_seconds=min(options.crossfade_seconds, block / 2),
            extra_seconds=options.extra_seconds,
        )

    session = RealtimeSession(make, mic, sink, on_stats=stats.append, on_error=errors.append)
    session.start()
    end = time.monotonic() + 4.5
    while time.monotonic() < end and not errors and not mic.ended:
        time.sleep(0.05)
    time.sleep(0.3)
    session.stop()
    mic.close()
    sink.close()
    if errors:
        return {"error": str(errors[0])}
    tail = stats[len(stats) // 3 :] or stats

    def pick(key: str) -> float | None:
        values = [float(s[key]) for s in tail if key in s]
        return round(statistics.median(values), 1) if values else None

    return {
        "session_latency_ms": pick("latency_ms"),
        "session_infer_ms": pick("infer_ms"),
        "dropped": tail[-1].get("dropped", 0) if tail else None,
    }


def bench_file(converter: Any, audio: np.ndarray, rate: int, folder: Path) -> dict[str, Any]:
    import soundfile

    from workers.voice_conversion.files import convert_file

    src = folder / "speech.wav"
    soundfile.write(str(src), audio, rate)
    times = []
    for i in range(2):
        t = time.perf_counter()
        convert_file(src, folder / f"out-{i}.wav", converter)
        times.append(time.perf_counter() - t)
    seconds = len(audio) / rate
    best = min(times)
    return {"audio_s": round(seconds, 1), "convert_s": round(best, 2), "file_rtf": round(best / seconds, 3)}


ENGINES = ("whole", "torch", "onnx", "onnx-int8")


def use_engine(converter: Any, engine: str) -> None:
    """Set how a neural converter runs a live block (``whole``: torch on the whole window, as before)."""
    if not hasattr(converter, "engine"):
        return
    converter.converts_tail = engine != "whole"
    converter.engine = "torch" if engine == "whole" else engine
    if converter.precision(live=True) is not None:
        converter.prepare(live=True)  # exported once (cached), before the timed blocks


def anchor_converter(converter: Any, pth: Path, f0: str) -> Any:
    from rvc_anchor import make_anchor

    from workers.voice_conversion.pitch import make_pitch_estimator

    return make_anchor(pth, converter.content, make_pitch_estimator(f0))


def stage_costs(converter: Any, live: np.ndarray, rate: int, block: float, options: VoiceConversionOptions) -> dict:
    """Milliseconds of the content encoder, the pitch estimator and the synthesizer for one block's window."""
    import torch

    if not hasattr(converter, "model"):
        return {}
    window = resample(live[: int((block + options.crossfade_seconds + 0.01 + options.extra_seconds) * rate)],
                      rate, 16000)
    model = converter.model
    keep = block + options.crossfade_seconds + 0.01 + 0.02 if getattr(converter, "converts_tail", False) else None
    precision = converter.precision(live=True) if keep is not None else None
    model.decoder_body = converter._body(precision)
    n_frames = model.frames_for(len(window))
    tail = None if keep is None else min(n_frames, int(np.ceil(keep * model.frame_rate)) + 1)

    def best(fn: Any) -> float:
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000.0)
        return round(min(times), 1)

    content = converter.content.encode(window, dim=model.content_dim, layer=model.info.content_layer, onnx=precision)
    f0, _ = converter._pitch(window, n_frames)
    aligned = model.align_content(content, n_frames)
    vol = model.volume(window, n_frames) if model.needs_volume else None
    return {
        "content_ms": best(lambda: converter.content.encode(
            window, dim=model.content_dim, layer=model.info.content_layer, onnx=precision)),
        "pitch_ms": best(lambda: converter._pitch(window, n_frames)),
        "synth_ms": best(lambda: model.infer(aligned, torch.from_numpy(f0)[None], noise_scale=converter.noise_scale,
                                             volume=vol, tail=tail)),
    }


def compare_outputs(label: str, outputs: dict[str, np.ndarray], rate: int) -> list[dict[str, Any]]:
    """Each engine's live output against torch's (tail synthesis): SNR and the speaker encoder's similarity."""
    from speaker_similarity import similarity

    reference = outputs["torch"]
    rows = []
    for engine, out in outputs.items():
        if engine == "torch":
            continue
        n = min(len(out), len(reference))
        a, b = out[:n], reference[:n]
        noise = float(np.sum((a - b) ** 2)) + 1e-12
        rows.append({
            "converter": label, "engine": engine,
            "snr_db": round(10 * np.log10(float(np.sum(b**2)) / noise), 1),
            "speaker_similarity": round(similarity(a, rate, b, rate), 3),
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    parser.add_argument("--seconds", type=float, default=20.0, help="speech per block size and for the file test")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("dsp", "tiny", "sovits", "rvc"),
        default=["dsp", "tiny", "sovits", "rvc"],
        help="dsp: the built-in voice changer; tiny: the tests' so-vits-svc; sovits/rvc: full-size models",
    )
    parser.add_argument("--f0", default="fcpe", help="pitch estimator of the neural models (default fcpe)")
    parser.add_argument("--max-blocks", type=int, default=30, help="timed blocks per block size")
    parser.add_argument("--file-seconds", type=float, default=20.0, help="speech in the file test")
    parser.add_argument("--session", action="store_true", help="also run live sessions (real time)")
    parser.add_argument(
        "--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
        help="neural models: whole (torch, the whole window synthesised, as before), torch (the kept tail), "
        "onnx, onnx-int8 (the default live engine on a CPU)",
    )
    parser.add_argument("--no-anchor", dest="anchor", action="store_false",
                        help="skip RVC's own realtime path (rvc 0.3.5) on the full-size RVC model")
    parser.add_argument("--quick", action="store_true", help="300 ms blocks, 8 s of speech, 10 blocks")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "voice_conversion.json")
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.seconds, args.max_blocks, args.file_seconds = [0.3], 8.0, 10, 8.0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print("synthesising speech with the shipped Piper voice...", file=sys.stderr)
    audio, rate = speech(args.seconds)
    results: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    models = {"dsp": dsp_converter, "tiny": tiny_sovits, "sovits": full_sovits, "rvc": full_rvc}
    with tempfile.TemporaryDirectory(prefix="snowai-svc-bench-") as tmp:
        for key in args.models:
            try:
                if key == "dsp":
                    label, converter, options = dsp_converter(args.device, Path(tmp))
                else:
                    label, converter, options = models[key](args.device, Path(tmp), args.f0)
            except Exception as exc:  # a converter that cannot be built must not stop the others
                print(f"  skipped {key}: {exc}", file=sys.stderr)
                continue
            in_rate = int(getattr(converter, "input_rate", 0) or rate)
            device_rate = 48000
            live = resample(audio, rate, device_rate)
            engines = args.engines if key != "dsp" else ["dsp"]
            variants = [(engine, converter) for engine in engines]
            if key == "rvc" and args.anchor:
                variants.append(("anchor", anchor_converter(converter, Path(tmp) / "full-rvc-v2.pth", args.f0)))
            outputs: dict[str, np.ndarray] = {}
            for engine, conv in variants:
                use_engine(conv, engine)
                print(f"measuring {label} [{engine}] (converts at {in_rate} Hz, devices at {device_rate} Hz)...",
                      file=sys.stderr)
                for block in args.blocks:
                    kept: list[np.ndarray] = []
                    timing = bench_blocks(conv, options, live, device_rate, block, args.max_blocks, kept)
                    row = {"converter": label, "engine": engine, **timing}
                    if key != "dsp":
                        row.update(stage_costs(conv, live, device_rate, block, options))
                    if args.session:
                        row.update(bench_session(conv, options, live, device_rate, block))
                    results.append(row)
                    if abs(block - 0.3) < 1e-6:
                        outputs[engine] = kept[0]
                    print(f"  {block * 1000:.0f} ms blocks: {row['infer_ms_median']:.1f} ms", file=sys.stderr)
            if key != "dsp" and "torch" in outputs:
                quality.extend(compare_outputs(label, outputs, device_rate))
            use_engine(converter, "torch")
            clip = audio[: int(args.file_seconds * rate)]
            files.append({"converter": label, **bench_file(converter, clip, rate, Path(tmp))})
            del converter

    header = (
        f"{'converter':<30} {'engine':<10} {'block':>6} {'infer ms':>9} {'p90':>7} {'RTF':>6} {'content':>8} "
        f"{'pitch':>6} {'synth':>6} {'algo ms':>8} {'total ms':>9} {'target':>7} {'ok':>3}"
    )
    if args.session:
        header += f" {'live ms':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        def stage(name: str, r: dict[str, Any] = r) -> str:
            return f"{r[name]:.0f}" if r.get(name) is not None else "-"

        line = (
            f"{r['converter'][:30]:<30} {r['engine']:<10} {r['block_ms']:>6.0f} {r['infer_ms_median']:>9.1f} "
            f"{r['infer_ms_p90']:>7.1f} {r['rtf']:>6.3f} {stage('content_ms'):>8} {stage('pitch_ms'):>6} "
            f"{stage('synth_ms'):>6} {r['algorithmic_latency_ms']:>8.0f} {r['total_latency_ms']:>9.0f} "
            f"{r['target_ms']:>7.0f} {'yes' if r['meets_target'] else 'no':>3}"
        )
        if args.session:
            live_ms = r.get("session_latency_ms")
            line += f" {live_ms if live_ms is not None else r.get('error', '?'):>8}"
        print(line)
    if quality:
        print()
        print(f"{'against torch, 300 ms blocks':<38} {'engine':<10} {'SNR dB':>7} {'speaker sim.':>13}")
        for q in quality:
            print(f"{q['converter']:<38} {q['engine']:<10} {q['snr_db']:>7.1f} {q['speaker_similarity']:>13.3f}")
    print()
    print(f"{'file conversion (torch)':<38} {'audio s':>8} {'took s':>7} {'RTF':>6}")
    for f in files:
        print(f"{f['converter']:<38} {f['audio_s']:>8.1f} {f['convert_s']:>7.2f} {f['file_rtf']:>6.3f}")

    data = {
        "machine": machine(
            torch_threads=torch.get_num_threads(),
            device=args.device,
            gpu=torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else "",
        ),
        "versions": {"torch": torch.__version__},
        "settings": {
            "blocks": args.blocks,
            "speech_seconds": args.seconds,
            "max_blocks": args.max_blocks,
            "file_seconds": args.file_seconds,
            "neural_f0": args.f0,
            "device_block_frames": DEVICE_BLOCK,
            "presets": {k: list(v) for k, v in PRESETS.items()},
        },
        "realtime": results,
        "files": files,
        "quality_vs_torch": quality,
        "summary": summary_of(results),
    }
    write_results(args.json, data)
    return 0


def summary_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Real-time factors at 300 ms blocks of the full-size models (None when not run)."""

    def rtf(label: str, engine: str) -> float | None:
        row = next(
            (r for r in results if r["converter"] == label and r["engine"] == engine and round(r["block_ms"]) == 300),
            None,
        )
        return row["rtf"] if row else None

    # the studio's default live engine on the CPU ("auto": int8 ONNX Runtime, tail synthesis)
    return {
        "rvc_v2_full_rtf_300ms": rtf("RVC v2 40k, full size", "onnx-int8"),
        "sovits_41_full_rtf_300ms": rtf("so-vits-svc 4.1, full size", "onnx-int8"),
        "anchor_rvc_rtf_300ms": rtf("RVC v2 40k, full size", "anchor"),
        "rvc_v2_full_rtf_300ms_torch": rtf("RVC v2 40k, full size", "torch"),
        "sovits_41_full_rtf_300ms_torch": rtf("so-vits-svc 4.1, full size", "torch"),
        "rvc_v2_full_rtf_300ms_whole_window": rtf("RVC v2 40k, full size", "whole"),
        "sovits_41_full_rtf_300ms_whole_window": rtf("so-vits-svc 4.1, full size", "whole"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
