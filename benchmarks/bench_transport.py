"""Transport against raw pyzmq, side by side in one run.

Two measurements, each done by both systems in alternating rounds (these machines are noisy):
  (a) bulk: a 16 MiB float32 tensor sent one way and acknowledged (throughput, GB/s);
  (b) ping: a small request/response round trip (latency, microseconds).

"raw" is plain blocking pyzmq: a DEALER in a thread of this process (so the trio loop of the
"ours" client stays idle meanwhile) against a ROUTER in a separate process, with msgpack
headers and zero-copy frames, doing the minimum: no checks, no deadlines, no heartbeats.
"ours" is `transport.rpc.RpcClient.call` against an `RpcServer` in a separate process, over
TCP (ZeroMQ, what the targets compare); "ours, same host" is the same client and server over
the Unix-domain stream that tasks on one host use (`transport.unix_stream`), for reference.
Both servers decode the tensor into a NumPy view and reply with its byte count.

    python benchmarks/bench_transport.py [--rounds 6] [--pings 400] [--bulk 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import trio
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transport.rpc import RpcClient, RpcConfig, RpcServer  # noqa: E402

BULK_BYTES = 16 << 20
CONFIG = RpcConfig(heartbeat_interval=1.0, heartbeat_timeout=10.0)


# ---------------------------------------------------------------------------------------------
# Servers (run in their own processes: `--serve raw` / `--serve ours`)


def serve_raw() -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    print(sock.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    while True:
        frames = sock.recv_multipart(copy=False)
        header = msgpack.unpackb(frames[1].buffer)
        if header["m"] == "stop":
            break
        n = 0
        for meta, frame in zip(header["t"], frames[2:], strict=True):
            n += np.frombuffer(frame.buffer, np.dtype(meta[0])).reshape(meta[1]).nbytes
        sock.send_multipart([frames[0], msgpack.packb({"id": header["id"], "n": n})])
    sock.close(linger=0)
    ctx.term()


async def serve_ours() -> None:
    async def put(header, tensors):
        return {"n": sum(t.nbytes for t in tensors)}, None

    async def ping(header, tensors):
        return header, None

    def ping_inline(header, tensors):  # a plain function: run inline, no task per request
        return header, None

    handlers = {"put": put, "ping": ping, "ping_inline": ping_inline}
    async with RpcServer(handlers, config=CONFIG) as server:
        print(server.bind(), flush=True)
        print(server.bind(f"unix://@af-bench-transport-{os.getpid()}"), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin


# ---------------------------------------------------------------------------------------------
# Clients


class RawClient:
    """Blocking DEALER; used only from one worker thread."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 0

    def call(self, method: str, tensors: list[np.ndarray]) -> dict:
        self.next_id += 1
        header = {
            "id": self.next_id,
            "m": method,
            "t": [[t.dtype.name, list(t.shape)] for t in tensors],
        }
        self.sock.send_multipart([msgpack.packb(header), *tensors], copy=False)
        return msgpack.unpackb(self.sock.recv())

    def timed(self, method: str, tensors: list[np.ndarray], n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.call(method, tensors)
            out.append(time.perf_counter() - t0)
        return out

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


async def timed_ours(
    client: RpcClient, method: str, tensors: list[np.ndarray], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.call(method, {"x": 1}, tensors, timeout=30)
        out.append(time.perf_counter() - t0)
    return out


def start_server(kind: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = proc.stdout.readline().strip()
    if not endpoint.startswith("tcp://"):
        proc.kill()
        raise RuntimeError(f"{kind} server did not start (said {endpoint!r})")
    if kind == "ours":
        endpoint += " " + proc.stdout.readline().strip()  # and its same-host twin
    return proc, endpoint


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run(rounds: int, pings: int, bulks: int) -> None:
    raw_proc, raw_ep = start_server("raw")
    ours_proc, both = start_server("ours")
    ours_ep, local_ep = both.split()
    raw = RawClient(raw_ep)
    tensor = np.random.default_rng(0).standard_normal(BULK_BYTES // 4, dtype=np.float32)
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        async with RpcClient(ours_ep, config=CONFIG) as ours, \
                RpcClient(local_ep, config=CONFIG) as local:
            await ours.wait_ready()
            await local.wait_ready()
            await timed_ours(local, "ping_inline", [], 200)
            await timed_ours(local, "put", [tensor], 3)
            # warm up both (connections, allocators, code paths)
            await trio.to_thread.run_sync(raw.timed, "ping", [], 200)
            await trio.to_thread.run_sync(raw.timed, "put", [tensor], 3)
            await timed_ours(ours, "ping", [], 200)
            await timed_ours(ours, "put", [tensor], 3)
            for r in range(rounds):
                order = ("raw", "ours") if r % 2 == 0 else ("ours", "raw")
                for who in order:
                    for what, tensors, n in (("ping", [], pings), ("put", [tensor], bulks)):
                        if who == "raw":
                            xs = await trio.to_thread.run_sync(raw.timed, what, tensors, n)
                        else:
                            xs = await timed_ours(ours, what, tensors, n)
                        samples.setdefault((who, what), []).extend(xs)
                    if who == "ours":
                        xs = await timed_ours(ours, "ping_inline", [], pings)
                        samples.setdefault(("ours", "ping_inline"), []).extend(xs)
                        for what, tensors, n in (("ping_inline", [], pings),
                                                 ("put", [tensor], bulks)):
                            xs = await timed_ours(local, what, tensors, n)
                            samples.setdefault(("local", what), []).extend(xs)
    finally:
        raw.close()
        stop = zmq.Context.instance().socket(zmq.DEALER)
        stop.setsockopt(zmq.LINGER, 1000)
        stop.connect(raw_ep)
        stop.send(msgpack.packb({"id": 0, "m": "stop", "t": []}))
        stop.close()
        ours_proc.stdin.close()
        for p in (raw_proc, ours_proc):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    report(samples)


def report(samples: dict[tuple[str, str], list[float]]) -> None:
    print(
        f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, libzmq "
        f"{zmq.zmq_version()}, trio {trio.__version__}"
    )
    print("\n(a) 16 MiB float32 tensor, one way + ack          median     p10      p90   (GB/s)")
    gbps = {}
    for who in ("raw", "ours", "local"):
        xs = [BULK_BYTES / t / 1e9 for t in samples[(who, "put")]]
        gbps[who] = statistics.median(xs)
        print(
            f"    {who:<5} {len(xs):>4} transfers {'':<25}{gbps[who]:7.2f} {pct(xs, 0.1):7.2f} "
            f"{pct(xs, 0.9):7.2f}"
        )
    print(f"    throughput ratio ours/raw = {gbps['ours'] / gbps['raw']:.2f}  (target >= 0.8); "
          f"ours over the same-host stream: {gbps['local'] / gbps['raw']:.2f}")
    print("\n(b) small request/response round trip              median     p10      p90   (us)")
    lat = {}
    rows = (
        ("raw", "ping", "raw"),
        ("ours", "ping", "ours, async handler (task/request)"),
        ("ours", "ping_inline", "ours, plain-function handler (inline)"),
        ("local", "ping_inline", "ours inline, same host (Unix stream)"),
    )
    for who, what, label in rows:
        xs = [t * 1e6 for t in samples[(who, what)]]
        lat[what if who == "ours" else who] = statistics.median(xs)
        print(
            f"    {label:<38} {len(xs):>5} {statistics.median(xs):7.1f} {pct(xs, 0.1):7.1f} "
            f"{pct(xs, 0.9):7.1f}"
        )
    print(
        f"    latency ratio ours/raw = {lat['ping'] / lat['raw']:.2f} with an async handler, "
        f"{lat['ping_inline'] / lat['raw']:.2f} inline  (target <= 2.0); same host: "
        f"{lat['local'] / lat['raw']:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", choices=("raw", "ours"))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pings", type=int, default=400)
    ap.add_argument("--bulk", type=int, default=16)
    args = ap.parse_args()
    if args.serve == "raw":
        serve_raw()
    elif args.serve == "ours":
        trio.run(serve_ours)
    else:
        trio.run(run, args.rounds, args.pings, args.bulk)


if __name__ == "__main__":
    main()
