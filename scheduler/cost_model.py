"""The cost model: how long a node takes on a device and how long its inputs take to get there.

The placer's greedy simulation (WP §3.2.1) and the partitioner's Recv scheduling (WP §5.2) ask
three questions, all answered in seconds or bytes:

- `output_bytes(node)`: the size of each output, from its declared dtypes and static shapes. An
  unknown dimension counts as `CostParams.unknown_dim`, an unknown rank as
  `CostParams.unknown_rank_elements` elements, an unknown dtype as 4 bytes.
- `compute_time(node, device, in_shapes)`: a per-op heuristic, ``launch + max(flops / rate,
  bytes / bandwidth)`` with the device kind's rates: MatMul counts ``2*M*N*K`` flops, Conv2D
  ``2 * out * kh*kw*cin``, bookkeeping ops (NoOp, Identity, Const, handles, control flow,
  Send/Recv) only the launch, everything else is memory-bound (input plus output bytes). A
  time measured in an earlier run (`record`) replaces the heuristic.
- `transfer_time(nbytes, src, dst)`: zero on one device; ``latency + bytes / bandwidth`` with
  memcpy rates between devices of one task (one process) and network rates across tasks.

State:
- `params`: the frozen `CostParams` (rates per device kind, link rates, defaults).
- `_measured`: (node name, canonical device string) -> seconds, an exponential moving average
  of the timings passed to `record` (weight `params.ema_alpha` for the newest). Written only by
  `record`; read by `compute_time`, which prefers it to the heuristic.
- `_measured_kind`: (node name, device kind) -> seconds, the same average pooled per kind, used
  for a device of a kind the node was measured on but not that very device.
- `_bytes_cache`: (dtype name, shape) -> bytes, a bounded memo for `output_bytes` (params are
  frozen, so entries never go stale).

    >>> cm = CostModel()
    >>> mm = NodeDef("mm", "MatMul", ["a", "b"], out_dtypes=["float32"], out_shapes=[(512, 512)])
    >>> cpu = DeviceSpec.parse("/job:localhost/replica:0/task:0/device:CPU:0")
    >>> t = cm.compute_time(mm, cpu, [(512, 512), (512, 512)])   # about 5 ms: 2.7e8 flops
    >>> cm.record("mm", cpu, 0.002); cm.compute_time(mm, cpu, [])
    0.002
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devices import dtypes
from devices.device_spec import DeviceSpec
from devices.errors import InvalidArgumentError
from scheduler.graphdef import NodeDef, Shape


@dataclass(frozen=True)
class DeviceRates:
    """How fast one kind of device computes: peak flops, memory bandwidth, per-node overhead."""

    flops_per_s: float
    bytes_per_s: float
    launch_s: float


def _default_rates() -> dict[str, DeviceRates]:
    return {
        "CPU": DeviceRates(flops_per_s=5e10, bytes_per_s=1e10, launch_s=2e-6),
        "GPU": DeviceRates(flops_per_s=1e13, bytes_per_s=5e11, launch_s=1e-5),
    }


@dataclass(frozen=True)
class CostParams:
    """Every constant of the heuristics, in one typed object (seconds, bytes, bytes/s)."""

    rates: Mapping[str, DeviceRates] = field(default_factory=_default_rates)
    default_rates: DeviceRates = DeviceRates(flops_per_s=5e10, bytes_per_s=1e10, launch_s=2e-6)
    local_latency_s: float = 1e-5       # between devices of one task: a memcpy / PCIe hop
    local_bytes_per_s: float = 1e10
    remote_latency_s: float = 2e-4      # between tasks: a network round trip
    remote_bytes_per_s: float = 1e9
    unknown_dim: int = 32
    unknown_rank_elements: int = 1024
    ema_alpha: float = 0.3


# Ops that move no data of their own: they cost one launch.
FREE_OPS: frozenset[str] = frozenset({
    "NoOp", "Identity", "IdentityN", "StopGradient", "Const", "Placeholder", "_Arg", "_Retval",
    "_Send", "_Recv", "VarHandleOp", "VariableV2", "Variable", "ControlTrigger", "Switch",
    "Merge", "Enter", "Exit", "NextIteration", "LoopCond", "Shape", "Size", "Rank", "Reshape",
    "Squeeze", "ExpandDims",
})
MATMUL_OPS: frozenset[str] = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2"})

_DTYPE_SIZE: dict[str, int] = {d.name: (8 if d.is_resource else d.size) for d in dtypes.ALL}
_DEFAULT_DTYPE_SIZE = 4


class CostModel:
    """Estimates of compute and transfer times, refined by measured timings (see module doc)."""

    def __init__(self, params: CostParams | None = None) -> None:
        self.params = params if params is not None else CostParams()
        self._measured: dict[tuple[str, str], float] = {}
        self._measured_kind: dict[tuple[str, str], float] = {}
        self._bytes_cache: dict[tuple[str, Shape], int] = {}  # (dtype, shape) -> bytes

    # -- sizes ------------------------------------------------------------------------------

    def elements(self, shape: Shape) -> int:
        """The element count of a static shape, unknowns replaced by the defaults."""
        if shape is None:
            return self.params.unknown_rank_elements
        unknown = self.params.unknown_dim
        n = 1
        for d in shape:
            n *= unknown if d is None or d < 0 else d
        return n

    def output_bytes(self, node: NodeDef) -> list[int]:
        """Bytes of each output of `node` (missing shapes count as unknown rank)."""
        shapes = node.out_shapes
        cache = self._bytes_cache
        out = []
        for i, dt in enumerate(node.out_dtypes):
            shape = shapes[i] if i < len(shapes) else None
            if isinstance(shape, list):
                shape = tuple(shape)
            size = cache.get((dt, shape))
            if size is None:
                size = self.elements(shape) * _DTYPE_SIZE.get(dt, _DEFAULT_DTYPE_SIZE)
                if len(cache) < 65536:
                    cache[(dt, shape)] = size
            out.append(size)
        return out

    # -- compute ----------------------------------------------------------------------------

    def work(self, node: NodeDef, in_shapes: Sequence[Shape] = (),
             in_bytes: int | None = None,
             out_bytes: Sequence[int] | None = None) -> tuple[float, float]:
        """(flops, bytes touched) of one execution of `node`, independent of the device.

        `in_shapes` are the static shapes of its data inputs, in order; `in_bytes` their total
        size when the caller knows it (the placer does), else estimated as float32;
        `out_bytes` the sizes of its outputs if already computed (`output_bytes`).
        """
        op = node.op
        if op in FREE_OPS:
            return 0.0, 0.0
        total_out = sum(self.output_bytes(node) if out_bytes is None else out_bytes)
        if in_bytes is None:
            in_bytes = 4 * sum(self.elements(s) for s in in_shapes)
        touched = float(in_bytes + total_out)
        if op in MATMUL_OPS:
            out_shape = node.out_shapes[0] if node.out_shapes else None
            k = self._contracted_dim(node, in_shapes)
            return 2.0 * self.elements(out_shape) * k, touched
        if op == "Conv2D" and len(in_shapes) >= 2 and in_shapes[1] is not None \
                and len(in_shapes[1]) == 4:
            kh, kw, cin, _ = (self.params.unknown_dim if d is None else d for d in in_shapes[1])
            out_shape = node.out_shapes[0] if node.out_shapes else None
            return 2.0 * self.elements(out_shape) * kh * kw * cin, touched
        return 0.0, touched

    def _contracted_dim(self, node: NodeDef, in_shapes: Sequence[Shape]) -> int:
        a = in_shapes[0] if in_shapes else None
        if a is None or len(a) < 2:
            return self.params.unknown_dim
        transpose = node.attrs.get("transpose_a") or node.attrs.get("adj_x")
        k = a[-2] if transpose else a[-1]
        return self.params.unknown_dim if k is None else k

    def rates(self, device_type: str | None) -> DeviceRates:
        return self.params.rates.get(device_type or "", self.params.default_rates)

    def time_for_work(self, flops: float, nbytes: float, device_type: str | None) -> float:
        """Seconds for `flops` and `nbytes` of memory traffic on a device of `device_type`."""
        r = self.rates(device_type)
        return r.launch_s + max(flops / r.flops_per_s, nbytes / r.bytes_per_s)

    def compute_time(self, node: NodeDef, device: DeviceSpec | str,
                     in_shapes: Sequence[Shape] = (), in_bytes: int | None = None,
                     out_bytes: Sequence[int] | None = None) -> float:
        """Seconds `node` takes on `device`: a measured average if any, else the heuristic
        (the optional arguments as for `work`)."""
        spec = DeviceSpec.from_any(device)
        measured = self.measured(node.name, spec)
        if measured is not None:
            return measured
        flops, nbytes = self.work(node, in_shapes, in_bytes, out_bytes)
        return self.time_for_work(flops, nbytes, spec.device_type)

    # -- measurements -----------------------------------------------------------------------

    def record(self, node_name: str, device: DeviceSpec | str, seconds: float) -> None:
        """Fold a measured run time of `node_name` on `device` into its moving average."""
        if not seconds >= 0.0:  # also rejects NaN
            raise InvalidArgumentError(
                f"measured time {seconds!r} of node '{node_name}' on {device} must be a "
                "non-negative number of seconds", node=node_name)
        # (#16) a traced step records every node: parse each device name once
        names = self.__dict__.setdefault("_device_names", {})
        pair = names.get(device) if isinstance(device, str) else None
        if pair is None:
            spec = DeviceSpec.from_any(device)
            pair = (spec.to_string(), spec.device_type or "")
            if isinstance(device, str):
                names[device] = pair
        alpha = self.params.ema_alpha
        for table, key in ((self._measured, (node_name, pair[0])),
                           (self._measured_kind, (node_name, pair[1]))):
            old = table.get(key)
            table[key] = seconds if old is None else alpha * seconds + (1.0 - alpha) * old

    def measured(self, node_name: str, device: DeviceSpec | str) -> float | None:
        """The averaged measurement of `node_name` on `device` (or its kind), or None."""
        if not self._measured:
            return None
        spec = DeviceSpec.from_any(device)
        found = self._measured.get((node_name, spec.to_string()))
        if found is None:
            found = self._measured_kind.get((node_name, spec.device_type or ""))
        return found

    def has_measurements(self) -> bool:
        return bool(self._measured)

    # -- transfers --------------------------------------------------------------------------

    def link(self, src: DeviceSpec, dst: DeviceSpec) -> tuple[float, float]:
        """(latency seconds, seconds per byte) of moving a tensor from `src` to `dst`."""
        if src == dst:
            return 0.0, 0.0
        p = self.params
        if src.same_task(dst):
            return p.local_latency_s, 1.0 / p.local_bytes_per_s
        return p.remote_latency_s, 1.0 / p.remote_bytes_per_s

    def transfer_time(self, nbytes: int, src: DeviceSpec | str, dst: DeviceSpec | str) -> float:
        """Seconds to move `nbytes` from `src` to `dst` (0 when they are the same device)."""
        latency, per_byte = self.link(DeviceSpec.from_any(src), DeviceSpec.from_any(dst))
        if latency == 0.0 and per_byte == 0.0:
            return 0.0
        return latency + nbytes * per_byte
