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
then exits 0. The cluster file maps job names to lists of ``"host:port"``
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
        print(f"actorflow worker: {e}", file=sys.stderr)
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


def worker_config(args: argparse.Namespace, af_config: str | None) -> Any:
    """The service configuration from the flags and, where they are silent, AF_CONFIG."""
    from actorflow.config import ConfigProto
    from actorflow.server import ClusterSpec
    from scheduler.worker_service import WorkerConfig
    from transport.rpc import RpcConfig

    env: dict[str, Any] = {}
    if af_config:
        env = json.loads(af_config)
        if not isinstance(env, dict):
            raise ValueError("AF_CONFIG must be a JSON object {\"cluster\": ..., \"task\": ...}")
    if args.cluster:
        with open(args.cluster) as f:
            cluster = json.load(f)
    elif "cluster" in env:
        cluster = env["cluster"]
    else:
        raise ValueError("no cluster: pass --cluster FILE.json or set AF_CONFIG")
    task = env.get("task") or {}
    job = args.job if args.job is not None else task.get("type")
    index = args.task if args.task is not None else task.get("index")
    if job is None or index is None:
        raise ValueError("which task is this? pass --job and --task (or AF_CONFIG's "
                         "task.type and task.index)")
    spec = ClusterSpec(cluster)
    spec.task_address(job, int(index))
    counts: dict[str, int] = {}
    for item in args.device_count:
        for part in item.split(","):
            kind, sep, n = part.partition("=")
            if not sep or not n.strip().isdigit():
                raise ValueError(f"--device-count {part!r}: expected KIND=N, e.g. CPU=2")
            counts[kind.strip().upper()] = int(n)
    runtime = ConfigProto(device_count=counts).to_runtime()
    from actorflow.security import keys_from_args  # issue 12: keys, or refuse to bind

    keys, insecure = keys_from_args(args)
    return WorkerConfig(job=job, task=int(index), cluster=spec.as_task_map(),
                        bind_host=args.bind, runtime=runtime,
                        rpc=RpcConfig(heartbeat_interval=args.heartbeat_interval,
                                      heartbeat_timeout=args.heartbeat_timeout,
                                      keys=keys, insecure=insecure),
                        orphan_ttl=args.orphan_ttl, shm_min_bytes=args.shm_min_bytes)


def run_worker(config: Any) -> int:
    """Serve until SIGTERM or SIGINT; 0 on a clean shutdown, 1 if the service failed."""
    try:
        trio.run(_serve_until_signal, config)
    except (OpError, OSError) as e:
        print(f"actorflow worker: {e}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signal(config: Any) -> None:
    from scheduler.worker_service import WorkerService

    service = WorkerService(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.serve)
            host, _, port = service.cluster[config.job][config.task].rpartition(":")
            if config.bind_host not in ("0.0.0.0", "*", "::"):
                host = config.bind_host
            print(f"READY af://{host}:{port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
