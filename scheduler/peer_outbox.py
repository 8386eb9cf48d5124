"""Tensors pushed from this task's Sends straight into other tasks' rendezvous.

What it owns
------------
`PeerOutbox` routes a rendezvous key to the task that receives it (the key ends with the
receiving device, parsed once per key and cached) and keeps one `_PushChannel` per peer task,
opened on first use: a DEALER connected to the peer's worker service (a Unix-domain stream for
a peer on this host, see `transport.local_ipc`; else ZeroMQ). A push is a
*one-way* ``push`` message of the RPC wire protocol (`transport.rpc`): ``{"k": "s", "m":
"push", "h": {step, key, incarnation}, "ref": step}`` plus the tensor as a raw frame, never
pickled. ``incarnation`` is the life of the receiver that the step's master knows of (the
step's ``rdv.peers``, from its ``run_graph``); a step that names none for the receiver fails
here rather than push blind. It leaves from the Send kernel itself (no task, no extra trip
through the scheduler) and gets no reply when it is taken: an acknowledgement would double
the messages of a step, and its wake-ups are most of the cost of a small step on a small
machine.

Why no acknowledgement is needed: every task that receives a key runs a partition of the
step, so the master waits for it anyway. A push the receiver refuses (an unknown key, the
wrong dtype, or meant for a previous life of the receiver: it restarted) fails the step
*there*, keeps nothing, and is answered with an error reply carrying the push's ``ref``
(`transport.rpc_server`): the channel's reader hands it to ``on_refused`` (the service fails
the step *here* with it at once, naming the receiver, instead of at its deadline). The
master hears of it from both tasks' ``run_graph`` replies and aborts the step everywhere. A
receiver that is down is found by the master's heartbeats. What only the sender can see is a
push libzmq would not take (no connection to the peer, or the peer at its high-water mark): it
waits in a task, counted in ``rdv.in_flight`` so that the step does not retire here before it
left, and `sweep` (run periodically by the service) fails it with UnavailableError after
``rpc.heartbeat_timeout``.

Same host: a tensor of at least ``shm_min_bytes`` pushed to a peer on a loopback address is
copied into a shared-memory segment of the channel's `transport.shm.SegmentPool` and the push
carries its descriptor instead of the frame; the receiver copies it out and sends back a
one-way ``shm_free`` (`notify`), which makes the segment reusable. With no free segment and no
room for one, the tensor goes over the socket as usual.

State (owned by the service's trio thread): ``_routes`` (key -> peer task, or None for this
task), ``_channels`` (peer -> open channel), ``_opening`` (peer -> Event while its socket is
being opened), ``on_refused`` (set by the service: ``(peer, step, error)`` for a push the
peer refused); per channel ``_queued`` (push number -> (rendezvous, key, time queued, cancel
scope)) while a push waits for the socket, ``rejected`` (error replies from the peer).

    outbox = PeerOutbox("worker", 0, cluster, rpc_config, zctx, nursery)
    peer = outbox.route(key)            # None: the key is received on this task
    outbox.push(rdv, peer, key, value)  # gone to libzmq, or queued (rdv.in_flight counts it)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
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
from transport import local_ipc, shm
from transport.codec import decode_message, encode
from transport.rpc import RpcConfig
from transport.rpc_core import ONEWAY
from transport.unix_stream import StreamDealer
from transport.zsocket import ZSocket

_MAX_ROUTES = 100_000  # cached key routes; cleared beyond this (keys come from the wire too)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MAX_QUEUED = 65_536  # pushes waiting for one peer's connection before new ones are refused


class PeerOutbox:
    """Routes keys to the tasks holding their Recvs and pushes tensors there (module doc)."""

    def __init__(self, job: str, task: int, cluster: Mapping[str, Mapping[int, str]],
                 config: RpcConfig, zctx: zmq.Context, nursery: trio.Nursery, *,
                 shm_min_bytes: int = 0, shm_max_bytes: int = 256 << 20):
        self.me: TaskKey = (job, task)
        self.shm_min_bytes = shm_min_bytes if shm.available() else 0
        self.shm_max_bytes = shm_max_bytes
        self.cluster = cluster
        self.config = config
        self.zctx = zctx
        self.nursery = nursery
        self._routes: dict[str, TaskKey | None] = {}
        self._channels: dict[TaskKey, _PushChannel] = {}
        self._opening: dict[TaskKey, trio.Event] = {}
        self.pushed = 0
        self.push_failures = 0
        self.pushed_bytes = 0  # bytes of every tensor push begun (status, #16)
        # A push `peer` refused (it names the step): the service fails that step here.
        self.on_refused: Callable[[TaskKey, int, OpError], None] | None = None

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
        the value is on the host, else from a task (first push to a peer, GPU values)."""
        channel = self._channels.get(peer)
        if channel is not None:
            if type(value) is np.ndarray:
                channel.push(rdv, key, value)
                return
            if isinstance(value, np.generic):
                channel.push(rdv, key, np.asarray(value))
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

    def notify(self, peer: TaskKey, method: str, header: dict) -> None:
        """A one-way message to `peer`'s service, best effort (a notice lost is not an error:
        the ones sent here only let the peer reuse a shared-memory segment sooner)."""
        frames = encode({"k": ONEWAY, "m": method, "h": header})
        channel = self._channels.get(peer)
        if channel is None:
            self.nursery.start_soon(self._notify_later, peer, frames)
            return
        with contextlib.suppress(trio.WouldBlock, UnavailableError, trio.ClosedResourceError):
            channel.sock.send_nowait(frames)

    async def _notify_later(self, peer: TaskKey, frames: list) -> None:
        with contextlib.suppress(OpError, trio.ClosedResourceError):
            channel = self._channels.get(peer) or await self._open(peer)
            await channel.sock.send(frames)

    def shm_free(self, peer: TaskKey, names: list[str]) -> int:
        """`peer` copied these segments out: they may carry the next pushes. Returns how many
        were ours and busy."""
        channel = self._channels.get(peer)
        if channel is None or channel.pool is None:
            return 0
        return sum(channel.pool.free(n) for n in names)

    def sweep(self) -> None:
        """Fail pushes that could not be handed to libzmq within the heartbeat timeout."""
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
            endpoint = await local_ipc.prefer_ipc(
                endpoint_of(self.cluster[peer[0]][peer[1]]),
                local_ipc.probe_timeout(self.config.heartbeat_timeout), task=peer)
            async with local_ipc.dealer(self.zctx, endpoint, self.config.socket_config(),
                                        routing_id=b"afpush" + os.urandom(8),
                                        name=f"{task_name(self.me)} -> {task_name(peer)}",
                                        on_receive=channel.on_receive) as sock:
                sock.connect(endpoint)
                channel.sock = sock
                self._channels[peer] = channel
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._channels.pop(peer, None)
            channel.close()


