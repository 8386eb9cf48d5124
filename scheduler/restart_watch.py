"""The master's watch for tasks that restarted under a step in flight.

A task killed and restarted on its port within the heartbeat timeout looks alive to the
master's RPC client (the new process answers the pings), but the ``run_graph`` it was sent
died with the old process: without a look at the task's incarnation the step would wait for
its deadline. So while a step has been running for longer than a heartbeat interval, the
master asks each task that has not answered it yet for its ``status`` (at most once per
interval per task), and a task whose incarnation changed fails every step in flight on its
old life with AbortedError naming it. The task is then registered again before the next step
(`DistributedRuntime._register`); the variables it held are lost (reads of them fail as
uninitialized, naming them, until they are initialized or restored).

Nothing runs while no step is slow: the loop sleeps one heartbeat interval at a time and
looks at the flights' start times.

    nursery.start_soon(watch_restarts, runtime)
"""

from __future__ import annotations

from typing import Any

import trio

from devices.errors import AbortedError, OpError
from scheduler.distributed_plan import Task


async def watch_restarts(rt: Any) -> None:
    """Forever: every ``heartbeat_interval``, probe the tasks slow steps still wait for."""
    interval = rt.options.rpc.heartbeat_interval
    while True:
        await trio.sleep(interval)
        now = trio.current_time()
        waited: dict[Any, Task] = {}
        for flight in rt._flights:
            if now - flight.started < interval:
                continue
            for part, _ in flight.calls.values():
                t = part.task
                if t.client is not rt._local:  # the in-process task never restarts under us
                    waited[t.key] = t
        if waited:
            async with trio.open_nursery() as nursery:
                for t in waited.values():
                    nursery.start_soon(_probe, rt, t)


async def _probe(rt: Any, t: Task) -> None:
    try:
        header, _ = await t.client.call("status", None,
                                        timeout=rt.options.rpc.heartbeat_timeout)
    except OpError:
        return  # down or slow: the heartbeat declares it dead if it stays silent
    inc = header.get("incarnation") if isinstance(header, dict) else None
    if type(inc) is not int:
        return
    if t.incarnation is not None and inc == t.incarnation:
        return
    old = t.incarnation
    rt._forget(t)
    t.incarnation = inc
    for flight in list(rt._flights):
        for part, _ in list(flight.calls.values()):
            if part.task is t and part.incarnation != inc:
                was = f"{part.incarnation:#018x}" if part.incarnation else f"{old or 0:#018x}"
                flight.fail(AbortedError(
                    f"step {flight.step_id}: task {t.name} ({t.address}) restarted while the "
                    f"step ran (incarnation {was} -> {inc:#018x}); the step's work there is "
                    "lost. The next step registers its partitions again; variables the task "
                    "held are lost until they are initialized or restored"))
                break
