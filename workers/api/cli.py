"""``snowai-studio serve [--host 127.0.0.1] [--port 8765] [--api-key KEY]``: the local API.

Other programs (OBS scripts, Streamer.bot, Discord bots, anything that speaks the OpenAI API) use the
studio's models through it: speech to text, text to speech, chat, background removal, face swap and
voice conversion. Only this computer can reach it unless ``--host`` says otherwise, and then only
with an API key.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from workers.api.options import API_KEY_ENV, DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT
from workers.cli import add_store_argument, run_reporting


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("snowai-studio")
    except PackageNotFoundError:
        return "0"


def add_parser(subparsers: Any) -> None:
    """Add the ``serve`` command to an argparse sub-parser set."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the studio's models to other programs over HTTP (OpenAI-compatible)",
        description="Serve the studio's models over HTTP: OpenAI-compatible /v1/models, /v1/audio/transcriptions, "
        "/v1/audio/translations, /v1/audio/speech and /v1/chat/completions, and /v1/images/remove-background, "
        "/v1/images/face-swap and /v1/audio/voice-conversion. The model name 'default' means the studio's "
        "default for the task.",
    )
    fill(parser)


def fill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on (default {DEFAULT_HOST}: this computer only; any other "
        "address needs --api-key)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT}; 0: a free one)"
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"the key clients must send as 'Authorization: Bearer KEY' (or set {API_KEY_ENV})",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"the largest upload accepted (default {DEFAULT_MAX_UPLOAD_MB} MB)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default=None, help="compute device (default: from the settings)"
    )
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed ``serve`` command; returns the exit code."""
    from workers.api.server import serve

    out, err = out or sys.stdout, err or sys.stderr
    key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV, "")

    def body() -> int:
        return serve(
            args.host,
            args.port,
            api_key=key.strip(),
            store_root=getattr(args, "store", None),
            device=args.device,
            max_upload_mb=args.max_upload_mb,
            out=out,
        )

    return run_reporting("serve", body, err, cancelled="\nThe API server stopped.\n")


def main(argv: list[str] | None = None) -> int:
    import logging

    from workers.logs import setup_logging

    parser = argparse.ArgumentParser(prog="snowai-serve", description="Serve the studio's models over HTTP.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print log messages to the terminal")
    fill(parser)
    args = parser.parse_args(argv)
    setup_logging(console_level=logging.INFO if args.verbose else logging.WARNING)
    return run(args)
