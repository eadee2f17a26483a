"""``snowai-studio``: with no arguments the window opens; subcommands do batch work in a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from snowai_studio import __version__
from workers.errors import describe_exception

log = logging.getLogger(__name__)

#: Each subcommand module offers ``add_parser(subparsers)``, which sets ``func`` (args -> exit code).
SUBCOMMAND_MODULES: list[str] = [
    "workers.models.cli",
    "workers.matting.cli",
    "workers.face_swap.cli",
    "workers.assistant.cli",
    "workers.voice_conversion.cli",
    "workers.live.cli",
    "workers.voice_conversion.training.cli",
    "workers.api.cli",
]


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show the compute device, the studio's folders and the audio/camera devices")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from workers import compute, paths
    from workers.media.devices import devices_summary
    from workers.settings import Settings

    settings = Settings.load()
    info = compute.probe()
    data = {
        "version": __version__,
        "compute": info.label(),
        "runtimes": info.runtimes,
        "devices": devices_summary(),
        "config": str(Settings.path()),
        "models": str(settings.models_dir()),
        "logs": str(paths.log_dir()),
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(len(k) for k in data)
        for key, value in data.items():
            if isinstance(value, dict):
                value = "; ".join(f"{k} {v}" for k, v in value.items()) or "none installed"
            print(f"{key:<{width}}  {value}")
    return 0


def _run_self_test(args: argparse.Namespace) -> int:
    from workers.selftest import run_cli

    return run_cli(json_output=args.self_test_json, version=__version__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snowai-studio",
        description="SnowAI Studio: an offline AI studio for creators. With no command, the window opens.",
    )
    parser.add_argument("--version", action="version", version=f"SnowAI Studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print log messages to the terminal")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="load each shipped model, run one small inference per tool and print the timings (no window); "
        "exit 0 when all pass",
    )
    parser.add_argument("--json", dest="self_test_json", action="store_true", help="with --self-test: print JSON")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    gui = sub.add_parser("gui", help="open the studio's window (the default)")
    gui.set_defaults(func=None)
    _add_info(sub)
    import importlib

    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if args.self_test:
        func = _run_self_test
    if func is None:
        from snowai_studio.app import run_gui

        return run_gui([])
    from workers.logs import QUIET, setup_logging

    # Commands print their own sentences; tracebacks go to the log file unless --verbose.
    setup_logging(console_level=logging.INFO if args.verbose else QUIET)
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # a sentence, never a traceback; the traceback goes to the log
        log.exception("command %s failed", args.command)
        print(f"Error: {describe_exception(exc)}", file=sys.stderr)
        return 1
