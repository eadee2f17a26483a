"""``snowai-studio live``: the face swap and the voice conversion together, from a terminal.

    snowai-studio live [--camera DEV|FILE] [--microphone DEV|FILE] [--face PHOTO...] [--voice MODEL]
        [--pitch N] [--formant N] [--virtual-camera] [--virtual-microphone] [--monitor [DEV]]
        [--record OUT.mp4] [--seconds N] [--offset MS] [--no-noise-suppression] [--no-gate]
    snowai-studio live --measure-sync [--face PHOTO...] [--voice MODEL] [--seconds N] [--json]

The camera is a device number, a video file (looped) or ``test-pattern``; the microphone a device
name (or part of one, or its number) or a sound file (looped). Without ``--face`` the picture goes
out unswapped; without ``--voice`` the built-in voice changer converts the voice. It runs for
``--seconds`` or until Ctrl+C, with the measurements on stderr. ``--measure-sync`` streams flashes
and voiced bursts through fake devices and the same path and prints each stream's latency and the
residual offset.

When the virtual camera or the virtual microphone cannot be had, one sentence says how to get it
and the other stream keeps going. Every failure is one sentence on stderr and exit code 1. No Qt here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from workers.cli import EXIT_OK, EXIT_USAGE, add_store_argument, open_store, run_reporting
from workers.errors import UserError
from workers.live.options import LiveOptions
from workers.media.microphone import SOUND_FILE_SUFFIXES

#: Device rate and block of the live microphone (10 ms blocks).
RATE = 48000
MIC_BLOCK = 480


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "live",
        help="face swap on the camera and voice conversion on the microphone together, as a virtual camera "
        "and a virtual microphone",
        description="Go live: your swapped face and your converted voice, in sync, as a virtual camera and "
        "the virtual microphone 'SnowAI Microphone'.",
    )
    _fill(parser)


def _fill(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("devices")
    io.add_argument("--camera", default="0", metavar="DEV|FILE", help="camera number, video file or test-pattern")
    io.add_argument("--microphone", default=None, metavar="DEV|FILE", help="microphone name or number, or a sound file")
    io.add_argument("--virtual-camera", action="store_true", help="send the picture to the virtual camera")
    io.add_argument("--virtual-microphone", action="store_true", help="send the voice to 'SnowAI Microphone'")
    io.add_argument("--monitor", nargs="?", const="", default=None, metavar="DEV", help="hear the voice on a speaker")
    io.add_argument("--record", default=None, metavar="OUT.mp4", help="record what goes out (picture and voice)")
    io.add_argument("--seconds", type=float, default=None, metavar="N", help="stop after N seconds (default: Ctrl+C)")
    face = parser.add_argument_group("face and voice")
    face.add_argument("--face", nargs="+", default=[], metavar="PHOTO", help="photos of the face to put on yours")
    face.add_argument("--engine", choices=("auto", "insightface", "classic"), default="auto", help="face engine")
    face.add_argument("--no-mark", action="store_true", help="leave out the visible 'AI-generated' mark")
    face.add_argument("--voice", default="", metavar="MODEL", help="voice model (default: the built-in voice changer)")
    face.add_argument("--pitch", type=float, default=0.0, metavar="N", help="pitch shift in semitones")
    face.add_argument("--formant", type=float, default=0.0, metavar="N", help="formant shift (built-in changer)")
    sound = parser.add_argument_group("voice processing and sync")
    sound.add_argument("--block", type=float, default=None, metavar="S", help="voice block in seconds (default 0.1)")
    sound.add_argument("--no-noise-suppression", action="store_true", help="turn RNNoise off")
    sound.add_argument("--no-gate", action="store_true", help="turn the noise gate off")
    sound.add_argument("--gate-db", type=float, default=None, metavar="DB", help="noise gate threshold (dBFS)")
    sound.add_argument("--passthrough", action="store_true", help="send the voice unconverted")
    sound.add_argument("--offset", type=float, default=0.0, metavar="MS", help="voice after picture, milliseconds")
    sound.add_argument("--measure-sync", action="store_true", help="flash-and-click measurement through fake devices")
    sound.add_argument("--json", action="store_true", help="with --measure-sync: print JSON")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.seconds is not None and args.seconds <= 0:
        err.write("--seconds must be a positive number.\n")
        return EXIT_USAGE
    body = (lambda: _measure(args, out, err)) if args.measure_sync else (lambda: _live(args, out, err))
    return run_reporting("live", body, err, cancelled="\nStopped.\n", interrupted="\nStopped.\n")


def options_from_args(args: argparse.Namespace) -> LiveOptions:
    options = LiveOptions(
        faces=[str(p) for p in args.face],
        voice=str(args.voice or ""),
        pitch=float(args.pitch),
        formant=float(args.formant),
        noise_suppression=not args.no_noise_suppression,
        noise_gate=not args.no_gate,
        passthrough=bool(args.passthrough),
        virtual_camera=bool(args.virtual_camera),
        virtual_microphone=bool(args.virtual_microphone),
        offset_ms=float(args.offset),
    )
    if args.gate_db is not None:
        options.gate_db = float(args.gate_db)
    if args.block is not None:
        if args.block <= 0:
            raise UserError(f"--block must be a positive number of seconds, not {args.block}.")
        options.block_seconds = float(args.block)
    return options


def _engines(args: argparse.Namespace, options: LiveOptions, err: TextIO) -> tuple[Any, Any]:
    from workers.live.engines import load_face, load_voice

    store = open_store(args)
    face = None
    if options.faces:
        from workers.face_swap.cli import show_notice_once

        show_notice_once(err)
        with contextlib.redirect_stdout(err):
            face = load_face(options.faces, store, engine=args.engine, mark=not args.no_mark)
        if getattr(face, "warning", None):
            err.write(f"{face.warning}\n")
    converter = load_voice(options.voice, store, pitch=options.pitch, formant=options.formant)
    return face, converter


def make_camera(spec: str) -> Any:
    from workers.media.camera import make_frame_source

    return make_frame_source(spec, 1280, 720, 30)


def make_microphone(spec: str | None) -> Any:
    """A sound file (by its suffix; looped like a device) or a microphone at 48 kHz in 10 ms blocks."""
    from workers.media.audio import AudioInput, find_device
    from workers.media.microphone import FileMicrophone

    if spec and Path(spec).suffix.lower() in SOUND_FILE_SUFFIXES:
        return FileMicrophone(spec, RATE, MIC_BLOCK)
    device = find_device(int(spec) if spec and spec.isdigit() else spec, "input") if spec else None
    return AudioInput(device, RATE, MIC_BLOCK)


def _monitor(spec: str | None, block_seconds: float) -> Any:
    if spec is None:
        return None
    from workers.media.audio import AudioOutput, find_device

    device = find_device(int(spec) if spec.isdigit() else spec, "output") if spec else None
    buffer = max(0.2, 2.0 * block_seconds + 0.05)  # two blocks: a block is written at once
    return AudioOutput(device, RATE, MIC_BLOCK, buffer_seconds=buffer, drop_when_full=True)


def _live(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.live.session import LiveSession

    options = options_from_args(args)
    face, converter = _engines(args, options, err)
    session = LiveSession(
        options,
        camera=make_camera(args.camera),
        microphone=make_microphone(args.microphone),
        face=face,
        converter=converter,
        monitor=_monitor(args.monitor, options.block_seconds),
        on_warning=lambda message: err.write(f"{message}\n"),
    )
    session.start()
    saved = None
    start = time.monotonic()
    try:
        if args.record:
            target = session.start_recording(args.record)
            err.write(f"Recording to {target}.\n")
        err.write(_going(session) + " Press Ctrl+C to stop.\n")
        last = 0.0
        while session.running and (args.seconds is None or time.monotonic() - start < args.seconds):
            if session.video_error and session.audio_error:
                break
            time.sleep(0.05)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                err.write("\r" + stats_line(session.stats()))
                err.flush()
    finally:
        stats = session.stats()
        saved = session.stop_recording()
        session.stop()
        if face is not None:
            face.close()
    err.write("\n")
    out.write(f"Live for {time.monotonic() - start:.1f} s. {stats_line(stats)}\n")
    if saved:
        out.write(f"Recorded {saved}\n")
    return EXIT_OK


def _going(session: Any) -> str:
    stats = session.stats()
    where = [w for w in (stats.get("virtual_camera"), stats.get("virtual_microphone")) if w]
    return f"Live{' on ' + ' and '.join(where) if where else ''}."


def stats_line(stats: dict[str, Any]) -> str:
    """ "picture 95 ms · voice 180 ms · picture held 85 ms · 29.8 fps · in -23 dBFS · out -21 dBFS"."""
    parts = [f"picture {float(stats.get('video_ms', 0)):.0f} ms", f"voice {float(stats.get('audio_ms', 0)):.0f} ms"]
    if stats.get("video_delay_ms"):
        parts.append(f"picture held {float(stats['video_delay_ms']):.0f} ms")
    if stats.get("audio_delay_ms"):
        parts.append(f"voice held {float(stats['audio_delay_ms']):.0f} ms")
    if stats.get("fps"):
        parts.append(f"{float(stats['fps']):.1f} fps")
    parts.append(f"in {float(stats.get('input_dbfs', -120)):.0f} dBFS")
    parts.append(f"out {float(stats.get('output_dbfs', -120)):.0f} dBFS")
    if stats.get("muted"):
        parts.append("muted")
    if stats.get("passthrough"):
        parts.append("passthrough")
    return " · ".join(parts)


def _measure(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.live.measure import run_flash_click

    options = options_from_args(args)
    face, converter = _engines(args, options, err)
    try:
        run = run_flash_click(options, face=face, converter=converter, seconds=args.seconds or 6.0)
    finally:
        if face is not None:
            face.close()
    summary = run.measurement.summary()
    if args.json:
        out.write(json.dumps({"sync": summary, "stats": run.stats}, indent=2) + "\n")
        return EXIT_OK
    if not summary["events"]:
        raise UserError("No flash and burst pair came through; the measurement needs a few more seconds.")
    out.write(
        f"{summary['events']} flashes and bursts: picture {summary['video_latency_ms']:.0f} ms, voice "
        f"{summary['audio_latency_ms']:.0f} ms, voice after picture {summary['residual_ms']:+.1f} ms "
        f"(worst {summary['worst_residual_ms']:.1f} ms).\n"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-live", description="Face swap and voice conversion together, live.")
    _fill(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
