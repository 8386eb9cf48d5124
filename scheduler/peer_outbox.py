"""Tensors pushed from this task's Sends straight into other tasks' rendezvous.

What it owns
------------
`PeerOutbox` routes a rendezvous key to the task that receives it (the key ends with the
receiving device, parsed once per key and cached) and keeps one `_PushChannel` per peer task,
opened on first use: a DEALER `ZSocket` connected to the peer's worker service. A push is a
``deliver`` request of the RPC wire protocol (`transport.rpc`): ``{"k": "q", "id", "m":
"deliver", "h": {step, key}}`` plus the tensor as a raw frame, never pickled. It leaves from
the Send kernel itself (no task, no extra trip through the scheduler), and its reply is
handled in the socket's reader: success lets the step retire, an error reply (the receiver
refused the tensor) fails the step here with the receiver's error class.

Liveness: the peer's service answers a delivery from its reader, as it answers heartbeats, so
a delivery unanswered for ``rpc.heartbeat_timeout`` seconds means the peer is down or hung:
`sweep` (run periodically by the service) fails such pushes with UnavailableError. The master
also detects the dead task through its own heartbeats and aborts the step everywhere.

State (owned by the service's trio thread): ``_routes`` (key -> peer task, or None for this
task), ``_channels`` (peer -> open channel), ``_opening`` (peer -> Event while its socket is
being opened); per channel ``_pending`` (request id -> (rendezvous, key, time sent)) until the
reply comes, the push is swept, or the channel closes.

    outbox = PeerOutbox("worker", 0, cluster, rpc_config, zctx, nursery)
    peer = outbox.route(key)            # None: the key is received on this task
    outbox.push(rdv, peer, key, value)  # rdv.in_flight counts it until the reply
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import trio
import zmq

from devices.device_spec import DeviceSpec
from devices.errors import (
    InternalError,
    InvalidArgumentError,
    OpError,
    ResourceExhaustedError,
    UnavailableError,
)
from scheduler.remote_rendezvous import TaskKey, TaskRendezvous, endpoint_of, task_name
from transport.codec import decode_message, encode
from transport.rpc import RpcConfig
from transport.zsocket import ZSocket

_MAX_ROUTES = 100_000  # cached key routes; cleared beyond this (keys come from the wire too)
_MAX_PENDING = 65_536  # unanswered pushes to one peer before new ones are refused


class PeerOutbox:
    """Routes keys to the tasks holding their Recvs and pushes tensors there (module doc)."""

    def __init__(self, job: str, task: int, cluster: Mapping[str, Mapping[int, str]],
                 config: RpcConfig, zctx: zmq.Context, nursery: trio.Nursery):
        self.me: TaskKey = (job, task)
        self.cluster = cluster
        self.config = config
        self.zctx = zctx
        self.nursery = nursery
        self._routes: dict[str, TaskKey | None] = {}
        self._channels: dict[TaskKey, _PushChannel] = {}
        self._opening: dict[TaskKey, trio.Event] = {}
        self.pushed = 0
        self.push_failures = 0

    def route(self, key: str) -> TaskKey | None:
        """The task that receives `key`, or None when it is this task."""
        try:
            return self._routes[key]
        except KeyError:
            pass
        spec = DeviceSpec.parse(key.rpartition("->")[2])
        if spec.job is None or spec.task is None:
            raise InvalidArgumentError(
                f"rendezvous key '{key}' does not name a receiving task (expected "
                "'tensor->/job:J/replica:0/task:T/device:KIND:N')")
        peer: TaskKey | None = (spec.job, spec.task)
        if peer == self.me:
            peer = None
        elif spec.task not in self.cluster.get(spec.job, {}):
            raise InvalidArgumentError(
                f"rendezvous key '{key}' sends to {task_name(peer)}, which is not in this "
                "task's cluster (" + ", ".join(
                    f"{j}: tasks {sorted(t)}" for j, t in sorted(self.cluster.items())) + ")")
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[key] = peer
        return peer

    def push(self, rdv: TaskRendezvous, peer: TaskKey, key: str, value: Any) -> None:
        """Send `value` to `peer`'s rendezvous for this step: now when the channel is open and
        the value is a host array, else from a task (first push to a peer, GPU values)."""
        channel = self._channels.get(peer)
        if channel is not None and type(value) is np.ndarray:
            channel.push(rdv, key, value)
            return
        rdv.in_flight += 1  # held by the task until it hands the push to the channel
        self.nursery.start_soon(self._push_later, rdv, peer, key, value)

    async def _push_later(self, rdv: TaskRendezvous, peer: TaskKey, key: str,
                          value: Any) -> None:
        try:
            value = await _to_wire(value, key)
            channel = self._channels.get(peer) or await self._open(peer)
            channel.push(rdv, key, value)
        except OpError as e:
            self.push_failures += 1
            fail_push(rdv, peer, key, e)
        finally:
            rdv.in_flight -= 1
            if rdv.state is not None:
                rdv.state.push_done()

    def sweep(self) -> None:
        """Fail pushes unanswered for longer than the heartbeat timeout."""
        limit = trio.current_time() - self.config.heartbeat_timeout
        for channel in list(self._channels.values()):
            channel.sweep(limit)

    async def _open(self, peer: TaskKey) -> _PushChannel:
        opening = self._opening.get(peer)
        if opening is not None:
            await opening.wait()
        else:
            self._opening[peer] = opening = trio.Event()
            try:
                await self.nursery.start(self._hold, peer)
            finally:
                opening.set()
                del self._opening[peer]
        channel = self._channels.get(peer)
        if channel is None:
            raise UnavailableError(f"could not open a connection to {task_name(peer)}")
        return channel

    async def _hold(self, peer: TaskKey, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the socket to `peer` until the service stops."""
        channel = _PushChannel(self, peer)
        try:
            async with ZSocket(self.zctx, zmq.DEALER, self.config.socket_config(),
                               routing_id=b"afpush" + os.urandom(8),
                               name=f"{task_name(self.me)} -> {task_name(peer)}",
                               on_receive=channel.on_receive) as sock:
                sock.connect(endpoint_of(self.cluster[peer[0]][peer[1]]))
                channel.sock = sock
                self._channels[peer] = channel
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._channels.pop(peer, None)
            channel.close()


