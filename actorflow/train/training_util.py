"""The global step: one int64 variable per graph counting training steps, in the
GLOBAL_STEP collection; `Optimizer.apply_gradients(..., global_step=)` increments it."""

from __future__ import annotations

from typing import Any

from actorflow.graph import GraphKeys, control_dependencies, get_default_graph, name_scope
from actorflow.variables import Variable
from devices import dtypes
from devices.errors import InvalidArgumentError


def get_global_step(graph: Any = None) -> Variable | None:
    """The graph's global step variable, or None if it has none."""
    g = graph or get_default_graph()
    steps = g.get_collection(GraphKeys.GLOBAL_STEP)
    if len(steps) > 1:
        raise InvalidArgumentError(f"the graph has {len(steps)} global steps in the "
                                   f"GLOBAL_STEP collection; keep one")
    return steps[0] if steps else None


def create_global_step(graph: Any = None) -> Variable:
    """Make the graph's global step (an int64 scalar starting at 0); raises if it exists."""
    g = graph or get_default_graph()
    if get_global_step(g) is not None:
        raise InvalidArgumentError("the graph already has a global step; use "
                                   "af.train.get_or_create_global_step()")
    if g is not get_default_graph():
        with g.as_default():
            return _make()
    return _make()


def _make() -> Variable:
    with name_scope(None), control_dependencies(None):
        return Variable(0, trainable=False, dtype=dtypes.int64, name="global_step",
                        collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Any = None) -> Variable:
    g = graph or get_default_graph()
    step = get_global_step(g)
    return step if step is not None else create_global_step(g)


def global_step(sess: Any, global_step_tensor: Any) -> int:
    """The current value of the global step, read in `sess`."""
    return int(sess.run(global_step_tensor))