class _PushChannel:
    """Pushes to one peer over one DEALER; see the module docstring."""

    def __init__(self, outbox: PeerOutbox, peer: TaskKey):
        self.outbox = outbox
        self.peer = peer
        self.sock: ZSocket | StreamDealer | None = None
        # Large tensors to a peer on this host go through shared memory (`transport.shm`).
        address = outbox.cluster[peer[0]][peer[1]]
        host = address.rpartition("://")[2].rpartition(":")[0].strip("[]")
        self.pool = (shm.SegmentPool(outbox.shm_max_bytes)
                     if outbox.shm_min_bytes and host in _LOOPBACK else None)
        self._queued: dict[int, tuple[TaskRendezvous, str, float, trio.CancelScope]] = {}
        self._next = 1
        self.rejected = 0  # error replies from the peer (pushes it refused or could not route)

    def push(self, rdv: TaskRendezvous, key: str, value: np.ndarray) -> None:
        inc = rdv.peers.get(self.peer)
        if inc is None:
            self.outbox.push_failures += 1
            fail_push(rdv, self.peer, key, InvalidArgumentError(
                "the step's run_graph named no incarnation for the receiving task (header "
                "'peers': [[job, task, incarnation], ...] of every task the step sends to); "
                "a tensor is never pushed to a task whose life is unknown"))
            return
        header: dict[str, Any] = {"step": rdv.step_id, "key": key, "incarnation": inc}
        self.outbox.pushed_bytes += value.nbytes
        desc = None
        if self.pool is not None and value.nbytes >= self.outbox.shm_min_bytes:
            desc = self.pool.put(value)
        message = {"k": ONEWAY, "m": "push", "h": header, "ref": rdv.step_id}
        if desc is not None:
            header["shm"] = desc
            header["from"] = list(self.outbox.me)
            frames = encode(message)
        else:
            frames = encode(message, [value])
        try:
            self.sock.send_nowait(frames)
        except trio.WouldBlock:  # not connected yet, or the peer is at its high-water mark
            if len(self._queued) >= _MAX_QUEUED:
                self.outbox.push_failures += 1
                fail_push(rdv, self.peer, key, ResourceExhaustedError(
                    f"{len(self._queued)} pushes to this peer are waiting for its connection"))
                return
            n = self._next
            self._next += 1
            scope = trio.CancelScope()
            rdv.in_flight += 1
            self._queued[n] = (rdv, key, trio.current_time(), scope)
            self.outbox.nursery.start_soon(self._send_later, n, frames, scope)
        except (UnavailableError, trio.ClosedResourceError) as e:
            self.outbox.push_failures += 1
            fail_push(rdv, self.peer, key, UnavailableError(f"the connection is closed ({e})"))
        else:
            self.outbox.pushed += 1

    async def _send_later(self, n: int, frames: list, scope: trio.CancelScope) -> None:
        error: OpError | None = None
        with scope:
            try:
                await self.sock.send(frames)
            except (UnavailableError, trio.ClosedResourceError) as e:
                error = UnavailableError(f"the connection is closed ({e})")
        if not scope.cancelled_caught:
            self._complete(n, error)

    def on_receive(self, frames: list) -> None:
        """The socket's reader: a push that is taken gets no reply; an error reply is a push
        the peer refused. With the push's ``ref`` (its step) the step fails here at once
        (``on_refused``); without (the peer could not route the message at all) it is only
        counted, and the step fails on the peer's side or by its deadline."""
        self.rejected += 1
        try:
            header, _, error = decode_message(frames, self.outbox.config.limits)
        except InvalidArgumentError:
            return
        ref = header.get("ref") if isinstance(header, dict) else None
        on_refused = self.outbox.on_refused
        if error is not None and type(ref) is int and on_refused is not None:
            on_refused(self.peer, ref, error)

    def _complete(self, n: int, error: OpError | None) -> None:
        entry = self._queued.pop(n, None)
        if entry is None:
            return
        rdv, key, _, scope = entry
        scope.cancel()
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
        while self._queued:
            n, (_, _, queued, _) = next(iter(self._queued.items()))
            if queued > limit:
                break
            self._complete(n, UnavailableError(
                f"no connection for {timeout}s (heartbeat_timeout): the task is down, hung or "
                "unreachable"))

    def close(self) -> None:
        for n in list(self._queued):
            self._complete(n, UnavailableError("this worker service is shutting down"))
        if self.pool is not None:
            self.pool.close()


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