class _PushChannel:
    """Deliveries to one peer over one DEALER; see the module docstring."""

    def __init__(self, outbox: PeerOutbox, peer: TaskKey):
        self.outbox = outbox
        self.peer = peer
        self.sock: ZSocket | None = None
        self._pending: dict[int, tuple[TaskRendezvous, str, float]] = {}
        self._next_id = 1

    def push(self, rdv: TaskRendezvous, key: str, value: np.ndarray) -> None:
        if len(self._pending) >= _MAX_PENDING:
            fail_push(rdv, self.peer, key, ResourceExhaustedError(
                f"{len(self._pending)} deliveries to this peer are unanswered"))
            return
        rid = self._next_id
        self._next_id += 1
        frames = encode({"k": "q", "id": rid, "m": "deliver", "t": None,
                         "h": {"step": rdv.step_id, "key": key}}, [value])
        rdv.in_flight += 1
        self._pending[rid] = (rdv, key, trio.current_time())
        try:
            self.sock.send_nowait(frames)
        except trio.WouldBlock:  # not connected yet, or the peer is at its high-water mark
            self.outbox.nursery.start_soon(self._send_later, rid, frames)
        except (UnavailableError, trio.ClosedResourceError) as e:
            self._complete(rid, UnavailableError(f"the connection is closed ({e})"))

    async def _send_later(self, rid: int, frames: list) -> None:
        try:
            await self.sock.send(frames)
        except (UnavailableError, trio.ClosedResourceError) as e:
            self._complete(rid, UnavailableError(f"the connection is closed ({e})"))

    def on_receive(self, frames: list) -> None:
        """The socket's reader: a reply settles its push (anything else is ignored)."""
        try:
            header, _, error = decode_message(frames, self.outbox.config.limits)
        except InvalidArgumentError:
            return
        if isinstance(header, dict) and header.get("k") == "r" and type(header.get("id")) is int:
            self._complete(header["id"], error)

    def _complete(self, rid: int, error: OpError | None) -> None:
        entry = self._pending.pop(rid, None)
        if entry is None:
            return
        rdv, key, _ = entry
        if error is None:
            self.outbox.pushed += 1
        else:
            self.outbox.push_failures += 1
            fail_push(rdv, self.peer, key, error)
        rdv.in_flight -= 1
        if rdv.state is not None:
            rdv.state.push_done()

    def sweep(self, limit: float) -> None:
        timeout = self.outbox.config.heartbeat_timeout
        while self._pending:
            rid, (_, _, sent) = next(iter(self._pending.items()))
            if sent > limit:
                break
            self._complete(rid, UnavailableError(
                f"no answer for {timeout}s (heartbeat_timeout): the task is down, hung or "
                "unreachable"))

    def close(self) -> None:
        for rid in list(self._pending):
            self._complete(rid, UnavailableError("this worker service is shutting down"))


def fail_push(rdv: TaskRendezvous, peer: TaskKey, key: str, e: OpError) -> None:
    """Fail the step of `rdv` here because its push of `key` to `peer` failed."""
    err = type(e)(f"sending '{key}' of step {rdv.step_id} to {task_name(peer)} failed: "
                  f"{e.message}", node=e.node, device=e.device)
    err.__cause__ = e
    if rdv.state is not None:
        rdv.state.fail(err)
    else:
        rdv.abort(err)


async def _to_wire(value: Any, key: str) -> np.ndarray:
    """A value a Send produced, as a host array the codec can send."""
    if type(value) is np.ndarray:
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    array = getattr(value, "array", None)
    event = getattr(value, "event", None)
    if array is not None and event is not None:  # a GPU value (sendrecv.OnDevice)
        from devices.gpu import wait_event

        await wait_event(event)
        value = array
    get = getattr(value, "get", None)  # CuPy -> NumPy
    if get is not None and not isinstance(value, dict):
        with contextlib.suppress(TypeError):
            host = get()
            if isinstance(host, np.ndarray):
                return host
    if isinstance(value, np.ndarray):
        return value
    raise InternalError(f"a Send produced a {type(value).__name__} for '{key}'; only arrays "
                        "can cross to another task")
