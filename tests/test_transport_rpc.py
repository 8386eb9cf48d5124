"""RPC over ROUTER/DEALER: echo, concurrency, errors by class, deadlines, heartbeats, and a
server that survives a flood of malformed messages. Real sockets on 127.0.0.1, real clock.
Tests taking `bind` run twice: over ZeroMQ on TCP, and over a Unix-domain stream (the way a
peer on the same host is reached)."""

import itertools
import math
import os
import socket as pysocket
import threading
import time

import msgpack
import numpy as np
import pytest
import trio
import zmq

from devices import errors
from transport.codec import Limits, decode_message, encode
from transport.rpc import DeadlineTimer, RpcClient, RpcConfig, RpcServer
from transport.zsocket import ZSocket

HB = RpcConfig(heartbeat_interval=0.05, heartbeat_timeout=0.3, default_timeout=5.0)
RNG = np.random.default_rng()


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


_names = itertools.count()


@pytest.fixture(params=["tcp", "unix"])
def bind(request):
    """Binds a server where a remote peer (ZeroMQ, TCP) or a same-host peer (a Unix stream)
    reaches it, and returns the endpoint."""
    def bind_(server: RpcServer) -> str:
        if request.param == "tcp":
            return server.bind("tcp://127.0.0.1:*")
        return server.bind(f"unix://@af-test-rpc-{os.getpid()}-{next(_names)}")
    return bind_


async def echo(header, tensors):
    return header, tensors


async def fail(header, tensors):
    kind = header["kind"]
    if kind == "not_found":
        raise errors.NotFoundError("no variable 'w'", node="read_w", device="/job:ps/task:0")
    if kind == "exhausted":
        raise errors.ResourceExhaustedError("pool limit 1 GiB reached")
    raise ValueError("a plain Python bug")


async def test_echo_with_tensors(ctx, bind) -> None:
    with trio.fail_after(5):
        async with RpcServer({"echo": echo}, config=HB, ctx=ctx) as server:
            async with RpcClient(bind(server), config=HB, ctx=ctx) as client:
                await client.wait_ready()
                ins = {
                    "w": RNG.standard_normal((64, 32)).astype(np.float32),
                    "i": RNG.integers(0, 100, size=(5,)),
                    "big": RNG.standard_normal(300_000),  # above pyzmq's copy threshold
                    "scalar": np.array(2.5, np.float16),
                    "empty": np.zeros((0, 3), np.int8),
                }
                header, outs = await client.call("echo", {"step": 3, "tag": [1, "a"]}, ins)
                assert header == {"step": 3, "tag": [1, "a"]}
                assert list(outs) == list(ins)
                for k in ins:
                    assert outs[k].dtype == ins[k].dtype
                    np.testing.assert_array_equal(outs[k], ins[k])
                _, lst = await client.call("echo", None, [np.arange(4)])
                np.testing.assert_array_equal(lst[0], np.arange(4))
                assert client.statistics().calls == 2


async def test_concurrent_calls_are_matched_by_id(ctx, bind) -> None:
    n = 100
    arrived = 0
    all_here = trio.Event()

    async def gather(header, tensors):
        # Each handler waits until every request has arrived: only concurrent handlers finish.
        nonlocal arrived
        arrived += 1
        if arrived == n:
            all_here.set()
        await all_here.wait()
        return {"i": header["i"]}, [tensors[0] * 2]

    results = {}
    # Matching by id is what this tests, not heartbeats: a slack timeout, so a pause of the
    # test process (a 2-core CI box) is not taken for a dead server.
    calm = RpcConfig(heartbeat_interval=0.05, heartbeat_timeout=3.0, default_timeout=5.0)
    with trio.fail_after(10):
        async with RpcServer({"gather": gather}, config=calm, ctx=ctx) as server:
            async with RpcClient(bind(server), config=calm, ctx=ctx) as client:

                async def one(i):
                    h, (t,) = await client.call("gather", {"i": i}, [np.full(3, i)])
                    results[i] = (h["i"], t)

                async with trio.open_nursery() as nursery:
                    for i in range(n):
                        nursery.start_soon(one, i)
                assert server.statistics().inflight == 0
    assert sorted(results) == list(range(n))
    for i, (hi, t) in results.items():
        assert hi == i
        np.testing.assert_array_equal(t, np.full(3, 2 * i))


