"""Heartbeats from one task to every other task of its cluster: the ages ``actorflow status``
shows (issue 16: "heartbeat ages").

What it owns: one `transport.rpc.RpcClient` per peer task (the other tasks of the cluster),
each connected to the peer's worker service (its Unix-domain socket on this host, else TCP
with the cluster's keys), in a nursery of its own. The client's own heartbeat does the work:
after ``rpc.heartbeat_interval`` of silence it pings the peer, whose pong (any message) is
*hearing from it*; after ``rpc.heartbeat_timeout`` of silence the client declares the peer
dead until it answers again. So while a peer is up its age stays below about one interval
(plus a round trip), and it grows without bound once the peer stops answering.

State (owned by the service's trio thread): ``_clients`` (peer -> its client, set once the
peer first answered; a peer not heard from yet has no age), ``started`` (the watch's `run` was
started). Nothing is recorded per step: the only cost is one ping per peer per interval of
silence.

The watch starts when the task is first asked for its status (`WorkerService.status_record`):
every master asks each task for it when its session starts, and so does `actorflow status`;
a task nobody looks at pings nobody.

    watch = PeerWatch(("worker", 0), cluster, rpc_config)
    nursery.start_soon(watch.run)
    watch.ages()   # {"/job:ps/replica:0/task:0": PeerAge(age=0.31, alive=True), ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import trio
import zmq

from scheduler.remote_rendezvous import TaskKey, endpoint_of, task_name
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig


@dataclass(frozen=True)
class PeerAge:
    """How long since this task last heard from one peer (seconds, this task's clock), and
    whether its heartbeat still counts the peer alive."""

    age: float | None  # None: not heard from yet (its connection opens, or it never answered)
    alive: bool


class PeerWatch:
    """One heartbeating client per peer task (see the module docstring)."""

    def __init__(self, me: TaskKey, cluster: Mapping[str, Mapping[int, str]],
                 config: RpcConfig, zctx: zmq.Context | None = None):
        self.me = me
        self.zctx = zctx  # the service's ZeroMQ context (None: each client makes its own)
        self.cluster = cluster
        self.config = config
        self.started = False
        self._clients: dict[TaskKey, RpcClient] = {}

    def peers(self) -> list[TaskKey]:
        return sorted((job, i) for job, tasks in self.cluster.items() for i in tasks
                      if (job, i) != self.me)

    async def run(self) -> None:
        """Keep a client open to every peer until cancelled."""
        self.started = True
        async with trio.open_nursery() as nursery:
            for peer in self.peers():
                nursery.start_soon(self._hold, peer)

    async def _hold(self, peer: TaskKey) -> None:
        address = self.cluster[peer[0]][peer[1]]
        endpoint = await local_ipc.prefer_ipc(
            endpoint_of(address), local_ipc.probe_timeout(self.config.heartbeat_timeout),
            task=peer)
        async with RpcClient(endpoint, config=self.config, ctx=self.zctx,
                             name=f"{task_name(self.me)} heartbeat to {task_name(peer)}") as c:
            await c.wait_ready()  # heard from it once: from now on it has an age
            self._clients[peer] = c
            try:
                await trio.sleep_forever()
            finally:
                del self._clients[peer]

    def ages(self) -> dict[str, PeerAge]:
        """Every peer task by name: seconds since it was last heard from (None while its
        connection opens), and whether it counts as alive."""
        out: dict[str, PeerAge] = {}
        for peer in self.peers():
            c = self._clients.get(peer)
            if c is None:
                out[task_name(peer)] = PeerAge(None, False)
                continue
            st = c.statistics()
            out[task_name(peer)] = PeerAge(max(0.0, st.seconds_since_traffic), st.alive)
        return out
