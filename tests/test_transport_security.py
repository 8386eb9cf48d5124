"""Trust on the wire (issue 12): CURVE between hosts with an allow-list of client keys, the
same-host socket's directory and peer-uid check, the refusal to bind a public address without
keys, and the deadline bookkeeping that a hostile peer once crashed (two peers, one over each
transport, both asking for t=1e300).

Multi-process tests run real worker daemons (`af.LocalCluster`, which makes the cluster's keys
itself) on loopback, and on this host's other address where it has one (so that sessions
really go over TCP and CURVE)."""

from __future__ import annotations

import argparse
import os
import socket
import stat
from functools import partial

import numpy as np
import pytest
import trio
import zmq

import actorflow as af
from actorflow.cli import add_worker_arguments, worker_config
from actorflow.cli import main as cli_main
from actorflow.cluster import LocalCluster
from devices.errors import FailedPreconditionError, UnavailableError
from transport.codec import decode_message
from transport.keys import CurveKeys, create_key_dir, load_key_dir
from transport.local_ipc import ipc_endpoint
from transport.rpc import DeadlineTimer, RpcClient, RpcConfig, RpcServer
from transport.runtime_dir import ensure_private_dir, is_private_dir, peer_allowed
from transport.unix_stream import StreamRouter
from transport.zsocket import SocketConfig

FAST = dict(heartbeat_interval=0.2, heartbeat_timeout=2.0)


async def echo(header, tensors):
    return header, tensors


