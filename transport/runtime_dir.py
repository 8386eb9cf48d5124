"""Who may talk to a task on this host, and where a task may listen: the checks of trust.

What it owns (no state):
- the same-host runtime directory: Unix sockets live in a directory only their user can
  enter (`ensure_private_dir`: created 0700, refused when another user owns it or can enter
  it), by default ``/tmp/actorflow-<uid>`` (`default_runtime_dir`; ``RpcConfig.runtime_dir``
  overrides it). Connecting to a Unix socket needs search permission on its directory, so
  other users cannot reach the sockets at all; and never the abstract namespace, which has no
  permissions.
- the peer check on every same-host connection, both ways: `peer_uid` reads the other end's
  uid from the kernel (``SO_PEERCRED``) and `peer_allowed` accepts only this process's uid.
- `check_bind`: a server refuses a TCP address other than loopback without CURVE keys unless
  told it is insecure, naming what that gives up.

    d = ensure_private_dir(default_runtime_dir())    # "/tmp/actorflow-1000", mode 0700
    check_bind("tcp://0.0.0.0:2222", has_keys=False, insecure=False)   # raises
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import struct

from devices.errors import FailedPreconditionError

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def default_runtime_dir() -> str:
    """``/tmp/actorflow-<uid>``: the same for every process of this user on this host."""
    return f"/tmp/actorflow-{os.getuid()}"


def ensure_private_dir(path: str) -> str:
    """Create `path` with mode 0700 if missing; refuse one that another user owns or that
    others may enter (someone could then reach, or plant, the sockets in it)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise FailedPreconditionError(f"runtime directory {path} is not a directory; remove it "
                                      "or set RpcConfig.runtime_dir to another path")
    if st.st_uid != os.getuid():
        raise FailedPreconditionError(
            f"runtime directory {path} belongs to uid {st.st_uid}, not this user "
            f"({os.getuid()}): someone else made it. Remove it, or set RpcConfig.runtime_dir "
            "to a directory of your own")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise FailedPreconditionError(
            f"runtime directory {path} has mode {stat.S_IMODE(st.st_mode):o}: other users may "
            f"enter it; run 'chmod 700 {path}'")
    return path


def is_private_dir(path: str) -> bool:
    """Whether `path` is a directory of this user that nobody else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
            and not stat.S_IMODE(st.st_mode) & 0o077)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (``SO_PEERCRED``)."""
    _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   _CRED.size))
    return uid


def peer_allowed(uid: int, own_uid: int | None = None) -> bool:
    """Whether a same-host peer running as `uid` may talk to us: only our own user."""
    return uid == (os.getuid() if own_uid is None else own_uid)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(endpoint: str, has_keys: bool, insecure: bool) -> None:
    """Refuse to serve `endpoint` (``tcp://HOST:PORT``) on a non-loopback HOST without keys,
    unless `insecure`. Other transports (ipc, inproc) are not network-reachable: allowed."""
    if not endpoint.startswith("tcp://") or has_keys or insecure:
        return
    host = endpoint[len("tcp://"):].rpartition(":")[0]
    if is_loopback(host):
        return
    raise FailedPreconditionError(
        f"refusing to serve {endpoint} without keys: anyone who can reach {host} could run "
        "any op of the graphs registered on this task (read and overwrite every variable, "
        "reset every container), unauthenticated and in clear text. Make keys with "
        "'actorflow keys DIR' and start with '--keys DIR' (ServerDef/RPCOptions key_dir), "
        "or bind 127.0.0.1, or pass '--insecure' (RPCOptions insecure=True) to give up "
        "authentication and encryption knowingly")
