"""Transport against raw pyzmq, side by side in one run.

Two measurements, each done by both systems in alternating rounds (these machines are noisy):
  (a) bulk: a 16 MiB float32 tensor sent one way and acknowledged (throughput, GB/s);
  (b) ping: a small request/response round trip (latency, microseconds).

"raw" is plain blocking pyzmq: a DEALER in a thread of this process (so the trio loop of the
"ours" client stays idle meanwhile) against a ROUTER in a separate process, with msgpack
headers and zero-copy frames, doing the minimum: no checks, no deadlines, no heartbeats.
"ours" is `transport.rpc.RpcClient.call` against an `RpcServer` in a separate process, over
TCP (ZeroMQ, what the targets compare); "ours, same host" is the same client and server over
the Unix-domain stream that tasks on one host use (`transport.unix_stream`, a socket in the
0700 runtime directory, uid-checked), for reference; "ours + CURVE" is the same client and
server over TCP with the cluster's keys (`transport.keys`: authenticated and encrypted, what
tasks on different hosts pay). Every server decodes the tensor into a NumPy view and replies
with its byte count.

    python benchmarks/bench_transport.py [--rounds 6] [--pings 400] [--bulk 16]

``--nullmodel`` measures instead what CURVE costs a training step: the dense null-model step
of `benchmarks/bench_distributed.py` (10 MiB read from 2 PS tasks, updated, written back) by
one worker, its 3 tasks as daemons, over TCP (the cluster bound to this host's non-loopback
address, so no Unix sockets and no shared memory: as between hosts) with the cluster's keys
and with ``--insecure``, alternating; and on loopback (same host: Unix sockets, no CURVE).

    python benchmarks/bench_transport.py --nullmodel [--steps 30] [--rounds 3]
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

import dataclasses  # noqa: E402
import tempfile  # noqa: E402

from transport.keys import create_key_dir, load_key_dir  # noqa: E402
from transport.rpc import RpcClient, RpcConfig, RpcServer  # noqa: E402
from transport.runtime_dir import default_runtime_dir  # noqa: E402

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


async def serve_ours(keys_dir: str | None = None) -> None:
    async def put(header, tensors):
        return {"n": sum(t.nbytes for t in tensors)}, None

    async def ping(header, tensors):
        return header, None

    def ping_inline(header, tensors):  # a plain function: run inline, no task per request
        return header, None

    handlers = {"put": put, "ping": ping, "ping_inline": ping_inline}
    config = CONFIG if keys_dir is None else dataclasses.replace(
        CONFIG, keys=load_key_dir(keys_dir))
    async with RpcServer(handlers, config=config) as server:
        print(server.bind(), flush=True)
        print(server.bind(f"unix://{default_runtime_dir()}/bench-transport-{os.getpid()}"),
              flush=True)
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


def start_server(kind: str, keys_dir: str | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, *(["--keys", keys_dir] if keys_dir else [])],
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
    keys_dir = tempfile.mkdtemp(prefix="af-bench-keys-")
    create_key_dir(keys_dir)
    curve_proc, curve_both = start_server("ours", keys_dir)
    curve_ep = curve_both.split()[0]
    curve_config = dataclasses.replace(CONFIG, keys=load_key_dir(keys_dir))
    raw = RawClient(raw_ep)
    tensor = np.random.default_rng(0).standard_normal(BULK_BYTES // 4, dtype=np.float32)
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        async with RpcClient(ours_ep, config=CONFIG) as ours, \
                RpcClient(local_ep, config=CONFIG) as local, \
                RpcClient(curve_ep, config=curve_config) as curve:
            await ours.wait_ready()
            await local.wait_ready()
            await curve.wait_ready()
            await timed_ours(curve, "ping_inline", [], 200)
            await timed_ours(curve, "put", [tensor], 3)
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
                            xs = await timed_ours(curve, what, tensors, n)
                            samples.setdefault(("curve", what), []).extend(xs)
    finally:
        raw.close()
        stop = zmq.Context.instance().socket(zmq.DEALER)
        stop.setsockopt(zmq.LINGER, 1000)
        stop.connect(raw_ep)
        stop.send(msgpack.packb({"id": 0, "m": "stop", "t": []}))
        stop.close()
        ours_proc.stdin.close()
        curve_proc.stdin.close()
        for p in (raw_proc, ours_proc, curve_proc):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        import shutil

        shutil.rmtree(keys_dir, ignore_errors=True)
    report(samples)


def report(samples: dict[tuple[str, str], list[float]]) -> None:
    print(
        f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, libzmq "
        f"{zmq.zmq_version()}, trio {trio.__version__}"
    )
    print("\n(a) 16 MiB float32 tensor, one way + ack          median     p10      p90   (GB/s)")
    gbps = {}
    for who in ("raw", "ours", "local", "curve"):
        xs = [BULK_BYTES / t / 1e9 for t in samples[(who, "put")]]
        gbps[who] = statistics.median(xs)
        print(
            f"    {who:<5} {len(xs):>4} transfers {'':<25}{gbps[who]:7.2f} {pct(xs, 0.1):7.2f} "
            f"{pct(xs, 0.9):7.2f}"
        )
    print(f"    throughput ratio ours/raw = {gbps['ours'] / gbps['raw']:.2f}  (target >= 0.8); "
          f"ours over the same-host stream: {gbps['local'] / gbps['raw']:.2f}; "
          f"with CURVE (TCP, keys): {gbps['curve'] / gbps['raw']:.2f} = "
          f"{gbps['ours'] / gbps['curve']:.1f}x slower than without")
    print("\n(b) small request/response round trip              median     p10      p90   (us)")
    lat = {}
    rows = (
        ("raw", "ping", "raw"),
        ("ours", "ping", "ours, async handler (task/request)"),
        ("ours", "ping_inline", "ours, plain-function handler (inline)"),
        ("local", "ping_inline", "ours inline, same host (Unix stream)"),
        ("curve", "ping_inline", "ours inline, TCP + CURVE"),
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
        f"{lat['local'] / lat['raw']:.2f}; CURVE costs {lat['curve'] - lat['ping_inline']:.1f} us "
        "a round trip"
    )


def _outside_address() -> str | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def nullmodel_step_ms(host: str, secure: bool, steps: int) -> float:
    """Median ms of the dense null-model step, one worker, every task a daemon on `host`."""
    import actorflow as af
    from actorflow.cluster import LocalCluster
    from benchmarks.bench_distributed import build_null_models

    args = [] if secure else ["--insecure"]
    with LocalCluster(ps=2, workers=1, host=host, daemon_args=args) as cluster:
        assert (cluster.key_dir is not None) == secure
        opts = af.RPCOptions(key_dir=str(cluster.key_dir) if secure else None)
        g, model_steps, _, init = build_null_models(0)
        with af.Session(cluster.target("worker", 0), graph=g,
                        config=af.ConfigProto(rpc_options=opts)) as sess:
            sess.run(init)
            run = sess.make_callable(model_steps["dense"])
            for _ in range(3):
                run()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run_nullmodel(steps: int, rounds: int) -> None:
    from benchmarks.bench_distributed import TF_MS

    host = _outside_address()
    if host is None:
        print("this host has no non-loopback address: TCP between hosts cannot be measured")
        return
    got: dict[str, list[float]] = {"tcp+curve": [], "tcp insecure": [], "same host": []}
    for r in range(rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        for secure in order:
            got["tcp+curve" if secure else "tcp insecure"].append(
                nullmodel_step_ms(host, secure, steps))
        got["same host"].append(nullmodel_step_ms("127.0.0.1", True, steps))
    print(f"dense null-model step (10 MiB each way, 2 PS, 1 worker, daemons), median ms over "
          f"{steps} steps, {rounds} rounds; TCP on {host}")
    for k, xs in got.items():
        print(f"    {k:<14} {statistics.median(xs):8.1f} ms   (rounds: "
              f"{', '.join(f'{x:.1f}' for x in xs)})")
    cost = statistics.median(got["tcp+curve"]) / statistics.median(got["tcp insecure"])
    print(f"    CURVE costs {cost:.2f}x "
          f"a step over TCP; TensorFlow 2.21 (gRPC, loopback, from bench_distributed): "
          f"{TF_MS['dense'][1]} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", choices=("raw", "ours"))
    ap.add_argument("--keys", help="(--serve ours) serve TCP with CURVE and these keys")
    ap.add_argument("--nullmodel", action="store_true",
                    help="measure CURVE's cost on the dense null-model step instead")
    ap.add_argument("--steps", type=int, default=30, help="(--nullmodel) timed steps")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pings", type=int, default=400)
    ap.add_argument("--bulk", type=int, default=16)
    args = ap.parse_args()
    if args.nullmodel:
        run_nullmodel(args.steps, args.rounds)
    elif args.serve == "raw":
        serve_raw()
    elif args.serve == "ours":
        trio.run(serve_ours, args.keys)
    else:
        trio.run(run, args.rounds, args.pings, args.bulk)


if __name__ == "__main__":
    main()
