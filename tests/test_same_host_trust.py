"""Same-host trust with real daemons and a real second user (issue 12, point 5): a process of
another uid cannot reach a daemon's Unix socket (it lives in a 0700 runtime directory, never
in the abstract namespace), and a daemon whose same-host peer is another user hangs up on it
before reading a byte (``SO_PEERCRED``), while its TCP port serves on.

These need root, to run one side as ``nobody`` (uid 65534); elsewhere they are skipped (the
peer check itself is also tested in process: `tests/test_transport_security.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
import trio

from actorflow.cluster import LocalCluster
from devices.errors import UnavailableError
from tests.test_distributed import ROOT, _free_port
from transport.codec import encode
from transport.local_ipc import ipc_endpoint
from transport.rpc import RpcClient, RpcConfig
from transport.unix_stream import address_of

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                       reason="needs root, to run one side as another user"),
]
NOBODY = 65534
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")  # one `nobody` may run

# A worker daemon that drops to uid `nobody` once it has imported what it runs (the venv's
# interpreter lives where that user cannot read), then starts as `actorflow worker` does.
AS_NOBODY = f"""
import os, sys
sys.path.insert(0, {ROOT!r})
import encodings.idna, json, signal
import actorflow, actorflow.cli, scheduler.worker_service, transport.unix_stream
os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})
sys.exit(actorflow.cli.main(sys.argv[1:]))
"""


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory `nobody` may read (pytest's own temporary directories are 0700)."""
    d = tempfile.mkdtemp(prefix="af-trust-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _status(endpoint: str) -> dict:
    async def ask() -> dict:
        async with RpcClient(endpoint, config=RpcConfig(heartbeat_interval=0.2,
                                                        heartbeat_timeout=2.0)) as c:
            with trio.fail_after(15):
                header, _ = await c.call("status", None, timeout=5)
        return header

    return trio.run(ask)


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for the other user")
def test_another_user_cannot_reach_a_daemons_same_host_socket() -> None:
    with LocalCluster(jobs={"worker": 1}) as cluster:
        tcp = "tcp://" + cluster.as_dict()["worker"][0]
        path = address_of(ipc_endpoint(tcp))
        assert os.path.exists(path), path  # a file, in the user's private runtime directory
        st = os.stat(os.path.dirname(path))
        assert st.st_uid == os.getuid() and st.st_mode & 0o077 == 0, oct(st.st_mode)
        with open("/proc/net/unix") as f:  # and no abstract name (those have no permissions)
            assert not [line for line in f if "@actorflow" in line]
        probe = ("import socket, sys\n"
                 "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                 "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n"
                 "    print('refused')\nelse:\n    print('connected')\n")
        run = subprocess.run([SYSTEM_PYTHON, "-c", probe, path], user=NOBODY, group=NOBODY,
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert run.stdout.strip() == "refused", (run.stdout, run.stderr)
        header = _status(ipc_endpoint(tcp))  # its own user gets in
        assert header["job"] == "worker"
        assert cluster.alive("worker", 0)


def test_a_daemon_hangs_up_on_a_same_host_peer_of_another_user(shared_dir: str) -> None:
    port = _free_port()
    spec = os.path.join(shared_dir, "cluster.json")
    with open(spec, "w") as f:
        json.dump({"worker": [f"127.0.0.1:{port}"]}, f)
    os.chmod(spec, 0o644)
    runtime = f"/tmp/actorflow-{NOBODY}"
    proc = subprocess.Popen([sys.executable, "-c", AS_NOBODY, "worker", "--cluster", spec,
                             "--job", "worker", "--task", "0"], cwd=shared_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()  # its READY line (or nothing: it died)
        assert line.strip() == f"READY af://127.0.0.1:{port}", proc.stderr.read().decode()
        path = address_of(ipc_endpoint(f"tcp://127.0.0.1:{port}", runtime))
        assert os.stat(path).st_uid == NOBODY and os.stat(runtime).st_mode & 0o077 == 0
        # root may enter any directory, so it reaches the socket: the daemon reads its uid
        # from the kernel and hangs up without reading (or answering) a status request
        frames = [bytes(memoryview(f).cast("B")) for f in encode(
            {"k": "q", "id": 1, "m": "status", "t": 5.0, "h": None})]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(15)
            s.connect(path)
            try:
                s.sendall(struct.pack(f"<I{len(frames)}Q", len(frames),
                                      *(len(f) for f in frames)) + b"".join(frames))
                got = s.recv(1 << 16)
            except (BrokenPipeError, ConnectionResetError):
                got = b""
            assert got == b"", f"a peer of another uid was answered: {got[:80]!r}"
        # our own calling socket refuses a same-host server of another user too, by name
        async def over_unix() -> None:
            cfg = RpcConfig(heartbeat_interval=0.1, heartbeat_timeout=0.5)
            async with RpcClient(f"unix://{path}", config=cfg) as c:
                with trio.fail_after(15), pytest.raises(UnavailableError):
                    await c.call("status", None, timeout=2)

        trio.run(over_unix)
        # while its TCP port (loopback, no keys needed there) serves as usual
        assert _status(f"tcp://127.0.0.1:{port}")["job"] == "worker"
        assert proc.poll() is None
        proc.terminate()
        assert proc.wait(20) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        with contextlib.suppress(OSError):  # the runtime directory it made, once empty
            os.rmdir(runtime)
