"""``snowai-studio svc``: voice conversion from a terminal, on files or live.

    snowai-studio svc -i IN [IN...] -o OUT [--model PATH] [--config PATH] [--index PATH]
        [--pitch N] [--formant N] [--f0 fcpe|crepe-full|crepe-tiny|harvest] [--speaker N]
    snowai-studio svc --realtime [--input DEV] [--output DEV] [--block S] [--seconds N]
    snowai-studio svc --list-devices

Without ``--model`` the built-in voice changer is used (pitch and formant shift, no model file).
A model is a so-vits-svc folder (config.json and G_*.pth), a G_*.pth (its config.json beside it or
named by ``--config``), an RVC .pth, or the id of a model imported into the model store.

File mode: ``OUT`` is a file for one input (its format by the suffix: .wav, .flac, .ogg, .mp3) or
a folder for several; an output never overwrites an input. A progress bar is drawn on stderr.

Realtime mode: ``--input`` is a microphone (a device name, part of one, or its number) and
``--output`` a speaker or a virtual audio cable; either may also be a sound file (the file is
played as the microphone, the converted voice is written to the output file). It runs for
``--seconds`` or until Ctrl+C, with the measurements on stderr.

Every failure is one sentence on stderr and exit code 1; a wrong combination of options is exit
code 2; Ctrl+C is 130. No Qt here.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_store_argument, open_store, run_reporting
from workers.errors import UserError
from workers.voice_conversion.options import F0_METHODS, PRESETS, VoiceConversionOptions


def sink_buffer_seconds(options: VoiceConversionOptions) -> float:
    """How much audio a live output holds: two blocks and a crossfade, and some slack (as the studio's)."""
    return 2.0 * options.block_seconds + options.crossfade_seconds + 0.05

F0_CHOICES = (*F0_METHODS, "crepe")
FORMATS = ("wav", "flac", "ogg", "mp3")
SOUND_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aif", ".aiff")


def add_parser(subparsers: Any) -> None:
    """Add the ``svc`` command to an argparse sub-parser set."""
    parser = subparsers.add_parser(
        "svc",
        help="voice conversion (so-vits-svc, RVC or the built-in voice changer) on files or live",
        description="Convert a voice with a so-vits-svc or RVC model, or with the built-in voice changer "
        "(no model needed): sound files, or a microphone live to a speaker or a virtual audio cable.",
    )
    _fill(parser)


def _fill(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("files and devices")
    io.add_argument(
        "-i",
        "--input",
        dest="inputs",
        nargs="+",
        metavar="IN",
        help="sound files to convert (WAV, FLAC, MP3, OGG); with --realtime: the microphone (a name, part of "
        "one, or its number), or a sound file played as the microphone",
    )
    io.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the converted file, or a folder for several inputs; with --realtime: the speaker or virtual audio "
        "cable, or a .wav file to record to",
    )
    io.add_argument("--format", choices=FORMATS, default=None, help="output format when OUT is a folder (default wav)")
    voice = parser.add_argument_group("voice")
    voice.add_argument(
        "--model",
        default="",
        metavar="PATH|ID",
        help="so-vits-svc folder or G_*.pth, RVC .pth, or an imported model id (default: the built-in voice changer)",
    )
    voice.add_argument("--config", default="", metavar="PATH", help="so-vits-svc config.json, when not beside G_*.pth")
    voice.add_argument(
        "--encoder", default="", metavar="ID|PATH",
        help="content encoder: a model id or a folder in transformers HuBERT format (default: the model store's)",
    )
    voice.add_argument("--index", default="", metavar="PATH", help="RVC .index or so-vits-svc cluster model")
    voice.add_argument("--index-ratio", type=float, default=None, metavar="R", help="0..1, how much the index replaces")
    voice.add_argument("--pitch", type=float, default=0.0, metavar="N", help="pitch shift in semitones (e.g. 12, -5)")
    voice.add_argument("--formant", type=float, default=0.0, metavar="N", help="formant shift in semitones (built-in)")
    voice.add_argument("--auto-pitch", action="store_true", help="move the voice into the model's range first")
    voice.add_argument("--f0", choices=F0_CHOICES, default=None, help="pitch estimator (default fcpe)")
    voice.add_argument("--speaker", default=None, metavar="N", help="speaker number or name (multi-speaker models)")
    voice.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="compute device (default cpu)")
    live = parser.add_argument_group("realtime")
    live.add_argument("--realtime", action="store_true", help="convert the microphone live")
    live.add_argument("--list-devices", action="store_true", help="list microphones and outputs, then exit")
    live.add_argument("--preset", choices=tuple(PRESETS), default=None, help="block, crossfade and context together")
    live.add_argument("--block", type=float, default=None, metavar="S", help="block length in seconds (e.g. 0.25)")
    live.add_argument("--crossfade", type=float, default=None, metavar="S", help="crossfade at block joins, seconds")
    live.add_argument("--extra", type=float, default=None, metavar="S", help="context before each block, seconds")
    live.add_argument("--silence-db", type=float, default=None, metavar="DB", help="quieter blocks stay silent")
    live.add_argument("--input-gain", type=float, default=0.0, metavar="DB", help="microphone gain in dB")
    live.add_argument("--output-gain", type=float, default=0.0, metavar="DB", help="output gain in dB")
    live.add_argument("--passthrough", action="store_true", help="pass the microphone through unconverted")
    live.add_argument("--samplerate", type=int, default=None, metavar="HZ", help="device rate (default: the device's)")
    live.add_argument("--seconds", type=float, default=None, metavar="N", help="stop after N seconds (default: Ctrl+C)")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed ``svc`` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.list_devices:
        return run_reporting("svc", lambda: _list_devices(out), err, cancelled="\n")
    if args.realtime:
        return run_reporting(
            "svc", lambda: _run_realtime(args, out, err), err, cancelled="\nStopped.\n", interrupted="\nStopped.\n"
        )
    if not args.inputs or not args.output:
        err.write("Give the sound files with -i and where to save them with -o (or use --realtime).\n")
        return EXIT_USAGE
    return run_reporting(
        "svc", lambda: _run_files(args, out, err), err, cancelled="\nCancelled; the files saved so far are kept.\n"
    )


