"""``snowai-studio models ...``: list, download, import, verify and remove models from a terminal.

The studio's command line adds this with :func:`add_parser` and calls :func:`run`; it can also be
run alone as ``python -m workers.models.cli``. Failures print one sentence and return a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_store_argument, open_store, run_reporting
from workers.errors import UserError
from workers.models.manifest import TOOLS, load_manifest
from workers.models.store import SIZE_ONLY_NOTE, ModelStore, Status, human_size
from workers.progress import ProgressBar


def add_parser(subparsers: Any) -> None:
    """Add the ``models`` command (with its sub-commands) to an argparse sub-parser set."""
    parser = subparsers.add_parser("models", help="manage the models in the local store")
    _fill(parser)


def _fill(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("--manifest", type=Path, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="models_command", metavar="COMMAND")
    p = sub.add_parser("list", help="show every known model with its size and status")
    p.add_argument("--tool", choices=TOOLS, help="only the models of one tool")
    p = sub.add_parser("download", help="download a model (the only command that uses the network)")
    p.add_argument("model_id", metavar="ID")
    p = sub.add_parser("import", help="import your own model file or folder")
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--tool", default=None, choices=TOOLS, help="the tool it is for (default: told from the file)")
    p.add_argument("--name", default=None)
    p = sub.add_parser("verify", help="re-check the checksums of one or every installed model")
    p.add_argument("model_id", nargs="?", metavar="ID")
    p = sub.add_parser("remove", help="delete a model from the store")
    p.add_argument("model_id", metavar="ID")
    p = sub.add_parser("get-started", help="download a tool's recommended models in one step")
    p.add_argument("tool", metavar="TOOL", help="face_swap, matting, assistant or voice_conversion")
    p.add_argument("--yes", action="store_true", help="download without asking")
    parser.set_defaults(func=run)


def _store(args: argparse.Namespace) -> ModelStore:
    manifest_path = getattr(args, "manifest", None)
    return open_store(args, load_manifest(manifest_path) if manifest_path else None)


def byte_progress(label: str, stream: TextIO) -> ProgressBar:
    """A progress bar that shows a percentage and sizes (downloads, imports, verification)."""

    def detail(done: int, total: int) -> str:
        frac = done / total if total else 0.0
        return f"{frac * 100:5.1f}% {human_size(done)}/{human_size(total)}"

    return ProgressBar(label, stream, detail=detail)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed ``models`` command; returns the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    command = getattr(args, "models_command", None)
    if not command:
        err.write("Choose a models command: list, download, get-started, import, verify or remove.\n")
        return EXIT_USAGE
    return run_reporting(
        f"models {command}",
        lambda: _COMMANDS[command](_store(args), args, out, err),
        err,
        cancelled="Cancelled.\n",
        interrupted="\nCancelled; run the same command again to resume.\n",
    )


def _cmd_list(store: ModelStore, args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    rows = [("ID", "TOOL", "SIZE", "STATUS")]
    footnote = False
    for st in store.states():
        if args.tool and st.model.tool != args.tool:
            continue
        status = st.status.value
        if st.model.size_only:
            status += "*"
            footnote = True
        if st.status is Status.SHIPPED_MISSING and st.pip_hint:
            status += f" ({st.pip_hint})"
        label = st.model.id + (" [yours]" if st.model.user else "")
        rows.append((label, st.model.tool, human_size(st.model.size), status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        out.write(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}\n")
    usage = store.disk_usage()
    out.write(f"\nStore: {store.root} — {usage.summary()} Nothing is downloaded unless you ask.\n")
    if footnote:
        out.write(f"* has a file that {SIZE_ONLY_NOTE}.\n")
    return EXIT_OK


def _cmd_download(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.models.download import download_model  # the network code loads only here

    model = store.get(args.model_id)
    bar = byte_progress(model.id, err)
    try:
        state = download_model(store, model.id, progress=bar)
    finally:
        bar.close()
    out.write(f"{model.name}: {state.message}\n")
    if model.size_only:
        out.write(f"Note: a file of this model {SIZE_ONLY_NOTE}.\n")
    return EXIT_OK if state.usable else EXIT_FAILED


def _cmd_import(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    name, kind, companions = args.name, None, ()
    tool = args.tool
    if tool is None:  # told from the file itself (one sentence when it is not a model)
        from workers.models.detect import detect_model

        detection = detect_model(args.path)
        if detection.tool is None:
            raise UserError(f"{detection.summary()} Give it with --tool ({', '.join(TOOLS)}).")
        out.write(f"{detection.summary()}\n")
        tool, kind, companions = detection.tool, detection.kind, detection.companions
        name = name or detection.name
    bar = byte_progress("import", err)
    try:
        model = store.import_file(args.path, tool, name, kind=kind, companions=companions, progress=bar)
    finally:
        bar.close()
    out.write(f"Imported {model.name} as {model.id} ({model.kind}) into {store.model_dir(model.id)}.\n")
    return EXIT_OK


def _cmd_verify(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.model_id:
        ids = [store.get(args.model_id).id]
    else:
        ids = [st.model.id for st in store.states() if st.usable]
        if not ids:
            out.write("No model is installed, so there is nothing to verify.\n")
            return EXIT_OK
    failed = False
    for model_id in ids:
        bar = byte_progress(f"verify {model_id}", err)
        try:
            report = store.verify(model_id, progress=bar)
        finally:
            bar.close()
        out.write(report.summary() + "\n")
        failed = failed or not report.ok
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_remove(store: ModelStore, args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    model = store.get(args.model_id)
    freed = store.remove(model.id)
    out.write(f"Removed {model.name} ({human_size(freed)} freed).\n")
    return EXIT_OK


#: Names a creator may type for a tool, besides its id.
TOOL_ALIASES = {
    "face-swap": "face_swap",
    "face": "face_swap",
    "background": "matting",
    "background-removal": "matting",
    "remove-bg": "matting",
    "voice": "voice_conversion",
    "voice-conversion": "voice_conversion",
    "svc": "voice_conversion",
}


def _cmd_get_started(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.models import get_started

    tool = TOOL_ALIASES.get(args.tool.lower(), args.tool.lower().replace("-", "_"))
    plan = get_started.plan(store, tool)
    out.write(f"{plan.tool_name}: {plan.summary}\n")
    for item in plan.items:
        mark = "ready" if item.ready else item.status_text
        out.write(f"  {item.model.name} [{mark}]\n    {item.gives} Licence: {item.model.licence}.\n")
        if item.model.access and not item.ready:
            out.write(f"    {item.model.access}\n")
    out.write(plan.space_sentence() + "\n")
    if plan.complete:
        return EXIT_OK
    plan.check_space()
    if not args.yes:
        if not sys.stdin.isatty():
            out.write("Nothing was downloaded; run again with --yes to get them.\n")
            return EXIT_OK
        answer = input(f"Download {human_size(plan.to_fetch)} now? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            out.write("Nothing was downloaded.\n")
            return EXIT_OK
    bar = byte_progress(f"get-started {tool}", err)
    try:
        after = get_started.fetch(store, tool, progress=bar)
    finally:
        bar.close()
    names = ", ".join(i.model.name for i in after.items)
    out.write(f"Ready: {names}.\n")
    if get_started.choices(after):
        from workers.settings import Settings

        settings = Settings.load()
        get_started.apply_choices(settings, after)
        settings.save()
        out.write(f"{plan.tool_name} uses them from now on (saved in {Settings.path()}).\n")
    return EXIT_OK


_COMMANDS = {
    "list": _cmd_list,
    "download": _cmd_download,
    "get-started": _cmd_get_started,
    "import": _cmd_import,
    "verify": _cmd_verify,
    "remove": _cmd_remove,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-models", description="Manage SnowAI Studio's models.")
    _fill(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
