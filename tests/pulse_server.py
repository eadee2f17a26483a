"""A real PulseAudio server for the virtual-microphone tests: the one CI started, or a private one.

:func:`sound_server` yields the environment (``PULSE_SERVER``...) under which ``pactl``, ``parec`` and
libpulse reach a server with a null sink: the one ``SNOWAI_TEST_PULSE_SERVER`` names (scripts/test.sh
starts one for CI), else one the environment already reaches; otherwise a private ``pulseaudio`` is
started in a temporary runtime folder and stopped afterwards. The tests skip, with the reason, when
neither works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _reachable(env: dict[str, str]) -> bool:
    if shutil.which("pactl") is None:
        return False
    try:
        done = subprocess.run(["pactl", "info"], env=env, capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def sound_server(tmp: Path) -> Iterator[dict[str, str] | str]:
    """The environment of a running server, or the reason there is none (a string)."""
    env = dict(os.environ)
    given = os.environ.get("SNOWAI_TEST_PULSE_SERVER")
    if given:
        env["PULSE_SERVER"] = given
    if _reachable(env):
        yield env
        return
    exe = shutil.which("pulseaudio")
    if exe is None or shutil.which("pactl") is None:
        yield "no PulseAudio here (apt-get install pulseaudio pulseaudio-utils)"
        return
    runtime = tmp / "pulse-runtime"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    socket = runtime / "native"
    env.update({"XDG_RUNTIME_DIR": str(runtime), "PULSE_SERVER": f"unix:{socket}", "HOME": str(tmp)})
    env.pop("PULSE_SINK", None)
    proc = subprocess.Popen(
        [exe, "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no", "--disable-shm=yes",
         f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
         "--load=module-null-sink sink_name=ci_speaker", "--log-target=stderr"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _reachable(env):
            time.sleep(0.1)
        if proc.poll() is not None or not _reachable(env):
            detail = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
            yield f"a PulseAudio server could not be started here ({detail.strip().splitlines()[-1:] or 'no reply'})"
            return
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