async def test_handler_errors_arrive_with_their_class_and_server_keeps_serving(ctx, bind) -> None:
    with trio.fail_after(5):
        async with RpcServer({"fail": fail, "echo": echo}, config=HB, ctx=ctx) as server:
            async with RpcClient(bind(server), config=HB, ctx=ctx) as client:
                with pytest.raises(errors.NotFoundError) as info:
                    await client.call("fail", {"kind": "not_found"})
                assert info.value.message == "no variable 'w'"
                assert (info.value.node, info.value.device) == ("read_w", "/job:ps/task:0")
                with pytest.raises(errors.ResourceExhaustedError, match="pool limit"):
                    await client.call("fail", {"kind": "exhausted"})
                with pytest.raises(errors.UnknownError, match="ValueError: a plain Python bug"):
                    await client.call("fail", {"kind": "bug"})
                with pytest.raises(
                    errors.UnimplementedError, match="no method 'nope'; it serves: echo, fail"
                ):
                    await client.call("nope")
                assert (await client.call("echo", {"ok": True}))[0] == {"ok": True}
                assert server.statistics().errors == 4


async def test_deadline_exceeded_and_server_handler_cancelled(ctx, bind) -> None:
    started = trio.Event()
    cancelled = trio.Event()

    async def hang(header, tensors):
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with RpcServer({"hang": hang, "echo": echo}, config=HB, ctx=ctx) as server:
        async with RpcClient(bind(server), config=HB, ctx=ctx) as client:
            t0 = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError, match="'hang' .* within 0.2s"):
                await client.call("hang", timeout=0.2)
            assert 0.18 <= time.monotonic() - t0 < 1.0
            with trio.fail_after(2):
                await cancelled.wait()  # the client told the server to stop working on it
            assert server.statistics().inflight == 0
            assert (await client.call("echo", {"still": "alive"}))[0] == {"still": "alive"}
            with pytest.raises(errors.DeadlineExceededError, match="given no time"):
                await client.call("echo", timeout=0)


async def test_server_enforces_the_deadline_it_was_sent(ctx) -> None:
    async def hang(header, tensors):
        await trio.sleep_forever()

    async with RpcServer({"hang": hang}, config=HB, ctx=ctx) as server:
        async with ZSocket(ctx, zmq.DEALER) as raw:
            raw.connect(server.bind())
            await raw.send(encode({"k": "q", "id": 7, "m": "hang", "t": 0.1, "h": None}))
            with trio.fail_after(3):
                header, _, error = decode_message(await raw.receive())
            assert header == {"k": "r", "id": 7}
            assert isinstance(error, errors.DeadlineExceededError)
            assert "ran past its deadline" in error.message


def _hanging_server(ctx, bind_):
    """A server whose ``hang`` handler never returns: (an event set once a call hangs, the
    scope to cancel to kill the server, the task to start it with: it reports the endpoint)."""
    started = trio.Event()

    async def hang(header, tensors):
        started.set()
        await trio.sleep_forever()

    scope = trio.CancelScope()

    async def run_server(*, task_status=trio.TASK_STATUS_IGNORED):
        with scope:
            async with RpcServer({"hang": hang}, config=HB, ctx=ctx) as server:
                task_status.started(bind_(server))
                await trio.sleep_forever()

    return started, scope, run_server


