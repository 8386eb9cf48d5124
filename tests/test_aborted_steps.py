"""Aborted steps release everything, on real daemons on 127.0.0.1 (``af.LocalCluster``).

Each step pushes an 8 MiB tensor from the worker to the parameter server, whose part of the
step then fails on a bad gather index. 500 of them must leave every task as it was: pool bytes
in use back at their baseline, no step, orphan or busy shared-memory segment left, no async
kernel waiting, and the daemons' resident memory grown by less than 64 MiB.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import trio

import actorflow as af
from actorflow.cluster import LocalCluster
from transport import local_ipc
from transport.rpc import RpcClient, RpcConfig

N = 2 * 1024 * 1024  # float32: 8 MiB


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _status(address: str) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        # the task's private same-host socket (LocalCluster's TCP ports want its keys)
        endpoint = await local_ipc.prefer_ipc(f"tcp://{address}")
        async with RpcClient(endpoint, config=RpcConfig()) as c:
            header, _ = await c.call("status", None, timeout=10)
            return header

    return trio.run(ask)


def _in_use(header: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(pool bytes in use, live blocks, async kernels waiting) of each device of a task."""
    return [(d["pool"]["bytes_in_use"], d["pool"]["live_blocks"], d["async_kernels_waiting"])
            for d in header["device_stats"]]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_500_aborted_steps_with_8_mib_pushes_release_everything() -> None:
    with LocalCluster(ps=1, workers=1) as cluster:
        g = af.Graph()
        with g.as_default():
            with af.device("/job:worker/task:0"):
                x = af.placeholder(af.float32, [N], name="x")
                big = x * 2.0
            with af.device("/job:ps/task:0"):
                idx = af.placeholder(af.int32, [None], name="idx")
                y = af.reduce_sum(af.gather(big, idx))
        rng = np.random.default_rng()
        xv = rng.standard_normal(N).astype(np.float32)
        bad = np.array([0, N + 12345], np.int32)
        addresses = {t: cluster.as_dict()[t[0]][t[1]] for t in cluster.daemon_tasks()}
        with af.Session(cluster.target("worker", 0), graph=g) as s:
            ok = s.run(y, {x: xv, idx: np.array([3, 5], np.int32)})
            np.testing.assert_allclose(ok, 2 * (xv[3] + xv[5]), rtol=1e-5)

            def abort_steps(n: int) -> None:
                for _ in range(n):
                    with pytest.raises(af.InvalidArgumentError, match="out of range"):
                        s.run(y, {x: xv, idx: bad})

            abort_steps(10)  # warm up: connections, shared-memory segments, pool caches
            base = {t: _in_use(_status(a)) for t, a in addresses.items()}
            rss0 = {t: _rss_mib(cluster.pid(*t)) for t in addresses}
            t0 = time.monotonic()
            abort_steps(500)
            took = time.monotonic() - t0
            # the last step's blocks go once its callbacks return: poll, bounded
            limit = time.monotonic() + 10
            while True:
                now = {t: _in_use(_status(a)) for t, a in addresses.items()}
                if now == base or time.monotonic() > limit:
                    break
                time.sleep(0.05)
            assert now == base, f"pool bytes, live blocks, async kernels: {now} != {base}"
            for t, a in addresses.items():
                svc = _status(a)["service"]
                assert svc["steps"]["live"] == 0 and svc["steps"]["orphans"] == 0, (t, svc)
                assert svc["shm_busy"] == 0, (t, svc)
                grew = _rss_mib(cluster.pid(*t)) - rss0[t]
                assert grew < 64, f"{t}: RSS grew {grew:.0f} MiB over 500 aborted steps"
            # and the cluster still works
            np.testing.assert_allclose(s.run(y, {x: xv, idx: np.array([7], np.int32)}),
                                       2 * xv[7], rtol=1e-5)
    print(f"500 aborted steps in {took:.1f}s")
