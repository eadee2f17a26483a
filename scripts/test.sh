#!/usr/bin/env bash
# Install SnowAI Studio with its test tools, then run the checks and the whole test suite
# (under a virtual X server so that the real-window tests run too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
echo "== import contracts"
lint-imports
echo "== ruff"
ruff check .
echo "== tests"
xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest "$@"
