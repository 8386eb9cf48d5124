"""ZSocket: one pump task per ZeroMQ socket under trio. Real sockets on 127.0.0.1, real clock."""

import socket as pysocket

import pytest
import trio
import zmq

from devices.errors import InvalidArgumentError, UnavailableError
from transport.zsocket import SocketConfig, ZSocket


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)  # only matters if a test failed half way


def _free_port() -> int:
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    """Poll a condition that has no event to wait on (libzmq's queues), with a deadline."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.002)


async def test_dealer_router_round_trip_with_routing_id(ctx) -> None:
    with trio.fail_after(5):
        async with ZSocket(ctx, zmq.ROUTER) as server:
            endpoint = server.bind()
            assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith(":*")
            async with ZSocket(ctx, zmq.DEALER, routing_id=b"worker-0") as client:
                client.connect(endpoint)
                await client.send([b"hello", b"world"])
                peer, a, b = await server.receive()
                assert (peer.bytes, a.bytes, b.bytes) == (b"worker-0", b"hello", b"world")
                await server.send([peer, b"hi"])
                (reply,) = await client.receive()
                assert reply.bytes == b"hi"
                stats = client.statistics()
                assert (stats.messages_sent, stats.messages_received) == (1, 1)


async def test_router_refuses_unknown_peer_instead_of_dropping(ctx) -> None:
    async with ZSocket(ctx, zmq.ROUTER, name="test router") as server:
        server.bind()
        with pytest.raises(UnavailableError, match="no peer with routing id b'nobody'"):
            await server.send([b"nobody", b"lost?"])
        with pytest.raises(UnavailableError):
            server.send_nowait([b"nobody", b"lost?"])
        assert server.statistics().unroutable == 2


async def test_many_messages_both_ways_at_once_keep_order(ctx) -> None:
    n = 3000
    async with (
        ZSocket(ctx, zmq.ROUTER) as server,
        ZSocket(ctx, zmq.DEALER, routing_id=b"c") as client,
    ):
        client.connect(server.bind())
        got_server: list[int] = []
        got_client: list[int] = []

        async def client_sends():
            for i in range(n):
                await client.send([i.to_bytes(4, "little")])

        async def server_echoes():
            async for peer, body in server:
                got_server.append(int.from_bytes(body.bytes, "little"))
                await server.send([peer, body])
                if len(got_server) == n:
                    return

        async def client_receives():
            async for (body,) in client:
                got_client.append(int.from_bytes(body.bytes, "little"))
                if len(got_client) == n:
                    return

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client_sends)
                nursery.start_soon(server_echoes)
                nursery.start_soon(client_receives)
        assert got_server == list(range(n)) and got_client == list(range(n))


async def test_send_waits_until_a_connection_exists(ctx) -> None:
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    async with ZSocket(ctx, zmq.DEALER, routing_id=b"early") as client:
        client.connect(endpoint)  # nothing listens yet; IMMEDIATE keeps the message with us
        sent = trio.Event()

        async def send_early():
            await client.send([b"queued"])
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_early)
            await _wait_for(lambda: client.statistics().outbox_depth == 1, "queued")
            assert not sent.is_set()
            async with ZSocket(ctx, zmq.ROUTER) as server:
                assert server.bind(endpoint) == endpoint
                with trio.fail_after(5):
                    peer, body = await server.receive()
                    await sent.wait()
                assert (peer.bytes, body.bytes) == (b"early", b"queued")


async def test_back_pressure_with_tiny_queues_loses_nothing(ctx) -> None:
    tiny = SocketConfig(sndhwm=2, rcvhwm=2, inbox_size=1)
    n = 400
    payload = b"x" * 100_000  # large frames fill the kernel buffers too
    async with (
        ZSocket(ctx, zmq.ROUTER, tiny) as server,
        ZSocket(ctx, zmq.DEALER, tiny, routing_id=b"p") as client,
    ):
        client.connect(server.bind())

        async def produce():
            for i in range(n):
                await client.send([i.to_bytes(4, "little"), payload])

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                # nobody reads: the sender must end up waiting in the outbox
                await _wait_for(lambda: client.statistics().outbox_depth > 0, "blocked sender")
                got = []
                async for _peer, seq, body in server:
                    got.append(int.from_bytes(seq.bytes, "little"))
                    assert len(body.bytes) == len(payload)
                    if len(got) == n:
                        break
        assert got == list(range(n))


async def test_cancelled_queued_send_is_dropped(ctx) -> None:
    async with ZSocket(ctx, zmq.DEALER) as client:
        client.connect(f"tcp://127.0.0.1:{_free_port()}")
        with trio.move_on_after(0.05) as scope:
            await client.send([b"never"])
        assert scope.cancelled_caught
        await _wait_for(lambda: client.statistics().outbox_depth == 0, "abandoned entry dropped")


async def test_close_is_clean_and_final(ctx) -> None:
    async with ZSocket(ctx, zmq.ROUTER) as server:
        server.bind()
        async with ZSocket(ctx, zmq.DEALER, SocketConfig(linger_ms=0)) as client:
            client.connect(server.endpoints[0])
            await client.send([b"pending"])
    with pytest.raises(trio.ClosedResourceError):
        client.send_nowait([b"late"])
    with pytest.raises(trio.EndOfChannel):
        await client.receive()
    with pytest.raises(RuntimeError, match="entered only once"):
        async with client:
            pass
    with trio.fail_after(5):
        await trio.to_thread.run_sync(ctx.term, abandon_on_cancel=True)  # no socket left open


async def test_misuse_and_config_errors_say_what_to_do(ctx) -> None:
    sock = ZSocket(ctx, zmq.DEALER)
    with pytest.raises(RuntimeError, match="use 'async with'"):
        sock.bind()
    with pytest.raises(InvalidArgumentError, match="inbox_size"):
        SocketConfig(inbox_size=0)
    async with ZSocket(ctx, zmq.DEALER) as sock:
        with pytest.raises(InvalidArgumentError, match="cannot connect to 'nonsense'"):
            sock.connect("nonsense")
        with pytest.raises(InvalidArgumentError, match="no frames"):
            sock.send_nowait([])