# ---- options ------------------------------------------------------------------------------------------
def options_from_args(args: argparse.Namespace) -> VoiceConversionOptions:
    """The conversion options a command line asks for (the defaults for what it leaves out)."""
    options = VoiceConversionOptions()
    if args.preset:
        options.preset = args.preset
        options.block_seconds, options.crossfade_seconds, options.extra_seconds = PRESETS[args.preset]
    model = str(args.model or "")
    options.model = model
    if args.config:
        # The loader reads ``config`` beside ``model`` (a so-vits-svc config.json kept elsewhere).
        options.config = _check_config(model, str(args.config))
    options.index = str(args.index or "")
    if args.index_ratio is not None:
        options.index_ratio = min(1.0, max(0.0, float(args.index_ratio)))
    options.pitch = float(args.pitch)
    options.formant = float(args.formant)
    options.auto_pitch = bool(args.auto_pitch)
    if args.f0:
        options.f0_method = "crepe-full" if args.f0 == "crepe" else args.f0
    if args.speaker is not None and str(args.speaker).strip().isdigit():
        options.speaker = int(args.speaker)  # a name is looked up in the model once it is loaded
    for name, attr in (("block", "block_seconds"), ("crossfade", "crossfade_seconds"), ("extra", "extra_seconds")):
        value = getattr(args, name)
        if value is not None:
            if value < 0 or (name == "block" and value <= 0):
                raise UserError(f"--{name} must be a positive number of seconds, not {value}.")
            setattr(options, attr, float(value))
    if args.silence_db is not None:
        options.silence_db = float(args.silence_db)
    options.input_gain_db = float(args.input_gain)
    options.output_gain_db = float(args.output_gain)
    options.passthrough = bool(args.passthrough)
    return options


def _check_config(model: str, config: str) -> str:
    """A so-vits-svc config.json given apart from its G_*.pth."""
    cfg = Path(config).expanduser()
    if not cfg.is_file():
        raise UserError(f"The config file {cfg} was not found.")
    if not model:
        raise UserError("--config goes with --model (the so-vits-svc G_*.pth it describes).")
    return str(cfg)


def load_options_converter(args: argparse.Namespace, options: VoiceConversionOptions) -> Any:
    """Load the converter the options name (the model store from ``--store`` or the settings)."""
    from workers.voice_conversion.converter import load_converter

    device = args.device
    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:
            device = "cpu"
    encoder = str(getattr(args, "encoder", "") or "") or None
    converter = load_converter(options, store=open_store(args), device=device, content_encoder=encoder)
    speaker = getattr(args, "speaker", None)
    if speaker is not None and not str(speaker).strip().isdigit():
        if not options.model:
            raise UserError("--speaker names a voice of a model; the built-in voice changer has none.")
        converter.set_params(speaker=str(speaker).strip())
    return converter


def voice_label(options: VoiceConversionOptions, converter: Any) -> str:
    if not options.model:
        return "built-in voice changer"
    info = getattr(converter, "info", None)
    kind = getattr(info, "kind", "") or getattr(converter, "name", "")
    name = Path(options.model).name
    return f"{name} ({kind})" if kind else name