def _outside_address() -> str | None:
    """An address of this host other than loopback (the source address toward any network),
    or None where there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


# ---- units: the pieces, in process ----------------------------------------------------------

async def test_equal_deadlines_of_an_int_peer_and_a_bytes_peer_never_compare_keys() -> None:
    fired: list[object] = []
    timer = DeadlineTimer(lambda key, deadline: fired.append(key))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer.run)
        due = trio.current_time() + 0.01
        for key in [(7, 1), (b"peer", 1), (8, 1), (b"peer", 2)]:  # Unix-stream and ZeroMQ
            timer.add(due, key)
        timer.compact([(due, (9, 1)), (due, (b"x", 1))])  # the rebuild ties them too
        with trio.fail_after(5):
            while len(fired) < 4:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert sorted(map(repr, fired)) == sorted(map(repr, [(7, 1), (b"peer", 1), (8, 1),
                                                          (b"peer", 2)]))


@pytest.mark.parametrize("t, fine", [(1e300, True), (float("inf"), True), (0, True),
                                     (float("nan"), False), (-1.0, False), ("soon", False),
                                     (True, False)])
def test_a_requests_deadline_is_checked_and_capped(t, fine) -> None:
    cfg = RpcConfig(max_timeout=3600.0)
    if fine:
        assert cfg.check_timeout(t) == min(float(t), 3600.0)
    else:
        with pytest.raises(af.InvalidArgumentError, match="'t' .seconds left. must be a number"):
            cfg.check_timeout(t)


async def test_nan_and_negative_deadlines_get_an_error_reply_and_the_server_serves_on() -> None:
    async with RpcServer({"echo": echo}, config=RpcConfig(**FAST)) as server:
        endpoint = server.bind("tcp://127.0.0.1:*")
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        try:
            from transport.rpc_core import request_frames
            for rid, t in [(1, float("nan")), (2, -5.0), (3, 1e300)]:
                sock.send_multipart(request_frames(rid, "echo", t, {"i": rid}))
            got = {}
            with trio.fail_after(10):
                while len(got) < 3:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        await trio.sleep(0.005)
                        continue
                    header, _, error = decode_message(frames)
                    got[header["id"]] = (header, error)
        finally:
            sock.close(0)
            ctx.term()
    assert "must be a number >= 0" in str(got[1][1]) and "nan" in str(got[1][1])
    assert "must be a number >= 0" in str(got[2][1]) and "-5.0" in str(got[2][1])
    assert got[3][1] is None and got[3][0]["h"] == {"i": 3}


def test_a_key_directory_is_private_and_its_keys_read_back(tmp_path) -> None:
    d = create_key_dir(tmp_path / "keys")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for secret in d.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    keys = load_key_dir(d)
    assert keys.server_secret and keys.client_secret and len(keys.server_public) == 40
    assert keys.allowed() == {keys.client_public}
    with pytest.raises(af.InvalidArgumentError, match="already holds files"):
        create_key_dir(d)
    os.chmod(d / "client.key_secret", 0o644)
    with pytest.raises(FailedPreconditionError, match="readable by other users.*chmod 600"):
        load_key_dir(d)
    with pytest.raises(af.InvalidArgumentError, match="actorflow keys"):
        load_key_dir(tmp_path / "nowhere")


def test_actorflow_keys_makes_a_directory_and_a_public_bind_needs_keys(tmp_path, capsys) -> None:
    assert cli_main(["keys", str(tmp_path / "k")]) == 0
    assert "--keys" in capsys.readouterr().out
    assert load_key_dir(tmp_path / "k").server_secret is not None
    cluster = tmp_path / "c.json"
    cluster.write_text('{"ps": ["127.0.0.1:1"]}')
    base = ["worker", "--cluster", str(cluster), "--job", "ps", "--task", "0"]
    # 0.0.0.0 without keys: one line naming the fix, status 2, nothing served
    assert cli_main([*base, "--bind", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve tcp://0.0.0.0" in err and "--insecure" in err
    assert len(err.strip().splitlines()) == 1
    p = argparse.ArgumentParser()
    add_worker_arguments(p)
    with pytest.raises(FailedPreconditionError, match="refusing to serve.*actorflow keys"):
        worker_config(p.parse_args(["--cluster", str(cluster), "--job", "ps", "--task", "0",
                                    "--bind", "0.0.0.0"]), None)
    cfg = worker_config(p.parse_args(["--cluster", str(cluster), "--job", "ps", "--task", "0",
                                      "--bind", "0.0.0.0", "--insecure"]), None)
    assert cfg.rpc.insecure and cfg.rpc.keys is None
    assert "WARNING: --insecure" in capsys.readouterr().err
    cfg = worker_config(p.parse_args(["--cluster", str(cluster), "--job", "ps", "--task", "0",
                                      "--bind", "0.0.0.0", "--keys", str(tmp_path / "k")]), None)
    assert cfg.rpc.keys is not None and cfg.rpc.keys.server_secret is not None


async def test_a_server_refuses_a_public_address_without_keys() -> None:
    async with RpcServer({"echo": echo}) as server:
        with pytest.raises(FailedPreconditionError, match="refusing to serve tcp://0.0.0.0"):
            server.bind("tcp://0.0.0.0:*")
        assert server.bind("tcp://127.0.0.1:*").startswith("tcp://127.0.0.1:")
    async with RpcServer({"echo": echo}, config=RpcConfig(insecure=True)) as server:
        assert server.bind("tcp://0.0.0.0:*").startswith("tcp://0.0.0.0:")


def test_same_host_sockets_live_in_a_private_directory(tmp_path) -> None:
    d = str(tmp_path / "run")
    ensure_private_dir(d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700 and is_private_dir(d)
    os.chmod(d, 0o755)
    assert not is_private_dir(d)
    with pytest.raises(FailedPreconditionError, match="chmod 700"):
        ensure_private_dir(d)
    assert ipc_endpoint("tcp://127.0.0.1:5000", d) == f"unix://{d}/4-5000"
    assert not ipc_endpoint("tcp://127.0.0.1:5000").startswith("unix://@")  # no abstract names


def test_the_peer_check_takes_only_this_user() -> None:
    assert peer_allowed(os.getuid())
    assert not peer_allowed(4242, own_uid=1000)
    assert not peer_allowed(0, own_uid=1000)  # root is another user too
    assert not peer_allowed(-1)  # the kernel did not say


async def test_a_same_host_peer_of_another_uid_is_refused_before_a_byte_is_read(
        tmp_path, monkeypatch) -> None:
    import transport.unix_stream as us

    got: list = []
    monkeypatch.setattr(us, "_uid_of", lambda sock: 4242)  # as if another user connected
    async with StreamRouter(SocketConfig(), on_receive=got.append) as router:
        endpoint = router.bind(f"unix://{tmp_path}/s")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(tmp_path / "s"))
            c.sendall(b"\x01\x00\x00\x00" + (3).to_bytes(8, "little") + b"abc")
            c.settimeout(5)

            def hung_up() -> bool:
                try:
                    return c.recv(10) == b""
                except ConnectionResetError:
                    return True

            with trio.fail_after(10):
                assert await trio.to_thread.run_sync(hung_up)
        assert "refused a connection from uid 4242" in router.last_drop
        assert got == [] and endpoint


# ---- real daemons ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loopback_cluster():
    with LocalCluster(jobs={"ps": 1, "worker": 1}, daemon_args=["--heartbeat-timeout", "3"]
                      ) as cluster:
        yield cluster


def _tcp(cluster: LocalCluster, job: str) -> str:
    return "tcp://" + cluster.as_dict()[job][0]


@pytest.mark.multiprocess
async def test_tcp_clients_without_or_with_a_wrong_key_are_refused_and_the_right_key_works(
        loopback_cluster, tmp_path) -> None:
    cluster = loopback_cluster
    assert cluster.key_dir is not None  # made by the cluster itself: no flag needed
    keys = load_key_dir(cluster.key_dir)
    public, secret = zmq.curve_keypair()
    stranger = CurveKeys(keys.server_public, None, public, secret)  # knows the server only
    create_key_dir(tmp_path / "other")
    other = load_key_dir(tmp_path / "other")  # another cluster's keys
    endpoint = _tcp(cluster, "ps")
    cases = [(None, "requires CURVE keys"), (stranger, "refused this client's key"),
             (other, "does not hold the server key")]
    for client_keys, why in cases:
        async with RpcClient(endpoint, config=RpcConfig(keys=client_keys, **FAST)) as client:
            with trio.fail_after(10), pytest.raises(UnavailableError, match=why):
                await client.call("status", None, timeout=5)
    async with RpcClient(endpoint, config=RpcConfig(keys=keys, **FAST)) as client:
        with trio.fail_after(10):
            header, _ = await client.call("status", None, timeout=5)
    assert (header["job"], header["task"]) == ("ps", 0)


@pytest.mark.multiprocess
async def test_a_deadline_tie_between_a_same_host_and_a_tcp_peer_leaves_the_daemon_up(
        loopback_cluster) -> None:
    cluster = loopback_cluster
    keys = load_key_dir(cluster.key_dir)
    tcp = _tcp(cluster, "worker")
    unix = ipc_endpoint(tcp)
    async with RpcClient(unix, config=RpcConfig(**FAST)) as near, \
            RpcClient(tcp, config=RpcConfig(keys=keys, **FAST)) as far:
        with trio.fail_after(20):
            await near.wait_ready()
            await far.wait_ready()
            for _ in range(3):
                async with trio.open_nursery() as nursery:
                    for c in (near, far, near, far):
                        nursery.start_soon(partial(c.call, "reset", {"containers": ["af-no"]},
                                                   None, timeout=1e300))
            for c in (near, far):
                header, _ = await c.call("status", None, timeout=5)
                assert header["job"] == "worker"
    assert cluster.alive("worker", 0), cluster.log("worker", 0)


@pytest.mark.multiprocess
def test_a_session_with_the_clusters_keys_trains_over_tcp_and_one_without_is_refused() -> None:
    host = _outside_address()
    if host is None:
        pytest.skip("this host has no address but loopback: TCP between 'hosts' cannot be made")
    with LocalCluster(jobs={"ps": 1, "worker": 1}, host=host) as cluster:
        assert cluster.key_dir is not None
        g = af.Graph()
        with g.as_default():
            with af.device("/job:ps/task:0"):
                w = af.Variable(np.zeros(3, np.float32), name="w")
            with af.device("/job:worker/task:0"):
                x = af.constant(np.eye(3, dtype=np.float32))
                y = af.constant(np.array([1.0, 2.0, 3.0], np.float32))
                loss = af.reduce_sum(af.square(af.reshape(af.matmul(x, af.reshape(w, (3, 1))),
                                                          (3,)) - y))
                train = af.train.GradientDescentOptimizer(0.1).minimize(loss)
            init = af.global_variables_initializer()
        good = af.ConfigProto(rpc_options=af.RPCOptions(key_dir=str(cluster.key_dir)))
        target = cluster.target("worker", 0)
        assert host in target
        with af.Session(target, graph=g, config=good) as s:
            s.run(init)
            losses = [float(s.run([train, loss])[1]) for _ in range(5)]
        assert losses[0] == pytest.approx(14.0) and losses[-1] < losses[0] * 0.2
        bad = af.ConfigProto(rpc_options=af.RPCOptions(connect_timeout=2.0))
        with pytest.raises(af.OpError):
            with af.Session(target, graph=g, config=bad) as s:
                s.run(loss)
        assert cluster.alive("ps", 0) and cluster.alive("worker", 0)


def test_af_server_takes_keys_from_its_config_and_refuses_a_public_bind_without(tmp_path) -> None:
    with pytest.raises(FailedPreconditionError, match="refusing to serve"):
        af.Server({"local": ["0.0.0.0:0"]}, "local", 0, bind="0.0.0.0")
    create_key_dir(tmp_path / "k")
    config = af.ConfigProto(rpc_options=af.RPCOptions(key_dir=str(tmp_path / "k"), **FAST))
    with af.Server({"local": ["127.0.0.1:0"]}, "local", 0, config=config) as server:
        endpoint = "tcp://" + server.target[len("af://"):]

        async def ask(keys):
            async with RpcClient(endpoint, config=RpcConfig(keys=keys, **FAST)) as client:
                with trio.fail_after(10):
                    return (await client.call("status", None, timeout=5))[0]

        assert trio.run(ask, load_key_dir(tmp_path / "k"))["job"] == "local"
        with pytest.raises(UnavailableError, match="requires CURVE keys"):
            trio.run(ask, None)


async def test_a_client_key_is_authorized_and_revoked_without_a_restart(tmp_path) -> None:
    import zmq.auth

    d = create_key_dir(tmp_path / "k")
    keys = load_key_dir(d)
    zmq.auth.create_certificates(tmp_path, "alice")
    alice_public, alice_secret = zmq.auth.load_certificate(tmp_path / "alice.key_secret")
    alice = CurveKeys(keys.server_public, None, alice_public, alice_secret)

    async with RpcServer({"echo": echo}, config=RpcConfig(keys=keys, **FAST)) as server:
        endpoint = server.bind("tcp://127.0.0.1:*")

        async def ask() -> object:
            async with RpcClient(endpoint, config=RpcConfig(keys=alice, **FAST)) as client:
                with trio.fail_after(10):
                    return (await client.call("echo", {"me": "alice"}, timeout=5))[0]

        with pytest.raises(UnavailableError, match="refused this client's key"):
            await ask()
        assert server.statistics().requests == 0  # refused before any request was read
        (d / "authorized" / "alice.key").write_bytes((tmp_path / "alice.key").read_bytes())
        assert await ask() == {"me": "alice"}
        (d / "authorized" / "alice.key").unlink()
        with pytest.raises(UnavailableError, match="refused this client's key"):
            await ask()
        assert server.statistics().auth_denied == 2
        assert server.statistics().requests == 1  # only while alice was authorized


async def test_one_connection_cannot_hold_more_than_its_share_of_requests() -> None:
    release = trio.Event()

    async def slow(header, tensors):
        await release.wait()
        return header, tensors

    config = RpcConfig(max_inflight_per_peer=3, **FAST)
    async with RpcServer({"slow": slow}, config=config) as server:
        endpoint = server.bind("tcp://127.0.0.1:*")
        results: list = []
        async with RpcClient(endpoint, config=config) as greedy, \
                RpcClient(endpoint, config=config) as other:

            async def call(client, i) -> None:
                try:
                    results.append(await client.call("slow", {"i": i}, timeout=10))
                except af.OpError as e:
                    results.append(e)

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for i in range(5):
                        nursery.start_soon(call, greedy, i)
                    while server.statistics().refused < 2:
                        await trio.sleep(0.01)
                    nursery.start_soon(call, other, 99)  # another connection still gets in
                    while server.statistics().inflight < 4:
                        await trio.sleep(0.01)
                    release.set()
    refused = [r for r in results if isinstance(r, af.OpError)]
    assert len(refused) == 2 and all("max_inflight_per_peer" in str(r) for r in refused)
    served = sorted(r[0]["i"] for r in results if not isinstance(r, af.OpError))
    assert len(served) == 4 and served[-1] == 99


async def test_a_dealer_never_talks_to_a_same_host_server_of_another_uid(tmp_path,
                                                                        monkeypatch) -> None:
    import transport.unix_stream as us
    from transport.unix_stream import StreamDealer

    got: list = []
    async with StreamRouter(SocketConfig(), on_receive=got.append) as router:
        endpoint = router.bind(f"unix://{tmp_path}/s")
        monkeypatch.setattr(us, "_uid_of", lambda sock: 4242)  # as if another user served it
        async with StreamDealer(SocketConfig(retry_interval=0.01), on_receive=got.append) as d:
            d.connect(endpoint)
            with trio.fail_after(10):
                while "runs as uid 4242" not in d.last_drop:
                    await trio.sleep(0.01)
            with pytest.raises(trio.WouldBlock):
                d.send_nowait([b"secret"])  # never connected: nothing can be sent
    assert got == []
