"""The `actorflow` program: ``python -m actorflow ...`` and the installed ``actorflow`` script
are this one `main`.

Its own commands are the library's daemons, ``worker`` and ``cluster``. Layers above the
library add commands without the library importing them: a package declares them as entry
points of the group ``actorflow.commands`` (pyproject.toml: the reference models' ``demo``
and ``train``), each a function of the rest of the command line returning an exit status;
`main` finds them in the installed distributions' metadata (a source checkout that is not
installed runs the models' commands with ``python -m models``).

    actorflow worker --cluster cluster.json --job ps --task 0 [--bind HOST] [--device-count CPU=1]
    AF_CONFIG='{"cluster": {...}, "task": {"type": "ps", "index": 0}}' actorflow worker

`worker` runs one task's worker service (`scheduler.worker_service`) until SIGTERM or SIGINT,
then exits 0, whatever the shutdown meets (also for a signal that comes while it starts, or in
the middle of a step). Every bad flag, file or environment value (a port already in use, a
``--bind`` that is not an address of this machine, an AF_CONFIG whose task is not a map, a
``--device-count`` that leaves the daemon no device, a missing or malformed cluster file) is
reported as ONE line on stderr naming it and the fix, with exit code 2; a service that fails
while serving exits 1. The cluster file maps job names to lists of ``"host:port"``
(``{"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223", "127.0.0.1:2224"]}``); without
``--cluster`` the cluster and the task come from the ``AF_CONFIG`` environment variable (the
shape of TensorFlow's ``TF_CONFIG``, so launchers such as Kubernetes or Slurm can start
workers). This entry code is the only place that reads it. The port is bound on 127.0.0.1
unless ``--bind`` names another interface. Once serving, the daemon prints exactly one line,
``READY af://HOST:PORT``, to stdout.

`cluster` (a whole cluster on loopback) lives in `actorflow.cluster` and gets the rest of the
command line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import trio

from devices.errors import OpError

WORKER_HELP = "run one task of a cluster (a worker or parameter-server daemon)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cluster":
        from actorflow.cluster import run_cluster

        return int(run_cluster(argv[1:]) or 0)
    if argv and argv[0] == "keys":  # issue 12: key directories (actorflow.security)
        from actorflow.security import keys_main

        return keys_main(argv[1:])
    if argv and argv[0] in ("status", "doctor"):  # observability (#16)
        from actorflow.client import cli as obs_cli

        return obs_cli.main(argv)
    extra = added_commands()
    if argv and argv[0] in extra:
        return int(extra[argv[0]].load()(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="actorflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_worker_arguments(sub.add_parser("worker", help=WORKER_HELP, description=WORKER_HELP))
    sub.add_parser("cluster", help="run a local cluster on loopback (see 'cluster --help')")
    sub.add_parser("keys", help="make a cluster's key directory (see 'keys --help')")
    for name, ep in sorted(extra.items()):
        sub.add_parser(name, help=f"see '{name} --help' ({ep.value})")
    args = parser.parse_args(argv)
    try:
        service_config = worker_config(args, os.environ.get("AF_CONFIG"))
    except (OpError, OSError, ValueError) as e:
        print(f"actorflow worker: {one_line(e)}", file=sys.stderr)
        return 2
    return run_worker(service_config)


COMMANDS_GROUP = "actorflow.commands"


def added_commands() -> dict[str, Any]:
    """The commands layers above the library declare (entry points of `COMMANDS_GROUP`), by
    name; the library's own names win."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)
            if ep.name not in ("worker", "cluster")}


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    def one_line_error(message: str) -> None:  # argparse's usage + error, as one line
        print(f"actorflow worker: {message}; see 'actorflow worker --help'", file=sys.stderr)
        sys.exit(2)

    p.error = one_line_error  # type: ignore[method-assign]
    p.add_argument("--cluster", metavar="FILE",
                   help="JSON file: {job: ['host:port', ...]} (default: AF_CONFIG's cluster)")
    p.add_argument("--job", help="this task's job name (default: AF_CONFIG's task.type)")
    p.add_argument("--task", type=int, help="this task's index in its job (default: "
                   "AF_CONFIG's task.index)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="interface to bind the port on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--device-count", action="append", default=[], metavar="KIND=N",
                   help="devices of a kind to host, e.g. CPU=2 or GPU=0 (repeatable)")
    p.add_argument("--heartbeat-interval", type=float, default=1.0,
                   help="seconds of silence before this task pings a peer (default 1)")
    p.add_argument("--heartbeat-timeout", type=float, default=5.0,
                   help="seconds of silence before a peer is declared unavailable (default 5)")
    p.add_argument("--orphan-ttl", type=float, default=60.0,
                   help="seconds tensors sent ahead of a step wait for it (default 60)")
    p.add_argument("--shm-min-bytes", type=int, default=1 << 20,
                   help="tensors this large or larger go to tasks on this host through "
                        "shared memory (/dev/shm); 0 turns that off (default 1 MiB)")
    from actorflow.security import add_security_arguments  # issue 12: --keys, --insecure

    add_security_arguments(p)