# ---- files ------------------------------------------------------------------------------------------------
def plan_outputs(inputs: list[Path], output: Path, fmt: str | None) -> list[tuple[Path, Path]]:
    """Input → output pairs: a file for one input (unless OUT is a folder), else files in the folder
    OUT; names that would overwrite an input or an earlier output get ``-2``, ``-3``..."""
    from workers.files import free_name, same_file

    for src in inputs:
        if not src.exists():
            raise UserError(f"The sound file {src} was not found.")
        if src.is_dir():
            raise UserError(f"{src} is a folder; give the sound files inside it.")
    into_folder = len(inputs) > 1 or output.is_dir() or (not output.suffix and not output.exists())
    if not into_folder:
        suffix = output.suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise UserError(
                f"{output.name} has no sound format the studio writes; end it with .wav, .flac, .ogg or .mp3."
            )
        target = output
        if same_file(target, inputs[0]):
            target = free_name(target.with_name(f"{target.stem}-converted{target.suffix}"), inputs[0])
        return [(inputs[0], target)]
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} is a file; with several inputs, -o must be a folder.")
    taken: set[Path] = set()
    pairs = []
    for src in inputs:
        suffix = f".{fmt or 'wav'}"
        candidate = output / f"{src.stem}-converted{suffix}"
        n = 2
        while candidate in taken or candidate.exists() or same_file(candidate, src):
            candidate = output / f"{src.stem}-converted-{n}{suffix}"
            n += 1
        taken.add(candidate)
        pairs.append((src, candidate))
    return pairs


