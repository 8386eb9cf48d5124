"""Child processes of a local cluster and of the trainers and benchmarks that start them:
free loopback ports, the environment a child needs to import this checkout, starting a
process in its own group that dies with its parent, and stopping groups of them (SIGTERM,
then SIGKILL).

    port, = free_ports(1)
    proc = spawn([sys.executable, "-m", "actorflow", "worker", ...], env=child_env())
    stop_processes([proc])
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG = 1

__all__ = ["free_ports", "kill_process_group", "child_env", "spawn", "stop_processes"]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct ports free on `host` right now (another program may still take one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python process: this one's, with the repository on
    PYTHONPATH (so ``-m actorflow`` / ``-m models...`` import the same code) and without
    AF_CONFIG (children get their cluster explicitly)."""
    env = dict(os.environ)
    env.pop("AF_CONFIG", None)
    path = env.get("PYTHONPATH", "")
    if _REPO_ROOT not in path.split(os.pathsep):
        env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + path if path else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


_libc_prctl: Any = None
with contextlib.suppress(OSError, AttributeError):
    _libc_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the child when the thread that forked it dies."""
    if _libc_prctl is not None:
        _libc_prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(args: Sequence[str], *, stdout: Any = subprocess.PIPE, stderr: Any = None,
          stdin: Any = subprocess.DEVNULL, env: Mapping[str, str] | None = None,
          text: bool = False) -> subprocess.Popen[Any]:
    """Start `args` as the leader of a new process group (so `kill_process_group` reaches its
    children), dying with this process when started from the main thread."""
    main = threading.current_thread() is threading.main_thread()
    return subprocess.Popen(list(args), stdin=stdin, stdout=stdout, stderr=stderr,
                            env=dict(env) if env is not None else child_env(),
                            start_new_session=True, text=text,
                            preexec_fn=_die_with_parent if main else None)


def kill_process_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process group `proc` leads (nothing if it is already gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_processes(procs: Sequence[subprocess.Popen[Any]], timeout: float = 5.0) -> None:
    """SIGTERM each process group, wait up to `timeout` s in all, then SIGKILL the groups."""
    for p in procs:
        if p.poll() is None:
            kill_process_group(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        kill_process_group(p, signal.SIGKILL)  # the leader's children, if any
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5.0)


