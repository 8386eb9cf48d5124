"""`actorflow train mlp --rule R[,R...] --simulate N`: compare update rules on the digits MLP
in `af.sim` (N virtual workers, the same data, seed and delays for every rule) and print a
table: final test accuracy, virtual time, updates per virtual second, staleness.

Rules: async (plain SGD), stale-lr (staleness-scaled SGD), dcasgd (delay compensation),
quantized8 (8-bit gradients with error feedback).
"""

from __future__ import annotations

import sys
from typing import IO, Any

import actorflow as af
from models import digits

RULES = ("async", "stale-lr", "dcasgd", "quantized8")


def make_rule(rule: str, learning_rate: float) -> Any:
    if rule == "async":
        return af.train.GradientDescentOptimizer(learning_rate)
    if rule == "stale-lr":
        return af.train.StalenessScaledSGD(learning_rate)
    if rule == "dcasgd":
        return af.train.DCASGDOptimizer(learning_rate)
    if rule == "quantized8":
        return af.train.QuantizedGradients(af.train.GradientDescentOptimizer(learning_rate))
    raise af.errors.InvalidArgumentError(
        f"unknown rule {rule!r}; choose from {', '.join(RULES)} (with --simulate N)")


def compare(rules: list[str], workers: int, steps: int, *, stragglers: int = 0,
            learning_rate: float = 0.5, seed: int = 0, out: IO[str] = sys.stdout
            ) -> dict[str, af.sim.SimReport]:
    """Simulate every rule with the same config; print and return the reports."""
    for r in rules:
        make_rule(r, learning_rate)  # bad names fail before any work
    d = digits.load()
    reports = {}
    print(f"{'rule':11s} {'accuracy':>8s} {'virtual s':>9s} {'updates/vs':>10s} "
          f"{'staleness mean/max':>18s} {'real s':>6s}", file=out)
    for rule in rules:
        with af.Graph().as_default():
            m = af.sim.SplitModel(make_rule(rule, learning_rate), d.train_x, d.train_y,
                                  d.test_x, d.test_y, (64, 64, 10), seed=seed)
            with af.Session() as s:
                s.run(af.global_variables_initializer())
                r = af.sim.simulate(m, s, af.sim.SimConfig(
                    workers=workers, steps=steps, stragglers=stragglers, seed=seed))
        reports[rule] = r
        st = f"{r.staleness['mean']:.1f}/{r.staleness['max']}" if r.staleness["count"] else "-"
        print(f"{rule:11s} {r.accuracy[-1][1]:8.2%} {r.virtual_s:9.3f} "
              f"{r.updates_per_virtual_s:10.0f} {st:>18s} {r.real_s:6.1f}", file=out,
              flush=True)
    return reports
