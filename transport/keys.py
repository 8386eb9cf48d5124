"""A cluster's CURVE keys: the key directory, and the keys one endpoint holds.

What it owns: the layout of a key directory, making one (`create_key_dir`, what
``actorflow keys DIR`` runs), reading one (`load_key_dir`) into a frozen `CurveKeys`, and the
allow-list of client keys a server's ZAP handler consults (`CurveKeys.allowed`, re-read when
the ``authorized`` folder changes, so a key can be added or revoked without a restart).
It holds no other state. The keys are libzmq's Z85 text; the files are pyzmq's certificate
format (`zmq.auth.create_certificates` / `load_certificate`), never pickled.

Layout (the directory is 0700, secret files 0600)::

    DIR/server.key          the cluster's server public key (clients check servers by it)
    DIR/server.key_secret   its secret half: only daemons need it
    DIR/client.key          a client identity (sessions and daemons calling peers use it)
    DIR/client.key_secret
    DIR/authorized/*.key    the client public keys servers accept (client.key to begin with)

One directory serves a whole cluster: every daemon is a server (server keys) and a client of
its peers (client keys). A host that only runs sessions needs ``server.key``,
``client.key_secret`` and nothing else. See SECURITY.md for rotation.

    create_key_dir("/etc/actorflow/keys")
    keys = load_key_dir("/etc/actorflow/keys")
    RpcConfig(keys=keys)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth

from devices.errors import FailedPreconditionError, InvalidArgumentError

SERVER, CLIENT, AUTHORIZED = "server", "client", "authorized"


def curve_available() -> bool:
    """Whether this libzmq has CURVE (pyzmq's wheels bundle libsodium: they do)."""
    return bool(zmq.has("curve"))


@dataclass(frozen=True)
class CurveKeys:
    """The keys one endpoint holds (Z85 bytes). A server needs `server_secret`; a client needs
    `client_public`/`client_secret` and `server_public` (the key it expects servers to prove).

    `authorized`: the folder of client public keys a server accepts (None: exactly
    `allowed_clients`). Its ``*.key`` files are read again whenever the folder changes.
    """

    server_public: bytes
    server_secret: bytes | None
    client_public: bytes | None
    client_secret: bytes | None
    allowed_clients: frozenset[bytes] = frozenset()
    authorized: str | None = None
    source: str = ""  # where the keys came from, for messages
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def allowed(self) -> frozenset[bytes]:
        """The client public keys a server accepts now."""
        if self.authorized is None:
            return self.allowed_clients
        try:
            mtime = os.stat(self.authorized).st_mtime_ns
        except OSError:
            return self.allowed_clients
        cached = self._cache.get("allowed")
        if cached is None or cached[0] != mtime:
            keys = set(self.allowed_clients)
            for path in sorted(Path(self.authorized).glob("*.key")):
                try:
                    public, _ = zmq.auth.load_certificate(path)
                except (OSError, ValueError):
                    continue  # a stray file: not a key
                keys.add(public)
            cached = self._cache["allowed"] = (mtime, frozenset(keys))
        return cached[1]

    def require_server(self) -> None:
        if self.server_secret is None:
            raise FailedPreconditionError(
                f"the keys from {self.source or '(given)'} have no server secret "
                f"({SERVER}.key_secret): a daemon needs it to serve over TCP; copy it from the "
                "cluster's key directory (actorflow keys DIR makes one)")

    def require_client(self) -> None:
        if self.client_secret is None or self.client_public is None:
            raise FailedPreconditionError(
                f"the keys from {self.source or '(given)'} have no client key "
                f"({CLIENT}.key_secret): a session or daemon calling a task over TCP needs it")


def create_key_dir(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Make a key directory at `path` (created 0700; it must be empty or absent unless
    `force`, which replaces the keys there) and return it."""
    d = Path(path)
    if d.exists() and any(d.iterdir()) and not force:
        raise InvalidArgumentError(
            f"{d} already holds files; pick an empty or new directory (or pass force to "
            "replace its keys)")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    (d / AUTHORIZED).mkdir(mode=0o700, exist_ok=True)
    os.chmod(d / AUTHORIZED, 0o700)
    old = os.umask(0o077)
    try:
        for name in (SERVER, CLIENT):
            for suffix in (".key", ".key_secret"):
                with_ = d / (name + suffix)
                if with_.exists():
                    with_.unlink()
            zmq.auth.create_certificates(d, name)
        public, _ = zmq.auth.load_certificate(d / f"{CLIENT}.key")
        (d / AUTHORIZED / f"{CLIENT}.key").write_bytes((d / f"{CLIENT}.key").read_bytes())
    finally:
        os.umask(old)
    for f in d.glob("*.key_secret"):
        os.chmod(f, 0o600)
    assert public
    return d


def _check_private(path: Path, what: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise FailedPreconditionError(
            f"{what} {path} is readable by other users (mode {mode:o}); run "
            f"'chmod {'700' if path.is_dir() else '600'} {path}'")


def load_key_dir(path: str | os.PathLike[str]) -> CurveKeys:
    """The keys in key directory `path` (see the module docstring). Refuses a directory or a
    secret file that other users can read, and a directory with no server public key."""
    d = Path(path)
    if not d.is_dir():
        raise InvalidArgumentError(
            f"key directory {d} does not exist; make one with 'actorflow keys {d}'")
    if not curve_available():
        raise FailedPreconditionError("this libzmq has no CURVE support; install pyzmq's "
                                      "wheel (it bundles libsodium)")
    _check_private(d, "key directory")
    server_public = server_secret = client_public = client_secret = None
    try:
        if (d / f"{SERVER}.key_secret").exists():
            _check_private(d / f"{SERVER}.key_secret", "secret key")
            server_public, server_secret = zmq.auth.load_certificate(d / f"{SERVER}.key_secret")
        elif (d / f"{SERVER}.key").exists():
            server_public, _ = zmq.auth.load_certificate(d / f"{SERVER}.key")
        if (d / f"{CLIENT}.key_secret").exists():
            _check_private(d / f"{CLIENT}.key_secret", "secret key")
            client_public, client_secret = zmq.auth.load_certificate(d / f"{CLIENT}.key_secret")
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"key directory {d}: cannot read a key: {exc}") from None
    if server_public is None:
        raise InvalidArgumentError(
            f"key directory {d} has no {SERVER}.key: it is not a key directory ('actorflow "
            f"keys {d}' makes one)")
    authorized = d / AUTHORIZED
    return CurveKeys(server_public=server_public, server_secret=server_secret,
                     client_public=client_public, client_secret=client_secret,
                     authorized=str(authorized) if authorized.is_dir() else None,
                     source=str(d))
