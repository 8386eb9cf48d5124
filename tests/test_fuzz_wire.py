"""A hostile peer against a real worker daemon, over both transports (issue 12, point 4).

Hypothesis generates the messages, seeded (``derandomize``), and a seeded NumPy generator
mutates each a few more times at the byte level (hypothesis costs ~3 ms a message here, so it
draws the structure and NumPy the volume): random frames, real requests
truncated or with bytes flipped, real requests whose header fields are replaced by arbitrary
msgpack values (deep nesting included), tensors whose descriptors declare huge shapes, and
msgpack nested thousands deep. Each goes to the daemon over ZeroMQ/TCP (as an authorized CURVE
client: the parsers behind the handshake are what a key holder reaches) and over the same-host
Unix stream; the stream (and the TCP port, below ZeroMQ's framing) also gets framing-level
garbage on fresh connections (random bytes,
huge declared frame counts and lengths, prefixes cut short, connections left hanging after
declaring gigabytes).

Afterwards the daemon must answer ``status`` within 100 ms, run a real step, and have grown
by less than `RSS_BUDGET` bytes; it must have answered garbage with error replies (so it was
reading all along).
"""

from __future__ import annotations

import socket
import struct
import time

import msgpack
import numpy as np
import pytest
import trio
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actorflow as af
from actorflow.cluster import LocalCluster
from transport.codec import VERSION, encode
from transport.keys import load_key_dir
from transport.local_ipc import ipc_endpoint
from transport.rpc import RpcClient, RpcConfig
from transport.rpc_core import request_frames

pytestmark = pytest.mark.multiprocess

BATCH = 20  # messages hypothesis generates per example
VARIANTS = 5  # each is sent as generated and as VARIANTS - 1 seeded byte-level mutations
EXAMPLES = 100  # BATCH * VARIANTS * EXAMPLES = 10,000 messages over each transport
JUNK = 10  # framing-level junk per example, on fresh same-host connections
SEED = 20261203
RSS_BUDGET = 96 << 20
DEVICE = "/job:worker/replica:0/task:0/device:CPU:0"


def _real_messages() -> list[list[bytes]]:
    """Well-formed requests of every kind the daemon serves, as frames (bytes)."""
    t = np.arange(12, dtype=np.float32).reshape(3, 4)
    msgs = [
        request_frames(1, "status", 5.0, None),
        request_frames(2, "register_graph", 5.0, {"device": DEVICE},
                       [np.frombuffer(b"\x93\x01\x02\x03" * 8, np.uint8)]),
        request_frames(3, "run_graph", 5.0, {"step": 7, "graphs": [1], "args": [0], "n_args": 1,
                                             "rets": [0], "n_rets": 1, "trace": False}, [t]),
        request_frames(4, "deliver", 5.0, {"step": 7, "key": "a;b;c"}, [t]),
        request_frames(5, "abort", 5.0, {"step": 7, "code": 10, "message": "x"}),
        request_frames(6, "reset", 5.0, {"containers": ["fuzz"]}),
        request_frames(7, "shm_free", 5.0, {"names": ["af1x000000000000"], "from": ["w", 0]}),
        encode({"k": "s", "m": "push", "h": {"step": 7, "key": "k"}}, [t]),
        # a push naming a life of the task (not this one) and a ref: refused, answered by ref
        encode({"k": "s", "m": "push", "h": {"step": 8, "key": "k", "incarnation": 5},
                "ref": 8}, [t]),
        request_frames(8, "deliver", 5.0, {"step": 9, "key": "a;b", "incarnation": 5}, [t]),
        request_frames(9, "run_graph", 5.0, {"step": 10, "graphs": [1], "args": [],
                                             "n_args": 0, "rets": [], "n_rets": 0,
                                             "incarnation": 5, "peers": [["w", 0, 5]]}),
        encode({"k": "p"}),
        encode({"k": "c", "id": 3}),
    ]
    return [[bytes(memoryview(f).cast("B")) if not isinstance(f, bytes) else f for f in m]
            for m in msgs]


