"""Multipart messages over Unix-domain streams: framing both ways (small, empty, large frames,
partial writes), order, peers by int, back-pressure, reconnection, and a router that drops a
peer breaking the framing or the limits and keeps serving. Real sockets, real clock."""

import itertools
import os
import socket
import struct
import sys

import numpy as np
import pytest
import trio

from devices.errors import InvalidArgumentError, UnavailableError
from transport.unix_stream import StreamDealer, StreamRouter, address_of, listening
from transport.zsocket import SocketConfig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="abstract Unix socket names are Linux's")
_names = itertools.count()


def fresh() -> str:
    return f"unix://@af-test-stream-{os.getpid()}-{next(_names)}"


class Inbox:
    """An on_receive callback that keeps the messages and wakes a waiter."""

    def __init__(self) -> None:
        self.messages: list[list] = []
        self._event = trio.Event()

    def __call__(self, frames: list) -> None:
        self.messages.append([f if type(f) is int else bytes(f) for f in frames])
        self._event.set()

    async def wait_for(self, n: int) -> list[list]:
        while len(self.messages) < n:
            await self._event.wait()
            self._event = trio.Event()
        return self.messages


async def connected(dealer: StreamDealer) -> None:
    while dealer.statistics().connections == 0:
        await trio.sleep(0.001)


async def test_messages_cross_both_ways_intact_and_in_order() -> None:
    big = np.random.default_rng(0).integers(0, 255, 12 * 2**20, dtype=np.uint8)  # > SO_SNDBUF
    to_server, to_client = Inbox(), Inbox()
    with trio.fail_after(10):
        async with StreamRouter(on_receive=to_server) as router:
            endpoint = router.bind(fresh())
            async with StreamDealer(on_receive=to_client) as dealer:
                dealer.connect(endpoint)
                await connected(dealer)
                sent = [[b"head", b"", b"x" * 70_000], [big, b"tail"], [b""]]
                sent += [[str(i).encode()] for i in range(200)]
                for msg in sent:
                    dealer.send_nowait(msg)  # the big one is taken in parts, the rest queue
                got = await to_server.wait_for(len(sent))
                peer = got[0][0]
                assert type(peer) is int
                assert all(m[0] == peer for m in got)
                assert got[1][1] == big.tobytes() and got[1][2] == b"tail"
                assert [m[1:] for m in got[:1] + got[2:]] == [
                    [bytes(f) for f in m] for m in sent[:1] + sent[2:]]
                # and back, to that peer
                await router.send([peer, b"reply", big[:100_000]])
                (reply,) = await to_client.wait_for(1)
                assert reply == [b"reply", big[:100_000].tobytes()]
                assert router.statistics().messages_received == len(sent)
                assert dealer.statistics().messages_sent == len(sent)


async def test_a_gone_or_unknown_peer_is_unavailable() -> None:
    inbox = Inbox()
    with trio.fail_after(5):
        async with StreamRouter(on_receive=inbox) as router:
            endpoint = router.bind(fresh())
            with pytest.raises(UnavailableError, match="not connected"):
                router.send_nowait([7, b"x"])
            async with StreamDealer(on_receive=Inbox()) as dealer:
                dealer.connect(endpoint)
                await connected(dealer)
                await dealer.send([b"hi"])
                (msg,) = await inbox.wait_for(1)
            while router.statistics().connections:
                await trio.sleep(0.001)
            with pytest.raises(UnavailableError, match="disconnected"):
                router.send_nowait([msg[0], b"x"])


@pytest.mark.parametrize("prefix", [
    struct.pack("<I", 0),  # a message of no frames
    struct.pack("<I", 5000),  # more frames than max_frames
    struct.pack("<IQ", 1, 2**40),  # a frame over max_frame_bytes
    struct.pack("<IQQ", 2, 10, 2**20),  # a message over max_message_bytes (each frame fits)
    struct.pack("<IQ", 1, 2**19),  # a first frame (the codec header) over first_frame_bytes
])
async def test_a_peer_breaking_the_framing_is_dropped_and_the_router_serves_on(prefix) -> None:
    inbox = Inbox()
    config = SocketConfig(max_frames=100, max_frame_bytes=2**20, max_message_bytes=2**20,
                          first_frame_bytes=2**18)
    with trio.fail_after(5):
        async with StreamRouter(config, on_receive=inbox) as router:
            endpoint = router.bind(fresh())
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(address_of(endpoint))
            raw.sendall(struct.pack("<IQ", 1, 2) + b"ok" + prefix + b"garbage" * 10)
            raw.setblocking(False)
            while True:  # the router hangs up on it
                await trio.lowlevel.wait_readable(raw)
                if raw.recv(100) == b"":
                    break
            raw.close()
            assert router.statistics().dropped_connections == 1
            assert "dropped a connection that sent" in router.last_drop
            async with StreamDealer(on_receive=Inbox()) as dealer:
                dealer.connect(endpoint)
                await dealer.send([b"still", b"serving"])
                got = await inbox.wait_for(2)
            assert got[0][1:] == [b"ok"]  # what came before the bad prefix was delivered
            assert got[1][1:] == [b"still", b"serving"]


