"""Step traces as files people open: Chrome trace JSON (as TF1's ``timeline`` made) and Perfetto.

    md = af.RunMetadata()
    sess.run(train_op, options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE),
             run_metadata=md)
    tl = timeline.Timeline(md.step_stats)
    open("step.json", "w").write(tl.generate_chrome_trace_format(show_memory=True))
    open("step.pftrace", "wb").write(tl.generate_perfetto_trace())

Layout (both formats): one process per device (``<device> Compute``); the device's nodes on
lanes assigned greedily so that nodes on one lane never overlap (the executor runs kernels
concurrently: Recvs waiting, kernels on worker threads), each node a slice named by its op with
its name, outputs (dtype, shape, bytes) and OS thread as arguments; a flow arrow from every
``_Send`` to its ``_Recv`` (``DataFlow``), across tasks; a counter per device of its memory
pool's bytes in use (``show_memory``). Times are relative to the step's first node. Records
from a cluster are already on one clock (each task moves its own onto the wall clock).

Perfetto needs the ``perfetto`` package (``actorflow[trace]``): its TraceProtoBuilder writes
``TrackDescriptor`` and ``TrackEvent`` packets (child tracks per lane, since Perfetto forbids
overlapping slices on one track), flows by id, and counter tracks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devices.errors import UnimplementedError
from scheduler.tracing import dtype_name


@dataclass
class _Event:
    name: str
    op: str
    device: str
    start_us: float
    dur_us: float
    outputs: tuple
    pool_bytes: int
    thread: int
    lane: int = 0


def _op_of(name: str, op: str) -> str:
    if op:
        return op
    base = name.rpartition("/")[2]
    if base.startswith("_send_"):
        return "_Send"
    if base.startswith("_recv_"):
        return "_Recv"
    return "?"


def _pair_key(name: str, op: str) -> str | None:
    """Send `_send_<stem>_to_<dst>` and Recv `_recv_<stem>_on_<dst>` share `<stem>|<dst>`."""
    if op == "_Send" and name.startswith("_send_") and "_to_" in name:
        stem, _, dst = name[6:].rpartition("_to_")
        return f"{stem}|{dst}"
    if op == "_Recv" and name.startswith("_recv_") and "_on_" in name:
        stem, _, dst = name[6:].rpartition("_on_")
        return f"{stem}|{dst}"
    return None


class Timeline:
    """A step's `StepStats` (``RunMetadata.step_stats``) laid out for trace viewers."""

    def __init__(self, step_stats: Any, graph: Any = None) -> None:
        nodes = list(getattr(step_stats, "nodes", step_stats))
        ops: dict[str, str] = {}
        if graph is not None:
            ops = {op.name: op.type for op in graph.get_operations()}
        t0 = min((n.start_s for n in nodes), default=0.0)
        self.events = [
            _Event(n.node_name, _op_of(n.node_name, n.op or ops.get(n.node_name, "")),
                   n.device, (n.start_s - t0) * 1e6, max(0.001, (n.end_s - n.start_s) * 1e6),
                   tuple(n.outputs), int(n.pool_bytes), int(n.thread_id))
            for n in nodes]
        self.events.sort(key=lambda e: (e.device, e.start_us, -e.dur_us))
        self.devices = sorted({e.device for e in self.events})
        self._assign_lanes()

    def _assign_lanes(self) -> None:
        ends: dict[str, list[float]] = {}
        for e in self.events:  # sorted by device, then start
            lanes = ends.setdefault(e.device, [])
            for i, end in enumerate(lanes):
                if end <= e.start_us:
                    e.lane, lanes[i] = i, e.start_us + e.dur_us
                    break
            else:
                e.lane = len(lanes)
                lanes.append(e.start_us + e.dur_us)

    def _flows(self) -> list[tuple[_Event, _Event]]:
        sends: dict[str, _Event] = {}
        recvs: dict[str, _Event] = {}
        for e in self.events:
            key = _pair_key(e.name.rpartition("/")[2], e.op)
            if key is not None:
                (sends if e.op == "_Send" else recvs)[key] = e
        return [(s, recvs[k]) for k, s in sends.items() if k in recvs]

    @staticmethod
    def _args(e: _Event) -> dict[str, Any]:
        args: dict[str, Any] = {"name": e.name, "op": e.op, "thread": e.thread}
        for i, (dt, shape, nbytes) in enumerate(e.outputs):
            args[f"output{i}"] = f"{dtype_name(dt)}{list(shape)} ({nbytes} bytes)"
        return args

    def generate_chrome_trace_format(self, show_dataflow: bool = True,
                                     show_memory: bool = False) -> str:
        """Chrome trace JSON (``chrome://tracing``, Perfetto's legacy JSON importer)."""
        ev: list[dict[str, Any]] = []
        pid_of = {d: i for i, d in enumerate(self.devices)}
        for d, pid in pid_of.items():
            ev.append({"ph": "M", "name": "process_name", "pid": pid,
                       "args": {"name": f"{d} Compute"}})
            lanes = sorted({e.lane for e in self.events if e.device == d})
            for lane in lanes:
                ev.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": lane,
                           "args": {"name": f"lane {lane}"}})
        for e in self.events:
            ev.append({"ph": "X", "cat": "Op", "name": e.op, "pid": pid_of[e.device],
                       "tid": e.lane, "ts": e.start_us, "dur": e.dur_us, "args": self._args(e)})
        if show_dataflow:
            for n, (s, r) in enumerate(self._flows()):
                ev.append({"ph": "s", "cat": "DataFlow", "name": "dataflow", "id": n,
                           "pid": pid_of[s.device], "tid": s.lane, "ts": s.start_us})
                ev.append({"ph": "t", "cat": "DataFlow", "name": "dataflow", "id": n,
                           "pid": pid_of[r.device], "tid": r.lane,
                           "ts": max(r.start_us, s.start_us) + r.dur_us, "bp": "e"})
        if show_memory:
            for e in sorted(self.events, key=lambda x: x.start_us + x.dur_us):
                ev.append({"ph": "C", "cat": "Memory", "name": "pool bytes in use",
                           "pid": pid_of[e.device], "ts": e.start_us + e.dur_us,
                           "args": {"bytes": e.pool_bytes}})
        return json.dumps({"traceEvents": ev, "displayTimeUnit": "ns"})

    def generate_perfetto_trace(self, show_memory: bool = True) -> bytes:
        """A Perfetto ``Trace`` protobuf (ui.perfetto.dev, trace_processor)."""
        try:
            from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent
            from perfetto.trace_builder.proto_builder import TraceProtoBuilder
        except ImportError:
            raise UnimplementedError("the Perfetto export needs the perfetto package: pip "
                                     "install perfetto (actorflow[trace])") from None
        b = TraceProtoBuilder()
        seq = 0x5AF
        uuid = iter(range(1000, 1 << 62))
        lane_track: dict[tuple[str, int], int] = {}
        counter_track: dict[str, int] = {}
        for pid, d in enumerate(self.devices, start=1):
            proc = next(uuid)
            p = b.add_packet()
            p.track_descriptor.uuid = proc
            p.track_descriptor.process.pid = pid
            p.track_descriptor.process.process_name = f"{d} Compute"
            for lane in sorted({e.lane for e in self.events if e.device == d}):
                t = next(uuid)
                lane_track[(d, lane)] = t
                p = b.add_packet()
                p.track_descriptor.uuid = t
                p.track_descriptor.parent_uuid = proc
                p.track_descriptor.name = f"lane {lane}"
            if show_memory:
                c = next(uuid)
                counter_track[d] = c
                p = b.add_packet()
                p.track_descriptor.uuid = c
                p.track_descriptor.parent_uuid = proc
                p.track_descriptor.name = "pool bytes in use"
                p.track_descriptor.counter.unit = p.track_descriptor.counter.UNIT_SIZE_BYTES
        flow_out: dict[int, int] = {}
        flow_in: dict[int, int] = {}
        for n, (s, r) in enumerate(self._flows(), start=1):
            flow_out[id(s)] = n
            flow_in[id(r)] = n
        marks: list[tuple[int, int, Any]] = []  # (ns, order, fill) so packets go in time order
        for e in self.events:
            start, end = int(e.start_us * 1e3), int((e.start_us + e.dur_us) * 1e3)
            marks.append((start, 1, (e, TrackEvent.TYPE_SLICE_BEGIN)))
            marks.append((end, 0, (e, TrackEvent.TYPE_SLICE_END)))
            if show_memory:
                marks.append((end, 2, (e, TrackEvent.TYPE_COUNTER)))
        marks.sort(key=lambda m: (m[0], m[1]))
        for ns, _, (e, kind) in marks:
            p = b.add_packet()
            p.timestamp = ns
            p.trusted_packet_sequence_id = seq
            te = p.track_event
            te.type = kind
            if kind == TrackEvent.TYPE_COUNTER:
                te.track_uuid = counter_track[e.device]
                te.counter_value = e.pool_bytes
                continue
            te.track_uuid = lane_track[(e.device, e.lane)]
            if kind == TrackEvent.TYPE_SLICE_BEGIN:
                te.name = e.op
                for k, v in self._args(e).items():
                    a = te.debug_annotations.add()
                    a.name = k
                    if isinstance(v, int):
                        a.int_value = v
                    else:
                        a.string_value = str(v)
                if id(e) in flow_out:
                    te.flow_ids.append(flow_out[id(e)])
                if id(e) in flow_in:
                    te.terminating_flow_ids.append(flow_in[id(e)])
        return b.serialize()