REAL = _real_messages()

# Arbitrary msgpack values, nested (strings, ints of every width, floats incl. nan/inf, ...)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), inner, max_size=4),
    max_leaves=12)


def _truncate(m: list[bytes], cut: int, drop: int) -> list[bytes]:
    head = m[0][: cut % (len(m[0]) + 1)]
    return [head, *m[1:]][: max(1, len(m) - drop)]


def _flip(m: list[bytes], flips: list[tuple[int, int, int]]) -> list[bytes]:
    out = [bytearray(f) for f in m]
    for frame, pos, byte in flips:
        f = out[frame % len(out)]
        if f:
            f[pos % len(f)] = byte
    return [bytes(f) for f in out]


def _replace(m: list[bytes], where: int, field: str, value: object) -> list[bytes]:
    env = msgpack.unpackb(m[0], raw=False, strict_map_key=False)
    spot = where % 4
    if spot == 0 and isinstance(env[1], dict):
        env[1][field] = value  # an RPC field: k, id, m, t, h
    elif spot == 1:
        env[2] = value  # the tensor descriptors
    elif spot == 2:
        env[3] = value  # the tensor names
    else:
        env[4] = value  # the error field
    return [msgpack.packb(env, use_bin_type=True), *m[1:]]


def _huge(shape: list[int], dtype: str, extra: int) -> list[bytes]:
    head = msgpack.packb([VERSION, {"k": "q", "id": 9, "m": "deliver", "t": 1.0,
                                    "h": {"step": 1, "key": "k"}},
                          [[dtype, shape, "<", "C"]], None, None], use_bin_type=True)
    return [head, b"\0" * extra]


def _deep(n: int, inside_header: bool) -> list[bytes]:
    nest = b"\x91" * n + b"\xc0"  # [[[...[nil]...]]] n deep
    if not inside_header:
        return [nest]
    # as the caller's header "h" of a real status request: the envelope is fine, "h" is not
    # ([1, {k, id, m, t, h}, [], nil, nil] written out, so "h" can be the raw nest)
    pairs = b"".join(msgpack.packb(x) for x in ("k", "q", "id", 11, "m", "status", "t", 1.0,
                                                 "h"))
    return [b"\x95\x01\x85" + pairs + nest + b"\x90\xc0\xc0"]


messages = st.one_of(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    st.builds(_truncate, st.sampled_from(REAL), st.integers(0, 10**6), st.integers(0, 3)),
    st.builds(_flip, st.sampled_from(REAL),
              st.lists(st.tuples(st.integers(0, 9), st.integers(0, 10**6), st.integers(0, 255)),
                       min_size=1, max_size=6)),
    st.builds(_replace, st.sampled_from(REAL), st.integers(0, 3),
              st.sampled_from(["k", "id", "m", "t", "h"]), values),
    st.builds(_huge, st.lists(st.sampled_from([0, 1, 3, 2**20, 2**31, 2**40, 2**62]),
                              max_size=5),
              st.sampled_from(["float32", "bool", "int64", "object", "<f8", "bfloat16"]),
              st.integers(0, 64)),
    st.builds(_deep, st.integers(10, 20000), st.booleans()),
)

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


def _variants(frames: list[bytes], rng: np.random.Generator) -> list[list[bytes]]:
    """`frames`, then VARIANTS - 1 byte-level mutations of it: flips, cuts, a frame dropped
    or duplicated."""
    out = [frames]
    for _ in range(VARIANTS - 1):
        m = [bytearray(f) for f in frames]
        what = rng.integers(4)
        f = m[rng.integers(len(m))]
        if what == 0 and f:
            for _ in range(rng.integers(1, 4)):
                f[rng.integers(len(f))] = rng.integers(256)
        elif what == 1 and f:
            del f[rng.integers(len(f)):]
        elif what == 2 and len(m) > 1:
            del m[rng.integers(len(m))]
        else:
            m.append(bytearray(rng.bytes(int(rng.integers(0, 64)))))
        out.append([bytes(x) for x in m])
    return out