class UsageError(ValueError):
    """A bad flag, file or environment value: printed as one line, exit code 2."""


def worker_config(args: argparse.Namespace, af_config: str | None) -> Any:
    """The service configuration from the flags and, where they are silent, AF_CONFIG.
    Raises `UsageError` (or InvalidArgumentError) naming the bad value and the fix."""
    from actorflow.server import ClusterSpec
    from scheduler.worker_service import WorkerConfig
    from transport.rpc import RpcConfig

    env = _af_config(af_config)
    if args.cluster:
        cluster, where = _cluster_file(args.cluster), f"--cluster {args.cluster}"
    elif "cluster" in env:
        cluster, where = env["cluster"], "AF_CONFIG's cluster"
    else:
        raise UsageError("no cluster: pass --cluster FILE.json ({job: ['host:port', ...]}) or "
                         "set AF_CONFIG='{\"cluster\": ..., \"task\": {\"type\": JOB, "
                         "\"index\": N}}'")
    task = env.get("task", {})
    if not isinstance(task, dict):
        raise UsageError(f"AF_CONFIG's task must be a map {{\"type\": JOB, \"index\": N}}, "
                         f"got a {type(task).__name__}: {json.dumps(task)[:80]}")
    job = args.job if args.job is not None else task.get("type")
    index = args.task if args.task is not None else task.get("index")
    if job is None or index is None:
        raise UsageError("which task is this? pass --job and --task (or AF_CONFIG's "
                         "task.type and task.index)")
    if not isinstance(job, str) or type(index) is not int or index < 0:
        raise UsageError(f"AF_CONFIG's task.type must be a job name and task.index an int >= 0, "
                         f"got {json.dumps(job)[:40]} and {json.dumps(index)[:40]}")
    try:
        spec = ClusterSpec(cluster)
    except OpError as e:
        raise UsageError(f"{where}: {e.message}") from None
    try:
        spec.task_address(job, index)
    except OpError as e:
        flags = ("--job/--task" if args.job is not None or args.task is not None
                 else "AF_CONFIG's task")
        raise UsageError(f"{flags} {job}:{index}: {e.message} (in {where}); pick a task of "
                         "the cluster") from None
    counts = _device_counts(args.device_count)
    if counts.get("CPU", 1) == 0 and counts.get("GPU", 1) != 0:
        from devices.gpu import gpu_count
        if gpu_count() == 0:
            raise UsageError("--device-count CPU=0 leaves this daemon no device (this machine "
                             "has no GPU CuPy can use); host at least one: --device-count CPU=1")
    if counts.get("CPU", 1) == 0 and counts.get("GPU", 1) == 0:
        raise UsageError("--device-count gives every kind 0 devices; a daemon needs at least "
                         "one: --device-count CPU=1")
    if counts.get("GPU", 0) > 0:
        from devices.gpu import gpu_count
        have = gpu_count()
        if have < counts["GPU"]:
            raise UsageError(f"--device-count GPU={counts['GPU']}: this machine has {have} "
                             "GPU(s) CuPy can use; ask for at most that many (or GPU=0)")
    check_bind(args.bind)
    for flag, v in (("--heartbeat-interval", args.heartbeat_interval),
                    ("--heartbeat-timeout", args.heartbeat_timeout),
                    ("--orphan-ttl", args.orphan_ttl)):
        if not 0 < v < float("inf"):
            raise UsageError(f"{flag} {v}: must be a number of seconds > 0")
    if args.heartbeat_interval >= args.heartbeat_timeout:
        raise UsageError(f"--heartbeat-interval {args.heartbeat_interval} must be shorter than "
                         f"--heartbeat-timeout {args.heartbeat_timeout} (a peer is pinged "
                         "several times before it is declared dead)")
    if args.shm_min_bytes < 0:
        raise UsageError(f"--shm-min-bytes {args.shm_min_bytes}: must be >= 0 (0 turns shared "
                         "memory off)")
    from actorflow.config import ConfigProto

    runtime = ConfigProto(device_count=counts).to_runtime()
    from actorflow.security import keys_from_args  # issue 12: keys, or refuse to bind

    keys, insecure = keys_from_args(args)
    return WorkerConfig(job=job, task=index, cluster=spec.as_task_map(),
                        bind_host=args.bind, runtime=runtime,
                        rpc=RpcConfig(heartbeat_interval=args.heartbeat_interval,
                                      heartbeat_timeout=args.heartbeat_timeout,
                                      keys=keys, insecure=insecure),
                        orphan_ttl=args.orphan_ttl, shm_min_bytes=args.shm_min_bytes)


