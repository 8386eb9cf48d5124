"""A digits MLP whose worker steps are split into a read half (read the variables with their
versions, compute gradients) and an apply half, so tests can interleave workers by hand and
give updates real staleness in one process. Used by test_rules and test_replay."""

from __future__ import annotations

import numpy as np

import actorflow as af
from models import digits
from models.common import glorot_weights


class SplitNet:
    def __init__(self, opt, hidden: int = 64, seed: int = 0, batch: int = 32):
        self.data = digits.load()
        self.batch, self.seed = batch, seed
        self.vars = []
        for i, (w0, b0) in enumerate(glorot_weights((64, hidden, 10), seed)):
            self.vars += [af.Variable(w0, name=f"W{i}"), af.Variable(b0, name=f"b{i}")]
        self.x = af.placeholder(af.float32, (None, 64), name="x")
        self.y = af.placeholder(af.int32, (None,), name="y")
        reads = [af.train.read_with_version(v) for v in self.vars]
        self.values = [r[0] for r in reads]
        self.versions = [r[1] for r in reads]
        loss = af.reduce_mean(af.nn.sparse_softmax_cross_entropy_with_logits(
            labels=self.y, logits=self._logits(self.values)))
        self.grads = af.gradients(loss, self.values)
        self.g_ph = [af.placeholder(af.float32, v.shape, name="g") for v in self.vars]
        self.w_ph = [af.placeholder(af.float32, v.shape, name="w_read") for v in self.vars]
        self.rv_ph = [af.placeholder(af.int64, (), name="rv") for _ in self.vars]
        self.step_ph = af.placeholder(af.int64, (), name="step")
        self.task_ph = af.placeholder(af.int64, (), name="task")
        opt.task = self.task_ph
        self.apply = opt.apply_gradients(
            list(zip(self.g_ph, self.vars, strict=True)),
            read_versions=dict(zip(self.vars, self.rv_ph, strict=True)),
            read_values=dict(zip(self.vars, self.w_ph, strict=True)), read_step=self.step_ph)
        logits = self._logits([v.value() for v in self.vars])
        self.accuracy = af.reduce_mean(af.cast(af.equal(
            af.cast(af.argmax(logits, 1), af.int32), self.y), af.float32))

    def _logits(self, p):
        h = af.nn.relu(af.matmul(self.x, p[0]) + p[1])
        return af.matmul(h, p[2]) + p[3]

    def feed_batch(self, task: int, step: int) -> dict:
        rng = np.random.default_rng((self.seed, task, step))
        idx = rng.choice(len(self.data.train_y), self.batch, replace=False)
        return {self.x: self.data.train_x[idx], self.y: self.data.train_y[idx]}

    def read(self, sess, task: int, step: int):
        return sess.run([self.grads, self.versions, self.values], self.feed_batch(task, step))

    def apply_update(self, sess, task: int, step: int, res) -> None:
        grads, versions, values = res
        feed = {self.step_ph: step, self.task_ph: task}
        for ph, a in zip(self.g_ph + self.rv_ph + self.w_ph, grads + versions + values,
                         strict=True):
            feed[ph] = a
        sess.run(self.apply, feed)

    def test_accuracy(self, sess) -> float:
        return float(sess.run(self.accuracy, {self.x: self.data.test_x,
                                              self.y: self.data.test_y}))


def run_async(sess, net: SplitNet, workers: int, steps: int, seed: int = 0) -> None:
    """`workers` workers doing `steps` steps each, interleaved at random (seeded): a worker
    picked either reads (if it holds no gradient) or applies the one it holds."""
    rng = np.random.default_rng(seed)
    done, held = [0] * workers, [None] * workers
    while min(done) < steps:
        t = int(rng.choice([i for i in range(workers) if done[i] < steps]))
        if held[t] is None:
            held[t] = net.read(sess, t, done[t])
        else:
            net.apply_update(sess, t, done[t], held[t])
            held[t] = None
            done[t] += 1
