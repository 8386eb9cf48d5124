"""What both ends of the RPC share: the typed configuration, the deadline timer, and the
names of the message kinds. See `transport.rpc` for the protocol.

State: `DeadlineTimer` holds a heap of deadlines for its owner (a server or a client), touched
only by that owner's trio tasks; everything else here is immutable.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
import zmq

from devices.errors import InvalidArgumentError
from transport.codec import DEFAULT_LIMITS, Limits, encode
from transport.keys import CurveKeys
from transport.zsocket import SocketConfig

# The message kinds: the "k" field of every RPC header. ONEWAY is a request that gets no reply.
REQUEST, REPLY, PING, PONG, CANCEL, ONEWAY = "q", "r", "p", "P", "c", "s"


def request_frames(rid: int, method: str, timeout: float | None, header: Any,
                   tensors: Any = None, who: Any = None) -> list[object]:
    """The frames of request `rid` for `method` (`timeout`: the seconds the server is given;
    `who`: the client's identity, ``{"name", "pid", "id"}``, sent on a connection's first
    request so the server can name it in its `connections`)."""
    env = {"k": REQUEST, "id": rid, "m": method, "t": timeout, "h": header}
    if who is not None:
        env["w"] = who
    return encode(env, tensors)


@dataclass(frozen=True)
class RpcConfig:
    """Everything an RPC endpoint needs; passed in, never read from the environment."""

    heartbeat_interval: float = 1.0  # client pings after this much silence (seconds)
    heartbeat_timeout: float = 5.0  # no message this long: the server is declared dead
    default_timeout: float | None = 60.0  # per-call deadline when `call` gets none
    max_inflight: int = 10_000  # server: concurrent requests before ResourceExhausted
    max_inflight_per_peer: int = 1024  # server: requests of one connection in flight (running,
    #                                    or their reply waiting for room) before it is refused
    max_timeout: float = 7 * 24 * 3600.0  # server: a request's time left is capped to this
    limits: Limits = DEFAULT_LIMITS  # what the decoders accept
    socket: SocketConfig = field(default_factory=SocketConfig)  # linger, HWMs, queue sizes
    # Trust (see SECURITY.md). `keys`: this endpoint's CURVE keys; with them a server's TCP
    # port takes only the clients the keys allow, and a client proves itself with them.
    keys: CurveKeys | None = None
    insecure: bool = False  # a server may bind a non-loopback TCP address without keys

    def __post_init__(self) -> None:
        if not (0 < self.heartbeat_interval < self.heartbeat_timeout):
            raise InvalidArgumentError(
                f"need 0 < heartbeat_interval ({self.heartbeat_interval}) < heartbeat_timeout "
                f"({self.heartbeat_timeout})"
            )
        if not (self.max_timeout > 0 and self.max_inflight_per_peer >= 1):
            raise InvalidArgumentError(
                f"need max_timeout > 0 (got {self.max_timeout}) and max_inflight_per_peer >= 1 "
                f"(got {self.max_inflight_per_peer})")
        if self.default_timeout is not None and not self.default_timeout > 0:
            raise InvalidArgumentError(
                f"default_timeout must be > 0 or None, got {self.default_timeout}"
            )

    def socket_config(self) -> SocketConfig:
        """The socket options, with libzmq's own size caps derived from `limits`."""
        lim = self.limits
        return dataclasses.replace(
            self.socket,
            max_frame_bytes=max(lim.max_tensor_bytes, lim.max_header_bytes),
            max_frames=lim.max_frames + 1,  # + the routing frame
            max_message_bytes=lim.max_total_bytes + lim.max_frames * 8,
            first_frame_bytes=lim.max_header_bytes,
            curve=self.keys,
        )

    def check_timeout(self, timeout: object) -> float | None:
        """A request's time left as the server will use it: None (no deadline), or a number
        >= 0, capped to `max_timeout` (infinity included). Raises InvalidArgumentError for
        anything else (NaN, a negative number, a non-number), naming the value."""
        if timeout is None:
            return None
        if type(timeout) not in (int, float) or math.isnan(timeout) or timeout < 0:
            raise InvalidArgumentError(
                f"a request's 't' (seconds left) must be a number >= 0 or None, got "
                f"{short(timeout)}")
        return min(float(timeout), self.max_timeout)


def owned_context(ctx: zmq.Context | None) -> tuple[zmq.Context, bool]:
    """`ctx`, or a new context that the caller owns (and must terminate): ``(ctx, owned)``."""
    return (ctx, False) if ctx is not None else (zmq.Context(), True)