def _run_files(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.progress import ProgressBar
    from workers.voice_conversion.files import convert_file, seconds_of

    inputs = [Path(p).expanduser() for p in args.inputs]
    pairs = plan_outputs(inputs, Path(args.output).expanduser(), args.format)
    options = options_from_args(args)
    converter = load_options_converter(args, options)
    label = voice_label(options, converter)
    failed: list[tuple[Path, str]] = []
    done = 0
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        bar = ProgressBar(f"svc {src.name}", err)
        start = time.perf_counter()
        try:
            written = convert_file(src, dst, converter, progress=lambda d, t, bar=bar: bar(int(d), int(t)))
        except UserError as exc:
            bar.close()
            if len(pairs) == 1:
                raise
            failed.append((src, str(exc)))
            continue
        finally:
            bar.close()
        took = time.perf_counter() - start
        seconds = seconds_of(written)
        rtf = f", {took / seconds:.2f}x real time" if seconds > 0 else ""
        out.write(f"Converted {src} → {written} ({seconds:.1f} s of audio in {took:.1f} s{rtf}; voice: {label}).\n")
        done += 1
    if not failed:
        return EXIT_OK
    err.write("Not converted:\n")
    for src, reason in failed:
        err.write(f"  {src}: {reason}\n")
    err.write(f"{len(failed)} of {len(pairs)} files could not be converted; {done} were saved.\n")
    return EXIT_FAILED


# ---- realtime -----------------------------------------------------------------------------------------------
def _is_sound_file(spec: str | None) -> bool:
    return bool(spec) and Path(str(spec)).suffix.lower() in SOUND_SUFFIXES


def _device_spec(spec: str | None) -> str | int | None:
    if spec is None or spec == "":
        return None
    return int(spec) if spec.isdigit() else spec


def open_realtime_devices(
    input_spec: str | None,
    output_spec: str | None,
    samplerate: int | None,
    blocksize: int = 1024,
    *,
    buffer_seconds: float = 0.6,
) -> tuple[Any, Any]:
    """The microphone and the output of a realtime run, opened: devices by name or number, or sound
    files (a file played as the microphone; the converted voice written to a file)."""
    from workers.media.audio import AudioInput, AudioOutput, find_device
    from workers.media.fakes import WavMicrophone, WavSink

    if _is_sound_file(input_spec):
        source: Any = WavMicrophone(str(input_spec), samplerate, blocksize, channels=1, paced=True)
    else:
        spec = _device_spec(input_spec)
        source = AudioInput(find_device(spec, "input") if spec is not None else None, samplerate, blocksize, 1)
    source.open()
    rate = int(source.samplerate)
    try:
        if _is_sound_file(output_spec):
            sink: Any = WavSink(Path(str(output_spec)).expanduser(), samplerate=rate, channels=1)
        else:
            spec = _device_spec(output_spec)
            device = find_device(spec, "output") if spec is not None else None
            sink = AudioOutput(
                device, rate, blocksize, channels=1, buffer_seconds=buffer_seconds, drop_when_full=True
            )
        sink.open()
    except BaseException:
        source.close()
        raise
    return source, sink


def _run_realtime(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.voice_conversion.realtime import BlockConverter, RealtimeSession

    if args.inputs and len(args.inputs) > 1:
        err.write("With --realtime, give one microphone (or one sound file) with --input.\n")
        return EXIT_USAGE
    if args.seconds is not None and args.seconds <= 0:
        err.write("--seconds must be a positive number.\n")
        return EXIT_USAGE
    options = options_from_args(args)
    converter = load_options_converter(args, options)
    input_spec = args.inputs[0] if args.inputs else None
    source, sink = open_realtime_devices(
        input_spec, args.output, args.samplerate, buffer_seconds=sink_buffer_seconds(options)
    )
    rate = int(source.samplerate)
    failure: list[BaseException] = []
    stats: dict[str, Any] = {}
    done = threading.Event()

    def make_block(samplerate: int | None = None) -> Any:
        return BlockConverter(
            converter,
            samplerate=int(samplerate or rate),
            block_seconds=options.block_seconds,
            crossfade_seconds=options.crossfade_seconds,
            extra_seconds=options.extra_seconds,
            silence_db=options.silence_db,
            passthrough=options.passthrough,
            input_gain_db=options.input_gain_db,
            output_gain_db=options.output_gain_db,
        )

    last_line = [0.0]

    def on_stats(snap: dict[str, Any]) -> None:
        stats.update(snap)
        now = time.monotonic()
        if now - last_line[0] >= 0.5:
            last_line[0] = now
            err.write("\r" + stats_line(stats))
            err.flush()

    def on_error(exc: BaseException) -> None:
        failure.append(exc)
        done.set()

    session = RealtimeSession(make_block, source, sink, on_stats=on_stats, on_error=on_error)
    label = voice_label(options, converter)
    where = args.output or "the default speaker"
    err.write(
        f"Converting {input_spec or 'the default microphone'} → {where} live at {rate} Hz with the {label} "
        f"({options.block_seconds * 1000:.0f} ms blocks). Press Ctrl+C to stop.\n"
    )
    start = time.monotonic()
    try:
        session.start()
        while not done.is_set() and session.running:  # a sound file as the microphone ends by itself
            if args.seconds is not None and time.monotonic() - start >= args.seconds:
                break
            done.wait(0.05)
    finally:
        try:
            session.stop()  # closes both devices
        finally:
            source.close()
            sink.close()
    err.write("\n")
    if failure:
        raise failure[0]
    took = time.monotonic() - start
    out.write(f"Converted {took:.1f} s live. {stats_line(stats)}\n")
    return EXIT_OK


def stats_line(stats: dict[str, Any]) -> str:
    """"inference 12 ms · latency 310 ms (algorithmic 290) · RTF 0.05 · in -23 dBFS · out -21 dBFS"."""
    if not stats:
        return "No audio was converted."
    parts = []
    if "infer_ms" in stats:
        parts.append(f"inference {float(stats['infer_ms']):.0f} ms")
    if "latency_ms" in stats:
        algo = stats.get("algorithmic_ms")
        extra = f" (algorithmic {float(algo):.0f})" if algo is not None else ""
        parts.append(f"latency {float(stats['latency_ms']):.0f} ms{extra}")
    if "rtf" in stats:
        parts.append(f"RTF {float(stats['rtf']):.2f}")
    if stats.get("dropped"):
        parts.append(f"{int(stats['dropped'])} blocks dropped")
    for key, name in (("input_dbfs", "in"), ("output_dbfs", "out")):
        if key in stats:
            parts.append(f"{name} {float(stats[key]):.0f} dBFS")
    return " · ".join(parts)


def _list_devices(out: TextIO) -> int:
    from workers.media.audio import audio_status, list_input_devices, list_output_devices

    status = audio_status()
    inputs, outputs = list_input_devices(), list_output_devices()
    if not inputs and not outputs:
        out.write(f"{status.message}\n")
        return EXIT_OK
    for title, devices in (("Microphones", inputs), ("Outputs (speakers, virtual audio cables)", outputs)):
        out.write(f"{title}:\n")
        for d in devices:
            default = " (default)" if d.is_default else ""
            api = f" [{d.hostapi}]" if d.hostapi else ""
            out.write(f"  {d.index:>3}  {d.name}{api}, {d.default_samplerate:.0f} Hz{default}\n")
        if not devices:
            out.write("  none\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-svc", description="Voice conversion on files or live.")
    _fill(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
