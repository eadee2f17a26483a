#!/usr/bin/env bash
# Refresh the lock files in requirements/: the exact version and sha256 hashes of every package the
# studio installs (Linux x86_64, CPython 3.11, the CPU build of torch), resolved from the ranges in
# pyproject.toml. scripts/setup.sh, CI and installer/build_linux.sh install only from these files.
#
#   bash scripts/lock.sh                  newest versions pyproject.toml admits, then the checks
#   bash scripts/lock.sh --keep           keep the current pins where they still fit (after editing
#                                         pyproject.toml: only new or changed packages move)
#   bash scripts/lock.sh --upgrade-package NAME [...]   move only these packages
#   bash scripts/lock.sh --no-check       rewrite the files only
#
# The checks: install .venv from the new lock (scripts/setup.sh --test), the import contracts, ruff
# and the whole test suite (scripts/test.sh), then build the bundle from this tree (with the new,
# uncommitted lock) and run its --self-test with no Python on PATH (installer/build_linux.sh
# --no-pack). Commit the lock files once they pass; `git diff requirements/` shows what moved.
#
# torch: the CPU build (torch==2.13.0+cpu) comes from $SNOWAI_TORCH_FIND_LINKS, a folder or page
# of wheels (default: /opt/wheels when it exists, else https://download.pytorch.org/whl/cpu/torch/).
# A pip constraints file named by $PIP_CONSTRAINT or /etc/xdg/pip/constraints.txt is honoured.
# The resolver is uv, pinned below and installed into a private folder (installer/build/lock-tool).
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9

mode=--upgrade
check=1
upgrade_packages=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) mode="" ;;
    --upgrade-package) mode=""; upgrade_packages+=(--upgrade-package "${2:?--upgrade-package needs a name}"); shift ;;
    --no-check) check=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

python=${PYTHON:-python3}
tool=installer/build/lock-tool
if [ "$("$tool/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  rm -rf "$tool"
  "$python" -m venv "$tool"
  "$tool/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
uv="$tool/bin/uv"

torch_links=${SNOWAI_TORCH_FIND_LINKS:-}
if [ -z "$torch_links" ]; then
  if [ -d /opt/wheels ]; then torch_links=/opt/wheels; else torch_links=https://download.pytorch.org/whl/cpu/torch/; fi
fi
constraints=()
for c in "${PIP_CONSTRAINT:-}" /etc/xdg/pip/constraints.txt; do
  if [ -n "$c" ] && [ -f "$c" ]; then constraints+=(--constraint "$c"); break; fi
done

# One resolution for everything (the studio and all the extras that CI and the installer use), then
# each lock file is that resolution cut down to what it needs, so that the files never disagree.
# uv reads no pip configuration: PyPI and the torch wheels are the only sources.
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_34 --generate-hashes --no-header
  --index-url https://pypi.org/simple --find-links "$torch_links" "${constraints[@]}")
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
[ -z "$mode" ] && [ -f requirements/all.txt ] && cp requirements/all.txt "$tmp/all.txt"
echo "resolving pyproject.toml (with the test and bundle extras)"
"$uv" pip compile pyproject.toml --extra test --extra bundle ${mode:+"$mode"} "${upgrade_packages[@]}" \
  "${common[@]}" -o "$tmp/all.txt" --quiet
for name in studio test bundle; do
  extra=()
  [ "$name" != studio ] && extra=(--extra "$name")
  "$uv" pip compile pyproject.toml "${extra[@]}" --constraint "$tmp/all.txt" "${common[@]}" \
    --no-annotate -o "$tmp/$name.txt" --quiet
done
"$uv" pip compile requirements/no-deps.in --no-deps "${common[@]}" --no-annotate -o "$tmp/no-deps.txt" --quiet

header() {
  printf '# %s\n' "$1" \
    "Written by scripts/lock.sh from pyproject.toml (Linux x86_64, CPython 3.11, CPU torch); do not edit." \
    "Install: pip install --require-hashes --no-deps -r $2 (scripts/setup.sh does it)."
  echo
}
header "The studio's exact dependencies with their hashes." requirements/studio.txt > requirements/studio.txt
header "The studio and its test tools." requirements/test.txt > requirements/test.txt
header "The studio and PyInstaller, for installer/build_linux.sh." requirements/bundle.txt > requirements/bundle.txt
header "Installed without dependencies (see no-deps.in)." requirements/no-deps.txt > requirements/no-deps.txt
header "The whole resolution the other files are cut from (kept so --keep can reuse it)." requirements/all.txt \
  > requirements/all.txt
for name in studio test bundle no-deps all; do cat "$tmp/$name.txt" >> "requirements/$name.txt"; done
echo "requirements/: $(grep -c '^[A-Za-z0-9]' requirements/studio.txt) packages for the studio," \
  "$(grep -c '^[A-Za-z0-9]' requirements/test.txt) with the test tools," \
  "$(grep -c '^[A-Za-z0-9]' requirements/bundle.txt) for the bundle"
git --no-pager diff --stat -- requirements/ 2>/dev/null || true

[ "$check" = 1 ] || exit 0
echo "== checking the new lock: setup, contracts, ruff, the test suite"
bash scripts/test.sh
echo "== checking the new lock: the bundle and its self-test"
bash installer/build_linux.sh --no-pack
