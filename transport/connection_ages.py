"""When an RPC server last heard from each of its connections, and who each says it is: what
``actorflow status`` shows as how long since a task heard from each session's master (#16).

What it owns: `ConnectionTable`, peer -> `_Conn` (when the connection was last heard from: any
message, a ping too; when it last asked something: a request or a one-way message; its request
count; and who the client says it is: the ``"w"`` field ``{"name", "pid", "id"}`` an
`RpcClient` sends on its pings and on its first request per heartbeat interval). The server's
reader stamps it once per message (`stamp`, then sets ``asked``/``requests``/``who`` on the
returned record: one `time.monotonic` read, one dict lookup); `snapshot` reads it as
`ConnectionInfo`. Touched only by the server's trio thread.

A connection is *gone* once its same-host stream closed (the server's ``is_open``) or nothing
came from it for ``heartbeat_timeout`` (a live client pings after each ``heartbeat_interval``
of silence). Gone ones are forgotten `FORGET_GONE_AFTER` seconds after they were last heard
from: pruned when the table is read, and when a new connection arrives once their number has
doubled since the last prune, so the table stays bounded by the connections of the last
minute.

    table = ConnectionTable(heartbeat_timeout=5.0)
    table.stamp(peer, time.monotonic()).asked = ...     # in the reader
    table.snapshot(is_open, load)                       # [ConnectionInfo, ...]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FORGET_GONE_AFTER = 60.0  # seconds a gone connection stays listed


@dataclass(frozen=True)
class ConnectionInfo:
    """One connection to the server as `RpcServer.connections` saw it (ages in seconds)."""

    peer: str               # the server's name for it: a ZeroMQ routing id (hex) or "unix:N"
    name: str | None        # what the client calls itself (None: it has not said)
    pid: int | None         # the client's process id, as it says
    client_id: int | None   # the client program's id (a master's, shared by its connections)
    heard: float            # seconds since anything came from it (its pings included)
    asked: float | None     # seconds since its last request (None: only pings so far)
    requests: int           # requests and one-way messages it sent
    inflight: int           # its requests running, or their replies waiting to be sent
    alive: bool             # False: gone (its stream closed, or silent for heartbeat_timeout)


class _Conn:
    """What the reader stamps for one connection."""

    __slots__ = ("heard", "asked", "requests", "who")

    def __init__(self, now: float) -> None:
        self.heard = now
        self.asked: float | None = None
        self.requests = 0
        self.who: Any = None


class ConnectionTable:
    """peer -> `_Conn` (see the module docstring)."""

    def __init__(self, heartbeat_timeout: float) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self._conns: dict[bytes | int, _Conn] = {}
        self._prune_at = 64  # prune gone connections when a new one arrives past this many

    def stamp(self, peer: bytes | int, now: float) -> _Conn:
        """`peer` was heard from at `now` (`time.monotonic`); its record, to update further."""
        c = self._conns.get(peer)
        if c is None:
            if len(self._conns) >= self._prune_at:
                self._prune(now)
            c = self._conns[peer] = _Conn(now)
        c.heard = now
        return c

    def snapshot(self, is_open: Callable[[bytes | int], bool],
                 load: Mapping[bytes | int, int]) -> list[ConnectionInfo]:
        """Every connection still remembered; `is_open(peer)`: its transport still holds it
        (False for a closed same-host stream); `load`: its requests in flight."""
        now = time.monotonic()
        self._prune(now)
        out = []
        for peer, c in self._conns.items():
            who = c.who if isinstance(c.who, dict) else {}
            name, pid, cid = who.get("name"), who.get("pid"), who.get("id")
            out.append(ConnectionInfo(
                peer=f"unix:{peer}" if type(peer) is int else peer.hex(),
                name=name if isinstance(name, str) else None,
                pid=pid if type(pid) is int else None,
                client_id=cid if type(cid) is int else None,
                heard=now - c.heard, asked=None if c.asked is None else now - c.asked,
                requests=c.requests, inflight=load.get(peer, 0),
                alive=now - c.heard < self.heartbeat_timeout and is_open(peer)))
        return out

    def _prune(self, now: float) -> None:
        forget = max(FORGET_GONE_AFTER, self.heartbeat_timeout)
        for peer in [p for p, c in self._conns.items() if now - c.heard > forget]:
            del self._conns[peer]
        self._prune_at = max(64, 2 * len(self._conns))
