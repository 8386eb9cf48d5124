"""Bytes between processes: the msgpack+ndarray codec, trio<->ZeroMQ sockets, RPC framing.

- `transport.codec`: a message is a msgpack header frame plus raw tensor frames (zero copy),
  checked against an allowlist and `Limits` on the way in; errors travel by canonical code.
- `transport.zsocket`: `ZSocket`, one ZeroMQ socket driven by one trio pump task.
- `transport.unix_stream`: `StreamRouter`/`StreamDealer`, the same messages over Unix-domain
  streams read straight from trio, for peers on one host; `transport.local_ipc` picks them.
  `transport.stream_conn` is one such connection's framing and reader.
- `transport.shm`: reusable shared-memory segments for large tensors between such peers.
- Trust (SECURITY.md): `transport.keys` (a cluster's CURVE key directory), `transport.zap`
  (the trio-driven ZAP handler: only allowed client keys get in), `transport.runtime_dir`
  (the 0700 directory of same-host sockets, the peer-uid check, the refusal to bind a public
  address without keys).
- `transport.rpc`: `RpcServer` (ROUTER) and `RpcClient` (DEALER) with deadlines and
  application-level heartbeats, configured by one `RpcConfig`.

This layer imports only `devices`; it knows nothing about graphs.
"""
