"""The typed record a worker service fills for ``status`` and the hang doctor (issue 16).

`WorkerService.status_record()` builds one `TaskStatusRecord` per ``status`` request from the
state it owns; `scheduler.observability.task_report` turns it into the reply's fields. The
record is the interface between the two: the status code reads these fields and nothing
else of the service.

    record = service.status_record()
    record.live_steps[0].rdv.waiting()     # [(key, since)] of the step's waiting Recvs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from scheduler.peer_watch import PeerAge
from transport.connection_ages import ConnectionInfo


class KeyInfo(NamedTuple):
    """What a registered partition says of one rendezvous key (`observability.note_graph`)."""

    recv_node: str | None
    send_device: str | None
    recv_device: str | None
    send_node: str | None


@dataclass(frozen=True)
class TaskStatusRecord:
    """One task's state, as its worker service saw it when asked (every field is read from
    state the service keeps anyway; building it costs nothing while nobody asks)."""

    job: str
    task: int
    incarnation: int               # this life of the task (`graph_registry.new_incarnation`)
    devices: Sequence[Any]         # the task's `devices.device.Device` actors
    live_steps: Sequence[Any]      # `remote_rendezvous.StepState` of every live step
    recv_keys: Mapping[str, KeyInfo]  # rendezvous key -> its Send/Recv, of registered graphs
    bytes_received: int            # tensors delivered here by other tasks (cumulative bytes)
    bytes_pushed: int              # tensors pushed from here to other tasks (cumulative bytes)
    shm_pushed: int                # pushes that went through shared memory
    shm_busy: int                  # shared-memory segments not yet copied out by a peer
    peers: Mapping[str, PeerAge]   # heartbeat age of every other task (`peer_watch`)
    # every connection to the task's RPC server (masters, other tasks, status tools): when
    # it was last heard from and last asked something, and who it says it is
    clients: Sequence[ConnectionInfo] = ()


class ReportsStatus(Protocol):
    """What `observability.task_report` needs of a worker service."""

    def status_record(self) -> TaskStatusRecord:
        ...
