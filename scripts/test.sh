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
# A real sound server for the virtual microphone's tests ("SnowAI Microphone" on PulseAudio, recorded back
# with parec): installed when missing, started with a null sink in a private runtime folder, stopped at the
# end. Only those tests talk to it (SNOWAI_TEST_PULSE_SERVER); without it they start their own server, or
# skip saying why. The other tests keep seeing a machine without sound devices.
if ! command -v pulseaudio >/dev/null 2>&1 || ! command -v parec >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      pulseaudio pulseaudio-utils >/dev/null; } || echo "pulseaudio could not be installed; its tests will skip" >&2
  fi
fi
if command -v pulseaudio >/dev/null 2>&1; then
  pulse_dir="$(mktemp -d)"
  export SNOWAI_TEST_PULSE_SERVER="unix:$pulse_dir/native"
  XDG_RUNTIME_DIR="$pulse_dir" pulseaudio --daemonize=no --exit-idle-time=-1 -n --use-pid-file=no --disable-shm=yes \
    --load="module-native-protocol-unix socket=$pulse_dir/native auth-anonymous=1" \
    --load="module-null-sink sink_name=ci_speaker" --log-target=stderr 2>"$pulse_dir/log" &
  pulse_pid=$!
  trap 'kill "$pulse_pid" 2>/dev/null || true; wait "$pulse_pid" 2>/dev/null || true; rm -rf "$pulse_dir"' EXIT
  for _ in $(seq 50); do PULSE_SERVER="$SNOWAI_TEST_PULSE_SERVER" pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  PULSE_SERVER="$SNOWAI_TEST_PULSE_SERVER" pactl info >/dev/null 2>&1 && echo "== sound server: PulseAudio with a null sink" \
    || echo "the sound server did not start (see $pulse_dir/log); its tests start their own or skip" >&2
fi
echo "== tests"
# -noreset: the real-window tests start studios one after another; the server must not reset in between.
xvfb-run -a -s "-screen 0 1600x1000x24 -noreset" python -m pytest "$@"