async def test_dead_server_makes_calls_unavailable_then_recovers(ctx, bind) -> None:
    started, server_scope, run_server = _hanging_server(ctx, bind)
    outcome = {}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(run_server)
            async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
                await client.wait_ready()

                async def pending_call():
                    with pytest.raises(errors.UnavailableError) as info:
                        await client.call("hang", timeout=30)
                    outcome["error"], outcome["at"] = info.value, time.monotonic()

                async with trio.open_nursery() as calls:
                    calls.start_soon(pending_call)
                    await started.wait()
                    t_dead = time.monotonic()
                    server_scope.cancel()  # the server goes away mid-call
                if endpoint.startswith("unix://"):  # the stream breaks: known at once
                    assert "closed the connection" in str(outcome["error"])
                    assert outcome["at"] - t_dead < HB.heartbeat_timeout / 2
                else:  # ZeroMQ reconnects without a word: the heartbeat finds out
                    assert "is not responding" in str(outcome["error"])
                    assert outcome["at"] - t_dead < 2 * HB.heartbeat_timeout + 0.1
                assert not client.alive
                t0 = time.monotonic()
                with pytest.raises(errors.UnavailableError, match="fail at once"):
                    await client.call("echo")
                assert time.monotonic() - t0 < 0.05
                # A server comes back on the same endpoint: traffic resumes, calls work again.
                async with RpcServer({"echo": echo}, config=HB, ctx=ctx) as again:
                    assert again.bind(endpoint) == endpoint
                    await client.wait_ready()
                    assert client.alive
                    assert (await client.call("echo", {"back": 1}))[0] == {"back": 1}


async def test_hung_but_connected_server_is_detected(ctx) -> None:
    # A ROUTER that accepts the connection but never answers: only app heartbeats notice.
    silent = ctx.socket(zmq.ROUTER)
    try:
        silent.setsockopt(zmq.LINGER, 0)
        silent.bind("tcp://127.0.0.1:*")
        endpoint = silent.getsockopt(zmq.LAST_ENDPOINT).decode()
        async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
            t0 = time.monotonic()
            with pytest.raises(errors.UnavailableError, match="not responding"):
                await client.call("anything", timeout=10)
            assert time.monotonic() - t0 < 2 * HB.heartbeat_timeout + 0.1
    finally:
        silent.close(linger=0)