def _af_config(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        env = json.loads(text)
    except ValueError as e:
        raise UsageError(f"AF_CONFIG is not JSON ({e}); set it to '{{\"cluster\": {{...}}, "
                         "\"task\": {\"type\": \"ps\", \"index\": 0}}' or unset it") from None
    if not isinstance(env, dict):
        raise UsageError("AF_CONFIG must be a JSON object {\"cluster\": ..., \"task\": ...}, "
                         f"got a {type(env).__name__}")
    return env


def _cluster_file(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"--cluster {path}: no such file; pass the path of a JSON file "
                         "{job: ['host:port', ...]}") from None
    except OSError as e:
        raise UsageError(f"--cluster {path}: cannot read it ({e.strerror}); pass a readable "
                         "JSON file") from None
    except ValueError as e:
        raise UsageError(f"--cluster {path}: not JSON ({e}); it must hold "
                         "{job: ['host:port', ...]}") from None


def _device_counts(items: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            kind, sep, n = part.partition("=")
            kind = kind.strip().upper()
            if not sep or not n.strip().isdigit():
                raise UsageError(f"--device-count {part!r}: expected KIND=N with N >= 0, e.g. "
                                 "CPU=2")
            if kind not in ("CPU", "GPU"):
                raise UsageError(f"--device-count {part!r}: unknown device kind {kind!r}; the "
                                 "kinds are CPU and GPU")
            counts[kind] = int(n)
    return counts


def check_bind(host: str) -> None:
    if host in ("*", "0.0.0.0", "::", "localhost"):
        return
    try:
        socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--bind {host}: not an address ({getattr(e, 'strerror', e)}); pass "
                         "one of this machine's interface addresses, e.g. 127.0.0.1 (the "
                         "default) or 0.0.0.0 for all") from None


def run_worker(config: Any) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0 (whatever the shutdown met); 2 when the
    daemon cannot start (no device, its port taken or not of this machine), 1 if it failed
    while serving."""
    from scheduler.worker_service import WorkerService

    stop = _Stop()
    stop.install()
    try:
        try:
            service = WorkerService(config)
        except (OpError, OSError, ValueError) as e:
            return _fail(f"cannot create this task's devices: {e}", 2)
        if not service.devices:
            return _fail("this daemon would host no device; host at least one: "
                         "--device-count CPU=1", 2)
        if stop.signalled:
            return 0
        try:
            trio.run(_serve_until_signal, service, config, stop)
        except BaseException as e:  # noqa: BLE001 - turned into one line and an exit code
            if stop.signalled:  # asked to stop: whatever the shutdown met, it is over
                if not isinstance(e, KeyboardInterrupt | trio.Cancelled):
                    print(f"actorflow worker: during shutdown: {one_line(e)}",
                          file=sys.stderr)
                return 0
            if not stop.ready:
                return _fail(_start_error(e, config), 2)
            if isinstance(e, KeyboardInterrupt):
                return 0
            return _fail(f"the service failed: {one_line(e)}", 1)
        return 0
    finally:
        stop.uninstall()


class _Stop:
    """SIGTERM and SIGINT mean "stop cleanly", also before and after trio's own receiver is
    installed (a signal there must not kill the process or raise KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signalled = False
        self.ready = False  # the service is serving (READY was printed)
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.signalled = True

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handler)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _fail(message: str, code: int) -> int:
    print(f"actorflow worker: {message}", file=sys.stderr)
    return code


def one_line(e: BaseException) -> str:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    text = str(e) if isinstance(e, OpError | UsageError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split())


def _start_error(e: BaseException, config: Any) -> str:
    """One line for a daemon that could not start serving: which address, and the fix."""
    text = one_line(e)
    host, _, port = config.address.rpartition(":")
    where = f"{config.bind_host}:{port}"
    if "in use" in text:  # (launchers such as af.LocalCluster look for the OS's words)
        return (f"port {port} (task /job:{config.job}/task:{config.task} at {config.address} "
                f"in the cluster spec) is already in use on {config.bind_host} (Address already "
                "in use): stop the process holding it or give this task another port in the "
                "cluster spec")
    if "cannot bind" in text or "Cannot assign" in text or "No such device" in text:
        return (f"cannot bind {where}: --bind {config.bind_host} is not an address of this "
                f"machine ({text}); pass one of its interface addresses, e.g. 127.0.0.1 or "
                "0.0.0.0 for all")
    return f"could not start: {text}"


async def _serve_until_signal(service: Any, config: Any, stop: _Stop) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.serve)
            host, _, port = service.cluster[config.job][config.task].rpartition(":")
            if config.bind_host not in ("0.0.0.0", "*", "::"):
                host = config.bind_host
            stop.ready = True
            if stop.signalled:  # a signal came while it started
                nursery.cancel_scope.cancel()
                return
            print(f"READY af://{host}:{port}", flush=True)
            async for _ in signals:
                stop.signalled = True
                nursery.cancel_scope.cancel()
                break
