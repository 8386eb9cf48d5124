"""`actorflow train mlp --rule R --simulate N` and `--compare R,R,...`: update rules on the
digits MLP, in `af.sim` (N virtual workers) or on a real local cluster (`models.rules_cluster`),
every rule with the same data, seed and (simulated) delays.

Rules (issue 17): async (plain SGD), sync (`SyncReplicasOptimizer`, k = n), backup (k = n - 1
of n: the slowest worker's gradient is dropped), ssp (SGD with a staleness bound of
`SSP_BOUND` steps, `af.train.StaleSynchronous`), dcasgd (delay compensation), easgd (elastic
averaging, `af.train.ElasticAverage`), stale-lr (staleness-scaled SGD), quantized8 (8-bit
gradients with error feedback).

`compare` prints a table (final accuracy, time, updates per second, staleness, dropped
gradients) and, when asked, draws a PNG (accuracy against time, one staleness histogram per
rule) with matplotlib (the optional `plot` extra). With `logdir`, each rule writes
TensorBoard summaries under ``logdir/RULE``: ``eval/accuracy`` and, per variable,
``staleness/VAR/mean`` (a scalar) and ``staleness/VAR`` (a histogram of the staleness of every
update so far), built with `af.summary` from the PS's own counters.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

import actorflow as af
from actorflow.train.staleness import decode_stats
from models import digits

RULES = ("async", "sync", "backup", "ssp", "dcasgd", "easgd", "stale-lr", "quantized8")
SSP_BOUND = 2
EASGD_ALPHA, EASGD_TAU = 0.2, 4
SIZES = (64, 64, 10)


@dataclass
class RuleRun:
    """One rule's run: accuracy against time (virtual seconds in simulation, wall seconds on a
    cluster), its updates, the staleness the PS counted and the gradients it dropped."""

    rule: str
    where: str                                  # "sim" or "cluster"
    accuracy: list[tuple[float, float]]
    seconds: float
    updates: int
    staleness: dict[str, Any]
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1][1]


def check_rules(rules: list[str]) -> list[str]:
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise af.errors.InvalidArgumentError(
            f"unknown rule {bad[0]!r}; choose from {', '.join(RULES)}" if bad else
            f"no rule given; choose from {', '.join(RULES)}")
    return rules


class CountedSGD(af.train.GradientDescentOptimizer):
    """Plain SGD whose updates go through the staleness path (`wants_staleness`): the update
    is SGD's, and the PS counts (and, recording, logs) its staleness like any rule's."""

    wants_staleness = True

    def _apply_dense(self, grad: Any, var: Any, staleness: Any = None) -> Any:
        return super()._apply_dense(grad, var)


def make_rule(rule: str, learning_rate: float) -> Any:
    """The optimizer of an asynchronous rule (sync, backup and ssp wrap plain SGD; plain SGD
    is `CountedSGD`, so every rule's staleness is counted)."""
    check_rules([rule])
    if rule == "stale-lr":
        return af.train.StalenessScaledSGD(learning_rate)
    if rule == "dcasgd":
        return af.train.DCASGDOptimizer(learning_rate)
    if rule == "quantized8":
        return af.train.QuantizedGradients(af.train.GradientDescentOptimizer(learning_rate))
    return CountedSGD(learning_rate)


class StalenessSummaries:
    """`af.summary` ops of the current graph for `variables`' staleness (read on their
    devices) and a test accuracy, written to `writer` by `write`."""

    def __init__(self, variables: list[Any], writer: Any):
        self.writer = writer
        self.acc = af.placeholder(af.float32, (), name="summary_accuracy")
        scalars = [af.summary.scalar("eval/accuracy", self.acc)]
        self.stats, self.samples, hists = [], [], []
        for v in variables:
            tag = v.op.name
            st = af.train.staleness_stats(v)
            mean = af.cast(st[1], af.float32) / af.maximum(af.cast(st[0], af.float32), 1.0)
            scalars.append(af.summary.scalar(f"staleness/{tag}/mean", mean))
            ph = af.placeholder(af.float32, (None,), name="staleness_samples")
            hists.append(af.summary.histogram(f"staleness/{tag}", ph))
            self.stats.append(st)
            self.samples.append(ph)
        self.scalars = af.summary.merge(scalars)
        self.hists = hists

    def write(self, sess: Any, step: int, accuracy: float) -> None:
        summary, stats = sess.run([self.scalars, self.stats], {self.acc: accuracy})
        self.writer.add_summary(summary, step)
        for ph, hist_op, row in zip(self.samples, self.hists, stats, strict=True):
            hist = decode_stats(row)["hist"]
            if hist:  # every update's staleness, from the PS's bucket counts
                values = np.repeat(np.arange(len(hist), dtype=np.float32), hist)
                self.writer.add_summary(sess.run(hist_op, {ph: values}), step)
        self.writer.flush()


def simulate_rule(rule: str, workers: int, steps: int, *, stragglers: int = 0,
                  learning_rate: float = 0.5, seed: int = 0, logdir: str | None = None,
                  eval_every_s: float = 0.0, batch_size: int = 32, **config: Any) -> RuleRun:
    """`rule` on the digits MLP in `af.sim`: `workers` virtual workers, `steps` steps each
    (global steps for sync and backup) of `batch_size` examples."""
    check_rules([rule])
    d = digits.load()
    cfg = af.sim.SimConfig(workers=workers, steps=steps, stragglers=stragglers, seed=seed,
                           eval_every_s=eval_every_s, **config)
    if rule == "ssp":
        cfg.ssp_bound = SSP_BOUND
    elif rule in ("sync", "backup"):
        cfg.aggregate = workers if rule == "sync" else max(1, workers - 1)
    with af.Graph().as_default():
        if rule == "easgd":
            m: Any = af.sim.ElasticSplitModel(
                lambda: af.train.GradientDescentOptimizer(learning_rate), workers, d.train_x,
                d.train_y, d.test_x, d.test_y, SIZES, alpha=EASGD_ALPHA, tau=EASGD_TAU,
                seed=seed, batch_size=batch_size)
        else:
            m = af.sim.SplitModel(make_rule(rule, learning_rate), d.train_x, d.train_y,
                                  d.test_x, d.test_y, SIZES, seed=seed, batch_size=batch_size)
        writer = af.summary.FileWriter(str(Path(logdir) / rule)) if logdir else None
        summaries = StalenessSummaries(m.vars, writer) if writer else None
        with af.Session() as s:
            s.run(af.global_variables_initializer())

            def on_eval(_t: float, acc: float, updates: int) -> None:
                if summaries is not None:
                    summaries.write(s, updates, acc)

            r = af.sim.simulate(m, s, cfg, on_eval=on_eval)
        if writer is not None:
            writer.close()
    return RuleRun(rule, "sim", r.accuracy, r.virtual_s, r.updates, r.staleness, r.dropped,
                   {"real_s": r.real_s, "worker_steps": r.worker_steps, "log": r.log})


def table(runs: dict[str, RuleRun]) -> str:
    """One line per rule: accuracy, time, updates per second, staleness, dropped."""
    first = next(iter(runs.values()), None)
    unit = "virtual s" if first is not None and first.where == "sim" else "wall s"
    lines = [f"{'rule':11s} {'accuracy':>8s} {unit:>9s} {'updates':>7s} {'updates/s':>9s} "
             f"{'staleness mean/max':>18s} {'dropped':>7s}"]
    for r in runs.values():
        st = f"{r.staleness['mean']:.1f}/{r.staleness['max']}" if r.staleness.get("count") \
            else "-"
        rate = r.updates / r.seconds if r.seconds else 0.0
        lines.append(f"{r.rule:11s} {r.final_accuracy:8.2%} {r.seconds:9.3f} {r.updates:7d} "
                     f"{rate:9.0f} {st:>18s} {r.dropped:7d}")
    return "\n".join(lines)


def plot(runs: dict[str, RuleRun], path: str | Path) -> Path:
    """A PNG: test accuracy against time for every rule, and each rule's staleness histogram.
    Needs matplotlib (``pip install actorflow[plot]``)."""
    try:
        import matplotlib
    except ImportError as e:
        raise af.errors.InvalidArgumentError(
            "--plot needs matplotlib: pip install 'actorflow[plot]' (or matplotlib>=3.8)"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    fig, axes = plt.subplots(1, 1 + n, figsize=(5 + 2.6 * n, 3.6), squeeze=False)
    ax = axes[0][0]
    for r in runs.values():
        ts, accs = zip(*r.accuracy, strict=True)
        ax.plot(ts, accs, marker=".", label=r.rule)
    first = next(iter(runs.values()))
    ax.set_xlabel("virtual seconds" if first.where == "sim" else "seconds")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title("accuracy against time")
    for a, r in zip(axes[0][1:], runs.values(), strict=True):
        hist = r.staleness.get("hist") or []
        a.bar(range(len(hist)), hist)
        if not hist:
            a.text(0.5, 0.5, "no update carried\na read version", ha="center",
                   transform=a.transAxes)
        a.set_title(f"{r.rule}: staleness", fontsize="small")
        a.set_xlabel("staleness (versions)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png", dpi=80)
    plt.close(fig)
    return out


def compare(rules: list[str], workers: int, steps: int, *, simulate: bool = True,
            stragglers: int = 0, learning_rate: float = 0.5, seed: int = 0,
            logdir: str | None = None, plot_path: str | Path | None = None,
            out: IO[str] | None = None, **kwargs: Any) -> dict[str, RuleRun]:
    """Train every rule with the same data, seed and config; print the table (and draw the
    plot) to `out` (default stdout); return the runs."""
    check_rules(rules)
    out = sys.stdout if out is None else out
    if stragglers and not simulate:
        raise af.errors.InvalidArgumentError(
            "--stragglers slows virtual workers: add --simulate N (a local cluster's workers "
            "run at the speed they run)")
    runs: dict[str, RuleRun] = {}
    if simulate:
        kwargs.setdefault("eval_every_s", 0.25)
        for rule in rules:
            runs[rule] = simulate_rule(rule, workers, steps, stragglers=stragglers,
                                       learning_rate=learning_rate, seed=seed, logdir=logdir,
                                       **kwargs)
    else:
        from models.rules_cluster import train_rules_on_cluster  # noqa: PLC0415

        runs = train_rules_on_cluster(rules, workers, steps, learning_rate=learning_rate,
                                      seed=seed, logdir=logdir, **kwargs)
    print(table(runs), file=out, flush=True)
    if plot_path is not None:
        print(f"plot: {plot(runs, plot_path)}", file=out, flush=True)
    return runs
