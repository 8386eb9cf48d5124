"""What the master reads from a task's ``status`` reply: the cluster, the task's devices and
its incarnation; and the ``af://HOST:PORT`` target a session names (`scheduler.distributed`).

    header = await ask_status(client, timeout=30)     # None: no answer in time
    set_devices(task, header)                         # task.devices, task.incarnation
"""

from __future__ import annotations

from typing import Any

import trio

from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError, UnavailableError
from scheduler.distributed_plan import RemoteDevice, Task


async def ask_status(client: Any, timeout: float) -> Any:
    """The task's ``status`` header, or None if it did not answer within `timeout` seconds.
    A request waits in the socket until the connection is up; one that fails because the
    client declared the task dead is retried once the task answers a heartbeat."""
    with trio.move_on_after(timeout):
        while True:
            try:
                header, _ = await client.call("status", None, timeout=None)
                return header
            except UnavailableError:
                await client.wait_ready()
    return None


def endpoint_of_target(target: str) -> str:
    scheme, sep, rest = target.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "af" or not sep or not host or not port.isdigit():
        raise InvalidArgumentError(
            f"target {target!r} is not 'af://HOST:PORT' (the address of any task of a running "
            "cluster, e.g. the line 'READY af://127.0.0.1:2222' a worker daemon prints)")
    return f"tcp://{rest}"


def parse_cluster(header: Any) -> dict[str, dict[int, str]]:
    try:
        return {str(job): {int(i): str(a) for i, a in tasks}
                for job, tasks in header["cluster"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgumentError(f"malformed status reply: {str(header)[:200]}") from None


def set_devices(t: Task, header: Any) -> None:
    """The devices and incarnation of `t`, from its ``status`` reply."""
    inc = header.get("incarnation")
    if type(inc) is not int or inc <= 0:
        raise InvalidArgumentError(
            f"{t.name} at {t.address} reported no incarnation in its status (got "
            f"{str(inc)[:40]}): it runs another version of actorflow; run the same version "
            "on every task")
    t.devices = [RemoteDevice(DeviceSpec.parse(str(name)).to_string(), str(kind), t.key)
                 for name, kind in header["devices"]]
    t.incarnation = inc
