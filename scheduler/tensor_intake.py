"""Tensors other tasks send into this task's steps: the worker service's ``push``,
``deliver`` and ``shm_free`` handlers, and their refusal of tensors meant for another life of
this task.

What it owns
------------
`TensorIntake` takes every tensor another task's Send hands this task (`scheduler.
peer_outbox` on the sending side) and puts it into the receiving step's rendezvous
(`scheduler.remote_rendezvous.StepTable`), after checking it:

1. **Incarnation.** A ``push`` or ``deliver`` names the life of this task it was meant for
   (``incarnation``, from the step's ``peers``). Another one (this task restarted since the
   sender's master looked) is refused with AbortedError naming this task
   (`GraphRegistry.refuse_tensor`, counted in ``stale_refused``): nothing of it is kept, not
   even in the step table, and a shared-memory segment it came in is handed back first.
2. **Key and dtype.** The key must be one a registered partition here receives
   (`GraphRegistry.expected`), with that Recv's dtype; anything else is InvalidArgument.
3. **Step.** A step that is over here (finished or aborted) drops it (``dropped``); an early
   one creates the step's state (its bytes counted against the orphan limits).

``deliver`` is a request: a refused tensor is answered with the error and the step is left
alone. ``push`` is its one-way twin: a refused tensor fails its step here too (the master
hears of it from this task's ``run_graph``), and the error goes back to the sender with the
push's ``ref`` (`transport.rpc_server`), so the sender's step fails at once; a stale push
touches nothing here. A tensor from a task on this host may come as a shared-memory
descriptor ``{shm: descriptor, from: [job, task]}`` instead of a frame: it is copied out of
the segment (`transport.shm`) into the receiving CPU device's pool, and the sender is sent
``shm_free`` so it can reuse the segment. The other way round, `shm_free` from a task this one
pushed to frees our segments, and `push_refused` (the outbox's callback when a peer refused
one of our pushes) fails our step.

State (owned by the service's trio thread; every handler runs inline in the RPC reader):
the counters ``delivered``, ``dropped``, ``bytes_received`` (tensors taken, riders on
``run_graph`` included: `take_rider`) and ``refused_by_peers``; the `shm.SegmentReader` of
segments read here (closed by `close`). The step table and the outbox are the service's,
attached once it serves (`attach`).

    intake = TensorIntake(("ps", 0), incarnation, registry, devices_by_name, rpc_limits, cluster)
    intake.attach(table, outbox)
    handlers = {"push": intake.push, "deliver": intake.deliver, "shm_free": intake.shm_free}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from devices.errors import InternalError, InvalidArgumentError, OpError
from devices.kernels.sendrecv import Landed
from scheduler.graph_registry import GraphRegistry, StaleTensorError
from scheduler.peer_outbox import PeerOutbox
from scheduler.remote_rendezvous import StepTable, task_name
from scheduler.request_fields import U64, header_map, int_field, str_field
from transport import shm
from transport.codec import Limits


class TensorIntake:
    """The ``push``/``deliver``/``shm_free`` handlers of one worker service (see the module
    docstring)."""

    def __init__(self, me: tuple[str, int], incarnation: int, graphs: GraphRegistry,
                 by_name: Mapping[str, Any], limits: Limits,
                 cluster: Mapping[str, Mapping[int, str]]) -> None:
        self.me = me
        self.incarnation = incarnation
        self.graphs = graphs
        self.by_name = by_name
        self.limits = limits
        self.cluster = cluster
        self.table: StepTable | None = None
        self.outbox: PeerOutbox | None = None
        self.shm_reader = shm.SegmentReader()
        self.delivered = self.dropped = self.refused_by_peers = 0
        self.bytes_received = 0  # tensors from other tasks, riders included (status, #16)

    def attach(self, table: StepTable, outbox: PeerOutbox) -> None:
        """The service serves: its step table and outbox exist now."""
        self.table, self.outbox = table, outbox

    def close(self) -> None:
        self.shm_reader.close()

    # -- the handlers ------------------------------------------------------------------------
    def deliver(self, header: Any, tensors: Any) -> tuple[None, list]:
        h = header_map(header, "deliver")
        step_id = int_field(h, "step", U64)
        key = str_field(h, "key")
        desc = h.get("shm")
        if h.get("incarnation") != self.incarnation:  # refused, keeping nothing
            if desc is not None:
                self._release(h, desc)  # the sender may reuse its segment
            self.graphs.refuse_tensor(h, step_id, key)
        if not isinstance(tensors, list) or len(tensors) != (0 if desc is not None else 1):
            raise InvalidArgumentError("deliver takes exactly one tensor, as a frame or in "
                                       "shared memory ('shm'), not both")
        st = None
        try:
            expected = self.expected(key)
            st = self.table.for_delivery(step_id)
            if st is None:
                self.dropped += 1  # the step is over here (finished or aborted)
                return None, []
            value = tensors[0] if desc is None else self.shm_reader.take(
                desc, self.limits, self._allocator(key))
        finally:
            if desc is not None:
                self._release(h, desc)
        self.check_dtype(key, value, expected)
        self.table.add_orphan_bytes(st, value.nbytes)
        st.rdv.deliver(key, Landed(value))
        self.delivered += 1
        self.bytes_received += value.nbytes
        return None, []

    def push(self, header: Any, tensors: Any) -> tuple[None, list]:
        """One-way `deliver`: a refused tensor fails its step here (and on its sender, when the
        push carried a ``ref``); one meant for a previous life of this task touches nothing."""
        try:
            return self.deliver(header, tensors)
        except StaleTensorError:
            raise
        except Exception as e:  # a bug here too must fail the step, not leave it waiting
            if not isinstance(e, OpError):
                e = InternalError(f"{type(e).__name__}: {e}")
            step_id = header.get("step") if isinstance(header, dict) else None
            if type(step_id) is int and 0 <= step_id <= U64:
                self.table.abort(step_id, type(e)(f"a tensor pushed to this task for step "
                                                  f"{step_id} was refused: {e.message}"))
            raise e from None

    def shm_free(self, header: Any, tensors: Any) -> tuple[None, list]:
        """One-way, from a task we pushed to: these segments were copied out."""
        h = header_map(header, "shm_free")
        names, sender = h.get("names"), h.get("from")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)
                and isinstance(sender, list) and len(sender) == 2
                and isinstance(sender[0], str) and type(sender[1]) is int):
            raise InvalidArgumentError("shm_free needs 'names' (a list of str) and 'from' "
                                       "([job, task])")
        self.outbox.shm_free((sender[0], sender[1]), names)
        return None, []

    def push_refused(self, peer: tuple[str, int], step_id: int, error: Any) -> None:
        """`peer` refused a tensor this task pushed for `step_id`: fail the step here now."""
        self.refused_by_peers += 1
        if not isinstance(error, OpError) or not 0 <= step_id <= U64:
            return
        self.table.abort(step_id, type(error)(
            f"step {step_id}: {task_name(peer)} refused a tensor {task_name(self.me)} sent "
            f"it: {error.message}", node=error.node, device=error.device))

    # -- checks, shared with run_graph's riders ----------------------------------------------
    def take_rider(self, key: str, value: Any) -> Landed:
        """A tensor that rode on ``run_graph`` (checked by `check_dtype` before the step
        started): counted as delivered, ready for the step's rendezvous."""
        self.delivered += 1
        self.bytes_received += value.nbytes
        return Landed(value)

    def expected(self, key: str) -> dict[np.dtype, int]:
        return self.graphs.expected(key)

    def check_dtype(self, key: str, value: Any, expected: dict[np.dtype, int]) -> None:
        if not isinstance(value, np.ndarray) or value.dtype not in expected:
            raise InvalidArgumentError(
                f"deliver: '{key}' carries {getattr(value, 'dtype', type(value).__name__)}, "
                f"but its Recv on {task_name(self.me)} expects "
                f"{' or '.join(map(str, expected))}")

    def _allocator(self, key: str) -> Callable[[tuple, Any], np.ndarray]:
        """Where a tensor from shared memory lands: the receiving CPU device's pool."""
        dev = self.by_name.get(key.rpartition("->")[2])
        if dev is not None and dev.device_type == "CPU":
            return lambda shape, dtype: dev.pool.empty(shape, dtype, key)
        return lambda shape, dtype: np.empty(shape, dtype)

    def _release(self, h: dict, desc: Any) -> None:
        """Tell the sender its segment was copied out (or will never be)."""
        sender = h.get("from")
        if (isinstance(sender, list) and len(sender) == 2 and isinstance(sender[0], str)
                and type(sender[1]) is int and sender[1] in self.cluster.get(sender[0], {})
                and isinstance(desc, list) and desc and isinstance(desc[0], str)):
            self.outbox.notify((sender[0], sender[1]), "shm_free",
                               {"names": [desc[0]], "from": list(self.me)})
