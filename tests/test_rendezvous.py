"""The rendezvous: values meet their receivers whichever comes first, subscribers are called
once (with the ``resume`` hint of the sender), and an abort reaches every waiter."""

import pytest
import trio
import trio.testing

from devices.errors import AbortedError, AlreadyExistsError, InternalError
from scheduler.rendezvous import Rendezvous


def test_subscribers_are_called_once_with_the_senders_resume_hint() -> None:
    r = Rendezvous(1)
    calls: list = []
    r.subscribe("a", lambda resume: calls.append(("a", resume, r.try_recv("a"))))
    r.subscribe("b", lambda resume: calls.append(("b", resume, r.try_recv("b"))))
    assert calls == []
    r.send("a", 1.0)
    r.send("b", 2.0, resume=True)
    assert calls == [("a", False, 1.0), ("b", True, 2.0)]
    r.send("c", 3.0)  # the value first: a subscriber is called at once
    r.subscribe("c", lambda resume: calls.append(("c", resume, r.try_recv("c"))))
    assert calls[-1] == ("c", False, 3.0)
    with pytest.raises(AlreadyExistsError):
        r.send("d", 1) or r.send("d", 2)
    r.subscribe("e", lambda resume: None)
    with pytest.raises(InternalError, match="two receivers"):
        r.subscribe("e", lambda resume: None)


async def test_abort_wakes_subscribers_and_waiting_receivers() -> None:
    r = Rendezvous(2)
    seen: list = []

    def on(resume: bool) -> None:
        try:
            r.try_recv("x")
        except AbortedError as e:
            seen.append(str(e))

    r.subscribe("x", on)
    async with trio.open_nursery() as nursery:
        async def waiter() -> None:
            with pytest.raises(AbortedError, match="stop"):
                await r.recv("y")
            seen.append("recv woke")

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()  # the waiter waits in recv
        r.abort(AbortedError("stop"))
    assert len(seen) == 2 and "recv woke" in seen and "stop" in seen[0]
    r.send("z", 1)  # after an abort, values are dropped
    with pytest.raises(AbortedError):
        r.try_recv("z")


def test_a_task_rendezvous_holds_only_for_the_tasks_it_was_told() -> None:
    from scheduler.remote_rendezvous import TaskRendezvous

    class Outbox:  # records pushes; routes by the key's task
        def __init__(self) -> None:
            self.pushed: list = []

        def route(self, key: str):
            task = key.rpartition("task:")[2][0]
            return None if task == "0" else ("ps", int(task))

        def push(self, rdv, peer, key, value) -> None:
            self.pushed.append((peer, key))

    import numpy as np

    out = Outbox()
    r = TaskRendezvous(7, out)
    r.held = {("ps", 1): []}
    r.send("a->/job:ps/task:1", np.ones(2))
    r.send("b->/job:ps/task:2", np.ones(2))  # not a task it holds for: pushed at once
    held = r.take_held()
    assert [k for k, _ in held[("ps", 1)]] == ["a->/job:ps/task:1"]
    assert out.pushed == [(("ps", 2), "b->/job:ps/task:2")]
    r.send("c->/job:ps/task:1", np.ones(2))  # no longer holding
    assert out.pushed[-1] == (("ps", 1), "c->/job:ps/task:1")
