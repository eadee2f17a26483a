"""The size of a PyInstaller one-folder bundle per package, biggest first.

    python installer/bundle_sizes.py dist/cpu/SnowAI-Studio [--save sizes.json]
    python installer/bundle_sizes.py --compare before.json after.json     (a Markdown table)

Each file under ``_internal/`` counts for the folder it lies in at the top (``torch/``,
``PySide6/``...); ``<name>.libs`` folders (the shared libraries a wheel carries) count for
``<name>``, ``*.dist-info`` folders for "(package metadata)", and files lying at the top for
"(Python and shared libraries)".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

MIB = 1024 * 1024


def group_of(relative: Path) -> str:
    parts = relative.parts
    if len(parts) < 2 or parts[0] != "_internal":
        return "(programs)"
    if len(parts) == 2:
        return "(Python and shared libraries)"
    top = parts[1]
    if top.endswith(".dist-info"):
        return "(package metadata)"
    if top.endswith(".libs"):
        top = top[: -len(".libs")]
    return top


def measure(bundle: Path) -> dict[str, dict[str, int]]:
    """Bytes and files per package (symbolic links are not counted twice)."""
    sizes: dict[str, dict[str, int]] = defaultdict(lambda: {"bytes": 0, "files": 0})
    for path in bundle.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        entry = sizes[group_of(path.relative_to(bundle))]
        entry["bytes"] += path.stat().st_size
        entry["files"] += 1
    return dict(sorted(sizes.items(), key=lambda item: -item[1]["bytes"]))


def table(sizes: dict[str, dict[str, int]]) -> str:
    total = sum(entry["bytes"] for entry in sizes.values())
    files = sum(entry["files"] for entry in sizes.values())
    lines = [f"{'package':<36} {'MiB':>9} {'files':>7}"]
    lines += [f"{name:<36} {entry['bytes'] / MIB:>9.1f} {entry['files']:>7}" for name, entry in sizes.items()]
    lines.append(f"{'total':<36} {total / MIB:>9.1f} {files:>7}")
    return "\n".join(lines)


def compare(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], top: int = 25) -> str:
    names = sorted(set(before) | set(after), key=lambda n: -max(before.get(n, {}).get("bytes", 0), 0))
    shown = names[:top]
    rest = names[top:]

    def mib(sizes: dict[str, dict[str, int]], keys: list[str]) -> float:
        return sum(sizes.get(k, {}).get("bytes", 0) for k in keys) / MIB

    lines = ["| package | before (MiB) | after (MiB) | change |", "| --- | ---: | ---: | ---: |"]
    for name in shown:
        b, a = mib(before, [name]), mib(after, [name])
        lines.append(f"| {name} | {b:.1f} | {a:.1f} | {a - b:+.1f} |")
    if rest:
        b, a = mib(before, rest), mib(after, rest)
        lines.append(f"| {len(rest)} others | {b:.1f} | {a:.1f} | {a - b:+.1f} |")
    b, a = mib(before, names), mib(after, names)
    files_b = sum(e["files"] for e in before.values())
    files_a = sum(e["files"] for e in after.values())
    lines.append(f"| **total** ({files_b} → {files_a} files) | **{b:.1f}** | **{a:.1f}** | **{a - b:+.1f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, help="the bundle folder (SnowAI-Studio)")
    parser.add_argument("--save", type=Path, help="also write the sizes as JSON")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="two saved JSON files")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text(encoding="utf-8")) for p in args.compare)
        print(compare(before, after))
        return 0
    if args.bundle is None or not args.bundle.is_dir():
        parser.error("give the bundle folder, or --compare BEFORE AFTER")
    sizes = measure(args.bundle)
    if args.save:
        args.save.write_text(json.dumps(sizes, indent=1), encoding="utf-8")
    print(table(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