async def test_random_bytes_never_stop_the_router() -> None:
    inbox = Inbox()
    rng = np.random.default_rng(1)
    with trio.fail_after(10):
        async with StreamRouter(SocketConfig(max_frames=64, max_frame_bytes=2**16),
                                on_receive=inbox) as router:
            endpoint = router.bind(fresh())
            for _ in range(50):
                raw = socket.socket(socket.AF_UNIX)
                raw.connect(address_of(endpoint))
                raw.sendall(rng.integers(0, 256, int(rng.integers(1, 4000)), np.uint8).tobytes())
                raw.close()
            async with StreamDealer(on_receive=Inbox()) as dealer:
                dealer.connect(endpoint)
                await dealer.send([b"after the noise"])
                while not any(m[1:] == [b"after the noise"] for m in inbox.messages):
                    await inbox.wait_for(len(inbox.messages) + 1)


async def test_back_pressure_then_send_waits_until_the_kernel_takes_more() -> None:
    # a listener that accepts but does not read: the dealer's queue fills to sndhwm
    name = fresh()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address_of(name))
    listener.listen(1)
    try:
        with trio.fail_after(10):
            async with StreamDealer(SocketConfig(sndhwm=2), on_receive=Inbox()) as dealer:
                dealer.connect(name)
                await connected(dealer)
                peer, _ = listener.accept()
                chunk = b"z" * 2**24  # more than the kernel holds (SO_SNDBUF, 4 MiB x 2)
                for _ in range(2):
                    dealer.send_nowait([chunk])  # the kernel takes part of the first: both queue
                with pytest.raises(trio.WouldBlock):
                    dealer.send_nowait([chunk])
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dealer.send, [b"last"])
                    total, want = 0, 2 * (4 + 8 + 2**24) + 4 + 8 + 4
                    peer.setblocking(False)
                    while total < want:  # reading drains the queue and lets "last" go
                        await trio.lowlevel.wait_readable(peer)
                        total += len(peer.recv(2**20))
                assert total == want
                peer.close()
    finally:
        listener.close()


async def test_the_dealer_reconnects_to_a_router_that_comes_back() -> None:
    """...and says each time its connection was lost (`on_lost`), not when it closes."""
    name = fresh()
    first, second, replies = Inbox(), Inbox(), Inbox()
    lost = []
    with trio.fail_after(10):
        async with StreamDealer(SocketConfig(retry_interval=0.005), on_receive=replies,
                                on_lost=lambda: lost.append(1)) as d:
            d.connect(name)  # nothing listens yet: it keeps trying
            with pytest.raises(trio.WouldBlock):
                d.send_nowait([b"early"])
            async with StreamRouter(on_receive=first) as router:
                router.bind(name)
                await d.send([b"one"])
                assert (await first.wait_for(1))[0][1:] == [b"one"]
            assert not listening(name)  # the router closed: its name is free again
            while not lost:
                await trio.sleep(0.001)
            assert lost == [1]
            async with StreamRouter(on_receive=second) as router:
                router.bind(name)
                await d.send([b"two"])
                (msg,) = await second.wait_for(1)
                assert msg[1:] == [b"two"]
                router.send_nowait([msg[0], b"back"])
                assert await replies.wait_for(1) == [[b"back"]]
            while len(lost) < 2:
                await trio.sleep(0.001)
        assert lost == [1, 1]
        # Closing a connected dealer is no loss.
        async with StreamRouter(on_receive=Inbox()) as router:
            router.bind(name)
            async with StreamDealer(on_receive=Inbox(), on_lost=lambda: lost.append(2)) as d:
                d.connect(name)
                await connected(d)
            await trio.sleep(0.01)
        assert lost == [1, 1]


async def test_a_file_path_endpoint_is_removed_on_close(tmp_path) -> None:
    path = tmp_path / "s.sock"
    endpoint = f"unix://{path}"
    inbox = Inbox()
    with trio.fail_after(5):
        async with StreamRouter(on_receive=inbox) as router:
            assert router.bind(endpoint) == endpoint
            assert path.exists() and listening(endpoint)
            async with StreamDealer(on_receive=Inbox()) as d:
                d.connect(endpoint)
                await d.send([b"via a file"])
                await inbox.wait_for(1)
    assert not path.exists()


async def test_bad_endpoints_and_binds_fail_clearly() -> None:
    for bad in ("tcp://127.0.0.1:1", "unix://", "ipc://@x"):
        with pytest.raises(InvalidArgumentError, match="unix://@name"):
            address_of(bad)
    name = fresh()
    async with StreamRouter(on_receive=Inbox()) as a, StreamRouter(on_receive=Inbox()) as b:
        a.bind(name)
        with pytest.raises(UnavailableError, match="cannot bind"):
            b.bind(name)
    with pytest.raises(InvalidArgumentError, match="on_receive"):
        StreamDealer()


