"""EASGD: elastic averaging SGD (Zhang, Choromanska, LeCun, "Deep learning with Elastic
Averaging SGD", NIPS 2015, asynchronous variant). Each worker trains its own local copy x of
the variables; every `tau` of its steps, the copy and the shared centre variable c (on the
PS) pull towards each other with moving rate alpha:

    d = alpha * (x - c);    x -= d;    c += d

    ea = af.train.ElasticAverage(local_vars, center_device="/job:ps/task:0", alpha=0.1, tau=4)
    train = ea.step(opt.minimize(loss, var_list=local_vars))   # local step, elastic every tau
    ea1 = af.train.ElasticAverage(other_local_vars, centers=ea.centers)  # in one graph

(Across tasks, each worker's graph makes centre variables of the same names on the PS.)
"""

from __future__ import annotations

from actorflow.graph import Operation, control_dependencies, device, name_scope
from actorflow.ops import compare_ops, control_flow_ops, core_ops, math_ops
from actorflow.variables import Variable


class ElasticAverage:
    """Centre variables for `local_vars` and the elastic update between them."""

    def __init__(self, local_vars: list[Variable], center_device: str | None = None,
                 alpha: float = 0.1, tau: int = 4, name: str = "easgd",
                 centers: list[Variable] | None = None):
        self.alpha, self.tau, self.local_vars = float(alpha), int(tau), list(local_vars)
        if centers is None:
            with name_scope(name), device(center_device):
                centers = [Variable(v.initial_value, trainable=False, name="center",
                                    dtype=v.dtype) for v in self.local_vars]
        self.centers = list(centers)
        with name_scope(name):
            self.local_step = Variable(0, trainable=False, name="local_step")

    def elastic_op(self) -> Operation:
        """d = alpha (x - c); x -= d; c += d, for every pair."""
        ups = []
        for x, c in zip(self.local_vars, self.centers, strict=True):
            d = math_ops.multiply(math_ops.subtract(x.read_value(), c.read_value()),
                                  self.alpha)
            ups += [x.assign_sub(d).op, c.assign_add(d).op]
        return core_ops.group(*ups, name="elastic")

    def step(self, train_op: Operation) -> Operation:
        """`train_op`, then the elastic update when this worker's step count hits tau."""
        with control_dependencies([train_op]):
            n = self.local_step.assign_add(1)
        due = compare_ops.equal(math_ops.floormod(n, self.tau), 0)
        return control_flow_ops.cond(due, lambda: core_ops.group(self.elastic_op()),
                                     lambda: core_ops.no_op())
