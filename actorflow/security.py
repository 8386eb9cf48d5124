"""Keys and trust on the command line: ``actorflow keys DIR`` and the daemons' key flags.

    actorflow keys /etc/actorflow/keys            # make a cluster's key directory
    actorflow worker ... --bind 0.0.0.0 --keys /etc/actorflow/keys
    actorflow worker ... --bind 0.0.0.0 --insecure    # says what it gives up

Sessions and `af.Server` take the same directory from their configuration
(``af.ConfigProto(rpc_options=af.RPCOptions(key_dir=...))``), never from the environment.
What the keys protect, and how to rotate them: SECURITY.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO

from devices.errors import OpError
from transport.keys import AUTHORIZED, CLIENT, SERVER, CurveKeys, create_key_dir, load_key_dir
from transport.runtime_dir import check_bind, is_loopback

KEYS_HELP = "make a key directory for a cluster (CURVE keys: authentication and encryption)"
INSECURE_WARNING = (
    "WARNING: --insecure: serving {where} with no authentication and no encryption: anyone who "
    "can reach it may run any op of the graphs registered here (read or overwrite every "
    "variable, reset every container) and read every tensor on the wire")


def add_security_arguments(p: argparse.ArgumentParser) -> None:
    """The worker daemon's trust flags: ``--keys DIR`` and ``--insecure``."""
    p.add_argument("--keys", metavar="DIR",
                   help="the cluster's key directory (made by 'actorflow keys DIR'): TCP "
                        "clients must hold a key it authorizes, and traffic is encrypted "
                        "(CURVE). Needed to bind anything but loopback")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback address without --keys: no "
                        "authentication, no encryption (anyone reaching the port can run "
                        "any registered graph's ops)")


def keys_from_args(args: argparse.Namespace, err: IO[str] | None = None
                   ) -> tuple[CurveKeys | None, bool]:
    """``(keys, insecure)`` from the flags; checks the bind address against them (raises
    an OpError naming the fix) and warns on stderr when serving insecurely off loopback."""
    keys = load_key_dir(args.keys) if getattr(args, "keys", None) else None
    insecure = bool(getattr(args, "insecure", False))
    bind = getattr(args, "bind", "127.0.0.1")
    if keys is not None:
        keys.require_server()
        keys.require_client()
    check_bind(f"tcp://{bind}:0", keys is not None, insecure)
    if insecure and keys is None and not is_loopback(bind):
        print(INSECURE_WARNING.format(where=bind), file=err or sys.stderr, flush=True)
    return keys, insecure


def keys_main(argv: Sequence[str], out: IO[str] | None = None) -> int:
    """``actorflow keys DIR [--force]``: make the directory; 0, or 2 with one line on error."""
    out = out or sys.stdout
    p = argparse.ArgumentParser(prog="actorflow keys", description=KEYS_HELP)
    p.add_argument("dir", help="the directory to create (mode 0700)")
    p.add_argument("--force", action="store_true", help="replace the keys in an existing one")
    args = p.parse_args(list(argv))
    try:
        d = create_key_dir(args.dir, force=args.force)
        load_key_dir(d)  # check it reads back
    except (OpError, OSError) as e:
        print(f"actorflow keys: {e}", file=sys.stderr)
        return 2
    print(f"keys in {d}\n"
          f"  daemons: --keys {d}   (all of it; {SERVER}.key_secret and {CLIENT}.key_secret "
          "are secret)\n"
          f"  sessions elsewhere: {SERVER}.key and {CLIENT}.key_secret in a 0700 directory, "
          "as RPCOptions(key_dir=...)\n"
          f"  authorize another client: copy its .key (public) into {d / AUTHORIZED}/; "
          "delete it there to revoke", file=out)
    return 0