async def test_a_reply_into_a_broken_pipe_costs_that_connection_only() -> None:
    """Regression: the callback replied to a peer that had hung up, which closed the
    connection under its own reader; the reader then waited on the closed socket, and the
    error took down the router (its listener and every other peer)."""
    router: StreamRouter | None = None
    inbox = Inbox()

    def reply(frames: list) -> None:
        inbox(frames)
        if frames[1] != b"x":
            return
        with pytest.raises(UnavailableError):
            for _ in range(64):  # until the kernel reports the broken pipe
                router.send_nowait([frames[0], b"r" * 65536])

    with trio.fail_after(5):
        async with StreamRouter(on_receive=reply) as router:
            endpoint = router.bind(fresh())
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(address_of(endpoint))
            one = struct.pack("<IQ", 1, 1) + b"x"
            raw.sendall(one * 3)  # three messages, read in one go; the peer is gone by then
            raw.close()
            await inbox.wait_for(1)
            while router.statistics().connections:
                await trio.sleep(0.001)
            assert listening(endpoint)
            async with StreamDealer(on_receive=Inbox()) as d:
                d.connect(endpoint)
                await d.send([b"still serving"])
                while inbox.messages[-1][1:] != [b"still serving"]:
                    await inbox.wait_for(len(inbox.messages) + 1)


async def test_a_callback_that_raises_drops_its_connection_and_the_router_serves_on() -> None:
    inbox = Inbox()

    def fragile(frames: list) -> None:
        if frames[1] == b"boom":
            raise RuntimeError("a bug in the callback")
        inbox(frames)

    with trio.fail_after(5):
        async with StreamRouter(on_receive=fragile) as router:
            endpoint = router.bind(fresh())
            async with StreamDealer(on_receive=Inbox()) as bad:
                bad.connect(endpoint)
                await bad.send([b"boom"])
                while not router.statistics().dropped_connections:
                    await trio.sleep(0.001)
            assert "RuntimeError: a bug in the callback" in router.last_drop
            async with StreamDealer(on_receive=Inbox()) as good:
                good.connect(endpoint)
                await good.send([b"fine"])
                assert (await inbox.wait_for(1))[0][1:] == [b"fine"]


async def test_sends_from_another_thread_and_from_the_loop_never_interleave() -> None:
    """A thread sends with `send_from_thread` (falling back to the loop when it says no) while
    a loop task sends too, large frames included (partial writes, the rest flushed by the
    loop): every message arrives whole, each sender's in its order."""
    inbox = Inbox()
    n = 300
    big = bytes(range(256)) * 8192  # 2 MiB: with both sending, the kernel takes them in parts

    def message(who: bytes, i: int) -> list[bytes]:
        body = big[: 2**20 + i] if i % 2 == 0 else who * (i % 97)
        return [who, str(i).encode(), body]

    with trio.fail_after(10):  # a corrupted stream is dropped: the messages never all come
        async with StreamRouter(on_receive=inbox) as router:
            endpoint = router.bind(fresh())
            async with StreamDealer(on_receive=Inbox()) as dealer:
                dealer.connect(endpoint)
                await connected(dealer)
                from_thread = []

                def thread_sender() -> None:
                    for i in range(n):
                        ok = dealer.send_from_thread(message(b"T", i))
                        if not ok:  # busy: the loop sends it, in order behind the queue
                            trio.from_thread.run(dealer.send, message(b"T", i))
                        from_thread.append(ok)

                async def loop_sender() -> None:
                    for i in range(n):
                        await dealer.send(message(b"L", i))
                        if i % 7 == 0:
                            await trio.sleep(0)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.to_thread.run_sync, thread_sender)
                    nursery.start_soon(loop_sender)
                got = await inbox.wait_for(2 * n)
    assert sum(from_thread) > n // 2  # most left from the thread itself
    for who in (b"T", b"L"):
        mine = [m[1:] for m in got if m[1] == who]
        assert mine == [message(who, i) for i in range(n)]
    assert dealer.statistics().messages_sent == 2 * n


async def test_send_from_thread_says_no_when_it_cannot_send_at_once() -> None:
    endpoint = fresh()
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # listens, never reads
    deaf.bind(address_of(endpoint))
    deaf.listen(1)
    with deaf, trio.fail_after(10):
        async with StreamDealer(on_receive=Inbox()) as dealer:
            assert not await trio.to_thread.run_sync(dealer.send_from_thread, [b"x"])  # not yet
            dealer.connect(endpoint)
            await connected(dealer)
            assert await trio.to_thread.run_sync(dealer.send_from_thread, [b"x"])
            dealer.send_nowait([b"y" * 2**25])  # more than the kernel holds: the rest queues
            assert not await trio.to_thread.run_sync(dealer.send_from_thread, [b"z"])
            assert dealer.statistics().messages_sent == 2
        assert not dealer.send_from_thread([b"x"])  # closed
