"""What ``actorflow train mlp --logdir D`` writes for TensorBoard while the trainers run.

The chief (`models.train_async.train_mlp_async`) owns one `TrainMonitor`. It adds summary ops
to the chief's replica graph: ``loss`` and ``accuracy`` on a fixed held-out batch (computed on
worker 0, where the model's math lives) and a histogram of every weight under
``af.device(variable.device)`` (computed on the PS task that holds it: only the serialized
Summary comes back). Every `every` seconds of training it runs the merged summary in its own
session and writes, at the current global step: those summaries, ``train/steps_per_sec`` (all
workers together), ``train/loss`` (the trainers' latest), and for every PS task
``ps/<task>/bytes_moved`` and ``ps/<task>/MiB_per_sec`` (bytes the task received and pushed,
from `actorflow status`). The graph goes in once, with where each node ran, and the first
summary step's run metadata (``FULL_TRACE``) under the tag ``summary_step``. Only this process
writes files.

    mon = TrainMonitor("logs/run1", graph, model, cluster)
    mon.maybe_write(global_step, rate, loss)      # cheap when `every` has not passed
    mon.close()
"""

from __future__ import annotations

import time
from typing import Any

import actorflow as af
from actorflow.client.cluster_status import cluster_status
from models import digits


class TrainMonitor:
    def __init__(self, logdir: str, graph: af.Graph, model: Any, cluster: Any,
                 every: float = 1.0, eval_rows: int = 200) -> None:
        self.every = every
        self.cluster = cluster
        self._spec = cluster.as_dict()
        with graph.as_default():
            scalars = [af.summary.scalar("eval/loss", model.loss),
                       af.summary.scalar("eval/accuracy", model.accuracy)]
            hists = []
            for v in model.variables:
                with af.device(v.device):
                    hists.append(af.summary.histogram(f"{v.op.name}/value", v.value()
                                                      if hasattr(v, "value") else v))
            self.merged = af.summary.merge(scalars + hists)
            self.global_step = model.global_step
        data = digits.load()
        self.feed = {model.x: data.test_x[:eval_rows], model.y: data.test_y[:eval_rows]}
        self.session = af.Session(cluster.target("worker", 0), graph=graph)
        self.writer = af.summary.FileWriter(logdir, flush_secs=5)
        self.graph = graph
        self._last = 0.0
        self._bytes: dict[str, tuple[float, int]] = {}
        self._graph_written = False

    def _ps_bytes(self) -> dict[str, int]:
        st = cluster_status({"ps": self._spec["ps"]}, timeout=2.0)
        return {f"task{t.task}": int(t.bytes.get("received", 0)) + int(t.bytes.get("pushed", 0))
                for t in st.tasks if t.error is None}

    def maybe_write(self, rate: float, loss: float, force: bool = False) -> bool:
        """Write one round of summaries if `every` seconds passed (or `force`)."""
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return False
        self._last = now
        if not self._graph_written:
            md = af.RunMetadata()
            blob, step = self.session.run(
                [self.merged, self.global_step], self.feed,
                options=af.RunOptions(trace_level=af.RunOptions.FULL_TRACE), run_metadata=md)
            self.writer.add_graph(self.graph, placement=md.placement)
            self.writer.add_run_metadata(md, "summary_step", int(step))
            self._graph_written = True
        else:
            blob, step = self.session.run([self.merged, self.global_step], self.feed)
        step = int(step)
        self.writer.add_summary(blob, step)
        values = [af.summary.Summary.Value(tag="train/steps_per_sec", simple_value=rate)]
        if loss == loss:  # not NaN
            values.append(af.summary.Summary.Value(tag="train/loss", simple_value=loss))
        for task, total in self._ps_bytes().items():
            values.append(af.summary.Summary.Value(tag=f"ps/{task}/bytes_moved",
                                                   simple_value=float(total)))
            prev = self._bytes.get(task)
            if prev is not None and now > prev[0]:
                values.append(af.summary.Summary.Value(
                    tag=f"ps/{task}/MiB_per_sec",
                    simple_value=(total - prev[1]) / (now - prev[0]) / (1 << 20)))
            self._bytes[task] = (now, total)
        self.writer.add_summary(af.summary.Summary(value=values), step)
        return True

    def close(self) -> None:
        self.writer.close()
        self.session.close()
