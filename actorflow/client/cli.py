"""``actorflow status`` and ``actorflow doctor`` on the command line.

    actorflow status [TARGET] [--json] [--timeout S]
    actorflow doctor [TARGET] [--json] [--timeout S]

TARGET is ``af://HOST:PORT`` (any task of a running cluster), a cluster file
(``{"ps": ["host:port"], "worker": [...]}``) or JSON text; without it the cluster comes from
the ``AF_CONFIG`` environment variable (read here, at the entry, and nowhere deeper). Exit
status: 0 when every task answered (status) or no step is stuck on a dead task (doctor), 1
otherwise, 2 for a bad target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from devices.errors import OpError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="af://HOST:PORT, a cluster file, or JSON "
                   "(default: AF_CONFIG)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--timeout", type=float, default=3.0,
                   help="seconds each task has to answer (default 3)")
    p.add_argument("--keys", metavar="DIR", default=None,
                   help="the cluster's key directory ('actorflow keys'), for tasks reached "
                        "over TCP; tasks on this host answer on their private socket")


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    command = argv[0] if argv else ""
    p = argparse.ArgumentParser(prog=f"actorflow {command}", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv[1:])
    target = args.target or os.environ.get("AF_CONFIG")
    if not target:
        print(f"actorflow {command}: no cluster: pass af://HOST:PORT or a cluster file, or "
              "set AF_CONFIG", file=sys.stderr)
        return 2
    try:
        config = None
        if args.keys:
            from transport.keys import load_key_dir
            from transport.rpc import RpcConfig
            config = RpcConfig(heartbeat_interval=min(1.0, args.timeout / 3),
                               heartbeat_timeout=args.timeout, keys=load_key_dir(args.keys))
        if command == "status":
            from actorflow.client.cluster_status import cluster_status
            st = cluster_status(target, args.timeout, config)
            print(json.dumps(st.as_dict(), indent=1) if args.json else st.table())
            return 0 if all(t.error is None for t in st.tasks) else 1
        from actorflow.client.doctor import diagnose
        d = diagnose(target, args.timeout, config)
        print(json.dumps(d.as_dict(), indent=1) if args.json else d.report())
        return 1 if d.down or any(s.edges for s in d.steps) else 0
    except OpError as e:
        print(f"actorflow {command}: {e}", file=sys.stderr)
        return 2