async def test_malformed_flood_gets_error_replies_and_server_keeps_serving(ctx) -> None:
    valid = encode({"k": "q", "id": 1, "m": "echo", "t": 5, "h": None}, [np.zeros(4)])
    malformed = [
        lambda: [RNG.bytes(int(RNG.integers(1, 200)))],  # random bytes
        lambda: [b""],  # empty frame
        lambda: valid[:1],  # missing frame
        lambda: [valid[0], b"\x00" * 5],  # wrong length
        lambda: [valid[0][: len(valid[0]) // 2], valid[1]],  # truncated header
        lambda: [msgpack.packb({"k": "q"})],  # not an envelope
        lambda: encode(["not", "a", "dict"]),  # header not a dict
        lambda: encode({"k": "q", "id": "x", "m": 3}),  # bad field types
        lambda: encode({"k": "zz", "id": 2}),  # unknown kind
        lambda: encode({"k": "q", "id": 3, "m": "echo", "t": -1.0, "h": None}),  # negative t
        lambda: [msgpack.packb([1, None, [["object", [1], "|", "C"]], None, None]), b"\x00"],
        lambda: encode_err_request(),  # carries an error
    ]

    def encode_err_request():
        from transport.codec import encode_error

        return encode_error(errors.AbortedError("x"), {"k": "q", "id": 4, "m": "echo"})

    n = 1200
    with trio.fail_after(15):
        async with RpcServer({"echo": echo}, config=HB, ctx=ctx) as server:
            endpoint = server.bind()
            async with ZSocket(ctx, zmq.DEALER, routing_id=b"attacker") as raw:
                raw.connect(endpoint)
                for i in range(n):
                    await raw.send(malformed[i % len(malformed)]())
                replies = 0
                while replies < n:
                    _, _, error = decode_message(await raw.receive())
                    assert isinstance(error, errors.InvalidArgumentError), error
                    replies += 1
            assert server.statistics().malformed == n
            async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
                h, t = await client.call("echo", {"after": "flood"}, [np.arange(3)])
                assert h == {"after": "flood"}
                np.testing.assert_array_equal(t[0], np.arange(3))


async def test_oversized_frames_are_cut_off_by_libzmq_and_server_survives(ctx) -> None:
    small = RpcConfig(
        heartbeat_interval=0.05,
        heartbeat_timeout=0.3,
        limits=Limits(max_tensor_bytes=1 << 20, max_header_bytes=4096),
    )
    with trio.fail_after(10):
        async with RpcServer({"echo": echo}, config=small, ctx=ctx) as server:
            endpoint = server.bind()
            async with RpcClient(endpoint, config=small, ctx=ctx) as client:
                with pytest.raises(errors.DeadlineExceededError):
                    await client.call("echo", None, [np.zeros(2 << 20, np.uint8)], timeout=0.3)
                h, _ = await client.call("echo", {"small": True}, [np.zeros(10)])
                assert h == {"small": True}


async def test_reply_over_client_limits_is_refused_not_decoded(ctx) -> None:
    big_reply = RpcConfig(
        heartbeat_interval=0.05, heartbeat_timeout=0.3, limits=Limits(max_frames=3)
    )

    async def many(header, tensors):
        return None, [np.zeros(1)] * 5

    async with RpcServer({"many": many}, config=HB, ctx=ctx) as server:
        async with RpcClient(server.bind(), config=big_reply, ctx=ctx) as client:
            with pytest.raises(errors.DeadlineExceededError):
                await client.call("many", timeout=0.3)
            assert client.statistics().malformed == 1


def test_config_is_checked() -> None:
    with pytest.raises(errors.InvalidArgumentError, match="heartbeat_interval"):
        RpcConfig(heartbeat_interval=2.0, heartbeat_timeout=1.0)
    with pytest.raises(errors.InvalidArgumentError, match="default_timeout"):
        RpcConfig(default_timeout=0)
    assert RpcConfig().socket_config().max_frames == RpcConfig().limits.max_frames + 1
    with pytest.raises(errors.InvalidArgumentError, match="must be a non-empty str"):
        RpcServer({"_ping": echo})


async def test_closed_client_and_unentered_client_fail_clearly(ctx) -> None:
    client = RpcClient(f"tcp://127.0.0.1:{_free_port()}", config=HB, ctx=ctx)
    with pytest.raises(errors.UnavailableError, match="never entered"):
        await client.call("echo")
    async with client:
        pass
    with pytest.raises(errors.UnavailableError, match="closed"):
        await client.call("echo")
    assert math.isfinite(client.statistics().seconds_since_traffic)


def _free_port() -> int:
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_deadline_timer_fires_in_order_skips_stale_and_compacts(autojump_clock) -> None:
    # In-process only (no sockets), so trio's MockClock is safe here.
    fired = []
    live = {}

    def on_expire(key, deadline):
        if live.get(key) == deadline:  # the owner's check: stale entries are ignored
            fired.append((key, trio.current_time()))

    timer = DeadlineTimer(on_expire)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer.run)
        t0 = trio.current_time()
        for key, dt in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("gone", 1.5)):
            live[key] = t0 + dt
            timer.add(t0 + dt, key)
        timer.add(math.inf, "never")
        del live["gone"]  # finished before its deadline
        await trio.sleep(5)
        assert [k for k, _ in fired] == ["a", "b", "c"]
        for key, at in fired:
            assert live[key] <= at <= live[key] + DeadlineTimer.RESOLUTION + 1e-9
        for i in range(3000):  # stale entries pile up, then compact() drops them
            timer.add(trio.current_time() + 100, ("stale", i))
        timer.compact([])
        assert len(timer) == 0
        nursery.cancel_scope.cancel()


async def test_plain_function_handlers_run_inline(ctx, bind) -> None:
    def add_one(header, tensors):
        return {"n": header["n"] + 1}, [tensors[0] + 1]

    def broken(header, tensors):
        raise errors.FailedPreconditionError("variable 'w' is not initialized", node="w")

    def lies(header, tensors):  # a plain function returning a coroutine: refused, clearly
        return echo(header, tensors)

    handlers = {"add_one": add_one, "broken": broken, "lies": lies}
    with trio.fail_after(5):
        async with RpcServer(handlers, config=HB, ctx=ctx) as server:
            async with RpcClient(bind(server), config=HB, ctx=ctx) as client:
                h, (t,) = await client.call("add_one", {"n": 1}, [np.arange(3)])
                assert h == {"n": 2}
                np.testing.assert_array_equal(t, np.arange(1, 4))
                with pytest.raises(errors.FailedPreconditionError, match="not initialized"):
                    await client.call("broken")
                with pytest.raises(errors.InternalError, match="declare it 'async def'"):
                    await client.call("lies", {})
                assert server.statistics().errors == 2