def _framed(frames: list[bytes]) -> bytes:
    return _U32.pack(len(frames)) + b"".join(_U64.pack(len(f)) for f in frames) + b"".join(frames)


# Garbage at the stream's framing level: each on a fresh connection.
raw_junk = st.one_of(
    st.binary(min_size=1, max_size=400),
    st.builds(lambda n, tail: _U32.pack(n) + tail, st.integers(0, 2**32 - 1),
              st.binary(max_size=64)),  # any frame count
    st.builds(lambda lens, tail: _U32.pack(len(lens)) + b"".join(_U64.pack(x) for x in lens)
              + tail, st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6),
              st.binary(max_size=64)),  # any declared lengths
    st.builds(lambda m, cut: _framed(m)[: cut], st.sampled_from(REAL),
              st.integers(1, 200)),  # a real message cut short
    st.builds(lambda n, tail: _U32.pack(2) + _U64.pack(16) + _U64.pack(n) + b"\x90" * 16
              + tail, st.integers(1 << 20, 4 << 30),
              st.binary(max_size=64)),  # within the limits, but gigabytes that never come
)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _Blaster:
    """Sends each generated message over both transports and keeps the pipes drained."""

    def __init__(self, tcp: str, unix_path: str, keys) -> None:
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.curve_serverkey = keys.server_public
        self.dealer.curve_publickey = keys.client_public
        self.dealer.curve_secretkey = keys.client_secret
        self.dealer.connect(tcp)
        self.path = unix_path
        self.stream: socket.socket | None = None
        self.hanging: list[socket.socket] = []
        host, _, port = tcp[len("tcp://"):].rpartition(":")
        self.tcp_address = (host, int(port))
        self.sent = {"tcp": 0, "unix": 0, "raw": 0, "raw_tcp": 0}
        self.replies = {"tcp": 0, "unix": 0}
        self.stream_resets = 0

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        s.setblocking(False)
        return s

    def drain(self) -> None:
        while True:
            try:
                self.dealer.recv_multipart(zmq.NOBLOCK)
                self.replies["tcp"] += 1
            except zmq.Again:
                break
        if self.stream is not None:
            try:
                while self.stream.recv(1 << 16):
                    self.replies["unix"] += 1
            except BlockingIOError:
                pass
            except OSError:
                self.stream.close()
                self.stream = None

    def message(self, frames: list[bytes]) -> None:
        while True:
            try:
                self.dealer.send_multipart(frames, zmq.NOBLOCK)
                break
            except zmq.Again:
                self.drain()
                time.sleep(0.001)
        self.sent["tcp"] += 1
        data = _framed(frames)
        for _ in range(3):
            if self.stream is None:
                self.stream = self._connect()
                self.stream_resets += 1
            try:
                self.stream.setblocking(True)
                self.stream.settimeout(5)
                self.stream.sendall(data)
                self.stream.setblocking(False)
                break
            except OSError:  # dropped for breaking the limits: a new connection
                self.stream.close()
                self.stream = None
        self.sent["unix"] += 1

    def junk(self, data: bytes, hang: bool) -> None:
        s = self._connect()
        try:
            s.sendall(data)
        except OSError:
            pass
        if hang and len(self.hanging) < 32:
            self.hanging.append(s)  # left open: a declared message that never completes
        else:
            s.close()
        self.sent["raw"] += 1
        with socket.create_connection(self.tcp_address, timeout=5) as t:  # not even ZMTP
            try:
                t.sendall(data)
            except OSError:
                pass
        self.sent["raw_tcp"] += 1

    def close(self) -> None:
        for s in [*self.hanging, *([self.stream] if self.stream else [])]:
            s.close()
        self.dealer.close(0)
        self.ctx.term()


