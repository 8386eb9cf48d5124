"""The local compile pipeline (OSDI §3.3, §5): from a GraphDef and a step signature (feeds,
fetches, targets) to a `CompiledStep`, one `Executable` per device of this process.

    step = compile_step(graph_def, feeds=["x:0"], fetches=["loss:0"], targets=["train"],
                        devices=runtime.devices, config=config)

Stages: prune (partial execution) -> rewrite (CSE, constant folding) -> place -> partition
with Send/Recv -> compile each partition to dense ids on its device
(`scheduler.executable`). A cluster's steps go through the same first stages in
`scheduler.distributed_plan`, and their partitions are compiled by the tasks that run them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler import executable, prune, rewrite
from scheduler.config import RuntimeConfig
from scheduler.graphdef import GraphDef, NodeDef


@dataclass(frozen=True)
class CompiledStep:
    """Everything one step signature needs; shared by every run of that signature."""

    parts: tuple[tuple[Any, executable.Executable], ...]   # (device, executable)
    feeds: tuple[str, ...]
    fetches: tuple[str, ...]
    n_rets: int
    placement: dict[str, str]


def compile_step(graph: GraphDef, *, feeds: Sequence[str], fetches: Sequence[str],
                 targets: Sequence[str], devices: Sequence[Any], config: RuntimeConfig,
                 by_name: dict[str, NodeDef] | None = None,
                 log: Callable[[str], None] | None = None,
                 cost_model: Any = None) -> CompiledStep:
    """Compile one step signature. `cost_model` (a `scheduler.cost_model.CostModel`) carries
    what earlier runs measured into placement."""
    pruned = prune.prune(graph, list(feeds), list(fetches), list(targets), by_name)
    optimized = rewrite.optimize(pruned, cse=config.common_subexpression_elimination,
                                 fold=config.constant_folding)
    placement, parts = _place_and_partition(optimized, devices, config, log, cost_model)
    by_dev = {d.name: d for d in devices}
    compiled = tuple((by_dev[name], executable.compile_partition(g, by_dev[name]))
                     for name, g in parts.items() if g.nodes)
    return CompiledStep(compiled, tuple(feeds), tuple(fetches), len(fetches), placement)


def _place_and_partition(graph: GraphDef, devices: Sequence[Any], config: RuntimeConfig,
                         log: Callable[[str], None] | None, cost_model: Any,
                         ) -> tuple[dict[str, str], dict[str, GraphDef]]:
    from scheduler import partition as partition_mod
    from scheduler import placer

    names = [d.name for d in devices]
    placement = placer.place(graph, names, allow_soft_placement=config.allow_soft_placement,
                             client_device=names[0], cost_model=cost_model,
                             log=log if config.log_device_placement else None)
    if len(set(placement.values())) <= 1:   # one device: nothing to partition
        return placement, {names[0] if not placement else next(iter(placement.values())): graph}
    parts = partition_mod.partition(graph, placement,
                                    schedule_recvs_alap=config.schedule_recvs_alap,
                                    lossy=config.lossy_transfers, cost_model=cost_model)
    return placement, parts