async def test_too_many_requests_in_flight_is_resource_exhausted(ctx, bind) -> None:
    one = RpcConfig(heartbeat_interval=0.05, heartbeat_timeout=0.3, max_inflight=1)
    release = trio.Event()
    started = trio.Event()

    async def block(header, tensors):
        started.set()
        await release.wait()
        return {"done": True}, None

    with trio.fail_after(5):
        async with RpcServer({"block": block}, config=one, ctx=ctx) as server:
            async with RpcClient(bind(server), config=one, ctx=ctx) as client:
                async with trio.open_nursery() as nursery:
                    first = {}

                    async def first_call():
                        first["h"] = (await client.call("block"))[0]

                    nursery.start_soon(first_call)
                    await started.wait()
                    with pytest.raises(errors.ResourceExhaustedError, match="max_inflight"):
                        await client.call("block")
                    release.set()
                assert first["h"] == {"done": True}


async def test_a_plain_handler_replies_later_through_a_pending(ctx, bind) -> None:
    """No task per request: the handler returns a Pending that something else settles; a
    deadline or a client's cancel reaches the handler through on_cancel."""
    from transport.rpc_core import Pending

    held: dict[str, Pending] = {}
    cancelled: list[str] = []

    def later(header, tensors):
        p = Pending()
        p.on_cancel = lambda e: cancelled.append(f"{header['name']}: {type(e).__name__}")
        held[header["name"]] = p
        return p

    with trio.fail_after(10):
        async with RpcServer({"later": later}, config=HB, ctx=ctx) as server:
            async with RpcClient(bind(server), config=HB, ctx=ctx) as client:
                await client.wait_ready()
                async with trio.open_nursery() as nursery:
                    got: dict = {}

                    async def ask(name: str) -> None:
                        try:
                            got[name] = await client.call("later", {"name": name}, timeout=0.3
                                                          if name == "slow" else 5)
                        except errors.OpError as e:
                            got[name] = e

                    for name in ("ok", "bad", "slow"):
                        nursery.start_soon(ask, name)
                    while len(held) < 3:
                        await trio.sleep(0.005)
                    held["ok"].resolve({"v": 7}, [np.arange(3)])
                    held["bad"].fail(errors.NotFoundError("no such thing"))
                h, t = got.get("ok") or ({}, [])
                assert h == {"v": 7}
                np.testing.assert_array_equal(t[0], np.arange(3))
                assert isinstance(got["bad"], errors.NotFoundError)
                assert isinstance(got["slow"], errors.DeadlineExceededError)
                # the server's deadline, or the client's cancel when its own deadline came first
                # (which reaches the server a moment after the call returned: polled, bounded)
                with trio.fail_after(2):
                    while not cancelled:
                        await trio.sleep(0.005)
                assert cancelled in (["slow: DeadlineExceededError"], ["slow: CancelledError"])
                held["slow"].resolve({"late": True})  # ignored: the request is over
                # a client that gives up cancels the handler's Pending
                with trio.move_on_after(0.1):
                    await client.call("later", {"name": "gone"}, timeout=5)
                with trio.fail_after(2):
                    while len(cancelled) < 2:
                        await trio.sleep(0.005)
                assert cancelled[1] == "gone: CancelledError"
                assert server.statistics().inflight == 0


