"""A classifier whose worker step is split into halves, for the simulator and replay: `read`
(read the variables with their versions on the PS, compute gradients on a batch) and `apply`
(send the gradients with the read versions: the optimizer's update path on the PS, staleness
computed there). One graph, one in-process session: the PS device actors and kernels are the
production ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import actorflow as af


class SplitModel:
    """An MLP (`sizes`: features, hidden..., classes) trained by `optimizer` on (x, y)."""

    def __init__(self, optimizer: Any, x: np.ndarray, y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, sizes: Sequence[int], *, batch_size: int = 32,
                 seed: int = 0):
        self.train_x, self.train_y, self.test_x, self.test_y = x, y, test_x, test_y
        self.batch, self.seed = int(batch_size), int(seed)
        rng = np.random.default_rng(seed)
        self.vars: list[Any] = []
        for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            lim = np.sqrt(6.0 / (fi + fo))
            self.vars += [af.Variable(rng.uniform(-lim, lim, (fi, fo)).astype(np.float32),
                                      name=f"W{i}"),
                          af.Variable(np.zeros(fo, np.float32), name=f"b{i}")]
        self.x = af.placeholder(af.float32, (None, sizes[0]), name="x")
        self.y = af.placeholder(af.int32, (None,), name="y")
        reads = [af.train.read_with_version(v) for v in self.vars]
        self.values, self.versions = [r[0] for r in reads], [r[1] for r in reads]
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=self.y, logits=self._logits(self.values)))
        self.grads = af.gradients(loss, self.values)
        self.g_ph = [af.placeholder(af.float32, v.shape) for v in self.vars]
        self.w_ph = [af.placeholder(af.float32, v.shape) for v in self.vars]
        self.rv_ph = [af.placeholder(af.int64, ()) for _ in self.vars]
        self.step_ph = af.placeholder(af.int64, (), name="step")
        self.task_ph = af.placeholder(af.int64, (), name="task")
        self.inc_ph = af.placeholder(af.int64, (), name="incarnation")
        optimizer.task, optimizer.incarnation = self.task_ph, self.inc_ph
        self.apply_op = optimizer.apply_gradients(
            list(zip(self.g_ph, self.vars, strict=True)),
            read_versions=dict(zip(self.vars, self.rv_ph, strict=True)),
            read_values=dict(zip(self.vars, self.w_ph, strict=True)), read_step=self.step_ph)
        pred = af.cast(af.argmax(self._logits([v.value() for v in self.vars]), 1), af.int32)
        self.accuracy = af.reduce_mean(af.cast(af.equal(pred, self.y), af.float32))
        self.staleness_stats = af.train.staleness_stats(self.vars[0])

    def _logits(self, p: list[Any]) -> Any:
        h = self.x
        for i in range(0, len(p), 2):
            h = af.matmul(h, p[i]) + p[i + 1]
            if i + 2 < len(p):
                h = af.nn.relu(h)
        return h

    def feed_batch(self, task: int, step: int) -> dict:
        """The batch of worker `task`'s step `step`: the same on every run of a seed."""
        rng = np.random.default_rng((self.seed, task, step))
        idx = rng.choice(len(self.train_y), self.batch, replace=False)
        return {self.x: self.train_x[idx], self.y: self.train_y[idx]}

    def read(self, sess: Any, task: int, step: int) -> Any:
        return sess.run([self.grads, self.versions, self.values], self.feed_batch(task, step))

    def apply(self, sess: Any, task: int, step: int, held: Any, incarnation: int = 1) -> None:
        """Send `held` (a `read`'s result) as worker `task`'s update of `step`, from the
        worker's life `incarnation` (the simulator counts a worker's restarts in it)."""
        grads, versions, values = held
        feed: dict = {self.step_ph: step, self.task_ph: task, self.inc_ph: incarnation}
        feed.update(zip(self.g_ph + self.rv_ph + self.w_ph, grads + versions + values,
                        strict=True))
        sess.run(self.apply_op, feed)

    def test_accuracy(self, sess: Any) -> float:
        return float(sess.run(self.accuracy, {self.x: self.test_x, self.y: self.test_y}))


class ElasticSplitModel:
    """EASGD in the simulator (`af.train.ElasticAverage`): each of `workers` virtual workers
    trains its own copy of the MLP with `optimizer_fn()` on its own batches (`read`: a local
    step, no PS), and every `tau` of its steps pulls its copy and the centre variables on the
    PS towards each other (`apply`, when `needs_ps(step)`). The centre is the model tested."""

    def __init__(self, optimizer_fn: Any, workers: int, x: np.ndarray, y: np.ndarray,
                 test_x: np.ndarray, test_y: np.ndarray, sizes: Sequence[int], *,
                 alpha: float = 0.1, tau: int = 4, batch_size: int = 32, seed: int = 0):
        self.train_x, self.train_y, self.test_x, self.test_y = x, y, test_x, test_y
        self.batch, self.seed, self.tau = int(batch_size), int(seed), int(tau)
        rng = np.random.default_rng(seed)
        init = []
        for fi, fo in zip(sizes[:-1], sizes[1:], strict=True):
            lim = np.sqrt(6.0 / (fi + fo))
            init += [rng.uniform(-lim, lim, (fi, fo)).astype(np.float32),
                     np.zeros(fo, np.float32)]
        self.x = af.placeholder(af.float32, (None, sizes[0]), name="x")
        self.y = af.placeholder(af.int32, (None,), name="y")
        self.train_ops, self.elastic_ops = [], []
        centers = None
        for w in range(workers):
            with af.name_scope(f"worker{w}"):
                local = [af.Variable(v, name=f"p{i}") for i, v in enumerate(init)]
                loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=self.y, logits=_mlp(self.x, local)))
                self.train_ops.append(optimizer_fn().minimize(loss, var_list=local))
            ea = af.train.ElasticAverage(local, alpha=alpha, tau=tau, centers=centers,
                                         name=f"easgd{w}")
            centers = ea.centers
            self.elastic_ops.append(ea.elastic_op())
        self.vars: list[Any] = list(centers or [])
        pred = af.cast(af.argmax(_mlp(self.x, [v.value() for v in self.vars]), 1), af.int32)
        self.accuracy = af.reduce_mean(af.cast(af.equal(pred, self.y), af.float32))
        self.staleness_stats = af.train.staleness_stats(self.vars[0])

    def feed_batch(self, task: int, step: int) -> dict:
        rng = np.random.default_rng((self.seed, task, step))
        idx = rng.choice(len(self.train_y), self.batch, replace=False)
        return {self.x: self.train_x[idx], self.y: self.train_y[idx]}

    def read(self, sess: Any, task: int, step: int) -> Any:
        return sess.run(self.train_ops[task], self.feed_batch(task, step))

    def needs_ps(self, step: int) -> bool:
        return (step + 1) % self.tau == 0

    def apply(self, sess: Any, task: int, step: int, held: Any, incarnation: int = 1) -> None:
        if self.needs_ps(step):
            sess.run(self.elastic_ops[task])

    def test_accuracy(self, sess: Any) -> float:
        return float(sess.run(self.accuracy, {self.x: self.test_x, self.y: self.test_y}))


def _mlp(x: Any, p: list[Any]) -> Any:
    h = x
    for i in range(0, len(p), 2):
        h = af.matmul(h, p[i]) + p[i + 1]
        if i + 2 < len(p):
            h = af.nn.relu(h)
    return h
