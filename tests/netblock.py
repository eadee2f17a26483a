"""Run Python with the network blocked, and record every attempt to use it.

:func:`blocked_env` writes a ``sitecustomize.py`` into a folder and returns an environment whose
``PYTHONPATH`` starts with it, so that every Python process started with that environment (the command
under test and any Python child it starts) installs an audit hook (:func:`sys.addaudithook`) before
anything else runs. The hook sees the socket calls Python code makes:

- ``socket.connect`` / ``socket.bind`` / ``socket.sendto`` / ``socket.sendmsg`` on anything but a local
  (``AF_UNIX``) socket, and every name lookup (``socket.getaddrinfo``, ``gethostbyname``,
  ``gethostbyaddr``, ``getnameinfo``): each is appended as one JSON line to the attempts file, then
  refused with ``OSError`` (``ENETUNREACH``), as on a machine with no network;
- addresses named in ``allow`` (``"127.0.0.1:8000"``, or a bare host for any port) are recorded too but
  let through (a local test server standing in for a download site).

:func:`run_blocked` runs a command that way and returns its exit code, output and the attempts. Native
code (C++ libraries) does not pass through the audit hook; where ``strace`` exists, ``native=True``
traces the process tree's ``connect``/``sendto``/``sendmsg``/``bind`` system calls as well and reports
the ones to Internet addresses (AF_INET/AF_INET6) in :attr:`Outcome.native`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ATTEMPTS_ENV = "SNOWAI_NETBLOCK_LOG"
ALLOW_ENV = "SNOWAI_NETBLOCK_ALLOW"

SITECUSTOMIZE = r'''
"""Installed by tests/netblock.py: record and refuse every use of the network from Python code."""
import errno as _errno
import json as _json
import os as _os
import socket as _socket
import sys as _sys
import traceback as _traceback

_LOG = _os.environ.get("SNOWAI_NETBLOCK_LOG", "")
_ALLOW = {a.strip() for a in _os.environ.get("SNOWAI_NETBLOCK_ALLOW", "").split(",") if a.strip()}
_SOCKET_EVENTS = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")
_LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
            "socket.getnameinfo")
_busy = False


def _address(addr):
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}", str(addr[0])
    return str(addr), str(addr)


def _record(event, detail, allowed):
    where = "".join(_traceback.format_stack(limit=8)[:-2])[-1500:]
    line = _json.dumps({"event": event, "detail": detail, "allowed": allowed, "pid": _os.getpid(),
                        "argv": list(_sys.argv[:4]), "where": where})
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _hook(event, args):
    global _busy
    if _busy or not event.startswith("socket."):
        return
    if event in _SOCKET_EVENTS:
        sock = args[0]
        family = getattr(sock, "family", None)
        if family == getattr(_socket, "AF_UNIX", object()):
            return
        addr = args[1] if len(args) > 1 else None
        text, host = _address(addr)
    elif event in _LOOKUPS:
        host = str(args[0]) if args else ""
        port = args[1] if event == "socket.getaddrinfo" and len(args) > 1 else None
        text = f"{host}:{port}" if port is not None else host
    else:
        return
    allowed = text in _ALLOW or host in _ALLOW
    _busy = True
    try:
        _record(event, text, allowed)
    finally:
        _busy = False
    if not allowed:
        raise OSError(_errno.ENETUNREACH, f"network access blocked by the test ({event} {text})")


_sys.addaudithook(_hook)
'''


@dataclass
class Outcome:
    """What a blocked run did."""

    returncode: int
    stdout: str
    stderr: str
    #: Every attempt the audit hook saw (dicts with event, detail, allowed, pid, argv, where).
    attempts: list[dict] = field(default_factory=list)
    #: Internet system calls strace saw (lines), when native tracing ran; None when it did not.
    native: list[str] | None = None

    @property
    def refused(self) -> list[dict]:
        return [a for a in self.attempts if not a.get("allowed")]

    def describe(self) -> str:
        lines = [f"exit {self.returncode}", "stdout: " + self.stdout[-1500:], "stderr: " + self.stderr[-3000:]]
        for a in self.attempts:
            lines.append(f"attempt: {a['event']} {a['detail']} (pid {a['pid']} {a['argv']})\n{a['where']}")
        for n in self.native or []:
            lines.append(f"native: {n}")
        return "\n".join(lines)


def blocked_env(folder: Path, env: dict[str, str] | None = None, allow: list[str] | tuple[str, ...] = ()) -> dict:
    """An environment (a copy of ``env`` or of this process's) whose Python processes block the network."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = os.pathsep.join([str(folder), *[p for p in [out.get("PYTHONPATH", "")] if p]])
    out[ATTEMPTS_ENV] = str(folder / "attempts.jsonl")
    out[ALLOW_ENV] = ",".join(allow)
    return out


def read_attempts(env: dict[str, str]) -> list[dict]:
    path = Path(env[ATTEMPTS_ENV])
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


_INET = re.compile(r"(connect|sendto|sendmsg|bind)\(\d+, \{sa_family=AF_INET6?,")


def strace_available() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("strace") is None:
        return False
    try:
        probe = subprocess.run(
            ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "true"], capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def run_blocked(
    argv: list[str],
    folder: Path,
    *,
    env: dict[str, str] | None = None,
    allow: list[str] | tuple[str, ...] = (),
    cwd: Path | None = None,
    timeout: float = 300.0,
    native: bool = False,
    stdin: str | None = None,
) -> Outcome:
    """Run ``argv`` (a Python command: ``[sys.executable, ...]``) with the network blocked as above."""
    run_env = blocked_env(folder, env, allow)
    Path(run_env[ATTEMPTS_ENV]).unlink(missing_ok=True)
    trace = Path(folder) / "strace.txt"
    command = list(argv)
    traced = native and strace_available()
    if traced:
        trace.unlink(missing_ok=True)
        # --seccomp-bpf: only the traced calls stop the process, so tracing costs next to nothing
        command = ["strace", "-f", "--seccomp-bpf", "-qq", "-o", str(trace), "-e", "trace=connect,sendto,sendmsg,bind",
                   *command]  # fmt: skip
    proc = subprocess.run(
        command,
        env=run_env,
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )
    found = None
    if traced:
        text = trace.read_text(encoding="utf-8", errors="replace") if trace.is_file() else ""
        found = [line for line in text.splitlines() if _INET.search(line)]
        allowed = [a.split(":")[-1] for a in allow]
        found = [line for line in found if not any(f"htons({port})" in line for port in allowed)]
    return Outcome(proc.returncode, proc.stdout, proc.stderr, read_attempts(run_env), found)


def python_command(code: str) -> list[str]:
    """``[python, -c, code]`` with this interpreter."""
    return [sys.executable, "-c", code]