async def test_one_way_messages_and_callback_calls(ctx) -> None:
    """One-way messages run a plain handler and get no reply (errors are counted);
    start_call hands the reply, or the error, to a callback; cancel_call silences it."""
    seen: list = []

    def note(header, tensors):
        if header.get("boom"):
            raise errors.InvalidArgumentError("boom")
        seen.append((header["i"], float(tensors[0][0])))
        return None, []

    async def slow(header, tensors):
        await trio.sleep(10)
        return None, []

    with trio.fail_after(10):
        async with RpcServer({"note": note, "echo": echo, "slow": slow}, config=HB,
                             ctx=ctx) as server:
            endpoint = server.bind()
            async with ZSocket(ctx, zmq.DEALER, routing_id=b"oneway") as d:
                d.connect(endpoint)
                for i in range(3):
                    await d.send(encode({"k": "s", "m": "note", "h": {"i": i}}, [np.full(1, i)]))
                await d.send(encode({"k": "s", "m": "note", "h": {"boom": True}}))
                await d.send(encode({"k": "s", "m": "slow", "h": {}}))  # async: refused
                frames = await d.receive()
                header, _, error = decode_message(frames)
                assert header == {"k": "r", "id": None}
                assert isinstance(error, errors.InvalidArgumentError)
                assert "one-way" in error.message
                with trio.move_on_after(0.1):
                    await d.receive()
                    pytest.fail("a one-way message was answered")
            assert seen == [(0, 0.0), (1, 1.0), (2, 2.0)]
            assert server.statistics().errors == 1
            async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
                await client.wait_ready()
                results: list = []
                done = trio.Event()

                def then(h, t, e):
                    results.append((h, t, e))
                    done.set()

                client.start_call("echo", {"x": 1}, [np.ones(2)], then)
                await done.wait()
                (h, t, e), = results
                assert h == {"x": 1} and e is None
                np.testing.assert_array_equal(t[0], np.ones(2))
                rid = client.start_call("slow", None, None, lambda *a: results.append(a))
                client.cancel_call(rid)
                done = trio.Event()
                client.start_call("slow", None, None, then, timeout=0.1)
                await done.wait()
                assert len(results) == 2
                assert isinstance(results[1][2], errors.DeadlineExceededError)
                assert client.statistics().pending == 0


async def test_calls_started_from_other_threads_get_their_replies_on_the_loop(ctx, bind) -> None:
    """`start_call_from_thread`: over a same-host stream, requests leave from the calling
    threads (four at once, while the loop makes calls of its own) and each ``then`` runs once,
    on the loop's thread, with its own reply. Over ZeroMQ it declines (0) and does nothing."""
    loop_thread = threading.current_thread()
    got: dict[tuple[int, int], tuple] = {}
    done = trio.Event()
    n_threads, n_calls = 4, 150

    def then_for(key):
        def then(header, tensors, error):
            assert threading.current_thread() is loop_thread
            assert key not in got
            got[key] = (header, tensors, error)
            if len(got) == n_threads * n_calls:
                done.set()
        return then

    with trio.fail_after(20):
        async with RpcServer({"echo": echo}, config=HB, ctx=ctx) as server:
            endpoint = bind(server)
            async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
                await client.wait_ready()
                declined = []

                def caller(t: int) -> None:
                    for i in range(n_calls):
                        rid = client.start_call_from_thread(
                            "echo", {"t": t, "i": i}, [np.full(i % 5, t, np.int32)],
                            then_for((t, i)))
                        if not rid:
                            declined.append((t, i))

                async with trio.open_nursery() as nursery:
                    for t in range(n_threads):
                        nursery.start_soon(trio.to_thread.run_sync, caller, t)
                    for i in range(50):
                        assert (await client.call("echo", {"loop": i}))[0] == {"loop": i}
                if endpoint.startswith("tcp://"):
                    assert len(declined) == n_threads * n_calls and not got
                    return
                assert not declined
                await done.wait()
                for (t, i), (header, tensors, error) in got.items():
                    assert error is None and header == {"t": t, "i": i}
                    np.testing.assert_array_equal(tensors[0], np.full(i % 5, t, np.int32))
                assert client.statistics().pending == 0


async def test_calls_from_threads_fail_when_the_server_dies_and_decline_while_it_is_dead(
        ctx) -> None:
    started, server_scope, run_server = _hanging_server(
        ctx, lambda server: server.bind(f"unix://@af-test-rpc-{os.getpid()}-dies"))
    outcome = trio.Event()
    errors_seen = []

    def then(header, tensors, error):
        errors_seen.append(error)
        outcome.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(run_server)
            async with RpcClient(endpoint, config=HB, ctx=ctx) as client:
                await client.wait_ready()
                rid = await trio.to_thread.run_sync(
                    client.start_call_from_thread, "hang", None, None, then)
                assert rid
                await started.wait()
                server_scope.cancel()
                await outcome.wait()
                assert isinstance(errors_seen[0], errors.UnavailableError)
                assert "closed the connection" in str(errors_seen[0])
                assert not client.alive
                assert await trio.to_thread.run_sync(
                    client.start_call_from_thread, "hang", None, None, then) == 0
                assert errors_seen == errors_seen[:1] and client.statistics().pending == 0