class DeadlineTimer:
    """Many deadlines served by one timer task, instead of a cancel scope with a deadline per
    call (about 25 us each on a small VM, more than the rest of a call).

    State: a heap of ``(deadline, seq, key)``: `seq` counts additions, so two equal deadlines
    are ordered by it and keys are never compared (a server's keys mix its ZeroMQ peers,
    bytes, with its Unix-stream peers, ints: comparing them would raise). Entries are never
    removed early; when one comes due, `on_expire(key, deadline)` decides whether it still
    matters (the owner compares the deadline it stored), and the heap is rebuilt from the
    live entries when stale ones pile up.
    The timer wakes at most once per `RESOLUTION` seconds, so a deadline fires up to that late.
    Only the owner's trio tasks touch it.
    """

    RESOLUTION = 0.005

    def __init__(self, on_expire: Callable[[Any, float], None]):
        self._on_expire = on_expire
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = 0  # the tie-breaker of the next entry
        self._scope: trio.CancelScope | None = None  # the timer's sleep; its deadline = next due
        self._not_before = -math.inf  # rate limit of the timer's wake-ups

    def add(self, deadline: float, key: Any) -> None:
        """Call ``on_expire(key, deadline)`` once `deadline` (trio time) has passed."""
        if deadline == math.inf:
            return
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, key))
        if self._scope is not None and deadline < self._scope.deadline:
            # rare: deadlines mostly arrive in order
            self._scope.deadline = max(deadline, self._not_before)

    def compact(self, live: list[tuple[float, Any]]) -> None:
        """Replace the heap by `live` if it is mostly stale entries."""
        if len(self._heap) > 4 * len(live) + 1024:
            heap = []
            for deadline, key in live:
                if deadline != math.inf:
                    self._seq += 1
                    heap.append((deadline, self._seq, key))
            heapq.heapify(heap)
            self._heap = heap

    def __len__(self) -> int:
        return len(self._heap)

    async def run(self) -> None:
        """The timer task: run it in the owner's nursery; it runs until cancelled."""
        while True:
            due = max(self._heap[0][0], self._not_before) if self._heap else math.inf
            with trio.CancelScope(deadline=due) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            heap = self._heap
            now = trio.current_time()
            self._not_before = now + self.RESOLUTION
            while heap and heap[0][0] <= now:
                deadline, _, key = heapq.heappop(heap)
                self._on_expire(key, deadline)


class Pending:
    """A reply that a plain-function handler gives later, with no task waiting for it.

    The handler returns it and keeps it; the handler's side settles it once with `resolve` or
    `fail` (from the trio thread). The asking side (the `RpcServer`, or an in-process caller)
    learns the outcome through `then`, and calls `cancel` when the client gave up or the
    deadline passed: ``on_cancel`` (set by the handler) is told, and a later settle is ignored.

    State: ``outcome`` is None until settled, then ``(header, tensors, error)``; ``_then`` is
    the asking side's callback. Both callbacks are dropped once the Pending is settled or
    cancelled: they are one-shot, and the asking side's callback usually refers back to the
    Pending (through its request), a cycle that would keep the outcome's tensors alive until
    the cyclic garbage collector ran instead of freeing them when the reply is sent.
    """

    __slots__ = ("on_cancel", "outcome", "_then")

    def __init__(self) -> None:
        self.on_cancel: Callable[[BaseException], None] | None = None
        self.outcome: tuple[Any, list, BaseException | None] | None = None
        self._then: Callable[[Any, list, BaseException | None], None] | None = None

    def resolve(self, header: Any, tensors: list | None = None) -> None:
        self._settle((header, tensors if tensors is not None else [], None))

    def fail(self, error: BaseException) -> None:
        self._settle((None, [], error))

    def _settle(self, outcome: tuple[Any, list, BaseException | None]) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        then, self._then, self.on_cancel = self._then, None, None
        if then is not None:
            then(*outcome)

    def then(self, fn: Callable[[Any, list, BaseException | None], None]) -> None:
        """Call ``fn(header, tensors, error)`` once settled (at once if it is already)."""
        if self.outcome is not None:
            fn(*self.outcome)
        else:
            self._then = fn

    def cancel(self, error: BaseException) -> None:
        """The asker gave up: settle with `error` (without calling `then`), tell the handler."""
        if self.outcome is not None:
            return
        self.outcome = (None, [], error)
        on_cancel, self._then, self.on_cancel = self.on_cancel, None, None
        if on_cancel is not None:
            on_cancel(error)


def short(v: object, n: int = 120) -> str:
    """`repr(v)`, cut to `n` characters for error messages."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."