@pytest.fixture(scope="module")
def daemon():
    with LocalCluster(jobs={"worker": 1}) as cluster:
        yield cluster


async def _status_ms(endpoint: str, config: RpcConfig) -> float:
    async with RpcClient(endpoint, config=config) as client:
        with trio.fail_after(10):
            await client.wait_ready()
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                header, _ = await client.call("status", None, timeout=5)
                best = min(best, time.perf_counter() - t0)
                assert header["job"] == "worker"
    return best * 1e3


def _real_step(target: str) -> float:
    g = af.Graph()
    with g.as_default():
        v = af.Variable(np.float32(1.0), name="fuzz_survivor")
        bump = v.assign_add(2.0)
        init = v.initializer
    with af.Session(target, graph=g) as s:
        s.run(init)
        s.run(bump)
        return float(s.run(bump))


def test_twenty_thousand_hostile_messages_leave_the_daemon_serving(daemon) -> None:
    keys = load_key_dir(daemon.key_dir)
    tcp = "tcp://" + daemon.as_dict()["worker"][0]
    unix = ipc_endpoint(tcp)
    pid = daemon.pid("worker", 0)
    assert _real_step(daemon.target("worker", 0)) == 5.0  # warm: the baseline has a step in it
    rss0 = _rss(pid)
    blaster = _Blaster(tcp, unix[len("unix://"):], keys)
    rng = np.random.default_rng(SEED)
    peak = [rss0]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(messages, min_size=BATCH, max_size=BATCH),
           junk=st.lists(st.tuples(raw_junk, st.booleans()), min_size=JUNK, max_size=JUNK))
    def blast(batch, junk) -> None:
        for frames in batch:
            for variant in _variants(frames, rng):
                blaster.message(variant)
        for data, hang in junk:
            blaster.junk(data, hang)
        blaster.drain()
        peak[0] = max(peak[0], _rss(pid))  # while the hanging connections are open
        assert daemon.alive("worker", 0), daemon.log("worker", 0)

    t0 = time.monotonic()
    try:
        blast()
        deadline = time.monotonic() + 10  # let the last replies arrive
        while time.monotonic() < deadline and blaster.replies["tcp"] < blaster.sent["tcp"] // 2:
            blaster.drain()
            time.sleep(0.01)
    finally:
        blaster.close()
    took = time.monotonic() - t0
    sent = blaster.sent
    total = sum(sent.values())
    print(f"fuzz: sent {sent} ({total} messages) in {took:.1f}s; replies {blaster.replies}; "
          f"stream reconnects {blaster.stream_resets}")
    assert sent["tcp"] + sent["unix"] >= 20_000 and sent["raw"] >= 1_000
    assert sent["raw_tcp"] == sent["raw"]
    assert blaster.replies["tcp"] >= sent["tcp"] // 2  # it answered garbage all along
    assert daemon.alive("worker", 0), daemon.log("worker", 0)

    ms_unix = trio.run(_status_ms, unix, RpcConfig())
    ms_tcp = trio.run(_status_ms, tcp, RpcConfig(keys=keys))
    assert _real_step(daemon.target("worker", 0)) == 5.0
    grown = _rss(pid) - rss0
    print(f"after the fuzz: status in {ms_unix:.2f} ms (unix), {ms_tcp:.2f} ms (tcp+curve); "
          f"RSS grew {grown / 2**20:.1f} MiB (at most {(peak[0] - rss0) / 2**20:.1f} MiB "
          "during the fuzz)")
    assert ms_unix < 100 and ms_tcp < 100
    assert grown < RSS_BUDGET, f"the daemon grew by {grown / 2**20:.0f} MiB"
    assert peak[0] - rss0 < RSS_BUDGET, f"the daemon grew by {(peak[0] - rss0) / 2**20:.0f} " \
        "MiB while hostile connections held declared gigabytes"
